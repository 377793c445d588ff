"""`run --fail-on STATUSES`: whether the cells a run selected fail it (exit 1), and why.

A cell ends as the records that count on this host say: the new ones and the stored
ones made on its base and this machine (`Plan.evidence`: never another host's, another
interpreter's or variables', nor a record of a cell this host cannot run). A cell reused
from an earlier run ends as its records say (a CI job that resumes a run must fail on
the regression the first attempt stored); a verdict (passed, regressed) is not hidden by
a newer record that could not test (a timeout, an error), as the report's is not; a flaky cell
(records that passed and regressed) fails `regressed`, as junit.xml fails it, `passed`
(it passed too: a check that a regression still reproduces must not pass on it) and
`flaky`; a cell this host could not run fails `not_run`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from repromatrix.errors import CellsFailed
from repromatrix.model import Cell, Status
from repromatrix.records import Result
from repromatrix.run_summary import RunSummary
from repromatrix.safetext import excerpt
from repromatrix.store import by_key
from repromatrix.timestamps import recency
from repromatrix.winner import evidence

#: What a cell whose records passed and regressed ends as.
FLAKY = "flaky"


def failure(
    summary: RunSummary, cells: Sequence[Cell], fail_on: Collection[Status | str]
) -> CellsFailed | None:
    """The error that ends the run with exit 1, or None when no selected cell matched."""
    new = by_key(summary.results)
    skipped = {cell.key for cell, _ in summary.not_run_cells}
    # (record that says it, ended, reused, the cell's id: the record may be a bisection's
    # run of its commit, whose id names the full commit, not the matrix's name for it)
    failed: list[tuple[Result, str, bool, str]] = []
    seen: set[str] = set()
    records_of: dict[str, list[Result]] = {}
    for cell in cells:
        if cell.key in seen or cell.key in skipped:
            continue
        seen.add(cell.key)
        records = [*summary.evidence.get(cell.key, ()), *new.get(cell.key, ())]
        if not records:
            continue
        ended, said = ended_as(records)
        flaky_fails = {FLAKY, Status.REGRESSED, Status.PASSED} & set(fail_on)
        if (ended == FLAKY and flaky_fails) or ended in fail_on:
            failed.append((said, str(ended), cell.key not in new, cell.id))
            records_of.setdefault(cell.id, records)
    missing = summary.not_run_cells if Status.NOT_RUN in fail_on else []
    if not (failed or missing):
        return None
    if failed:
        cell_id, why = failed[0][3], failed[0][0].reason
        if failed[0][1] == FLAKY:
            # a flaky cell fails for its disagreement, which its last reason alone hides
            why = f"{_counts(records_of[cell_id])}; newest regression: {why}"
    else:
        cell_id, why = missing[0][0].id, missing[0][1]
    named = f"{excerpt(cell_id, 100)} ({excerpt(why, 120)})"
    kinds = {e for _, e, _, _ in failed} | ({Status.NOT_RUN.value} if missing else set())
    reused = sum(1 for _, _, old, _ in failed if old)
    flaky = sum(1 for _, e, _, _ in failed if e == FLAKY)
    notes = [f"{reused} of them reused from earlier runs"] if reused else []
    notes += [f"{flaky} flaky: passed and regressed in their records"] if flaky else []
    return CellsFailed(
        f"{len(failed) + len(missing)} cell(s) ended {'/'.join(sorted(kinds))}"
        + (f" ({'; '.join(notes)})" if notes else "")
        + f": {named}"
    )


def ended_as(records: Sequence[Result]) -> tuple[Status | str, Result]:
    """What a cell's records say together, and the record that says it, as the report
    weighs them (`winner.evidence`): flaky when they passed and regressed (said by the
    newest regression: its reason is why the cell fails), else what the record with the
    best evidence says, the newest among equals: a verdict is never hidden by a later
    record that could not test (a timeout, an error), which the report shows under it."""
    if {Status.PASSED, Status.REGRESSED} <= {r.status for r in records}:
        regressions = [r for r in records if r.status is Status.REGRESSED]
        # Equal times: the record read later is the newer (as `records.latest_by_key`).
        return FLAKY, max(reversed(regressions), key=lambda r: recency(r.finished))
    best = max(reversed(records), key=lambda r: (evidence(r), recency(r.finished)))
    return best.status, best


def flaky_line(summary: RunSummary) -> str | None:
    """The cells whose records that count here passed and regressed, with how many of
    each: the run's counts are of records, and a flaky cell's are those of one steady pass
    and one steady regression (the report and `--fail-on` call it flaky; so does this)."""
    new = by_key(summary.results)
    named: list[str] = []
    for key in dict.fromkeys([*summary.evidence, *new]):
        records = [*summary.evidence.get(key, ()), *new.get(key, ())]
        if records and ended_as(records)[0] == FLAKY:
            # Named as the cell's own records name it, not as a bisection's run of it does.
            own = [r for r in records if r.key == key] or records
            named.append(f"{excerpt(own[-1].cell_id, 100)} ({_counts(records)})")
    if not named:
        return None
    more = f" and {len(named) - 3} more" if len(named) > 3 else ""
    return (
        f"{len(named)} cell(s) flaky (passed and regressed in their records): "
        + ", ".join(named[:3])
        + more
    )


def _counts(records: Sequence[Result]) -> str:
    """How many of a cell's records passed and how many regressed."""
    passed = sum(r.status is Status.PASSED for r in records)
    regressed = sum(r.status is Status.REGRESSED for r in records)
    return f"{passed} passed, {regressed} regressed"
