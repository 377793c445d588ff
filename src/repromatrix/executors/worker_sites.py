"""On what the repro's own code binds each attribute name, read from its source: what
tells a plain value it bound on a library's module or class (`lib.LIMIT = 0`) from one the
library rebound itself as it goes (its lazy set-up's `device`, a cache's `data`), where
the value is no code of the repro's to know it by (`worker_bindings.py`). Told by the name
alone, a library's own `data = ...` retired the worker whenever the repro's code assigned
`out.data` on a local tensor. `ITEMS`: where it changes an object's items in place.

Each place the code binds or deletes `X.name` (`setattr(X, "name", v)`, `delattr`,
`mock.patch.object(X, "name", v)`, `monkeypatch.setattr(X, ...)`, `mock.patch("m.X.name",
v)`) gives `name` a receiver: a `Target` (a path from a module-level name of the file's
module, or from a module by its import name, or what a call of one handed back: a class
makes an instance, a library's function may hand back a module) to be looked up when a
value changed; none where `X` is an object a literal made, `self` or `cls`; a loop's
variable is what its loop goes over (`for m in (lib, np)`, `model.parameters()`), `self.x`
whatever the file binds as attribute `x`; `ANY` where the code cannot tell (a parameter,
a subscript, its own function's result): then the name alone counts, since a missed patch
is worse than a retired worker. `setattr(lib, name, v)`, `vars(lib)[k] = v`: `WILD`.

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
#: The name of the receivers of bindings whose attribute name the code does not show.
WILD = "*"
#: A call's target: `("call", repr(the callee's target), *attributes)`.
CALL = "call"
#: Builtins whose elements are their arguments' (`enumerate(mods)`), or numbers.
_WRAPPERS = frozenset({"list", "tuple", "set", "frozenset", "sorted", "reversed", "iter",
                       "enumerate", "zip", "filter"})  # fmt: skip
_NUMBERS = frozenset({"range", "len"})
#: The name of the receivers whose items the code changes (`lib.REGISTRY[k] = v`).
ITEMS = "[]"
#: Methods that change a dict, list, set or deque in place (of `vars(lib)`: `WILD`).
_CHANGES = frozenset({"update", "pop", "setdefault", "clear", "popitem", "__setitem__",
                      "__delitem__", "append", "extend", "insert", "remove", "add",
                      "discard", "appendleft", "extendleft", "sort", "reverse"})  # fmt: skip

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
#: How many steps (aliases `a = b`, `b = lib`; calls, loops, a builtin's argument) are
#: followed before a receiver counts as `ANY`.
_DEPTH = 24


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
        # The module's: per attribute name, the values the file binds there, anywhere
        # (None: unknown), with the scope each is read in (what `self.name` may be).
        self.attributes: dict[str, list[tuple[ast.expr | _Elements | None, _Scope]]] = {}

    def bind(self, name: str, how: object) -> None:
        self.bound.setdefault(name, []).append(how)


class _Elements:
    """A binding to the elements of `node` (a loop's variable, a comprehension's)."""

    def __init__(self, node: ast.expr) -> None:
        self.node = node


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
    elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store | ast.Del):
        owner = _dict_of(node.value)  # `vars(lib)["X"] = v`; else `lib.REGISTRY[k] = v`
        yield (WILD, owner) if owner is not None else (ITEMS, node.value)
    elif isinstance(node, ast.Call) and node.args:
        called = _called(node.func)
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
    if isinstance(node, ast.Call) and _called(node.func) == "vars" and len(node.args) == 1:
        return node.args[0]
    return None


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
        if node.id == "self":  # `self.out.data`: what the file binds as `out`
            roots = _attribute(steps.pop(0), scope, depth)
        else:
            roots = _name(node.id, scope, depth)
    else:
        roots = _value(node, scope, depth)
    found = {root if root == ANY else (*root, *steps) for root in roots}
    if steps and _attributes_of(scope).get(steps[0]):
        # `net.lib.LIMIT = 0` after `net.lib = lib`: an attribute of an object it made
        # holds what the file binds there too.
        more = _attribute(steps[0], scope, depth)
        found |= {root if root == ANY else (*root, *steps[1:]) for root in more}
    return found


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
        return _call(node, scope, depth)
    return {ANY}  # a subscript (`sys.modules["lib"]`), a starred value…


def _call(node: ast.Call, scope: _Scope, depth: int) -> set[Target]:
    """What a call's result may be: what its callee hands back, asked when a value changed
    (a class: an instance; a library's Python function: perhaps a module), or `ANY` where
    the call may hand back a module or class."""
    if _called(node.func) in _MAY_GIVE_OWNER:
        return {ANY}
    if isinstance(node.func, ast.Name):  # a function of the file's own, a parameter
        _, found = _lookup(node.func.id, scope)
        if any(how in (_FUNCTION, _UNKNOWN) or isinstance(how, _Elements) for how in found):
            return {ANY}
    callees = _value(node.func, scope, depth + 1)
    return {ANY} if ANY in callees else {(CALL, repr(callee)) for callee in callees}


def _elements(node: ast.expr, scope: _Scope, depth: int) -> set[Target]:
    """What the elements of iterable `node` may be (a loop's variable): a literal's own, an
    `enumerate(mods)`'s, a call's result's as it is (`model.parameters()`), else `ANY`."""
    if depth > _DEPTH:
        return {ANY}
    parts = _parts(node, scope)
    if parts is not None:
        return set().union(*(_elements(p.value, scope, depth + 1) if isinstance(p, ast.Starred)
                             else _value(p, scope, depth + 1) for p in parts))  # fmt: skip
    if isinstance(node, ast.Name):
        where, found = _lookup(node.id, scope)
        if found and (where.parent is not None or node.id not in where.globals):
            out: set[Target] = set()
            for how in found:
                if isinstance(how, ast.expr):
                    out |= _elements(how, where, depth + 1)
                elif isinstance(how, _Elements):  # `for group in groups: for p in group`
                    out |= _made_or_any(_elements(how.node, where, depth + 1))
                else:
                    out.add(ANY)
            return out
    if isinstance(node, _MADE) and not isinstance(node, ast.Constant | ast.JoinedStr):
        return {ANY}  # `mods + [lib]`, `{lib: 1}`: made, but holding what?
    return _made_or_any(_value(node, scope, depth + 1))


def _parts(node: ast.expr, scope: _Scope) -> list[ast.expr] | None:
    """The expressions whose values the elements of `node` are (`[a, *b]`, `{k: v}`'s
    keys, `[x for ...]`'s `x`, `enumerate(a)`'s `*a`; none of `range(n)`), else None."""
    parts: list[ast.expr] | None = None
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        parts = list(node.elts)
    elif isinstance(node, ast.Dict):  # `{**other}`: its keys, unknown
        parts = [ast.Slice() if k is None else k for k in node.keys]
    elif isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
        parts = [node.key if isinstance(node, ast.DictComp) else node.elt]
    elif isinstance(node, ast.BinOp):  # `mods + [lib]`
        parts = [ast.Starred(node.left), ast.Starred(node.right)]
    elif isinstance(node, ast.Constant | ast.JoinedStr):
        parts = []
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        builtin = not _lookup(node.func.id, scope)[1]  # not a name of the file's own
        if builtin and node.func.id in _NUMBERS:
            parts = []
        elif builtin and node.func.id in _WRAPPERS:
            args = node.args[1:] if node.func.id == "filter" else node.args
            parts = [ast.Starred(a) for a in args]
    return parts


def _made_or_any(targets: set[Target]) -> set[Target]:
    """The elements of what a call made are as it is; a library object's, unknown."""
    return targets if all(t[0] == CALL for t in targets) else {ANY}


def _attribute(name: str, scope: _Scope, depth: int) -> set[Target]:
    """What `self.name` may be: any value the file binds as attribute `name` (any object
    may be `self`); `ANY` where it binds none (a library's base class did) or unknown."""
    bound = _attributes_of(scope)
    found = bound.get(name)
    if not found or bound.get(WILD):
        return {ANY}
    out: set[Target] = set()
    for value, where in found:
        if isinstance(value, _Elements):
            out |= _elements(value.node, where, depth + 1)
        else:
            out |= {ANY} if value is None else _value(value, where, depth + 1)
    return out


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
        elif isinstance(how, _Elements):
            out |= _elements(how.node, where, depth + 1)
        # `def` and `class` of the file: its own function or class, no library's
    made = all(t[0] == CALL for t in out)  # only what calls handed back: asked of those
    if where.parent is None and ANY not in out and (not (made and found) or name in where.globals):
        # A module-level name that may be a module or class (or that a function binds,
        # `global x`): looked up in the module as it is when asked too (a loop's variable
        # left holding the last of them: unknown). One only ever bound to objects the
        # code made (`args = [1]`) or calls handed back (`model = Model()`: asked of the
        # call) is none.
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
        _assign(node.target, _Elements(node.iter), scope)
    else:
        _capture(node, scope)


def _capture(node: ast.AST, scope: _Scope) -> None:
    """The names `node` binds to what the code does not show (`with ... as x`, a pattern,
    `setattr(x, "out", v)`), or to an exception it caught."""
    if isinstance(node, ast.withitem) and node.optional_vars is not None:
        _assign(node.optional_vars, None, scope)
    elif isinstance(node, ast.ExceptHandler) and node.name:
        scope.bind(node.name, ast.Constant(None))  # an exception the code caught
    elif isinstance(node, ast.Call | ast.Subscript):
        for name, _ in _binds(node):
            _attribute_bound(name, None, scope)
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


def _attribute_bound(name: str, value: ast.expr | _Elements | None, scope: _Scope) -> None:
    """Note that the file binds attribute `name` to `value` (None: unknown) in `scope`."""
    _attributes_of(scope).setdefault(name, []).append((value, scope))


def _attributes_of(scope: _Scope) -> dict[str, list[tuple[ast.expr | _Elements | None, _Scope]]]:
    """The attributes the file of `scope` binds anywhere (its module scope's table)."""
    while scope.parent is not None:
        scope = scope.parent
    return scope.attributes


def _assign(target: ast.expr, value: ast.expr | _Elements | None, scope: _Scope) -> None:
    """Bind the names of `target` to `value` (None: unknown)."""
    if isinstance(target, ast.Attribute):
        _attribute_bound(target.attr, value, scope)
    elif isinstance(target, ast.Name):
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
                continue
            # `out, err = f()`: what the call made; `for k, m in ...`: what the elements are
            part = value if isinstance(value, ast.Call | _Elements) else None
            _assign(element.value if isinstance(element, ast.Starred) else element, part, scope)
    elif isinstance(target, ast.Starred):
        _assign(target.value, None, scope)
