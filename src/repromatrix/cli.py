"""Command line: parse, call the library, map errors to exit codes. The only sys.exit caller.

Parsing lives here; what each command does lives in `commands.py`, imported only once the
arguments are known to be good.
"""

from __future__ import annotations

import argparse
import errno
import io
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from repromatrix import __version__, errors
from repromatrix.cli_bisect import bisect_parser
from repromatrix.cli_options import (
    Flags,
    Once,
    Parser,
    filters,
    report_options,
    run_options,
)
from repromatrix.errors import ExitCode, ReproMatrixError, UsageError, path_error
from repromatrix.flag_types import address_arg, count_arg, path_arg, program_arg
from repromatrix.path_flags import check_reachable
from repromatrix.streams import lossy_stderr, reader_may_leave

#: Unexpected exceptions (bugs) exit with this code after one line, never a traceback.
EXIT_INTERNAL = 70


def _globals(p: argparse.ArgumentParser, *, default: object) -> None:
    top = default is None
    p.add_argument(
        "--matrix",
        action=Once,
        type=path_arg("a matrix file (e.g. matrix.yaml)"),
        default=Path("matrix.yaml") if top else default,
        help="matrix file (default matrix.yaml)",
    )
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=False if top else default,
        help="log every command run",
    )
    p.add_argument(
        "--debug",
        action="store_true",
        default=False if top else default,
        help="show tracebacks of internal errors",
    )


class _Subcommands:
    """add_subparsers' action, giving every subcommand the global options as a parent."""

    def __init__(self, action: Any, common: argparse.ArgumentParser) -> None:
        self.action = action
        self.common = common

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = self.action.add_parser(
            name, parents=[self.common], **kwargs
        )
        return parser


def build_parser() -> Parser:
    parser = Parser(
        prog="repromatrix",
        description="Reproduce numerical regressions of GPU libraries across a matrix of "
        "images x GPUs x library versions, and report where each begins and ends.",
    )
    parser.add_argument("--version", action="version", version=f"repromatrix {__version__}")
    _globals(parser, default=None)
    # The global options are accepted after the command too (`run --matrix m.yaml`), where
    # front ends such as nox pass every argument.
    common = argparse.ArgumentParser(add_help=False)
    _globals(common, default=argparse.SUPPRESS)
    sub = _Subcommands(
        parser.add_subparsers(dest="command", required=True, parser_class=Parser), common
    )

    sub.add_parser("validate", help="check matrix.yaml and exit")

    p = sub.add_parser("list", help="print the expanded cells")
    filters(p)
    p.add_argument("--json", action="store_true", help="JSON array (usable as a CI job matrix)")

    p = sub.add_parser("run", help="run the selected cells and record their results")
    filters(p)
    run_options(p)
    p.add_argument("--rerun", action="store_true", help="run cells that already have a result")
    p.add_argument(
        "--repeat",
        action=Once,
        type=count_arg,
        default=1,
        metavar="N",
        help="give each cell N results (default 1; resume makes the missing ones; with --rerun "
        "N fresh ones): a cell whose runs disagree shows as flaky",
    )
    p.add_argument(
        "--retry-errors",
        action="store_true",
        help="run again cells whose last result is an error or a timeout",
    )
    p.add_argument(
        "--fail-on",
        action=Once,
        default=None,
        metavar="STATUSES",
        help="exit 1 if any selected cell ends with one of these, comma-separated: passed, "
        "regressed, untestable, error, timeout, not_run, flaky (e.g. regressed,error; flaky: "
        "records that passed and regressed, which passed and regressed match too), "
        "run now or reused from an earlier run",
    )
    p.add_argument("--no-progress", action="store_true", help="plain lines instead of a bar")

    report_options(sub.add_parser("report", help="write the HTML/Markdown/JUnit/CSV report"))

    bisect_parser(sub)

    p = sub.add_parser(
        "ray-node",
        help="start a Ray node (or the head) that offers this host's GPUs by matrix type",
        description="Probe this host's GPUs (nvidia-smi), map them to the gpus of "
        "matrix.yaml, and `ray start` with them as resources repromatrix-gpu-<type>, so "
        "`run --executor ray` sends each cell to a node with its GPU type.",
    )
    p.add_argument("--address", type=address_arg, metavar="HEAD", help="head to join (host:port)")
    p.add_argument("--head", action="store_true", help="start the head node instead")
    p.add_argument("--port", type=count_arg, help="the head's port (with --head; default 6379)")
    p.add_argument(
        "--cache",
        type=path_arg("a folder for this node's cache"),
        default=Path(".repromatrix-node"),
        help="this node's environments and compile caches (default .repromatrix-node)",
    )
    p.add_argument("--python", type=program_arg, help="the interpreter cells run with on this node")
    p.add_argument("--block", action="store_true", help="stay in the foreground")

    p = sub.add_parser("clean", help="remove work directories and leftovers of crashed runs")
    p.add_argument(
        "--cache",
        type=path_arg("the runs' cache folder (as given to run)"),
        default=Path(".repromatrix"),
        help="the runs' cache (default .repromatrix)",
    )
    p.add_argument(
        "--envs", action="store_true", help="also remove built environments and git clones"
    )
    p.add_argument(
        "--docker",
        action="store_true",
        help="also remove repromatrix's environment images (containers that crashed runs "
        "left go without it, when an engine answers); the engine must answer (exit 5)",
    )

    return parser


#: Commands whose answer goes to standard output: closed, they could only lose it.
ANSWER_ON_STDOUT = ("validate", "list", "bisect")


def _parse(argv: Sequence[str] | None, *, closed: bool) -> argparse.Namespace | int:
    """The arguments, or the exit code when parsing ended the command (--help, an error).
    `closed`: standard output was closed at the start."""
    try:
        parser = build_parser()
        parser.argv = list(sys.argv[1:] if argv is None else argv)
        args = parser.parse_args(parser.argv, namespace=Flags())
        if closed and args.command in ANSWER_ON_STDOUT:
            raise OSError(errno.EBADF, "it is closed")
    except ReproMatrixError as exc:
        print(f"repromatrix: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except SystemExit as exc:  # --help / --version
        if closed and not exc.code:  # the help went nowhere
            return _output_failed(OSError(errno.EBADF, "it is closed"))
        return int(exc.code or 0)
    except BrokenPipeError:  # `repromatrix --help | head -1`: the reader left
        _quiet_stdout()
        return 0
    except OSError as exc:  # `--help > /dev/full`
        return _output_failed(exc)
    return args


def _output_failed(exc: OSError) -> int:
    _quiet_stdout()
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
    fix = "free space where it goes, or send it elsewhere" if full else "send it to a file"
    print(
        f"repromatrix: error: cannot write to standard output ({exc.strerror or exc}); {fix}",
        file=sys.stderr,
    )
    return int(ExitCode.OUTPUT)


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0911 -- one exit code per kind of ending
    try:
        args = _parse(argv, closed=_standard_streams())
    except KeyboardInterrupt:  # Ctrl-C in the first milliseconds: no traceback either
        print("repromatrix: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    if isinstance(args, int):
        return args
    # SIGTERM (a CI job cancelled, `kill`) stops a run like Ctrl-C: running cells and their
    # containers are killed and finished results kept.
    signal.signal(signal.SIGTERM, _terminate)
    # The terminal closed (an ssh session dropped): the same, not a silent death.
    signal.signal(signal.SIGHUP, _terminate)
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
        _quiet_stdout()
        return 0
    except Exception as exc:  # a bug: one line, and the way to see more (or a bad path)
        if (usage := path_error(exc) or errors.missing_requirement(exc)) is not None:
            print(f"repromatrix: error: {usage}", file=sys.stderr)
            return int(usage.exit_code)
        if isinstance(exc, OSError) and _stdout_failed():
            # `list --json > /dev/full`: where the output goes is full, not a bug of ours.
            return _output_failed(exc)
        if args.debug:
            raise
        # One bounded line, without secrets: the exception may quote anything (a value
        # from a repro, a whole file).
        from repromatrix import redact  # here: `--help` need not import them
        from repromatrix.safetext import one_line

        what = one_line(redact.current().text(f"{type(exc).__name__}: {exc}"), 300)
        print(
            f"repromatrix: internal error: {what} "
            "(rerun with --debug for the traceback and report it)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def _standard_streams() -> bool:
    """Whether standard output was closed at the start (`>&-`). Descriptors 0-2 are made
    to exist (on /dev/null): else the next file opened (a results file) would take the
    number and become every child process's standard output."""
    closed = sys.stdout is None
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    if sys.stdout is None:
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 -- lives as long as the process
    if sys.stderr is None:
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    # Standard output is strict about its encoding (PYTHONIOENCODING=ascii; a UTF-8 locale
    # and a file name that is not UTF-8): a path or revision it cannot encode cost the
    # whole answer ("internal error: UnicodeEncodeError"). Escaped, as Python escapes
    # standard error.
    if isinstance(sys.stdout, io.TextIOWrapper) and sys.stdout.errors == "strict":
        sys.stdout.reconfigure(errors="backslashreplace")
    sys.stdout = reader_may_leave(sys.stdout)
    sys.stderr = lossy_stderr(sys.stderr)
    return closed


def _stdout_failed() -> bool:
    """Whether standard output refuses what is written to it (asked with one more line
    end, on the way out of a failed command only); if so it goes to /dev/null."""
    try:
        sys.stdout.write("\n")
        sys.stdout.flush()
    except OSError:
        _quiet_stdout()
        return True
    return False


def _quiet_stdout() -> None:
    """Point standard output at /dev/null (the interpreter flushes it at exit)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _dispatch(args: argparse.Namespace) -> int:
    # Imported here, not at the top: `--help` and usage errors never pay for pydantic,
    # pandas or the executors; nor does `report` pay for run's and bisect's modules.
    check_reachable(args)
    if args.command == "report":
        from repromatrix.report_command import write_report

        return write_report(args)
    from repromatrix import commands

    command = commands.COMMANDS.get(args.command)
    if command is None:
        raise UsageError(f"unknown command {args.command}")
    return command(args)
