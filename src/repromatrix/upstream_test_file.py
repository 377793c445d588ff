"""A `bisect --test` file as `--test-from` has it: its exact bytes (laid over each commit's
tree as they are), and what keeps it from giving a verdict at any commit, found before any
environment is built: a link, bytes Python cannot read as its source, a syntax error, a
name the test needs that the file neither imports nor defines. Each of those made every
commit untestable (or failed both ends alike), and the bisection stopped, exit 6, after
building both ends, naming neither the file nor the fix."""

from __future__ import annotations

import ast
import builtins
import io
import os
import tarfile
import tempfile
import tokenize
from pathlib import Path

from repromatrix.gitrepo import GitError, GitRepo

#: Names a module has without binding them (`__file__`, `__name__`...) and the builtins.
_GIVEN = frozenset(dir(builtins))
#: Calls through which a file binds names the source does not spell.
_DYNAMIC = frozenset({"globals", "vars", "setattr", "exec", "eval", "locals", "__builtins__"})

#: The param naming the pinned file by its digest (the script reads `inputs/<sha256>`).
BY_DIGEST = "test_file_sha256"
#: The param an older copy of repros/upstream_pytest.py takes the file's base64 in, on
#: its command line under --isolate, where one argument holds at most 128 KiB.
BY_CONTENT = "test_file_b64"
#: The most base64 such a copy is given: its --params beside it stay under 128 KiB.
MAX_BY_CONTENT = 120_000


def file_param(script: Path) -> str:
    """The param through which `script` (an upstream_pytest.py) takes the pinned test file:
    BY_DIGEST, or BY_CONTENT for a copy older than it (beside a matrix.yaml), whose cells
    keep their keys, and reuse the runs stored of them."""
    try:
        text = script.read_text(errors="replace")
    except OSError:
        return BY_DIGEST  # the run reads it again and says why it cannot
    return BY_DIGEST if f'"{BY_DIGEST}"' in text else BY_CONTENT


def file_bytes(repo: GitRepo, sha: str, path: str) -> bytes | str:
    """The file's bytes at `sha`, or why they cannot be a test file (a link). `path` is a
    file there (`GitRepo.show` said so); GitError where git cannot write it out."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            repo.archive(sha, Path(tmp), path)
        except tarfile.TarError:  # a link out of the tree: the "data" filter refuses it
            return "is a symbolic link out of the repository; give the file it points to"
        found = Path(tmp, path)
        if found.is_symlink():
            return f"is a symbolic link (to {os.readlink(found)}); give the file it points to"
        try:
            return found.read_bytes()
        except OSError as exc:
            raise GitError(f"cannot read {path} as git wrote it out: {exc.strerror}") from None


def problem(content: bytes, path: str, node: str) -> str | None:
    """Why a Python test file cannot give the verdict at any commit; None when it may (or
    when that cannot be known: not a .py file, names made at run time)."""
    if not path.endswith(".py"):
        return None
    unread = _unreadable(content)
    if unread:
        return unread
    try:
        tree = ast.parse(content)
    except (SyntaxError, ValueError):
        # Not refused: the cells' Python may be newer than this one (3.12's f-strings,
        # `type` statements) and parse it; where it does not, the ends say so.
        return None
    missing = sorted(free_names(tree, node))
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if missing[5:] else "")
        return (
            f"uses {shown}, which it neither imports nor defines (a NameError at every "
            "commit); import it there, or give a --test-from whose file does"
        )
    return None


def _unreadable(content: bytes) -> str | None:
    """Why no Python reads `content` as source text (its encoding, a null byte), if so."""
    try:
        encoding = tokenize.detect_encoding(io.BytesIO(content).readline)[0]
    except SyntaxError as exc:
        if "invalid or missing" not in exc.msg:  # a declaration Python does not know
            return f"cannot be read as Python source ({exc.msg}); fix its coding line"
        encoding = "utf-8"  # its first lines are not UTF-8, and declare nothing else
    try:
        content.decode(encoding)
    except UnicodeDecodeError as exc:
        line = content[: exc.start].count(b"\n") + 1
        named = "UTF-8" if encoding.startswith("utf-8") else encoding
        return (
            f"is not {named} (byte 0x{content[exc.start]:02x} on line {line}), which Python "
            "reads a source file as; save it as UTF-8, or declare its encoding in a "
            "'# -*- coding: NAME -*-' line"
        )
    if b"\x00" in content:  # no Python reads a source file with a null byte
        line = content[: content.index(b"\x00")].count(b"\n") + 1
        return (
            f"does not parse: a null byte on line {line}; fix it, or give a --test-from "
            "where it parses"
        )
    return None


def free_names(tree: ast.Module, node: str) -> set[str]:
    """Names read where they run at import or in the test `node` names (its function, or
    its class's body and method) that the file binds nowhere and Python does not give:
    each a NameError at every commit. Other tests' bodies are left out (a broken test
    beside this one does not stop it), as are annotations (not run under `from __future__
    import annotations`); nothing when the file binds names the source does not show."""
    bound: set[str] = set()
    for item in ast.walk(tree):
        if isinstance(item, (ast.Import, ast.ImportFrom)):
            for alias in item.names:
                if alias.name == "*":
                    return set()
                bound.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(item, ast.Name):
            if item.id in _DYNAMIC:
                return set()
            if not isinstance(item.ctx, ast.Load):
                bound.add(item.id)
        elif isinstance(item, ast.arg):
            bound.add(item.arg)
        elif isinstance(item, (ast.Global, ast.Nonlocal)):
            bound.update(item.names)
        elif isinstance(item, ast.MatchMapping) and item.rest:
            bound.add(item.rest)
        elif isinstance(getattr(item, "name", None), str):  # def, class, except as, match
            bound.add(item.name)  # type: ignore[attr-defined]
    target = node.partition("::")[2].partition("[")[0].split("::")
    read: set[str] = set()
    _visit(tree, target, read)
    return {n for n in read - bound - _GIVEN if not (n.startswith("__") and n.endswith("__"))}


def _visit(item: ast.AST, target: list[str], read: set[str]) -> None:
    """Add the names `item` reads at import, and in the part of it `target` names."""
    if isinstance(item, ast.Name):
        if isinstance(item.ctx, ast.Load):
            read.add(item.id)
    elif isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        _visit_function(item, target, read)
    elif isinstance(item, ast.ClassDef):
        inside = target[1:] if target and item.name == target[0] else []
        for part in [*item.decorator_list, *item.bases, *item.keywords]:
            _visit(part, [], read)
        for statement in item.body:
            _visit(statement, inside, read)
    elif isinstance(item, ast.AnnAssign):  # its annotation is not run (`__future__`)
        for side in (item.target, item.value):
            if side is not None:
                _visit(side, target, read)
    elif not isinstance(item, ast.arg):  # an argument's annotation, likewise
        for child in ast.iter_child_nodes(item):
            _visit(child, target, read)


def _visit_function(
    item: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda, target: list[str], read: set[str]
) -> None:
    """Its decorators and defaults run at import; its body when called (the test's own)."""
    defaults = [d for d in item.args.kw_defaults if d is not None]
    for part in [*getattr(item, "decorator_list", ()), *item.args.defaults, *defaults]:
        _visit(part, [], read)
    if target and not isinstance(item, ast.Lambda) and item.name == target[0]:
        for statement in item.body:
            _visit(statement, [], read)
