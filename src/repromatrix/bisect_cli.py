"""`repromatrix bisect`: candidates from git (or releases), verdicts from ordinary cells.

Thin shell around the pure `bisect.Bisector`: every evaluation is a cell run through
`Session.run_cells`, so it lands in the result store like any matrix cell; before asking
for new points the verdicts the store already holds are fed in, which makes a second
bisection over the same commits free and an interrupted one resume where it stopped.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from repromatrix.bisect import Bisector, Outcome, OutcomeKind, Verdict
from repromatrix.envs import EnvCache
from repromatrix.errors import BisectError, ExitCode, UsageError
from repromatrix.gitlog import (
    Candidate,
    commit_candidates,
    release_candidates,
    resolve,
    resolve_many,
    show_file,
)
from repromatrix.matrix import Matrix, _did_you_mean, _script_digest, load_matrix, make_cell
from repromatrix.model import (
    HOST_BASE,
    Cell,
    Library,
    Pin,
    Repro,
    Result,
    SourceKind,
    Status,
)
from repromatrix.runner import Session
from repromatrix.scheduler import new_run_id

#: The repro that runs one test of a library's own suite (`--test`).
UPSTREAM_SCRIPT = "upstream_pytest.py"
UPSTREAM_REPRO = "upstream_pytest"


def add_parser(
    sub: Any, *, run_options: Callable[[argparse.ArgumentParser], None]
) -> argparse.ArgumentParser:
    """The `bisect` subcommand (called from cli.build_parser)."""
    p: argparse.ArgumentParser = sub.add_parser(
        "bisect",
        help="find the commit (or release) where a repro's verdict changes",
        description="Bisect a library's commits between two revisions with a repro (or one "
        "of the library's own tests) as the verdict. Every evaluation is stored as an "
        "ordinary result: rerunning resumes, and matrix runs and reports reuse them.",
    )
    p.add_argument("repro", nargs="?", metavar="REPRO", help="repro name from matrix.yaml")
    p.add_argument("--library", required=True, metavar="NAME", help="library to bisect")
    p.add_argument("--good", required=True, metavar="REV", help="revision without the bug")
    p.add_argument("--bad", required=True, metavar="REV", help="revision with the bug")
    p.add_argument(
        "--find-fix",
        action="store_true",
        help="find the first commit that FIXED it: --bad is the older end, --good the newer",
    )
    p.add_argument("--gpu", metavar="TYPE", help="GPU type (default: the repro's only one)")
    p.add_argument("--image", metavar="BASE", help="base: image name or 'host' (default: first)")
    p.add_argument(
        "--first-parent",
        action="store_true",
        help="follow only the first parent of merges (merge-heavy histories)",
    )
    p.add_argument(
        "--source",
        choices=["auto", "git", "pypi"],
        default="auto",
        help="bisect commits (git) or declared releases (pypi); auto picks releases when "
        "both ends are declared PyPI versions",
    )
    p.add_argument(
        "--with",
        dest="with_pins",
        action="append",
        default=[],
        metavar="NAME=REV",
        help="pin for another library the repro spans (repeatable)",
    )
    p.add_argument(
        "--test",
        metavar="PATH::NODE",
        help="use this pytest node of the library's own test suite as the verdict",
    )
    p.add_argument(
        "--test-from",
        metavar="REV",
        help="take the --test file from this revision (a test added with the fix)",
    )
    p.add_argument(
        "--test-skip-init",
        metavar="PKG",
        default="",
        help="register PKG without running its __init__ before collecting the --test "
        "(old fla trees import transformers models from fla/__init__.py)",
    )
    p.add_argument(
        "--retry-errors",
        action="store_true",
        help="evaluate again commits whose stored result is an error or a timeout",
    )
    p.add_argument("--markdown", type=Path, metavar="PATH", help="write a Markdown summary")
    p.add_argument("--no-progress", action="store_true", help="plain lines instead of a bar")
    run_options(p)
    return p


# -- the plan: what is bisected, on which cells ---------------------------------------------


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

    @property
    def old_term(self) -> str:
        return "bad" if self.find_fix else "good"

    @property
    def new_term(self) -> str:
        return "good" if self.find_fix else "bad"

    def verdict(self, status: Status) -> Verdict:
        match status:
            case Status.PASSED:
                return Verdict.NEW if self.find_fix else Verdict.OLD
            case Status.REGRESSED:
                return Verdict.OLD if self.find_fix else Verdict.NEW
            case _:
                return Verdict.SKIP

    def pin(self, candidate: Candidate) -> Pin:
        lib = self.library
        if candidate.revision is not None and candidate.kind is SourceKind.PYPI:
            return lib.pin(candidate.revision)
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


def _setup(args: argparse.Namespace, matrix: Matrix) -> Setup:
    if args.library not in matrix.libraries:
        hint = _did_you_mean(args.library, matrix.libraries) or ""
        raise UsageError(
            f"--library {args.library}: not in {matrix.path.name}{hint}; "
            f"known: {', '.join(matrix.libraries)}"
        )
    library = matrix.libraries[args.library]
    if args.test_from and not args.test:
        raise UsageError("--test-from needs --test PATH::NODE")
    if args.test:
        if args.repro:
            raise UsageError(f"give either REPRO ({args.repro}) or --test, not both")
        repro = _upstream_repro(args, matrix, library)
    else:
        if not args.repro:
            raise UsageError("name the REPRO to bisect with, or pass --test PATH::NODE")
        if args.repro not in matrix.repros:
            hint = _did_you_mean(args.repro, matrix.repros) or ""
            raise UsageError(
                f"repro '{args.repro}' is not in {matrix.path.name}{hint}; "
                f"known: {', '.join(matrix.repros)}"
            )
        repro = matrix.repros[args.repro]
        if library.name not in repro.libraries:
            spans = ", ".join(repro.libraries) or "no library"
            raise UsageError(
                f"repro '{repro.name}' does not span library '{library.name}' (it spans "
                f"{spans}); add it to repros.{repro.name}.libraries"
            )
    others: dict[str, Pin] = {}
    for item in args.with_pins:
        name, sep, rev = item.partition("=")
        if not sep or name not in matrix.libraries:
            raise UsageError(f"--with {item}: write NAME=REV for a library in matrix.yaml")
        other = matrix.libraries[name]
        try:
            others[name] = other.pin(other.revision(rev))
        except KeyError:
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
    base = args.image or repro.bases[0]
    if base not in repro.bases and not args.test:
        raise UsageError(f"--image {base}: repro '{repro.name}' runs on {', '.join(repro.bases)}")
    if base not in matrix.bases:
        raise UsageError(f"--image {base}: not a base in {matrix.path.name}")
    gpu = args.gpu or _default_gpu(repro)
    if gpu not in matrix.gpus:
        hint = _did_you_mean(gpu, matrix.gpus) or ""
        raise UsageError(f"--gpu {gpu}: not a GPU type in {matrix.path.name}{hint}")
    if gpu not in repro.gpus and not args.test:
        raise UsageError(f"--gpu {gpu}: repro '{repro.name}' runs on {', '.join(repro.gpus)}")
    old, new = (args.bad, args.good) if args.find_fix else (args.good, args.bad)
    return Setup(
        matrix=matrix,
        library=library,
        repro=repro,
        base=base,
        gpu=gpu,
        others=others,
        find_fix=args.find_fix,
        old=old,
        new=new,
    )


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


def _upstream_repro(args: argparse.Namespace, matrix: Matrix, library: Library) -> Repro:
    node: str = args.test
    path = node.split("::", 1)[0]
    if not path or path.startswith("/") or ".." in Path(path).parts:
        raise UsageError(f"--test {node}: give a path inside the library's repository")
    script = _upstream_script(matrix)
    params: dict[str, Any] = {
        "test": node,
        "library": library.name,
        "import_name": library.import_name,
    }
    # The file's content (not just REV) goes into the params, hence into every cell's key.
    params["test_file_b64"] = ""
    params["test_from"] = ""
    params["skip_init"] = args.test_skip_init
    gpu = args.gpu or "cpu"
    base = args.image or HOST_BASE
    return Repro(
        name=UPSTREAM_REPRO,
        script=script,
        script_digest=_script_digest(script),
        issue=None,
        description=f"{library.name} upstream test {node}",
        gpus=(gpu,),
        bases=(base,),
        libraries={},
        timeout_s=1800.0,
        params=params,
    )


# -- running ------------------------------------------------------------------------------


@dataclass(kw_only=True)
class Evaluated:
    index: int
    candidate: Candidate
    result: Result
    verdict: Verdict
    #: Found in the store before this bisection started.
    reused: bool


def command(args: argparse.Namespace) -> int:
    from repromatrix.cli import session_config
    from repromatrix.progress import make_reporter

    matrix = load_matrix(args.matrix)
    setup = _setup(args, matrix)
    config = session_config(args)
    session = Session(config, env=os.environ, reporter=make_reporter(plain=args.no_progress))
    out = sys.stdout

    candidates, envs = _candidates(args, setup, session)
    if args.test:
        setup = _with_test_file(args, setup, envs)
    cells = [setup.cell(setup.pin(c)) for c in candidates]
    n = len(candidates)

    existing = session.existing()
    for problem in session.load_problems:
        print(f"repromatrix: warning: {problem}", file=sys.stderr)
    aliases = _aliases(setup, candidates, envs)
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
        if args.retry_errors and prev.status in (Status.ERROR, Status.TIMEOUT):
            continue
        evaluated[i] = Evaluated(
            index=i,
            candidate=candidates[i],
            result=prev,
            verdict=setup.verdict(prev.status),
            reused=True,
        )
    bisector = Bisector(n, {i: e.verdict for i, e in evaluated.items()})
    k = _points_per_round(args, setup, session)
    what = "releases" if candidates[0].kind is SourceKind.PYPI else "commits"
    print(
        f"bisect {setup.repro.name} [{setup.gpu}, {setup.base}] {setup.library.name} "
        f"{setup.old}..{setup.new}: {n} {what}, {len(evaluated)} already evaluated, "
        f"{k} point(s) per round; looking for the first {setup.new_term} one",
        file=out,
        flush=True,
    )
    run_id = f"bisect-{new_run_id(session.host.hostname)}"
    rounds = 0
    while not bisector.done:
        points = bisector.next_points(k)
        summary = session.run_cells(
            [cells[i] for i in points], run_id=run_id, retry_errors=args.retry_errors
        )
        if summary.interrupted:
            print(
                "repromatrix: bisect interrupted; finished evaluations are stored: run the "
                "same command again to continue",
                file=sys.stderr,
            )
            return int(ExitCode.INTERRUPTED)
        if summary.not_run_cells:
            cell, why = summary.not_run_cells[0]
            raise BisectError(f"cannot evaluate {cell.id} on this host: {why}")
        got = {r.key: r for r in [*summary.reused_results, *summary.results]}
        rounds += 1
        notes = []
        for i in points:
            result = got.get(cells[i].key)
            if result is None:
                raise BisectError(f"no result came back for {cells[i].id}; rerun to continue")
            verdict = setup.verdict(result.status)
            bisector.record(i, verdict)
            evaluated[i] = Evaluated(
                index=i, candidate=candidates[i], result=result, verdict=verdict, reused=False
            )
            notes.append(f"{candidates[i].label} {result.status.value}")
        lo, hi = bisector.bounds()
        print(
            f"round {rounds}: {', '.join(notes)}; {max(hi - lo - 1, 0)} candidate(s) left",
            file=out,
            flush=True,
        )
    outcome = bisector.result()
    report = _Report(setup=setup, candidates=candidates, evaluated=evaluated, outcome=outcome)
    report.text(out)
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(report.markdown())
    fresh = sum(1 for e in evaluated.values() if not e.reused)
    print(
        f"repromatrix: {fresh} evaluation(s) in {rounds} round(s), "
        f"{len(evaluated) - fresh} reused; results in {session.store.path}",
        file=sys.stderr,
    )
    if not outcome.ok:
        raise BisectError(report.problem())
    return 0


def _candidates(
    args: argparse.Namespace, setup: Setup, session: Session
) -> tuple[list[Candidate], EnvCache | None]:
    lib = setup.library
    declared_pypi = {rv.label for rv in lib.revisions if rv.kind is SourceKind.PYPI} | {
        rv.rev for rv in lib.revisions if rv.kind is SourceKind.PYPI
    }
    source = args.source
    if source == "auto":
        both = setup.old in declared_pypi and setup.new in declared_pypi
        source = "pypi" if (both and lib.pypi) or lib.git is None else "git"
    if source == "pypi":
        if args.test:
            raise UsageError(
                "--test runs the library's own tests from a checkout: use --source git"
            )
        if args.first_parent:
            raise UsageError("--first-parent applies to commits, not releases")
        return release_candidates(lib, setup.old, setup.new), None
    envs = EnvCache(session.config.cache, session.interpreter, session.config.sources)
    return (
        commit_candidates(envs, lib, setup.old, setup.new, first_parent=args.first_parent),
        envs,
    )


def _with_test_file(args: argparse.Namespace, setup: Setup, envs: EnvCache | None) -> Setup:
    if not args.test_from:
        return setup
    assert envs is not None
    assert setup.library.git is not None
    repo = envs.mirror(setup.library.name, setup.library.git)
    path = str(args.test).split("::", 1)[0]
    sha = resolve(repo, args.test_from)
    content = show_file(repo, sha, path)
    params = dict(setup.repro.params)
    params["test_file_b64"] = base64.b64encode(content).decode()
    params["test_from"] = sha
    return dataclasses.replace(setup, repro=dataclasses.replace(setup.repro, params=params))


def _aliases(
    setup: Setup, candidates: Sequence[Candidate], envs: EnvCache | None
) -> dict[int, tuple[str, ...]]:
    """Keys of matrix cells that pin the same commit under its declared name.

    A matrix run of `fla=7336d0cf` pins rev '7336d0cf', a bisection pins the full sha: two
    keys for one commit. Reading both lets a bisection start from what the matrix knows.
    """
    lib = setup.library
    if envs is None or lib.git is None:
        return {}
    declared = [rv for rv in lib.revisions if rv.kind is SourceKind.GIT]
    if not declared:
        return {}
    repo = envs.mirror(lib.name, lib.git)
    shas = resolve_many(repo, [rv.rev for rv in declared])
    index = {c.rev: i for i, c in enumerate(candidates)}
    out: dict[int, tuple[str, ...]] = {}
    for rv in declared:
        i = index.get(shas.get(rv.rev, ""))
        if i is None:
            continue
        key = setup.cell(lib.pin(rv)).key
        out[i] = (*out.get(i, ()), key)
    return out


def _points_per_round(args: argparse.Namespace, setup: Setup, session: Session) -> int:
    """K: CPU repros use --jobs; GPU repros min(--jobs, GPUs of that type x --per-gpu)."""
    jobs = int(args.jobs)
    gpu = setup.matrix.gpus[setup.gpu]
    if gpu.is_cpu:
        return jobs
    slots = len(session.host.gpus_of_type(gpu)) * session.config.per_gpu
    return max(1, min(jobs, slots)) if slots else 1


# -- output -------------------------------------------------------------------------------


@dataclass(kw_only=True)
class _Report:
    setup: Setup
    candidates: Sequence[Candidate]
    evaluated: Mapping[int, Evaluated]
    outcome: Outcome

    def _describe(self, c: Candidate) -> str:
        if c.kind is SourceKind.PYPI:
            return f"{self.setup.library.name} {c.label}"
        return f"{c.rev} {c.subject!r} ({c.author}, {c.committed[:10]})"

    def headline(self) -> list[str]:
        o, s = self.outcome, self.setup
        term = "first fixed" if s.find_fix else "first bad"
        what = "release" if self.candidates[0].kind is SourceKind.PYPI else "commit"
        if o.kind is OutcomeKind.FOUND:
            assert o.first_new is not None
            return [f"{term} {what}: {self._describe(self.candidates[o.first_new])}"]
        if o.kind is OutcomeKind.AMBIGUOUS:
            lines = [
                f"{term} {what} is one of {len(o.suspects)} (the others could not be evaluated):"
            ]
            for i in o.suspects:
                e = self.evaluated.get(i)
                why = f" [{e.result.status.value}: {e.result.reason}]" if e else ""
                lines.append(f"  {self._describe(self.candidates[i])}{why}")
            return lines
        return [self.problem()]

    def problem(self) -> str:
        o, s = self.outcome, self.setup
        end = o.end if o.end is not None else 0
        e = self.evaluated.get(end)
        c = self.candidates[end]
        given = s.old if end == 0 else s.new
        flag = (
            ("--bad" if s.find_fix else "--good")
            if end == 0
            else ("--good" if s.find_fix else "--bad")
        )
        said = f"{e.result.status.value}: {e.result.reason}" if e else "no result"
        match o.kind:
            case OutcomeKind.OLD_END_IS_NEW | OutcomeKind.NEW_END_IS_OLD:
                expected = s.old_term if end == 0 else s.new_term
                if end != 0:
                    hint = f"pick a newer {flag}"
                elif s.find_fix:  # the bug is not there yet at the old end
                    hint = f"pick a later {flag}, where the regression is present"
                else:
                    hint = f"pick an older {flag}, from before the regression"
                return (
                    f"{flag} {given} ({c.label}) is not {expected}: the repro says {said}; {hint}"
                )
            case OutcomeKind.END_SKIPPED:
                return (
                    f"{flag} {given} ({c.label}) could not be evaluated ({said}); fix that "
                    f"or pick another {flag}"
                )
            case _:
                return "bisection finished"

    def rows(self) -> list[tuple[str, ...]]:
        out: list[tuple[str, ...]] = []
        for i in sorted(self.evaluated):
            e = self.evaluated[i]
            c = e.candidate
            mark = ""
            if self.outcome.ok and i == self.outcome.first_new and len(self.outcome.suspects) == 1:
                mark = "◀ first fixed" if self.setup.find_fix else "◀ first bad"
            out.append(
                (
                    str(i),
                    c.label,
                    c.committed[:10],
                    e.result.status.value,
                    (self.setup.new_term if e.verdict is Verdict.NEW else self.setup.old_term)
                    if e.verdict is not Verdict.SKIP
                    else "skip",
                    _metrics(e.result),
                    ("(stored) " if e.reused else "") + _clip(e.result.reason),
                    mark,
                )
            )
        return out

    def text(self, out: TextIO) -> None:
        for line in self.headline():
            print(line, file=out)
        header = ("#", "revision", "date", "status", "verdict", "metrics", "reason", "")
        rows = self.rows()
        widths = [max(len(r[j]) for r in [header, *rows]) for j in range(len(header))]
        print(file=out)
        for r in [header, *rows]:
            print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip(), file=out)
        out.flush()

    def markdown(self) -> str:
        s = self.setup
        lines = [
            f"# Bisect: {s.repro.name} on {s.gpu} / {s.base}",
            "",
            f"- library: **{s.library.name}**, {len(self.candidates)} candidates from "
            f"`{s.old}` ({s.old_term}) to `{s.new}` ({s.new_term})",
            f"- evaluated: {len(self.evaluated)} "
            f"({sum(1 for e in self.evaluated.values() if e.reused)} reused from the store)",
            "",
        ]
        lines += [ln if ln.startswith("  ") else f"**{ln}**" for ln in self.headline()]
        lines += ["", "| # | revision | date | status | verdict | metrics | reason |"]
        lines.append("|---|---|---|---|---|---|---|")
        for r in self.rows():
            cells = [v.replace("|", "\\|") for v in r[:7]]
            if r[7]:
                cells[1] = f"**{cells[1]}**"
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


def _clip(text: str, width: int = 90) -> str:
    """Keep both ends of a long reason: pip and pytest put the cause last."""
    if len(text) <= width:
        return text
    return f"{text[: width // 3]}…{text[-(width - width // 3 - 1) :]}"


def _metrics(result: Result, limit: int = 3) -> str:
    """The metrics that have thresholds first (those decide the verdict), then the rest."""
    names = [n for n in result.thresholds if n in result.metrics]
    names += [n for n in result.metrics if n not in names]
    parts = []
    for name in names[:limit]:
        value = result.metrics[name]
        parts.append(f"{name}={'nan' if value is None else f'{value:.3g}'}")
    return " ".join(parts)


__all__ = ["add_parser", "command"]
