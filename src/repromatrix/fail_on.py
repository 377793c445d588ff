"""`run --fail-on STATUSES`: whether the cells a run selected fail it (exit 1), and why.

A cell reused from an earlier run ends as its record says (a CI job that resumes a run
must fail on the regression the first attempt stored); a flaky cell (records that passed
and regressed) fails `regressed`, as junit.xml fails it; a cell this host could not run
fails `not_run`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from repromatrix.errors import CellsFailed
from repromatrix.model import Cell, Status
from repromatrix.records import Result
from repromatrix.safetext import excerpt
from repromatrix.scheduler import RunSummary
from repromatrix.store import by_key


def failure(
    summary: RunSummary,
    stored: Mapping[str, Sequence[Result]],
    cells: Sequence[Cell],
    fail_on: Collection[Status],
) -> CellsFailed | None:
    """The error that ends the run with exit 1, or None when no selected cell matched."""
    bad = [r for r in summary.results if r.status in fail_on]
    reused = [r for r in summary.reused_results if r.status in fail_on]
    flaky = _flaky(summary, stored, cells) if Status.REGRESSED in fail_on else []
    missing = summary.not_run_cells if Status.NOT_RUN in fail_on else []
    if not (bad or reused or flaky or missing):
        return None
    if bad or reused or flaky:
        first = (bad or reused or flaky)[0]
        cell_id, why = first.cell_id, first.reason
    else:
        cell_id, why = missing[0][0].id, missing[0][1]
    named = f"{excerpt(cell_id, 100)} ({excerpt(why, 120)})"
    ended = {r.status.value for r in [*bad, *reused]} | ({"flaky"} if flaky else set())
    ended |= {Status.NOT_RUN.value} if missing else set()
    return CellsFailed(
        f"{len(bad) + len(reused) + len(flaky) + len(missing)} cell(s) ended "
        f"{'/'.join(sorted(ended))}"
        + (f" ({len(reused)} of them reused from earlier runs)" if reused else "")
        + (f" ({len(flaky)} flaky: passed and regressed in their records)" if flaky else "")
        + f": {named}"
    )


def _flaky(
    summary: RunSummary, stored: Mapping[str, Sequence[Result]], cells: Sequence[Cell]
) -> list[Result]:
    """The newest record of each selected cell that passed although its records (stored
    and new) disagree: junit.xml fails such a cell, and so does `--fail-on regressed`."""
    out = []
    new = by_key(summary.results)
    for cell in cells:
        mine = [*stored.get(cell.key, ()), *new.get(cell.key, ())]
        statuses = {r.status for r in mine}
        if {Status.PASSED, Status.REGRESSED} <= statuses and mine[-1].status is Status.PASSED:
            out.append(mine[-1])
    return out
