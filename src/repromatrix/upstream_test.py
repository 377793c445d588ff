"""The library's own test as a bisection's verdict (`bisect --test PATH::NODE --test-from
REV`): the test file is taken from REV and checked there before any cell runs, so a path or
test name that REV does not have is one line, not a bisection whose ends are untestable."""

from __future__ import annotations

import ast
import base64
import dataclasses
import posixpath

from repromatrix.bisect_plan import BisectRequest, Setup
from repromatrix.candidates import resolve
from repromatrix.config.messages import did_you_mean
from repromatrix.errors import BisectError, UsageError
from repromatrix.executors.cell_inputs import input_name
from repromatrix.gitrepo import GitError
from repromatrix.mirrors import Mirrors
from repromatrix.upstream_test_file import (
    BY_CONTENT,
    BY_DIGEST,
    MAX_BY_CONTENT,
    file_bytes,
    problem,
)


def with_test_file(request: BisectRequest, setup: Setup, mirrors: Mirrors) -> Setup:
    """The setup whose repro carries the --test file as it is at --test-from."""
    if not request.test_from:
        return setup
    assert setup.library.git is not None
    repo = mirrors.repo(setup.library.name, setup.library.git)
    node = str(request.test)
    path = node.split("::", 1)[0]
    try:
        sha = resolve(repo, request.test_from)
    except BisectError as exc:
        raise BisectError(f"--test-from {request.test_from}: {exc}") from None
    at = f"{request.test_from} ({sha[:10]})" if request.test_from != sha else sha[:10]
    try:
        # As the repository spells it: git reads `REV:./t.py` as relative to a work tree.
        repo.show(sha, posixpath.normpath(path))
        content = file_bytes(repo, sha, posixpath.normpath(path))
    except GitError as exc:
        # A folder was laid over the tree as a file holding git's listing of it.
        what = "is a folder, not a file," if "bad file" in str(exc) else "does not exist"
        raise UsageError(
            f"--test {node}: {path} {what} at {at}; give the test file's path there, "
            "or a --test-from that has it"
        ) from None
    why = content if isinstance(content, str) else problem(content, path, node)
    if why:
        raise UsageError(f"--test {node}: {path} at {at} {why}")
    assert isinstance(content, bytes)
    text = content.decode(errors="replace")  # `problem` decoded it (or it is no .py file)
    name, known = node_name(node), defined_names(text, path)
    if name and known is not None and name not in known:
        raise UsageError(_defines_no(node, path, at, name, known))
    method, members = method_name(text, path, node)
    if method and members is not None and method not in members:
        raise UsageError(_defines_no(node, path, at, f"{name}::{method}", members))
    params = dict(setup.repro.params)
    params["test_from"] = sha
    if BY_CONTENT in params:  # an older upstream_pytest.py beside matrix.yaml
        params[BY_CONTENT] = base64.b64encode(content).decode()
        if len(params[BY_CONTENT]) > MAX_BY_CONTENT:
            raise UsageError(
                f"--test {node}: {path} at {at} is {len(content):,} bytes; "
                f"{setup.repro.script} is an older copy, which takes the file on its command "
                "line (at most 90 KB): copy repros/upstream_pytest.py there from the "
                "repromatrix sources"
            )
        repro = dataclasses.replace(setup.repro, params=params)
    else:
        # Named by its digest, laid in each cell's folder: a file of any size, and records
        # of 64 characters for it, not its whole text (the key covers the file all the same).
        params[BY_DIGEST] = input_name(content)
        repro = dataclasses.replace(setup.repro, params=params, inputs=(content,))
    return dataclasses.replace(setup, repro=repro)


def _defines_no(node: str, path: str, at: str, name: str, known: set[str]) -> str:
    tests = sorted(n for n in known if n.startswith(("test", "Test")))
    listed = f"; it defines {', '.join(tests[:8])}" if tests else ""
    hint = did_you_mean(name.rpartition("::")[2], tests) or listed
    return (
        f"--test {node}: {path} at {at} defines no {name} (pytest --collect-only -q "
        f"{path} lists the tests it defines){hint}"
    )


def node_name(node: str) -> str:
    """The module-level name a node id starts with: `test_y` of `t.py::test_y[a::b]`,
    `TestX` of `t.py::TestX::test_y` ("" for a file, or a doctest's dotted name)."""
    _, sep, rest = node.partition("::")
    name = rest.partition("[")[0].split("::")[0] if sep else ""
    return "" if "." in name else name


def defined_names(content: str, path: str) -> set[str] | None:
    """Every name the file binds anywhere (defs, classes, assignments, imports); None when
    that cannot be known (not Python, a syntax error pytest will report, `import *`, or
    names made at run time), so no test is refused that pytest might collect."""
    tree = _parsed(content, path)
    return None if tree is None else _bound(tree)


def method_name(content: str, path: str, node: str) -> tuple[str, set[str] | None]:
    """The method a `t.py::TestX::test_y[p]` node names, and every name TestX's body and
    its bases' bind; None where pytest might collect more than the source shows: TestX
    bound more than once or not by a top-level class, a base or metaclass from elsewhere
    (`unittest.TestCase`, a mixin imported: inherited tests), a decorator other than
    `pytest.mark`'s. ("", None) for a node with no method."""
    parts = node.partition("::")[2].partition("[")[0].split("::")
    if len(parts) < 2 or "." in parts[0]:
        return "", None
    tree = _parsed(content, path)
    if tree is None or _bound(tree) is None or _set_as_attribute(tree, parts[1]):
        return parts[1], None
    return parts[1], _members(tree, parts[0], set())


def _set_as_attribute(tree: ast.Module, name: str) -> bool:
    """`TestX.test_y = f`, or `cls.test_y = f` in a hook: a method the class body lacks."""
    return any(
        isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store) and n.attr == name
        for n in ast.walk(tree)
    )


def _members(tree: ast.Module, name: str, seen: set[str]) -> set[str] | None:
    classes = [c for c in tree.body if isinstance(c, ast.ClassDef) and c.name == name]
    bound = sum(1 for n in ast.walk(tree) if name in _binds(n))
    if len(classes) != 1 or bound != 1 or name in seen:
        return None
    cls = classes[0]
    if cls.keywords or not all(_a_mark(d) for d in cls.decorator_list):
        return None
    names: set[str] = set()
    for statement in cls.body:  # its members, not the class's own name
        names |= _bound(statement) or set()  # never None: the whole file's was not
    for base in cls.bases:
        if not isinstance(base, ast.Name):
            return None
        more = set() if base.id == "object" else _members(tree, base.id, seen | {name})
        if more is None:
            return None
        names |= more
    return names


def _a_mark(decorator: ast.expr) -> bool:
    """`@pytest.mark.skipif(...)` and the like: marks add no test to a class."""
    node = decorator.func if isinstance(decorator, ast.Call) else decorator
    chain: list[str] = []
    while isinstance(node, ast.Attribute):
        chain.append(node.attr)
        node = node.value
    return isinstance(node, ast.Name) and node.id == "pytest" and chain[-1:] == ["mark"]


def _binds(node: ast.AST) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
        return {node.id}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {a.asname or a.name.split(".")[0] for a in node.names}
    return set()


def _parsed(content: str, path: str) -> ast.Module | None:
    if not path.endswith(".py"):
        return None
    try:
        return ast.parse(content)
    except (SyntaxError, ValueError):
        return None


#: Calls that bind names the source does not show (`locals()` too: a class body's).
_MAKES_NAMES = ("globals", "vars", "locals", "setattr", "exec")


def _bound(tree: ast.AST) -> set[str] | None:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
            return None
        if isinstance(node, ast.Name) and node.id in _MAKES_NAMES:
            return None
        names |= _binds(node)
    return names
