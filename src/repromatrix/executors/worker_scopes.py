"""The names a repro's module binds, read from its source for `worker_sites.py`: its
scopes (module, functions, classes) and what each binds a name to there (an expression, an
import, a loop's elements, a definition of the file, or what the code cannot tell), the
attributes the file binds anywhere, and each place it binds or deletes an attribute name
(`binds`).

Standard library only, as `worker_main.py`, which runs it from the same folder.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

#: The name of the receivers of bindings whose attribute name the code does not show.
WILD = "*"
#: The name of the receivers whose items the code changes (`lib.REGISTRY[k] = v`).
ITEMS = "[]"
#: Methods that change a dict, list, set or deque in place (of `vars(lib)`: `WILD`).
_CHANGES = frozenset({"update", "pop", "setdefault", "clear", "popitem", "__setitem__",
                      "__delitem__", "append", "extend", "insert", "remove", "add",
                      "discard", "appendleft", "extendleft", "sort", "reverse"})  # fmt: skip
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


class Scope:
    """A module's, function's or class's names: what each binding of a name there is."""

    def __init__(self, node: ast.AST, parent: Scope | None) -> None:
        self.node = node
        self.parent = parent
        self.function = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        self.bound: dict[str, list[object]] = {}  # name → expressions or markers
        self.globals: set[str] = set()  # declared `global` (the module's: anywhere)
        self.nonlocals: set[str] = set()
        # name → what it may be (`worker_sites.Target`s), found when first asked
        self.memo: dict[str, set[tuple[str, ...]] | None] = {}
        # The module's: per attribute name, the values the file binds there, anywhere
        # (None: unknown), with the scope each is read in (what `self.name` may be).
        self.attributes: dict[str, list[tuple[ast.expr | Elements | None, Scope]]] = {}

    def bind(self, name: str, how: object) -> None:
        self.bound.setdefault(name, []).append(how)


class Elements:
    """A binding to the elements of `node` (a loop's variable, a comprehension's)."""

    def __init__(self, node: ast.expr) -> None:
        self.node = node


#: Binding markers: a definition of the file (`def`: a call of it may hand back anything;
#: `class`: a call of it makes an instance), a binding the code cannot tell.
FUNCTION, CLASS, UNKNOWN = "function", "class", "unknown"


def binds(node: ast.AST) -> Iterator[tuple[str, ast.expr | str]]:
    """(attribute name, receiver) of each binding `node` makes: an expression, or the
    dotted path of a `mock.patch("pkg.mod.name", ...)` target."""
    if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store | ast.Del):
        yield node.attr, node.value
    elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store | ast.Del):
        owner = _dict_of(node.value)  # `vars(lib)["X"] = v`; else `lib.REGISTRY[k] = v`
        yield (WILD, owner) if owner is not None else (ITEMS, node.value)
    elif isinstance(node, ast.Call) and node.args:
        called = call_name(node.func)
        first = node.args[0]
        if called in ("setattr", "delattr", "object") and len(node.args) > 1:
            named = node.args[1]
            if isinstance(named, ast.Constant) and isinstance(named.value, str):
                yield named.value, first
            else:  # `setattr(lib, name, v)`: which name, unseen
                yield WILD, first
        if called in ("patch", "setattr", "delattr") and isinstance(first, ast.Constant):
            path = first.value
            if isinstance(path, str) and "." in path:  # "pkg.mod.NAME"
                where, _, name = path.rpartition(".")
                yield name, where
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        owner = _dict_of(node.func.value)  # `lib.__dict__.update(X=1)`; `lib.HOOKS.append(f)`
        if node.func.attr in _CHANGES:
            yield (WILD, owner) if owner is not None else (ITEMS, node.func.value)


def _dict_of(node: ast.expr) -> ast.expr | None:
    """`X` where `node` is `vars(X)` or `X.__dict__` (its names' dict), else None."""
    if isinstance(node, ast.Attribute) and node.attr == "__dict__":
        return node.value
    if isinstance(node, ast.Call) and call_name(node.func) == "vars" and len(node.args) == 1:
        return node.args[0]
    return None


def call_name(func: ast.expr) -> str:
    """The name a call is made by: `setattr(...)`, `mock.patch.object(...)` ("object"),
    `monkeypatch.setattr(...)`."""
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")


def collect(node: ast.AST, scope: Scope, scopes: dict[ast.AST, Scope]) -> None:
    """Record each name's bindings in the scope they are made in."""
    scopes[node] = scope
    for child in ast.iter_child_nodes(node):
        if isinstance(child, _SCOPES):
            if not isinstance(child, ast.Lambda):
                scope.bind(child.name, CLASS if isinstance(child, ast.ClassDef) else FUNCTION)
            inner = Scope(child, scope)
            if not isinstance(child, ast.ClassDef):
                for arg in _parameters(child.args):
                    inner.bind(arg, UNKNOWN)
            collect(child, inner, scopes)
            continue
        _bind(child, scope)
        collect(child, scope, scopes)


def _parameters(args: ast.arguments) -> Iterator[str]:
    for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
        if arg is not None:
            yield arg.arg


def _bind(node: ast.AST, scope: Scope) -> None:
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
        _assign(node.target, Elements(node.iter), scope)
    else:
        _capture(node, scope)


def _capture(node: ast.AST, scope: Scope) -> None:
    """The names `node` binds to what the code does not show (`with ... as x`, a pattern,
    `setattr(x, "out", v)`), or to an exception it caught."""
    if isinstance(node, ast.withitem) and node.optional_vars is not None:
        _assign(node.optional_vars, None, scope)
    elif isinstance(node, ast.ExceptHandler) and node.name:
        scope.bind(node.name, ast.Constant(None))  # an exception the code caught
    elif isinstance(node, ast.Call | ast.Subscript):
        for name, _ in binds(node):
            _attribute_bound(name, None, scope)
    elif isinstance(node, ast.MatchAs | ast.MatchStar | ast.MatchMapping):
        captured = node.rest if isinstance(node, ast.MatchMapping) else node.name
        if captured:  # a pattern's capture: unknown
            scope.bind(captured, UNKNOWN)


def _declare(node: ast.Global | ast.Nonlocal, scope: Scope) -> None:
    if isinstance(node, ast.Nonlocal):
        scope.nonlocals.update(node.names)
        return
    scope.globals.update(node.names)
    while scope.parent is not None:  # the module's: the names some function binds
        scope = scope.parent
    scope.globals.update(node.names)


def _imports(node: ast.Import | ast.ImportFrom, scope: Scope) -> None:
    """`import a.b` binds `a`; `import a.b as c`, `a.b`; `from a import b`, `a`'s `b` (a
    relative import: unknown)."""
    for alias in node.names:
        if isinstance(node, ast.ImportFrom):
            known = node.module and not node.level
            how = ("module", node.module or "", alias.name) if known else UNKNOWN
            scope.bind(alias.asname or alias.name, how)
        elif alias.asname:
            scope.bind(alias.asname, ("module", alias.name))
        else:
            top = alias.name.partition(".")[0]
            scope.bind(top, ("module", top))


def _attribute_bound(name: str, value: ast.expr | Elements | None, scope: Scope) -> None:
    """Note that the file binds attribute `name` to `value` (None: unknown) in `scope`."""
    attributes_of(scope).setdefault(name, []).append((value, scope))


def attributes_of(scope: Scope) -> dict[str, list[tuple[ast.expr | Elements | None, Scope]]]:
    """The attributes the file of `scope` binds anywhere (its module scope's table)."""
    while scope.parent is not None:
        scope = scope.parent
    return scope.attributes


def _assign(target: ast.expr, value: ast.expr | Elements | None, scope: Scope) -> None:
    """Bind the names of `target` to `value` (None: unknown)."""
    if isinstance(target, ast.Attribute):
        _attribute_bound(target.attr, value, scope)
    elif isinstance(target, ast.Name):
        scope.bind(target.id, value if value is not None else UNKNOWN)
    elif isinstance(target, ast.Tuple | ast.List):
        pairs = (
            isinstance(value, ast.Tuple | ast.List)
            and len(value.elts) == len(target.elts)
            and not any(isinstance(e, ast.Starred) for e in (*value.elts, *target.elts))
        )
        for i, element in enumerate(target.elts):
            if pairs and isinstance(value, ast.Tuple | ast.List):
                _assign(element, value.elts[i], scope)
                continue
            # `out, err = f()`: what the call made; `for k, m in ...`: what the elements are
            part = value if isinstance(value, ast.Call | Elements) else None
            _assign(element.value if isinstance(element, ast.Starred) else element, part, scope)
    elif isinstance(target, ast.Starred):
        _assign(target.value, None, scope)
