"""pydantic's errors → one line naming file:line:column and the fix ("did you mean ...")."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import ValidationError

from repromatrix.config import schema
from repromatrix.config.values import same_commit
from repromatrix.config.yamlevents import reads_as_number
from repromatrix.config.yamlsrc import Located, PathKey
from repromatrix.errors import ConfigError
from repromatrix.model import Revision, SourceKind
from repromatrix.safetext import cut, excerpt, quoted


def _known_fields(loc: PathKey) -> list[str]:
    """Field names valid at the mapping that holds `loc`'s last key (for 'did you mean')."""

    top = [f.alias or n for n, f in schema.MatrixSpec.model_fields.items()]
    depth_models: dict[str, type[Any]] = {
        "defaults": schema.DefaultsSpec,
        "images": schema.ImageSpec,
        "gpus": schema.GpuSpec,
        "libraries": schema.LibrarySpec,
        "repros": schema.ReproSpec,
        "include": schema.RuleSpec,
        "exclude": schema.RuleSpec,
    }
    if len(loc) == 1:
        return top
    section = str(loc[0])
    model = depth_models.get(section)
    if model is None:
        return []
    fields = [f.alias or n for n, f in model.model_fields.items()]
    if section == "defaults" and len(loc) == 2:
        return fields
    if len(loc) == 3:
        return fields
    if _is_version(loc[:-1]):
        return [f.alias or n for n, f in schema.RevisionSpec.model_fields.items()]
    return []


def _required(loc: PathKey) -> bool:
    """Whether `loc` names a key its mapping must have (`repros`, a repro's `script` and
    `gpus`): the fix for a wrong value there is never to remove it."""
    models: dict[str, type[Any]] = {
        "images": schema.ImageSpec,
        "gpus": schema.GpuSpec,
        "libraries": schema.LibrarySpec,
        "repros": schema.ReproSpec,
    }
    model: type[Any] | None = None
    if len(loc) == 1:
        model = schema.MatrixSpec
    elif len(loc) == 3:
        model = models.get(str(loc[0]))
    elif len(loc) == 5 and _is_version(loc[:4]):
        model = schema.RevisionSpec
    fields = model.model_fields.items() if model is not None else ()
    return any((f.alias or n) == loc[-1] and f.is_required() for n, f in fields)


def _or_remove(loc: PathKey, words: str = "it") -> str:
    """ " or remove it", unless the key is required (removing it is the next error)."""
    return "" if _required(loc) else f" or remove {words}"


def _is_version(loc: PathKey) -> bool:
    """`libraries.<name>.versions[i]`"""
    return len(loc) == 4 and loc[0] == "libraries" and loc[2] == "versions"


def _is_selection(loc: PathKey) -> bool:
    """`repros.<name>.libraries.<library>`"""
    return len(loc) == 4 and loc[0] == "repros" and loc[2] == "libraries"


def _location(raw: Sequence[Any]) -> PathKey:
    """pydantic's error location without the tags of our tagged unions."""
    loc: PathKey = tuple(p for p in raw if isinstance(p, str | int))
    if (
        len(loc) > 4
        and loc[4] in schema.UNION_TAGS
        and (_is_version(loc[:4]) or _is_selection(loc[:4]))
    ):
        loc = (*loc[:4], *loc[5:])
    return loc


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    if len(word) > 100:  # no name is that long, and difflib's time grows with it
        return ""
    names = list(choices)
    # difflib weighs letters case and all: `--gpu CPU` had no hint for 'cpu'.
    close = [c for c in names if c.lower() == word.lower()] or [
        c for c in difflib.get_close_matches(word, names, n=3, cutoff=0.6) if _a_slip_of(word, c)
    ]
    return f"; did you mean '{excerpt(close[0], 64)}'?" if close else ""


def _a_slip_of(word: str, name: str) -> bool:
    """Whether `word` reads as `name` mistyped: one begins the other (`find-fixes`), or it
    is a few edits away, one per three letters (a swap of two counts one). difflib alone
    matched letters in common: 'bogus' was "did you mean 'gpus'?"."""
    if word.startswith(name) or name.startswith(word):
        return True
    a, b = word.lower(), name.lower()
    # Optimal string alignment distance, rows of the usual table.
    twice_before: list[int] = []
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        before, row = row, [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            row[j] = min(before[j] + 1, row[j - 1] + 1, before[j - 1] + (x != y))
            if i > 1 and j > 1 and x == b[j - 2] and a[i - 2] == y:
                row[j] = min(row[j], twice_before[j - 2] + 1)
        twice_before = before
    return row[-1] <= max(1, max(len(a), len(b)) // 3)


def _said_as_on_the_command_line(key: str, known: Sequence[str]) -> str:
    """The hint for `image:` where a base goes, as `--image BASE` names one: "remove it"
    made an exclude rule drop the repro's cells on every base."""
    if key.lower() not in ("image", "images"):
        return ""
    base = next((k for k in ("base", "bases") if k in known), None)
    return (
        f"; did you mean '{base}'? (a base is an image of images: or host, as --image BASE "
        "selects one)"
        if base
        else ""
    )


def dotted(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        text = excerpt(part, 64)
        out += f"[{text}]" if isinstance(part, int) else (f".{text}" if out else text)
    return cut(out, 120) or "(top level)"


def config_error(exc: ValidationError, located: Located) -> ConfigError:
    problems = []
    for err in exc.errors():
        loc = _location(err["loc"])
        if err["type"] == "missing":
            # Point at the mapping that lacks the key (its own key line), not at a sibling.
            mark = located.mark(loc[:-1], key=True)
        else:
            mark = located.mark(loc, key=err["type"] == "extra_forbidden")
        problems.append((mark, err, loc))
    # A key missing where an unknown one stands is most likely that key misspelt: say
    # "unknown key 'scirpt' ...; did you mean 'script'" at the typo, not "add it".
    misspelt = {p[2][:-1] for p in problems if p[1]["type"] == "extra_forbidden"}
    problems.sort(
        key=lambda p: (p[1]["type"] == "missing" and p[2][:-1] in misspelt, p[0].line, p[0].column)
    )
    mark, err, loc = problems[0]
    return ConfigError(f"{mark}: {pydantic_message(err, loc, written=mark.text)}")


def pydantic_message(err: Any, loc: PathKey, *, written: str = "") -> str:  # noqa: PLR0911 -- one sentence per kind of pydantic error
    """Turn one pydantic error into the sentence after `file:line:col: `. `written`: the
    value as the file has it, when YAML read it as other than text (what to quote)."""
    kind = err["type"]
    where = dotted(loc[:-1]) if loc else "(top level)"
    if kind == "extra_forbidden":
        key = str(loc[-1])
        known = _known_fields(loc)
        hint = did_you_mean(key, known) or _said_as_on_the_command_line(key, known)
        return f"unknown key '{excerpt(key)}' in {where}{hint or '; remove it'}"
    if kind == "missing":
        return f"{where} is missing the required key '{excerpt(loc[-1])}'; add it"
    value = err.get("input")
    if kind == "version_entry" or (
        _is_version(loc) and kind == "string_type" and not _number(value)
    ):
        return f"{dotted(loc)} must be a version string or a mapping with 'pypi:' or 'git:'"
    if _is_selection(loc) and kind in ("selection", "literal_error", "too_short"):
        return (
            f"{dotted(loc)} must be 'all' or a non-empty list of revisions declared for "
            "that library"
        )
    as_written = excerpt(written or value)
    if kind == "string_type" and _selection_item(loc):
        return _revision_item(value, written)
    if kind == "string_type" and _number(value):
        number = f"the number {excerpt(value)}" if written and written != str(value) else "a number"
        return (
            f"{dotted(loc)} must be a string but YAML read {as_written} as {number}; "
            f"quote it: '{as_written}'"
        )
    if isinstance(value, bool) and kind in ("string_type", "float_type", "int_type"):
        read = f"YAML reads {as_written} as a boolean"
        if kind == "string_type":
            return f"{dotted(loc)} must be a string ({read}); quote it: '{as_written}'"
        number = "whole" if kind == "int_type" else "whole or decimal"
        return f"{dotted(loc)} must be a number ({read}); write a {number} number"
    if kind == "string_type":
        return _text_message(loc, value, as_written)
    if isinstance(value, str) and kind in ("float_type", "int_type"):
        fix = (
            _unquote(value)
            or f"; write a{'' if kind == 'int_type' else ' whole or decimal'} number"
        )
        return f"{dotted(loc)} must be a number, not the text {quoted(value)}{fix}"
    shaped = (
        _container_message(kind, loc, value)
        or _value_message(kind, loc, value)
        or _bound_message(err, loc)
        or _schema_message(kind, loc, value, as_written)
    )
    if shaped is not None:
        return shaped
    # Our validators' sentences run to 180 characters with the 40 of a value they quote:
    # cut at 160, a name of 30 lost the middle of its fix ("starting…ter or digit").
    msg = excerpt(str(err["msg"]).removeprefix("Value error, "), 240)
    return f"{dotted(loc)}: {msg}"


def _revision_item(value: Any, written: str) -> str:
    """The sentence for an item of a repro's revision list that YAML read as other than
    text, quoted as written: it said "revision 1.1 must be a string" of `1.10`, and
    "revision True", "revision None", "revision datetime.date(2024, 1, 1)"."""
    if isinstance(value, dict | list):
        return f"a revision must be a string, not {_YAML_TYPES[type(value).__name__]}; write it"
    if value is None and not written:
        return "a revision is empty (YAML reads that as null); write one or remove the item"
    shown = excerpt(written or value)
    if value is None:
        what = "null"
    elif isinstance(value, bool):
        what = "a boolean"
    elif _number(value):
        what = "a number" if shown == str(value) else f"the number {excerpt(value)}"
    else:
        what = _YAML_TYPES.get(type(value).__name__, "something else")
    return f"revision {shown} must be a string, but YAML read it as {what}; quote it: '{shown}'"


def _schema_message(kind: str, loc: PathKey, value: Any, as_written: str) -> str | None:
    if loc != ("schema",):
        return None
    if kind == "literal_error":
        return (
            f"schema {quoted(value)} is not supported by this repromatrix (it reads 1); "
            "set 'schema: 1' or upgrade repromatrix"
        )
    # The validator's own "schema must be …" read "schema: schema must be …", with no fix.
    if value is None:  # `schema:` with nothing after it was "not 'None'"
        return "schema is empty (YAML reads that as null); write 'schema: 1'"
    return f"schema must be the number 1, not {quoted(as_written)}; write 'schema: 1'"


def _unquote(text: str) -> str:
    """How to make YAML read `text` as a number: without quotes; "" when it is no number
    (`1_000`, `1:30`: Python's float() reads them, YAML 1.2 does not)."""
    exponent = re.fullmatch(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+", text)
    if exponent and not math.isfinite(float(text)):
        return "; it is beyond the largest number (about 1.8e+308)"
    if not reads_as_number(text) or re.search(r"inf|nan", text, re.IGNORECASE):
        return ""
    return "; drop the quotes"


def _text_message(loc: PathKey, value: Any, as_written: str) -> str:
    """The sentence for something other than text (numbers and flags aside) where text
    belongs: what YAML made of it, and the fix."""
    if value is None:
        return f"{dotted(loc)} is empty (YAML reads that as null); write a value{_or_remove(loc)}"
    what = _YAML_TYPES.get(type(value).__name__, "something else")
    if isinstance(value, dict | list):
        return f"{dotted(loc)} must be a string, not {what}; write the text itself"
    if shape := _SHAPES.get(str(loc[-1]) if loc else ""):  # quoted, a date has no such shape
        return f"{dotted(loc)} must look like {shape}, but YAML read {as_written} as {what}"
    return f"{dotted(loc)} must be a string, but YAML read {as_written} as {what}; quote it"


def _container_message(kind: str, loc: PathKey, value: Any) -> str | None:
    """The sentence for a mapping or list of the wrong shape (a list for a mapping, one
    item for a list, an empty one); None for other errors."""
    if kind in ("dict_type", "model_type", "dataclass_type", "model_attributes_type"):
        return f"{dotted(loc)} must be a mapping ({{key: value, ...}}); write one{_or_remove(loc)}"
    if kind in ("list_type", "tuple_type", "set_type"):
        one = excerpt(value) if isinstance(value, str | int | float) else "a, b"
        return f"{dotted(loc)} must be a list; write [{one}] (or one '- item' per line)"
    if kind == "too_short" and isinstance(value, list):
        return f"{dotted(loc)} must list at least one item; add one{_or_remove(loc, 'the key')}"
    if kind == "too_short" and isinstance(value, dict):
        return f"{dotted(loc)} must have at least one entry; add one"
    return None


def _value_message(kind: str, loc: PathKey, value: Any) -> str | None:
    """The sentence for a flag, a number or a patterned text that is not one; None for
    other errors."""
    if kind in ("bool_type", "bool_parsing"):
        if value is None:  # `isolate:` or `isolate: ~` was "not None", Python's word
            return f"{dotted(loc)} is empty (YAML reads that as null); write true or false"
        return f"{dotted(loc)} must be true or false, not {quoted(value)}"
    if kind == "finite_number":
        return f"{dotted(loc)} must be a finite number, not {excerpt(value)}; write one"
    if kind == "string_pattern_mismatch":
        shape = _SHAPES.get(str(loc[-1]) if loc else "", "the documented form")
        return f"{dotted(loc)} {quoted(value)} must look like {shape}"
    return None


#: pydantic's number bounds → how the sentence names each.
_BOUNDS = {
    "greater_than": ("gt", "more than"),
    "greater_than_equal": ("ge", "at least"),
    "less_than": ("lt", "less than"),
    "less_than_equal": ("le", "at most"),
}


def _bound_message(err: Any, loc: PathKey) -> str | None:
    """The sentence for a number out of its bounds or not whole; None for other errors."""
    kind, value = err["type"], err.get("input")
    if kind == "int_from_float" or (kind == "int_type" and isinstance(value, float)):
        return f"{dotted(loc)} must be a whole number, not {excerpt(value)}"
    if kind not in _BOUNDS:
        return None
    key, words = _BOUNDS[kind]
    limit = (err.get("ctx") or {}).get(key)
    if isinstance(limit, float) and limit.is_integer():
        limit = int(limit)  # "more than 0", not "more than 0.0"
    return f"{dotted(loc)} must be {words} {limit}, not {excerpt(value)}"


#: What YAML made of a value that should have been text, by its Python type.
_YAML_TYPES = {
    "date": "a date",
    "datetime": "a time",
    "bytes": "binary data",
    "list": "a list",
    "dict": "a mapping",
}

#: How a field whose value must match a pattern looks, for its error message.
_SHAPES = {"compute_capability": "'9.0' (major.minor, quoted)", "released": "'2024-12' (YYYY-MM)"}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _selection_item(loc: PathKey) -> bool:
    return len(loc) == 5 and _is_selection(loc[:4]) and isinstance(loc[4], int)


def named(name: str) -> str:
    """A name a rule or repro refers to, quoted, with the first character no declared name
    can hold when it has one: "GPU type 'Н100' is not declared; did you mean 'H100'?"
    named no difference (a Cyrillic Н, a zero-width space or a no-break space)."""
    return f"'{excerpt(name, 64)}'{not_ascii(name)}"


def not_ascii(name: str) -> str:
    """ " (holding U+041D, which is not ASCII)" for a name with a character no declared
    name, revision or flag value matching one can hold; "" for an ASCII one."""
    odd = next((c for c in name if not c.isascii()), None)
    if odd is not None and 0xDC80 <= ord(odd) <= 0xDCFF:  # an argument's byte, not UTF-8
        return f" (holding the byte 0x{ord(odd) - 0xDC00:02X}, which is not UTF-8)"
    return "" if odd is None else f" (holding U+{ord(odd):04X}, which is not ASCII)"


def undeclared_hint(rev: str, revisions: Sequence[Revision], library: str) -> str:
    """The hint for a revision a repro or a rule names and `library` does not list: the
    spelling it lists the same commit by ("add it to versions" would then be refused as
    that commit listed twice), else the closest label, else to add it."""
    spelled = Revision(rev=rev, kind=SourceKind.GIT, label=rev)
    if (declared := same_commit(spelled, revisions)) is not None:
        return f"; it is declared as '{declared.label}' (the same commit): write that"
    close = did_you_mean(rev, [r.label for r in revisions])
    return close or f"; add it to libraries.{library}.versions"
