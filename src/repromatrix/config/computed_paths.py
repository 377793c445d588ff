"""The files of a repro's folder it reads under names built at run time, as glob patterns.

A repro that picks its golden file by a param (`os.path.join(HERE, "golden", name)`,
`HERE / "golden" / f"case_{n}.npz"`, `"ref_" + dtype + ".json"`, `"ref_%s.json" % dtype`)
names no file by a literal, so its key covered none of them: an edited golden file reused
the stale record.
Each such name becomes a pattern, its literal parts kept and each computed part a `*`
(`golden/*`, `golden/case_*.npz`, `ref_*.json`), and the files of the folder it matches are
part of the key: more files than the repro reads, perhaps, never fewer. A glob the repro
spells itself (`HERE.glob("golden/*.npz")`, `glob.glob(os.path.join(HERE, "data", "*"))`)
counts the same way. A name computed whole (`os.path.join(HERE, params["file"])`) gives
no pattern: name such files in the script (a literal, or a glob literal) to cover them.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from pathlib import Path

#: One path of a folder's files as a pattern: path characters and `*`/`?`, no space.
_PATTERN = re.compile(r"[\w.+@*?-][\w./+@*?-]*")
_MAX_PATTERN = 255
_COMPUTED = "*"
#: A `str.format` field or a `%` conversion: a computed part of a literal.
_PLACEHOLDER = re.compile(r"\{[\w.\[\]!:]*\}|%[-#0 +]*\d*(?:\.\d+)?[sdifgr]")


def every_node(tree: ast.AST) -> list[ast.AST]:
    """`tree`'s nodes in `ast.walk`'s order (breadth first), as a list: the digest, the
    patterns and the unnamed reads each walked a script's tree again, and `ast.walk`'s
    generators made that most of `load_matrix`'s time (0.1 s for this repo's repros)."""
    out = [tree]
    for node in out:  # the list grows as it is read: each node's children are queued
        for name in node._fields:
            value = getattr(node, name, None)
            if isinstance(value, ast.AST):
                out.append(value)
            elif isinstance(value, list):
                out.extend([item for item in value if isinstance(item, ast.AST)])
    return out


def path_patterns(tree: ast.AST, nodes: Sequence[ast.AST] | None = None) -> set[str]:
    """The patterns of the file names `tree`'s code builds or globs (see the module);
    `nodes`: `every_node(tree)`, where the caller has it."""
    nodes = every_node(tree) if nodes is None else nodes
    found: set[str] = set()
    sums = _string_sums(nodes, found)
    for node in nodes:
        parts: list[str] | None = None
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if "*" in node.value or "?" in node.value:  # a glob the repro spells
                parts = [node.value]
            elif (filled := _PLACEHOLDER.sub("*", node.value)) != node.value:
                parts = [filled]  # "ref_{}.json".format(dtype), "case_%d.npz" % n
        elif isinstance(node, ast.JoinedStr):
            parts = [_fragment(node)]
        elif isinstance(node, ast.Call) and _is_join(node):
            parts = [_fragment(arg, sums) for arg in node.args]
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            parts = [_fragment(p, sums) for p in _divided(node)]
        if parts is not None and (pattern := _pattern(parts)) is not None:
            found.add(pattern)
    return found


def _string_sums(nodes: Sequence[ast.AST], found: set[str]) -> dict[int, tuple[bool, str]]:
    """Add to `found` the pattern of every sum with a string literal in it (`"ref_" + dtype
    + ".json"`, and each sum inside one: `"ref_" + dtype`), and return, by node id, whether
    each outermost sum has such a literal and its fragment.

    One pass, children before parents (`ast.walk` goes breadth first, so its reverse does),
    each sum's fragment made from its two sides' once: taking every sum's operands anew
    cost the square of a chain's length (a script's 2,900-term sum held `validate` 7 s)."""
    done: dict[int, tuple[bool, str]] = {}
    for node in reversed(nodes):
        if not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add)):
            continue
        has, text = False, ""
        for side in (node.left, node.right):
            if isinstance(side, ast.BinOp) and isinstance(side.op, ast.Add):
                side_has, side_text = done.pop(id(side))  # its parent alone needs it
            else:
                side_has = isinstance(side, ast.Constant) and isinstance(side.value, str)
                side_text = _fragment(side)
            has, text = has or side_has, text + side_text
        done[id(node)] = (has, text)
        if has and not _too_long(text) and (pattern := _pattern([text])) is not None:
            found.add(pattern)
    return done


def _too_long(text: str) -> bool:
    """Whether `_pattern` surely refuses `text` as longer than a pattern may be, told
    without its regular expressions (each prefix of a long sum is one such text): what
    is left after the leading folder parts keeps at least its characters other than `*`."""
    rest = text.lstrip("*/")
    return len(rest) - rest.count("*") > _MAX_PATTERN


def matched_files(folder: Path, patterns: AbstractSet[str]) -> list[Path]:
    """The regular files of `folder` (not of its `__pycache__`) that `patterns` match."""
    root = folder.resolve()
    out: set[Path] = set()
    for pattern in sorted(patterns):
        try:
            for path in folder.glob(pattern):
                resolved = path.resolve()
                if (
                    path.is_file()
                    and root in resolved.parents
                    and "__pycache__" not in path.relative_to(folder).parts
                ):
                    out.add(path)
        except (OSError, RuntimeError, ValueError):
            continue  # an unreadable subfolder, a link loop: the rest still counts
    return sorted(out)


def _fragment(node: ast.AST, sums: dict[int, tuple[bool, str]] | None = None) -> str:
    """The text a path fragment spells, each computed part a `*` (a sum's from `sums`,
    as `_string_sums` made them, where given)."""
    if sums is not None and id(node) in sums:
        has, text = sums[id(node)]
        return text if has else _COMPUTED
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, str) else _COMPUTED
    if isinstance(node, ast.JoinedStr):
        return "".join(
            v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else _COMPUTED
            for v in node.values
        )
    if _string_sum(node):
        return "".join(_fragment(operand) for operand in _operands(node, ast.Add))
    template = None  # "case_%d.npz" % n, "case_{}.npz".format(n)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        template = node.left
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        template = node.func.value if node.func.attr == "format" else None
    if isinstance(template, ast.Constant) and isinstance(template.value, str):
        return _PLACEHOLDER.sub(_COMPUTED, template.value)
    return _COMPUTED


def _operands(node: ast.AST, op: type[ast.operator]) -> list[ast.AST]:
    """The operands of a chain of one operator (`a + b + c`), left to right, however
    nested: read with a stack, not by recursion (a valid script's sum of 500 terms passed
    Python's recursion limit here, and validate, list and run ended in an internal error)."""
    out: list[ast.AST] = []
    todo = [node]
    while todo:
        item = todo.pop()
        if isinstance(item, ast.BinOp) and isinstance(item.op, op):
            todo += [item.right, item.left]
        else:
            out.append(item)
    return out


def _string_sum(node: ast.AST) -> bool:
    """`"ref_" + dtype + ".json"`: a sum with a string literal in it."""
    if not isinstance(node, ast.BinOp) or not isinstance(node.op, ast.Add):
        return False
    return any(
        isinstance(s, ast.Constant) and isinstance(s.value, str) for s in _operands(node, ast.Add)
    )


def _is_join(node: ast.Call) -> bool:
    """`os.path.join(...)`, `posixpath.join(...)`, `join(...)` imported from os.path."""
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr == "join" and ast.unparse(func.value) in ("os.path", "path", "posixpath")
    return isinstance(func, ast.Name) and func.id == "join"


def _divided(node: ast.BinOp) -> list[ast.AST]:
    """`HERE / "golden" / name` as its operands, left to right (a right operand that is
    itself a division, `HERE / ("a" / b)`, stays one operand)."""
    head: list[ast.AST] = []
    left: ast.AST = node
    while isinstance(left, ast.BinOp) and isinstance(left.op, ast.Div):
        head.append(left.right)
        left = left.left
    return [left, *reversed(head)]


def _pattern(parts: list[str]) -> str | None:
    """The parts joined as a path relative to the folder, its leading computed segments
    (the folder: `HERE`, `Path(__file__).parent`, `f"{HERE}/..."`) left out; None when
    what is left spells no extension or subfolder (`"a" + x` would match half the folder)."""
    segments = re.sub(r"\*+", "*", "/".join(parts)).split("/")  # no `**`: one level each
    while segments and segments[0] in (_COMPUTED, ""):
        segments = segments[1:]
    pattern = "/".join(segments)
    spelled = re.sub(r"[*?]", "", pattern)
    if (
        len(pattern) > _MAX_PATTERN
        or not _PATTERN.fullmatch(pattern)
        or ".." in segments
        or "" in segments
        or not ("." in spelled or "/" in pattern)
        or not re.search(r"\w", spelled)  # f"{major}.{minor}" is no file name
        or all(s in ("*", "?") for s in segments)
    ):
        return None
    if "*" not in pattern and "?" not in pattern:
        return None  # a literal name: the digest looks it up as one
    return pattern


def unnamed_reads(tree: ast.AST, nodes: Sequence[ast.AST] | None = None) -> list[int]:
    """Lines where the code names a file of its own folder by a name computed whole
    (`os.path.join(HERE, params["file"])`, `Path(__file__).parent / name`): no pattern
    covers it, so the key misses that file. Empty when the code spells a glob (its way of
    naming such files: `"golden/*.json"`). `nodes`: `every_node(tree)`, where the caller
    has it."""
    nodes = every_node(tree) if nodes is None else nodes
    if any(
        isinstance(n, ast.Constant)
        and isinstance(n.value, str)
        and ("*" in n.value or "?" in n.value)
        for n in nodes
    ):
        return []
    folders = {
        target.id
        for node in nodes
        if isinstance(node, ast.Assign) and _mentions_file(node.value, set())
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    inner = {
        id(node.left)
        for node in nodes
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)
    }
    lines = []
    for node in nodes:
        parts: list[ast.AST] = []
        if isinstance(node, ast.Call):
            func = node.func
            if _is_join(node):
                parts = list(node.args)
            elif isinstance(func, ast.Attribute) and func.attr in ("joinpath", "with_name"):
                parts = [func.value, *node.args]
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and id(node) not in inner:
            parts = _divided(node)
        if (
            len(parts) > 1
            and _mentions_file(parts[0], folders)
            and all(_fragment(p) == _COMPUTED and not _mentions_file(p, folders) for p in parts[1:])
        ):
            lines.append(getattr(node, "lineno", 0))
    return sorted(set(lines))


def _mentions_file(node: ast.AST, folders: set[str]) -> bool:
    """Whether `node` names the script's folder: `__file__` in it, or a name set from one."""
    return any(
        isinstance(n, ast.Name) and (n.id == "__file__" or n.id in folders) for n in ast.walk(node)
    )
