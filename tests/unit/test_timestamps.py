"""Which record is newest does not depend on how its time was spelled."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from repromatrix.entries import collect_entries
from repromatrix.fail_on import FLAKY, ended_as
from repromatrix.model import Status
from repromatrix.records import Result, latest_by_key
from repromatrix.timestamps import SKEW, instant, recency


@pytest.mark.parametrize(
    ("stamp", "utc"),
    [
        ("2025-01-01T10:00:00+00:00", "2025-01-01T10:00:00+00:00"),
        ("2025-01-01T11:00:00+05:00", "2025-01-01T06:00:00+00:00"),
        ("2025-01-01T10:00:00Z", "2025-01-01T10:00:00+00:00"),
        ("2025-01-01T10:00:00", "2025-01-01T10:00:00+00:00"),
        ("not a time", "not a time"),
        ("", ""),
        # Past the ends of datetime once in UTC (a hand-made or damaged record): stays
        # text, where it made every report an internal error (OverflowError).
        ("0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00+14:00"),
        ("9999-12-31T23:59:59-14:00", "9999-12-31T23:59:59-14:00"),
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


def test_a_record_timed_past_the_ends_of_the_calendar_costs_the_report_nothing(
    tmp_path: Path,
) -> None:
    """A stored record whose time, in UTC, falls before year 1 is still a record: the
    report is written (exit 0), not an internal error (exit 70)."""
    from repromatrix.cli import main
    from repromatrix.store import ResultStore

    store = ResultStore(tmp_path / "results", host="h1")
    store.append(result("k", Status.PASSED, "2025-01-01T10:00:00+00:00"))
    store.append(result("k", Status.REGRESSED, "0001-01-01T00:00:00+14:00"))
    (tmp_path / "repros").mkdir()
    (tmp_path / "repros" / "r.py").write_text("")
    matrix = "schema: 1\nrepros:\n  r: {script: repros/r.py, gpus: [cpu]}\n"
    (tmp_path / "matrix.yaml").write_text(matrix)
    argv = ["--matrix", str(tmp_path / "matrix.yaml"), "report"]
    argv += ["--results", str(tmp_path / "results"), "--out", str(tmp_path / "report")]
    assert main(argv) == 0
    assert (tmp_path / "report" / "index.html").is_file()


def test_a_record_dated_in_the_future_never_hides_one_made_after_it() -> None:
    """A host whose clock ran ahead (or a hand-made record) dated one record 2099: it
    stood for its cell for ever. The report said "regressed" from an old script's run
    that the fixed script's passes could never replace, and `run` kept it as the cell's
    result."""
    future = result("old", Status.REGRESSED, "2099-01-01T00:00:00+00:00")
    now = result("new", Status.PASSED, "2026-06-01T00:00:00+00:00")
    (entry,) = collect_entries([future, now])
    assert entry.result is now
    assert (entry.passed, entry.regressed) == (1, 0)
    same_key = result("new", Status.ERROR, "2099-01-01T00:00:00Z")
    assert latest_by_key([same_key, now])["new"] is now
    assert latest_by_key([now, same_key])["new"] is now
    # Among records all dated in the future, their times still order them.
    later = result("new", Status.TIMEOUT, "2099-01-02T00:00:00+00:00")
    assert latest_by_key([later, same_key])["new"] is later


def test_a_clock_a_few_minutes_ahead_is_skew_not_the_future() -> None:
    ahead = (datetime.now(UTC) + SKEW / 2).isoformat()
    assert recency(ahead) == ahead
    assert recency(ahead) > recency("2025-01-01T10:00:00+00:00")


def test_of_records_with_equal_times_the_one_stored_later_is_newer() -> None:
    """Three records of one cell within the clock's resolution (passed, then regressed
    twice): the report counted the cell "passed" by its newest verdict (the first read
    won a tie), while `run` took the last line as newest; and of two keys of one spelling
    the one whose text sorted last was the current definition, whichever ran last."""
    at = "2026-01-01T00:00:00+00:00"
    records = [result("k", s, at) for s in (Status.PASSED, Status.REGRESSED, Status.REGRESSED)]
    (entry,) = collect_entries(records)
    assert entry.result is records[2] is latest_by_key(records)["k"]
    assert (entry.flaky, entry.passed, entry.regressed) == (True, 1, 2)
    status, newest = ended_as(records)
    assert status == FLAKY
    assert newest is records[2]
    edited = [result("zzz", Status.REGRESSED, at), result("aaa", Status.PASSED, at)]
    (entry,) = collect_entries(edited)
    assert entry.result is edited[1]
    assert not entry.flaky


def test_the_newest_record_is_the_one_stored_later_among_equal_times() -> None:
    """What `run` reuses and what its "not run here" notes compare with: the first of
    records with equal times won there, where the report and `latest_by_key` take the
    one stored later."""
    from repromatrix.timestamps import newest

    at = "2026-01-01T00:00:00+00:00"
    records = [result("k", s, at) for s in (Status.PASSED, Status.REGRESSED)]
    assert newest(records) is records[1] is latest_by_key(records)["k"]
    future = result("k", Status.ERROR, "2099-01-01T00:00:00+00:00")
    assert newest([records[0], future]) is records[0]
    assert newest([]) is None


def test_odd_stamps_are_those_in_the_future_and_those_without_an_offset_in_order() -> None:
    """One pass tells the load's notes which `finished` times are odd; it must say what
    `in_future` and `zoneless` say of each, a horizon read long ago included (a stamp past
    it but not past now's is no future)."""
    from repromatrix import timestamps
    from repromatrix.timestamps import in_future, odd_stamps, zoneless

    soon = (datetime.now(UTC) + SKEW / 2).isoformat()
    stamps = [
        "2025-01-01T10:00:00+00:00",
        "2099-01-01T00:00:00+00:00",
        "2025-01-01T10:00:00",
        "2025-01-01T10:00:00Z",
        "2099-01-01T00:00:00Z",
        "not a time",
        "",
        soon,
        "2098-01-01T00:00:00",
    ]
    for horizon in ("", "2020-01-01T00:00:00+00:00"):
        timestamps._Horizon.text = horizon  # a process that read the clock in 2020
        ahead, local = odd_stamps(iter(stamps))
        assert ahead == [s for s in stamps if in_future(s)]
        assert local == [s for s in stamps if zoneless(s)]
    assert soon not in ahead
    assert "2099-01-01T00:00:00+00:00" in ahead
    assert "2025-01-01T10:00:00" in local
