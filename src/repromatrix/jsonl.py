"""Whole lines of a results file: appended all or nothing, read back within a bound.

A record is one line; a line is never the place for more than a record can hold. So a
write that stops half way is undone, and a "line" of gigabytes (a file a crash left full of
NUL bytes, a binary file named `*.jsonl`) is passed over in pieces, never held whole.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, NamedTuple

#: The longest line read as a record. What repromatrix writes is bounded far below this
#: (bounds.py: provenance about 256 KiB, 1,000 metrics, two 16 KiB tails, even with every
#: character escaped); this leaves room for what older versions wrote.
MAX_LINE_BYTES = 64 << 20
#: How much of an over-long line is held at once while passing over it.
_SKIP_CHUNK = 64 << 10
#: How much of a cut line is copied (and fsynced) at once while setting it aside.
_MOVE_CHUNK = 1 << 20


class Line(NamedTuple):
    """One line as read: its bytes without the newline (none when it is over the bound),
    how many bytes it takes in the file, and whether it ended with a newline (only the last
    line can lack one: a run killed while writing it). A NamedTuple, not a frozen
    dataclass: one is made per stored record, and a frozen dataclass's __init__ cost a
    cold load of 100,000 records about 0.2 s."""

    text: bytes
    size: int
    ended: bool
    overlong: bool = False

    def too_long(self) -> ValueError:
        return ValueError(
            f"a line of {self.size:,} bytes, longer than any record ({MAX_LINE_BYTES:,} "
            "bytes at most)"
        )


def bounded_lines(f: IO[bytes]) -> Iterator[Line]:
    """Each line of `f` from where it stands; one over MAX_LINE_BYTES is read through in
    chunks and given without its text, so memory stays bounded."""
    limit = MAX_LINE_BYTES
    while read := f.readline(limit + 1):
        ended = read.endswith(b"\n")
        if len(read) <= limit:
            yield Line(read[:-1] if ended else read, len(read), ended)
            continue
        size = len(read)
        while not ended and (more := f.readline(_SKIP_CHUNK)):
            size, ended = size + len(more), more.endswith(b"\n")
        yield Line(text=b"", size=size, ended=ended, overlong=True)


def write_whole(fd: int, data: bytes) -> None:
    """Write and fsync `data` at the end of the file, all of it or none of it.

    On a nearly full disk `write` can write part of its buffer and stop: the cut record
    would stay in the file and later be blamed on a killed run. So a short write (or a
    failed fsync) truncates the file back to where it was and raises ENOSPC.
    """
    before = os.fstat(fd).st_size
    try:
        written = 0
        while written < len(data):
            n = os.write(fd, data[written:])
            if n == 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            written += n
        os.fsync(fd)
    except OSError:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, before)
            os.fsync(fd)
        raise


def ends_without_newline(fd: int) -> bool:
    size = os.fstat(fd).st_size
    if size == 0:
        return False
    return os.pread(fd, 1, size - 1) != b"\n"


def set_aside_cut_line(
    path: Path, torn: Path, *, whole: Callable[[bytes], bool]
) -> tuple[int, int] | None:
    """Move the last line of `path`, when a write cut it short (no newline), to the end of
    `torn` (never through a link); its line number and size, or None when there was none.
    A last line that lacks only its newline (`whole` of its text) gets one instead.
    Only a file of `path`'s own (no link, one name): the caller's lock on its folder
    keeps out every other writer of it, so its cut line is no write still under way."""
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW)
    try:
        info = os.fstat(fd)
        own = stat.S_ISREG(info.st_mode) and info.st_nlink == 1
        start = cut_line_start(fd) if own else None
        if start is None:
            return None
        if whole(os.pread(fd, MAX_LINE_BYTES + 1, start)):
            write_whole(fd, b"\n")
            return None
        may_cut(fd)
        with torn_appended(torn, info) as dest:
            moved = copy_tail(fd, start, dest.fd)
        os.ftruncate(fd, start)  # only once `torn` holds them: never in neither file
        os.fsync(fd)
        return count_lines(fd, start) + 1, moved
    finally:
        os.close(fd)


def may_cut(fd: int) -> None:
    """OSError (EPERM) when the file of `fd`, opened to write, may not be cut or replaced
    (`chattr +a`): asked before anything is copied to `<file>.torn`, else every run would
    copy the same cut bytes there again. Cutting it to its own size changes nothing."""
    os.ftruncate(fd, os.fstat(fd).st_size)


def cut_line_start(fd: int) -> int | None:
    """Where the file's last line begins when it lacks its newline (a write cut short:
    a run killed in the middle of it), else None."""
    end = os.fstat(fd).st_size
    if not ends_without_newline(fd):
        return None
    while end > 0:
        start = max(0, end - _SKIP_CHUNK)
        found = os.pread(fd, end - start, start).rfind(b"\n")
        if found >= 0:
            return start + found + 1
        end = start
    return 0


class Torn(NamedTuple):
    """`<file>.torn` opened to append (`fd`); `kept[0]` set once the lines written to it
    have left the results file, so that it stays as it is whatever is raised after."""

    fd: int
    kept: list[bool]


@contextlib.contextmanager
def torn_appended(torn: Path, info: os.stat_result) -> Iterator[Torn]:
    """`torn` opened to append (`open_torn`), put back as it was when the block raises (a
    disk that fills part way, Ctrl-C) before the moved lines left the results file:
    removed if this made it, else cut to its former size. The results file keeps what
    failed to move, so the next run moves it whole, neither once more in `torn` nor
    beside an empty `torn` a user reads as the record's place."""
    fd, made = open_torn(torn, info)
    before = os.fstat(fd).st_size
    kept = [False]
    try:
        yield Torn(fd, kept)
    except BaseException:
        if not kept[0]:
            with contextlib.suppress(OSError):
                if made:
                    os.unlink(torn)  # the caller holds the folder: still the file made here
                else:
                    os.ftruncate(fd, before)
                    os.fsync(fd)
        raise
    finally:
        os.close(fd)


def open_torn(torn: Path, info: os.stat_result) -> tuple[int, bool]:
    """`torn` opened to append (never through a link), and whether this made it: made,
    when new, with the owner, group and mode of the results file of `info` as far as
    this user may: a run that set aside another user's cut record (a folder hosts share,
    root) would else leave it a file its owner's runs may not append to, and they could
    set aside nothing more."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(torn, flags | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return os.open(torn, flags), False
    with contextlib.suppress(OSError):  # only root may give a file away
        os.fchown(fd, info.st_uid, info.st_gid)
    with contextlib.suppress(OSError):
        os.fchmod(fd, stat.S_IMODE(info.st_mode))
    return fd, True


def copy_tail(fd: int, start: int, dest: int) -> int:
    """Append the bytes of `fd` from `start` on, and a newline, to `dest` (fsynced); how
    many bytes. The caller cuts them from `fd` after, never before. NUL bytes alone go
    as a hole: the size a power loss (or `truncate -s 1G`) gave a file, never written,
    took that much disk as a copy, and on a disk with less room the cut line stayed, said
    on every load ("make room there": for zeros)."""
    size, at = os.fstat(fd).st_size, start
    while at < size:
        chunk = os.pread(fd, min(_MOVE_CHUNK, size - at), at)
        if not chunk:
            break
        if chunk.count(0) == len(chunk):
            os.ftruncate(dest, os.fstat(dest).st_size + len(chunk))  # appends go after it
        else:
            write_whole(dest, chunk)
        at += len(chunk)
    write_whole(dest, b"\n")
    return at - start


def count_lines(fd: int, end: int) -> int:
    """How many newlines the file has before byte `end`."""
    count, at = 0, 0
    while at < end:
        chunk = os.pread(fd, min(_SKIP_CHUNK, end - at), at)
        if not chunk:
            break
        count, at = count + chunk.count(b"\n"), at + len(chunk)
    return count


def set_aside_lines(
    path: Path, numbers: set[int], torn: Path, *, cut: Callable[[bytes], tuple[int, int]]
) -> list[tuple[int, int]]:
    """Move the lines `numbers` of `path` (counted from 1, as `bounded_lines` gives them)
    that are still cut to the end of `torn` (`cut` of a line's text: the bytes (from, to)
    of it that are a cut record, all of them or those beside a whole record joined to
    them, which stays on its line), and write the rest to a new file renamed
    over `path`: the line number and size of each moved. `torn` first, fsynced: a
    process killed between the two leaves a line in both files, never in neither. Only a
    file of `path`'s own (no link, one name) and this user's, that did not change
    meanwhile."""
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW
    with open(os.open(path, flags), "rb") as f:
        fd = f.fileno()
        info = os.fstat(fd)
        # Another user's file would become this user's, which its owner's runs may no
        # longer append to (a folder that hosts share, each running as its own user).
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1 or info.st_uid != os.geteuid():
            return []
        found: list[tuple[int, int, int]] = []  # (start, bytes removed, number)
        said: list[tuple[int, int]] = []  # (number, bytes of the cut record)
        at = 0
        for number, read in enumerate(bounded_lines(f), start=1):
            if number in numbers and read.ended and not read.overlong:
                begin, end = cut(read.text)
                if end:  # a whole line goes with its newline
                    size = end - begin + (end - begin == len(read.text))
                    found.append((at + begin, size, number))
                    said.append((number, end - begin))
            at += read.size
        if not found or os.fstat(fd).st_size != at:
            return []
        probe = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            may_cut(probe)
        finally:
            os.close(probe)
        with torn_appended(torn, info) as dest:
            for start, size, _ in found:
                text = os.pread(fd, size, start)
                write_whole(dest.fd, text if text.endswith(b"\n") else text + b"\n")
            try:
                _write_without(fd, path, found, end=at, mode=stat.S_IMODE(info.st_mode))
            except BaseException:
                # Renamed already (only the folder's fsync failed, or Ctrl-C came after
                # the rename): the lines are in `torn` alone now, and stay there.
                with contextlib.suppress(OSError):
                    dest.kept[0] = os.stat(path).st_ino != info.st_ino
                raise
    return said


def _write_without(
    fd: int, path: Path, found: list[tuple[int, int, int]], *, end: int, mode: int
) -> None:
    """`path` replaced by a copy of `fd`'s first `end` bytes without the `found` ranges."""
    new = path.with_name(f".{path.name}.{os.getpid()}.new")  # no load reads it
    out = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        at = 0
        for start, size in [(s, n) for s, n, _ in found] + [(end, 0)]:
            while at < start:
                chunk = os.pread(fd, min(_MOVE_CHUNK, start - at), at)
                if not chunk:
                    raise OSError(errno.EIO, f"{path} shrank while it was copied")
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view) :]
                at += len(chunk)
            at = start + size
        os.fsync(out)
        if os.fstat(fd).st_size != end:  # appended to meanwhile: its copy would lose that
            raise OSError(errno.EAGAIN, f"{path} changed while it was copied")
        os.replace(new, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(new)
        raise
    finally:
        os.close(out)
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(folder)  # the rename itself, durable
    finally:
        os.close(folder)
