"""Ctrl-C, SIGTERM and SIGHUP held off while a run cleans up: a second Ctrl-C must not
cut the clean-up short and leave process groups or containers behind. Only the main
thread may set signal handlers; elsewhere these do nothing."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


def ignore_interrupts() -> None:
    """Ignore Ctrl-C and SIGTERM from now on (the main thread only: a run's clean-up)."""
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)


@contextlib.contextmanager
def uninterruptible() -> Iterator[None]:
    """Ignore Ctrl-C and SIGTERM while cleaning up: a second one must not cut the
    clean-up short and leave process groups or containers behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    for sig in saved:
        signal.signal(sig, signal.SIG_IGN)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
