"""Path flags behind a folder this user may not search (`chmod 000`, another user's `0700`
home): refused before any work, naming the folder, with the exit code of what the flag is.

Python's `Path.exists()`, `is_dir()` and `is_file()` answer False for a path that is not
there but raise PermissionError for one they cannot look at, and every check of a path
flag asks them first: `--out locked/report`, `--cache locked/c`, `--results locked/r`
were internal errors (exit 70, "rerun with --debug ... and report it") instead of the
flag's own one-line refusal. One look here, before the command starts, serves them all.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from repromatrix.errors import OutputError, ReproMatrixError, ResultsError, StoreError

#: The flags whose paths a command writes (exit 10 when they cannot be reached);
#: `--results` takes records in `run` and `bisect` (exit 8, as a results folder that
#: cannot be made), and is read by `report`, as `--compare` is (exit 3).
_WRITTEN = ("out", "cache", "markdown", "readme")


def _blocked(path: Path) -> Path | None:
    """The folder on the way to `path` (the path itself where none other is to blame)
    that this user may not look inside, or None where `path` can be looked at (or is not
    there, for a reason other than permission)."""
    try:
        os.stat(path)
    except PermissionError:
        pass
    except (OSError, ValueError):  # not there, a loop, a NUL: the commands' own checks
        return None
    else:
        return None
    absolute = Path(os.path.abspath(path))
    for folder in reversed(absolute.parents):  # from / down: the first one closed
        try:
            os.stat(folder)
        except PermissionError:
            return folder.parent
        except OSError:
            return None
    return absolute.parent


def _refusal(flag: str, path: Path, folder: Path, command: str) -> ReproMatrixError:
    where = f"cannot look inside {folder} (Permission denied)"
    if flag == "--results" and command in ("run", "bisect"):
        return StoreError(
            f"--results {path}: cannot use it for results ({where}); grant access to "
            f"{folder} (chmod u+rx) or pass a results folder you can write"
        )
    if flag in ("--results", "--compare"):
        return ResultsError(
            f"{flag} {path}: cannot be read ({where}); grant access to {folder} "
            "(chmod u+rx) or pass results you can read"
        )
    return OutputError(
        f"{flag} {path}: cannot write there ({where}); grant access to {folder} "
        "(chmod u+rx) or pass another path"
    )


def check_reachable(args: argparse.Namespace) -> None:
    """ResultsError, StoreError or OutputError (see `_refusal`) for the first path flag
    of `args` that lies behind a folder this user may not search."""
    named: list[tuple[str, object]] = [(f"--{a}", getattr(args, a, None)) for a in _WRITTEN]
    results = getattr(args, "results", None)
    for path in results if isinstance(results, list) else [results]:
        named.append(("--results", path))
    named.append(("--compare", getattr(args, "compare", None)))
    for flag, value in named:
        if not isinstance(value, Path):
            continue
        folder = _blocked(value)
        if folder is not None:
            raise _refusal(flag, value, folder, str(getattr(args, "command", "")))
