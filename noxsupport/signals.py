"""SIGTERM or SIGHUP to nox alone (a CI runner cancelling its job, `kill <nox>`) ended nox at
once and left the command it ran going on unattended (`repromatrix run`, its workers and
cells, holding the results folder). The command gets the signal too, and nox then waits for
it as for Ctrl-C (see noxfile.py's `_repromatrix`)."""

from __future__ import annotations

import contextlib
import os
import signal


def pass_signals_on() -> None:
    """Pass SIGTERM and SIGHUP to nox on to the commands it runs."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _pass_on)


def _pass_on(signum: int, frame: object) -> None:
    for child in _children(os.getpid()):
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signum)
    raise KeyboardInterrupt


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc; none where there is no /proc)."""
    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if len(fields) > 1 and fields[1] == str(pid):
                found.append(int(entry))
    return found
