"""One error hierarchy for everything a user can get wrong or a host can lack.

Each error carries its own exit code and a one-line message that says what to do next.
Only `cli.main` turns them into an exit status; nothing else calls `sys.exit`.
"""

from __future__ import annotations

from enum import IntEnum

from repromatrix.safetext import cut, printable

#: The longest word an error message shows whole (a path of 240 characters is rare).
MAX_WORD = 240


class ExitCode(IntEnum):
    OK = 0
    #: The run finished and `--fail-on` matched some cell (regressed, error, ...).
    CELLS_FAILED = 1
    #: matrix.yaml (or another input file) is invalid.
    CONFIG = 2
    #: A results file cannot be read (newer schema, not JSONL, unreadable).
    RESULTS = 3
    #: A tool the command needs is missing on this host (git, pip, nvidia-smi...).
    MISSING_TOOL = 4
    #: The Docker engine cannot be reached or refused an operation.
    DOCKER = 5
    #: Bisection cannot proceed (endpoints do not bracket a change, no candidates).
    BISECT = 6
    #: An environment (library pins) could not be materialized.
    ENVIRONMENT = 7
    #: A result could not be stored (a full disk, a read-only results folder); the run
    #: stopped and every earlier record is kept.
    STORE = 8
    #: Another run holds the results folder (`run --wait` waits for it instead).
    RESULTS_BUSY = 9
    #: A folder or file to write (the report folder, `bisect --markdown`, `--readme`, the
    #: `--cache`) cannot be written; the results are untouched and no old report file was
    #: left half-replaced.
    OUTPUT = 10
    #: Command-line usage error (argparse's own errors are mapped here).
    USAGE = 64
    #: Interrupted by the user (Ctrl-C); finished cells are kept.
    INTERRUPTED = 130


class ReproMatrixError(Exception):
    """Base class: `str(err)` is the single line shown to the user."""

    exit_code: ExitCode = ExitCode.CONFIG

    def __init__(self, message: str) -> None:
        # One line, always: a multi-line message would read like a traceback. Printable
        # too: a path or value the user gave may hold an escape sequence, which the
        # terminal would run (colours, a title, an OSC 52 clipboard write).
        # Bounded too: a value quoted whole (a `--library` of 60,000 characters) made a
        # line of 60 KB; a word past MAX_WORD keeps its head and tail, the fix around it.
        words = printable(message).split()
        super().__init__(" ".join(w if len(w) <= MAX_WORD else cut(w, MAX_WORD) for w in words))

    @property
    def message(self) -> str:
        return str(self)


class ConfigError(ReproMatrixError):
    exit_code = ExitCode.CONFIG


class UsageError(ReproMatrixError):
    exit_code = ExitCode.USAGE


class ResultsError(ReproMatrixError):
    exit_code = ExitCode.RESULTS


class MissingToolError(ReproMatrixError):
    exit_code = ExitCode.MISSING_TOOL


class DockerError(ReproMatrixError):
    exit_code = ExitCode.DOCKER


class ClusterUnreachable(ReproMatrixError):
    """No Ray cluster answers at the address: the same kind of failure as an engine that
    does not answer (exit 5)."""

    exit_code = ExitCode.DOCKER


class BisectError(ReproMatrixError):
    exit_code = ExitCode.BISECT


class EnvironmentBuildError(ReproMatrixError):
    """Raised inside a cell; the scheduler records it as that cell's error."""

    exit_code = ExitCode.ENVIRONMENT


class StoreError(ReproMatrixError):
    exit_code = ExitCode.STORE


class CacheFullError(EnvironmentBuildError):
    """The cache's disk cannot take what git fetched: exit 8 as for any full disk. An
    EnvironmentBuildError still, so a cell's build says it in its words (`full_in`)."""

    exit_code = ExitCode.STORE


class ResultsBusyError(ReproMatrixError):
    exit_code = ExitCode.RESULTS_BUSY


class OutputError(ReproMatrixError):
    exit_code = ExitCode.OUTPUT


class CellsFailed(ReproMatrixError):
    exit_code = ExitCode.CELLS_FAILED


def path_error(exc: BaseException) -> UsageError | None:
    """A path the system cannot take, as a usage error naming it: a name over 255 bytes
    or a whole path over 4096 (ENAMETOOLONG), a link loop (ELOOP; `Path.resolve` raises
    RuntimeError for one before Python 3.13). None for anything else."""
    import errno

    if isinstance(exc, OSError) and exc.errno in (errno.ENAMETOOLONG, errno.ELOOP):
        where = exc.filename if exc.filename is not None else "a path given"
        return UsageError(f"{str(where)[:120]}: {exc.strerror}; pass a shorter path, or one "
                          "without a link loop")  # fmt: skip
    if isinstance(exc, RuntimeError) and str(exc).startswith("Symlink loop from "):
        return UsageError(f"{str(exc)[18:][:120]}: a link loop; pass a path without one")
    return None


def missing_requirement(exc: BaseException) -> MissingToolError | None:
    """A module from outside the standard library that this Python cannot import (rich,
    pydantic, jinja2...: carried wheels that lacked one) as a missing tool naming it, not
    an internal error to report. None for anything else."""
    import sys

    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    top = exc.name.partition(".")[0]
    if top == "repromatrix" or top in sys.stdlib_module_names:
        return None
    return MissingToolError(
        f"{sys.executable} cannot import {top}, which repromatrix needs: install it with its "
        "requirements (pip install '.' from the checkout; offline, carry their wheels, as "
        "README's 'Offline hosts' lists)"
    )
