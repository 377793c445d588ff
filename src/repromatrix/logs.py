"""Logs of finished cells, trimmed to their tails once the cell is recorded.

Each cell's work folder (`<cache>/runs/<run id>/<key>`) keeps what its processes printed:
`stdout.log`, `stderr.log` and `env-build.log` (pip's and git's output). A flashinfer JIT
build or a chatty repro writes megabytes per cell, and one run of the matrix left 400 MiB
behind. The record already holds the tails it needs; the folder keeps the last
`KEEP_BYTES` of each log (what says how it ended), redacted like the record (the result
JSON too, kept whole), unless `run --keep-logs` asked for whole logs. Cancelled cells have
no record and keep theirs.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from pathlib import Path

from repromatrix import redact

#: The logs a cell's work folder holds (executors write them; see executors/local.py).
CELL_LOGS = ("stdout.log", "stderr.log", "env-build.log")
#: The repro's result JSON (executors/base.RESULT_FILE): kept whole, but redacted too.
RESULT_JSON = "result.json"
#: How much of each log's end stays.
KEEP_BYTES = 64 * 1024

_keep = threading.Event()


def keep_whole(keep: bool) -> None:
    """`run --keep-logs`: leave every log whole (the choice holds for this process)."""
    if keep:
        _keep.set()
    else:
        _keep.clear()


def trim_cell_logs(workdir: Path, *, keep_bytes: int = KEEP_BYTES) -> int:
    """Cut each log of a recorded cell to its last `keep_bytes` (from a line start when one
    is near), redacted; returns the bytes freed. Never raises: a log that cannot be trimmed
    stays as it is, and the run goes on."""
    if _keep.is_set():
        return 0
    freed = 0
    for name in CELL_LOGS:
        with contextlib.suppress(OSError):
            freed += _trim(workdir / name, keep_bytes)
    with contextlib.suppress(OSError):
        _trim(workdir / RESULT_JSON, None)
    return freed


def _trim(path: Path, keep_bytes: int | None) -> int:
    # O_NOFOLLOW: a repro may have replaced its log by a link to a file that is not ours.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return 0
        size = info.st_size
        start = 0 if keep_bytes is None else max(0, size - keep_bytes)
        data = os.pread(fd, size - start, start)
    finally:
        os.close(fd)
    if start > 0:
        newline = data.find(b"\n")
        if 0 <= newline < 512:
            data = data[newline + 1 :]
    text = data.decode(errors="replace")
    kept = redact.current().text(text)
    if start == 0 and kept == text:
        return 0  # small and clean: leave the file (and its bytes) as they are
    header = (
        f"[repromatrix: the first {size - len(data):,} bytes were cut when the cell was "
        "recorded; run with --keep-logs to keep whole logs]\n"
        if start > 0
        else ""
    )
    # A fresh file (O_EXCL, never through a link the repro left in its folder), then
    # renamed over the log.
    tmp = path.with_name(f".{path.name}.trimmed")
    tmp.unlink(missing_ok=True)
    out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(out, "w", encoding="utf-8", errors="replace") as f:
        f.write(header + kept)
    os.replace(tmp, path)
    return max(0, size - path.stat().st_size)
