"""A bisection over real cells: candidates, stored evidence, and an evaluator for the loop.

The algorithm is the pure `bisect.Bisector` driven by `bisect.run`; this module supplies
what it evaluates: the candidates and the shape of their history (`candidates.Axis`), a
cell per candidate, the runs the store already holds (every record of the cell's key, so
a second bisection starts from all the evidence, and a flaky history is seen as flaky),
and an evaluator that makes a round's runs through `Session.run_cells`: one fresh record
per run asked, so a repeat is a new run and every run is an ordinary stored result.

Each regressed run is compared with the bad end's failure (`Setup.judge`): a different
failure is a skip, and it is reported. Output is `report/bisect.py`.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from repromatrix.bisect import Bisector, Outcome, Progress, Tally, Trace, Verdict
from repromatrix.bisect_aliases import LazyCells, aliases_of, machines_apart, made_at, may_hold
from repromatrix.bisect_axis import axis_of
from repromatrix.bisect_machines import Elsewhere, made_elsewhere, said, search
from repromatrix.bisect_plan import (
    BisectRequest,
    Setup,
    base_of,
    calibration,
    make_setup,
    points_per_round,
)
from repromatrix.candidates import Axis, Candidate
from repromatrix.config import Matrix
from repromatrix.errors import BisectError
from repromatrix.fingerprints import check_shapes
from repromatrix.gitrepo import Mirrors
from repromatrix.model import Cell, Status
from repromatrix.records import Result
from repromatrix.session import Session
from repromatrix.timestamps import recency
from repromatrix.upstream_test import with_test_file


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


@dataclass(kw_only=True)
class BisectRun:
    """Everything a bisection found, for the outputs in `report/bisect.py`."""

    setup: Setup
    axis: Axis
    evaluated: dict[int, Evaluated]
    outcome: Outcome
    trace: Trace
    points_per_round: int
    results_path: Path
    #: The bad end's failure, which the bisection followed ("" when unknown).
    reference: str = ""
    #: Why the search was calibrated from the start ("" when it was not, or was asked to).
    calibrated_because: str = ""
    #: Candidates whose stored records disagree only between machines: the split, as the
    #: report words it (`bisect_aliases.machines_apart`); this machine's alone were taken.
    machines_apart: dict[int, str] = field(default_factory=dict)
    #: Candidates with only other machines' stored runs, and those set aside (run here).
    elsewhere: Elsewhere = field(default_factory=Elsewhere)

    @property
    def candidates(self) -> Sequence[Candidate]:
        return self.axis.candidates

    @property
    def fresh(self) -> int:
        return sum(1 for e in self.evaluated.values() for r in e.runs if not r.reused)


#: Called once a round's verdicts are in: (round number, its evaluations, progress, the
#: candidates).
RoundCallback = Callable[[int, Sequence[Evaluated], Progress, Sequence[Candidate]], None]
#: Called once before the first round: (setup, axis, stored runs, K, why calibrated).
StartCallback = Callable[[Setup, Axis, int, int, str], None]


@dataclass(kw_only=True)
class _Evaluator:
    """Runs a round's cells through the session (the I/O of the loop) and judges them."""

    session: Session
    setup: Setup
    candidates: Sequence[Candidate]
    cells: Sequence[Cell]
    evaluated: dict[int, Evaluated]
    bisector: Bisector
    run_id: str
    reference: str = ""
    elsewhere: Elsewhere = field(default_factory=Elsewhere)

    @property
    def bad_end(self) -> int:
        return 0 if self.setup.bad_end_is_old else len(self.candidates) - 1

    def set_aside(self, i: int) -> None:
        """`i`'s stored runs, only other machines', are no evidence here: it runs here."""
        entry = self.evaluated.pop(i)
        self.elsewhere.set_apart(i, said(entry.tally, self.setup.old_term, self.setup.new_term))
        self.bisector.forget(i)

    def __call__(self, points: Sequence[int]) -> list[Verdict]:
        wanted = Counter(points)
        for i in [i for i in wanted if i in self.elsewhere.only]:
            self.set_aside(i)  # run here: its own runs, not theirs beside them, say it
        cells = [self.cells[i] for i in wanted]
        # rerun: exactly the runs asked for are made (the store's earlier ones are already
        # counted as evidence), so a repeat is a new run, not a reused one.
        summary = self.session.run_cells(
            cells,
            rerun=True,
            run_id=self.run_id,
            repeat={self.cells[i].key: n for i, n in wanted.items()},
        )
        if summary.interrupted:
            raise Interrupted
        if summary.lost is not None:  # a full disk, an engine gone: not the commit's doing
            raise summary.lost_error()
        if summary.not_run_cells:
            cell, why = summary.not_run_cells[0]
            raise BisectError(f"cannot evaluate {cell.id} on this host: {why}")
        fresh: dict[str, list[Result]] = {}
        for r in summary.results:
            if r.status.is_final:
                fresh.setdefault(r.key, []).append(r)
        for i, n in wanted.items():
            got = fresh.get(self.cells[i].key, [])
            if len(got) < n:
                raise BisectError(f"no result came back for {self.cells[i].id}; rerun to continue")
            entry = self.evaluated.setdefault(i, Evaluated(index=i, candidate=self.candidates[i]))
            for result in got[:n]:
                entry.runs.append(Run(result=result, verdict=Verdict.SKIP, reused=False))
        self._rejudge(wanted)
        out: list[Verdict] = []
        taken: Counter[int] = Counter()
        for i in points:
            # This round's runs are the last `wanted[i]` of the entry, in order.
            runs = self.evaluated[i].runs[-wanted[i] :]
            out.append(runs[taken[i]].verdict)
            taken[i] += 1
        return out

    def _rejudge(self, wanted: Mapping[int, int]) -> None:
        """Judge this round's runs; when the bad end's failure becomes known (or changes),
        re-judge the older ones and tell the bisector (a regression among them may be a
        different failure)."""
        reference = failure_of(self.evaluated.get(self.bad_end))
        changed = reference != self.reference
        self.reference = reference
        for i, entry in self.evaluated.items():
            if not changed and i not in wanted:
                continue
            older = len(entry.runs) - wanted.get(i, 0)
            before = [r.verdict for r in entry.runs[:older]]
            entry.runs = [rejudged(self.setup, r, reference) for r in entry.runs]
            after = [r.verdict for r in entry.runs[:older]]
            if after != before:
                self.bisector.retally(i, after)


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


def bisect(
    request: BisectRequest,
    matrix: Matrix,
    session: Session,
    *,
    on_start: StartCallback | None = None,
    on_round: RoundCallback | None = None,
) -> BisectRun:
    """Set up, take the stored evidence, and run rounds until the bisector is done.

    Raises `Interrupted` on Ctrl-C (evaluations so far are stored) and `BisectError` when a
    cell cannot run here.
    """
    setup = make_setup(request, matrix)
    mirrors = Mirrors(session.config.git_root, session.config.sources.git_mirrors)
    axis = axis_of(request, setup, mirrors, session)
    if axis.olds_given:  # several old ends: those no other one reaches, in their order
        setup = dataclasses.replace(setup, old=axis.olds_given[0], also_old=axis.olds_given[1:])
    candidates = axis.candidates
    if request.test:
        setup = with_test_file(request, setup, mirrors)
    cells = LazyCells(setup, candidates)
    evaluated: dict[int, Evaluated] = {}
    apart: dict[int, str] = {}
    elsewhere = Elsewhere()
    history = session.history()
    aliases = aliases_of(setup, candidates, mirrors if axis.commits else None, history)
    looked_at = may_hold(setup, candidates, history, aliases)
    if not request.rerun:
        evaluated = _stored(
            candidates,
            cells,
            history,
            aliases,
            request.retry_errors,
            base_of(session),
            timeout_s=session.config.timeout_s,
            setup=setup,
            machine=(session.host.machine.id, session.host.hostname),
            apart=apart,
            indices=looked_at,
            elsewhere=elsewhere,
        )
    # The keys of cells with no record are in no key the store holds: not needed here.
    own = {cells[i].key for i in looked_at} | {a.key for v in aliases.values() for a in v}
    calibrate, because = calibration(request, setup, history, own)
    bad_end = 0 if setup.bad_end_is_old else len(candidates) - 1
    reference = failure_of(evaluated.get(bad_end))
    for entry in evaluated.values():
        entry.runs = [rejudged(setup, r, reference) for r in entry.runs]
    tallies = {i: e.tally for i, e in evaluated.items()}
    for i, j in elsewhere.contradicted(axis.dag, tallies).items():  # ours say otherwise
        elsewhere.set_apart(i, said(evaluated.pop(i).tally, setup.old_term, setup.new_term), j)
    bisector = Bisector(
        axis.dag,
        {i: [r.verdict for r in e.runs] for i, e in evaluated.items()},
        policy=request.policy(calibrate),
        age=axis.ages,
        old_ends=axis.old_ends,
        bases=bool(axis.parted_from),
        ids=[c.rev for c in candidates] if axis.commits else (),
    )
    k = points_per_round(setup, session)
    if on_start is not None:
        on_start(setup, axis, sum(len(e.runs) for e in evaluated.values()), k, because)
    evaluator = _Evaluator(
        session=session,
        setup=setup,
        candidates=candidates,
        cells=cells,
        evaluated=evaluated,
        bisector=bisector,
        run_id=session.new_run_id(prefix="bisect-"),
        reference=reference,
        elsewhere=elsewhere,
    )

    def round_done(number: int, points: Sequence[int]) -> None:
        if on_round is not None:
            unique = list(dict.fromkeys(points))
            on_round(number, [evaluated[i] for i in unique], bisector.progress(), candidates)

    outcome, trace = search(
        bisector, evaluator, evaluator.set_aside, elsewhere, k=k, on_round=round_done
    )
    return BisectRun(
        setup=setup,
        axis=axis,
        evaluated=evaluated,
        outcome=outcome,
        trace=trace,
        points_per_round=k,
        results_path=session.store.path,
        reference=evaluator.reference,
        calibrated_because=because,
        machines_apart=apart,
        elsewhere=elsewhere,
    )


def _stored(
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
    apart: dict[int, str] | None = None,
    indices: Sequence[int] | None = None,
    elsewhere: Elsewhere | None = None,
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
    """
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
                and made_at(r, setup, candidates[i])
            ]
        records, split = machines_apart(records, same_keys, *machine)
        if split and apart is not None:
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
            runs=[Run(result=r, verdict=Verdict.SKIP, reused=True) for r in records],
        )
    return evaluated
