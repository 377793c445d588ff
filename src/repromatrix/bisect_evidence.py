"""What a bisection knows of a candidate: its runs (`Run`, `Evaluated`), each judged
against the bad end's failure (`rejudged`, `failure_of`), and the runs the store already
holds of it (`stored`): every record of its cell's key, from the base it would run on now.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from repromatrix.bisect_aliases import machines_apart, made_at
from repromatrix.bisect_machines import Elsewhere, made_elsewhere
from repromatrix.bisect_plan import Setup
from repromatrix.candidates import Candidate
from repromatrix.fingerprints import check_shapes
from repromatrix.flaky import Tally, Verdict
from repromatrix.model import Cell, Pin, Status
from repromatrix.records import Result
from repromatrix.splits import Split
from repromatrix.timestamps import recency


class Interrupted(Exception):
    """Ctrl-C during a round: finished evaluations are stored; rerun to continue."""


@dataclass(frozen=True, kw_only=True)
class Run:
    """One run of one candidate and what it said."""

    result: Result
    verdict: Verdict
    #: Found in the store before this bisection started.
    reused: bool
    #: Regressed, but with a different failure than the bad end's (counted as a skip).
    different: bool = False


@dataclass(kw_only=True)
class Evaluated:
    index: int
    candidate: Candidate
    runs: list[Run] = field(default_factory=list)

    @property
    def result(self) -> Result:
        """The newest run's record."""
        return self.runs[-1].result

    @property
    def tally(self) -> Tally:
        return Tally.of([r.verdict for r in self.runs])

    @property
    def reused(self) -> bool:
        return all(r.reused for r in self.runs)

    @property
    def different(self) -> bool:
        """Every informative run failed differently from the bad end."""
        return any(r.different for r in self.runs) and not self.tally.informative


def rejudged(setup: Setup, run: Run, reference: str) -> Run:
    verdict, different = setup.judge(run.result, reference)
    return dataclasses.replace(run, verdict=verdict, different=different)


def failure_of(entry: Evaluated | None) -> str:
    """The failure most of the bad end's regressed runs show ("" when none does), as its
    newest run of it words it. Runs are counted by their checks with the values quoted in
    them made one (`check_shapes`): counted by their text, five runs quoting five values
    were outnumbered by two crashes of one message, and the search followed the crash."""
    if entry is None:
        return ""
    failures = [r.result.failure for r in entry.runs if r.result.status is Status.REGRESSED]
    shapes = [frozenset(check_shapes(f)) for f in failures]
    seen = Counter(shapes)
    newest = dict(zip(shapes, failures, strict=True))  # a later run's text replaces
    return max(newest.items(), key=lambda kv: (seen[kv[0]], kv[1]), default=((), ""))[1]


def stored(
    candidates: Sequence[Candidate],
    cells: Sequence[Cell],
    history: Mapping[str, Sequence[Result]],
    aliases: Mapping[int, tuple[Cell, ...]],
    retry_errors: bool,
    base: Callable[[Cell], str | None] = lambda cell: None,
    *,
    timeout_s: float | None = None,
    setup: Setup | None = None,
    machine: tuple[str, str] = ("", ""),
    apart: dict[int, Split] | None = None,
    indices: Sequence[int] | None = None,
    elsewhere: Elsewhere | None = None,
    this_run: tuple[str, bool] = ("", False),
    files: Callable[[Pin], str] | None = None,
) -> dict[int, Evaluated]:
    """Every final record the store holds for these candidates (own key or an alias), made
    on the base the cell would run on now (from any machine: a verdict of the same
    interpreter or image and variables; records from before bases were recorded count).

    All of them, not the newest: two stored runs that disagree are evidence that the
    repro is flaky, and a bisection that kept only one would hide it. A timeout shorter
    than the cell's timeout now (`timeout_s`: --timeout) says nothing, as for `run`.
    Records that disagree only between machines are no flaky repro: only those of this
    `machine` (id, hostname) count, and `apart` gets the split (`machines_apart`).
    Only the candidates `indices` names are looked at (`may_hold`; all by default).
    `this_run` (its id, whether alone): records it made are fresh, not reused.
    `files`: a PyPI pin's files in the folders now (`made_at`: a run of others is not its).
    """
    run_id, alone = this_run
    evaluated: dict[int, Evaluated] = {}
    for i in range(len(cells)) if indices is None else indices:
        cell = cells[i]
        records: list[Result] = []
        # One read per key: a commit declared by its full hash pins the candidate's own
        # cell, whose records read again would be repeats that never ran.
        same_keys = {same.key: same for same in (*aliases.get(i, ()), cell)}
        for same in same_keys.values():
            here = base(same)
            records += [
                r
                for r in history.get(same.key, ())
                if r.status.is_final
                and (here is None or r.base_fingerprint in ("", here))
                and made_at(r, setup, candidates[i], same, files)
                and (not alone or r.run_id == run_id)
            ]
        records, split = machines_apart(records, same_keys, *machine)
        if split is not None and apart is not None:
            apart[i] = split
        if retry_errors:
            records = [r for r in records if r.status not in (Status.ERROR, Status.TIMEOUT)]
        limit = timeout_s or cell.timeout_s
        records = [
            r for r in records if r.status is not Status.TIMEOUT or r.duration_s >= 0.9 * limit
        ]
        if not records:
            continue
        if elsewhere is not None and (only := made_elsewhere(records, *machine)):
            elsewhere.only[i] = only  # `bisect_machines`: evidence until ours says otherwise
        records.sort(key=lambda r: recency(r.finished))  # stable: equal times stay in stored order
        evaluated[i] = Evaluated(
            index=i,
            candidate=candidates[i],
            runs=[
                Run(result=r, verdict=Verdict.SKIP, reused=not run_id or r.run_id != run_id)
                for r in records
            ],
        )
    return evaluated
