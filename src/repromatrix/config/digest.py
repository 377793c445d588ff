"""A repro's digest: its script and the code beside it that shapes its result.

Part of every cell key, so editing any of it makes new keys and the next run new records.
Covered: the script, the private helpers in its folder (`_*.py`), and every module or
package of that folder the script imports, directly or through those modules (found by
reading their `import` statements and their `importlib.import_module`/`__import__` calls
of a literal name; the folder comes first on the repro's `sys.path`, so
`import common` there is that folder's `common.py`). Also covered: the files of that folder
these name by a literal, the data a repro reads beside it (`os.path.join(HERE, "ref.json")`,
`Path(__file__).parent / "golden" / "case.npz"`, a path joined from a folder's and a file's
literal) and the scripts it runs with `runpy.run_path` (read for their own imports and
files in turn) or `runpy.run_module`; and the files matching the names it builds at run
time (`golden/` joined to a param: `computed_paths.py`). Only regular files count (a FIFO
named `_x.py` must not block validation); a folder a literal names is not hashed whole (the
results folder beside a script at the repository's root would change every key at every
run).
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from repromatrix.config.computed_paths import (
    every_node,
    matched_files,
    path_patterns,
    unnamed_reads,
)
from repromatrix.errors import ConfigError
from repromatrix.safetext import excerpt

#: The most a repro's script, or a module of its folder that it imports, may be: every
#: command that loads the matrix parses them, at about 0.3 s and 160 MB a megabyte of
#: dense code (a 12 MB script took `validate` 30 s and 2 GB). Data belongs in a file the
#: script reads, which is hashed, not parsed.
MAX_SOURCE_BYTES = 2 * 1024 * 1024
#: The most all of them may be together (a package of the folder imported is read whole).
MAX_CODE_BYTES = 16 * 1024 * 1024
_MIB = 1024 * 1024


class CodeTooLarge(ConfigError):
    """A Python file of a repro past MAX_SOURCE_BYTES, or the one that took its code past
    MAX_CODE_BYTES. `why(root)` names it relative to `root` where it lies there (the
    loader says it at the script's line of the matrix in `root`)."""

    def __init__(self, path: Path, size: int, *, total: bool) -> None:
        self.path, self.size, self.total = path, size, total
        super().__init__(self.why(None))

    def why(self, root: Path | None) -> str:
        shown = str(self.path)
        if root is not None and self.path.is_relative_to(root.resolve()):
            shown = self.path.relative_to(root.resolve()).as_posix()
        shown = excerpt(shown, 120)
        if self.total:
            return (
                f"the Python code of its folder that the repro imports passes "
                f"{MAX_CODE_BYTES // _MIB} MiB at {shown} (every command parses it): import "
                "less of the folder, or install that code as a library"
            )
        return (
            f"{shown} is {self.size / _MIB:.1f} MiB of Python; a repro's script and each "
            f"module of its folder it imports may be at most {MAX_SOURCE_BYTES // _MIB} MiB "
            "(every command parses them): keep data in a file it reads"
        )


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
    """The files of the script's folder that its imports, and the file names it spells,
    reach (transitively through the Python files among them)."""
    folder = script.parent
    found: list[Path] = []
    todo = [script]
    seen = {script}
    total = 0
    while todo:
        path = todo.pop()
        facts = _read(path)
        total += facts.size
        if total > MAX_CODE_BYTES:
            raise CodeTooLarge(path, total, total=True)
        reached = [p for name in sorted(facts.names) for p in _module_files(folder, name)]
        named = [*_named_files(folder, facts.literals), *matched_files(folder, facts.patterns)]
        for path in [*reached, *named]:
            if path not in seen:
                seen.add(path)
                found.append(path)
                if path.suffix == ".py":
                    todo.append(path)
    return found


def uncovered_reads(script: Path) -> list[tuple[Path, int]]:
    """(file, line) where the script or a module of its folder it imports names a file of
    that folder by a name computed whole: the digest cannot cover that file."""
    out: list[tuple[Path, int]] = []
    for path in [script, *(p for p in imported_siblings(script) if p.suffix == ".py")]:
        out += [(path, line) for line in _read(path).unnamed]
    return out


@dataclass(frozen=True)
class _Facts:
    """What the digest and its warnings need of one Python file (`_read`)."""

    size: int
    names: frozenset[str] = frozenset()
    literals: frozenset[str] = frozenset()
    patterns: frozenset[str] = frozenset()
    #: Lines that open a file of the folder by a name computed whole (`unnamed_reads`).
    unnamed: tuple[int, ...] = ()


#: Facts by the sha256 of the file's bytes: the digest, `list`'s warnings and the run's
#: code watch each walk the same files, and parsing them is the cost (an edited file has
#: other bytes, so it is parsed anew).
_FACTS: dict[bytes, _Facts] = {}
_MAX_FACTS = 4096


def _read(path: Path) -> _Facts:
    """Top-level names of the modules a Python file imports (absolute imports; `from . import
    x` of a package's own files is covered by hashing the whole package), its string
    literals that could be a relative path, the glob patterns of the file names it builds
    at run time (`path_patterns`) and the lines that name one computed whole. A file past
    MAX_SOURCE_BYTES is refused unread (CodeTooLarge)."""
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_SOURCE_BYTES:
                raise CodeTooLarge(path, size, total=False)
            source = f.read(MAX_SOURCE_BYTES + 1)  # it may have grown since
    except OSError:
        return _Facts(0)  # the digest says so, for the script; its other files still count
    if len(source) > MAX_SOURCE_BYTES:
        raise CodeTooLarge(path, len(source), total=False)
    key = hashlib.sha256(source).digest()
    facts = _FACTS.get(key)
    if facts is None:
        if len(_FACTS) >= _MAX_FACTS:
            _FACTS.clear()
        facts = _FACTS[key] = _parsed(path, source)
    return facts


def _parsed(path: Path, source: bytes) -> _Facts:
    try:
        tree = ast.parse(source, filename=str(path))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return _Facts(len(source))  # the repro fails on its own; its other files still count
    names: set[str] = set()
    literals: set[str] = set()
    nodes = every_node(tree)  # walked once for the three of them
    patterns = path_patterns(tree, nodes)
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.partition(".")[0])
        elif (name := _imported_by_call(node)) is not None:
            # Not a relative name (".helpers": its empty first part made `folder / ""`,
            # the whole folder, the package imported) nor a path ("/usr" made it /usr).
            if (top := name.partition(".")[0]).isidentifier():
                names.add(top)
        elif isinstance(node, ast.Constant) and _path_like(node.value):
            literals.add(node.value)
    unnamed = tuple(unnamed_reads(tree, nodes))
    return _Facts(len(source), frozenset(names), frozenset(literals), frozenset(patterns), unnamed)


#: A literal worth looking up as a file beside the script: one line of path characters.
_PATH_LIKE = re.compile(r"[\w.+@-][\w./+@-]*")
_MAX_PATH_LITERAL = 255


def _path_like(value: object) -> TypeGuard[str]:
    return (
        isinstance(value, str)
        and len(value) <= _MAX_PATH_LITERAL
        and _PATH_LIKE.fullmatch(value) is not None
    )


def _named_files(folder: Path, literals: AbstractSet[str]) -> list[Path]:
    """The regular files of `folder` the literals name, alone (`"ref.json"`,
    `"golden/case.npz"`) or joined to a literal that names a subfolder (`HERE / "golden" /
    "case.npz"`, `os.path.join(HERE, "golden", name)` names nothing more)."""
    root = folder.resolve()
    subfolders = ["", *sorted(s for s in literals if _inside(root, folder / s, folder=True))]
    out = []
    for sub in subfolders:
        for literal in sorted(literals):
            path = folder / sub / literal
            if _inside(root, path, folder=False):
                out.append(path)
    return out


def _inside(root: Path, path: Path, *, folder: bool) -> bool:
    """Whether `path` is a regular file (or, with `folder`, a folder) inside `root`, the
    script's folder, and not in a `__pycache__`."""
    try:
        if not (path.is_dir() if folder else path.is_file()):
            return False
        resolved = path.resolve()
    except (OSError, RuntimeError, ValueError):
        return False
    return resolved != root and root in resolved.parents and "__pycache__" not in path.parts


# Calls that import a module named by a literal: `importlib.import_module("tolerances")`,
# `import_module(...)` (imported from importlib), `__import__(...)` and
# `runpy.run_module(...)`; the module they load beside the script shapes its result as
# much as an `import` statement's would.
_IMPORT_CALLS = frozenset({"import_module", "__import__", "run_module"})


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
