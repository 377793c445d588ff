"""How many runs of each end a bisection takes before its search (`calibration`), and why:
asked on the command line, declared by the repro, or because the store already holds a
flaky cell of the repro (a stable one then costs nothing more)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from repromatrix.bisect import Policy
from repromatrix.bisect_plan import BisectRequest, Setup
from repromatrix.errors import UsageError
from repromatrix.expand import expand
from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.winner import machines_split


def calibration(
    request: BisectRequest,
    setup: Setup,
    history: Mapping[str, Sequence[Result]],
    own: set[str],
    twins: Mapping[str, Sequence[str]] | None = None,
) -> tuple[int, str]:
    """Runs of each end before the search, and why when not asked on the command line:
    the repro's own `calibrate:`, else 5 (`Policy.auto_calibrate`) when the store holds a
    cell of this repro and GPU type whose runs disagree (passed and regressed): a cell of
    the matrix (its key names the script as it is now, so runs of a repro since made
    stable do not count), with a bisection's runs of the commit it pins (`twins`). A
    flaky repro whose lies never contradict each other in one run per commit (at one
    point a round, a false verdict looks just like a true one) is then bisected as flaky
    from the start, and a stable one costs nothing more."""
    if request.calibrate is not None:
        return request.calibrate, ""
    declared = setup.repro.calibrate
    if declared is not None:
        if declared > request.max_runs:
            raise UsageError(
                f"{setup.matrix.path.name}: repro {setup.repro.name} asks for calibrate: "
                f"{declared}, more than --max-runs {request.max_runs}; raise --max-runs or "
                "pass --calibrate"
            )
        return declared, (
            f"{setup.matrix.path.name} asks for calibrate: {declared} for {setup.repro.name}"
        )
    # The candidates' own stored runs (`own`: their keys and aliases) are not looked at
    # here: runs of one commit that disagree make the search calibrate anyway, saying
    # where ("contradicted at"). Not under --rerun, which takes none of them as evidence:
    # then they are what tells that the repro lies, under the matrix's keys or their own
    # (a bisection's runs pin the full commit, a key no matrix cell has: a --rerun of a
    # store whose ends each ran 10 times, passed and regressed, trusted one run each).
    same = (c for c in expand(setup.matrix) if c.repro == setup.repro.name)
    listed = {c.key for c in same if c.gpu.name == setup.gpu}
    keys = listed | own if request.rerun else listed - own
    both = {Status.PASSED, Status.REGRESSED}
    # A cell's runs with a bisection's of its commit (`twins`), as the report counts them.
    # Records that disagree only between machines (or GPUs), each steady, are no flaky
    # repro, as the report says ("machines disagree"): they calibrated every bisection.
    cell = {
        k: {k, *(t for t in (twins or {}).get(k, ()) if request.rerun or t not in own)}
        for k in keys
    }
    flaky = sorted(
        records[0].cell_id
        for key in keys
        if (records := [r for k in sorted(cell[key]) for r in history.get(k, ())])
        and both <= {r.status for r in records}
        and machines_split(records, cell[key]) is None
    )
    if not flaky:
        return 0, ""
    more = f" and {len(flaky) - 1} more" if len(flaky) > 1 else ""
    auto = min(Policy().auto_calibrate, request.max_runs)
    return auto, f"the results hold a flaky cell of it: {flaky[0]}{more} passed and regressed"
