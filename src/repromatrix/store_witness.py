"""What a run appended to its results file, and whether another process has since cut the
file short or put another file in its place (`: > r/host.jsonl`, a restore from git, an
editor's save, `rm`).

A run holds its results folder against other runs, not against every process: a file cut
short lost the records this run had stored, and the run said "4 passed" at exit 0 over a
file holding none of them. The witness keeps the lines this process appended and the file
they went into (held open, so a file put in its place leaves the old one readable). Before
each append, and once the run is done, the file there is compared with what the witness
saw: this run's lines it lacks are appended again, and what the run cannot give back
(records of earlier runs) is said, kept where it can be (`<file>.replaced`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from repromatrix.errors import ResultsError
from repromatrix.jsonl import write_whole

#: Bytes read at a time when a changed file is read through for the lines it holds.
_CHUNK = 1 << 20


@dataclass(frozen=True, kw_only=True)
class Tampering:
    """One change another process made to the results file during the run."""

    #: "cut short", "rewritten" (its bytes where this run's last line was are others) or
    #: "replaced" (another file is there now, or none).
    kind: str
    #: This run's records the file had lost, appended again.
    restored: int
    #: Records of earlier runs the file no longer holds (-1: unknown, a file cut short).
    lost: int
    #: Where records the replaced file held and its successor lacks were kept, if any.
    kept: Path | None
    #: Its size when this run last saw it, and when the change was found.
    was: int
    now: int

    def line(self, path: Path) -> str:
        """What happened to `path` and what to do, in one line."""
        by = (
            "replaced by another file"
            if self.kind == "replaced"
            else f"{self.kind} by another process"
        )
        head = f"{path}: {by} during this run ({self.was:,} bytes, then {self.now:,})"
        n = self.restored
        mine = (
            f"this run's {n} record{'' if n == 1 else 's'} it had lost "
            f"{'was' if n == 1 else 'were'} appended again"
            if n
            else "it had lost none of this run's records"
        )
        keep_out = "let no other process write to it while a run holds its folder"
        if self.lost == 0:
            return f"{head}: {mine}, and no record stored before the run was lost; {keep_out}"
        if self.lost < 0:
            return (
                f"{head}: {mine}, but records stored before the run may be lost: restore "
                f"them from a copy of it (a backup, git); {keep_out}"
            )
        one = self.lost == 1
        lost = f"{self.lost:,} record{'' if one else 's'} stored before the run"
        are = "is" if one else "are"
        if self.kept is None:
            return f"{head}: {mine}, but {lost} {are} lost: restore them from a copy; {keep_out}"
        return (
            f"{head}: {mine}; the {lost} it lacks {are} kept in {self.kept}: append them "
            f"(cat {self.kept} >> {path}) unless they were removed on purpose; {keep_out}"
        )


def lost_error(path: Path, tamperings: list[Tampering]) -> ResultsError | None:
    """The error (exit 3) a run ends with, its work done, when another process's change
    to its results file cost records stored before it; None when none was lost."""
    lost = [t for t in tamperings if t.lost != 0]
    return None if not lost else ResultsError(lost[0].line(path))


class Witness:
    """The results file one run appends to, as this process left it after each append."""

    def __init__(self) -> None:
        self._held: int | None = None  # the file as the run found it, held open
        self._began = 0
        self._end = 0  # where this process's last append ended
        self._tail = b""  # the last line this process appended
        self._own: list[bytes] = []
        self.tamperings: list[Tampering] = []

    @property
    def began(self) -> bool:
        return self._held is not None

    def close(self) -> None:
        if self._held is not None:
            os.close(self._held)
            self._held = None

    def begin(self, fd: int) -> None:
        """Hold the file `fd` is open on, as the run finds it (the first call only)."""
        if self._held is None:
            self._held = _reopened(fd)
            self._began = self._end = os.fstat(fd).st_size

    def wrote(self, lines: list[bytes], data: bytes, *, end: int) -> None:
        """`data` was appended and ends at `end`: this run's new `lines`, after those of
        its lines the file had lost. `end` as the writer knew it, not the file's size
        after the write: a file another process cut short just after it read as ending
        at 0, and this run's last line was looked for before its start (EINVAL, exit 8)."""
        self._own.extend(lines)
        self._end = end
        if data.strip():
            self._tail = data.rstrip(b"\n").rsplit(b"\n", 1)[-1] + b"\n"

    def missing(self, fd: int, path: Path) -> bytes:
        """This run's lines the file `fd` (open on `path`, to be appended to) lacks, when
        another process changed it since this process last wrote; b"" when none did."""
        held = self._held
        if held is None:
            return b""
        if not self.changed(fd):
            return b""
        info, was = os.fstat(fd), os.fstat(held)
        replaced = (info.st_dev, info.st_ino) != (was.st_dev, was.st_ino)
        present = _digests(fd)
        own = [line for line in self._own if _digest(line) not in present]
        lost, kept, kind = 0, None, "replaced"
        if replaced:
            known = present | {_digest(line) for line in self._own}
            gone = [line for line in _lines(held) if _digest(line) not in known]
            lost = len(gone)
            if gone:
                kept = _keep(path, gone)
            os.close(held)
            self._held = _reopened(fd)
        if not replaced:  # what earlier runs stored lay before `_began`
            kind = "cut short" if info.st_size < self._end else "rewritten"
            lost = 0 if kind == "cut short" and info.st_size >= self._began else -1
        self.tamperings.append(
            Tampering(
                kind=kind,
                restored=len(own),
                lost=lost,
                kept=kept,
                was=was.st_size if replaced else self._end,
                now=info.st_size,
            )
        )
        self._began = info.st_size
        return b"".join(own)

    def changed(self, fd: int) -> bool:
        """Whether the file `fd` is open on is another than the one held, or no longer
        ends where, and with what, this process last wrote."""
        if self._held is None:
            return False
        info, was = os.fstat(fd), os.fstat(self._held)
        if (info.st_dev, info.st_ino) != (was.st_dev, was.st_ino):
            return True
        return info.st_size < self._end or not self._tail_there(fd)

    def _tail_there(self, fd: int) -> bool:
        if not self._tail:
            return True
        start = self._end - len(self._tail)
        return start >= 0 and os.pread(fd, len(self._tail), start) == self._tail


def _reopened(fd: int) -> int | None:
    """The file `fd` is open on, opened again to be read; None where it may not be read
    (a results file only its writers may read is not watched)."""
    try:
        return os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


def _digest(line: bytes) -> bytes:
    return hashlib.blake2b(line.rstrip(b"\n"), digest_size=16).digest()


def _digests(fd: int) -> set[bytes]:
    return {_digest(line) for line in _lines(fd)}


def _lines(fd: int) -> Iterator[bytes]:
    """The lines of the file `fd` is open on, read from its start with `pread`."""
    offset, rest = 0, b""
    while chunk := os.pread(fd, _CHUNK, offset):
        offset += len(chunk)
        *whole, rest = (rest + chunk).split(b"\n")
        yield from (line + b"\n" for line in whole if line.strip())
    if rest.strip():
        yield rest + b"\n"


def _keep(path: Path, lines: list[bytes]) -> Path | None:
    """Append `lines` to `<path>.replaced` (no link followed); None if it cannot be."""
    aside = path.with_name(path.name + ".replaced")
    try:
        fd = os.open(
            aside, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644
        )
    except OSError:
        return None
    try:
        write_whole(fd, b"".join(lines))
    except OSError:
        return None
    finally:
        os.close(fd)
    return aside


__all__ = ["Tampering", "Witness", "lost_error"]
