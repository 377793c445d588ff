"""Load YAML, bounded, and remember where every value came from (file, line, column).

We build plain Python values from PyYAML's event stream ourselves, so that (a) each value's
path maps to its position, for error messages, (b) duplicate mapping keys are an error
instead of the last one silently winning, and (c) nothing a file says can take unbounded
time or memory: a matrix is a regular file of at most MAX_BYTES, nested at most MAX_DEPTH
levels, holding at most MAX_VALUES values once its aliases are expanded. A 560-byte
document of nine aliases to nine aliases (a "billion laughs") would otherwise expand to
millions of values; it is refused before anything is built, as is a document nested
thousands of levels deep (PyYAML's composer recurses, and would raise RecursionError).
Composing from events, not PyYAML's recursive composer, also means no depth of any file
reaches Python's recursion limit.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repromatrix.config.yamlevents import Node, YamlProblem, compose
from repromatrix.errors import ConfigError
from repromatrix.safetext import excerpt

PathKey = tuple[str | int, ...]

#: A matrix file is at most this large (the project's own is 6 KB).
MAX_BYTES = 512 * 1024


@dataclass(frozen=True, kw_only=True)
class Mark:
    file: str
    line: int  # 1-based
    column: int  # 1-based
    #: A scalar YAML read as other than text, as written (see `yamlevents.Node.text`).
    text: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, kw_only=True)
class Located:
    """A loaded document plus the position of every value and of every mapping key."""

    data: Any
    values: dict[PathKey, Mark]
    keys: dict[PathKey, Mark]
    file: str

    def mark(self, path: PathKey, *, key: bool = False) -> Mark:
        """Position of `path`, or of its nearest ancestor that was in the file."""
        table = self.keys if key else self.values
        probe = tuple(path)
        while probe:
            if probe in table:
                return table[probe]
            if probe in self.values:
                return self.values[probe]
            probe = probe[:-1]
        return self.values.get((), Mark(file=self.file, line=1, column=1))


def display_name(name: str) -> str:
    """A file name as error messages show it: printable, at most 100 characters (the end,
    which names the file, is kept)."""
    shown = excerpt(name, 10_000)
    return shown if len(shown) <= 100 else "…" + shown[-99:]


def load_located(path: Path, *, display: str | None = None) -> Located:
    name = display_name(display or str(path))
    data = read_bounded(path, name)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            f"{name}:{line}:{column}: byte 0x{data[exc.start]:02x} is not UTF-8; save the "
            "file as UTF-8"
        ) from None
    return loads_located(text, display=name)


def read_bounded(path: Path, name: str) -> bytes:
    """The bytes of a regular file of at most MAX_BYTES (never a FIFO, a device, a
    directory or /proc's endless files)."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below).
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ConfigError(f"{name}: file not found; pass --matrix PATH or create it") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{name}: cannot read ({_why(exc)}); pass --matrix PATH") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise ConfigError(f"{name}: {kind}; pass --matrix with a matrix.yaml file")
        chunks, size = [], 0
        while size <= MAX_BYTES:
            chunk = os.read(fd, MAX_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read ({_why(exc)}); pass --matrix PATH") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if size > MAX_BYTES:
        line = data.count(b"\n", 0, MAX_BYTES) + 1
        column = MAX_BYTES - data.rfind(b"\n", 0, MAX_BYTES)
        raise ConfigError(
            f"{name}:{line}:{column}: the file passes {MAX_BYTES // 1024} KiB here, the most "
            "a matrix may be; split it or remove what it does not need"
        )
    return data


def _why(exc: BaseException) -> str:
    return excerpt(exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc), 60)


def loads_located(text: str, *, display: str) -> Located:
    values: dict[PathKey, Mark] = {}
    keys: dict[PathKey, Mark] = {}
    try:
        node = compose(text)
    except YamlProblem as exc:
        raise ConfigError(f"{display}:{exc.line}:{exc.column}: {exc.message}") from None
    if node is None:
        return Located(data=None, values=values, keys=keys, file=display)
    data = _build(node, (), values, keys, display)
    return Located(data=data, values=values, keys=keys, file=display)


def _key_problem(node: Node) -> str:
    """Why a mapping key that YAML read as other than text is refused, quoting it as the
    file has it: `1.10:` is the number 1.1 and `~:` null, and the fix is to quote what was
    written ('1.10'), never what YAML made of it ('1.1' would name another release)."""
    if node.kind != "scalar":
        return f"a mapping key must be a string, not a {node.kind}; write the name as text"
    key, written = node.value, excerpt(node.text)
    if key is None:
        if not written:
            return "a mapping key is empty (YAML reads that as null); write the name"
        what = "null"
    elif isinstance(key, bool):
        what = "a boolean"
    elif isinstance(key, int | float):
        what = "a number" if written == str(key) else f"the number {excerpt(key)}"
    else:
        what = "a date" if type(key).__name__ == "date" else "a time"
    written = written or excerpt(key)
    return (
        f"mapping key {written} must be a string, but YAML reads it as {what}; "
        f"quote it: '{written}'"
    )


def _mark(node: Node, file: str) -> Mark:
    # One Mark per node, however many times aliases expand it.
    if node.mark is None:
        node.mark = Mark(file=file, line=node.line, column=node.column, text=node.text)
    mark: Mark = node.mark
    return mark


def _build(
    node: Node,
    path: PathKey,
    values: dict[PathKey, Mark],
    keys: dict[PathKey, Mark],
    file: str,
) -> Any:
    """Plain values from the node tree (recursion bounded by yamlevents.MAX_DEPTH)."""
    values[path] = _mark(node, file)
    if node.kind == "mapping":
        out: dict[Any, Any] = {}
        for key_node, value_node in node.items:
            key = key_node.value
            if key_node.kind != "scalar" or not isinstance(key, str):
                raise ConfigError(f"{_mark(key_node, file)}: {_key_problem(key_node)}")
            if key in out:
                first = keys[(*path, key)]
                raise ConfigError(
                    f"{_mark(key_node, file)}: duplicate key '{excerpt(key)}' (first defined "
                    f"at line {first.line}); remove or rename one of them"
                )
            keys[(*path, key)] = _mark(key_node, file)
            out[key] = _build(value_node, (*path, key), values, keys, file)
        return out
    if node.kind == "sequence":
        return [_build(item, (*path, i), values, keys, file) for i, item in enumerate(node.items)]
    return node.value
