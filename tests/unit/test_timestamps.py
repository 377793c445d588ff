"""Which record is newest does not depend on how its time was spelled."""

from __future__ import annotations

import pytest

from repromatrix.grid import collect_entries
from repromatrix.model import Status
from repromatrix.records import Result, latest_by_key
from repromatrix.timestamps import instant


@pytest.mark.parametrize(
    ("stamp", "utc"),
    [
        ("2025-01-01T10:00:00+00:00", "2025-01-01T10:00:00+00:00"),
        ("2025-01-01T11:00:00+05:00", "2025-01-01T06:00:00+00:00"),
        ("2025-01-01T10:00:00Z", "2025-01-01T10:00:00+00:00"),
        ("2025-01-01T10:00:00", "2025-01-01T10:00:00+00:00"),
        ("not a time", "not a time"),
        ("", ""),
    ],
)
def test_every_spelling_becomes_the_harness_utc_text(stamp: str, utc: str) -> None:
    assert instant(stamp) == utc


def result(key: str, status: Status, finished: str) -> Result:
    return Result(
        key=key,
        cell_id="r[cpu,host,pkg=0.2]",
        repro="r",
        base="host",
        gpu="cpu",
        pins={"pkg": "0.2"},
        status=status,
        finished=finished,
    )


def test_a_later_utc_time_beats_an_earlier_one_written_in_local_time() -> None:
    new = result("k", Status.REGRESSED, "2025-01-01T10:00:00+00:00")
    old = result("k", Status.PASSED, "2025-01-01T11:00:00+05:00")  # 06:00 UTC
    assert latest_by_key([new, old])["k"] is new
    assert latest_by_key([old, new])["k"] is new


def test_the_cell_shows_the_newer_key_however_its_time_is_spelled() -> None:
    """Two keys of one spelling (the repro changed): the newer run's key is current."""
    new = result("new", Status.REGRESSED, "2025-01-01T10:00:00+00:00")
    old = result("old", Status.PASSED, "2025-01-01T11:00:00+05:00")
    (entry,) = collect_entries([old, new])
    assert entry.result is new
    assert (entry.passed, entry.regressed) == (0, 1)
