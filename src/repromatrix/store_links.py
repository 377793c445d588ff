"""A results file that is one file under several names (hard links: `cp -al r snap`, a
backup tool's snapshot): a run's appends would show under every name, and a run on
another folder holding one of them would append to it beside this run (each holds only
its own folder's lock). Before a run appends, its folder gets a copy of its own."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from repromatrix.load_problems import LoadProblem


def own_copy(path: Path) -> LoadProblem | None:
    """Give the results file `path` (held: the caller holds its folder) a copy of its
    own when it has other names, said once; None when it has none (a link to another
    folder's file is that folder's lock's to guard), or it is not this user's: then
    what is appended shows under its other names too, which is said."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_nlink < 2:
        return None
    names = f"{info.st_nlink} names (hard links: cp -al, a backup's snapshot?)"
    if info.st_uid != os.geteuid():
        # A copy would become this user's, which its owner's runs may not append to.
        return LoadProblem(
            file=str(path),
            line=0,
            message=f"is one file under {names}, another user's: what this run appends "
            "shows under the others too; give this folder a copy of its own (cp, then mv)",
        )
    # The name a repair's copy has: one a killed run leaves is removed by the next.
    copy = path.with_name(f".{path.name}.{os.getpid()}.new")
    try:
        shutil.copyfile(path, copy)
        os.chmod(copy, stat.S_IMODE(info.st_mode))
        with open(copy, "rb") as f:
            os.fsync(f.fileno())
        os.replace(copy, path)
    except OSError as exc:
        with_copy = copy.exists()
        if with_copy:
            copy.unlink()
        return LoadProblem(
            file=str(path),
            line=0,
            message=f"is one file under {names}, and a copy of its own could not be made "
            f"({exc.strerror or exc}): what this run appends shows under the others too",
        )
    return LoadProblem(
        file=str(path),
        line=0,
        message=f"was one file under {names}: this run appends to a copy of its own, and "
        "the other names keep the records as they were",
    )
