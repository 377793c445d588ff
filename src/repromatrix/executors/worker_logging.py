"""The loggers a cell may set up in a persistent worker (`worker_state.py`), put back
after it: those that existed before it as they were, the repro's own that appeared with
it as new ones are; a library's that appeared with it (its first import) left as they are.

Standard library only, as `worker_main.py`, which runs it from the same folder.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

#: Per logger that existed (None: the root), its handlers, level, propagation and
#: whether it is disabled; with `logging.disable`'s level. None before logging is imported.
_Loggers = tuple[dict[str | None, tuple[list[Any], int, bool, bool]], int] | None


def loggers() -> _Loggers:
    logging = sys.modules.get("logging")
    if logging is None:
        return None
    found: dict[str | None, tuple[list[Any], int, bool, bool]] = {}
    named = [(None, logging.root), *logging.root.manager.loggerDict.items()]
    for name, logger in named:
        if isinstance(logger, logging.Logger):  # not a PlaceHolder
            found[name] = (list(logger.handlers), logger.level, logger.propagate, logger.disabled)
    return found, logging.root.manager.disable


def restore_loggers(before: _Loggers, folder: str) -> None:
    """Put back the loggers that existed before the cell: a cell's `logging.basicConfig`
    or handler made every later cell's `basicConfig` do nothing and sent its lines to the
    earlier cell's file. A handler the cell added is closed (a file in its folder). Loggers
    that appeared with the cell are a library's (its first import), left as they are,
    unless they are the repro's own (`_own_fresh`)."""
    logging = sys.modules.get("logging")
    if logging is None:
        return
    _own_fresh(logging, before, folder)
    fresh: dict[str | None, tuple[list[Any], int, bool, bool]] = {
        None: ([], logging.WARNING, True, False)  # imported during the cell
    }
    loggers, disabled = before if before is not None else (fresh, 0)
    logging.disable(disabled)
    for name, (handlers, level, propagate, off) in loggers.items():
        logger = logging.root if name is None else logging.getLogger(name)
        for handler in [h for h in logger.handlers if h not in handlers]:
            logger.removeHandler(handler)
            with contextlib.suppress(Exception):  # the cell's handler: its close may raise
                handler.close()
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate, logger.disabled = propagate, off


def _own_fresh(logging: Any, before: _Loggers, folder: str) -> None:
    """The loggers that appeared with the cell and are named for no module outside the
    repro's folder (`getLogger("myrepro")`, its module's `__name__`), as a new one is: a
    cell's `getLogger("myrepro").addHandler(...)` in `run()` was met by the next cell's
    one more, its lines written twice, the first to the earlier cell's file."""
    known = before[0] if before is not None else {}
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if name in known or not isinstance(logger, logging.Logger) or _a_librarys(name, folder):
            continue
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            with contextlib.suppress(Exception):  # the cell's handler: its close may raise
                handler.close()
        logger.filters.clear()
        logger.setLevel(logging.NOTSET)
        logger.propagate, logger.disabled = True, False


def _a_librarys(name: str, folder: str) -> bool:
    """Whether logger `name` is named for a module (or a package above it) loaded from
    outside the repro's folder: a library's, set up by its import."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        module = sys.modules.get(".".join(parts[:end]))
        if module is not None:
            where = getattr(module, "__file__", None)
            mine = (
                folder
                and isinstance(where, str)
                and os.path.abspath(where).startswith(folder + os.sep)
            )
            return not mine
    return False


def _under(path: str, folder: str) -> bool:
    return os.path.abspath(path).startswith(folder + os.sep)
