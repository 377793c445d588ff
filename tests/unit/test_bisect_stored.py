"""The stored evidence a bisection starts from (`bisect_session._stored`)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from repromatrix.bisect_session import _stored
from repromatrix.model import Status


def test_a_declared_pin_with_the_candidates_key_does_not_count_its_records_twice() -> None:
    """matrix.yaml declaring a commit by its full hash pins it as the bisection does: the
    alias is the candidate's own cell, and its one stored run was read twice ("2 passed",
    "11 already evaluated" from 10 records), a repeat that never happened."""
    cell = cast(Any, SimpleNamespace(key="k0"))
    record = cast(
        Any,
        SimpleNamespace(
            status=Status.PASSED, base_fingerprint="", finished="2026-01-01T00:00:00+00:00"
        ),
    )
    candidate = cast(Any, SimpleNamespace(rev="a" * 40))
    evaluated = _stored([candidate], [cell], {"k0": [record]}, {0: (cell,)}, False)
    assert len(evaluated[0].runs) == 1
