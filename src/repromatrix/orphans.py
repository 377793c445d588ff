"""Orphans: daemons a process of ours leaves behind (double fork, its own session, an
environment of its own), adopted as our children and ended with the cell.

Beside `proc.py`, which says what it owns while it starts nothing (`spawns_held`): a
child started a moment ago and not registered yet is no orphan. No subprocess
here: starting processes stays `proc.py`'s alone.
"""

from __future__ import annotations

import contextlib
import os
import sys

from repromatrix.proc import GROUP_TOKEN, spawns_held
from repromatrix.proctable import children, descendants, kill_all


def adopt_orphans() -> None:
    """Make this process the child subreaper of all it starts (Linux): a daemon that a
    process of ours leaves behind (double fork, its own session, an environment of its
    own: nothing of ours to find it by) becomes our child instead of init's, and
    `end_orphans` ends it."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):  # no ctypes: such daemons outlive us, as before
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


_PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>


def end_orphans() -> None:
    """SIGKILL what this process adopted (`adopt_orphans`): its children that are neither
    a live group's leader nor detached, and everything below them. One that carries a
    live group's token is that group's (a build's compiler server), ended with it."""
    with spawns_held() as owned:
        tokens = {f"{GROUP_TOKEN}={t}".encode() for t in owned.tokens}
        doomed: dict[int, bytes] = {}
        for pid, started in children(os.getpid()).items():
            if pid not in owned.pids and not tokens & set(_environ(pid)):
                doomed[pid] = started
                doomed.update(descendants(pid))
        kill_all(doomed)


def _environ(pid: int) -> list[bytes]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []
