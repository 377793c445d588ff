"""`run --fail-on`: what a cell's records say together, and which cells count."""

from __future__ import annotations

import dataclasses

from cells import CELL

from repromatrix.fail_on import FLAKY, ended_as, failure
from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.scheduler import RunSummary

P, R, T, E = Status.PASSED, Status.REGRESSED, Status.TIMEOUT, Status.ERROR


def rec(status: Status, day: int) -> Result:
    return Result(
        key=CELL.key,
        cell_id=CELL.id,
        repro="r",
        base="host",
        gpu="cpu",
        status=status,
        reason=status.value,
        finished=f"2026-01-{day:02d}T00:00:00+00:00",
    )


def test_a_regression_is_not_hidden_by_a_later_record_that_could_not_test() -> None:
    ended, said = ended_as([rec(R, 1), rec(T, 2)])
    assert ended is Status.REGRESSED
    assert said.status is Status.REGRESSED
    assert ended_as([rec(R, 1), rec(E, 2), rec(T, 3)])[0] is Status.REGRESSED
    assert ended_as([rec(P, 1), rec(R, 2), rec(T, 3)])[0] == FLAKY
    assert ended_as([rec(R, 1), rec(P, 2)])[0] == FLAKY
    assert ended_as([rec(P, 1), rec(T, 2)])[0] is Status.PASSED
    assert ended_as([rec(E, 1), rec(T, 2)])[0] is Status.TIMEOUT
    assert ended_as([rec(T, 1), rec(P, 2)])[0] is Status.PASSED


def test_a_cell_this_host_cannot_run_never_fails_on_its_records() -> None:
    summary = RunSummary(
        run_id="x",
        not_run_cells=[(CELL, "no H100 on this host")],
        evidence={CELL.key: (rec(P, 1), rec(R, 2))},
    )
    assert failure(summary, [CELL], {Status.REGRESSED}) is None
    failed = failure(summary, [CELL], {Status.NOT_RUN})
    assert failed is not None
    assert "ended not_run" in str(failed)


def test_a_reused_regression_fails_the_run_and_says_it_was_reused() -> None:
    summary = RunSummary(run_id="x", evidence={CELL.key: (rec(R, 1), rec(T, 2))})
    failed = failure(summary, [CELL, dataclasses.replace(CELL)], {Status.REGRESSED})
    assert failed is not None
    assert str(failed).startswith("1 cell(s) ended regressed (1 of them reused")


def test_a_flaky_cell_fails_passed_regressed_and_flaky() -> None:
    """Its records passed and regressed: `--fail-on passed` (a regression must still
    reproduce) let it through at exit 0, and `flaky` was an unknown status (exit 64)."""
    from repromatrix.arguments import fail_on

    summary = RunSummary(run_id="x", evidence={CELL.key: (rec(P, 1), rec(R, 2), rec(P, 3))})
    for given in ("passed", "regressed", "flaky", "error,flaky"):
        failed = failure(summary, [CELL], fail_on(given))
        assert failed is not None, given
        assert "ended flaky" in str(failed)
    assert failure(summary, [CELL], fail_on("error,timeout")) is None
    stable = RunSummary(run_id="x", evidence={CELL.key: (rec(P, 1), rec(P, 2))})
    assert failure(stable, [CELL], fail_on("flaky")) is None


def test_a_flaky_cell_is_named_by_its_regression() -> None:
    """`--fail-on regressed` of a cell that regressed, then passed, ended "1 cell(s) ended
    flaky ...: a[cpu,host] (max abs 1e-05 <= 1e-3)": the passing record's reason, as the
    why of a failure on a regression. The regression's own reason is named, after the
    counts that make the cell flaky (the reason alone read as a steady regression), as
    the newest regression's: "last regressed" read as if the last run had, where it passed."""
    from repromatrix.arguments import fail_on

    bad = rec(R, 1).model_copy(update={"reason": "max abs 1.97 > 1e-3"})
    good = rec(P, 2).model_copy(update={"reason": "max abs 1e-05 <= 1e-3"})
    failed = failure(
        RunSummary(run_id="x", evidence={CELL.key: (bad, good)}), [CELL], fail_on("regressed")
    )
    assert failed is not None
    assert str(failed).endswith(
        f"{CELL.id} (1 passed, 1 regressed; newest regression: max abs 1.97 > 1e-3)"
    )
