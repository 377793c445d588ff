"""A bisection over real cells: candidates, stored verdicts, and an evaluator for the loop.

The algorithm is the pure `bisect.Bisector` driven by `bisect.run`; this module supplies
what it evaluates: the candidates (commits from the library's mirror, or declared
releases), a cell per candidate, the verdicts the store already holds (so a second
bisection is free and an interrupted one resumes), and an evaluator that runs a round's
cells through `Session.run_cells`, so every evaluation is an ordinary stored result.
Output (text and Markdown) is `report/bisect.py`.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from repromatrix.bisect import Bisector, Outcome, Trace, Verdict, run
from repromatrix.bisect_plan import BisectRequest, Setup, make_setup
from repromatrix.candidates import Candidate, commit_candidates, release_candidates, resolve
from repromatrix.config import Matrix
from repromatrix.errors import BisectError, UsageError
from repromatrix.gitrepo import GitError, Mirrors
from repromatrix.model import Cell, SourceKind, Status
from repromatrix.records import Result
from repromatrix.scheduler import new_run_id
from repromatrix.session import Session


class Interrupted(Exception):
    """Ctrl-C during a round: finished evaluations are stored; rerun to continue."""


@dataclass(kw_only=True)
class Evaluated:
    index: int
    candidate: Candidate
    result: Result
    verdict: Verdict
    #: Found in the store before this bisection started.
    reused: bool


@dataclass(kw_only=True)
class BisectRun:
    """Everything a bisection found, for the outputs in `report/bisect.py`."""

    setup: Setup
    candidates: Sequence[Candidate]
    evaluated: dict[int, Evaluated]
    outcome: Outcome
    trace: Trace
    points_per_round: int
    results_path: Path

    @property
    def fresh(self) -> int:
        return sum(1 for e in self.evaluated.values() if not e.reused)


#: Called once a round's verdicts are in: (round number, its evaluations, live interval).
RoundCallback = Callable[[int, Sequence[Evaluated], tuple[int, int]], None]
#: Called once before the first round: (setup, candidates, reused count, K, are commits).
StartCallback = Callable[[Setup, Sequence[Candidate], int, int, bool], None]


@dataclass(kw_only=True)
class _Evaluator:
    """Runs the cells of a round's candidates through the session (the I/O of the loop)."""

    session: Session
    setup: Setup
    candidates: Sequence[Candidate]
    cells: Sequence[Cell]
    evaluated: dict[int, Evaluated]
    retry_errors: bool
    run_id: str

    def __call__(self, points: Sequence[int]) -> Mapping[int, Verdict]:
        summary = self.session.run_cells(
            [self.cells[i] for i in points], run_id=self.run_id, retry_errors=self.retry_errors
        )
        if summary.interrupted:
            raise Interrupted
        if summary.not_run_cells:
            cell, why = summary.not_run_cells[0]
            raise BisectError(f"cannot evaluate {cell.id} on this host: {why}")
        got = {r.key: r for r in [*summary.reused_results, *summary.results]}
        verdicts: dict[int, Verdict] = {}
        for i in points:
            result = got.get(self.cells[i].key)
            if result is None:
                raise BisectError(f"no result came back for {self.cells[i].id}; rerun to continue")
            verdict = self.setup.verdict(result.status)
            verdicts[i] = verdict
            self.evaluated[i] = Evaluated(
                index=i, candidate=self.candidates[i], result=result, verdict=verdict, reused=False
            )
        return verdicts


def bisect(
    request: BisectRequest,
    matrix: Matrix,
    session: Session,
    *,
    on_start: StartCallback | None = None,
    on_round: RoundCallback | None = None,
) -> BisectRun:
    """Set up, reuse stored verdicts, and run rounds until the bisector is done.

    Raises `Interrupted` on Ctrl-C (evaluations so far are stored) and `BisectError` when a
    cell cannot run here.
    """
    setup = make_setup(request, matrix)
    mirrors = Mirrors(session.config.git_root, session.config.sources.git_mirrors)
    candidates, are_commits = _candidates(request, setup, mirrors)
    if request.test:
        setup = _with_test_file(request, setup, mirrors)
    cells = [setup.cell(setup.pin(c)) for c in candidates]
    existing = session.existing()
    aliases = _aliases(setup, candidates, mirrors if are_commits else None)
    evaluated = _reuse(setup, candidates, cells, existing, aliases, request.retry_errors)
    bisector = Bisector(len(candidates), {i: e.verdict for i, e in evaluated.items()})
    k = _points_per_round(setup, session)
    if on_start is not None:
        on_start(setup, candidates, len(evaluated), k, are_commits)
    evaluator = _Evaluator(
        session=session,
        setup=setup,
        candidates=candidates,
        cells=cells,
        evaluated=evaluated,
        retry_errors=request.retry_errors,
        run_id=f"bisect-{new_run_id(session.host.hostname)}",
    )

    def round_done(number: int, points: Sequence[int]) -> None:
        if on_round is not None:
            on_round(number, [evaluated[i] for i in points], bisector.bounds())

    outcome, trace = run(bisector, evaluator, k=k, on_round=round_done)
    return BisectRun(
        setup=setup,
        candidates=candidates,
        evaluated=evaluated,
        outcome=outcome,
        trace=trace,
        points_per_round=k,
        results_path=session.store.path,
    )


def _reuse(
    setup: Setup,
    candidates: Sequence[Candidate],
    cells: Sequence[Cell],
    existing: Mapping[str, Result],
    aliases: Mapping[int, tuple[str, ...]],
    retry_errors: bool,
) -> dict[int, Evaluated]:
    """Verdicts the store already holds for these candidates (their own key or an alias)."""
    evaluated: dict[int, Evaluated] = {}
    for i, cell in enumerate(cells):
        prev = existing.get(cell.key)
        if prev is None or not prev.status.is_final:
            prev = next(
                (
                    existing[k]
                    for k in aliases.get(i, ())
                    if k in existing and existing[k].status.is_final
                ),
                None,
            )
        if prev is None or not prev.status.is_final:
            continue
        if retry_errors and prev.status in (Status.ERROR, Status.TIMEOUT):
            continue
        evaluated[i] = Evaluated(
            index=i,
            candidate=candidates[i],
            result=prev,
            verdict=setup.verdict(prev.status),
            reused=True,
        )
    return evaluated


def _candidates(
    request: BisectRequest, setup: Setup, mirrors: Mirrors
) -> tuple[list[Candidate], bool]:
    """The candidates, and whether they are commits (else releases)."""
    lib = setup.library
    declared_pypi = {rv.label for rv in lib.revisions if rv.kind is SourceKind.PYPI} | {
        rv.rev for rv in lib.revisions if rv.kind is SourceKind.PYPI
    }
    source = request.source
    if source == "auto":
        both = setup.old in declared_pypi and setup.new in declared_pypi
        source = "pypi" if (both and lib.pypi) or lib.git is None else "git"
    if source == "pypi":
        if request.test:
            raise UsageError(
                "--test runs the library's own tests from a checkout: use --source git"
            )
        if request.first_parent:
            raise UsageError("--first-parent applies to commits, not releases")
        return release_candidates(lib, setup.old, setup.new), False
    return (
        commit_candidates(mirrors, lib, setup.old, setup.new, first_parent=request.first_parent),
        True,
    )


def _with_test_file(request: BisectRequest, setup: Setup, mirrors: Mirrors) -> Setup:
    if not request.test_from:
        return setup
    assert setup.library.git is not None
    repo = mirrors.repo(setup.library.name, setup.library.git)
    path = str(request.test).split("::", 1)[0]
    sha = resolve(repo, request.test_from)
    try:
        content = repo.show(sha, path)
    except GitError as exc:
        raise BisectError(f"cannot read {path} at {request.test_from}: {exc}") from None
    params = dict(setup.repro.params)
    params["test_file_b64"] = base64.b64encode(content.encode()).decode()
    params["test_from"] = sha
    return dataclasses.replace(setup, repro=dataclasses.replace(setup.repro, params=params))


def _aliases(
    setup: Setup, candidates: Sequence[Candidate], mirrors: Mirrors | None
) -> dict[int, tuple[str, ...]]:
    """Keys of matrix cells that pin the same commit under its declared name.

    A matrix run of `fla=7336d0cf` pins rev '7336d0cf', a bisection pins the full sha: two
    keys for one commit. Reading both lets a bisection start from what the matrix knows.
    """
    lib = setup.library
    if mirrors is None or lib.git is None:
        return {}
    declared = [rv for rv in lib.revisions if rv.kind is SourceKind.GIT]
    if not declared:
        return {}
    repo = mirrors.repo(lib.name, lib.git)
    shas = repo.resolve_many([rv.rev for rv in declared])
    index = {c.rev: i for i, c in enumerate(candidates)}
    out: dict[int, tuple[str, ...]] = {}
    for rv in declared:
        i = index.get(shas.get(rv.rev, ""))
        if i is None:
            continue
        key = setup.cell(lib.pin(rv)).key
        out[i] = (*out.get(i, ()), key)
    return out


def _points_per_round(setup: Setup, session: Session) -> int:
    """K: CPU repros use --jobs; GPU repros min(--jobs, GPUs of that type x --per-gpu)."""
    jobs = session.config.jobs
    gpu = setup.matrix.gpus[setup.gpu]
    if gpu.is_cpu:
        return jobs
    slots = len(session.host.gpus_of_type(gpu)) * session.config.per_gpu
    return max(1, min(jobs, slots)) if slots else 1
