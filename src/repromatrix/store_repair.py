"""Setting aside what killed runs left cut short in a results folder: a named step that
`run` and `bisect` take once they hold the folder, before they read its records. Loading
never writes; `report` takes no lock and never repairs.

A record cut short is no result (the run writing it was killed, and the next one did its
cell again), yet every load warned of it, for ever. Once, it moves to `<file>.torn`,
which no load reads, and this says so.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from repromatrix.jsonl import MAX_LINE_BYTES, Line, set_aside_cut_line, set_aside_lines
from repromatrix.records import NewerSchemaError
from repromatrix.store import Loaded, LoadProblem, ResultStore
from repromatrix.storedlines import NotedRecord, cut_short, decoded, joined


@dataclass(frozen=True, kw_only=True)
class Repaired:
    """What `repair` set aside (said once, with the load's problems), and the store's
    records as loaded after it, for the command's first read of them."""

    notes: tuple[LoadProblem, ...]
    loaded: Loaded


#: How long a results file of another host must be unchanged before its cut records are
#: set aside: the folder's lock keeps out every run on it, on any host of an NFS mount
#: (flock reaches the server), but a mount whose locks stay on each host (`local_lock`)
#: would let another host's run be writing that file now; a write takes milliseconds.
QUIET_S = 60.0


def repair(store: ResultStore) -> Repaired:
    """Set aside the records that killed runs left cut short in the results files of
    the folder: the last line (a write cut short), and lines an old crash left in the
    middle (the next append closed the cut line off with a newline). The cut bytes go to
    `<file>.torn`, and every whole record stays; a last record that lacks only its
    newline gets one. The caller holds the folder, so no run writes its files now: this
    host's, and another host's (a folder shared over NFS, a host that never ran again)
    once it is quiet (`QUIET_S`). Not the files of a folder below (a run on it holds
    that one), nor a file another folder shares (a link, a hard link). First, the
    copies that repairs killed mid-rewrite left (`_remove_leftover_copies`) go."""
    files = [store.path, *_quiet_files(store)]
    notes = _remove_leftover_copies(store.root)
    notes += [note for path in files if (note := _set_aside_last(path)) is not None]
    loaded = store.load()
    cut: dict[str, set[int]] = {}
    for p in loaded.problems:
        if p.cut and p.line:
            cut.setdefault(p.file, set()).add(p.line)
    moved = [note for path in files for note in _set_aside_cut_lines(path, cut.get(str(path)))]
    if moved:
        notes += moved
        loaded = store.load()
    return Repaired(notes=tuple(notes), loaded=loaded)


#: The copy a repair writes a results file to before renaming it over the file
#: (`jsonl.set_aside_lines`): `.<file>.<pid>.new`.
_COPY = re.compile(r"\.(.+\.jsonl)\.([0-9]+)\.new")


def _remove_leftover_copies(root: Path) -> list[LoadProblem]:
    """The copies that repairs killed while writing a file anew left in `root` (a whole
    results file each, which nothing else removes) removed, each said: those of a process
    no longer alive. Removing one that a live process (another host's) still writes only
    fails its rename, which leaves its file as it was."""
    notes = []
    try:
        with os.scandir(root) as entries:
            found = [(e.name, m) for e in entries if (m := _COPY.fullmatch(e.name))]
    except OSError:
        return []  # no folder yet, or one that cannot be listed: nothing to remove
    for name, match in sorted(found):
        path = root / name
        try:
            info = path.lstat()
            pid = int(match[2])
            # This process's own pid: one that a dead process had (pids are reused), as
            # this one writes no copy yet, and whose copy would keep it from writing one.
            if not stat.S_ISREG(info.st_mode) or (pid != os.getpid() and _alive(pid)):
                continue
            path.unlink()
        except OSError:
            continue  # a read-only folder, or already gone
        notes.append(
            LoadProblem(
                file=str(path),
                line=0,
                message=f"a copy of {match[1]} that a killed run left ({info.st_size:,} "
                "bytes) was removed",
            )
        )
    return notes


def _alive(pid: int) -> bool:
    """Whether a process `pid` runs on this host (another user's too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's; or no pid at all, said alive to leave its file be
    return True


def _quiet_files(store: ResultStore) -> list[Path]:
    """The other `*.jsonl` files directly in the folder, unchanged for QUIET_S."""
    if not store.root.is_dir():
        return []
    quiet_since = time.time() - QUIET_S
    found = []
    try:
        with os.scandir(store.root) as entries:
            for entry in entries:
                path = store.root / entry.name
                if (
                    entry.name.endswith(".jsonl")
                    and path != store.path
                    and entry.is_file(follow_symlinks=False)
                    and entry.stat(follow_symlinks=False).st_mtime < quiet_since
                ):
                    found.append(path)
    except OSError:
        return found  # what cannot be listed is repaired by its own host's next run
    return sorted(found)


def _set_aside_cut_lines(path: Path, numbers: set[int] | None) -> list[LoadProblem]:
    """The cut records at lines `numbers` of `path` set aside, each said."""
    if not numbers:
        return []
    torn = path.with_name(path.name + ".torn")
    try:
        moved = set_aside_lines(path, numbers, torn, cut=_cut_part)
    except OSError:
        return []  # a read-only folder: the load says so, each time
    return [
        LoadProblem(
            file=str(path),
            line=line,
            message=f"a record cut short ({size:,} bytes: a killed run's, or a stored record "
            f"damaged since) was moved to {torn.name}; every whole record is kept",
        )
        for line, size in moved
    ]


def _cut_part(text: bytes) -> tuple[int, int]:
    """The bytes (from, to) of the line `text` that are a record cut short: all of them,
    or those beside a whole record joined to it (which stays), as a load reads the line;
    (0, 0) for none."""
    line = text.removeprefix(b"\xef\xbb\xbf")  # as loads read a line
    two = joined(line)  # first: a cut record's text may take in the whole one after it
    if two is not None:
        start, end = two.cut
        bom = len(text) - len(line)
        return (start + bom if start else 0, end + bom) if end else (0, 0)
    return (0, len(text)) if cut_short(line) else (0, 0)


def _set_aside_last(path: Path) -> LoadProblem | None:
    """The cut last line of `path` set aside, said; None when there was none or
    nothing could be done (a read-only folder: the load says so, each time)."""
    torn = path.with_name(path.name + ".torn")
    try:
        moved = set_aside_cut_line(path, torn, whole=_whole_record)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):  # else the load says why, each time
            return LoadProblem(
                file=str(path),
                line=0,
                message=f"its last record, cut short by a killed run, could not be set aside "
                f"now ({exc.strerror}): it stays where it is, left out; make room there",
            )
        return None
    if moved is None:
        return None
    line, size = moved
    return LoadProblem(
        file=str(path),
        line=line,
        message=f"a record cut short by a killed run ({size:,} bytes) was moved to "
        f"{torn.name}; every whole record is kept",
    )


def _whole_record(line: bytes) -> bool:
    """Whether `line` is a whole record: one this version reads, or a newer one's; or two
    joined, the second whole (given its newline, the cut part is set aside alone)."""
    try:
        decoded(Line(line, len(line), True, len(line) > MAX_LINE_BYTES), line)
    except (NewerSchemaError, NotedRecord):
        return True  # loading says to upgrade, or keeps it: setting it aside would hide it
    except Exception:  # any line, however odd, is just no record
        return joined(line) is not None
    return True
