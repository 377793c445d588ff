"""What a report says about where a regression begins and ends, for result stores whose
records differ in the ways real stores do (older matrix.yaml files, other hosts)."""

from __future__ import annotations

from typing import Any

from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.report import build_report


def rec(status: Status, pins: dict[str, str], **extra: Any) -> Result:
    """A record of repro `r` on the CPU of the host, keyed by its pins."""
    fields: dict[str, Any] = {
        "key": "k-" + "-".join(f"{lib}{label}" for lib, label in pins.items()),
        "cell_id": f"r[{pins}]",
        "repro": "r",
        "base": "host",
        "gpu": "cpu",
        "pins": pins,
        "status": status,
        "finished": "2026-01-01T00:00:00+00:00",
    }
    return Result(**{**fields, **extra})


def sentences(results: list[Result]) -> dict[str, str]:
    (rr,) = build_report(results).repros
    return {row.context: row.sentence for row in rr.rows}


def test_a_record_without_the_axis_library_is_no_point_of_its_axis() -> None:
    """A record of an older matrix.yaml that did not pin fla yet sorted after every fla
    revision, as if it were the newest: its pass read as the regression's end."""
    results = [
        rec(Status.PASSED, {"torch": "2.1"}),
        rec(Status.PASSED, {"torch": "2.1", "fla": "0.1"}),
        rec(Status.REGRESSED, {"torch": "2.1", "fla": "0.2"}),
        rec(Status.REGRESSED, {"torch": "2.1", "fla": "0.3"}),
    ]
    assert sentences(results) == {
        "cpu": "begins at 0.2 (last good 0.1); still present in the newest tested (0.3)",
        "cpu · fla=(not pinned)": "not reproduced (1 of 1 passed)",
    }


def test_pins_listed_in_another_order_are_one_series() -> None:
    """Libraries reordered in matrix.yaml between runs: the same fixed pins, listed in
    another order, split one series in two, each with a wrong boundary."""
    results = [
        rec(Status.PASSED, {"torch": "2.1", "cuda": "12", "fla": "0.1"}),
        rec(Status.REGRESSED, {"cuda": "12", "torch": "2.1", "fla": "0.2"}),
        rec(Status.REGRESSED, {"fla": "0.3", "torch": "2.1", "cuda": "12"}),
    ]
    assert sentences(results) == {
        "cpu": "begins at 0.2 (last good 0.1); still present in the newest tested (0.3)"
    }
    images = [
        rec(Status.PASSED, {"torch": "2.1", "cuda": "12"}, base="a", image="x/pt:24.01-py3"),
        rec(Status.REGRESSED, {"cuda": "12", "torch": "2.1"}, base="b", image="x/pt:24.02-py3"),
    ]
    assert sentences(images) == {
        "cpu": "begins at b (last good a); still present in the newest tested (b)"
    }
