"""File locks: one that serializes threads and processes alike, the cache's, and the
results folder's (one run at a time).

flock on a fresh open file description per caller: two threads of one process exclude each
other too, which a process-wide lock object would not do across processes.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from repromatrix.errors import OutputError, ResultsBusyError, StoreError
from repromatrix.safetext import excerpt


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
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a link where the lock goes: nobody could hold it
            raise OutputError(
                f"--cache {cache}: its lock file {CACHE_LOCK} is a link, so a run and a "
                "clean could not exclude each other; remove the link (runs make the file)"
            ) from None
        # No cache, or one nobody can write (then nothing can be cleaned or run there
        # either, and that is said where it is tried).
        yield
        return
    try:
        if alone:
            try:
                _flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, f"--cache {cache}", CACHE_LOCK)
            except BlockingIOError:
                raise ResultsBusyError(
                    f"--cache {cache}: a repromatrix run or bisect is using it; clean it "
                    "once that has finished (clean removes what runs leave behind)"
                ) from None
        else:
            # Waits only for a clean, which is quick.
            _flock(fd, fcntl.LOCK_SH, f"--cache {cache}", CACHE_LOCK)
        yield
    finally:
        os.close(fd)


# -- one run per results folder ---------------------------------------------------------

#: The lock file in a results folder (git-ignored; its text names the run holding it).
LOCK_NAME = ".repromatrix-run.lock"


@dataclass(frozen=True)
class _Held:
    """A results folder a run holds: its own (`link` None), or the one its results file
    is a link into (`link`: that file's name)."""

    fd: int
    folder: Path
    link: str | None = None


@contextmanager
def results_lock(
    root: Path,
    *,
    file: Path | None = None,
    wait: bool = False,
    waiting: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold `root` for one run: a second run refuses (ResultsBusyError, exit 9) or, with
    `wait`, blocks until the first ends. A flock: it ends with its process, however that
    ends (kill -9 included), and is not inherited by the cells' processes (close-on-exec).
    Reading results (`report`) takes no lock: appends are whole lines.

    With `file` (the run's results file) a link into another folder, that folder is held
    too: a run on it appends to the same file, and its repair step rewrites it. The two
    are taken in one order, by resolved path, whichever the run was given: two runs whose
    folders' files link into each other each held its own and, with --wait, waited for
    the other's for ever.
    """
    fd = _results_fd(root)
    held = [_Held(fd, root)]
    try:
        folder = _linked_folder(root, file) if file is not None else None
        if folder is not None and file is not None:
            with suppress(OSError):
                # A folder nobody may write: nothing will be appended there either.
                held.append(_Held(_lock_fd(folder), folder, file.name))
        for lock in sorted(held, key=lambda h: str(h.folder.resolve())):
            _take(lock, root, wait=wait, waiting=waiting)
        yield
    finally:
        for lock in held:
            os.close(lock.fd)  # releases the lock


def _results_fd(root: Path) -> int:
    """The lock file of the results folder `root`, made (with the folder) where missing."""
    if root.is_symlink() and not root.exists():
        # mkdir would say "File exists" of it.
        what = "its target is gone"
        try:
            root.stat()
        except OSError as exc:
            what = "a loop" if exc.errno == errno.ELOOP else what
        raise OutputError(
            f"--results {root}: a link that leads nowhere ({what}); pass a results folder, "
            "or make the folder the link points to"
        )
    if root.exists() and not root.is_dir():
        raise OutputError(
            f"--results {root}: not a folder (a run appends to the JSONL files of a results "
            "folder); pass a folder, such as the one that holds this file"
        )
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"--results {root}: cannot use it for results ({exc.strerror or exc}); {_fix(exc)}"
        ) from None
    try:
        return _lock_fd(root)
    except OSError as exc:
        why = exc.strerror or str(exc)
        if not os.path.lexists(root / LOCK_NAME):  # it could not be made (a full disk)
            raise StoreError(
                f"--results {root}: cannot use it for results ({why}); {_fix(exc)}"
            ) from None
        raise StoreError(  # a folder or a device where the lock file goes
            f"--results {root}: cannot use it for results ({LOCK_NAME}: {why}): remove "
            f"{LOCK_NAME} there (runs make it), or pass another folder"
        ) from None


def _fix(exc: OSError) -> str:
    """What to do when the results folder, or its lock file, could not be made: a full
    disk (of bytes or of inodes) is writable, and wants room, not a permission."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "make room there, or pass another results folder"
    return "pass a writable folder"


def _linked_folder(root: Path, file: Path) -> Path | None:
    """The folder the results `file` of `root` is a link into: None when it is no link,
    or a link within `root`, or leads nowhere (the run refuses it)."""
    try:
        target = file.resolve(strict=True) if file.is_symlink() else None
    except (OSError, RuntimeError):  # a link to nothing, or a loop
        return None
    if target is None or target.parent == root.resolve():
        return None
    return target.parent


def _take(lock: _Held, root: Path, *, wait: bool, waiting: Callable[[str], None] | None) -> None:
    """flock `lock` for the run on `root`: ResultsBusyError (exit 9) when another run
    holds it, or, with `wait`, once that run has ended."""
    folder, link = lock.folder, lock.link
    where = f"--results {root}" + (f" (its {link} is a link into {folder})" if link else "")
    try:
        _flock(lock.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, where, LOCK_NAME)
    except BlockingIOError:
        holder = _holder(lock.fd)
        if not wait:
            said = (
                f"--results {root}: its {link} is a link into {folder}, which another "
                f"repromatrix run is using{holder}"
                if link
                else f"--results {root}: another repromatrix run is using it{holder}"
            )
            raise ResultsBusyError(
                f"{said}; wait for it to finish, pass --wait to start when it does, or use "
                "another --results folder"
            ) from None
        if waiting is not None:
            waiting(f"waiting for another run to finish with {folder}{holder}")
        _flock(lock.fd, fcntl.LOCK_EX, where, LOCK_NAME)
    _claim(lock.fd)


def _flock(fd: int, operation: int, where: str, name: str) -> None:
    """flock `fd`; BlockingIOError (held) is the caller's to say, and a file system that
    has no locks (NFS without its lock service: ENOLCK) is StoreError (exit 8) naming
    the folder, where it was an internal error (exit 70)."""
    try:
        fcntl.flock(fd, operation)
    except BlockingIOError:
        raise
    except OSError as exc:
        raise StoreError(
            f"{where}: cannot lock it ({name}: {exc.strerror or exc}), which a run does so "
            "that no other works there at once; pass a folder on a file system with locks "
            "(a local disk, or NFS with its lock service running)"
        ) from None


def _lock_fd(root: Path) -> int:
    # Never through a link: the lock file is written (who holds it), and a link left there
    # would have that line overwrite whatever file it points to.
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        return os.open(root / LOCK_NAME, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OutputError(
                f"--results {root}: {LOCK_NAME} there is a link, which repromatrix would "
                "write through; remove it"
            ) from None
        if exc.errno not in (errno.EACCES, errno.EROFS, errno.EPERM):
            raise
    # A folder we may not write to: lock the folder itself (nothing will be appended
    # there, but two runs still must not both try).
    return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:  # the folder itself, not a file
        return ""
    return f" ({excerpt(text, 120)})" if text else ""


def _claim(fd: int) -> None:
    since = datetime.now(UTC).isoformat(timespec="seconds")
    with suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(
            fd, f"pid {os.getpid()} on {socket.gethostname() or 'host'} since {since}\n".encode(), 0
        )


# -- a folder whose files live processes run ----------------------------------------------

#: The lock file in `<cache>/workers/`: held (shared) by every process whose persistent
#: workers run the worker program copied there, tried (exclusive) by `clean`.
WORKERS_LOCK = ".in-use.lock"


def hold_folder(folder: Path) -> int | None:
    """A shared flock on `folder`'s WORKERS_LOCK, held until the fd is closed (or the
    process ends): a Ray node's cells run in Ray's worker processes, which hold no run's
    cache lock, so `clean` took the worker program from under their workers. None when
    the folder takes no lock (its cells fail elsewhere, and say so)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / WORKERS_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    except OSError:
        os.close(fd)
        return None
    return fd


def folder_in_use(folder: Path) -> bool:
    """Whether a live process holds `folder`'s WORKERS_LOCK (`hold_folder`)."""
    try:
        fd = os.open(folder / WORKERS_LOCK, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return False  # no lock file: nothing made there holds it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False
