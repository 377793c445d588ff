"""The stored evidence a bisection starts from (`bisect_session._stored`)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from recordfactory import MACHINES_SPLIT, on_machine

from repromatrix.bisect_evidence import stored as _stored
from repromatrix.model import Status
from repromatrix.splits import Split


def test_a_declared_pin_with_the_candidates_key_does_not_count_its_records_twice() -> None:
    """matrix.yaml declaring a commit by its full hash pins it as the bisection does: the
    alias is the candidate's own cell, and its one stored run was read twice ("2 passed",
    "11 already evaluated" from 10 records), a repeat that never happened."""
    cell = cast(Any, SimpleNamespace(key="k0", timeout_s=1800.0))
    record = cast(
        Any,
        SimpleNamespace(
            status=Status.PASSED, base_fingerprint="", finished="2026-01-01T00:00:00+00:00"
        ),
    )
    candidate = cast(Any, SimpleNamespace(rev="a" * 40))
    evaluated = _stored([candidate], [cell], {"k0": [record]}, {0: (cell,)}, False)
    assert len(evaluated[0].runs) == 1


def _timed_out(seconds: float) -> Any:
    return SimpleNamespace(
        status=Status.TIMEOUT,
        base_fingerprint="",
        finished="2026-01-01T00:00:00+00:00",
        duration_s=seconds,
    )


def test_a_timeout_shorter_than_the_cells_timeout_now_is_no_evidence() -> None:
    """`bisect --timeout 2` left 1.1 timed out; `bisect` again with the cell's own 1800 s
    reused that record, never ran 1.1 and answered "one of 2 (1.1 [timeout: killed at the
    2 s limit], 1.2)". `run` already runs such a cell again."""
    cell = cast(Any, SimpleNamespace(key="k0", timeout_s=1800.0))
    candidate = cast(Any, SimpleNamespace(rev="1.1"))
    short, full = _timed_out(2.1), _timed_out(1800.4)
    assert _stored([candidate], [cell], {"k0": [short]}, {}, False) == {}
    kept = _stored([candidate], [cell], {"k0": [short, full]}, {}, False)
    assert [r.result for r in kept[0].runs] == [full]
    # Under the same --timeout it is evidence: the cell cannot finish within it.
    again = _stored([candidate], [cell], {"k0": [short]}, {}, False, timeout_s=2.0)
    assert [r.result for r in again[0].runs] == [short]


def test_stored_runs_that_disagree_only_between_machines_are_this_machines_alone() -> None:
    """At 2.0, m-a passed twice and m-b regressed twice (the report: "machines disagree",
    no flaky repro). A bisection on m-b read the four as one flaky commit and calibrated,
    or took m-a's passes for a contradiction. It takes this machine's runs, and says so;
    a machine with none of them runs the commit itself."""
    split = [r for r in MACHINES_SPLIT if r.pins["lib"] == "2.0"]
    cell = cast(Any, SimpleNamespace(key="k2.0", timeout_s=1800.0))
    candidate = cast(Any, SimpleNamespace(rev="2.0"))
    apart: dict[int, Split] = {}
    here = _stored(
        [candidate], [cell], {"k2.0": split}, {}, False, machine=("m-b", "vm"), apart=apart
    )
    assert [r.result.status for r in here[0].runs] == [Status.REGRESSED] * 2
    assert {i: str(s) for i, s in apart.items()} == {
        0: "machines disagree: m-a passed 2, m-b regressed 2"
    }
    assert _stored([candidate], [cell], {"k2.0": split}, {}, False, machine=("m-c", "vm")) == {}
    # One machine that disagrees with itself is a flaky repro: every run counts.
    flaky = [*split, on_machine("2.0", Status.PASSED, "m-b", 5)]
    mine = _stored([candidate], [cell], {"k2.0": flaky}, {}, False, machine=("m-b", "vm"))
    assert len(mine[0].runs) == 5
