"""Keys given twice in one JSON object of a stored line: named, so the line is refused.

JSON parsers (pydantic's, Python's) keep the last value of a key given twice. A record
edited by hand, or made to mislead (`"status": "passed", …, "status": "regressed"`), was
read as the value a reader of the file least expects. Records repromatrix writes never
repeat a key, so such a line is damaged, and half-reading it is no answer.

Cheap for the lines it writes: a key is a string followed by `:`. With the line's
whitespace left out (a string and its colon may be spaced apart: `"a" : 1`), it holds
at least as many `":` as keys (text may hold more: an escaped quote, `\\":`, or a text
that begins with a colon); less those whose quote is escaped (an odd run of backslashes
before it: a JSON string never ends there; in valid JSON a backslash is never followed by
whitespace, so leaving it out joins no runs of them), if it holds exactly as many as the
parsed objects have distinct keys, no key was given twice. Anything else is checked
exactly, with Python's parser (about twenty times the cost: records whose output quotes
JSON, as a GPU host's do, took half their parse time there).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from repromatrix.bounds import cut_deep
from repromatrix.safetext import excerpt

#: JSON's whitespace, left out of a line before its `":` are counted.
_WHITESPACE = b" \t\r\n"


def repeated_key(line: bytes, parsed: Any, keys: int | None = None) -> str | None:
    """The first key that an object of `line` gives twice, else None. `parsed`: what a
    JSON parser made of `line`; `keys`: how many keys its objects hold at all levels,
    where the caller knows (counted here otherwise)."""
    if keys is None:
        try:
            keys = distinct_keys(parsed)
        except RecursionError:
            keys = -1
    # One pass that drops whitespace costs less than the four searches for a spaced key
    # that this took (~2 µs of a light record's ~19).
    tight = line.translate(None, _WHITESPACE)
    quoted = tight.count(b'":')
    if quoted == keys or (quoted > keys and quoted - _escaped(tight) == keys):
        return None
    found: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        made = dict(items)
        if len(made) < len(items) and not found:
            seen: set[str] = set()
            for key, _ in items:
                if key in seen:
                    found.append(key)
                    break
                seen.add(key)
        return made

    try:
        # Digits kept as text: an integer past CPython's 4,300 digits is no ValueError here
        # (a result JSON may hold one, a metric measured as 10**5000).
        json.loads(line, object_pairs_hook=pairs, parse_int=str)
    except RecursionError:
        # Nested past the recursion limit (a result JSON's provenance, 100,000 deep): its
        # upper levels, where "status" is given twice, judged with the deep part cut.
        try:
            text = cut_deep(line.decode("utf-8", "replace"))
            json.loads(text, object_pairs_hook=pairs, parse_int=str)
        except (ValueError, RecursionError):
            return None
    except ValueError:
        return None  # what the line's own parser took, this one cannot judge
    return found[0] if found else None


def _escaped(line: bytes) -> int:
    """How many `":` of `line` follow a quote escaped (an odd run of backslashes before
    it): text, never a key's end. (A regular expression took ten times as long.)"""
    count = 0
    at = line.find(b'\\":')
    while at >= 0:
        before = at - 1
        while before >= 0 and line[before] == 0x5C:  # the backslashes before this one
            before -= 1
        count += (at - before) & 1
        at = line.find(b'\\":', at + 3)
    return count


def check_keys(line: bytes | str, parsed: Any) -> None:
    """ValueError naming a key that an object of `line` gives twice."""
    key = repeated_key(line.encode() if isinstance(line, str) else line, parsed)
    if key is not None:
        raise ValueError(
            f"{excerpt(repr(key), 80)} is given twice in one object, and which one counts "
            "is anyone's guess: keep the value you mean and delete the other"
        )


def distinct_keys(parsed: Any) -> int:
    """How many keys the objects of `parsed` hold, all levels (recursive: a third faster
    than a loop over a stack, and what a parser made is at most a few hundred deep)."""
    if type(parsed) is dict:
        return len(parsed) + _keys_in(parsed.values())
    return _keys_in(parsed) if type(parsed) is list else 0


def _keys_in(values: Iterable[Any]) -> int:
    count = 0
    for value in values:
        kind = type(value)
        if kind is dict:
            count += len(value) + _keys_in(value.values())
        elif kind is list:
            count += _keys_in(value)
    return count
