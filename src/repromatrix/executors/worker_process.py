"""The worker's own process, apart from the cells it runs: it ends with the process that
started it, tells itself from a process a cell forked (which ends where it comes back
to the worker's code, its fd of the harness's connection on /dev/null), and says its
memory after each cell.

Standard library only, as `worker_main.py`, which runs it from the same folder.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time


def end_with_parent(parent: int) -> None:
    """When the process that started this worker dies (a Ray actor killed, a harness
    killed with -9), end the worker and the processes of its cell at once, instead of
    running the cell on past its timeout beside the cell's next attempt."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        with contextlib.suppress(OSError):
            if os.getpgid(0) == os.getpid():  # our own group: the cell's processes too
                os.killpg(0, signal.SIGKILL)
        os._exit(1)

    if parent > 1:  # under a container's init, the parent is that init for good
        threading.Thread(target=watch, name="repromatrix-parent-watch", daemon=True).start()


_WORKER: dict[str, int] = {}  # the worker's own pid (a process a cell forked has another)


def mark_worker() -> None:
    """Note this process as the worker (`child_exits` tells a cell's forked child by it)."""
    _WORKER["pid"] = os.getpid()


def forget(fd: int) -> None:  # in a forked child: the connection's fd on /dev/null
    with contextlib.suppress(OSError):
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, fd)
        os.close(null)


def child_exits(code: int) -> None:
    """A process a cell forked, back in the worker's code (its function returned, raised
    or exited): it ends here, as a forked `python SCRIPT` child would, and never writes
    the cell's result or talks to the harness."""
    if _WORKER and os.getpid() != _WORKER["pid"]:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def rss_mb() -> float:  # now, not the peak: memory a cell gave back does not count
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0
