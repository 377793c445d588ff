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

The names the module binds in each of its scopes, and each place it binds an attribute,
are read by `worker_scopes.py` (with `WILD` and `ITEMS`); what they may be is found here.
Standard library only, as `worker_main.py`, which runs it from the same folder.
"""

from __future__ import annotations

import ast

if __package__:  # imported as part of repromatrix (type checks)
    from repromatrix.executors import worker_scopes as scoping
else:  # run from worker_main.py's folder, which is on sys.path
    import worker_scopes as scoping  # type: ignore[import-not-found,no-redef]

#: A receiver: ("global", name, *attributes) from the file's module's own globals, or
#: ("module", import name, *attributes) from `sys.modules`.
Target = tuple[str, ...]
#: A receiver that cannot be told from the code: the attribute's name alone counts.
ANY: Target = ("any",)
#: Per attribute name the code binds, its receivers (empty: only objects it made itself).
Sites = dict[str, frozenset[Target]]
#: A call's target: `("call", repr(the callee's target), *attributes)`.
CALL = "call"
#: Builtins whose elements are their arguments' (`enumerate(mods)`), or numbers.
_WRAPPERS = frozenset({"list", "tuple", "set", "frozenset", "sorted", "reversed", "iter",
                       "enumerate", "zip", "filter"})  # fmt: skip
_NUMBERS = frozenset({"range", "len"})

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
#: How many steps (aliases `a = b`, `b = lib`; calls, loops, a builtin's argument) are
#: followed before a receiver counts as `ANY`.
_DEPTH = 24


def sites_of(tree: ast.AST) -> Sites:
    """The receivers of every attribute name the code of module `tree` binds or deletes."""
    scopes: dict[ast.AST, scoping.Scope] = {}  # every node → the scope its names are read in
    scoping.collect(tree, scoping.Scope(tree, None), scopes)
    found: dict[str, set[Target]] = {}
    for node in ast.walk(tree):
        for name, receiver in scoping.binds(node):
            found.setdefault(name, set()).update(_receivers(receiver, scopes[node], 0))
    return {name: frozenset(receivers) for name, receivers in found.items()}


def _receivers(node: ast.expr | str, scope: scoping.Scope, depth: int) -> set[Target]:
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
    if steps and scoping.attributes_of(scope).get(steps[0]):
        # `net.lib.LIMIT = 0` after `net.lib = lib`: an attribute of an object it made
        # holds what the file binds there too.
        more = _attribute(steps[0], scope, depth)
        found |= {root if root == ANY else (*root, *steps[1:]) for root in more}
    return found


def _value(node: ast.expr, scope: scoping.Scope, depth: int) -> set[Target]:
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


def _call(node: ast.Call, scope: scoping.Scope, depth: int) -> set[Target]:
    """What a call's result may be: what its callee hands back, asked when a value changed
    (a class: an instance; a library's Python function: perhaps a module), or `ANY` where
    the call may hand back a module or class."""
    if scoping.call_name(node.func) in _MAY_GIVE_OWNER:
        return {ANY}
    if isinstance(node.func, ast.Name):  # a function of the file's own, a parameter
        _, found = _lookup(node.func.id, scope)
        if any(
            how in (scoping.FUNCTION, scoping.UNKNOWN) or isinstance(how, scoping.Elements)
            for how in found
        ):
            return {ANY}
    callees = _value(node.func, scope, depth + 1)
    return {ANY} if ANY in callees else {(CALL, repr(callee)) for callee in callees}


def _elements(node: ast.expr, scope: scoping.Scope, depth: int) -> set[Target]:
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
                elif isinstance(how, scoping.Elements):  # `for group in groups: for p in group`
                    out |= _made_or_any(_elements(how.node, where, depth + 1))
                else:
                    out.add(ANY)
            return out
    if isinstance(node, _MADE) and not isinstance(node, ast.Constant | ast.JoinedStr):
        return {ANY}  # `mods + [lib]`, `{lib: 1}`: made, but holding what?
    return _made_or_any(_value(node, scope, depth + 1))


def _parts(node: ast.expr, scope: scoping.Scope) -> list[ast.expr] | None:
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


def _attribute(name: str, scope: scoping.Scope, depth: int) -> set[Target]:
    """What `self.name` may be: any value the file binds as attribute `name` (any object
    may be `self`); `ANY` where it binds none (a library's base class did) or unknown."""
    bound = scoping.attributes_of(scope)
    found = bound.get(name)
    if not found or bound.get(scoping.WILD):
        return {ANY}
    out: set[Target] = set()
    for value, where in found:
        if isinstance(value, scoping.Elements):
            out |= _elements(value.node, where, depth + 1)
        else:
            out |= {ANY} if value is None else _value(value, where, depth + 1)
    return out


def _lookup(name: str, scope: scoping.Scope) -> tuple[scoping.Scope, list[object]]:
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


def _name(name: str, scope: scoping.Scope, depth: int) -> set[Target]:
    where, found = _lookup(name, scope)
    if name in where.memo:  # each name's bindings followed once (None: under way, a cycle)
        known = where.memo[name]
        return {ANY} if known is None else known
    where.memo[name] = None
    out: set[Target] = set()
    for how in found:
        if how == scoping.UNKNOWN:
            out.add(ANY)
        elif isinstance(how, tuple):  # an import: ("module", import name, *attributes)
            out.add(how)
        elif isinstance(how, ast.expr):
            out |= _value(how, where, depth + 1)
        elif isinstance(how, scoping.Elements):
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
