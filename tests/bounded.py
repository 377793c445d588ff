"""The CPU time and peak memory of one call, for the fuzz tests' per-example bounds.

Memory is the growth of this process's peak resident set (Linux's VmHWM, which writing
"5" to /proc/self/clear_refs resets to the current RSS) over the call. tracemalloc gave
the same bound at five times the cost: it records every allocation, and the fuzz tests'
4,000 examples spent 110 s of CI's time in it. Where the peak cannot be reset (not
Linux, a kernel that refuses), tracemalloc measures instead.
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def _resident() -> tuple[int, int]:
    """(current, peak) resident bytes of this process."""
    fields = {}
    for line in _STATUS.read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024
    return fields["VmRSS"], fields["VmHWM"]


def _reset_peak() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
        _resident()
    except (OSError, KeyError, ValueError):
        return False
    return True


class Spending:
    """`with Spending() as spent:` a block; then `spent.cpu_s` and `spent.peak_bytes`,
    also when the block raised."""

    def __init__(self) -> None:
        self.cpu_s = 0.0
        self.peak_bytes = 0
        self._by_rss = False
        self._before = 0
        self._started = 0.0

    def __enter__(self) -> Spending:
        self._by_rss = _reset_peak()
        if self._by_rss:
            self._before = _resident()[0]
        else:
            tracemalloc.start()
        self._started = time.process_time()
        return self

    def __exit__(self, *_: object) -> None:
        self.cpu_s = time.process_time() - self._started
        if self._by_rss:
            peak = _resident()[1] - self._before
        else:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        self.peak_bytes = max(0, peak)
