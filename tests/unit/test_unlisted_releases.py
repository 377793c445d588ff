"""What the cache keeps of a listing that could not read every source, and what the report
says where a series' verdict changes along such a listing (`report.unlisted_releases`)."""

from __future__ import annotations

from pathlib import Path

from packaging.version import Version

from repromatrix.kept_releases import kept_listing, save_listing
from repromatrix.model import Status
from repromatrix.pypi_index import Listing
from repromatrix.records import Result
from repromatrix.report import build_report


def _record(label: str, status: Status) -> Result:
    return Result(
        key=f"k{label}", cell_id=f"r[cpu,host,lib={label}]", repro="r", base="host",
        gpu="cpu", pins={"lib": label}, status=status, finished="2026-01-01T00:00:00+00:00",
    )  # fmt: skip


def test_the_cache_keeps_why_a_listing_was_incomplete_until_one_is_complete(
    tmp_path: Path,
) -> None:
    versions = frozenset(map(Version, ["1.0", "1.7"]))
    down = Listing(versions=versions, sources=("folder w/",), problems=("index x: 503",))
    save_listing(tmp_path, "pkg", down)
    assert kept_listing(tmp_path, "pkg").incomplete == "index x: 503"
    save_listing(tmp_path, "pkg", Listing(versions=frozenset(), sources=()))
    assert kept_listing(tmp_path, "pkg").incomplete == "no source offered a release"
    save_listing(tmp_path, "pkg", Listing(versions=versions, sources=("folder w/",)))
    assert kept_listing(tmp_path, "pkg").incomplete == ""
    # A listing kept before this was said: complete, as the report read it.
    (tmp_path / "releases" / "pkg.json").write_text('{"versions": ["1.0"], "incomplete": 3}')
    assert kept_listing(tmp_path, "pkg").incomplete == ""


def test_each_change_along_an_incomplete_listing_is_a_range() -> None:
    """Good at 1.0, bad at 1.7 and 1.8, good again at 2.0: with every source read, "begins
    at 1.7" and "ends at 2.0"; with one unread, releases between may exist unlisted, so
    both are ranges, and nothing is said inside the bad run (1.7 to 1.8)."""
    records = [
        _record("1.0", Status.PASSED),
        _record("1.7", Status.REGRESSED),
        _record("1.8", Status.REGRESSED),
        _record("2.0", Status.PASSED),
    ]
    releases = {"lib": ["1.0", "1.7", "1.8", "2.0"]}
    (plain,) = build_report(records, releases=releases).summary_rows
    assert "begins at 1.7 (last good 1.0)" in plain.sentence, plain.sentence
    unlisted = {"lib": "index x: 503"}
    (row,) = build_report(records, releases=releases, unlisted=unlisted).summary_rows
    assert "begins between 1.0 and 1.7" in row.sentence, row.sentence
    assert "releases between 1.0 and 1.7 (not all listed: index x: 503)" in row.sentence
    assert "releases between 1.8 and 2.0 (not all listed: index x: 503)" in row.sentence
    assert "between 1.7 and 1.8" not in row.sentence, row.sentence
    # Another library's listing says nothing of this one.
    (other,) = build_report(records, releases=releases, unlisted={"x": "down"}).summary_rows
    assert other.sentence == plain.sentence
