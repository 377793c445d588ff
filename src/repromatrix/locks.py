"""File locks: one that serializes threads and processes alike, and the cache's.

flock on a fresh open file description per caller: two threads of one process exclude each
other too, which a process-wide lock object would not do across processes.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from repromatrix.errors import ResultsBusyError


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


#: The lock file in a cache folder: runs share it, `clean` needs it alone.
CACHE_LOCK = ".repromatrix-cache.lock"


@contextmanager
def cache_in_use(cache: Path, *, alone: bool = False) -> Iterator[None]:
    """Hold `cache` while a run or bisect uses it (shared: runs with other results
    folders may share one cache), or `alone` while `clean` empties it: a clean while a
    run works would delete its cells' folders under it (ResultsBusyError, exit 9). A
    cache that does not exist yet needs no lock to clean. Ends with the process."""
    try:
        if alone and not cache.is_dir():
            raise FileNotFoundError(cache)
        cache.mkdir(parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(cache / CACHE_LOCK, flags, 0o644)
    except OSError:
        # No cache, or one nobody can write (then nothing can be cleaned or run there
        # either, and that is said where it is tried).
        yield
        return
    try:
        if alone:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ResultsBusyError(
                    f"--cache {cache}: a repromatrix run or bisect is using it; clean it "
                    "once that has finished (clean removes what runs leave behind)"
                ) from None
        else:
            fcntl.flock(fd, fcntl.LOCK_SH)  # waits only for a clean, which is quick
        yield
    finally:
        os.close(fd)
