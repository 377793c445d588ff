"""On what the repro's own code binds each attribute name, read from its source: what
tells a plain value it bound on a library's module or class (`lib.LIMIT = 0`) from one the
library rebound itself as it goes (its lazy set-up's `device`, a cache's `data`), where
the value is no code of the repro's to know it by (`worker_bindings.py`). Told by the name
alone, a library's own `data = ...` retired the worker whenever the repro's code assigned
`out.data` on a local tensor (a fresh worker, import torch and CUDA's set-up, a cell).

Each place the code binds or deletes `X.name` (`setattr(X, "name", v)`, `delattr`,
`mock.patch.object(X, "name", v)`, `monkeypatch.setattr(X, ...)`, `mock.patch("m.X.name",
v)`) gives `name` a receiver: a `Target` (a path from a module-level name of the file's
module, or from a module by its import name) to be looked up when a value changed; `MADE`
where the code shows `X` is no module or class (`self`, `cls`, a local bound to an object
a call or a literal made); `ANY` where it cannot tell (a parameter, a loop's variable, a
subscript, a call of its own function that may hand back a module): then, as before, the
name alone counts, since a missed patch is worse than a retired worker.

Standard library only, as `worker_main.py`, which runs it from the same folder.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

#: A receiver: ("global", name, *attributes) from the file's module's own globals, or
#: ("module", import name, *attributes) from `sys.modules`.
Target = tuple[str, ...]
#: A receiver that cannot be told from the code: the attribute's name alone counts.
ANY: Target = ("any",)
#: Per attribute name the code binds, its receivers (empty: only objects it made itself).
Sites = dict[str, frozenset[Target]]

#: Calls whose result may be a module or a class (`importlib.import_module("lib")`,
#: `type(x)`, `getattr(lib, "Config")`, a registry's `.get(name)`): a local bound to one
#: is not a made object.
_MAY_GIVE_OWNER = frozenset({
    "import_module", "__import__", "reload", "type", "getattr", "get", "pop", "setdefault",
    "module_from_spec", "load_module", "getmodule", "locate", "resolve_name", "import_string",
    "next", "vars", "super",
})  # fmt: skip
#: Expressions that make a new object: never a library's module or class.
_MADE = (
    ast.Constant, ast.JoinedStr, ast.List, ast.Tuple, ast.Set, ast.Dict, ast.ListComp,
    ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.Lambda, ast.BinOp, ast.UnaryOp,
    ast.Compare, ast.Await,
)  # fmt: skip
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
#: How many aliases (`a = b`, `b = lib`) are followed before a receiver counts as `ANY`.
_DEPTH = 8


class _Scope:
    """A module's, function's or class's names: what each binding of a name there is."""

    def __init__(self, node: ast.AST, parent: _Scope | None) -> None:
        self.node = node
        self.parent = parent
        self.function = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        self.bound: dict[str, list[object]] = {}  # name → expressions or markers
        self.globals: set[str] = set()  # declared `global` (the module's: anywhere)
        self.nonlocals: set[str] = set()
        self.memo: dict[str, set[Target] | None] = {}  # name → what it may be

    def bind(self, name: str, how: object) -> None:
        self.bound.setdefault(name, []).append(how)


#: Binding markers: a definition of the file (`def`: a call of it may hand back anything;
#: `class`: a call of it makes an instance), a binding the code cannot tell.
_FUNCTION, _CLASS, _UNKNOWN = "function", "class", "unknown"


def sites_of(tree: ast.AST) -> Sites:
    """The receivers of every attribute name the code of module `tree` binds or deletes."""
    scopes: dict[ast.AST, _Scope] = {}  # every node → the scope its names are read in
    _collect(tree, _Scope(tree, None), scopes)
    found: dict[str, set[Target]] = {}
    for node in ast.walk(tree):
        for name, receiver in _binds(node):
            found.setdefault(name, set()).update(_receivers(receiver, scopes[node], 0))
    return {name: frozenset(receivers) for name, receivers in found.items()}


def _binds(node: ast.AST) -> Iterator[tuple[str, ast.expr | str]]:
    """(attribute name, receiver) of each binding `node` makes: an expression, or the
    dotted path of a `mock.patch("pkg.mod.name", ...)` target."""
    if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store | ast.Del):
        yield node.attr, node.value
    elif isinstance(node, ast.Call) and node.args:
        called = _called(node.func)
        first = node.args[0]
        if called in ("setattr", "delattr", "object") and len(node.args) > 1:
            named = node.args[1]
            if isinstance(named, ast.Constant) and isinstance(named.value, str):
                yield named.value, first
        if called in ("patch", "setattr", "delattr") and isinstance(first, ast.Constant):
            path = first.value
            if isinstance(path, str) and "." in path:  # "pkg.mod.NAME"
                where, _, name = path.rpartition(".")
                yield name, where


def _called(func: ast.expr) -> str:
    """The name a call is made by: `setattr(...)`, `mock.patch.object(...)` ("object"),
    `monkeypatch.setattr(...)`."""
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")


def _receivers(node: ast.expr | str, scope: _Scope, depth: int) -> set[Target]:
    """What `node` may be, as targets (`ANY` where unknown; empty: a made object)."""
    if isinstance(node, str):
        return {("path", node)}
    if depth > _DEPTH:
        return {ANY}
    steps: list[str] = []
    while isinstance(node, ast.Attribute):
        if node.attr.startswith("__"):  # `x.__class__`, `x.__dict__`: what it is, unseen
            return {ANY}
        steps.insert(0, node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        if node.id in ("self", "cls") and not steps:  # its own class's or instance's
            return set()
        roots = _name(node.id, scope, depth)
    else:
        roots = _value(node, scope, depth)
    return {root if root == ANY else (*root, *steps) for root in roots}


def _value(node: ast.expr, scope: _Scope, depth: int) -> set[Target]:
    """What the value of expression `node` may be."""
    if isinstance(node, ast.Name | ast.Attribute):
        return _receivers(node, scope, depth + 1)
    if isinstance(node, _MADE):
        return set()
    if isinstance(node, ast.BoolOp | ast.IfExp | ast.NamedExpr):  # what either side is
        parts = (
            node.values if isinstance(node, ast.BoolOp)
            else [node.body, node.orelse] if isinstance(node, ast.IfExp)
            else [node.value]
        )  # fmt: skip
        return set().union(*(_value(v, scope, depth + 1) for v in parts))
    if isinstance(node, ast.Call):
        return _call(node, scope)
    return {ANY}  # a subscript (`sys.modules["lib"]`), a starred value…


def _call(node: ast.Call, scope: _Scope) -> set[Target]:
    """What a call's result may be: an object a library's function or a class made, but
    where the call may hand back a module or class."""
    if _called(node.func) in _MAY_GIVE_OWNER:
        return {ANY}
    if isinstance(node.func, ast.Name):  # a function of the file's own, a parameter
        _, found = _lookup(node.func.id, scope)
        if any(how in (_FUNCTION, _UNKNOWN) for how in found):
            return {ANY}
    return set()


def _lookup(name: str, scope: _Scope) -> tuple[_Scope, list[object]]:
    """The scope `name` is read from in `scope`, and its bindings there."""
    current, first = scope, True
    while current.parent is not None:
        if name in current.globals:
            break
        # A class's body is seen only by its own statements, not by its functions'.
        seen = first or current.function
        if seen and name not in current.nonlocals and name in current.bound:
            return current, current.bound[name]
        first = False
        current = current.parent
    while current.parent is not None:
        current = current.parent
    return current, current.bound.get(name, [])


def _name(name: str, scope: _Scope, depth: int) -> set[Target]:
    where, found = _lookup(name, scope)
    if name in where.memo:  # each name's bindings followed once (None: under way, a cycle)
        known = where.memo[name]
        return {ANY} if known is None else known
    where.memo[name] = None
    out: set[Target] = set()
    for how in found:
        if how == _UNKNOWN:
            out.add(ANY)
        elif isinstance(how, tuple):  # an import: ("module", import name, *attributes)
            out.add(how)
        elif isinstance(how, ast.expr):
            out |= _value(how, where, depth + 1)
        # `def` and `class` of the file: its own function or class, no library's
    if where.parent is None and ANY not in out and (out or not found or name in where.globals):
        # A module-level name that may be a module or class (or that a function binds,
        # `global x`): looked up in the module as it is when asked too (a loop's variable
        # left holding the last of them: unknown). One only ever bound to objects the
        # code made (`args = parser.parse_args()` under `__main__`) is none.
        out.add(("global", name))
    where.memo[name] = out
    return out


def _collect(node: ast.AST, scope: _Scope, scopes: dict[ast.AST, _Scope]) -> None:
    """Record each name's bindings in the scope they are made in."""
    scopes[node] = scope
    for child in ast.iter_child_nodes(node):
        if isinstance(child, _SCOPES):
            if not isinstance(child, ast.Lambda):
                scope.bind(child.name, _CLASS if isinstance(child, ast.ClassDef) else _FUNCTION)
            inner = _Scope(child, scope)
            if not isinstance(child, ast.ClassDef):
                for arg in _parameters(child.args):
                    inner.bind(arg, _UNKNOWN)
            _collect(child, inner, scopes)
            continue
        _bind(child, scope)
        _collect(child, scope, scopes)


def _parameters(args: ast.arguments) -> Iterator[str]:
    for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
        if arg is not None:
            yield arg.arg


def _bind(node: ast.AST, scope: _Scope) -> None:
    """The names statement or expression `node` binds in `scope` (a comprehension's
    variables counted as its scope's: unknown, which only makes it count more)."""
    if isinstance(node, ast.Global | ast.Nonlocal):
        _declare(node, scope)
    elif isinstance(node, ast.Import | ast.ImportFrom):
        _imports(node, scope)
    elif isinstance(node, ast.Assign):
        for target in node.targets:
            _assign(target, node.value, scope)
    elif isinstance(node, ast.AnnAssign | ast.NamedExpr) and node.value is not None:
        _assign(node.target, node.value, scope)
    elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
        scope.bind(node.target.id, ast.Constant(None))  # `x += ...`: what `x` made
    elif isinstance(node, ast.For | ast.AsyncFor | ast.comprehension):
        _assign(node.target, None, scope)
    elif isinstance(node, ast.withitem) and node.optional_vars is not None:
        _assign(node.optional_vars, None, scope)
    elif isinstance(node, ast.ExceptHandler) and node.name:
        scope.bind(node.name, ast.Constant(None))  # an exception the code caught
    elif isinstance(node, ast.MatchAs | ast.MatchStar | ast.MatchMapping):
        captured = node.rest if isinstance(node, ast.MatchMapping) else node.name
        if captured:  # a pattern's capture: unknown
            scope.bind(captured, _UNKNOWN)


def _declare(node: ast.Global | ast.Nonlocal, scope: _Scope) -> None:
    if isinstance(node, ast.Nonlocal):
        scope.nonlocals.update(node.names)
        return
    scope.globals.update(node.names)
    while scope.parent is not None:  # the module's: the names some function binds
        scope = scope.parent
    scope.globals.update(node.names)


def _imports(node: ast.Import | ast.ImportFrom, scope: _Scope) -> None:
    """`import a.b` binds `a`; `import a.b as c`, `a.b`; `from a import b`, `a`'s `b` (a
    relative import: unknown)."""
    for alias in node.names:
        if isinstance(node, ast.ImportFrom):
            known = node.module and not node.level
            how = ("module", node.module or "", alias.name) if known else _UNKNOWN
            scope.bind(alias.asname or alias.name, how)
        elif alias.asname:
            scope.bind(alias.asname, ("module", alias.name))
        else:
            top = alias.name.partition(".")[0]
            scope.bind(top, ("module", top))


def _assign(target: ast.expr, value: ast.expr | None, scope: _Scope) -> None:
    """Bind the names of `target` to `value` (None: unknown)."""
    if isinstance(target, ast.Name):
        scope.bind(target.id, value if value is not None else _UNKNOWN)
    elif isinstance(target, ast.Tuple | ast.List):
        pairs = (
            isinstance(value, ast.Tuple | ast.List)
            and len(value.elts) == len(target.elts)
            and not any(isinstance(e, ast.Starred) for e in (*value.elts, *target.elts))
        )
        for i, element in enumerate(target.elts):
            if pairs and isinstance(value, ast.Tuple | ast.List):
                _assign(element, value.elts[i], scope)
            elif isinstance(value, ast.Call):  # `out, err = f()`: what the call made
                _assign(element, value, scope)
            else:
                _assign(element.value if isinstance(element, ast.Starred) else element, None, scope)
    elif isinstance(target, ast.Starred):
        _assign(target.value, None, scope)
