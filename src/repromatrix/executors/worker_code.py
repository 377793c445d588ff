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

`Claims` tells on what module or class that code binds each attribute name, from its
source (`worker_sites.py`), for a plain value a cell left bound on a library.

Standard library only, as `worker_main.py`, which runs it from the same folder.
"""

from __future__ import annotations

import ast
import builtins
import functools
import os
import sys
import types
from typing import Any

if __package__:  # imported as part of repromatrix (type checks)
    from repromatrix.executors.worker_scopes import WILD
    from repromatrix.executors.worker_sites import ANY, CALL, Sites, Target, sites_of
else:  # run from worker_main.py's folder, which is on sys.path
    from worker_scopes import WILD  # type: ignore[import-not-found,no-redef]
    from worker_sites import (  # type: ignore[import-not-found,no-redef]
        ANY,
        CALL,
        Sites,
        Target,
        sites_of,
    )

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


#: The cell's script, absolute (`worker_scripts.enter_folder`).
SCRIPT = [""]


class Claims:
    """Where the repro's own code binds each attribute name (`worker_sites`), from the
    files of its modules loaded now, each parsed once while unchanged: what tells a value
    it bound on a library's module or class (`Config.tolerance = 1.0`, `lib.LIMIT = 0`)
    from the library's own rebinding as it goes (a warn-once flag, a cache, a lazily set
    `device`), where the value set is no code of its own to know it by."""

    def __init__(self, folder: str) -> None:
        self.found: list[tuple[Any, Sites]] = []  # (the repro's module, its file's sites)
        self.folder = folder
        files = set()
        for module in list(sys.modules.values()):
            path = getattr(module, "__file__", None)
            if isinstance(path, str) and path.endswith(".py") and repros_file(path, folder):
                self.found.append((module, _sites_in(path)))
                files.add(os.path.normpath(path))
        # A script run whole (runpy) is no module of `sys.modules` after its cell: its
        # globals are gone (unknown), what its code binds on is still read.
        script = SCRIPT[0]
        if repros_file(script, folder) and os.path.normpath(script) not in files:
            self.found.append((None, _sites_in(script)))

    def binds(self, owner: Any, name: str) -> bool:
        """Whether the repro's code binds `name` on `owner` (a module or class), or on
        something it cannot tell is another (a parameter: the name alone counts)."""
        for module, sites in self.found:
            for target in (*sites.get(name, ()), *sites.get(WILD, ())):
                if target == ANY:
                    return True
                found = _resolved(target, module)
                if found is _UNKNOWN or found is owner or _runs_code(found, name):
                    return True
        return False

    def objects(self) -> list[tuple[str, Any, frozenset[str]]]:
        """The objects of libraries, neither module nor class, on which the repro's code
        binds attributes or whose items it changes (`lib.options.tol = 3`,
        `lib.REGISTRY[k] = v`, `lib.f.__defaults__ = ...`), as its targets name them now
        (those of the standard library left out: the worker puts back what of them it
        knows); per object, what it is named and those names (`ITEMS`: its items)."""
        found: dict[int, tuple[str, Any, set[str]]] = {}
        for module, sites in self.found:
            for name, targets in sites.items():
                for target in targets:
                    if target == ANY or target[0] == CALL or not self._library(target, module):
                        continue
                    now = _resolved(target, module)
                    if now is _UNKNOWN or now is _MADE or isinstance(now, types.ModuleType):
                        continue
                    if not issubclass(type(now), type):  # not `isinstance`: no `__class__`
                        label = ".".join(target[1:])
                        found.setdefault(id(now), (label, now, set()))[2].add(name)
        return [(label, now, frozenset(names)) for label, now, names in found.values()]

    def _library(self, target: Target, module: Any) -> bool:
        """Whether `target` is reached from a library's module or class (not the standard
        library's, not the repro's own globals)."""
        if len(target) < 3 and target[0] != "path":  # `lib` itself, or a global of its own
            return False
        root = _resolved(target[:2], module)
        name = getattr(root, "__name__", None) if isinstance(root, types.ModuleType) else None
        if issubclass(type(root), type):
            name = getattr(root, "__module__", None)
        if target[0] == "path":  # "pkg.mod.obj": its top module's
            name = target[1].partition(".")[0]
        if not isinstance(name, str) or name.partition(".")[0] in _STDLIB:
            return False
        owner = sys.modules.get(name)
        return owner is not None and not repros_file(getattr(owner, "__file__", None), self.folder)


#: The standard library's top-level names: its state is the worker's to put back.
_STDLIB = frozenset(getattr(sys, "stdlib_module_names", ()))
_UNKNOWN = object()
#: An object a call made (an instance of a class, a C function's result): no module or
#: class of a library, nor is any attribute of it.
_MADE = object()
#: A class's own `__dict__` and `__mro__`, never a metaclass's property of those names
#: (`worker_bindings` reads classes by the same).
CLASS_DICT = type.__dict__["__dict__"].__get__
_MRO = type.__dict__["__mro__"].__get__


def _resolved(target: Target, module: Any) -> Any:
    """The object `target` names now, by dict lookups alone (no property, no module
    `__getattr__` is called); `_UNKNOWN` where a step is not found that way."""
    kind, first, *steps = target
    if kind == CALL:  # what the callee hands back
        callee = _callee(first)
        found = _UNKNOWN if callee == ANY else _handed_back(_resolved(callee, module))
    elif kind == "global":  # of a script run whole: gone
        found = _UNKNOWN if module is None else _lookup(module, first)
        if found is _UNKNOWN and (module is not None or first in vars(builtins)):
            found = vars(builtins).get(first, _UNKNOWN)  # `dict()`, `len(x)`
    elif kind == "module":
        found = sys.modules.get(first, _UNKNOWN)
    else:  # "path": `mock.patch("pkg.mod.Class.name")`, the longest module prefix
        parts = first.split(".")
        for end in range(len(parts), 0, -1):
            found = sys.modules.get(".".join(parts[:end]), _UNKNOWN)
            if found is not _UNKNOWN:
                steps = parts[end:]
                break
    for step in steps:
        if found is _UNKNOWN or found is _MADE:  # an attribute of a made object: made
            break
        found = _lookup(found, step)
    return found


@functools.lru_cache(maxsize=4096)
def _callee(text: str) -> Target:
    """A call target's callee, from its `repr` (`worker_sites`)."""
    found = ast.literal_eval(text)
    return tuple(found) if isinstance(found, tuple) and found else ANY


def _handed_back(callee: Any) -> Any:
    """What a call of `callee` hands back: `_MADE` where it is a class (an instance: no
    metaclass of its own to hand back another thing), a C function of a module or class
    (`math.floor`; `torch.zeros`, a static method: no `__self__`), or a method of an object
    a call made; `_UNKNOWN` else (a library's Python function may hand back a module or
    class, `lib.backend()`; so may a C method of a library's object, `sys.modules.get`)."""
    if callee is _MADE:
        return _MADE
    try:
        if issubclass(type(callee), type):
            return _MADE if type(callee).__call__ is type.__call__ else _UNKNOWN
        if isinstance(callee, types.BuiltinFunctionType):
            owner = callee.__self__
            ok = owner is None or isinstance(owner, types.ModuleType | type)  # `torch.zeros`
            return _MADE if ok else _UNKNOWN
    except Exception:  # an odd object's attribute: what it hands back cannot be told
        return _UNKNOWN
    return _UNKNOWN


def _lookup(where: Any, name: str) -> Any:
    try:
        if isinstance(where, types.ModuleType):
            return vars(where).get(name, _UNKNOWN)
        if issubclass(type(where), type):  # not `isinstance`: no `__class__` is read
            for kind in _MRO(where):
                if name in CLASS_DICT(kind):
                    return CLASS_DICT(kind)[name]
            return _UNKNOWN
        own = object.__getattribute__(where, "__dict__")
        return own[name] if isinstance(own, dict) and name in own else _UNKNOWN
    except Exception:  # an object without a `__dict__`, a class whose dict changed
        return _UNKNOWN


def _runs_code(receiver: Any, name: str) -> bool:
    """Whether binding `name` on module or class `receiver` runs a library's code that
    may bind it elsewhere (a module of a `ModuleType` subclass, as torch's `backends`
    modules, whose property sets a global of the module it wraps; a metaclass's
    `__setattr__`)."""
    if isinstance(receiver, types.ModuleType):
        base: type = types.ModuleType
    elif issubclass(type(receiver), type):
        base = type
    else:  # an object's attribute: neither a module's nor a class's
        return False
    kind = type(receiver)
    if kind is base:
        return False
    try:
        if kind.__setattr__ is not base.__setattr__:
            return True
        return any(hasattr(CLASS_DICT(k).get(name), "__set__") for k in _MRO(kind))
    except Exception:  # a metaclass's odd attribute: what it runs cannot be told
        return True


#: Per file parsed: its modification time and size, and where it binds what.
_PARSED: dict[str, tuple[tuple[int, int], Sites]] = {}


def _sites_in(path: str) -> Sites:
    try:
        stat = os.stat(path)
        known = _PARSED.get(path)
        if known is not None and known[0] == (stat.st_mtime_ns, stat.st_size):
            return known[1]
        with open(path, "rb") as f:
            sites = sites_of(ast.parse(f.read()))
    except (OSError, SyntaxError, ValueError, RecursionError):
        return {}
    _PARSED[path] = ((stat.st_mtime_ns, stat.st_size), sites)
    return sites
