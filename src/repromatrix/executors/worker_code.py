"""Which code is the repro's own, for every rule of a persistent worker (`worker_main.py`)
that tells what a repro's code did from what a library's did: a replaced function
(`worker_bindings.py`), an audit or fork hook and an environment variable set at import
(`worker_settings.py`), a logger's handler or filter (`worker_logging.py`), an import hook
or a daemon thread (`worker_leftovers.py`), an exit handler (`worker_scripts.py`).

The repro's code is a file under its script's folder, but not one of a library installed
below it (a `.venv` beside the script: its `site-packages`, or the running interpreter's
own prefix there), nor this program's own copy (under the repro's folder when the cache
is). Each rule once read it its own way: a library in a `.venv` beside the script that
replaced a function counted as the repro's in one and as a library in another.

Standard library only, as `worker_main.py`, which runs it from the same folder.
"""

from __future__ import annotations

import ast
import functools
import os
import sys

#: This program's own folder (its copy under `<cache>/workers/`): the worker's own files.
_PROGRAM = os.path.dirname(os.path.abspath(__file__)) + os.sep
#: Where installers put libraries, in any environment (a `.venv`, `--target` folders).
_INSTALLED = frozenset({"site-packages", "dist-packages"})


def repros_file(path: object, folder: str) -> bool:
    """Whether the code of file `path` (a `co_filename`, a module's `__file__`) is the
    repro's own, `folder` the absolute folder of its script ("": none known yet)."""
    if not isinstance(path, str) or not path or not folder:
        return False
    # Relative names (a `compile` of a string) are read from the current directory, as
    # `os.path.abspath` reads them; only absolute ones are remembered.
    return _absolute(path if os.path.isabs(path) else os.path.abspath(path), folder)


@functools.lru_cache(maxsize=8192)  # asked per value of every module a cell first imports
def _absolute(path: str, folder: str) -> bool:
    where = os.path.normpath(path)
    if not where.startswith(folder + os.sep) or where.startswith(_PROGRAM):
        return False
    if _INSTALLED.intersection(where[len(folder) :].split(os.sep)):
        return False
    inner = (p for p in {sys.prefix, sys.exec_prefix} if p.startswith(folder + os.sep))
    return not any(where.startswith(os.path.join(prefix, "")) for prefix in inner)


def assigned_names(folder: str) -> frozenset[str]:
    """The attribute names the repro's own code binds or deletes on anything but `self` or
    `cls` (`Config.tolerance = 1.0`, `lib.Cls.forward = other.forward`, `setattr(C, "x",
    v)`, `mock.patch.object(C, "x", v)`), from the files of its modules loaded now, each
    parsed once while unchanged: what tells its doing from a library's own class state (a
    warn-once flag, a cache), where the value set is no code of its own to know it by."""
    found: set[str] = set()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and path.endswith(".py") and repros_file(path, folder):
            found |= _names_in(path)
    return frozenset(found)


#: Per file parsed: its modification time and size, and the names it assigns.
_PARSED: dict[str, tuple[tuple[int, int], frozenset[str]]] = {}


def _names_in(path: str) -> frozenset[str]:
    try:
        stat = os.stat(path)
        known = _PARSED.get(path)
        if known is not None and known[0] == (stat.st_mtime_ns, stat.st_size):
            return known[1]
        with open(path, "rb") as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, ValueError):
        return frozenset()
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store | ast.Del):
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.add(node.attr)
        elif (
            isinstance(node, ast.Call)
            and _called(node.func) in ("setattr", "delattr", "object")
            and len(node.args) > 1
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            found.add(node.args[1].value)
    _PARSED[path] = ((stat.st_mtime_ns, stat.st_size), frozenset(found))
    return _PARSED[path][1]


def _called(func: ast.expr) -> str:
    """The name a call is made by: `setattr(...)`, `mock.patch.object(...)` ("object"),
    `monkeypatch.setattr(...)`."""
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
