"""What a bisection is about: the request, checked against the matrix, as a `Setup`.

`make_setup` turns the user's request into the cells to evaluate (one per candidate): the
repro (or a library's own test, `--test`), the base, the GPU type, and the pins of the
other libraries it spans; every mistake is a one-line `UsageError` naming the fix.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from repromatrix.bisect import Policy, Verdict
from repromatrix.candidate_releases import release_revision
from repromatrix.candidates import Candidate
from repromatrix.config import Matrix, script_digest
from repromatrix.config.messages import did_you_mean
from repromatrix.errors import UsageError
from repromatrix.expand import make_cell, same_revision
from repromatrix.fingerprints import checks_pass, same_failure
from repromatrix.model import (
    HOST_BASE,
    Cell,
    Library,
    Pin,
    Repro,
    Revision,
    SourceKind,
    Status,
)
from repromatrix.options import ExecutorKind
from repromatrix.records import Result
from repromatrix.session import Session
from repromatrix.upstream_test_file import file_param

#: The repro that runs one test of a library's own suite (`--test`).
UPSTREAM_SCRIPT = "upstream_pytest.py"
UPSTREAM_REPRO = "upstream_pytest"


@dataclass(frozen=True, kw_only=True)
class BisectRequest:
    """What the user asked to bisect (the `bisect` command's arguments)."""

    repro: str | None
    library: str
    good: str
    bad: str
    #: More old ends (`--good A --good B`, as git bisect takes several good revisions).
    also_old: tuple[str, ...] = ()
    find_fix: bool = False
    gpu: str | None = None
    image: str | None = None
    first_parent: bool = False
    #: Releases: pre-releases between the ends are candidates too (pip's --pre).
    pre: bool = False
    source: str = "auto"
    with_pins: Sequence[str] = ()
    test: str | None = None
    test_from: str | None = None
    test_skip_init: str = ""
    retry_errors: bool = False
    #: Fresh runs only: stored results are not taken as evidence.
    rerun: bool = False
    #: Runs of each end before the search (0: only once verdicts contradict each other;
    #: None: the repro's own `calibrate:`, else what the stored results say).
    calibrate: int | None = None
    #: The answer's probability a calibrated search stops at.
    confidence: float = 0.99
    #: Most runs of one candidate.
    max_runs: int = 20

    def policy(self, calibrate: int) -> Policy:
        return Policy(confidence=self.confidence, calibrate=calibrate, max_runs=self.max_runs)


@dataclass(frozen=True, kw_only=True)
class Setup:
    matrix: Matrix
    library: Library
    repro: Repro
    base: str
    gpu: str
    #: Pins of the other libraries the repro spans (fixed during the bisection).
    others: Mapping[str, Pin]
    find_fix: bool
    #: The old end (index 0) and new end as the user wrote them.
    old: str
    new: str
    #: More old ends, as written (nodes 1.. of the axis, after `old`).
    also_old: tuple[str, ...] = ()

    @property
    def olds(self) -> str:
        """Every old end as the user wrote them ("v1, side~1")."""
        return ", ".join((self.old, *self.also_old))

    def old_end(self, index: int) -> str:
        """The old end at node `index` as the user wrote it (`old` for a merge base)."""
        return (self.old, *self.also_old)[index] if index <= len(self.also_old) else self.old

    @property
    def old_term(self) -> str:
        return "bad" if self.find_fix else "good"

    @property
    def new_term(self) -> str:
        return "good" if self.find_fix else "bad"

    @property
    def bad_end_is_old(self) -> bool:
        """Which end shows the regression: the old one when looking for its fix."""
        return self.find_fix

    def verdict(self, status: Status) -> Verdict:
        match status:
            case Status.PASSED:
                return Verdict.NEW if self.find_fix else Verdict.OLD
            case Status.REGRESSED:
                return Verdict.OLD if self.find_fix else Verdict.NEW
            case _:
                return Verdict.SKIP

    def judge(self, result: Result, reference: str) -> tuple[Verdict, bool]:
        """(verdict, whether it is a different failure than `reference`, the bad end's).

        A regression whose fingerprint shares no failed check with the bad end's is
        another bug: it says nothing about this one (it may hide it), so it is a skip,
        and the bisection keeps following the original failure (syzkaller's bisections
        drift onto other crashes without this check).
        """
        if result.status is Status.REGRESSED and not same_failure(result.failure, reference):
            # Measured and within its limits, the followed check says this failure is
            # absent here (the other one fails): a verdict, not a skip.
            if checks_pass(reference, result.metrics, result.thresholds):
                return self.verdict(Status.PASSED), True
            return Verdict.SKIP, True
        return self.verdict(result.status), False

    def pin(self, candidate: Candidate) -> Pin:
        lib = self.library
        if candidate.kind is SourceKind.PYPI:
            # Undeclared releases get a revision of their own; declared ones keep theirs
            # (same pin, same key: a matrix run's result is reused).
            return lib.pin(release_revision(candidate))
        assert lib.git is not None, "commit candidates exist only for git libraries"
        # Deterministic: the same commit always gives the same pin, hence the same key.
        return Pin(
            library=lib.name,
            kind=SourceKind.GIT,
            source=lib.git,
            rev=candidate.rev,
            label=candidate.label,
            install=lib.install,
            import_name=lib.import_name,
            requires=lib.requires,
        )

    def cell(self, pin: Pin) -> Cell:
        names = list(self.repro.libraries) or [self.library.name]
        pins = tuple(pin if n == self.library.name else self.others[n] for n in names)
        return make_cell(self.matrix, self.repro, self.base, self.gpu, pins)


def make_setup(request: BisectRequest, matrix: Matrix) -> Setup:
    """The request checked against the matrix; a one-line UsageError for any mistake."""
    if request.library not in matrix.libraries:
        name = request.library.partition("=")[0].rstrip("<>!~")
        if name != request.library and name in matrix.libraries:  # `run`'s NAME=REV form
            raise UsageError(
                f"--library {request.library}: bisect takes the library's name (--library "
                f"{name}); give the ends with --good and --bad"
            )
        hint = did_you_mean(request.library, matrix.libraries) or ""
        known = ", ".join(matrix.libraries) or f"none: {matrix.path.name} declares no libraries"
        raise UsageError(
            f"--library {request.library}: not in {matrix.path.name} (known: {known}){hint}"
        )
    library = matrix.libraries[request.library]
    repro = _repro(request, matrix, library)
    others = _other_pins(request, matrix, repro, library)
    base, gpu = _where(request, matrix, repro)
    old, new = (request.bad, request.good) if request.find_fix else (request.good, request.bad)
    return Setup(
        matrix=matrix,
        library=library,
        repro=repro,
        base=base,
        gpu=gpu,
        others=others,
        find_fix=request.find_fix,
        old=old,
        new=new,
        also_old=request.also_old,
    )


def source_of(request: BisectRequest, setup: Setup) -> str:
    """ "git" or "pypi": what `--source` says, else (auto) releases when both ends are
    declared PyPI versions, in any spelling of theirs (`1.0.0` for a declared `1.0`: the
    same release, which sent the search to git), or the library has no git source."""
    lib = setup.library
    if request.source != "auto":
        return request.source
    both = declared_release(lib, setup.old) and declared_release(lib, setup.new)
    return "pypi" if (both and lib.pypi) or lib.git is None else "git"


def declared_release(library: Library, end: str) -> Revision | None:
    """The PyPI release of `library` that matrix.yaml declares and `end` names, in any
    spelling of it (`1.0.0` for a declared `1.0`); None when none."""
    # A `v1.0` is left to git: a tag, as `git describe` names them.
    as_version = _version(end) if end[:1].isdigit() else None
    for rv in library.revisions:
        if rv.kind is SourceKind.PYPI and (
            end in (rv.rev, rv.label) or (as_version is not None and _version(rv.rev) == as_version)
        ):
            return rv
    return None


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _repro(request: BisectRequest, matrix: Matrix, library: Library) -> Repro:
    """The repro that gives the verdicts: a declared one, or the library's own test."""
    for flag, given in (
        ("--test-from", request.test_from),
        ("--test-skip-init", request.test_skip_init),
    ):
        if given and not request.test:
            raise UsageError(f"{flag} needs --test PATH::NODE")
    if request.test:
        if request.repro:
            raise UsageError(f"give either REPRO ({request.repro}) or --test, not both")
        return _upstream_repro(request, matrix, library)
    if not request.repro:
        raise UsageError("name the REPRO to bisect with, or pass --test PATH::NODE")
    if request.repro not in matrix.repros:
        hint = did_you_mean(request.repro, matrix.repros) or ""
        raise UsageError(
            f"repro '{request.repro}' is not in {matrix.path.name} "
            f"(known: {', '.join(matrix.repros)}){hint}"
        )
    repro = matrix.repros[request.repro]
    if library.name not in repro.libraries:
        spans = ", ".join(repro.libraries) or "no library"
        raise UsageError(
            f"repro '{repro.name}' does not span library '{library.name}' (it spans "
            f"{spans}); add it to repros.{repro.name}.libraries"
        )
    return repro


def _other_pins(
    request: BisectRequest, matrix: Matrix, repro: Repro, library: Library
) -> dict[str, Pin]:
    """The pins (`--with NAME=REV`) of the other libraries the repro spans."""
    others: dict[str, Pin] = {}
    for item in request.with_pins:
        name, sep, rev = item.partition("=")
        if not sep or name not in matrix.libraries:
            raise UsageError(f"--with {item}: write NAME=REV for a library in {matrix.path.name}")
        if name == library.name:
            raise UsageError(f"--with {item}: {name} is the library bisected; drop it")
        if name not in repro.libraries:
            spans = ", ".join(n for n in repro.libraries if n != library.name) or "no other"
            raise UsageError(
                f"--with {item}: repro '{repro.name}' does not span {name} (it spans {spans}); "
                "drop it"
            )
        if name in others:
            raise UsageError(f"--with {name}: given twice; keep one")
        other = matrix.libraries[name]
        # Any spelling of a declared revision, as `run --library NAME=REV` takes it (its
        # own spelling first).
        pins = sorted((other.pin(r) for r in other.revisions), key=lambda p: p.rev != rev)
        try:
            others[name] = next(p for p in pins if same_revision(p, rev))
        except StopIteration:
            raise UsageError(
                f"--with {item}: '{rev}' is not declared for {name}; add it to "
                f"libraries.{name}.versions"
            ) from None
    missing = [n for n in repro.libraries if n != library.name and n not in others]
    if missing:
        raise UsageError(
            f"repro '{repro.name}' also spans {', '.join(missing)}: fix each with "
            f"--with {missing[0]}=REV"
        )
    return others


def _where(request: BisectRequest, matrix: Matrix, repro: Repro) -> tuple[str, str]:
    """(base, GPU type) of the cells; an upstream test may run on any of the matrix's."""
    base = request.image or repro.bases[0]
    if base not in repro.bases and not request.test:
        raise UsageError(f"--image {base}: repro '{repro.name}' runs on {', '.join(repro.bases)}")
    if base not in matrix.bases:
        raise UsageError(f"--image {base}: not a base in {matrix.path.name}")
    gpu = request.gpu or _default_gpu(repro)
    if gpu not in matrix.gpus:
        hint = did_you_mean(gpu, matrix.gpus) or ""
        raise UsageError(f"--gpu {gpu}: not a GPU type in {matrix.path.name}{hint}")
    if gpu not in repro.gpus and not request.test:
        raise UsageError(f"--gpu {gpu}: repro '{repro.name}' runs on {', '.join(repro.gpus)}")
    return base, gpu


def _default_gpu(repro: Repro) -> str:
    if len(repro.gpus) == 1:
        return repro.gpus[0]
    raise UsageError(
        f"repro '{repro.name}' runs on several GPU types ({', '.join(repro.gpus)}); "
        "choose one with --gpu"
    )


def _upstream_script(matrix: Matrix) -> Path:
    """repros/upstream_pytest.py beside the matrix, else the one of this source tree."""
    here = Path(__file__).resolve().parents[2] / "repros" / UPSTREAM_SCRIPT
    for path in (matrix.root / "repros" / UPSTREAM_SCRIPT, here):
        if path.is_file():
            return path.resolve()
    raise UsageError(
        f"--test needs repros/{UPSTREAM_SCRIPT} beside {matrix.path.name}; copy it there "
        "from the repromatrix sources"
    )


def _upstream_repro(request: BisectRequest, matrix: Matrix, library: Library) -> Repro:
    node = request.test or ""
    path = node.split("::", 1)[0]
    if not path or path.startswith("/") or ".." in Path(path).parts:
        raise UsageError(f"--test {node}: give a path inside the library's repository")
    if "::" in node and "" in node.partition("::")[2].partition("[")[0].split("::"):
        raise UsageError(f"--test {node}: a '::' names no test; give PATH::TEST, or PATH alone")
    script = _upstream_script(matrix)
    params: dict[str, Any] = {
        "test": node,
        "library": library.name,
        "import_name": library.import_name,
    }
    # The file's digest (not just REV) goes into the params, hence into every cell's key.
    params[file_param(script)] = ""
    params["test_from"] = ""
    params["skip_init"] = request.test_skip_init
    gpu = request.gpu or "cpu"
    base = request.image or HOST_BASE
    return Repro(
        name=UPSTREAM_REPRO,
        script=script,
        script_digest=script_digest(script),
        issue=None,
        description=f"{library.name} upstream test {node}",
        gpus=(gpu,),
        bases=(base,),
        libraries={},
        timeout_s=1800.0,
        params=params,
    )


def points_per_round(setup: Setup, session: Session) -> int:
    """K: CPU repros use --jobs; GPU repros min(--jobs, GPUs of that type x --per-gpu),
    the cluster's GPUs under --executor ray."""
    jobs = session.config.jobs
    gpu = setup.matrix.gpus[setup.gpu]
    if gpu.is_cpu:
        return session.cpu_jobs()  # no more than the cluster's CPUs under --executor ray
    slots = session.slots(gpu)
    if session.config.executor is ExecutorKind.RAY and not session.config.jobs_given:
        return max(1, slots)  # the cluster's slots, not this driver's CPUs
    return max(1, min(jobs, slots)) if slots else 1


def base_of(session: Session) -> Callable[[Cell], str | None]:
    """The base a cell would run on now (`Executor.base_fingerprint`: interpreter or image,
    `--cell-env`, the commits git names stand for); None when no executor here runs it."""

    def fingerprint(cell: Cell) -> str | None:
        chosen = session.choose(cell)
        return None if isinstance(chosen, str) else chosen.base_fingerprint(cell)

    return fingerprint
