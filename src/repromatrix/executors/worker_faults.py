"""What a cell may set up of `faulthandler` in a persistent worker (`worker_state.py`), put
back after it: the handler itself (`faulthandler.enable(file=f)`), a dump timer
(`dump_traceback_later`) and the signals registered to dump the stacks
(`faulthandler.register(signal.SIGUSR1, file=f)`), which faulthandler cannot list, so the
worker notes each registration as it is made (`watch_faults`).

Standard library only, as `worker_main.py`, which runs it from the same folder.
"""

from __future__ import annotations

import contextlib
import faulthandler
from typing import Any, cast

#: The signals registered now, by number: the arguments of the registration in force (one
#: tuple per call, so a registration made again is told from the one before it).
_REGISTERED: dict[int, tuple[tuple[Any, ...], dict[str, Any]]] = {}
#: Whether the handler is on, and the registrations in force (`faults`).
Faults = tuple[bool, dict[int, tuple[tuple[Any, ...], dict[str, Any]]]]


def watch_faults() -> None:
    """Note each registration and unregistration from now on (once a worker): a cell's
    `faulthandler.register(signal.SIGUSR1, file=f)` stayed, and a later cell's SIGUSR1
    wrote its stacks to the earlier cell's file, where a process of its own has none."""
    register, unregister = faulthandler.register, faulthandler.unregister
    if getattr(register, "__wrapped__", None) is not None:
        return

    def watched_register(signum: Any, *args: Any, **kwargs: Any) -> None:
        register(signum, *args, **kwargs)
        _REGISTERED[int(signum)] = (args, kwargs)

    def watched_unregister(signum: Any) -> Any:  # whether it was registered
        _REGISTERED.pop(int(signum), None)
        return cast("Any", unregister)(signum)

    watched_register.__wrapped__ = register  # type: ignore[attr-defined]
    watched_unregister.__wrapped__ = unregister  # type: ignore[attr-defined]
    faulthandler.register = watched_register
    faulthandler.unregister = watched_unregister


def faults() -> Faults:
    return faulthandler.is_enabled(), dict(_REGISTERED)


def restore_faults(before: Faults) -> None:
    """Put back what `faults` took: no dump timer, the registrations then (each signal the
    cell registered or unregistered), the handler on the worker's own stderr or off."""
    faulthandler.cancel_dump_traceback_later()  # a hang guard the cell left set
    enabled, registered = before
    with contextlib.suppress(Exception):  # a closed stream: the worker retires anyway
        for signum in set(_REGISTERED) | set(registered):
            if _REGISTERED.get(signum) is registered.get(signum):
                continue
            if signum in registered:
                args, kwargs = registered[signum]
                faulthandler.register(signum, *args, **kwargs)
            else:
                faulthandler.unregister(signum)
        if enabled:
            faulthandler.enable()  # on the worker's own stderr, put back before
        else:
            faulthandler.disable()
