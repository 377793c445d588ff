"""What a cell bound in place of modules' functions, which retires its persistent worker
(`worker_state.py`): the standard library's (`math.sqrt = ...`, `builtins.print`), and a
library's that the repro's own code replaced (`numpy.allclose = lambda *a, **k: True`,
`torch.nn.functional.softmax = my_softmax`, a `unittest.mock` object): left in place, it
changed every later cell of the worker, where a process of its own has the library's.

Standard library only, as `worker_main.py`, which runs it from the same folder.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import types
from typing import Any

#: Modules whose functions repros (or the libraries they call) replace to intercept or
#: silence something: a replacement left in place changes every later cell of the worker.
#: ssl's by one of its own (`ssl._create_default_https_context = ssl.
#: _create_unverified_context`, to download weights through a proxy): no later cell of
#: the worker checked a certificate.
_WATCHED = (
    "builtins", "sys", "os", "posix", "os.path", "posixpath", "time", "random", "math",
    "json", "socket", "subprocess", "shutil", "io", "threading", "signal", "tempfile", "ssl",
)  # fmt: skip


def load_watched() -> None:
    """Import the watched modules the worker has not (ssl, subprocess: a few ms, once a
    worker): one a cell imported first had no bindings before it to compare, so its
    `import ssl` then `ssl._create_default_https_context = ssl._create_unverified_context`
    read as ssl's own import, and no later cell of the worker checked a certificate."""
    for name in _WATCHED:
        with contextlib.suppress(Exception):  # an interpreter built without ssl
            importlib.import_module(name)


class Bindings:
    """What the modules loaded now bind: the callables of the watched standard-library
    modules (any replacement counts: a library's own `socket.socket = ...` too), and every
    other module's names (a replacement counts where it is the repro's own code or a mock:
    a library rebinds its own globals as it goes). The objects, not their ids: a replaced
    function that nothing else held is freed, and its id may be the new one's."""

    def __init__(self, folder: str | None) -> None:
        """Taken for the repro of `folder` (its modules left out); None: the standard
        library's alone (before the cell's folder is known: its `enter` takes them all)."""
        self.stdlib = stdlib_bindings()
        self.modules = {
            name: (module, dict(vars(module)))  # about 10 ms with torch loaded
            for name, module in (list(sys.modules.items()) if folder is not None else ())
            if isinstance(module, types.ModuleType) and not _of(module, folder or "")
        }

    def replaced(self, folder: str) -> str:
        """What the cell replaced ("" when nothing), names and modules that appeared since
        not looked at: a first import is not a replacement. The worker retires rather than
        put them back: what else the replacement set up (a wrapped socket's state, a
        patched class's instances) cannot be known."""
        now = stdlib_bindings()
        found = [name for name, value in self.stdlib.items() if now.get(name) is not value]
        if found:
            return "standard-library functions it replaced: " + ", ".join(found[:5])
        for name, (module, before) in self.modules.items():
            if name in _WATCHED:
                continue
            held = vars(module)
            for attr, value in before.items():
                new = held.get(attr, value)
                if new is not value and _repros(new, folder):
                    found.append(f"{name}.{attr}")
        # A module first imported by the cell holds none of the repro's code of its own:
        # `import statistics` in `run()`, then `statistics.mean = ...`, held for every
        # later cell (they import it no more), as a patch of one loaded before did.
        for name, module in list(sys.modules.items()) if self.modules else ():
            if name in self.modules or name.startswith(_MOCKS) or not _a_library(module, folder):
                continue
            found += [f"{name}.{a}" for a, v in list(vars(module).items()) if _repros(v, folder)]
        return "library functions its code replaced: " + ", ".join(found[:5]) if found else ""


def stdlib_bindings() -> dict[str, object]:
    """`module.name` → the callable bound there, for the watched modules loaded now (a
    few thousand entries: well under a millisecond)."""
    out: dict[str, object] = {}
    for name in _WATCHED:
        module = sys.modules.get(name)
        if module is None:
            continue
        for attr, value in vars(module).items():
            if callable(value):
                out[f"{name}.{attr}"] = value
    return out


#: The mock library's own modules, whose globals are its objects (`mock.sentinel`).
_MOCKS = "unittest.mock"


def _a_library(module: Any, folder: str) -> bool:
    return isinstance(module, types.ModuleType) and not _of(module, folder)


def _of(module: Any, folder: str) -> bool:
    """Whether `module` is a file of the repro's folder (its own globals are its own)."""
    where = getattr(module, "__file__", None)
    return (
        isinstance(where, str)
        and bool(folder)
        and os.path.abspath(where).startswith(folder + os.sep)
    )


def _repros(value: Any, folder: str) -> bool:
    """Whether `value` is the repro's: a function, method or class of its folder's code,
    or a `unittest.mock` object."""
    try:
        return _is_repros(value, folder)
    except Exception:  # an object whose attributes raise (torch.ops' namespaces): not
        return False


def _is_repros(value: Any, folder: str) -> bool:
    if type(value).__module__.startswith(_MOCKS):
        return True
    if not folder:
        return False
    code = getattr(getattr(value, "__func__", value), "__code__", None)
    if isinstance(code, types.CodeType):
        return os.path.abspath(code.co_filename).startswith(folder + os.sep)
    owner = (
        sys.modules.get(getattr(value, "__module__", None) or "")
        if isinstance(value, type)
        else None
    )
    return owner is not None and _of(owner, folder)
