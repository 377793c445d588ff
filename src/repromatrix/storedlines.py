"""A stored line → its record (`decode`), or why it is none, said in one line.

Full validation (pydantic: migration, number cleaning) after the shortcut
(`fastdecode.ordinary`) for an ordinary line; a key given twice is refused on either
path (`jsonkeys`), and so is a name that identifies a record but is megabytes long.
"""

from __future__ import annotations

import json
import re

from pydantic import ValidationError
from pydantic_core import from_json

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


def decode(line: bytes | str) -> Result:
    """One stored line → Result (migrated); ValueError (pydantic's included) when unusable."""
    try:
        parsed = from_json(line)
    except ValueError:
        pass  # unparsable: said below, as pydantic says it
    else:
        check_keys(line, parsed)  # before the schema is read: `"schema"` given twice too
    try:
        return Result.model_validate_json(line, context=_STORED)
    except ValidationError as exc:
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
        return Result.model_validate(parsed, context=_STORED)


def problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = excerpt(".".join(str(p) for p in err["loc"]), 80)
        return f"{where + ': ' if where else ''}{err['msg']}"
    if isinstance(exc, RecursionError):
        return "nested too deep"
    return f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError) else str(exc)
