"""jsonkeys: keys given twice found, and lines without any judged without a second parse."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic_core import from_json

from repromatrix import jsonkeys
from repromatrix.jsonkeys import repeated_key


def _line(**fields: Any) -> bytes:
    return json.dumps(fields).replace(", ", ",").replace(": ", ":").encode()


#: Output that quotes JSON (as a GPU host's stderr does): `\":` in the line's text.
_QUOTING = 'config {"dtype": "fp16", "path": "C:\\\\x\\\\"} and \\\\": done'


def test_a_line_whose_text_quotes_json_is_judged_without_parsing_it_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A line without a repeated key whose output quoted JSON was parsed a second time
    with Python's parser (twenty times the cost of the count), every such line."""
    line = _line(status="passed", stderr_tail=_QUOTING, provenance={"a": "x\\", "b": "y"})
    assert line.count(b'":') > 4  # the text's quotes counted too

    def refused(*_: Any, **__: Any) -> Any:
        raise AssertionError("parsed again")

    monkeypatch.setattr(jsonkeys, "json", SimpleNamespace(loads=refused))
    assert repeated_key(line, from_json(line)) is None


def test_a_line_spaced_before_its_colons_is_judged_without_parsing_it_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A line whose keys are spaced from their colons (`"a" : 1`, as other writers and
    hand edits space them) was parsed a second time with Python's parser: the count of
    `":` skipped those keys. Whitespace left out, each key is `":` again."""
    line = json.dumps(
        {"status": "passed", "stderr_tail": _QUOTING + ' and " : too', "pins": {"a": "1"}},
        separators=(" , ", " : "),
    ).encode()

    def refused(*_: Any, **__: Any) -> Any:
        raise AssertionError("parsed again")

    monkeypatch.setattr(jsonkeys, "json", SimpleNamespace(loads=refused))
    assert repeated_key(line, from_json(line)) is None


@pytest.mark.parametrize(
    "line",
    [
        # A repeated key beside text with escaped quotes before colons.
        b'{"status":"passed","stderr_tail":"a \\": b \\\\\\": c","status":"regressed"}',
        # A key ending in a backslash (an even run: the quote ends the string), twice.
        b'{"x\\\\":1,"y":"\\":","x\\\\":2}',
        # A text that begins with a colon makes up for the key given twice.
        b'{"status":"passed","reason":":","status":"regressed"}',
        b'{"status":"passed","reason":":x\\":","status":"regressed","m":{"a":1}}',
        # Keys spaced from their colons (the text's own colons make up for them).
        b'{"status" : "passed", "reason": ":", "status"\t:"regressed"}',
        b'{"status" :"passed","r":"a\\" :\\\\\\" :","status"\r\n: "regressed"}',
        b'{"a" : {"b" : 1, "b" : 2}, "t": "\\" :"}',
    ],
)
def test_a_key_given_twice_is_found_whatever_the_text_quotes(line: bytes) -> None:
    parsed = from_json(line)
    assert repeated_key(line, parsed) is not None
    assert repeated_key(line, json.loads(line)) is not None
