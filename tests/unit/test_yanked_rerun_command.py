"""The command the report's old-listing note names (`report.yanked.old_listing_notes`),
parsed and set up as `repromatrix bisect` sets it up: it runs as printed, or the note says
what to give or add for it to run."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from repromatrix.arguments import bisect_request
from repromatrix.bisect_plan import make_setup, source_of
from repromatrix.cli import build_parser
from repromatrix.config import load_matrix
from repromatrix.errors import UsageError
from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.report import build_report

MATRIX = """\
schema: 1
gpus:
  h100: {compute_capability: "9.0", smi_names: ["NVIDIA H100 80GB HBM3"]}
libraries:
  lib: {pypi: lib, import: lib, versions: ["1.0", "2.0"]}
  other: {pypi: other, import: other, versions: ["1", "2"]}
repros:
  r: {script: r.py, gpus: [cpu], libraries: {lib: all, other: all}}
"""
RELEASES = {"lib": ["1.0", "1.1", "1.2", "1.3", "2.0"]}
OLD = {"lib": dict.fromkeys(RELEASES["lib"])}  # a listing kept before yanked ones were
STATUSES = {"1.0": Status.PASSED, "1.1": Status.PASSED, "1.3": Status.REGRESSED}
STATUSES["2.0"] = Status.REGRESSED


def _records(repro: str, other: str | None) -> list[Result]:
    pins = {"other": other} if other else {}
    return [
        Result(
            key=f"{repro}{label}",
            cell_id=f"{repro}[cpu,host,lib={label}]",
            repro=repro,
            base="host",
            gpu="cpu",
            pins={"lib": label, **pins},
            status=status,
            finished="2026-01-01T00:00:00+00:00",
        )
        for label, status in STATUSES.items()
    ]


def _matrix(tmp_path: Path, text: str = MATRIX) -> Path:
    (tmp_path / "r.py").write_text("")
    (tmp_path / "matrix.yaml").write_text(text)
    return tmp_path / "matrix.yaml"


def _commands(note: str) -> list[str]:
    return note.split(" with --cache (", 1)[1].split("): it lists", 1)[0].split("; ")


def _setup(command: str, matrix: Path) -> object:
    args = build_parser().parse_args(shlex.split(command)[1:])
    return make_setup(bisect_request(args), load_matrix(matrix))


def test_a_bisect_test_repro_is_named_as_a_repro_to_give(tmp_path: Path) -> None:
    """upstream_pytest (`bisect --test`, which matrix.yaml does not list) was named as a
    REPRO: `repromatrix bisect upstream_pytest ...`, which `bisect` refuses ("not in
    matrix.yaml"), and without its --test it could be no other; `bisect --test` runs
    commits, never releases, so no bisection of it lists them anew. The note asks for a
    repro that does, in the REPRO of a command that then runs; r, whose cells have no
    result, was named too ("--good GOOD --bad BAD"), a bisection nothing ran."""
    path = _matrix(tmp_path)
    records = _records("upstream_pytest", None)
    data = build_report(records, load_matrix(path), releases=RELEASES, yanked=OLD, cache="c")
    (note,) = data.old_listings
    commands = _commands(note)
    assert [c for c in commands if " bisect upstream_pytest " in c] == [], note
    # r's cells (matrix.yaml's, no result yet) are no bisection to run again.
    (command,) = commands
    with pytest.raises(UsageError, match="REPRO"):
        _setup(command, path)  # as printed: REPRO is to give
    given = command.replace("bisect REPRO", "bisect r --with other=1")
    setup = _setup(given, path)
    assert setup.repro.name == "r"  # type: ignore[attr-defined]
    assert "upstream_pytest" not in command
    assert (
        "give for REPRO a repro of matrix.yaml that spans lib (upstream_pytest is none: "
        "`bisect --test` runs commits, not releases)"
    ) in note, note


def test_a_with_label_matrix_yaml_does_not_declare_says_to_declare_it(tmp_path: Path) -> None:
    """r ran with other at 3, a revision matrix.yaml no longer declares: the command said
    `--with other=3`, which `bisect` refuses ("'3' is not declared for other"), and the
    note did not say so. It names what to add; added, the command runs as printed."""
    path = _matrix(tmp_path)
    records = _records("r", "3")
    data = build_report(records, load_matrix(path), releases=RELEASES, yanked=OLD, cache="c")
    (note,) = data.old_listings
    (command,) = _commands(note)
    assert command == (
        f"repromatrix --matrix {path} bisect r --library lib --good 1.0 --bad 2.0 --with other=3 "
        "--cache c"
    )
    with pytest.raises(UsageError, match="not declared for other"):
        _setup(command, path)
    # As spelled, quoted: matrix.yaml refuses an unquoted 3 ("YAML read 3 as a number").
    assert note.endswith("; first add '3' to libraries.other.versions in matrix.yaml"), note
    _matrix(tmp_path, MATRIX.replace('["1", "2"]', """["1", "2", '3']"""))
    setup = _setup(command, path)
    assert {n: p.label for n, p in setup.others.items()} == {"other": "3"}  # type: ignore[attr-defined]


def test_an_undeclared_commit_of_digits_is_said_as_a_commit_to_declare(tmp_path: Path) -> None:
    """r ran with other at the commit 69567171, a short id of digits alone that
    matrix.yaml no longer declares: the note said "first add 69567171 to
    libraries.other.versions", a release (the label parses as a version) and a number to
    YAML, which matrix.yaml refuses. Its records name the commit (`commits`): it says
    {git: '69567171'}, which, added as printed, lets the command run."""
    text = MATRIX.replace("other: {pypi: other,", "other: {pypi: other, git: g,")
    path = _matrix(tmp_path, text)
    records = [
        r.model_copy(update={"commits": {"other": "69567171" + "0" * 32}})
        for r in _records("r", "69567171")
    ]
    data = build_report(records, load_matrix(path), releases=RELEASES, yanked=OLD, cache="c")
    (note,) = data.old_listings
    (command,) = _commands(note)
    assert command.endswith("--with other=69567171 --cache c"), note
    added = "{git: '69567171'}"
    assert note.endswith(f"; first add {added} to libraries.other.versions in matrix.yaml"), note
    _matrix(tmp_path, text.replace('["1", "2"]', f'["1", "2", {added}]'))
    setup = _setup(command, path)
    pins = {n: (p.kind.value, p.label) for n, p in setup.others.items()}  # type: ignore[attr-defined]
    assert pins == {"other": ("git", "69567171")}


def test_the_note_names_only_releases_no_cell_ran(tmp_path: Path) -> None:
    """r ran 1.0, 1.1, 1.3 and 2.0 with other at 2; its cells with other at 1 have no
    result, so their series read 1.1 and 1.3 "whether yanked unknown" too (not run in that
    series): the note said "1.1, 1.2 and 1.3, which no cell ran", though cells ran two."""
    path = _matrix(tmp_path)
    records = _records("r", "2")
    data = build_report(records, load_matrix(path), releases=RELEASES, yanked=OLD, cache="c")
    (note,) = data.old_listings
    assert note.startswith(
        "the cache's listing of lib's releases was kept before yanked releases were: 1.2, "
        'which no cell ran, reads "whether yanked unknown"; run its bisection again'
    ), note
    (command,) = _commands(note)
    assert command.endswith("bisect r --library lib --good 1.0 --bad 2.0 --with other=2 --cache c")


MIXED = """\
schema: 1
gpus: {}
libraries:
  lib:
    pypi: lib
    git: https://example.invalid/lib.git
    import: lib
    versions: [{git: aaaaaaaa}, "1.1", "1.3", {git: bbbbbbbb}]
repros:
  r: {script: r.py, gpus: [cpu], libraries: {lib: all}}
"""


def test_the_ends_are_releases_where_the_series_ran_commits_too(tmp_path: Path) -> None:
    """r ran the commits aaaaaaaa (good) and bbbbbbbb (bad) around 1.1 and 1.3, 1.2 (not
    run) between: the ends were the commits, a bisection of commits (`--source auto` takes
    git for them), which lists no releases. The ends are the releases it ran."""
    path = _matrix(tmp_path, MIXED)
    statuses = {"aaaaaaaa": Status.PASSED, "1.1": Status.PASSED, "1.3": Status.REGRESSED}
    statuses["bbbbbbbb"] = Status.REGRESSED
    (one, *_) = _records("r", None)
    records = [
        one.model_copy(update={"pins": {"lib": label}, "key": f"r{label}", "status": status})
        for label, status in statuses.items()
    ]
    releases = {"lib": ["1.1", "1.2", "1.3"]}
    old = {"lib": dict.fromkeys(releases["lib"])}
    data = build_report(records, load_matrix(path), releases=releases, yanked=old, cache="c")
    (note,) = data.old_listings
    (command,) = _commands(note)
    assert command.endswith("bisect r --library lib --good 1.1 --bad 1.3 --cache c"), note
    args = build_parser().parse_args(shlex.split(command)[1:])
    request = bisect_request(args)
    assert source_of(request, make_setup(request, load_matrix(path))) == "pypi"


def test_a_release_only_a_not_run_record_holds_is_one_no_cell_ran(tmp_path: Path) -> None:
    """1.2's only record says not_run (a cell this host could not run): no cell ran it,
    and the note still names it."""
    path = _matrix(tmp_path)
    (one, *_) = records = _records("r", "2")
    records.append(one.model_copy(update={"pins": {"lib": "1.2", "other": "2"}, "key": "r1.2"}))
    records[-1] = records[-1].model_copy(update={"status": Status.NOT_RUN})
    data = build_report(records, load_matrix(path), releases=RELEASES, yanked=OLD, cache="c")
    (note,) = data.old_listings
    assert "were: 1.2, which no cell ran" in note, note
