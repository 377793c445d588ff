"""A repro's digest: its script and the code beside it that shapes its result.

Part of every cell key, so editing any of it makes new keys and the next run new records.
Covered: the script, the private helpers in its folder (`_*.py`), and every module or
package of that folder the script imports, directly or through those modules (found by
reading their `import` statements and their `importlib.import_module`/`__import__` calls
of a literal name; the folder comes first on the repro's `sys.path`, so
`import common` there is that folder's `common.py`). Only regular files count (a FIFO named
`_x.py` must not block validation).
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path
from typing import Any


def script_digest(script: Path) -> str:
    h = hashlib.sha256()
    _hash_file(h, script)
    private = sorted(p for p in script.parent.glob("_*.py") if p.is_file())
    for helper in private:
        h.update(helper.name.encode())
        _hash_file(h, helper)
    # Imported siblings other than the private helpers (hashed above, as before: keys of
    # repros that import nothing else stay as they were).
    for path in sorted(set(imported_siblings(script)) - set(private)):
        h.update(b"\0" + str(path.relative_to(script.parent)).encode())
        _hash_file(h, path)
    return h.hexdigest()


def imported_siblings(script: Path) -> list[Path]:
    """The files of the script's folder that its imports reach (transitively)."""
    folder = script.parent
    found: list[Path] = []
    todo = [script]
    seen = {script}
    while todo:
        for name in _imported_names(todo.pop()):
            for path in _module_files(folder, name):
                if path not in seen:
                    seen.add(path)
                    found.append(path)
                    todo.append(path)
    return found


def _imported_names(path: Path) -> set[str]:
    """Top-level names of the modules a file imports (absolute imports; `from . import x`
    of a package's own files is covered by hashing the whole package)."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return set()  # the repro fails on its own; its other files still count
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.partition(".")[0])
        elif (name := _imported_by_call(node)) is not None:
            names.add(name.partition(".")[0])
    return names


# Calls that import a module named by a literal: `importlib.import_module("tolerances")`,
# `import_module(...)` (imported from importlib) and `__import__(...)`; the module they
# load beside the script shapes its result as much as an `import` statement's would.
_IMPORT_CALLS = frozenset({"import_module", "__import__"})


def _imported_by_call(node: ast.AST) -> str | None:
    if not isinstance(node, ast.Call) or not node.args:
        return None
    func = node.func
    called = ""
    if isinstance(func, ast.Name):
        called = func.id
    elif isinstance(func, ast.Attribute):
        called = func.attr
    first = node.args[0]
    if called in _IMPORT_CALLS and isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    return None


def _module_files(folder: Path, name: str) -> list[Path]:
    """`name.py` in `folder`, or every `.py` file of the package `name/`, a namespace
    package (no `__init__.py`) included."""
    module = folder / f"{name}.py"
    if module.is_file():
        return [module]
    package = folder / name
    if package.is_dir():
        return sorted(p for p in package.rglob("*.py") if p.is_file())
    return []


def _hash_file(h: Any, path: Path) -> None:
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
