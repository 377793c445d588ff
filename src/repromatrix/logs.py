"""Logs of finished cells, trimmed to their tails once the cell is recorded.

Each cell's work folder (`<cache>/runs/<run id>/<key>`) keeps what its processes printed:
`stdout.log`, `stderr.log` and `env-build.log` (pip's and git's output). A flashinfer JIT
build or a chatty repro writes megabytes per cell, and one run of the matrix left 400 MiB
behind. The record already holds the tails it needs; the folder keeps the last
`KEEP_BYTES` of each log (what says how it ended), redacted like the record (the result
JSON too, kept whole unless larger than a result JSON may be), unless `run --keep-logs`
asked for whole logs: those lose only the session's secret values. Cancelled cells have
no record and keep theirs; a cell stopped by a full disk has none either, and its logs are
cut all the same, as they may be what filled it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat
import threading
from collections.abc import Iterable
from pathlib import Path

from repromatrix import redact
from repromatrix.bounds import MAX_RESULT_JSON_BYTES
from repromatrix.proc import open_regular, regular_tail

#: The logs a cell's work folder holds (executors write them; see executors/local.py).
CELL_LOGS = ("stdout.log", "stderr.log", "env-build.log")
#: The repro's result JSON (executors/base.RESULT_FILE): kept whole, but redacted too.
RESULT_JSON = "result.json"
#: How much of each log's end stays.
KEEP_BYTES = 64 * 1024
#: How much of a log is redacted at a time when it is kept whole.
_PIECE = 1 << 20

_keep = threading.Event()


def keep_whole(keep: bool) -> None:
    """`run --keep-logs`: leave every log whole (the choice holds for this process)."""
    if keep:
        _keep.set()
    else:
        _keep.clear()


def cut_for_room(workdir: Path, cache: str = "--cache") -> str:
    """Cut the logs of a cell stopped by a full disk (they may be what filled it: left
    whole, they kept the disk full for every later run), and say so for the run's message;
    `cache`: the option that names that disk's folder ("" when nothing was freed)."""
    freed = trim_cell_logs(workdir, because="the disk filled")
    if not freed:
        return ""
    return (
        f"the cell's own logs held {freed // 1024:,} KiB of it and are cut to their last "
        f"{KEEP_BYTES // 1024} KiB in {workdir} (a repro that prints more than that disk "
        f"holds needs a {cache} with more room); "
    )


def trim_cell_logs(
    workdir: Path, *, keep_bytes: int = KEEP_BYTES, because: str = "the cell was recorded"
) -> int:
    """Cut each log of a recorded cell to its last `keep_bytes` (from a line start when one
    is near), redacted; returns the bytes freed. Never raises: a log that cannot be trimmed
    stays as it is, and the run goes on."""
    if workdir.is_symlink():
        return 0  # the cell replaced its folder with a link: nothing is written through it
    if _keep.is_set():
        # Whole, but still without the session's secrets (line by line: a log may be
        # hundreds of megabytes).
        for name in (*CELL_LOGS, RESULT_JSON):
            with contextlib.suppress(OSError):
                _redact_whole(workdir / name)
        return 0
    freed = 0
    for name in CELL_LOGS:
        with contextlib.suppress(OSError):
            freed += _trim(workdir / name, keep_bytes, because)
    with contextlib.suppress(OSError):
        result = workdir / RESULT_JSON
        # Kept whole when it could be a result; one past the bound was never read as one
        # (its record says so), and read whole a 10 GiB file (a sparse one is made in an
        # instant) took the runner's memory, and with it the run.
        big = result.stat(follow_symlinks=False).st_size > MAX_RESULT_JSON_BYTES
        freed += _trim(result, keep_bytes if big else None, because)
    return freed


def trim_worker_logs(paths: Iterable[Path], *, keep_bytes: int = KEEP_BYTES) -> int:
    """Persistent workers' own logs (what a worker printed outside its cells, such as a
    crash before its first cell), trimmed and redacted as a cell's are, once the session
    that ran them has stopped them. Never raises."""
    freed = 0
    for path in paths:
        with contextlib.suppress(OSError):
            if _keep.is_set():
                _redact_whole(path)
            else:
                freed += _trim(path, keep_bytes)
    return freed


def _redact_whole(path: Path) -> None:
    values = [v.encode() for v in redact.current().values]
    if not values:
        return
    tmp = path.with_name(f".{path.name}.redacted")
    changed = False
    # A piece at a time, not a line: a log of gigabytes without a newline (binary output)
    # was read whole. The last bytes of each piece wait for the next, so a value split
    # between two pieces is found.
    held = max(len(v) for v in values) - 1
    with open_regular(path) as src:
        if src is None:
            return
        tmp.unlink(missing_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            with os.fdopen(os.open(tmp, flags, 0o644), "wb") as out:
                rest = b""
                while piece := src.read(_PIECE):
                    data = rest + piece
                    clean = data
                    for value in values:
                        clean = clean.replace(value, redact.MASK.encode())
                    changed = changed or clean != data
                    cut = max(0, len(clean) - held)
                    out.write(clean[:cut])
                    rest = clean[cut:]
                out.write(rest)
        except OSError:
            tmp.unlink(missing_ok=True)  # a full disk: never leave it fuller
            raise
    if changed:
        os.replace(tmp, path)
    else:
        tmp.unlink()


def _trim(path: Path, keep_bytes: int | None, because: str = "the cell was recorded") -> int:
    found = regular_tail(path, keep_bytes)
    if found is None:
        return 0
    data, size = found
    text = data.decode(errors="replace")
    kept = redact.current().text(text)
    if len(data) == size and kept == text:
        return 0  # small and clean: leave the file (and its bytes) as they are
    header = (
        f"[repromatrix: the first {size - len(data):,} bytes were cut when {because}; "
        "run with --keep-logs to keep whole logs]\n"
        if len(data) < size
        else ""
    )
    payload = (header + kept).encode("utf-8", errors="replace")
    try:
        _replace_with(path, payload)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        if len(data) == size:
            # Nothing to cut, only secrets to mask: left as it is, the log keeps them.
            _rewrite_in_place(path, payload, size)
            return max(0, size - path.stat().st_size)
        # No room for the copy: the log itself may be what filled the disk, and left
        # whole it keeps the disk full for every later cell. Its head's space is given
        # back where it lies (it reads as NUL bytes; every other byte stays where it
        # was, so a reader, or the log after a crash here, sees the old log, never a
        # mix), and the copy is tried again in that room.
        before = path.stat().st_blocks
        _punch_head(path, size - len(data))
        with contextlib.suppress(OSError):
            _replace_with(path, payload)
            return max(0, size - path.stat().st_size)
        return max(0, before - path.stat().st_blocks) * 512  # the room freed, uncut
    return max(0, size - path.stat().st_size)


def _replace_with(path: Path, payload: bytes) -> None:
    """`path` replaced by a fresh file holding `payload` (O_EXCL, never through a link the
    repro left in its folder), renamed over it: a reader sees the old log or the new."""
    tmp = path.with_name(f".{path.name}.trimmed")
    tmp.unlink(missing_ok=True)
    try:
        out = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644
        )
        with os.fdopen(out, "wb") as f:
            f.write(payload)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def _rewrite_in_place(path: Path, payload: bytes, size: int) -> None:
    """Write `payload` (the redacted log, never longer) over the log and cut it there: the
    one way to mask a secret where no copy fits. Only for a log nothing is cut from: a
    reader in between sees the end of the old text after the new, a moment's mix of one
    log's own lines, never a head lost for good."""
    if len(payload) > size:
        raise OSError(errno.ENOSPC, "no room to rewrite the log")
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            raise OSError(errno.EMLINK, f"{path} has another name: left as it is")
        done = 0
        while done < len(payload):
            done += os.pwrite(fd, payload[done:], done)
        os.ftruncate(fd, len(payload))
    finally:
        os.close(fd)


def _punch_head(path: Path, length: int) -> None:
    """The space of the first `length` bytes of `path` given back to the disk, the file's
    size and every later byte as they were (fallocate's PUNCH_HOLE: ext4, xfs, btrfs,
    tmpfs, NFS 4.2). OSError where the filesystem or the platform cannot: the log then
    stays whole, as a copy could not be made."""
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            # A file under another name too (a repro's hard link to a file of the disk):
            # that name would lose its head; the rename replaces this name alone.
            raise OSError(errno.EMLINK, f"{path} has another name: left as it is")
        punch_hole(fd, 0, length)
    finally:
        os.close(fd)


#: fallocate(2)'s mode bits (linux/falloc.h): free the range, keep the file's size.
_FALLOC_FL_KEEP_SIZE, _FALLOC_FL_PUNCH_HOLE = 0x01, 0x02


def punch_hole(fd: int, offset: int, length: int) -> None:
    """fallocate(fd, PUNCH_HOLE | KEEP_SIZE, offset, length): Python's `os` has no call
    for it (only posix_fallocate, which allocates)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        # fallocate64: a 64-bit offset on 32-bit glibc too; newer musl has fallocate alone.
        fallocate = getattr(libc, "fallocate64", None) or libc.fallocate
    except (OSError, AttributeError) as exc:  # not Linux
        raise OSError(errno.EOPNOTSUPP, "fallocate is not available here") from exc
    fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
    fallocate.restype = ctypes.c_int
    mode = _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE
    if fallocate(fd, mode, offset, length) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
