"""Yanked releases a bisection's listing saw, kept in the cache (`pypi_index`), and what
the report says of one nothing ran (`report.yanked`)."""

from __future__ import annotations

import shlex
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from markupsafe import escape
from packaging.version import Version

from repromatrix.arguments import bisect_request
from repromatrix.bisect_plan import make_setup
from repromatrix.candidates import Candidate
from repromatrix.cli import build_parser
from repromatrix.config import load_matrix
from repromatrix.kept_releases import kept_listing, save_listing, stored_releases
from repromatrix.model import SourceKind, Status
from repromatrix.pypi_index import Listing
from repromatrix.records import Result
from repromatrix.report import build_report


def _listing(versions: list[str], yanked: list[str]) -> Listing:
    return Listing(
        versions=frozenset(map(Version, versions)),
        yanked=frozenset(map(Version, yanked)),
        sources=("index",),
    )


def _record(label: str, status: Status) -> Result:
    return Result(
        key=f"k{label}", cell_id=f"r[cpu,host,lib={label}]", repro="r", base="host",
        gpu="cpu", pins={"lib": label}, status=status, finished="2026-01-01T00:00:00+00:00",
    )  # fmt: skip


def test_the_cache_keeps_which_yanked_releases_a_bisection_skipped(tmp_path: Path) -> None:
    """The listing kept only the versions: a yanked release was one more release, and
    whether a bisection had left it out was known nowhere after it."""
    save_listing(tmp_path, "pkg", _listing(["1.0", "1.1", "1.3", "2.0"], ["1.2", "3.0"]))
    assert kept_listing(tmp_path, "pkg").yanked == {"1.2": False, "3.0": False}
    # A bisection between 1.0 and 2.0 skipped 1.2, not 3.0 (after its bad end).
    listing = _listing(["1.0", "1.1", "1.3", "2.0"], ["1.2", "3.0"])
    save_listing(tmp_path, "pkg", listing, ("1.0", "2.0"))
    assert kept_listing(tmp_path, "pkg").yanked == {"1.2": True, "3.0": False}
    assert "1.2" in stored_releases(tmp_path, "pkg")  # a release of the axis still
    # 3.0 offered again (un-yanked): no longer yanked; 1.2, unlisted now, stays so.
    save_listing(tmp_path, "pkg", _listing(["1.0", "3.0"], []))
    assert kept_listing(tmp_path, "pkg").yanked == {"1.2": True}


def test_a_listing_kept_before_yanked_releases_were_said_has_none(tmp_path: Path) -> None:
    folder = tmp_path / "releases"
    folder.mkdir()
    (folder / "pkg.json").write_text('{"project": "pkg", "versions": ["1.0", "1.2"]}')
    assert kept_listing(tmp_path, "pkg").yanked == {}
    # ... for the report: none known, not "none yanked" (it read so).
    assert kept_listing(tmp_path, "pkg").yanked_or_unknown == {"1.0": None, "1.2": None}
    assert kept_listing(tmp_path, "pkg").releases == ("1.0", "1.2")
    (folder / "pkg.json").write_text('{"versions": ["1.0", "1.2"], "yanked": []}')
    assert kept_listing(tmp_path, "pkg").yanked_or_unknown == {}
    (folder / "pkg.json").write_text('{"yanked": ["1.2", 7, "not a version"], "skipped": 3}')
    assert kept_listing(tmp_path, "pkg").yanked == {"1.2": False}
    (folder / "pkg.json").write_text("[")
    assert kept_listing(tmp_path, "pkg").yanked == {}
    assert kept_listing(tmp_path, "pkg").yanked_or_unknown == {}
    assert kept_listing(tmp_path, "pkg").releases == ()


def test_a_yanked_release_no_bisection_skipped_is_said_yanked_alone() -> None:
    """Between 1.1 (good) and 1.3 (bad) of a matrix run, 1.2 yanked: no bisection's ends
    lay around it, so it was not skipped by one; it was "not run in this series"."""
    records = [_record("1.1", Status.PASSED), _record("1.3", Status.REGRESSED)]
    releases = {"lib": ["1.1", "1.2", "1.3"]}
    plain = build_report(records, releases=releases).repros[0].findings[0].summary
    assert "no verdict at 1.2 (not run in this series)" in plain, plain
    data = build_report(records, releases=releases, yanked={"lib": {"1.2": False}})
    (row,) = data.summary_rows
    assert "no verdict at 1.2 (yanked)" in row.sentence, row.sentence
    assert row.unsure_before == ("1.2 (yanked)",)


def test_write_report_takes_the_yanked_releases_the_cli_shows(tmp_path: Path) -> None:
    """`write_report`, the Python front door, took no `yanked`: a caller's report said
    "1.2 (not run in this series)" where `repromatrix report` says "1.2 (yanked: the
    bisection skipped it)", its row a bare "1.2"."""
    from repromatrix.report import write_report

    records = [_record("1.1", Status.PASSED), _record("1.3", Status.REGRESSED)]
    releases = {"lib": ["1.1", "1.2", "1.3"]}
    paths = write_report(
        results=records, out_dir=tmp_path, releases=releases, yanked={"lib": {"1.2": True}}
    )
    summary = paths["markdown"].read_text()
    assert "no verdict at 1.2 (yanked: the bisection skipped it)" in summary, summary
    page = paths["html"].read_text()
    assert '<th title="yanked: the bisection skipped it">1.2 <span class="badge">yanked' in page
    plain = write_report(results=records, out_dir=tmp_path / "plain", releases=releases)
    assert "no verdict at 1.2 (not run in this series)" in plain["markdown"].read_text()


def _repro(records: list[Result], name: str) -> list[Result]:
    return [
        r.model_copy(update={"repro": name, "cell_id": name + r.cell_id[1:], "key": name + r.key})
        for r in records
    ]


def test_a_listing_too_old_to_say_yanked_names_the_command_that_lists_it_anew(
    tmp_path: Path,
) -> None:
    """A listing kept before yanked releases were (each release None): 1.2, which no cell
    of r nor of s ran, read "whether yanked unknown", and nothing said how to know. The
    page's notes (and summary.md's) say it once, naming the bisection of each repro to run
    again: its ends the oldest and newest releases it tested (the note said "--good …
    --bad …"), the --cache as given and quoted for a shell (it said "--cache …"); s was
    not named."""
    from repromatrix.report import write_report

    records = [_record("1.0", Status.PASSED), _record("1.1", Status.PASSED)]
    records += [_record("1.3", Status.REGRESSED), _record("2.0", Status.REGRESSED)]
    records += _repro(records, "s")
    releases = {"lib": ["1.0", "1.1", "1.2", "1.3", "2.0"]}
    old = {"lib": dict.fromkeys(releases["lib"])}
    data = build_report(records, releases=releases, yanked=old, cache="my cache")
    assert [f.summary.count("1.2 (not run in this series; whether yanked unknown)")
            for rr in data.repros for f in rr.findings] == [1, 1]  # fmt: skip
    said = (
        "the cache's listing of lib's releases was kept before yanked releases were: 1.2, "
        'which no cell ran, reads "whether yanked unknown"; run each bisection again from '
        "the oldest to the newest release it tested, with --cache (repromatrix bisect r "
        "--library lib --good 1.0 --bad 2.0 --cache 'my cache'; repromatrix bisect s "
        "--library lib --good 1.0 --bad 2.0 --cache 'my cache'): it lists the releases "
        "anew, its stored runs reused"
    )
    assert data.notes == (said,)
    assert data.old_listings == (said,)
    paths = write_report(
        results=records, out_dir=tmp_path, releases=releases, yanked=old, cache="my cache"
    )
    assert paths["html"].read_text().count(f"<li>{escape(said)}</li>") == 1
    assert paths["markdown"].read_text().count(said) == 1
    # A listing that says which are yanked needs no such note.
    assert build_report(records, releases=releases, yanked={"lib": {"1.2": True}}).notes == ()


def test_the_bisection_to_run_again_has_the_ends_its_records_show_or_asks_for_them() -> None:
    """Ends from the records: a fix (1.0 regressed, 2.0 passed) is bisected again with
    --find-fix, its bad end the older; a series with no good end (all regressed) has
    none, and the note says which to give, as it does for a --cache it was not told."""
    fixed = [_record("1.0", Status.REGRESSED), _record("1.1", Status.REGRESSED)]
    fixed += [_record("1.3", Status.PASSED), _record("2.0", Status.PASSED)]
    stays = [_record(x, Status.REGRESSED) for x in ("1.0", "1.1", "1.3")]
    records = fixed + _repro(stays, "s")
    releases = {"lib": ["1.0", "1.1", "1.2", "1.3", "2.0"]}
    old = {"lib": dict.fromkeys(releases["lib"])}
    (note,) = build_report(records, releases=releases, yanked=old).notes
    assert (
        "(repromatrix bisect r --library lib --good 2.0 --bad 1.0 --find-fix --cache CACHE; "
        "repromatrix bisect s --library lib --good GOOD --bad BAD --cache CACHE): it lists "
        "the releases anew, its stored runs reused; give the ends it ran with for GOOD and BAD "
        "and the --cache it ran with for CACHE"
    ) in note, note


def test_no_point_is_read_for_notes_where_no_listing_is_old() -> None:
    """Where every listing says its yanked releases, the notes read no finding (the page
    looked through every point for "whether yanked unknown": 38 ms on 1,000,000 points),
    and where one library's listing is old, no point of another library's series."""
    from repromatrix.report.yanked import old_listing_notes

    class Unread:
        @property
        def findings(self) -> Any:
            raise AssertionError("the findings were read")

    class Unsearched:
        axis, repro = "lib", "r"

        @property
        def points(self) -> Any:
            raise AssertionError("lib's points were searched")

    class Along:
        findings: Any = (SimpleNamespace(series=Unsearched()),)

    assert old_listing_notes([Unread()], {"lib": {"1.2": True, "1.3": False}}) == ()
    assert old_listing_notes([Along()], {"lib": {"1.2": True}, "other": {"9": None}}) == ()


SEVERAL = """\
schema: 1
gpus:
  h100: {compute_capability: "9.0", smi_names: ["NVIDIA H100 80GB HBM3"]}
images:
  cu124: {ref: "nvidia/cuda:12.4.1-runtime-ubuntu22.04"}
  cu126: {ref: "nvidia/cuda:12.6.0-runtime-ubuntu22.04"}
libraries:
  lib: {pypi: lib, import: lib, versions: ["1.0", "2.0"]}
  other: {pypi: other, import: other, versions: ["1", "2"]}
repros:
  r: {script: r.py, gpus: [cpu, h100], bases: [cu124, cu126], libraries: {lib: all, other: all}}
"""


def test_the_bisection_to_run_again_sets_up_the_cells_its_records_ran(tmp_path: Path) -> None:
    """r runs on two GPU types and two images and spans another library: its bisection,
    run on h100, cu126 (not the first image) with other 2, was named without --gpu (which
    `bisect` refuses for r), --image nor --with (which it needs for other): the command
    did not run. Parsed as the CLI parses it, it sets up the cells the records ran."""
    (tmp_path / "r.py").write_text("")
    (tmp_path / "matrix.yaml").write_text(SEVERAL)
    matrix = load_matrix(tmp_path / "matrix.yaml")
    statuses = {"1.0": Status.PASSED, "1.1": Status.PASSED, "1.3": Status.REGRESSED}
    records = [
        _record(label, status).model_copy(
            update={"gpu": "h100", "base": "cu126", "pins": {"lib": label, "other": "2"}}
        )
        for label, status in {**statuses, "2.0": Status.REGRESSED}.items()
    ]
    releases = {"lib": ["1.0", "1.1", "1.2", "1.3", "2.0"]}
    old = {"lib": dict.fromkeys(releases["lib"])}
    (note,) = build_report(records, matrix, releases=releases, yanked=old, cache="c").old_listings
    command = note.split(" with --cache (", 1)[1].split("): it lists", 1)[0]
    assert command == (
        f"repromatrix --matrix {tmp_path / 'matrix.yaml'} bisect r --library lib --good 1.0 "
        "--bad 2.0 --gpu h100 --image cu126 --with other=2 --cache c"
    )
    args = build_parser().parse_args(shlex.split(command)[1:])
    assert args.matrix == tmp_path / "matrix.yaml"
    assert str(args.cache) == "c"
    setup = make_setup(bisect_request(args), matrix)
    assert (setup.gpu, setup.base, setup.old, setup.new) == ("h100", "cu126", "1.0", "2.0")
    cell = setup.cell(setup.pin(Candidate(rev="1.1", label="1.1", kind=SourceKind.PYPI)))
    assert {p.library: p.label for p in cell.pins} == {"lib": "1.1", "other": "2"}
