"""Load YAML and remember where every value came from (file, line, column).

PyYAML's composer already tracks positions on nodes; we build plain Python values from the
node tree ourselves so that (a) each value's path maps to its position, for error messages,
and (b) duplicate mapping keys are an error instead of the last one silently winning.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from repromatrix.errors import ConfigError

PathKey = tuple[str | int, ...]


@dataclass(frozen=True, kw_only=True)
class Mark:
    file: str
    line: int  # 1-based
    column: int  # 1-based

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


def load_located(path: Path, *, display: str | None = None) -> Located:
    name = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{name}: file not found; pass --matrix PATH or create it") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{name}: cannot read ({exc})") from None
    return loads_located(text, display=name)


def loads_located(text: str, *, display: str) -> Located:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{display}:{mark.line + 1}:{mark.column + 1}" if mark else display
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"{where}: invalid YAML: {problem}; fix the syntax there") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{display}: invalid YAML: {exc}") from None
    values: dict[PathKey, Mark] = {}
    keys: dict[PathKey, Mark] = {}
    if node is None:
        return Located(data=None, values=values, keys=keys, file=display)
    data = _build(node, (), values, keys, display)
    return Located(data=data, values=values, keys=keys, file=display)


def _mark(node: yaml.Node, file: str) -> Mark:
    return Mark(file=file, line=node.start_mark.line + 1, column=node.start_mark.column + 1)


def _build(
    node: yaml.Node,
    path: PathKey,
    values: dict[PathKey, Mark],
    keys: dict[PathKey, Mark],
    file: str,
) -> Any:
    values[path] = _mark(node, file)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise ConfigError(
                    f"{_mark(key_node, file)}: YAML merge keys ('<<') are not supported; "
                    "write the keys out"
                )
            key = _build(key_node, (*path, "<key>"), {}, {}, file)
            if not isinstance(key, str):
                raise ConfigError(
                    f"{_mark(key_node, file)}: mapping key {key!r} must be a string; quote it"
                )
            if key in out:
                first = keys[(*path, key)]
                raise ConfigError(
                    f"{_mark(key_node, file)}: duplicate key '{key}' (first defined at line "
                    f"{first.line}); remove or rename one of them"
                )
            keys[(*path, key)] = _mark(key_node, file)
            out[key] = _build(value_node, (*path, key), values, keys, file)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), values, keys, file) for i, item in enumerate(node.value)]
    assert isinstance(node, yaml.ScalarNode)
    # Let PyYAML's resolver decide the scalar's type (int, float, bool, null, str).
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as exc:
        raise ConfigError(f"{_mark(node, file)}: {exc.problem}") from None
    finally:
        loader.dispose()
