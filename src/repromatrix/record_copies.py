"""One run of a cell is one record, however many files hold it (a results file copied
into a subfolder, one folder passed twice): the copies are left out of a load.

A record is known by its run, key, host, machine, times and verdict, and the name and slot
the harness gave it (two `--repeat` runs in two slots may share every time to the
millisecond); records without a run id or start time (made by hand) are never taken as
copies. That whole identity is built only for records that share a key, run id and start
with one read before: a load of 100,000 records, none a copy, built 100,000 of them (0.1 s
of the report's critical path) to find none.
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import attrgetter

from repromatrix.records import Result

#: What a copy shares with its original, first (one C call a record).
_RUN = attrgetter("key", "run_id", "started")


class Copies:
    """The records read so far, across the files and sources of one load."""

    def __init__(self) -> None:
        # Key, run id and start → the one record read with them (its identity not built),
        # or the identities of each read with them, once two were.
        self._runs: dict[tuple[str, str, str], Result | set[tuple[object, ...]]] = {}

    def drop(self, results: Iterable[Result]) -> list[Result]:
        """`results` without the copies of a record read before (in an earlier call, or
        earlier in `results`)."""
        runs = self._runs
        kept = []
        for r in results:
            run = _RUN(r)
            if run[1] and run[2]:
                before = runs.get(run)
                if before is None:
                    runs[run] = r
                else:
                    if not isinstance(before, set):
                        before = runs[run] = {identity(before)}
                    mine = identity(r)
                    if mine in before:
                        continue
                    before.add(mine)
            kept.append(r)
        return kept


def identity(r: Result) -> tuple[object, ...]:
    """What makes two records one run (see the module's docstring)."""
    harness = r.provenance.get("harness")
    made = (harness.get("record"), harness.get("slot")) if isinstance(harness, dict) else ()
    return (r.key, r.run_id, r.started, r.finished, r.host, r.machine.id,
            r.status, r.duration_s, r.exit_code, *map(str, made))  # fmt: skip
