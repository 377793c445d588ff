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
import errno
import os
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
    # A fresh file (O_EXCL, never through a link the repro left in its folder), then
    # renamed over the log.
    tmp = path.with_name(f".{path.name}.trimmed")
    tmp.unlink(missing_ok=True)
    try:
        out = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644
        )
        with os.fdopen(out, "w", encoding="utf-8", errors="replace") as f:
            f.write(header + kept)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        _cut_in_place(path, (header + kept).encode("utf-8", errors="replace"), size)
    return max(0, size - path.stat().st_size)


def _cut_in_place(path: Path, payload: bytes, size: int) -> None:
    """Write `payload` over the start of the log and cut it there: a disk the log itself
    filled has no room for a second file, and a log left whole keeps it full for every
    later cell. Only ever shrinks the file (a longer payload raises)."""
    if len(payload) > size:
        raise OSError(errno.ENOSPC, "no room to rewrite the log")
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        done = 0
        while done < len(payload):
            done += os.pwrite(fd, payload[done:], done)
        os.ftruncate(fd, len(payload))
    finally:
        os.close(fd)
