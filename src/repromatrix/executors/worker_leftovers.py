"""What a cell of a persistent worker (`worker_main.py`) may leave running or holding that
no restore can take back, so the worker is replaced after it: threads, processes, file
locks, descriptors up to the limit; the worker as the subreaper of its cells' daemons; and
what a try of a cell that runs again in a fresh worker made in its folder.

Standard library only, as `worker_main.py`, which runs it from the same folder.
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import threading
import time
from typing import Any

if __package__:  # imported as part of repromatrix (type checks)
    from repromatrix.executors.worker_code import repros_file
else:  # run from worker_main.py's folder, which is on sys.path
    from worker_code import repros_file  # type: ignore[import-not-found,no-redef]


def adopt_orphans() -> None:
    """Become the child subreaper of what the cells start (Linux): a daemon a cell leaves
    (double fork, its own session and environment: no harness token) is then this
    worker's child instead of init's, so the harness finds it below the worker, and the
    worker's replacement ends it as a process per cell ends with its children."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):  # no ctypes (a minimal image): as before
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


_PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>


def locks_held() -> set[tuple[str, ...]]:
    """The file locks this process holds (flock, POSIX record locks), as /proc/locks shows
    them: kind, file (device:inode) and range. Empty where there is no /proc/locks."""
    me = str(os.getpid())
    held = set()
    with contextlib.suppress(OSError), open("/proc/locks") as f:
        for line in f:
            fields = line.split()  # "1: FLOCK ADVISORY WRITE PID DEV:INODE START END"
            if len(fields) == 8 and fields[4] == me:
                held.add((fields[1], *fields[5:]))
    return held


def descriptors() -> int:
    """How many descriptors this process has open (0 where /proc cannot say)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def crowded(before: int) -> str:
    """Descriptors the cell left open ("" when few): once they take half the limit, the
    next cells of the worker could not open their logs and results ("Too many open
    files"), innocent ones included, where a process per cell closes them as it ends."""
    now = descriptors()
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if now <= before or soft == resource.RLIM_INFINITY or now * 2 < soft:
        return ""
    return f"descriptors it left open ({now} of the limit {soft})"


def left_threads(folder: str) -> bool:
    """Whether threads other than the main one run on that the interpreter would wait for
    (a `threading.Timer`), or daemon threads running the repro's own code (its folder's:
    a loop that keeps printing into, or changing the state of, the next cells). Daemon
    threads of libraries and the idle workers of a thread pool (library state, as tqdm's
    monitor or a compiler's pool) are not counted."""
    pool = getattr(sys.modules.get("concurrent.futures.thread"), "_worker", None)
    frames = sys._current_frames() if folder else {}
    for t in threading.enumerate()[1:]:
        if not t.is_alive() or (pool is not None and getattr(t, "_target", None) is pool):
            continue
        if not t.daemon or _runs_in(frames.get(t.ident or -1), folder):
            return True
    return False


def own(obj: Any, folder: str) -> bool:
    """Whether `obj` (an import finder or path hook: a function, a class, an instance) is
    code of a file under the repro's `folder`, not a library's."""
    target = obj if isinstance(obj, type) or hasattr(obj, "__code__") else type(obj)
    codes = [getattr(target, "__code__", None)]
    codes += [getattr(getattr(v, "__func__", v), "__code__", None) for v in vars(target).values()]
    return any(repros_file(code.co_filename, folder) for code in codes if code is not None)


def _runs_in(frame: Any, folder: str) -> bool:
    """Whether a frame of this stack runs the repro's own code (`worker_code`: not a
    library's below its folder, nor this program's copy under it, whose threads are the
    worker's own)."""
    while frame is not None:
        if repros_file(frame.f_code.co_filename, folder):
            return True
        frame = frame.f_back
    return False


#: The token every process the worker starts inherits (`proc.GROUP_TOKEN`), as the worker
#: was started with it (a cell may change os.environ).
_TOKEN = os.environ.get("REPROMATRIX_GROUP_TOKEN", "")


def boot_ticks() -> int:
    """Now, in the clock ticks since boot that /proc/PID/stat gives a process's start in."""
    try:
        return int(time.clock_gettime(time.CLOCK_BOOTTIME) * os.sysconf("SC_CLK_TCK"))
    except (AttributeError, OSError, ValueError):  # no /proc start times to compare with
        return 0


def a_process_left(since: int) -> bool:
    """Whether a process the cell started still runs: its child, or a daemon that left the
    worker's group (it carries the worker's token). A process per cell has them ended with
    it; here the worker is replaced, which ends them (killing them alone could break a
    library whose pool they are). multiprocessing's own helpers (resource tracker, fork
    server: one per process, reused) are library state. Only processes started since
    `since` (the cell's start) are looked at, so the environments of few are read."""
    if not since or not os.path.isdir("/proc/self"):
        return False
    me, helpers = os.getpid(), _multiprocessing_helpers()
    with os.scandir("/proc") as entries:  # closed on the early return too
        for entry in entries:
            if not entry.name.isdigit() or int(entry.name) in helpers or int(entry.name) == me:
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[-1].split()
                if fields[0] in (b"Z", b"X") or int(fields[19]) < since - 1:
                    continue
                mine = int(fields[1]) == me or _carries_token(entry.name)  # a child, a daemon
                if mine and not _library_pool(entry.name):
                    return True
            except (OSError, ValueError, IndexError):
                continue
    return False


def _carries_token(pid: str) -> bool:
    if not _TOKEN:
        return False
    with open(f"/proc/{pid}/environ", "rb") as f:
        return f"REPROMATRIX_GROUP_TOKEN={_TOKEN}".encode() in f.read().split(b"\0")


#: Command lines of a library's own process pool, started once per process and reused by
#: every later cell: torch.compile's compile workers (a subprocess and the workers it
#: forks, which keep its command line). Retiring the worker for them would make every
#: cell of a torch.compile repro pay a fresh process, CUDA start and compile again.
_LIBRARY_POOLS = (b"_inductor/compile_worker", b"_inductor.compile_worker")


def _library_pool(pid: str) -> bool:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        cmdline = f.read()
    return any(pool in cmdline for pool in _LIBRARY_POOLS)


def _multiprocessing_helpers() -> set[int]:
    pids = set()
    for module, obj, attr in (
        ("multiprocessing.resource_tracker", "_resource_tracker", "_pid"),
        ("multiprocessing.forkserver", "_forkserver", "_forkserver_pid"),
    ):
        pid = getattr(getattr(sys.modules.get(module), obj, None), attr, None)
        if isinstance(pid, int):
            pids.add(pid)
    return pids


def folder_names(folder: str) -> frozenset[str] | None:
    """The names in a cell's folder before the cell runs (what the harness put there: its
    logs), for `undo_try`; None where it cannot be listed."""
    try:
        return frozenset(os.listdir(folder))
    except OSError:
        return None


def undo_try(folder: str, before: frozenset[str] | None) -> None:
    """Remove what a try of a cell made in its `folder` (names not in `before`), so that
    the try in a fresh worker meets the folder as a process of its own would: a
    `checkout` the first try cloned there failed the second ("File exists"), whose record
    named that instead of the repro's failure. Nothing is followed through a link."""
    if before is None:
        return
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:  # the cell removed its folder, or put a link there: the harness says
        return
    try:
        for name in set(os.listdir(fd)) - before:
            _remove(name, fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove(name: str, dir_fd: int) -> None:
    with contextlib.suppress(OSError, RecursionError):
        try:
            os.unlink(name, dir_fd=dir_fd)
            return
        except (IsADirectoryError, PermissionError):  # a folder: EISDIR (EPERM elsewhere)
            pass
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
        try:
            for child in os.listdir(fd):
                _remove(child, fd)
        finally:
            os.close(fd)
        os.rmdir(name, dir_fd=dir_fd)


def monitoring_tools() -> dict[int, str]:
    """The `sys.monitoring` tool ids in use, with their tools' names (none before 3.12)."""
    monitoring: Any = getattr(sys, "monitoring", None)
    found: dict[int, str] = {}
    for tool in range(6) if monitoring is not None else ():  # the ids tools may claim
        with contextlib.suppress(Exception):
            name = monitoring.get_tool(tool)
            if name is not None:
                found[tool] = name
    return found


def tools_claimed(before: dict[int, str], folder: str) -> str:
    """The `sys.monitoring` tool ids claimed since `before` and still held by the repro's
    code: its callbacks are, or it has none ("" when none). A tool the cell left
    (`use_tool_id`, never `free_tool_id`) saw every later cell's events, and a later
    cell's `use_tool_id` of that id raised "tool N is already in use"; none can be taken
    back whole (its events set on code objects cannot be listed). A library's stays."""
    monitoring = getattr(sys, "monitoring", None)
    claimed = []
    for tool, name in monitoring_tools().items():
        if before.get(tool) != name:
            callbacks = _callbacks(monitoring, tool)
            if not callbacks or any(own(callback, folder) for callback in callbacks):
                claimed.append(f"{tool} ({name})")
    if not claimed:
        return ""
    return "sys.monitoring tool ids it claimed and kept: " + ", ".join(claimed)


def _callbacks(monitoring: Any, tool: int) -> list[Any]:
    """The callbacks registered for `tool` (each taken off and put back: none can be read)."""
    events = vars(monitoring.events).items()
    found = []
    for event in [v for k, v in events if k.isupper() and v and not v & (v - 1)]:
        with contextlib.suppress(Exception):
            callback = monitoring.register_callback(tool, event, None)
            if callback is not None:
                monitoring.register_callback(tool, event, callback)
                found.append(callback)
    return found
