"""What each command does, once `cli.py` has parsed its arguments."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from repromatrix import arguments, caches, logs, outputs, redact, watchdog
from repromatrix import fail_on as fail_on_cells
from repromatrix.bisect_terms import OutcomeKind
from repromatrix.commit_aliases import check_one_commit_each
from repromatrix.config import Matrix, load_matrix
from repromatrix.errors import (
    BisectError,
    ExitCode,
    MissingToolError,
    OutputError,
    ResultsError,
    UsageError,
)
from repromatrix.locks import CACHE_LOCK, cache_in_use, folder_in_use, results_lock
from repromatrix.mirrors import Mirrors
from repromatrix.model import Cell, Status
from repromatrix.not_run import not_run_lines
from repromatrix.options import SessionConfig
from repromatrix.report_command import write_report
from repromatrix.run_summary import RunSummary
from repromatrix.safetext import printable
from repromatrix.session import Session
from repromatrix.stderr_lines import left_out_error, say, warn_load_problems
from repromatrix.store_witness import lost_error


def _validate(args: argparse.Namespace) -> int:
    matrix = load_matrix(args.matrix)
    cells = arguments.expand_warning(matrix)
    counts = [
        _count(len(matrix.repros), "repro"),
        _count(len(matrix.gpus) - 1, "GPU type"),  # less the implicit cpu and host
        _count(len(matrix.bases) - 1, "image"),
        _count(len(matrix.libraries), "library", "libraries"),
        _count(len(cells), "cell"),
    ]
    print(printable(f"{args.matrix}: ok: {', '.join(counts)}"))
    return 0


def _count(n: int, one: str, many: str = "") -> str:
    """ "1 repro", "2 repros": a matrix of one repro was "ok: 1 repros, ... 1 cells"."""
    return f"{n:,} {one if n == 1 else many or one + 's'}"


def _selected(args: argparse.Namespace, *, run: bool = False) -> tuple[Matrix, list[Cell]]:
    """The matrix and the cells the flags select: at least one, else exit 64 (`run`: and
    its --git-mirror names are checked)."""
    matrix = load_matrix(args.matrix)
    flt = arguments.selection(args, matrix)
    cells = arguments.expand_warning(matrix)
    flt.check_revisions(cells, matrix)
    chosen = [c for c in cells if flt(c)]
    # `list` too: its `--json` of nothing made an empty CI job matrix that passed.
    arguments.check_selected(args, len(chosen), len(cells))
    if run:
        arguments.check_mirrors(args.git_mirror, matrix)
    return matrix, chosen


def _list(args: argparse.Namespace) -> int:
    _, cells = _selected(args)
    if args.json:
        print(json.dumps([c.to_json() for c in cells], indent=2))
        return 0
    for c in cells:
        print(f"{c.key}  {c.id}")
    print(_count(len(cells), "cell"), file=sys.stderr)
    return 0


def _run(args: argparse.Namespace) -> int:
    fail_on = arguments.fail_on(args.fail_on)
    matrix, cells = _selected(args, run=True)
    from repromatrix.progress import make_reporter

    reporter = make_reporter(plain=args.no_progress)
    arguments.count("--repeat", args.repeat, arguments.MAX_REPEAT)
    config = _prepared(args)
    session = Session(config, env=os.environ, reporter=reporter)
    try:
        with _holding(config, args, session.store.path):
            session.repair_store()
            # In the claimed cache: its git/ would make an unclaimed one look like another's.
            mirrors = Mirrors(config.git_root, config.sources.git_mirrors)
            check_one_commit_each(matrix, cells, mirrors)
            summary = session.run_cells(
                cells, rerun=args.rerun, retry_errors=args.retry_errors, repeat=args.repeat
            )
    finally:
        session.close()
        # Also when the run stopped on an error: what its repair step set aside is said.
        warn_load_problems(session.load_problems)
    _print_summary(summary, session)
    failed = fail_on_cells.failure(summary, cells, fail_on)
    left_out = left_out_error(session.load_problems, "run")
    taken = _taken_records(session)
    for lost in (left_out, taken):
        if lost is not None and (summary.lost or summary.interrupted or failed):
            # Another ending's exit code wins, but what was lost is said all the same.
            say(f"repromatrix: error: {lost}")
    if summary.lost is not None:
        raise summary.lost_error()
    if summary.interrupted:
        print(
            "repromatrix: interrupted; finished cells are kept, rerun to continue "
            f"({len(summary.results)} of {session.planned} runs finished)",
            file=sys.stderr,
        )
        return int(ExitCode.INTERRUPTED)
    if failed is not None:
        raise failed
    if taken is not None:
        raise taken
    if left_out is not None:
        raise left_out
    return 0


def _taken_records(session: Session) -> ResultsError | None:
    """What another process's change to the results file during the run cost: said as a
    warning where the run put back all it took, else the error (exit 3) to end with."""
    path, tamperings = session.store.path, session.store.witness.tamperings
    for t in tamperings:
        if t.lost == 0:
            say(f"repromatrix: warning: {t.line(path)}")
    return lost_error(path, tamperings)


def _prepared(args: argparse.Namespace) -> SessionConfig:
    """The session's options; records hide the values of credential-named variables (the
    environment's and --cell-env's); logs are trimmed once recorded unless --keep-logs."""
    config = arguments.session_config(args)
    caches.check_cache(config.cache)
    outputs.check_results_outside_cache(config.results, config.cache)
    redact.remember(os.environ, config.cell_env)
    logs.keep_whole(args.keep_logs)
    return config


@contextlib.contextmanager
def _holding(config: SessionConfig, args: argparse.Namespace, file: Path) -> Iterator[None]:
    """One run per results folder (exit 9, or --wait), and per results `file` (a link
    into another folder holds that one too), and its cache kept from `clean`."""
    with (
        results_lock(
            config.results,
            file=file,
            wait=args.wait,
            waiting=lambda m: say(f"repromatrix: {m}"),
        ),
        cache_in_use(config.cache),
    ):
        yield


def _print_summary(summary: RunSummary, session: Session) -> None:
    # A cell noted "not run here" once the run had it (its Ray node lost, with none of its
    # type left) counts with those the plan noted, not as a status of its own.
    counts = {s: summary.count(s) for s in Status if summary.count(s) and s is not Status.NOT_RUN}
    parts = [f"{n} {s.value}" for s, n in counts.items()]
    failed = summary.reused_failed  # of a cell a --repeat topped up too
    retry = f" ({failed} error/timeout: --retry-errors runs them again)" if failed else ""
    not_run = summary.not_run + summary.count(Status.NOT_RUN)
    parts += [f"{summary.reused} reused{retry}", f"{not_run} not run here"]
    say(f"repromatrix: run {summary.run_id}: {', '.join(parts)}; results in {session.store.path}")
    for line in [*not_run_lines(summary.not_run_cells), fail_on_cells.flaky_line(summary)]:
        if line:
            print(f"repromatrix: {line}", file=sys.stderr)


#: Lines of the store that could not be read, said one by one up to this many.
def _remove(path: Path) -> bool:
    """Remove a folder of the cache, whatever a crash or a person left there: a link goes
    as a link (what it points to is never touched), a file as a file. OutputError when
    the cache cannot be changed (read-only); whether anything was there."""
    try:
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            path.unlink()
        elif path.exists():
            _rmtree(path)
        else:
            return False
    except OSError as exc:
        # The file that stopped it, not only its folder ("cannot remove runs" of a runs/
        # holding one immutable log sent its user looking through thousands of files).
        where = Path(exc.filename) if isinstance(exc.filename, str) else path
        shown = where.relative_to(path.parent) if where.is_relative_to(path.parent) else where
        raise OutputError(
            f"--cache {path.parent}: cannot remove {shown} ({exc.strerror or exc}); "
            "pass a cache you can write, or remove it by hand"
        ) from None
    return True


def _rmtree(path: Path) -> None:
    """`shutil.rmtree`, its error naming the path it could not remove (its own names the
    entry alone, without its folder)."""

    def failed(_func: object, where: str, exc: BaseException) -> None:
        if isinstance(exc, OSError):
            raise OSError(exc.errno, exc.strerror, where) from None
        raise exc

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=failed)
    else:
        shutil.rmtree(path, onerror=lambda f, w, info: failed(f, w, info[1]))


def _clean(args: argparse.Namespace) -> int:
    removed = []
    kept: list[str] = []
    # A --cache named but missing is a typo, not "removed 0 item(s)" at exit 0; a file
    # there (the default's name included) is no cache either.
    if args.cache.exists() and not args.cache.is_dir():
        raise UsageError(f"--cache {args.cache}: is a file, not a folder; pass the --cache "
                         "your runs used")  # fmt: skip
    if not args.cache.is_dir() and args.cache != Path(".repromatrix"):
        raise UsageError(f"--cache {args.cache}: no such folder; pass the --cache your runs used")
    # Only a folder a run or bisect used (it holds their lock): `--cache ~` keeps ~/git.
    if args.cache.is_dir() and not (args.cache / CACHE_LOCK).exists():
        raise UsageError(
            f"--cache {args.cache}: not a repromatrix cache (no {CACHE_LOCK}, which runs "
            "leave there); pass the --cache your runs used"
        )
    with cache_in_use(args.cache, alone=True):
        try:
            from repromatrix.executors import docker as docker_executor
        except ImportError:  # the Docker SDK is optional: nothing of ours can be left then
            if args.docker:
                raise MissingToolError(
                    "clean --docker needs the Docker SDK: pip install 'docker>=7.0'"
                ) from None
        else:
            # Containers of crashed runs always go when an engine answers; our env images
            # only with --docker, which insists on the engine: first, so that an engine
            # that does not answer leaves the folders too (exit 5, nothing removed).
            removed += docker_executor.clean_leftovers(
                env=os.environ, images=args.docker, required=args.docker
            )
        for sub in outputs.CLEANED if args.envs else outputs.CLEANED_ALWAYS:
            # A Ray node's cells run in Ray's workers, which hold no run's lock: their
            # workers run the program copied there, and hold that folder's own.
            if sub in ("runs", "workers") and folder_in_use(args.cache / sub):
                kept.append(str(args.cache / sub))
            elif _remove(args.cache / sub):
                removed.append(str(args.cache / sub))
    say(
        f"repromatrix: removed {len(removed)} item(s)"
        + (": " + ", ".join(removed) if removed else "")
        + (f"; kept {' and '.join(kept)}: a live Ray node's cells run there (clean "
           "again once it stops)" if kept else "")
    )  # fmt: skip
    return 0


def _bisect(args: argparse.Namespace) -> int:
    from repromatrix.bisect_evidence import Interrupted
    from repromatrix.bisect_session import bisect
    from repromatrix.progress import make_reporter
    from repromatrix.report.bisect import BisectReport, report_of
    from repromatrix.report.bisect_progress import round_line, start_line

    matrix = load_matrix(args.matrix)
    arguments.check_mirrors(args.git_mirror, matrix)
    if args.markdown is not None:  # before hours of bisecting, not after
        outputs.check_file(args.markdown, "--markdown")
        outputs.check_not_input(
            args.markdown,
            "--markdown",
            matrix=args.matrix,
            results=[args.results],
            scripts=[r.script for r in matrix.repros.values()],
        )
    config = _prepared(args)
    session = Session(config, env=os.environ, reporter=make_reporter(plain=args.no_progress))
    request = arguments.bisect_request(args)
    out = sys.stdout
    try:
        with _holding(config, args, session.store.path):
            session.repair_store()
            done = bisect(
                request,
                matrix,
                session,
                on_start=lambda start: print(start_line(start), file=out, flush=True),
                on_round=lambda *a: print(round_line(*a), file=out, flush=True),
            )
    except Interrupted:
        print(
            "repromatrix: bisect interrupted; finished evaluations are stored: run the "
            "same command again to continue",
            file=sys.stderr,
        )
        return int(ExitCode.INTERRUPTED)
    finally:
        session.close()
        warn_load_problems(session.load_problems)
    report: BisectReport = report_of(done)
    report.text(out)
    if args.markdown is not None:
        outputs.write_text(args.markdown.resolve(), report.markdown(), "--markdown")
    say(
        f"repromatrix: {done.fresh} evaluation(s) in {len(done.trace.rounds)} round(s), "
        f"{done.reused} stored run(s) reused; results in {done.results_path}"
    )
    taken = _taken_records(session)
    # A stored record it could not read was warned of and the bisection exited 0; as
    # `run` does, it ends with exit 3 once its answer is given (a bisection's own wins).
    left_out = left_out_error(session.load_problems, "bisect")
    unsure = report.unrun_parents()  # see `unrun_parents_lines`
    problem = (
        report.problem()
        if not done.outcome.ok
        else report.ambiguity()  # `git bisect run` stops non-zero too
        if done.outcome.kind is OutcomeKind.AMBIGUOUS
        else unsure[1]
        if unsure is not None
        else report.range_problem()  # releases may hide between the two: no answer
        if report.only_a_range
        else None
    )
    if problem is not None:
        for lost in (taken, left_out):
            if lost is not None:  # said, though the bisection's exit code wins
                say(f"repromatrix: error: {lost}")
        raise BisectError(problem)
    if taken is not None:
        if left_out is not None:
            say(f"repromatrix: error: {left_out}")
        raise taken
    if left_out is not None:
        raise left_out
    return 0


def _guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A command that starts processes, under the run's watchdog (see `watchdog.py`)."""

    def guarded(args: argparse.Namespace) -> int:
        with watchdog.guard():
            return command(args)

    return guarded


def _ray_node(args: argparse.Namespace) -> int:
    from repromatrix.executors.ray.cluster import checked_address, node_plan, start_node
    from repromatrix.host import CELL_PYTHON_TEXT, detect, probe_interpreter

    if args.head and args.address:  # "give --address HEAD ..., or --head" was said of both
        raise UsageError(
            "ray-node: --head starts a cluster's head, --address HEAD joins one: give one"
        )
    if not (args.head or args.address):
        raise UsageError("ray-node: give --address HEAD to join a cluster, or --head")
    port = arguments.head_port(args)
    # As `run` checks its own: else the node joined and each cell it took failed there.
    caches.check_separator(args.cache)
    caches.check_cache(args.cache)
    if args.python:  # else the node joined, and each cell it took was a harness error
        python = probe_interpreter(args.python, env=os.environ)
        if python.too_old_for_cells:  # else each run it joined refused it (exit 4)
            raise MissingToolError(
                f"ray-node: --python {args.python} is Python {python.version}; cells need "
                f"Python {CELL_PYTHON_TEXT} or newer: give --python of a newer one"
            )
    if args.address:  # nothing answering there: exit 5 in seconds, not a hung `ray start`
        checked_address(args.address, "--address")
    matrix = load_matrix(args.matrix)
    plan = node_plan(detect(os.environ), matrix.gpus.values(), os.environ)
    plan.check_one_type()
    print(f"repromatrix: this node offers {plan.describe()}", file=sys.stderr)
    caches.claim(args.cache)  # its envs/ and git/ are ours to the next ray-node, and clean
    code = start_node(
        plan,
        address=None if args.head else args.address,
        port=port,
        cache=args.cache,
        python=args.python,
        block=args.block,
        env=os.environ,
    )
    if not args.block:
        print(f"repromatrix: node started; resources {plan.resources}", file=sys.stderr)
    return code


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "ray-node": _ray_node,
    "validate": _validate,
    "list": _list,
    "run": _guarded(_run),
    "report": write_report,
    "bisect": _guarded(_bisect),
    "clean": _clean,
}
