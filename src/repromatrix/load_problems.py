"""What a load says of what it could not read (`LoadProblem`): a damaged line, a record
cut short, a file that is no file; and of a cut record, which run (if any) sets it aside.
"""

from __future__ import annotations

import fcntl
import os
import stat
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from repromatrix.outputs import not_a_file
from repromatrix.safetext import excerpt, printable
from repromatrix.storedlines import cut_short, problem


@dataclass(frozen=True, kw_only=True)
class LoadProblem:
    """A line that could not be read; reported, never fatal (except newer schemas)."""

    file: str
    line: int
    message: str
    #: Whether a recorded result is left out for it (a damaged line, an unreadable
    #: file): `run` and `report` then end non-zero, once their work is done.
    left_out: bool = False
    #: Whether it is a record cut short (never a result), which `store_repair` sets aside.
    cut: bool = False

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file  # 0: the whole file
        return printable(f"{where}: {self.message}")


def rest_said(rest: Sequence[LoadProblem]) -> str:
    """`4,980 more unreadable record(s) in 2 file(s)`: the problems past those named.
    Notes on records that were kept (a `duration_s` of NaN) or were never results (a cut
    last line) are no unreadable records: 30 records kept with a note each read "… and 10
    more unreadable record(s)" under a report of all 30."""
    files = len({p.file for p in rest})
    lost = sum(1 for p in rest if p.left_out)
    if lost == len(rest):
        what = f"{lost:,} more unreadable record(s)"
    elif not lost:
        what = f"{len(rest):,} more note(s) on what was read, no record left out,"
    else:
        what = f"{len(rest):,} more note(s) on what was read, {lost:,} unreadable record(s),"
    return f"{what} in {files:,} file(s)"


def not_a_file_problem(path: Path) -> LoadProblem:
    """What a load says of a `*.jsonl` entry that is no file: a link that leads nowhere
    left out the records of its file (a share not mounted, a file moved), and a report
    made without them must not pass; a FIFO or a device never held any."""
    what = not_a_file(path)
    if path.is_symlink() and not path.exists():
        fix = "left out: make the file it points to readable again, or remove the link"
        message = f"{what}, not a file of records; {fix}"
        return LoadProblem(file=str(path), line=0, message=message, left_out=True)
    return LoadProblem(file=str(path), line=0, message=f"{what}, not a file of records; ignored")


def no_records_file(path: Path) -> str | None:
    """What stands where a run appends its records when it is no file (a folder; a FIFO,
    whose open without a reader says "No such device or address"; a device), through a
    link too; None for a file, or for nothing there yet."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return f"{'a link to ' if path.is_symlink() else ''}a folder, not a file of records"
    return f"{not_a_file(path)}, not a file of records"


def unread_line(
    path: Path, number: int, line: bytes, exc: Exception, *, truncated: bool
) -> LoadProblem:
    """What a load says of a line that gives no record: a record cut short as the last
    line (a write a run was killed in, or is making now) was never a result; one on a line
    of its own may have been, as anything else is: one left out."""
    file = str(path)
    if line and not line.strip(b"\0"):  # last line or not: a power loss's, no run's
        message = (
            f"NUL bytes alone ({len(line):,} bytes, never a record: what a power loss leaves "
            "of a write whose size reached the disk and data did not); "
            f"{_cut_fate(path, rewritten=not truncated)}"
        )
        return LoadProblem(file=file, line=number, message=message, cut=True)
    if truncated:
        message = (
            "truncated last record (a run was killed while writing it, or is writing it "
            f"now); {_cut_fate(path)}"
        )
        return LoadProblem(file=file, line=number, message=message, cut=True)
    if cut_short(line):
        # Its line ends: no killed run's write (whose text has no newline) alone, but one
        # closed off by the next run's record, or a stored record damaged since (a disk,
        # an edit, a copy cut short: a result), which the bytes cannot tell apart. A
        # report that may lack a result must not pass (exit 3), here as for a damaged line.
        message = (
            f"a record cut short ({len(line):,} bytes, never a whole record) on a line of "
            "its own: a killed run's, its line closed off by the next record, or a stored "
            f"record damaged since, a result then; {_cut_fate(path, rewritten=True)}"
        )
        return LoadProblem(file=file, line=number, message=message, left_out=True, cut=True)
    message = (
        f"unreadable record ({excerpt(problem(exc), 200)}); ignored: correct that line or delete it"
    )
    return LoadProblem(file=file, line=number, message=message, left_out=True)


def joined_cut(path: Path, number: int, size: int, *, first: bool) -> LoadProblem:
    """What a load says of a record cut short with a whole one on its line (a file joined
    to one a killed run cut, `first`, or one so cut joined after a record that lacked its
    newline): the whole one is read, the cut part is not."""
    where = "after" if first else "before"
    message = (
        f"a record cut short by a killed run ({size:,} bytes, never a whole record), with a "
        f"whole record {where} it on the same line (a file joined to it?): that record is "
        "read; "
        f"the cut part is {_cut_fate(path, rewritten=True, what='the cut part of that line')}"
    )
    return LoadProblem(file=str(path), line=number, message=message, cut=True)


def _cut_fate(path: Path, *, rewritten: bool = False, what: str = "that line") -> str:
    """What becomes of a cut record in `path`: set aside by the next run on its folder
    (`store_repair`), said with the folder, unless no run will: a file with another name
    (another folder's run may be writing it) or one this user cannot write (a published
    folder, a read-only mount), nor one `chattr` keeps from being cut. One that takes
    writing the file anew (`rewritten`: a mid-file one) only by its owner's run."""
    try:
        info = os.lstat(path)
    except OSError:
        info = None
    if info is not None and (stat.S_ISLNK(info.st_mode) or info.st_nlink > 1):
        where = "is a link" if stat.S_ISLNK(info.st_mode) else "has another name (a link)"
        return f"left out: the file {where}, and no run cuts a shared file: delete {what}"
    unwritable = _torn_unwritable(path)
    if unwritable:
        return (
            f"left out: {path.name}.torn is {unwritable}, and a run sets cut records aside "
            f"in a file of its own there: remove it, and the next `run` or `bisect` with "
            f"--results {path.parent} sets it aside"
        )
    locked = _locked(path)
    if locked is not None:
        what, flag = locked
        return (
            f"left out: the file {what} (chattr +{flag}), so no run cuts it; whoever may "
            f"(root) can run `chattr -{flag} {path}`, and the next `run` or `bisect` with "
            f"--results {path.parent} sets it aside"
        )
    if os.access(path, os.W_OK) and os.access(path.parent, os.W_OK):
        if rewritten and info is not None and info.st_uid != os.geteuid():
            return (
                f"left out until a `run` or `bisect` by the file's owner with --results "
                f"{path.parent} sets it aside (another user's run leaves the file as it is)"
            )
        return f"left out until a `run` or `bisect` with --results {path.parent} sets it aside"
    return (
        "left out: its folder cannot be written here, so no run from here sets it aside "
        f"(whoever can write it may delete {what})"
    )


def _torn_unwritable(path: Path) -> str:
    """What `<path>.torn` is when the repair cannot set cut records aside there (it
    writes through no link: one to /dev/null, made to throw them away, kept every run
    from it), else ""."""
    torn = path.with_name(path.name + ".torn")
    try:
        mode = os.lstat(torn).st_mode
    except OSError:
        return ""  # none yet: the repair makes it
    if stat.S_ISREG(mode):
        return ""
    if stat.S_ISLNK(mode):
        return "a link"
    return "a folder" if stat.S_ISDIR(mode) else not_a_file(torn)


#: The inode flags `chattr` sets (linux/fs.h): FS_IOC_GETFLAGS, and the two that keep
#: every process, root's too, from cutting a file.
_GET_FLAGS = 0x80086601
_LOCKS = ((0x10, ("is immutable", "i")), (0x20, ("may only be appended to", "a")))


def _locked(path: Path) -> tuple[str, str] | None:
    """What `chattr` made of `path` that no run's repair may undo (`+i`, `+a`: it cannot
    cut or replace the file), with its letter; None for a file without either, or where
    the flags cannot be read (another system, a file system without them)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        buf = bytearray(8)  # the kernel writes an int into a long's room
        fcntl.ioctl(fd, _GET_FLAGS, buf)
    except OSError:
        return None
    finally:
        os.close(fd)
    flags = struct.unpack_from("=i", buf)[0]
    return next((said for bit, said in _LOCKS if flags & bit), None)
