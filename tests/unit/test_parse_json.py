"""`bounds.parse_json` reads a result JSON as it did when every integer went through a
Python call (`_int`: exact to 30 characters, a float past them), where it now skips that
call for a text without a run of 30 digits (0.2 s of a 60 MB result's 1.25)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from result_jsons import VALUES, result_jsons

from repromatrix import bounds


def _old_parse_json(text: str) -> Any:
    """`bounds.parse_json` as it was: every integer through `_int`."""
    try:
        return json.loads(text, parse_int=bounds._int)
    except RecursionError:
        return json.loads(bounds.cut_deep(text), parse_int=bounds._int)


@settings(
    max_examples=1500,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.one_of(VALUES, result_jsons().map(lambda b: b.decode("utf-8", "replace"))))
def test_parse_json_reads_integers_as_it_did_with_a_call_each(text: str) -> None:
    try:
        old: Any = repr(_old_parse_json(text))
    except ValueError as exc:
        old = type(exc)
    try:
        new: Any = repr(bounds.parse_json(text))
    except ValueError as exc:
        new = type(exc)
    assert new == old
