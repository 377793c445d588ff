"""The loggers a cell may set up in a persistent worker (`worker_state.py`), put back
after it: those that existed before it as they were, the repro's own that appeared with
it as new ones are; a library's that appeared with it (its first import) left as the
library set it up, less what the repro's code gave it (handlers it made, filters of its code,
the level, propagation or disabling it set).

Standard library only, as `worker_main.py`, which runs it from the same folder.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

if __package__:  # imported as part of repromatrix (type checks)
    from repromatrix.executors.worker_code import repros_file
else:  # run from worker_main.py's folder, which is on sys.path
    from worker_code import repros_file  # type: ignore[import-not-found,no-redef]

#: Per logger that existed (None: the root), its handlers, level, propagation, whether it
#: is disabled and its filters; with `logging.disable`'s level. None before logging is
#: imported.
_Logger = tuple[list[Any], int, bool, bool, list[Any]]
_Loggers = tuple[dict[str | None, _Logger], int] | None


def loggers() -> _Loggers:
    logging = sys.modules.get("logging")
    if logging is None:
        return None
    found: dict[str | None, _Logger] = {}
    named = [(None, logging.root), *logging.root.manager.loggerDict.items()]
    for name, logger in named:
        if isinstance(logger, logging.Logger):  # not a PlaceHolder
            found[name] = (
                list(logger.handlers),
                logger.level,
                logger.propagate,
                logger.disabled,
                list(logger.filters),
            )
    return found, logging.root.manager.disable


#: The handlers made since `watch_handlers`, by id: the file of the code that made them.
_MADE: dict[int, str] = {}
#: The levels, propagation and disabling set since the cell began, by logger id: the file
#: of the code that set each, which of them, and the value it replaced (`watch_handlers`).
_LEVELS: dict[int, list[tuple[str, str, Any]]] = {}
#: A logger's attributes besides its level that code sets to quiet it.
_FLAGS = ("propagate", "disabled")


def watch_handlers() -> None:
    """Note the code that makes each handler from now on (logging imported for it, once a
    worker): a handler the repro's code made and gave the logger of a library its cell
    imported first stayed with that logger, where a process of its own has the library's
    logger as the library set it up."""
    import logging

    made = getattr(logging, "_addHandlerRef", None)
    if made is None or getattr(made, "__wrapped__", None) is not None:
        return  # a logging without it: such handlers stay, as before

    def _addHandlerRef(handler: Any) -> None:  # logging calls it by this name
        made(handler)
        with contextlib.suppress(Exception):
            _MADE[id(handler)] = _maker(sys._getframe(1), handler, logging.__file__)

    _addHandlerRef.__wrapped__ = made  # type: ignore[attr-defined]
    setattr(logging, "_addHandlerRef", _addHandlerRef)  # noqa: B010 (a private name)
    set_level = logging.Logger.setLevel

    def setLevel(self: Any, level: Any) -> None:  # logging's own name for it
        with contextlib.suppress(Exception):
            maker = _maker(sys._getframe(1), self, logging.__file__)
            _LEVELS.setdefault(id(self), []).append((maker, "level", self.level))
        set_level(self, level)

    setLevel.__wrapped__ = set_level  # type: ignore[attr-defined]
    logging.Logger.setLevel = setLevel  # type: ignore[method-assign]
    # `getLogger("asyncio").propagate = False` (or `.disabled = True`) to quiet a library:
    # plain attributes, so their setting is watched (reading them, per record, is not).
    # Patched on `logging.Logger` itself, in the worker's process alone (never the CLI's):
    # the loggers watched are the libraries', not repromatrix's, made by `getLogger` from
    # whatever class a library gave `setLoggerClass` (or by `Logger(...)` directly), so a
    # subclass of ours would miss them, and a filter sees records, never attribute sets.
    set_attr = logging.Logger.__setattr__

    def __setattr__(self: Any, name: str, value: Any) -> None:
        if name in _FLAGS and hasattr(self, name):  # not its __init__'s first setting
            with contextlib.suppress(Exception):
                maker = _maker(sys._getframe(1), self, logging.__file__)
                _LEVELS.setdefault(id(self), []).append((maker, name, getattr(self, name)))
        set_attr(self, name, value)

    __setattr__.__wrapped__ = set_attr  # type: ignore[attr-defined]
    logging.Logger.__setattr__ = __setattr__  # type: ignore[method-assign]


def _maker(frame: Any, handler: Any, logging_file: str) -> str:
    """The file of the first code above `frame` that is neither logging's nor a handler's
    own `__init__` (RichHandler's calling Handler's): the code that made `handler`."""
    own = os.path.dirname(os.path.abspath(logging_file)) + os.sep
    while frame is not None:
        where = os.path.abspath(frame.f_code.co_filename)
        mine = frame.f_code.co_name == "__init__" and frame.f_locals.get("self") is handler
        if not where.startswith(own) and not mine:
            return str(where)
        frame = frame.f_back
    return ""


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
    fresh: dict[str | None, _Logger] = {
        None: ([], logging.WARNING, True, False, [])  # imported during the cell
    }
    loggers, disabled = before if before is not None else (fresh, 0)
    logging.disable(disabled)
    for name, (handlers, level, propagate, off, filters) in loggers.items():
        logger = logging.root if name is None else logging.getLogger(name)
        _drop(logger, [h for h in logger.handlers if h not in handlers])
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate, logger.disabled = propagate, off
        # `addFilter(lambda record: False)` to silence a library silenced every later cell.
        logger.filters[:] = filters
    _library_fresh(logging, before, folder)
    _MADE.clear()
    _LEVELS.clear()


def _drop(logger: Any, handlers: list[Any]) -> None:
    for handler in handlers:
        logger.removeHandler(handler)
        with contextlib.suppress(Exception):  # the cell's handler: its close may raise
            handler.close()


def _library_fresh(logging: Any, before: _Loggers, folder: str) -> None:
    """The loggers of libraries the cell imported first lose what the repro's code gave
    them (handlers it made, filters of its code, levels, propagation and disabling it set);
    what the library set up stays."""
    known = before[0] if before is not None else {}
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if name in known or not isinstance(logger, logging.Logger):
            continue
        _drop(logger, [h for h in logger.handlers if repros_file(_MADE.get(id(h), ""), folder)])
        logger.filters[:] = [f for f in logger.filters if not _code_under(f, folder)]
        # `getLogger("urllib3").setLevel(ERROR)` (`.propagate = False`, `.disabled = True`)
        # to quiet a library the cell imported first: every later cell of the worker ran
        # with it quiet. Each goes back to what it was before the repro's code first set it
        # (the library's own, or a new logger's).
        put_back: dict[str, Any] = {}
        for maker, attribute, value in _LEVELS.get(id(logger), []):
            if attribute not in put_back and repros_file(maker, folder):
                put_back[attribute] = value
        for attribute, value in put_back.items():
            if attribute == "level":
                logger.setLevel(value)
            else:
                setattr(logger, attribute, value)


def _code_under(value: Any, folder: str) -> bool:
    """Whether `value` (a filter) is a function of the repro's code, or of a class there."""
    method = getattr(type(value), "filter", None)
    code = getattr(value, "__code__", None) or getattr(method, "__code__", None)
    return code is not None and repros_file(code.co_filename, folder)


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
            return not repros_file(getattr(module, "__file__", None), folder)
    return False
