"""The judge reads a result JSON with one parse, Python's, and validates that parse; where
that could read a file otherwise than pydantic's own JSON parse did (validated, then
parsed again by `bounds.parse_json` for the key and metrics checks), it reads it as
before. Generated result JSONs, ordinary and hostile, read both ways, must come out alike:
the payload (every field, to the float's sign), the words of what is wrong, and the parse
the checks after the verdict share."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from result_jsons import deep, object_text, result_jsons

from repromatrix.executors import judge

SETTINGS = settings(
    max_examples=1500,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _shown(read: Any) -> tuple[str, str, str, str]:
    """A read as a user and the checks after it meet it: repr keeps -0.0 apart from 0.0,
    and an int apart from a float."""
    payload = repr(read.payload.model_dump()) if read.payload is not None else "None"
    return payload, read.problem, repr(read.doc), judge.metrics_left_out(read.doc)


def _check(text: bytes) -> bool:
    """Whether the one parse took `text`; where it did, it read it as the two did."""
    once = judge._parsed_once(text)
    if once is None:
        return False
    assert _shown(once) == _shown(judge._parsed_twice(text))
    return True


@SETTINGS
@given(result_jsons())
def test_one_parse_reads_any_result_json_as_two_did(text: bytes) -> None:
    _check(text)


def _result(**changes: str) -> bytes:
    fields = {
        "schema": "1",
        "repro": '"r"',
        "status": '"passed"',
        "reason": '"max abs 1e-5"',
        "metrics": '{"max_abs": 1e-05, "n": 3, "bad": NaN, "flag": true, "": 1, "name": "x"}',
        "thresholds": '{"max_abs": 0.001}',
        "provenance": '{"torch": "2.11", "n": 12345678901234567890123456789}',
        **changes,
    }
    return object_text(list(fields.items()), spaced=True).encode("utf-8", "surrogatepass")


@pytest.mark.parametrize(
    "text",
    [
        _result(),
        _result(provenance=deep(250, r'"\ud800"')),
        _result(reason=r'"\udc00 lone"', metrics='{"x": -0.0, "y": 1e400}'),
        _result(metric='{"a": 1}', status='"regressed"'),
        _result(provenance='{"a": 1, "a": 2}'),
        _result(provenance=json.dumps({"emoji": "\U0001f600", "list": list(range(600))})),
    ],
)
def test_an_ordinary_result_json_is_parsed_once(text: bytes) -> None:
    # A 60 MB result's second parse cost a second; these must not pay it.
    assert _check(text)


@pytest.mark.parametrize(
    "text",
    [
        _result(provenance='{"n": 123456789012345678901234567890}'),  # 30 digits
        _result(metrics='{"n": -' + "9" * 40 + "}"),
        _result(status='"Passed"'),  # invalid: pydantic's words for it
        _result(schema="1.0"),
        _result().replace(b"max abs", b"caf\xe9"),  # no UTF-8
        _result(provenance=deep(1200, "1")),  # past Python's parser
        _result()[:-1],
    ],
)
def test_what_one_parse_could_read_otherwise_is_read_as_before(text: bytes, tmp_path: Path) -> None:
    assert judge._parsed_once(text) is None
    path = tmp_path / "result.json"
    path.write_bytes(text)
    twice = judge._parsed_twice(text)
    assert judge.read_result_json(path) == (twice.payload, twice.problem)
