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
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from repromatrix.bisect import Bisector, Outcome, Progress, Trace, Verdict
from repromatrix.bisect_aliases import LazyCells, aliases_of, declared_twins, may_hold
from repromatrix.bisect_axis import axis_of
from repromatrix.bisect_calibration import calibration
from repromatrix.bisect_evidence import Evaluated, Interrupted, Run, failure_of, rejudged
from repromatrix.bisect_evidence import stored as _stored
from repromatrix.bisect_forks import assumed, checked, fork_below, named_of, run_fork, stored_forks
from repromatrix.bisect_machines import Elsewhere, said, search
from repromatrix.bisect_plan import (
    BisectRequest,
    Setup,
    base_of,
    make_setup,
    points_per_round,
)
from repromatrix.bisect_terms import Mode
from repromatrix.candidates import Axis, Candidate
from repromatrix.config import Matrix
from repromatrix.errors import BisectError
from repromatrix.mirrors import Mirrors
from repromatrix.model import Cell
from repromatrix.options import ExecutorKind
from repromatrix.records import Result
from repromatrix.release_digest import ReleaseFiles
from repromatrix.run_summary import BISECT_RUN_PREFIX
from repromatrix.session import Session
from repromatrix.splits import Split
from repromatrix.upstream_test import with_test_file

_log = logging.getLogger("repromatrix.bisect")


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
    machines_apart: dict[int, Split] = field(default_factory=dict)
    #: Candidates with only other machines' stored runs, and those set aside (run here).
    elsewhere: Elsewhere = field(default_factory=Elsewhere)
    #: Commits run off the final axis: fork points, branches they left out (`bisect_forks`).
    off_axis: tuple[Evaluated, ...] = ()

    @property
    def candidates(self) -> Sequence[Candidate]:
        return self.axis.candidates

    @property
    def fresh(self) -> int:
        return sum(1 for r in self._runs() if not r.reused)

    @property
    def reused(self) -> int:
        return sum(1 for r in self._runs() if r.reused)

    def _runs(self) -> list[Run]:
        return [r for e in (*self.evaluated.values(), *self.off_axis) for r in e.runs]


#: Called once a round's verdicts are in: (round number, its evaluations, progress, the
#: candidates).
RoundCallback = Callable[[int, Sequence[Evaluated], Progress, Sequence[Candidate]], None]


@dataclass(frozen=True, kw_only=True)
class Start:
    """What a bisection knows before its first round, for the line it prints."""

    setup: Setup
    axis: Axis
    #: Points per round.
    k: int
    #: Points evaluated before (their stored runs read), by `runs` runs in all.
    stored: int = 0
    runs: int = 0
    #: Why the search is calibrated from the start ("" when not, or asked to).
    because: str = ""


#: Called once before the first round.
StartCallback = Callable[[Start], None]


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
    if request.test:
        setup = with_test_file(request, setup, mirrors)
    run_id = session.new_run_id(prefix=BISECT_RUN_PREFIX)
    rounds: list[tuple[int, ...]] = []
    # The branches the store already says never had the regression leave before the
    # first search, as they left the search that ran their fork points.
    axis, forks = stored_forks(request, setup, session, mirrors, axis, run_id)
    off: list[Evaluated] = list(forks)
    while True:  # again without a branch its fork point says never had the regression
        done = _search(
            request, setup, axis, session, mirrors, run_id, on_start, on_round, len(rounds)
        )
        rounds += done.trace.rounds
        sha = fork_below(setup, done.axis, done.outcome)
        if sha is None:
            break
        end = done.evaluated.get(0 if setup.bad_end_is_old else len(done.candidates) - 1)
        trusting = done.outcome.mode is Mode.TRUSTING
        want = 1 if trusting or end is None else max(1, len(end.runs))
        tally, fresh, entry = run_fork(
            request, setup, session, mirrors, sha,
            run_id=run_id, reference=done.reference, want=want, trusting=trusting,
        )  # fmt: skip
        axis = checked(setup, done.axis, named_of(done.axis, done.outcome), sha, tally, fresh)
        gone = set(axis.forks[-1].dropped)
        off += [entry, *(e for e in done.evaluated.values() if e.candidate.rev in gone)]
        if fresh:
            rounds.append(())
            if on_round is not None:
                left = 0 if len(axis.candidates) == len(done.candidates) else len(axis.candidates)
                on_round(len(rounds), [entry], Progress(mode=Mode.TRUSTING, left=left), ())
        if len(axis.candidates) == len(done.candidates):
            done.axis = axis
            break
    done.trace.rounds, done.off_axis = rounds, tuple(off)
    # The runs of the commits it left (a branch dropped) count too: the line counted the
    # last search's alone, 7 runs where the repro ran 10 times, as stderr said.
    runs = sum(len(e.runs) for e in off)
    repeats = sum(len(e.runs) - 1 for e in off if e.runs)
    o = done.outcome
    done.outcome = dataclasses.replace(o, runs=o.runs + runs, repeats=o.repeats + repeats)
    if assumed(setup, done.axis, done.outcome):  # git's word for a parent, not a measure
        done.outcome = dataclasses.replace(done.outcome, confidence=None)
    return done


def _search(
    request: BisectRequest,
    setup: Setup,
    axis: Axis,
    session: Session,
    mirrors: Mirrors,
    run_id: str,
    on_start: StartCallback | None,
    on_round: RoundCallback | None,
    before: int,
) -> BisectRun:
    """One search of `axis`, from the stored evidence, rounds numbered after `before`
    (the first line said once)."""
    candidates = axis.candidates
    cells = LazyCells(setup, candidates)
    evaluated: dict[int, Evaluated] = {}
    apart: dict[int, Split] = {}
    elsewhere = Elsewhere()
    history = session.history()
    aliases = aliases_of(setup, candidates, mirrors if axis.commits else None, history)
    looked_at = may_hold(setup, candidates, history, aliases)
    # Each pin's files asked only where a stored run names its own.
    files = ReleaseFiles(session.config.sources.find_links, session.config.python)
    if not request.rerun or before:  # a search again (`bisect_forks`) keeps this run's
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
            this_run=(run_id, request.rerun),
            files=files,
        )
    # The keys of cells with no record are in no key the store holds: not needed here.
    own = {cells[i].key for i in looked_at} | {a.key for v in aliases.values() for a in v}
    twins = declared_twins(setup, mirrors if axis.commits else None)
    calibrate, because = calibration(request, setup, history, own, twins)
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
    if on_start is not None and not before:
        stored = sum(1 for e in evaluated.values() if e.runs)
        runs = sum(len(e.runs) for e in evaluated.values())
        on_start(Start(setup=setup, axis=axis, k=k, stored=stored, runs=runs, because=because))
    evaluator = _Evaluator(
        session=session,
        setup=setup,
        candidates=candidates,
        cells=cells,
        evaluated=evaluated,
        bisector=bisector,
        run_id=run_id,
        reference=reference,
        elsewhere=elsewhere,
    )

    def round_done(number: int, points: Sequence[int]) -> None:
        if on_round is not None:
            unique = list(dict.fromkeys(points))
            progress = bisector.progress()
            on_round(before + number, [evaluated[i] for i in unique], progress, candidates)

    outcome, trace = search(
        bisector,
        evaluator,
        evaluator.set_aside,
        elsewhere,
        k=_live_points(setup, session, k) if session.config.executor is ExecutorKind.RAY else k,
        on_round=round_done,
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


def _live_points(setup: Setup, session: Session, first: int) -> Callable[[], int]:
    """K for each round under Ray: the slots of the live nodes now. A node that left
    took its slots along, and rounds still planned `first` points for them: half of each
    round waited for a slot the other half freed (said once, when K first shrinks)."""
    said = False

    def points() -> int:
        nonlocal said
        k = min(first, points_per_round(setup, session))
        if k < first and not said:
            said = True
            _log.warning(
                "the Ray cluster's live nodes have %d slot(s) of %s left: %d point(s) per "
                "round from now on, not %d",
                k, setup.gpu, k, first,
            )  # fmt: skip
        return k

    return points
