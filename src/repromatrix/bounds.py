"""How much of a repro's output a record keeps: bounded at the edge, cut with a marker.

A repro is code under test; what it writes (a 20 MB reason, a million metrics, provenance
nested 100,000 levels deep, a 400-digit number) must neither crash the harness nor grow
every report made from its record. Each limit below is far above what a real repro writes
(the published records: reasons under 300 characters, 40 metrics, provenance 5 levels
deep and 6 KB), and what goes beyond it is cut with a marker saying so, never silently.
Pure functions over JSON-like values.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from typing import Any, Protocol

from repromatrix.safetext import cut, printable

#: A reason is one line of at most this many characters (both ends kept).
MAX_REASON_CHARS = 2000
#: A repro's own fingerprint keeps this many characters (both ends: a traceback's last
#: line names the exception), so a repro cannot store megabytes in every record.
MAX_FINGERPRINT_CHARS = 4000
#: Output tails keep their last this many characters (the end says how it ended).
MAX_TAIL_CHARS = 16_384
#: Metrics (and thresholds) per record, and characters per metric name.
MAX_METRICS = 1000
MAX_METRIC_NAME_CHARS = 200
#: Provenance: levels, entries per object or list, characters per string and per key, and
#: characters in all (roughly, as JSON).
MAX_DEPTH = 16
MAX_ITEMS = 500
MAX_STRING_CHARS = 8000
MAX_KEY_CHARS = 200
MAX_PROVENANCE_CHARS = 256 * 1024
#: A result JSON larger than this is not read at all.
MAX_RESULT_JSON_BYTES = 64 * 1024 * 1024
#: Integers beyond this are kept as their digit count (JSON writers and Parquet choke on
#: them, and CPython refuses to print one of more than 4,300 digits).
MAX_INT = 2**63


def bound_reason(text: str) -> str:
    """One printable line of at most MAX_REASON_CHARS characters."""
    if len(text) <= MAX_REASON_CHARS and text.isascii() and text.isprintable():
        return text
    over = len(text) - MAX_REASON_CHARS
    if over > 3 * MAX_REASON_CHARS:  # cut first: printable() is linear in what is left
        text = text[: 2 * MAX_REASON_CHARS] + text[-2 * MAX_REASON_CHARS :]
    line = printable(text).strip()
    if len(line) <= MAX_REASON_CHARS:
        return line
    marker = f" […{max(over, len(line) - MAX_REASON_CHARS):,} characters cut by repromatrix…] "
    # The marker's spaces may meet a space at the cut; one space, as printable() makes
    # it, so that bounding a bounded reason (a stored record read back) changes nothing.
    return " ".join(cut(line, MAX_REASON_CHARS, marker=marker).split())


def bound_tail(text: str) -> str:
    """The last MAX_TAIL_CHARS characters of an output tail, without escape sequences."""
    if len(text) > MAX_TAIL_CHARS * 2:
        text = text[-MAX_TAIL_CHARS * 2 :]  # before the regexes: they need not see it all
    text = printable(text, newlines=True)
    if len(text) <= MAX_TAIL_CHARS:
        return text
    return "[... cut by repromatrix ...]\n" + text[-MAX_TAIL_CHARS:]


def metric_name(name: object) -> str:
    """`name`, printable and at most MAX_METRIC_NAME_CHARS characters: when that changes
    it, with a hash of the whole name (`_cut_apart`), so that two names that differ only
    where they were cut (the middle of a long name, a control character) stay two
    metrics, and a threshold still meets its metric (a bounded name is left as it is)."""
    text = str(name)
    shown = printable(text)
    if shown == text and len(text) <= MAX_METRIC_NAME_CHARS:
        return text
    return _cut_apart(text, shown, MAX_METRIC_NAME_CHARS)


def _cut_apart(name: str, shown: str, limit: int) -> str:
    """`shown` (what `name` becomes) cut to `limit` characters, with a hash of the whole
    `name` as a dotted part of its own before the last: two names that differ only where
    they were changed stay apart, and the last part stays whole, as `max_rel_err` finds
    `….rel_err` (a hash ending it made that threshold bound nothing)."""
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    tag = f"~{digest}"
    head, dot, last = cut(shown, limit - len(tag) - 1).rpartition(".")
    return f"{head}.{tag}.{last}" if dot else cut(shown, limit - len(tag)) + tag


def numbers_within(numbers: Mapping[str, float | None]) -> bool:
    """Whether `bound_numbers` would leave `numbers` as they are (nearly always)."""
    return len(numbers) <= MAX_METRICS and all(
        len(name) <= MAX_METRIC_NAME_CHARS and name.isascii() and name.isprintable()
        for name in numbers
    )


def bound_numbers(numbers: Mapping[str, float | None]) -> dict[str, float | None]:
    """At most MAX_METRICS entries (the first ones), names printable and bounded."""
    if numbers_within(numbers):
        return dict(numbers)
    out: dict[str, float | None] = {}
    for name, value in numbers.items():
        if len(out) >= MAX_METRICS:
            break
        out.setdefault(metric_name(name), value)
    return out


def number(value: int | float) -> int | float | str:
    """A JSON-writable number: NaN/inf as text (JSON has none), huge integers as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= MAX_INT:
        return f"<an integer of about {value.bit_length() * 3 // 10 + 1} digits>"
    return value


class Redacts(Protocol):
    """What hides secrets in the text a tree keeps (`redact.Redactor`)."""

    def text(self, text: str) -> str: ...

    def field(self, key: str, value: Any) -> Any: ...


class _Keeps:
    """Redacts nothing."""

    def text(self, text: str) -> str:
        return text

    def field(self, key: str, value: Any) -> Any:
        return value


def bound_tree(
    value: Any, *, chars: int = MAX_PROVENANCE_CHARS, redactor: Redacts | None = None
) -> Any:
    """A JSON-writable copy of `value`, at most MAX_DEPTH levels, MAX_ITEMS entries per
    container (a marker among them), MAX_STRING_CHARS per string and about `chars`
    characters in all; every cut leaves a marker (`[cut by repromatrix: ...]`) where it was
    made. Bounding what was bounded with `chars` again, with twice as many, changes
    nothing (a record is bounded as a repro's output, then as a record).

    `redactor` hides secrets in each text and key kept, before it is cut (a secret cut in
    half would no longer be found), and only in those: redacting the whole tree first
    copied every entry of a provenance of millions, which the bound then dropped."""
    budget = [chars]
    return _bound(value, 0, budget, redactor or _Keeps())


def _bound(value: Any, depth: int, budget: list[int], red: Redacts) -> Any:  # noqa: PLR0911 -- one return per JSON type
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        budget[0] -= 8
        return number(value)
    if isinstance(value, str):
        text = cut(red.text(value), MAX_STRING_CHARS, marker=" [cut by repromatrix] ")
        budget[0] -= len(text) + 2
        return text
    if not isinstance(value, Mapping | list | tuple):
        return _bound(str(value), depth, budget, red)
    if depth >= MAX_DEPTH:
        return f"[cut by repromatrix: nested deeper than {MAX_DEPTH} levels]"
    # Walked, never copied whole: of a list of millions, 500 entries are kept.
    total = len(value)
    items = iter(value.items()) if isinstance(value, Mapping) else enumerate(value)
    named = isinstance(value, Mapping)
    kept: list[tuple[str, Any]] = []
    note = ""
    for i, (key, item) in enumerate(items):
        if i >= MAX_ITEMS - 1 and total > MAX_ITEMS:
            note = f"[cut by repromatrix: {total - i} more of {total} entries]"
            break
        if budget[0] <= 0:
            note = f"[cut by repromatrix: {total - i} more entries, over the size limit]"
            break
        name = red.text(str(key)) if named else str(key)
        if len(name) > MAX_KEY_CHARS:  # two keys cut alike would be one entry
            name = _cut_apart(name, name, MAX_KEY_CHARS)
        budget[0] -= len(name) + 4
        shown = red.field(str(key), item) if named else item
        kept.append((name, _bound(shown, depth + 1, budget, red)))
    if isinstance(value, Mapping):
        out = dict(kept)
        if note:
            out["…"] = note
        return out
    return [v for _, v in kept] + ([note] if note else [])


# -- reading a repro's JSON that a strict parser refuses ----------------------------------

#: A JSON string (with escapes) or a bracket: enough to find nesting outside strings.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
#: Nesting kept when re-reading a document too deep for a parser (bound_tree cuts further).
_REREAD_DEPTH = 64


def parse_json(text: str) -> Any:
    """json.loads that survives what a repro may write: integers of any length (a float,
    inf if need be, instead of CPython's 4,300-digit ValueError) and nesting of any depth
    (parts deeper than 64 levels become a marker string instead of a RecursionError).
    Invalid JSON still raises ValueError."""
    try:
        if not long_digits(text.encode("utf-8", "surrogatepass")):
            # No integer here is longer than `_int` reads exactly, and the parser's own
            # int reads it alike without a Python call per integer (0.3 s of a 60 MB
            # result's 1.1 s).
            return json.loads(text)
        return json.loads(text, parse_int=_int)
    except RecursionError:
        return json.loads(cut_deep(text), parse_int=_int)


def _int(digits: str) -> int | float:
    return int(digits) if len(digits) <= _EXACT_INT_CHARS else float(digits)


#: `_int` reads an integer of at most this many characters (its sign counted) exactly.
_EXACT_INT_CHARS = 30
#: Every digit as "0": a run of 30 "0" in what this makes is a run of 30 digits in its text.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")


def long_digits(text: bytes) -> bool:
    """Whether `text` holds a run of 30 digits or more: where it holds none, each of its
    integers has at most 29 digits, which every JSON parser here (Python's, with or
    without `_int`, and pydantic's) reads as the same exact int. (A translated copy and
    one search: a regular expression for the run took ten times as long.)"""
    return text.translate(_DIGITS_AS_ZERO).find(b"0" * _EXACT_INT_CHARS) >= 0


def cut_deep(text: str) -> str:
    """`text` with what is nested deeper than 64 levels replaced by a marker string."""
    out: list[str] = []
    depth, last, start = 0, 0, -1
    marker = json.dumps(f"[cut by repromatrix: nested deeper than {_REREAD_DEPTH} levels]")
    for m in _TOKENS.finditer(text):
        token = m.group()
        if token[0] == '"':
            continue
        if token in "[{":
            depth += 1
            if depth == _REREAD_DEPTH + 1:
                start = m.start()
        else:
            if depth == _REREAD_DEPTH + 1 and start >= 0:
                out += [text[last:start], marker]
                last, start = m.end(), -1
            depth -= 1
    if start >= 0:  # unclosed: cut to the end, the parser then reports what is missing
        out += [text[last:start], marker]
        last = len(text)
    out.append(text[last:])
    return "".join(out)
