"""Command line: parse, call the library, map errors to exit codes. The only sys.exit caller."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from repromatrix import __version__
from repromatrix.envs import Sources
from repromatrix.errors import CellsFailed, ExitCode, ReproMatrixError, UsageError
from repromatrix.matrix import CellFilter, Matrix, expand, load_matrix
from repromatrix.model import Cell, Result, Status
from repromatrix.runner import ExecutorKind, PullPolicy, Session, SessionConfig
from repromatrix.scheduler import RunSummary
from repromatrix.store import LoadProblem, ResultStore, latest_by_key

#: Unexpected exceptions (bugs) exit with this code after one line, never a traceback.
EXIT_INTERNAL = 70


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see --help)")


def _filters(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("selection")
    g.add_argument("--repro", action="append", default=[], metavar="NAME", help="only this repro")
    g.add_argument("--gpu", action="append", default=[], metavar="TYPE", help="only this GPU type")
    g.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="BASE",
        help="only this base (an image name from matrix.yaml, or 'host')",
    )
    g.add_argument(
        "--library",
        action="append",
        default=[],
        metavar="NAME=REV",
        help="only cells pinning NAME at REV (repeatable)",
    )
    g.add_argument("-k", dest="keyword", metavar="TEXT", help="only cells whose id contains TEXT")


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--executor",
        choices=[e.value for e in ExecutorKind],
        default="auto",
        help="where cells run: the host interpreter (local), containers (docker), "
        "or Docker for image bases when an engine is reachable (auto)",
    )
    p.add_argument("--results", type=Path, default=Path("results"), help="result store directory")
    p.add_argument(
        "--cache",
        type=Path,
        default=Path(".repromatrix"),
        help="environments, git clones and work directories",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=max(1, (os.cpu_count() or 2) // 2),
        help="parallel CPU-only cells (GPU cells get one slot per GPU)",
    )
    p.add_argument(
        "--per-gpu",
        type=int,
        default=1,
        metavar="N",
        help="cells sharing one GPU at a time (default 1: clean latencies); more "
        "helps when cells wait on JIT compilation",
    )
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="override every cell's timeout")
    p.add_argument(
        "--python",
        default=sys.executable,
        help="base interpreter of the host base (default: this one)",
    )
    p.add_argument(
        "--find-links",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="local folder of wheels/sdists for library pins (repeatable)",
    )
    p.add_argument(
        "--no-index",
        action="store_true",
        help="install pins only from --find-links folders (offline hosts)",
    )
    p.add_argument(
        "--git-mirror",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="use a local clone or bundle for a git library (offline hosts)",
    )
    p.add_argument(
        "--cell-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment variable for every cell, recorded in provenance (e.g. "
        "NVCC_APPEND_FLAGS=-static-global-template-stub=false for flashinfer 0.2.x on CUDA 13)",
    )
    p.add_argument(
        "--pull",
        choices=[x.value for x in PullPolicy],
        default="missing",
        help="Docker pull policy for base images",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="repromatrix",
        description="Reproduce numerical regressions of GPU libraries across a matrix of "
        "images x GPUs x library versions, and report where each begins and ends.",
    )
    parser.add_argument("--version", action="version", version=f"repromatrix {__version__}")
    parser.add_argument("--matrix", type=Path, default=Path("matrix.yaml"), help="matrix file")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every command run")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("validate", help="check matrix.yaml and exit")

    p = sub.add_parser("list", help="print the expanded cells")
    _filters(p)
    p.add_argument("--json", action="store_true", help="JSON array (usable as a CI job matrix)")

    p = sub.add_parser("run", help="run the selected cells and record their results")
    _filters(p)
    _run_options(p)
    p.add_argument("--rerun", action="store_true", help="run cells that already have a result")
    p.add_argument(
        "--retry-errors",
        action="store_true",
        help="run again cells whose last result is an error or a timeout",
    )
    p.add_argument(
        "--fail-on",
        default="",
        metavar="STATUSES",
        help="exit 1 if any cell ends with one of these (e.g. regressed,error)",
    )
    p.add_argument("--no-progress", action="store_true", help="plain lines instead of a bar")

    p = sub.add_parser("report", help="write the HTML/Markdown/JUnit/CSV report")
    p.add_argument(
        "--results",
        type=Path,
        action="append",
        default=[],
        help="result store directory or JSONL file (repeatable; default results/)",
    )
    p.add_argument("--out", type=Path, default=Path("reports"), help="output folder")
    p.add_argument("--title", default="repromatrix report")
    p.add_argument(
        "--readme",
        type=Path,
        metavar="PATH",
        help="also rewrite the 'Reproduced so far' table between the reproduced:begin/end "
        "markers of this Markdown file",
    )

    from repromatrix import bisect_cli

    bisect_cli.add_parser(sub, run_options=_run_options)

    p = sub.add_parser("clean", help="remove work directories and leftovers of crashed runs")
    p.add_argument("--cache", type=Path, default=Path(".repromatrix"))
    p.add_argument("--envs", action="store_true", help="also remove built environments")
    p.add_argument(
        "--docker",
        action="store_true",
        help="also remove containers and images labelled by repromatrix",
    )

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
    except ReproMatrixError as exc:
        print(f"repromatrix: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except SystemExit as exc:  # --help / --version
        return int(exc.code or 0)
    # SIGTERM (a CI job cancelled, `kill`) stops a run like Ctrl-C: running cells and their
    # containers are killed and finished results kept.
    signal.signal(signal.SIGTERM, _terminate)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(name)s: %(message)s",
    )
    try:
        return int(_dispatch(args))
    except ReproMatrixError as exc:
        print(f"repromatrix: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("repromatrix: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        # `repromatrix list | head`: the reader left; that is not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug: one line, and the way to see more
        if args.debug:
            raise
        print(
            f"repromatrix: internal error: {type(exc).__name__}: {exc} "
            "(rerun with --debug for the traceback and report it)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _dispatch(args: argparse.Namespace) -> int:
    command: str = args.command
    if command == "validate":
        matrix = load_matrix(args.matrix)
        cells = expand(matrix)
        print(
            f"{args.matrix}: ok: {len(matrix.repros)} repros, {len(matrix.gpus) - 1} GPU types, "
            f"{len(matrix.bases) - 1} images, {len(matrix.libraries)} libraries, "
            f"{len(cells)} cells"
        )
        return 0
    if command == "list":
        return _list(args)
    if command == "run":
        return _run(args)
    if command == "report":
        return _report(args)
    if command == "clean":
        return _clean(args)
    if command == "bisect":
        from repromatrix import bisect_cli

        return bisect_cli.command(args)
    raise UsageError(f"unknown command {command}")


def selection(args: argparse.Namespace, matrix: Matrix) -> CellFilter:
    libs: dict[str, tuple[str, ...]] = {}
    for item in args.library:
        name, sep, rev = item.partition("=")
        if not sep or not name or not rev:
            raise UsageError(f"--library {item}: write NAME=REV, e.g. --library flashinfer=0.2.4")
        libs[name] = (*libs.get(name, ()), rev)
    flt = CellFilter(
        repros=tuple(args.repro),
        gpus=tuple(args.gpu),
        bases=tuple(args.image),
        libraries=libs,
        keyword=args.keyword,
    )
    flt.check_against(matrix)
    return flt


def _selected(args: argparse.Namespace) -> tuple[Matrix, list[Cell]]:
    matrix = load_matrix(args.matrix)
    flt = selection(args, matrix)
    return matrix, [c for c in expand(matrix) if flt(c)]


def _list(args: argparse.Namespace) -> int:
    _, cells = _selected(args)
    if args.json:
        print(json.dumps([c.to_json() for c in cells], indent=2))
        return 0
    for c in cells:
        print(f"{c.key}  {c.id}")
    print(f"{len(cells)} cells", file=sys.stderr)
    return 0


def session_config(args: argparse.Namespace) -> SessionConfig:
    mirrors: dict[str, str] = {}
    for item in args.git_mirror:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--git-mirror {item}: write NAME=PATH, e.g. --git-mirror fla=../fla")
        mirrors[name] = path
    cell_env: dict[str, str] = {}
    for item in args.cell_env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--cell-env {item}: write NAME=VALUE")
        cell_env[name] = value
    for d in args.find_links:
        if not d.is_dir():
            raise UsageError(f"--find-links {d}: not a directory")
    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    if args.per_gpu < 1:
        raise UsageError("--per-gpu must be at least 1")
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError("--timeout must be positive")
    return SessionConfig(
        results=args.results,
        cache=args.cache,
        executor=ExecutorKind(args.executor),
        python=args.python,
        jobs=args.jobs,
        per_gpu=args.per_gpu,
        sources=Sources(
            find_links=tuple(d.resolve() for d in args.find_links),
            no_index=args.no_index,
            git_mirrors={
                k: str(Path(v).resolve()) if Path(v).exists() else v for k, v in mirrors.items()
            },
        ),
        pull=PullPolicy(args.pull),
        cell_env=cell_env,
        timeout_s=args.timeout,
        repros_dir=args.matrix.resolve().parent / "repros",
        images_dir=args.matrix.resolve().parent / "images",
    )


def _fail_on(text: str) -> set[Status]:
    out: set[Status] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            out.add(Status(part))
        except ValueError:
            known = ", ".join(s.value for s in Status)
            raise UsageError(f"--fail-on {part}: unknown status; use some of: {known}") from None
    return out


def _run(args: argparse.Namespace) -> int:
    fail_on = _fail_on(args.fail_on)
    _, cells = _selected(args)
    from repromatrix.progress import make_reporter

    reporter = make_reporter(plain=args.no_progress)
    session = Session(session_config(args), env=os.environ, reporter=reporter)
    summary = session.run_cells(cells, rerun=args.rerun, retry_errors=args.retry_errors)
    for problem in session.load_problems:
        print(f"repromatrix: warning: {problem}", file=sys.stderr)
    _print_summary(summary, session)
    if summary.interrupted:
        print(
            "repromatrix: interrupted; finished cells are kept, rerun to continue", file=sys.stderr
        )
        return int(ExitCode.INTERRUPTED)
    bad = [r for r in summary.results if r.status in fail_on]
    if bad:
        raise CellsFailed(
            f"{len(bad)} cell(s) ended {'/'.join(sorted({r.status.value for r in bad}))}: "
            f"{bad[0].cell_id} ({bad[0].reason})"
        )
    return 0


def _print_summary(summary: RunSummary, session: Session) -> None:
    counts = {s: summary.count(s) for s in Status if summary.count(s)}
    parts = [f"{n} {s.value}" for s, n in counts.items()]
    parts.append(f"{summary.reused} reused")
    parts.append(f"{summary.not_run} not run here")
    print(
        f"repromatrix: run {summary.run_id}: {', '.join(parts)}; results in {session.store.path}",
        file=sys.stderr,
    )


def _report(args: argparse.Namespace) -> int:
    from repromatrix.report import write_report

    sources = args.results or [Path("results")]
    results: list[Result] = []
    problems: list[LoadProblem] = []
    for src in sources:
        loaded = ResultStore(src).load()
        results.extend(loaded.results)
        problems.extend(loaded.problems)
    for problem in problems:
        print(f"repromatrix: warning: {problem}", file=sys.stderr)
    matrix: Matrix | None = None
    cells: list[Cell] = []
    if args.matrix.exists():
        matrix = load_matrix(args.matrix)
        cells = expand(matrix)
    paths = write_report(
        results=results,
        out_dir=args.out,
        matrix=matrix,
        cells=cells,
        title=args.title,
        load_problems=problems,
    )
    if args.readme is not None:
        from repromatrix.report import reproduced_table_markdown

        update_readme(args.readme, reproduced_table_markdown(results, matrix))
    latest = latest_by_key(results)
    print(
        f"repromatrix: report of {len(latest)} cells ({len(results)} records) written to "
        f"{paths.get('html', args.out)}",
        file=sys.stderr,
    )
    return 0


README_BEGIN = "<!-- reproduced:begin -->"
README_END = "<!-- reproduced:end -->"


def readme_section(text: str, path: Path) -> tuple[int, int]:
    begin, end = text.find(README_BEGIN), text.find(README_END)
    if begin < 0 or end < begin:
        raise UsageError(
            f"{path}: no '{README_BEGIN}' ... '{README_END}' markers; add them where the "
            "table belongs"
        )
    return begin + len(README_BEGIN), end


def update_readme(path: Path, table: str) -> None:
    """Replace the generated table between the markers, leaving the rest untouched."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--readme {path}: cannot read ({exc.strerror})") from None
    start, end = readme_section(text, path)
    path.write_text(text[:start] + "\n" + table.strip() + "\n" + text[end:], encoding="utf-8")


def _clean(args: argparse.Namespace) -> int:
    removed = []
    runs = args.cache / "runs"
    if runs.exists():
        shutil.rmtree(runs)
        removed.append(str(runs))
    if args.envs:
        for sub in ("envs", "git"):
            path = args.cache / sub
            if path.exists():
                shutil.rmtree(path)
                removed.append(str(path))
    try:
        from repromatrix.executors import docker as docker_executor
    except ImportError:  # the Docker SDK is optional: nothing of ours can be left then
        if args.docker:
            raise UsageError(
                "clean --docker needs the Docker SDK: pip install 'repromatrix[docker]'"
            ) from None
    else:
        # Containers of crashed runs always go when an engine answers; our env images only
        # with --docker (they are a cache worth keeping), which also insists on the engine.
        removed.extend(
            docker_executor.clean_leftovers(
                env=os.environ, images=args.docker, required=args.docker
            )
        )
    print(
        f"repromatrix: removed {len(removed)} item(s)"
        + (": " + ", ".join(removed) if removed else ""),
        file=sys.stderr,
    )
    return 0
