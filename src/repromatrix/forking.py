"""When this process may fork a child to use a second CPU, and what it gives back first.

Used by the report's writers (`report/forked.py`) and by the load of a large results file
(`loadparts.py`): both fork only where it is safe and the memory is there to spare."""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading


def cpus() -> int:
    """How many CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def fork_possible() -> bool:
    """Fork only a process with one thread: a thread's lock held at fork stays held in
    the child for ever (logging's, an allocator's). Threads started by C code (Ray's
    client, gRPC) are not Python threads: the kernel's count is asked where it can be."""
    if not hasattr(os, "fork") or threading.active_count() != 1:
        return False
    try:
        return len(os.listdir("/proc/self/task")) == 1 and _memory_to_spare()
    except OSError:  # no /proc: Python's own count is all there is
        return True


def _memory_to_spare() -> bool:
    """Whether the machine has memory for a child to copy what it reads: a child copies
    the pages whose reference counts it changes (most of the records it writes), so the
    report takes up to about twice its memory while it writes. Where less than four times
    this process's resident memory is available, the files are written here in turn."""
    with open("/proc/meminfo", encoding="ascii") as f:
        available = next((int(ln.split()[1]) for ln in f if ln.startswith("MemAvailable:")), 0)
    with open("/proc/self/statm", encoding="ascii") as f:
        resident_kib = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    return available >= 4 * resident_kib


def give_back_free_memory() -> None:
    """Return the free pages of C's heap to the system (glibc's `malloc_trim`; nothing
    where there is none). Kept at a fork, they would count in both processes (a page the
    child writes is copied); and a child that wrote one file holds less for the next."""
    with contextlib.suppress(AttributeError, OSError):
        ctypes.CDLL(None).malloc_trim(0)
