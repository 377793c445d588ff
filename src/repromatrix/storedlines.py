"""A stored line → its record (`decode`), or why it is none, said in one line.

Full validation (pydantic: migration, number cleaning) after the shortcut
(`fastdecode.ordinary`) for an ordinary line; a key given twice is refused on either
path (`jsonkeys`), and so is a name that identifies a record but is megabytes long.
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

from pydantic import ValidationError
from pydantic_core import from_json

from repromatrix.bounds import number
from repromatrix.fastdecode import ordinary
from repromatrix.jsonkeys import check_keys
from repromatrix.jsonl import Line
from repromatrix.records import Result
from repromatrix.safetext import excerpt

#: The most characters a name that identifies a record may have (key, repro, GPU, host,
#: pin labels...): what repromatrix writes is far shorter. Longer ones are not cut, which
#: would make two records one, but refused: every output shows them whole.
MAX_IDENTITY_CHARS = 1000
#: Lines shorter than this cannot hold a name that long with the rest of a record.
_IDENTITY_CHECKED_FROM = MAX_IDENTITY_CHARS + 200


def _check_identity(r: Result) -> None:
    """ValueError naming the first field of `r` that identifies it and is too long."""
    names = [
        ("key", r.key),
        ("cell_id", r.cell_id),
        ("repro", r.repro),
        ("base", r.base),
        ("gpu", r.gpu),
        ("image", r.image or ""),
        ("host", r.host),
        ("run_id", r.run_id),
        ("executor", r.executor),
        ("machine.id", r.machine.id),
    ]
    for what, given in (("pins", r.pins), ("commits", r.commits)):
        for name, value in given.items():
            names += [(f"a name of {what}", name), (f"{what}.{name[:40]}", value)]
    for field_name, text in names:
        if len(text) > MAX_IDENTITY_CHARS:
            raise ValueError(
                f"{field_name} is {len(text):,} characters long; repromatrix writes at most "
                f"{MAX_IDENTITY_CHARS:,}"
            )


def decoded(read: Line, line: bytes) -> Result:
    """The record of a line (`line`: its text less a byte-order mark); ValueError when
    there is none. A line over the bound was never held, so it is refused unread."""
    if read.overlong:
        raise read.too_long()
    record = ordinary(line) or decode(line)
    if len(line) > _IDENTITY_CHECKED_FROM:
        _check_identity(record)
    return record


#: Validation context of records read back from a file (they must carry their schema).
_STORED = {"stored": True}


#: What pydantic's parser says of a lone surrogate escape: "lone leading surrogate in hex
#: escape", or "unexpected end of hex escape" for a high one with nothing after it.
_SURROGATE_WORDS = re.compile(r"surrogate|end of hex escape")


class NotedRecord(Exception):
    """A line whose record is kept, though a field that judges nothing was no value of its
    kind: `record`, with that field at its default, and `note`, what the load says of it."""

    def __init__(self, record: Result, note: str) -> None:
        super().__init__(note)
        self.record = record
        self.note = note


def decode(line: bytes | str) -> Result:
    """One stored line → Result (migrated); ValueError (pydantic's included) when unusable,
    NotedRecord when its record is kept with a note."""
    parsed: Any = None
    try:
        parsed = from_json(line)
    except ValueError:
        pass  # unparsable: said below, as pydantic says it
    else:
        check_keys(line, parsed)  # before the schema is read: `"schema"` given twice too
    try:
        return _numbers_said(Result.model_validate_json(line, context=_STORED), parsed)
    except ValidationError as exc:
        if _duration_alone(exc):
            raise _duration_unknown(json.loads(line), exc) from None
        first = exc.errors()[0]
        if first["type"] != "json_invalid" or not _SURROGATE_WORDS.search(str(first["msg"])):
            raise
        # pydantic's parser refuses a lone surrogate escape ("\ud800"), which json.dumps
        # writes for text that came from undecodable bytes; Python's reads it (the
        # outputs make such text printable). Anything else fails here as it did there.
        try:
            parsed = json.loads(line)
        except (ValueError, RecursionError):
            raise exc from None
        check_keys(line, parsed)
        try:
            return _numbers_said(Result.model_validate(parsed, context=_STORED), parsed)
        except ValidationError as again:
            if _duration_alone(again):
                raise _duration_unknown(parsed, again) from None
            raise


def _numbers_said(record: Result, parsed: Any) -> Result:
    """`record`, or a NotedRecord of it where its metrics or thresholds as stored held a
    value that is no number (text, a list), which reading them leaves out: a hand edit or
    another tool's writer lost a metric from every report, unsaid."""
    if not isinstance(parsed, dict):
        return record
    for field in ("metrics", "thresholds"):
        given = parsed.get(field)
        if given is None:
            continue
        if not isinstance(given, dict):
            said = f"{field} is {excerpt(repr(given), 40)}, not an object of numbers"
            raise NotedRecord(record, _kept_without(said))
        for name, value in given.items():
            if value is not None and not isinstance(value, int | float):
                said = f"{field}.{excerpt(name, 40)} is {excerpt(repr(value), 40)}, not a number"
                raise NotedRecord(record, _kept_without(said))
    return record


def _kept_without(said: str) -> str:
    fix = "correct that line to keep this note from coming back"
    return f"{said}; the record is kept without it: {fix}"


def _duration_alone(exc: ValidationError) -> bool:
    """Whether `duration_s` is all that is wrong with a record (NaN, 1e400, text)."""
    return all(err["loc"] == ("duration_s",) for err in exc.errors())


def _duration_unknown(parsed: Any, exc: ValidationError) -> Exception:
    """The record of `parsed` with its duration unknown (0 s, as a record that never said
    one), as a NotedRecord: how long a cell took decides nothing of its verdict, which a
    load that left the whole record out lost (a tool that wrote NaN, a hand edit, 1e400).
    `exc` when even that makes no record."""
    given = parsed.get("duration_s") if isinstance(parsed, dict) else None
    try:
        record = Result.model_validate({**parsed, "duration_s": 0.0}, context=_STORED)
    except (ValidationError, TypeError):
        return exc
    shown = number(given) if isinstance(given, int | float) else excerpt(repr(given), 40)
    return NotedRecord(
        record,
        f"duration_s is {shown}, not a number of seconds; the record is kept with its "
        "duration unknown (0 s): correct that line to keep this note from coming back",
    )


def cut_short(line: bytes) -> bool:
    """Whether `line` is the start of a record that a write cut short (an object whose
    text ends before it does: what a killed run leaves), or NUL bytes alone (what a power
    loss leaves of a write whose size reached the disk and data did not), not a line
    edited wrong."""
    if line and not line.strip(b"\0"):  # b"": a line too long to hold, unread
        return True
    if not line.lstrip().startswith(b"{"):
        return False
    try:
        from_json(line)
    except ValueError as exc:
        return str(exc).startswith("EOF while parsing")
    return False


class Joined(NamedTuple):
    """A line of two records (what `cat` of a results file onto one that lacked its last
    newline leaves): the whole ones (`records`, with the note a NotedRecord has), and the
    bytes `cut` (from, to) of the one a killed run cut short, (0, 0) when both are whole."""

    records: tuple[Result, ...]
    cut: tuple[int, int]
    note: str


#: How many places a joined line is tried at, nearest the parse error first: a record's
#: nested objects are the only other places a whole one could seem to begin (each tried
#: costs little: the parser stops at the end of the object that begins there).
_JOIN_TRIES = 1024
_BOM = b"\xef\xbb\xbf"
_SPACE = b" \t\r\n"


def joined(line: bytes) -> Joined | None:
    """The records of a line that gives none, where it is two joined: a record cut short,
    or a whole one, with a whole record after it; or a whole one with a cut one after it.
    Else None. The second begins at a `{"` no later than where the line stops parsing (it
    ends a whole record, or follows a cut one's text)."""
    try:
        from_json(line)
    except ValueError as exc:
        why = str(exc)
    else:
        return None
    found = _COLUMN.search(why)
    end = len(line)
    # Where a line begins with what no record does (the NUL bytes a power loss leaves),
    # the parser stops there: the whole record may begin anywhere after.
    if found and line.lstrip().startswith(b"{") and not why.startswith("EOF while parsing"):
        end = int(found[1]) - 1  # the byte the parser stopped at
        while end < len(line) and line[end] in _SPACE:
            end += 1
        # A whole record ends before `end`: a cut one may follow it.
        if why.startswith("trailing characters") and (then := _then_cut(line, end)):
            return then
        end += 2  # a `{"` there
    # Nearest where it stops parsing first; then from the end (cut records joined one
    # after another: it stops at the first of them).
    found_first = _whole_after(line, end)
    return found_first or (_whole_after(line, len(line)) if end < len(line) else None)


def _whole_after(line: bytes, end: int) -> Joined | None:
    """The line as whole or cut records with a whole one after them that begins at a
    `{"` before `end`, nearest first; else None."""
    at = end
    for _ in range(_JOIN_TRIES):
        at = line.rfind(b'{"', 0, at)
        if at <= 0:
            return None
        tail, note = _whole(line[at:])
        if tail is None:
            continue  # a `{"` inside a record
        head = line[:at].removesuffix(_BOM)  # a joined file's byte-order mark
        if _cut_records(head):
            return Joined((tail,), (0, at), note)
        record, _ = _whole(head)
        if record is not None:
            return Joined((record, tail), (0, 0), note)
    return None


def _cut_records(text: bytes, depth: int = 4) -> bool:
    """Whether `text` is records cut short, one or a few joined (files a killed run cut,
    joined one after another with `cat`): each next one begins where the last stops
    parsing."""
    if cut_short(text):
        return True
    if depth == 0 or not text.lstrip().startswith(b"{"):
        return False
    try:
        from_json(text)
    except ValueError as exc:
        found = _COLUMN.search(str(exc))
    else:
        return False
    at = text.rfind(b'{"', 0, int(found[1]) + 1) if found else -1
    return at > 0 and cut_short(text[:at]) and _cut_records(text[at:], depth - 1)


def _then_cut(line: bytes, at: int) -> Joined | None:
    """A whole record before byte `at` of `line` and a cut one from there, else None."""
    if not cut_short(line[at:].removeprefix(_BOM)):
        return None
    record, note = _whole(line[:at])
    return Joined((record,), (at, len(line)), note) if record is not None else None


#: Where pydantic's JSON parser stopped: "... at line 1 column 42" (bytes, from 1).
_COLUMN = re.compile(r"at line 1 column ([0-9]+)$")


def _whole(text: bytes) -> tuple[Result | None, str]:
    """The record of `text` and its note, or None where it gives none (a newer schema's
    too: its own line says to upgrade, this one stays unread)."""
    try:
        return decoded(Line(text, len(text), True), text), ""
    except NotedRecord as noted:
        return noted.record, noted.note
    except Exception:  # any text, however odd, is just no record
        return None, ""


def problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = excerpt(".".join(str(p) for p in err["loc"]), 80)
        return f"{where + ': ' if where else ''}{err['msg']}"
    if isinstance(exc, RecursionError):
        return "nested too deep"
    return f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError) else str(exc)
