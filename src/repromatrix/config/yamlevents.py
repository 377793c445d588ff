"""PyYAML's event stream → a small node tree, within bounds of depth, size and aliases.

PyYAML's own composer recurses once per level (a document nested 5,000 levels deep raises
RecursionError) and its loaders expand aliases without limit (a few hundred bytes of
aliases to aliases become gigabytes). Here the tree is built with an explicit stack, each
node knows how many values it stands for once its aliases are expanded, and the document
is refused, with the position of the offending event, as soon as it would exceed
MAX_DEPTH levels or MAX_VALUES values. libyaml parses when PyYAML has it (30 times faster
than the pure-Python parser; a syntax error still gets the pure parser's wording, which
names what it expected, when it is found early in the file).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from repromatrix.safetext import excerpt

#: Levels of nesting a matrix may use (its own schema needs 6; params may nest more).
MAX_DEPTH = 64
#: Values (scalars, lists and mappings) in a document once its aliases are expanded (the
#: project's matrix has 300; building 20,000 with their positions takes a tenth of a second).
MAX_VALUES = 20_000
#: Integers beyond 64 bits are refused (nothing in a matrix needs one, and a 5,000-digit
#: one cannot even be turned back into text by CPython).
MAX_INT = 2**63

_MERGE = "tag:yaml.org,2002:merge"
_INT = "tag:yaml.org,2002:int"
_Parser: Any = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader
#: Characters YAML 1.1 does not allow in a stream (PyYAML's reader refuses them too, but
#: without a line and column).
_NOT_YAML = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
#: Spaces that YAML reads as text, where it wants a plain space: in the indentation of a
#: key or list item, or after a block key's ':'. A no-break space pasted from a web page
#: or a chat said "repros must be a mapping" at the line before, or "mapping values are
#: not allowed here" lines after, never a word of the space.
_SPACES = "\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000"
_ODD_SPACE = re.compile(
    f" *([{_SPACES}])[{_SPACES} ]*(?:-[ \r\n]|[^\\s:#][^:\n]*:(?:[ \r\n]|$))"
    f"| *(?:- +)?[^\\s:#'\"{{\\[][^:\n]*:([{_SPACES}])"
)
#: A line whose value is a block scalar (`description: |`): the lines below it indented
#: deeper are its text, where such a space is text.
_BLOCK = re.compile(r"[|>][-+0-9]*[ \t]*(?:#.*)?$")


def _odd_space(text: str) -> int | None:
    """Where the first space of `_ODD_SPACE` lies in `text`, outside block scalars."""
    offset, block = 0, -1  # the indentation of the key whose block scalar this is in
    for line in text.split("\n"):
        indent = len(line) - len(line.lstrip(" "))
        if block >= 0 and (indent > block or not line.strip()):
            offset += len(line) + 1
            continue
        block = indent if _BLOCK.search(line) else -1
        if odd := _ODD_SPACE.match(line):
            return offset + odd.start(1 if odd.group(1) else 2)
        offset += len(line) + 1
    return None


#: Characters a scalar may not produce through escapes ("\e[31m", "\0", "\ud800"): control
#: characters other than tab and newline, and lone surrogates (no UTF-8 file can hold one).
_NOT_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


@dataclass(eq=False)
class Node:
    kind: str  # "scalar", "sequence" or "mapping"
    line: int  # 1-based
    column: int  # 1-based
    value: Any = None  # a scalar's value
    #: A sequence's nodes, or a mapping's (key, value) pairs.
    items: list[Any] = field(default_factory=list)
    #: Values this node stands for, itself included, once aliases are expanded.
    size: int = 1
    #: Its position as yamlsrc.Mark, made once (aliases share their nodes).
    mark: Any = None
    #: A plain scalar's text as written when YAML read it as something else than text
    #: (`0012345` is the number 12345, `1.10` is 1.1, `True` is true): what to quote.
    text: str = ""


class YamlProblem(Exception):
    """Why a document is refused, and where (1-based line and column)."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.message = message


def _at(mark: Any, message: str) -> YamlProblem:
    if mark is None:
        return YamlProblem(1, 1, message)
    return YamlProblem(mark.line + 1, mark.column + 1, message)


def _position(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
#: What a value given one of these tags must be (as YAML 1.2 reads it written plain):
#: PyYAML's constructors for them read YAML 1.1 (`!!bool yes` true, `!!int 1_000` 1000,
#: `!!float "1:30"` 90, `!!int "٣"` 3), and `!!bool maybe` raised a KeyError (exit 70),
#: `!!timestamp garbage` an AttributeError.
_TAGGED = {
    _TIMESTAMP: "a date such as 2024-12-31",
    _BOOL: "true or false",
    _INT: "digits 0-9, 0o or 0x",
    _FLOAT: "a number such as 1.5 or 1e-3, .inf or .nan",
    _NULL: "null, ~ or nothing",
}


class _Resolver(yaml.resolver.Resolver):
    """Numbers as YAML 1.2 (its core schema) reads them. YAML 1.1 wants a dot in a float,
    so `atol: 1e-3` (as everyone in this field writes a tolerance) was the text "1e-3",
    handed to the repro as a string; and it reads `010` as 8 (octal), `1:30` as 90 (base
    60) and `1_000` as 1000, where 1.2 reads 10 and the texts "1:30" and "1_000": a
    `timeout: 010` ran for 8 seconds. Booleans too: 1.1 reads `yes`, `no`, `on` and `off`
    (any case) as true and false, so a repro's `mode: on` or a country code `no` reached it
    as a boolean and a key `off:` became false; 1.2 knows only true and false."""


_Resolver.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_INT, _FLOAT, _BOOL)]
    for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
}
_Resolver.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
# Added after the others, int before float: a plain `10` is the int 10.
_Resolver.add_implicit_resolver(
    _INT, re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
_Resolver.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def reads_as_number(text: str) -> bool:
    """Whether YAML reads `text`, written plain (unquoted), as a number."""
    resolver: Any = _Resolver()
    return resolver.resolve(yaml.ScalarNode, text, (True, False)) in (_INT, _FLOAT)


class _Constructor(yaml.constructor.SafeConstructor):
    def construct_yaml_int(self, node: Any) -> int:
        """YAML 1.2's integers: decimal (a leading 0 is no octal), 0o octal, 0x hex."""
        text = str(self.construct_scalar(node))
        base = {"0o": 8, "0x": 16}.get(text[:2], 10)
        return int(text[2:] if base != 10 else text, base)


_Constructor.yaml_constructors = {
    **yaml.constructor.SafeConstructor.yaml_constructors,
    _INT: _Constructor.construct_yaml_int,
}


class _Composer:
    def __init__(self) -> None:
        self.stack: list[tuple[Node, str | None, list[Node]]] = []
        self.anchors: dict[str, Node] = {}
        self.open_anchors: set[str] = set()
        self.total = 0
        self.root: Node | None = None
        self.documents = 0
        self.resolver: Any = _Resolver()
        self.constructor = _Constructor()

    def _document(self, event: Any) -> None:
        self.documents += 1
        if self.documents > 1:
            raise _at(
                event.start_mark,
                "a second YAML document ('---'); a matrix is one document: remove it",
            )
        if event.version is not None and tuple(event.version) < (1, 2):
            # `%YAML 1.1` asks for `on` as true and `010` as 8; read as 1.2, as every
            # matrix is, its `mode: on` reached the repro as the text "on", unsaid.
            raise _at(
                event.start_mark,
                "%YAML 1.1: a matrix is read as YAML 1.2 (yes, no, on and off are text; "
                "010 is 10); remove the directive and check such values",
            )

    def feed(self, event: Any) -> None:  # yaml.Event; its marks are Optional in the stubs
        if isinstance(event, yaml.DocumentStartEvent):
            self._document(event)
        elif isinstance(event, yaml.ScalarEvent):
            self._count(event, 1)
            self._attach(self._scalar(event), event.anchor)
        elif isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
            if len(self.stack) >= MAX_DEPTH:
                raise _at(
                    event.start_mark,
                    f"nested deeper than {MAX_DEPTH} levels; a matrix needs far fewer: flatten it",
                )
            self._count(event, 1)
            kind = "sequence" if isinstance(event, yaml.SequenceStartEvent) else "mapping"
            start: Any = event.start_mark
            plain = {"tag:yaml.org,2002:seq", "tag:yaml.org,2002:map", "!"}
            if event.tag is not None and event.tag not in plain:  # `!!set`, `!custom {x: 1}`
                shown = excerpt(str(event.tag).replace("tag:yaml.org,2002:", "!!"), 80)
                raise _at(start, f"the YAML tag {shown} is not supported; write the plain {kind}")
            node = Node(kind, start.line + 1, start.column + 1)
            if event.anchor is not None:
                self.open_anchors.add(event.anchor)
            self.stack.append((node, event.anchor, []))
        elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
            node, anchor, flat = self.stack.pop()
            node.size = 1 + sum(child.size for child in flat)
            if node.kind == "sequence":
                node.items = flat
            else:
                node.items = list(zip(flat[::2], flat[1::2], strict=True))
            if anchor is not None:
                self.open_anchors.discard(anchor)
            self._attach(node, anchor)
        elif isinstance(event, yaml.AliasEvent):
            self._alias(event)

    def _alias(self, event: yaml.AliasEvent) -> None:
        name = event.anchor or ""
        target = self.anchors.get(name)
        if target is None:
            what = "refers to itself" if name in self.open_anchors else "is not defined above"
            raise _at(event.start_mark, f"alias '*{excerpt(name)}' {what}; fix the alias")
        if self.total + target.size > MAX_VALUES:
            raise _at(
                event.start_mark,
                f"alias '*{excerpt(name)}' would expand the document past {MAX_VALUES:,} "
                "values (an alias bomb?); write the values out or use fewer aliases",
            )
        self.total += target.size
        top = self.stack[-1] if self.stack else None
        if top is not None and top[0].kind == "mapping" and len(top[2]) % 2 == 0:
            # A key: its own position, so that a duplicate made by `*k :` is named where
            # it is, not at its anchor (which read "line 3 … first defined at line 3").
            at: Any = event.start_mark
            target = Node(
                target.kind, at.line + 1, at.column + 1, target.value, target.items,
                target.size, None, target.text,
            )  # fmt: skip
        self._attach(target, None)

    def _count(self, event: yaml.Event, n: int) -> None:
        self.total += n
        if self.total > MAX_VALUES:
            raise _at(
                event.start_mark,
                f"more than {MAX_VALUES:,} values; a matrix needs far fewer: split it",
            )

    def _attach(self, node: Node, anchor: str | None) -> None:
        if anchor is not None:
            self.anchors[anchor] = node
        if self.stack:
            self.stack[-1][2].append(node)
        else:
            self.root = node

    def _scalar(self, event: Any) -> Node:
        mark: Any = event.start_mark
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.resolver.resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag == _MERGE:
            raise _at(mark, "YAML merge keys ('<<') are not supported; write the keys out")
        tagged = event.tag not in (None, "!") and tag in _TAGGED
        if tagged:
            reads = self.resolver.resolve(yaml.ScalarNode, event.value, (True, False))
            if reads != tag and not (tag == _FLOAT and reads == _INT):  # `!!float 1` is 1.0
                shown = str(tag).replace("tag:yaml.org,2002:", "!!")
                raise _at(
                    mark,
                    f"'{excerpt(event.value, 60)}' is no {shown} as YAML 1.2 reads one "
                    f"({_TAGGED[tag]}); drop the tag, or quote the value if it is text",
                )
        if tag == _INT and len(event.value) > 30:
            raise _at(mark, _too_large(len(event.value)))
        node = yaml.ScalarNode(tag, event.value, mark, event.end_mark, event.style)
        try:
            value = self.constructor.construct_object(node)
        except yaml.MarkedYAMLError as exc:
            problem = exc.problem or "cannot read this value"
            if "constructor for the tag" in problem:
                shown = excerpt(str(tag).replace("tag:yaml.org,2002:", "!!"), 80)
                problem = f"the YAML tag {shown} is not supported; write the plain value"
            raise _at(mark, excerpt(problem, 150)) from None
        except (ValueError, OverflowError, TypeError) as exc:
            # int() of more than 4,300 digits, a date such as 2024-13-45, ...
            raise _at(
                mark,
                f"cannot read {excerpt(event.value)}: {excerpt(str(exc), 80)}; "
                "quote it if it is text",
            ) from None
        finally:
            self.constructor.constructed_objects.clear()
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= MAX_INT:
            raise _at(mark, _too_large(len(str(value))))
        beyond = isinstance(value, float) and math.isinf(value) and "inf" not in event.value.lower()
        if beyond:
            value = event.value  # 1e400: beyond floats; the schema says so where it matters
        if isinstance(value, str) and (bad := _NOT_TEXT.search(value)):
            raise _at(
                mark,
                f"text holding the control character U+{ord(bad.group()):04X}; remove it "
                "(no escape sequences or control characters in a matrix)",
            )
        # None from the pure parser, "" from libyaml; a value that fits its tag reads as
        # written plain (`!!float "1e400"` is refused as a plain 1e400 is).
        plain = not event.style or tagged
        # A number beyond floats keeps its text too: params (no schema) refuse it by that.
        written = event.value if plain and (beyond or not isinstance(value, str)) else ""
        return Node("scalar", mark.line + 1, mark.column + 1, value=value, text=written)


def _too_large(digits: int) -> str:
    return (
        f"an integer of {digits} digits is too large (the most is {MAX_INT - 1:,}, 19 "
        "digits); quote it if it is text"
    )


#: Line breaks to YAML that editors and `wc -l` do not count as such (NEL, LINE and
#: PARAGRAPH SEPARATOR): every line number after one would be off by one.
_ODD_BREAKS = re.compile("[\x85\u2028\u2029]")


def compose(text: str) -> Node | None:
    """The document's node tree (None for an empty document); YamlProblem when refused."""
    for refused, why in (
        (_ODD_BREAKS, "the character U+{:04X} is a line break to YAML but not to most editors "
         "(line numbers would disagree); remove it or use a plain newline"),
        (_NOT_YAML, "invalid YAML: the control character U+{:04X} is not allowed in a YAML "
         "file; remove it"),
    ):  # fmt: skip
        if bad := refused.search(text):
            line, column = _position(text, bad.start())
            raise YamlProblem(line, column, why.format(ord(bad.group())))
    if (at := _odd_space(text)) is not None:
        code = ord(text[at])
        what = "a no-break space" if code == 0xA0 else f"the space character U+{code:04X}"
        raise YamlProblem(
            *_position(text, at),
            f"{what} where YAML wants a plain space (indentation, or after ':' or '-'): "
            "YAML reads it as text; replace it with a space",
        )
    composer = _Composer()
    events: Any = yaml.parse(text, Loader=_Parser)
    try:
        for event in events:
            composer.feed(event)
    except yaml.MarkedYAMLError as exc:
        raise _syntax(text, exc) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(1, 1, f"invalid YAML: {excerpt(str(exc), 150)}") from None
    return composer.root


#: A syntax error found this early is worded again by the pure-Python parser, unless the
#: text before it opens many flow collections (the pure scanner's time grows with the
#: square of their nesting).
_REWORD_WITHIN = 8 * 1024
_REWORD_MAX_BRACKETS = 200


def _syntax(text: str, exc: yaml.MarkedYAMLError) -> YamlProblem:
    mark: Any = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "invalid YAML"
    if "nesting depth" in problem:  # libyaml stops at 1,000 levels, before our limit
        return _at(
            mark, f"nested over 1,000 levels deep; a matrix may nest {MAX_DEPTH}: flatten it"
        )
    end = text.find("\n", mark.index) if mark is not None else -1
    prefix = text if end < 0 else text[: end + 1]
    if (
        _Parser is not yaml.SafeLoader
        and mark is not None
        and len(prefix) <= _REWORD_WITHIN
        and prefix.count("[") + prefix.count("{") <= _REWORD_MAX_BRACKETS
    ):
        try:
            for _ in yaml.parse(prefix, Loader=yaml.SafeLoader):
                pass
        except yaml.MarkedYAMLError as pure:
            at = pure.problem_mark or pure.context_mark
            if at is not None and (at.line, at.column) == (mark.line, mark.column):
                problem = pure.problem or pure.context or problem
        except yaml.YAMLError:
            pass
    if (key := _overlong_key(text, mark, problem)) is not None:
        return key
    if "'\\t'" in problem:  # "found character '\t' that cannot start any token"
        return _at(mark, "a tab; YAML indents with spaces only: replace it with spaces")
    return _at(mark, f"invalid YAML: {excerpt(problem, 150)}; fix the syntax there")


#: The longest key YAML reads (a "simple key": 1,024 characters on one line).
_MAX_KEY_CHARS = 1024


def _overlong_key(text: str, mark: Any, problem: str) -> YamlProblem | None:
    """A block key past YAML's 1,024 characters, said as such: the parser stops at its
    colon with "mapping values are not allowed here", which names no fix. None when the
    error is another (a value holding ': ' has one before the colon at fault)."""
    if mark is None or "mapping values are not allowed" not in problem:
        return None
    start = text.rfind("\n", 0, mark.index) + 1
    before = text[start : mark.index]
    key = before.lstrip(" -").strip("'\" ")
    if len(key) <= _MAX_KEY_CHARS or ": " in before:
        return None
    line, column = mark.line + 1, len(before) - len(before.lstrip(" -")) + 1
    return YamlProblem(line, column, (
        f"a key of {len(key):,} characters; YAML reads keys of at most {_MAX_KEY_CHARS:,} "
        "(names here are 64 at most): shorten it"))  # fmt: skip
