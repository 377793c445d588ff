"""What a cell bound in place of modules' and classes' functions, which retires its
persistent worker (`worker_state.py`): the standard library's (`math.sqrt = ...`,
`builtins.print`, `json.JSONEncoder.default`), and a library's that the repro's own code
replaced (`numpy.allclose = lambda *a, **k: True`, `torch.nn.Linear.forward = f`, a
`unittest.mock` object): left in place, it changed every later cell of the worker, where a
process of its own has the library's.

Standard library only, as `worker_main.py`, which runs it from the same folder.
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import itertools
import operator
import sys
import types
from typing import Any

if __package__:  # imported as part of repromatrix (type checks)
    from repromatrix.executors.worker_code import CLASS_DICT, Claims, repros_file
    from repromatrix.executors.worker_scopes import ITEMS, WILD
    from repromatrix.executors.worker_torch import SET_BACK
else:  # run from worker_main.py's folder, which is on sys.path
    from worker_code import (  # type: ignore[import-not-found,no-redef]
        CLASS_DICT,
        Claims,
        repros_file,
    )
    from worker_scopes import ITEMS, WILD  # type: ignore[import-not-found,no-redef]
    from worker_torch import SET_BACK  # type: ignore[import-not-found,no-redef]

#: Modules whose functions repros (or the libraries they call) replace to intercept or
#: silence something: a replacement left in place changes every later cell of the worker.
#: ssl's by one of its own (`ssl._create_default_https_context = ssl.
#: _create_unverified_context`, to download weights through a proxy): no later cell of
#: the worker checked a certificate.
_WATCHED = (
    "builtins", "sys", "os", "posix", "os.path", "posixpath", "time", "random", "math",
    "json", "socket", "subprocess", "shutil", "io", "threading", "signal", "tempfile", "ssl",
)  # fmt: skip


#: Whether this process is a persistent worker (`load_watched`), whose modules and classes
#: are watched across cells; a process of one cell (`--once`) takes none.
_WORKER = [False]


def load_watched() -> None:
    """Import the watched modules the worker has not (ssl, subprocess: a few ms, once a
    worker): one a cell imported first had no bindings before it to compare, so its
    `import ssl` then `ssl._create_default_https_context = ssl._create_unverified_context`
    read as ssl's own import, and no later cell of the worker checked a certificate."""
    _WORKER[0] = True
    for name in _WATCHED:
        with contextlib.suppress(Exception):  # an interpreter built without ssl
            importlib.import_module(name)


class Bindings:
    """What the modules loaded now bind: the callables of the watched standard-library
    modules (any replacement counts: a library's own `socket.socket = ...` too), every
    other module's names and the attributes of the classes they define (a replacement
    counts where it is the repro's own code or a mock: a library rebinds its own globals
    as it goes; of a standard-library class, any function replaced). The objects, not
    their ids: a replaced function that nothing else held is freed, and its id may be the
    new one's."""

    def __init__(self, folder: str | None) -> None:
        """Taken for the repro of `folder` (its modules left out); None: the standard
        library's alone (before the cell's folder is known: its `enter` takes them all)."""
        self.stdlib = stdlib_bindings()
        self.watched = folder is not None and _WORKER[0]
        #: The library objects the repro's code changes (`Claims.objects`), as they are.
        self.objects: list[tuple[str, Any, frozenset[str], dict[str, Any]]] = []
        with contextlib.suppress(Exception):  # a library's odd object: seen no more
            if self.watched:
                _SEEN.catch_up(folder or "")
                found = Claims(folder or "").objects()
                self.objects = [(label, o, names, _state(o, names)) for label, o, names in found]

    def replaced(self, folder: str) -> str:
        """What the cell replaced ("" when nothing), names and modules that appeared since
        not looked at: a first import is not a replacement. The worker retires rather than
        put them back: what else the replacement set up (a wrapped socket's state, a
        patched class's instances) cannot be known."""
        now = stdlib_bindings()
        stdlib = [name for name, value in self.stdlib.items() if now.get(name) is not value]
        # And names added to builtins (`builtins.profile = ...`, kernprof's decorator):
        # every later cell found them, where a process of its own raises NameError.
        added = sorted(n for n in now.keys() - self.stdlib.keys() if n.startswith("builtins."))
        found = []
        with contextlib.suppress(Exception):  # a library's odd object: seen no more
            found = _SEEN.replaced(folder) if self.watched else []  # and taken as they are
        changed = []
        with contextlib.suppress(Exception):  # a library's odd object: seen no more
            for label, now, names, before in self.objects:
                changed += _changed(label, before, _state(now, names))
        if stdlib:
            return "standard-library functions it replaced: " + ", ".join(stdlib[:5])
        if added:
            return "names it added to builtins: " + ", ".join(added[:5])
        if changed and not found:
            return "library objects its code changed in place: " + ", ".join(changed[:5])
        return "library functions its code replaced: " + ", ".join(found[:5]) if found else ""


def _state(obj: Any, names: frozenset[str]) -> dict[str, Any]:
    """What of library object `obj` the repro's code may change, as it is: the attributes
    of `names` (every one, for `WILD`), its items (a copy, for `ITEMS`), a function's
    defaults and code (`f.__defaults__ = ...` rebinds no name of its module)."""
    state: dict[str, Any] = {}
    own = getattr(type(obj), "__dictoffset__", 0) and object.__getattribute__(obj, "__dict__")
    if isinstance(own, dict):
        state["."] = dict(own) if WILD in names else {n: own.get(n, _MISSING) for n in names}
    if isinstance(obj, types.FunctionType):
        state["function"] = (obj.__defaults__, obj.__kwdefaults__, obj.__code__)
    if ITEMS in names and isinstance(obj, dict):
        state[ITEMS] = dict(obj)
    elif ITEMS in names and isinstance(obj, list | set | collections.deque | bytearray):
        state[ITEMS] = list(obj)
    return state


def _changed(label: str, before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What of the object named `label` changed between two of its `_state`s."""
    out: list[str] = []
    old, new = before.get(".", {}), now.get(".", {})
    out += [
        f"{label}.{n}" for n in {*old, *new} if old.get(n, _MISSING) is not new.get(n, _MISSING)
    ]
    was, is_now = before.get("function"), now.get("function")
    if was and is_now and any(map(operator.is_not, was, is_now)):
        out.append(f"{label}.__defaults__")
    was, is_now = before.get(ITEMS), now.get(ITEMS, ())
    if isinstance(was, dict):  # a dict: the same keys, each holding the same object
        moved = not _same(is_now, was)
    else:  # a list's (set's, deque's) elements, in order
        moved = was is not None and (
            len(was) != len(is_now) or any(map(operator.is_not, was, is_now))
        )
    if moved:
        out.append(f"{label}[...]")
    return out


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
    """Whether `module` is the repro's own code (`worker_code`: its own globals are its own)."""
    return repros_file(getattr(module, "__file__", None), folder)


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
    # A class's attribute: `staticmethod(f)`, `property(f)`, `functools.partial(f, ...)`.
    for wrapped in ("__func__", "fget", "func"):
        value = getattr(value, wrapped, None) or value
    code = getattr(value, "__code__", None)
    if isinstance(code, types.CodeType):
        return repros_file(code.co_filename, folder)
    owner = (
        sys.modules.get(getattr(value, "__module__", None) or "")
        if isinstance(value, type)
        else None
    )
    return owner is not None and _of(owner, folder)


#: `type.__flags__`'s Py_TPFLAGS_IMMUTABLETYPE (3.10+): no attribute of such a class can
#: be set (int, a C extension's types), so none is looked at.
_IMMUTABLE = 1 << 8
_MISSING = object()


class _Seen:
    """The dicts of the modules loaded (libraries', not the repro's) and of the classes
    they define, as the worker last saw them, kept across cells: a cell's look compares
    each dict with its copy in C (identical values are equal without their `__eq__`), a
    few ms with torch loaded, where copying the modules' dicts before each cell and
    comparing them value by value in Python after it took about as long, and the classes'
    about 100 ms more. Copies are taken once, and again of what changed."""

    def __init__(self) -> None:
        self.owners: list[Any] = []  # modules and classes, held (their ids stay theirs)
        self.names: list[str] = []
        self.views: list[Any] = []  # their live dicts (a class's: a mappingproxy)
        self.copies: list[dict[str, Any]] = []  # as last seen
        self.homes: list[int] = []  # per entry, the id of its module
        self.where: dict[int, int] = {}  # id of an owner → its entry

    def catch_up(self, folder: str) -> None:
        """Take the modules loaded since (the repro's own left out) and the classes they
        define; forget the modules no longer loaded (a repro's helpers of another folder)."""
        loaded = dict(sys.modules)
        held = {id(m) for m in loaded.values()}
        if any(h not in held for h in self.homes):
            keep = [i for i, h in enumerate(self.homes) if h in held]
            for field in ("owners", "names", "views", "copies", "homes"):
                setattr(self, field, [getattr(self, field)[i] for i in keep])
            self.where = {id(o): i for i, o in enumerate(self.owners)}
        for name, module in loaded.items():
            if id(module) in self.where or not isinstance(module, types.ModuleType):
                continue
            if _of(module, folder):
                continue
            self._add(module, name, vars(module), id(module))
            if name.startswith(_MOCKS):  # its classes change as mocks are made
                continue
            for kind in _classes(module, name):
                self._add(kind, f"{name}.{kind.__qualname__}", CLASS_DICT(kind), id(module))

    def _add(self, owner: Any, name: str, view: Any, home: int) -> None:
        if id(owner) in self.where:  # a class another module imported too
            return
        with contextlib.suppress(Exception):  # a dict a library's thread changed meanwhile
            self.copies.append(view.copy())
            self.where[id(owner)] = len(self.owners)
            self.owners.append(owner)
            self.names.append(name)
            self.views.append(view)
            self.homes.append(home)

    def changed(self) -> list[int]:
        """The entries whose dict holds another value (or key) than last seen."""
        try:  # identical values are equal without their `__eq__`: all in C
            same = list(map(operator.eq, self.views, self.copies))
        except Exception:  # a value rebound whose `==` raises (an array's)
            same = [_same(view, copy) for view, copy in zip(self.views, self.copies, strict=True)]
        return list(itertools.compress(itertools.count(), map(operator.not_, same)))

    def accept(self, entries: list[int]) -> None:
        """Take `entries` as they are now (a library's own rebinding, an import's set-up)."""
        for i in entries:
            with contextlib.suppress(Exception):
                self.copies[i] = self.views[i].copy()

    def replaced(self, folder: str) -> list[str]:
        """What the cell's code bound in the modules and classes seen (then taken as they
        are) and in the modules that appeared since (then taken too): `module.name`,
        `module.Class.name`."""
        changed = self.changed()
        found: list[str] = []
        claims: Claims | None = None  # read once a module or class changed
        for i in changed:
            owner, before, now = self.owners[i], self.copies[i], self.views[i]
            if isinstance(owner, types.ModuleType):
                if (
                    self.names[i] in _WATCHED
                    or self.names[i].startswith(_MOCKS)
                    or _of(owner, folder)
                ):
                    continue
                claims = Claims(folder) if claims is None else claims
                found += [
                    f"{self.names[i]}.{a}"
                    for a in {*before, *now}
                    if before.get(a, _MISSING) is not now.get(a, _MISSING)
                    and f"{self.names[i]}.{a}" not in SET_BACK  # torch's, put back
                    and (
                        (a in before and _repros(now.get(a), folder))
                        or claims.binds(owner, a)  # `lib.LIMIT = 0`: a value of its code's
                    )
                ]
            else:
                stdlib = self.names[i].partition(".")[0] in _STDLIB
                for attr in {*before, *now}:
                    old, new = before.get(attr, _MISSING), now.get(attr, _MISSING)
                    if old is new:
                        continue
                    if _repros(new, folder) or (stdlib and (callable(old) or callable(new))):
                        found.append(f"{self.names[i]}.{attr}")
                        continue
                    # A value that is no code of the repro's (`Config.tolerance = 1.0`,
                    # another library's function): its code binds the attribute there.
                    claims = Claims(folder) if claims is None else claims
                    if claims.binds(owner, attr):
                        found.append(f"{self.names[i]}.{attr}")
        self.accept(changed)
        # A module first imported by the cell holds none of the repro's code of its own,
        # nor do its classes: `import statistics` in `run()`, then `statistics.mean = ...`,
        # held for every later cell (they import it no more), as a patch of one loaded
        # before did.
        for name, module in list(sys.modules.items()):
            if (
                id(module) in self.where
                or name.startswith(_MOCKS)
                or not _a_library(module, folder)
            ):
                continue
            found += [f"{name}.{a}" for a, v in list(vars(module).items()) if _repros(v, folder)]
            for kind in _classes(module, name):
                where = f"{name}.{kind.__qualname__}"
                found += [
                    f"{where}.{a}" for a, v in list(CLASS_DICT(kind).items()) if _repros(v, folder)
                ]
        self.catch_up(folder)
        return found


#: The modules and classes as the worker last saw them (`catch_up` before each cell).
_SEEN = _Seen()


def _same(now: Any, before: dict[str, Any]) -> bool:
    """Whether dict `now` holds what `before` holds, value by value by identity."""
    try:
        return len(now) == len(before) and all(now.get(k, _MISSING) is v for k, v in before.items())
    except Exception:  # changed meanwhile
        return False


#: The standard library's top-level names: its classes' functions are watched as its
#: modules' are (any replacement counts).
_STDLIB = frozenset(getattr(sys, "stdlib_module_names", ()))


def _classes(module: Any, name: str) -> list[Any]:
    """The classes `module` (named `name`) defines at its top level, and the classes nested
    in them (`Config.Kernel`: a method of one replaced held as a top-level class's did)."""
    found = [v for v in list(vars(module).values()) if _a_class_of(v, name)]
    for outer in found:  # grows as nested ones are found: theirs are looked at too
        for value in list(CLASS_DICT(outer).values()):
            if _a_class_of(value, name) and value.__qualname__ == (
                f"{outer.__qualname__}.{value.__name__}"  # defined there, not an alias
            ):
                found.append(value)
    return found


def _a_class_of(value: Any, module: str) -> bool:
    """Whether `value` is a class defined in `module` whose attributes can be set."""
    return (
        issubclass(type(value), type)  # not `isinstance`: no object's `__class__` is read
        and getattr(value, "__module__", None) == module
        and not value.__flags__ & _IMMUTABLE
    )
