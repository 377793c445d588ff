"""Release candidates from what the sources offer (no network: find-links folders are built
here, pip's output is parsed from text)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from packaging.version import Version

from repromatrix.bisect import Bisector, Verdict, run
from repromatrix.bisect_plan import BisectRequest, make_setup
from repromatrix.candidate_releases import release_candidates
from repromatrix.config import Matrix, load_matrix
from repromatrix.errors import BisectError
from repromatrix.model import SourceKind
from repromatrix.options import Sources
from repromatrix.pypi_index import Listing, parse_pip_index
from repromatrix.release_files import folder_versions
from repromatrix.release_listing import list_releases
from repromatrix.report.bisect import BisectReport

MATRIX = """\
schema: 1
libraries:
  packaging:
    pypi: packaging
    import: packaging
    versions: ["20.0", {pypi: "22.0", note: "LegacyVersion removed"}, "23.2"]
repros:
  legacy:
    script: repros/r.py
    gpus: [cpu]
    libraries: {packaging: all}
"""

FILES = [
    "packaging-20.0-py2.py3-none-any.whl",
    "packaging-20.0.tar.gz",  # the same release twice counts once
    "packaging-20.9-py2.py3-none-any.whl",
    "packaging-21.0-py3-none-any.whl",
    "packaging-21.3.tar.gz",
    "packaging-22.0rc1-py3-none-any.whl",  # a pre-release: not between two finals
    "packaging-22.0-py3-none-any.whl",
    "packaging-23.0+local.1-py3-none-any.whl",  # a local build of 23.0
    "packaging-23.2-py3-none-any.whl",
    "packaging-24.0-py3-none-any.whl",  # outside the ends
    "Packaging_Tools-1.0-py3-none-any.whl",  # another project
    "packaging-notaversion.tar.gz",  # does not parse: pip ignores it too
    "packaging-22.1-py3-none-any.whl.metadata",
    "README.txt",
]


@pytest.fixture
def matrix(tmp_path: Path) -> Matrix:
    (tmp_path / "repros").mkdir()
    (tmp_path / "repros" / "r.py").write_text("print('hi')\n")
    (tmp_path / "matrix.yaml").write_text(MATRIX)
    return load_matrix(tmp_path / "matrix.yaml")


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    folder = tmp_path / "wheels"
    folder.mkdir()
    for name in FILES:
        (folder / name).write_bytes(b"")
    (folder / "packaging-99.0-py3-none-any.whl").mkdir()  # a folder, not a wheel
    return folder


def test_a_folder_offers_what_its_file_names_say(wheels: Path) -> None:
    got = sorted(folder_versions(wheels, "packaging"))
    assert [str(v) for v in got] == [
        "20.0",
        "20.9",
        "21.0",
        "21.3",
        "22.0rc1",
        "22.0",
        "23.0+local.1",
        "23.2",
        "24.0",
    ]
    assert folder_versions(wheels, "Packaging-Tools") == {Version("1.0")}


def test_offline_listing_reads_folders_and_never_calls_pip(wheels: Path) -> None:
    listing = list_releases(
        "packaging", Sources(find_links=(wheels,), no_index=True), python="/nonexistent/python",
        env={},
    )  # fmt: skip
    assert listing.complete
    assert listing.sources == (f"folder {wheels}",)
    assert Version("21.3") in listing.versions
    nothing = list_releases(
        "packaging", Sources(no_index=True), python="/nonexistent/python", env={}
    )
    assert not nothing.complete
    os.chmod(wheels, 0)
    try:
        if not os.access(wheels, os.R_OK):  # root reads anything: nothing to test then
            unreadable = list_releases(
                "packaging", Sources(find_links=(wheels,), no_index=True), python="/x", env={}
            )
            assert not unreadable.complete
            assert "cannot read --find-links" in unreadable.problems[0]
    finally:
        os.chmod(wheels, 0o755)


def test_pips_own_variables_shape_the_listing_as_they_shape_the_installs(wheels: Path) -> None:
    # PIP_NO_INDEX with --find-links: the folder alone, pip (here unrunnable) never asked.
    offline = list_releases(
        "packaging", Sources(find_links=(wheels,)), python="/nonexistent/python",
        env={"PIP_NO_INDEX": "1"},
    )  # fmt: skip
    assert offline.complete
    assert offline.sources == (f"folder {wheels}",)
    # PIP_FIND_LINKS with --no-index: its folders are read as --find-links ones are.
    found = list_releases(
        "packaging", Sources(no_index=True), python="/nonexistent/python",
        env={"PIP_FIND_LINKS": f"{wheels}"},
    )  # fmt: skip
    assert Version("21.3") in found.versions
    assert found.complete


def test_find_links_from_pips_config_files_are_read_too(wheels: Path, tmp_path: Path) -> None:
    """A folder named in pip.conf: pip installs from it, so the listing reads it (it
    missed 1.1 there and named 1.2 the first bad release)."""
    import sys

    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\nfind-links =\n    {wheels}\n    /nonexistent/dir\nno-index = yes\n")
    env = {"PIP_CONFIG_FILE": str(conf)}
    listing = list_releases("packaging", Sources(), python=sys.executable, env=env)
    assert Version("21.3") in listing.versions
    assert listing.sources == (f"folder {wheels}",)
    assert listing.complete  # no-index from the file: no index to ask


def test_find_links_under_the_home_folder_are_read_as_pip_reads_them(
    wheels: Path, tmp_path: Path
) -> None:
    """`find-links = ~/wheels` in pip.conf (or PIP_FIND_LINKS=~/wheels): pip expands the
    `~` and installs from the folder, the listing took the text for a path that does not
    exist and ignored it, so the releases between the ends were never candidates ("releases
    between them may exist but were not listed (no --find-links folder or index was read)",
    exit 6, with both ends installed from that very folder)."""
    import sys

    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nfind-links = ~/wheels\nno-index = yes\n")
    env = {"PIP_CONFIG_FILE": str(conf), "HOME": str(tmp_path)}
    listing = list_releases("packaging", Sources(), python=sys.executable, env=env)
    assert Version("21.3") in listing.versions
    assert listing.sources == (f"folder {wheels}",)
    assert listing.complete
    env = {"PIP_FIND_LINKS": "~/wheels", "PIP_NO_INDEX": "1", "HOME": str(tmp_path)}
    found = list_releases("packaging", Sources(), python="/nonexistent/python", env=env)
    assert found.sources == (f"folder {wheels}",)
    assert Version("21.3") in found.versions


def test_pips_variables_replace_its_configuration_files_as_pip_takes_them(
    tmp_path: Path,
) -> None:
    """pip takes PIP_FIND_LINKS instead of pip.conf's find-links, not beside it (and
    PIP_NO_INDEX instead of its no-index): the listing read both folders, so a release
    only the file's folder holds was a candidate that pip, looking in the variable's
    alone, could not install ("No matching distribution found"), a skip where the
    sources had an answer."""
    import sys

    from repromatrix.pip_settings import with_pip_environment

    used, unused = tmp_path / "used", tmp_path / "unused"
    for folder, version in ((used, "20.0"), (unused, "21.3")):
        folder.mkdir()
        (folder / f"packaging-{version}-py3-none-any.whl").write_bytes(b"")
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\nfind-links = {unused}\nno-index = yes\n")
    env = {"PIP_CONFIG_FILE": str(conf), "PIP_FIND_LINKS": str(used)}
    listing = list_releases("packaging", Sources(), python=sys.executable, env=env)
    assert listing.versions == {Version("20.0")}
    assert listing.sources == (f"folder {used}",)
    # An empty variable is no setting (pip ignores it): the file's folder counts.
    env["PIP_FIND_LINKS"] = ""
    listing = list_releases("packaging", Sources(), python=sys.executable, env=env)
    assert listing.versions == {Version("21.3")}
    # PIP_NO_INDEX=0 asks the index the file turned off; --no-index turns it off anyway.
    config = {"no-index": "true"}
    assert not with_pip_environment(Sources(), {"PIP_NO_INDEX": "0"}, config).no_index
    assert with_pip_environment(Sources(), {}, config).no_index
    assert with_pip_environment(Sources(no_index=True), {"PIP_NO_INDEX": "0"}, config).no_index
    assert with_pip_environment(Sources(), {"PIP_NO_INDEX": "y"}).no_index  # pip's strtobool


def test_pip_lists_the_index_of_the_variables_it_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`env` (the variables the installs see) is what pip lists with: it ran with this
    process's own, so the PIP_INDEX_URL given was not the index listed (here another
    index's 2.0 was the one candidate, where the given one offers 1.0 and 1.1)."""
    import sys

    def index(folder: str, versions: list[str]) -> str:
        project = tmp_path / folder / "simple" / "bisectpkg"
        project.mkdir(parents=True)
        names = [f"bisectpkg-{version}-py3-none-any.whl" for version in versions]
        for file in names:
            (project / file).write_bytes(b"")
        links = "".join(f'<a href="{file}">{file}</a>' for file in names)
        (project / "index.html").write_text(f"<html><body>{links}</body></html>")
        return (tmp_path / folder / "simple").as_uri()

    for key in [k for k in os.environ if k.startswith("PIP_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", index("other", ["2.0"]))
    env = {**os.environ, "PIP_INDEX_URL": index("given", ["1.0", "1.1"])}
    listing = list_releases("bisectpkg", Sources(), python=sys.executable, env=env)
    assert listing.versions == {Version("1.0"), Version("1.1")}
    assert listing.complete


def test_an_index_without_the_project_answered_an_unreachable_one_did_not() -> None:
    """ "No matching distribution" after reading every source is a complete answer (the
    project is not there), not an unreadable index that leaves the list incomplete."""
    from repromatrix.pypi_index import _none_offered

    assert _none_offered("ERROR: No matching distribution found for bisectpkg\n")
    offline = (
        "WARNING: Retrying (Retry(total=0, ...)) after connection broken by "
        "'NewConnectionError(...: Failed to establish a new connection')\n"
        "ERROR: No matching distribution found for bisectpkg\n"
    )
    assert not _none_offered(offline)
    assert not _none_offered("ERROR: Could not find a version\n")


def test_pips_log_tells_a_refused_index_from_one_without_the_project() -> None:
    """Both end in "No matching distribution found"; only the debug log says which."""
    from repromatrix.pip_log import read_index_log

    log = (
        "2026-01-01T00:00:00,1 Could not fetch URL https://pypi.org/simple/nosuch/: 404 Client "
        "Error: Not Found for url: https://pypi.org/simple/nosuch/ - skipping\n"
        "2026-01-01T00:00:00,2 Could not fetch URL https://u:tok@corp.example/simple/pkg/: 403 "
        "Client Error: Forbidden for url: https://u:tok@corp.example/simple/pkg/ - skipping\n"
        "2026-01-01T00:00:00,3 Could not fetch URL http://127.0.0.1:9/simple/pkg/: connection "
        "error: [Errno 111] Connection refused - skipping\n"
    )
    said = read_index_log(log)
    assert said.unreadable == (
        "https://***@corp.example/simple/pkg/: 403 Client Error: Forbidden",
        "http://127.0.0.1:9/simple/pkg/: connection error: [Errno 111] Connection refused",
    )
    assert "tok" not in " ".join(said.unreadable)
    assert read_index_log(log.splitlines()[0]).unreadable == ()


def test_pips_log_names_the_files_it_skipped() -> None:
    from repromatrix.pip_log import read_index_log

    page = "(from https://idx.example/simple/pkg/)"
    log = (
        "t   Skipping link: yanked for reason: broken: see #1: "
        f"https://idx.example/f/pkg-1.2-py3-none-any.whl {page}\n"
        "t   Skipping link: none of the wheel's tags (cp39-cp39-win_amd64) are compatible (run "
        "pip debug --verbose to show compatible tags): "
        f"https://idx.example/f/pkg-1.2.5-cp39-cp39-win_amd64.whl {page}\n"
        "t   Skipping link: 1.2.7 Requires-Python >=3.99: "
        f"https://idx.example/f/pkg-1.2.7.tar.gz#sha256=00 {page}\n"
        "t   Skipping link: yanked for reason: <none given>: "
        f"https://idx.example/f/other-1.1-py3-none-any.whl {page}\n"
    )  # fmt: skip
    said = read_index_log(log, "pkg")
    assert said.yanked == {Version("1.2")}
    assert said.elsewhere == {Version("1.2.5"), Version("1.2.7")}
    assert said.unreadable == ()


#: pip 22.0.4's own lines (`pip index versions bisectpkg --log`), a page with 1.0 and 1.1,
#: 1.2 whose Requires-Python is <3 and 1.3; pip 22.3 and later add a "Skipping link: 1.2
#: Requires-Python <3: URL" line, before it this one alone says why 1.2 was left out.
PIP_22_0_LOG = """\
2026-12-05T15:45:41,517   Found link file:///w/bisectpkg-1.0-py3-none-any.whl (from file:///w/l/index.html), version: 1.0
2026-12-05T15:45:41,517   Found link file:///w/bisectpkg-1.1-py3-none-any.whl (from file:///w/l/index.html), version: 1.1
2026-12-05T15:45:41,518   Link requires a different Python (3.11.7 not in: '<3'): file:///w/bisectpkg-1.2-py3-none-any.whl (from file:///w/l/index.html) (requires-python:<3)
2026-12-05T15:45:41,518   Found link file:///w/bisectpkg-1.3-py3-none-any.whl (from file:///w/l/index.html), version: 1.3
"""  # noqa: E501


def test_a_requires_python_skip_in_pips_older_words_is_a_release_for_another_python() -> None:
    """pip before 22.3 says only "Link requires a different Python": 1.2 (bad, for
    Python <3) was dropped unnamed and 'first bad release: pkg 1.3' exited 0."""
    from repromatrix.pip_log import read_index_log

    said = read_index_log(PIP_22_0_LOG, "bisectpkg")
    assert said.elsewhere == {Version("1.2")}
    assert said.unexplained == ()


def test_a_file_pip_passed_over_in_words_not_read_here_leaves_the_list_incomplete(
    tmp_path: Path,
) -> None:
    """A pip whose log words a skip otherwise (here a made-up "Dropping"): its release
    was lost silently; it is a problem now, so a boundary next to it is a range."""
    import stat
    import sys

    from repromatrix.pip_log import read_index_log
    from repromatrix.pypi_index import index_versions

    odd = "2026-01-01T00:00:00,1 Dropping file:///w/bisectpkg-1.2-py3-none-any.whl: discarded\n"
    log = PIP_22_0_LOG.replace(PIP_22_0_LOG.splitlines()[2], odd.strip())
    said = read_index_log(log, "bisectpkg")
    assert said.unexplained == (
        (Version("1.2"), "Dropping file:///w/bisectpkg-1.2-py3-none-any.whl: discarded"),
    )
    # A file of a release pip took another file of, or of another project: no matter.
    taken = "t Found link file:///w/bisectpkg-1.2.tar.gz, version: 1.2\n"
    assert read_index_log(log + taken, "bisectpkg").unexplained == ()
    assert read_index_log(log, "otherpkg").unexplained == ()
    (tmp_path / "said.log").write_text(log)
    pip = tmp_path / "python"  # a pip that says what `log` says
    pip.write_text(
        f"#!{sys.executable}\nimport shutil, sys\n"
        f"shutil.copy({str(tmp_path / 'said.log')!r}, sys.argv[sys.argv.index('--log') + 1])\n"
        "print('bisectpkg (1.3)\\nAvailable versions: 1.3, 1.1, 1.0')\n"
    )
    pip.chmod(pip.stat().st_mode | stat.S_IXUSR)
    listing = index_versions(str(pip), "bisectpkg", [])
    assert listing.versions == {Version("1.0"), Version("1.1"), Version("1.3")}
    assert not listing.complete
    assert listing.problems == (
        "pip index versions bisectpkg passed over a file of 1.2 for a reason not read here "
        "(Dropping file:///w/bisectpkg-1.2-py3-none-any.whl: discarded)",
    )


def test_a_pip_without_pip_index_is_named_with_the_way_out(tmp_path: Path) -> None:
    """pip before 21.2 has no `pip index`: the list was "not listed (pip index versions
    bisectpkg failed: ERROR: unknown command "index")", and the way out, "make the
    sources readable", pointed at the sources rather than at the interpreter's pip."""
    import stat
    import sys

    from repromatrix.pypi_index import index_versions

    pip = tmp_path / "python"  # pip 21.1's answer, word for word
    pip.write_text(
        f"#!{sys.executable}\nimport sys\n"
        "sys.stderr.write('ERROR: unknown command \"index\"\\n')\nsys.exit(1)\n"
    )
    pip.chmod(pip.stat().st_mode | stat.S_IXUSR)
    listing = index_versions(str(pip), "bisectpkg", [])
    assert not listing.complete
    assert listing.problems == (
        'pip index versions bisectpkg failed: ERROR: unknown command "index" (the pip of '
        f"{pip} is older than 21.2: upgrade it, pip install -U pip)",
    )


def test_a_range_from_a_pip_without_pip_index_says_to_upgrade_it(matrix: Matrix) -> None:
    """After the "older than 21.2: upgrade it" reason, the range's last line still said
    "make the sources readable", though the sources were readable and pip was not able to."""
    setup = make_setup(
        BisectRequest(repro="legacy", library="packaging", good="20.0", bad="23.2"), matrix
    )
    old_pip = (
        'pip index versions packaging failed: ERROR: unknown command "index" (the pip of '
        "/usr/bin/python3 is older than 21.2: upgrade it, pip install -U pip)"
    )
    upgrade = "upgrade the interpreter's pip to 21.2 or later (pip install -U pip)"
    for problem, way in ((old_pip, upgrade),
                         ("index: Connection refused", "make the sources readable")):  # fmt: skip
        listing = Listing(versions=frozenset(), sources=(), problems=(problem,))
        axis = release_candidates(matrix.libraries["packaging"], "20.0", "23.2", listing)
        outcome, _ = run(
            Bisector(axis.dag), lambda ps: [Verdict.NEW if p else Verdict.OLD for p in ps]
        )
        report = BisectReport(setup=setup, axis=axis, evaluated={}, outcome=outcome)
        assert report.only_a_range
        assert f"were not listed; {way} (or declare" in report.range_problem()
        assert problem in report.headline()[0]


def test_the_start_line_says_the_sources_offer_no_such_project(matrix: Matrix) -> None:
    """With an index that has no such project the start line said "3 releases (from
    index)": the releases were matrix.yaml's, and the index offered none."""
    from repromatrix.bisect_session import Start
    from repromatrix.report.bisect_progress import start_line

    setup = make_setup(
        BisectRequest(repro="legacy", library="packaging", good="20.0", bad="23.2"), matrix
    )
    empty = Listing(
        versions=frozenset(), sources=("index",), problems=("index offers no release of packaging",)
    )
    axis = release_candidates(matrix.libraries["packaging"], "20.0", "23.2", empty)
    assert "3 releases (from matrix.yaml only: index offers no release of packaging)," in (
        start_line(Start(setup=setup, axis=axis, k=1))
    )
    listed = Listing(versions=frozenset(map(Version, ["20.0", "22.0", "23.2"])), sources=("index",))
    axis = release_candidates(matrix.libraries["packaging"], "20.0", "23.2", listed)
    assert "3 releases (from index)," in start_line(Start(setup=setup, axis=axis, k=1))


def test_pip_index_output_is_parsed() -> None:
    out = "packaging (23.2)\nAvailable versions: 23.2, 23.1, 22.0, 21.3, not-a-version\n"
    assert parse_pip_index(out) == {Version(v) for v in ("23.2", "23.1", "22.0", "21.3")}
    assert parse_pip_index("WARNING: something\n") is None


def test_undeclared_releases_between_the_ends_are_candidates(matrix: Matrix, wheels: Path) -> None:
    listing = Listing(versions=frozenset(folder_versions(wheels, "packaging")), sources=("f",))
    axis = release_candidates(matrix.libraries["packaging"], "20.0", "23.2", listing)
    labels = [c.label for c in axis.candidates]
    assert labels == ["20.0", "20.9", "21.0", "21.3", "22.0", "23.0", "23.2"]
    assert axis.complete
    assert not axis.commits
    assert axis.dag.is_chain
    declared = {c.label: c.revision for c in axis.candidates if c.revision is not None}
    assert declared["22.0"] is not None
    assert declared["22.0"].note == "LegacyVersion removed"
    # An undeclared release still gets a pin, hence a cell, of its own.
    request = BisectRequest(repro="legacy", library="packaging", good="20.0", bad="23.2")
    setup = make_setup(request, matrix)
    pin = setup.pin(axis.candidates[2])
    assert (pin.kind, pin.rev, pin.source) == (SourceKind.PYPI, "21.0", "packaging")
    # A pre-release end lets the pre-releases between in.
    pre = release_candidates(matrix.libraries["packaging"], "21.3", "22.0rc1", listing)
    assert [c.label for c in pre.candidates] == ["21.3", "22.0rc1"]
    with pytest.raises(BisectError, match="not offered by f"):
        release_candidates(matrix.libraries["packaging"], "20.0", "25.0", listing)


def test_dev_releases_are_pre_releases_and_post_releases_and_epochs_are_releases(
    matrix: Matrix,
) -> None:
    """What README says counts: a development release (`.dev`, of a release or of a
    post-release) is a pre-release, as PEP 440 and pip count it; a post-release is a
    release like any; the epoch is compared first (`1!0.5` after `23.2`)."""
    offered = ["20.0", "20.0.post1", "20.1.dev3", "20.1rc1.post1", "20.1.post1.dev0", "20.1"]
    offered += ["22.0", "23.2", "1!0.5"]
    listing = Listing(versions=frozenset(map(Version, offered)), sources=("f",))
    axis = release_candidates(matrix.libraries["packaging"], "20.0", "23.2", listing)
    assert [c.label for c in axis.candidates] == ["20.0", "20.0.post1", "20.1", "22.0", "23.2"]
    assert [str(v) for v in axis.prereleases] == ["20.1.dev3", "20.1rc1.post1", "20.1.post1.dev0"]
    pre = release_candidates(matrix.libraries["packaging"], "20.0", "23.2", listing, pre=True)
    assert len(pre.candidates) == 8
    epoch = release_candidates(matrix.libraries["packaging"], "23.2", "1!0.5", listing)
    assert [c.label for c in epoch.candidates] == ["23.2", "1!0.5"]


def test_a_boundary_between_listed_releases_is_a_range_when_the_list_may_miss_some(
    matrix: Matrix,
) -> None:
    setup = make_setup(
        BisectRequest(repro="legacy", library="packaging", good="20.0", bad="23.2"), matrix
    )
    offline = Listing(versions=frozenset(), sources=(), problems=("pip index versions failed",))
    for listing, complete in ((offline, False), (None, False)):
        axis = release_candidates(matrix.libraries["packaging"], "20.0", "23.2", listing)
        assert axis.complete is complete
        assert [c.label for c in axis.candidates] == ["20.0", "22.0", "23.2"]
        outcome, _ = run(
            Bisector(axis.dag), lambda ps: [Verdict.NEW if p else Verdict.OLD for p in ps]
        )
        report = BisectReport(setup=setup, axis=axis, evaluated={}, outcome=outcome)
        line = report.headline()[0]
        # No script that reads "first bad release: " may take a range for an answer.
        assert "first bad release:" not in line
        assert "between 20.0 (good) and 22.0 (bad), 22.0 included" in line
        assert report.only_a_range
        assert report.range_problem().startswith("no single first bad release")
        why = "pip index versions failed" if listing else "no --find-links folder or index"
        assert why in line
    listed = Listing(versions=frozenset(map(Version, ["20.0", "22.0", "23.2"])), sources=("index",))
    axis = release_candidates(matrix.libraries["packaging"], "20.0", "23.2", listed)
    outcome, _ = run(Bisector(axis.dag), lambda ps: [Verdict.NEW if p else Verdict.OLD for p in ps])
    report = BisectReport(setup=setup, axis=axis, evaluated={}, outcome=outcome)
    assert report.headline() == ["first bad release: packaging 22.0"]
    assert not report.only_a_range


def test_releases_that_could_not_be_evaluated_are_not_all_when_the_list_may_miss_some(
    matrix: Matrix,
) -> None:
    """With the index unread, 22.0 failing to install and 23.2 bad, the answer read "first
    bad release is one of 2 (the others could not be evaluated)": 22.0 or 23.2, where
    unlisted releases between 20.0 and 23.2 may hold the change; nothing said the index
    was never read (the unread source was named only for a single boundary)."""
    setup = make_setup(
        BisectRequest(repro="legacy", library="packaging", good="20.0", bad="23.2"), matrix
    )
    offline = Listing(versions=frozenset(), sources=(), problems=("index: Connection refused",))
    axis = release_candidates(matrix.libraries["packaging"], "20.0", "23.2", offline)
    assert [c.label for c in axis.candidates] == ["20.0", "22.0", "23.2"]
    verdicts = {0: Verdict.OLD, 1: Verdict.SKIP, 2: Verdict.NEW}
    outcome, _ = run(Bisector(axis.dag), lambda ps: [verdicts[p] for p in ps])
    report = BisectReport(setup=setup, axis=axis, evaluated={}, outcome=outcome)
    text = "\n".join(report.headline())
    assert "one of 2" in text
    assert "between 20.0 (good) and 23.2 (bad) may exist but were not listed" in text
    assert "index: Connection refused" in text
    assert "may exist but were not listed" in report.ambiguity()
    # Every source read: the two are all there is, and nothing more is said.
    listed = Listing(versions=frozenset(map(Version, ["20.0", "22.0", "23.2"])), sources=("index",))
    axis = release_candidates(matrix.libraries["packaging"], "20.0", "23.2", listed)
    outcome, _ = run(Bisector(axis.dag), lambda ps: [verdicts[p] for p in ps])
    report = BisectReport(setup=setup, axis=axis, evaluated={}, outcome=outcome)
    assert "not listed" not in "\n".join(report.headline()) + report.ambiguity()


def test_wheels_the_interpreter_cannot_install_are_no_release_of_a_folder(tmp_path: Path) -> None:
    import sys

    from repromatrix.release_files import interpreter_tags

    for name in (
        "pkg-6.1-py3-none-any.whl",
        "pkg-6.2-cp311-cp311-win_amd64.whl",  # another platform
        "pkg-6.3-py2-none-any.whl",  # another Python
        "pkg-6.4.tar.gz",  # an sdist: pip may build it
    ):
        (tmp_path / name).write_bytes(b"")
    supported = interpreter_tags(sys.executable)
    assert supported is not None
    assert folder_versions(tmp_path, "pkg", supported) == {Version("6.1"), Version("6.4")}
    assert len(folder_versions(tmp_path, "pkg")) == 4  # without the interpreter's word
    assert interpreter_tags("/nonexistent/python") is None


def _wheel(folder: Path, version: str, requires_python: str | None) -> None:
    import zipfile

    meta = f"Metadata-Version: 2.1\nName: pkg\nVersion: {version}\n"
    if requires_python is not None:
        meta += f"Requires-Python: {requires_python}\n"
    with zipfile.ZipFile(folder / f"pkg-{version}-py3-none-any.whl", "w") as z:
        z.writestr("pkg/__init__.py", "")
        z.writestr(f"pkg-{version}.dist-info/METADATA", meta + "\nA description: >=99\n")


def test_wheels_whose_requires_python_excludes_the_interpreter_are_no_release(
    tmp_path: Path,
) -> None:
    """A py3-none-any wheel with `Requires-Python: >=3.99` was a candidate: pip takes it
    from a folder, the install fails, and the bisection skipped it as an error (a range
    for an answer) where it is a release for another Python, named as such."""
    import sys

    from repromatrix.release_files import Target, folder_listing, interpreter_target

    _wheel(tmp_path, "1.0", None)
    _wheel(tmp_path, "1.1", ">=3.99")
    _wheel(tmp_path, "1.2", f">={sys.version_info.major}.{sys.version_info.minor}")
    _wheel(tmp_path, "1.3", "not a specifier")  # left to pip, as before
    (tmp_path / "pkg-1.4-py3-none-any.whl").write_bytes(b"not a zip")
    target = interpreter_target(sys.executable)
    assert target is not None
    assert target.python.major == sys.version_info.major
    offered, other, _ = folder_listing(tmp_path, "pkg", target)
    assert sorted(map(str, offered)) == ["1.0", "1.2", "1.3", "1.4"]
    assert other == {Version("1.1")}
    old = Target(tags=target.tags, python=Version("3.8"))  # an older interpreter
    offered, other, _ = folder_listing(tmp_path, "pkg", old)
    assert sorted(map(str, other)) == ["1.1", "1.2"]


def test_an_interpreter_built_from_a_branch_still_has_its_tags(tmp_path: Path) -> None:
    """CPython built from a git branch says `platform.python_version()` '3.11.7+', no PEP
    440 version: the interpreter's tags were dropped with it, so a folder's Windows and
    cp39 wheels were candidates here (each install an error, a skip) and Requires-Python
    was not read. pip judges by `sys.version_info`, and so does the listing."""
    import stat
    import sys

    from repromatrix.release_files import interpreter_target

    branch = tmp_path / "python3"
    branch.write_text(
        "#!/bin/sh\n"
        f'exec {sys.executable} -c "import platform, sys; '
        'platform.python_version = lambda: \'3.11.7+\'; exec(sys.argv[1])" "$2"\n'
    )
    branch.chmod(branch.stat().st_mode | stat.S_IXUSR)
    target = interpreter_target(str(branch))
    assert target is not None
    assert target.python == Version(".".join(map(str, sys.version_info[:3])))
    _wheel(tmp_path, "1.0", None)
    (tmp_path / "pkg-1.1-cp39-cp39-win_amd64.whl").write_bytes(b"")
    assert folder_versions(tmp_path, "pkg", target.tags) == {Version("1.0")}


def _sdist(folder: Path, version: str, requires_python: str | None, *, zip_: bool = False) -> None:
    import io
    import tarfile
    import zipfile

    meta = f"Metadata-Version: 2.1\nName: pkg\nVersion: {version}\n"
    if requires_python is not None:
        meta += f"Requires-Python: {requires_python}\n"
    # PKG-INFO last, as hatchling writes it; a nested one (a vendored project) is not it.
    files = {f"pkg-{version}/vendored/PKG-INFO": "Requires-Python: >=3.99\n"}
    files[f"pkg-{version}/PKG-INFO"] = meta + "\nA description: >=99\n"
    if zip_:
        with zipfile.ZipFile(folder / f"pkg-{version}.zip", "w") as z:
            for name, text in files.items():
                z.writestr(name, text)
        return
    with tarfile.open(folder / f"pkg-{version}.tar.gz", "w:gz") as t:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))


def test_sdists_whose_requires_python_excludes_the_interpreter_are_no_release(
    tmp_path: Path,
) -> None:
    """An sdist with `Requires-Python: >=3.99` was a candidate, where a wheel saying the
    same is a release for another Python: pip builds it, refuses it ("requires a different
    Python"), and the bisection answered "one of 2 (the others could not be evaluated)",
    exit 6, telling the user to make it testable."""
    import sys

    from repromatrix.release_files import Target, folder_listing, interpreter_target

    _sdist(tmp_path, "1.0", None)
    _sdist(tmp_path, "1.1", ">=3.99")
    _sdist(tmp_path, "1.2", ">=3.99", zip_=True)
    _sdist(tmp_path, "1.3", f">={sys.version_info.major}.{sys.version_info.minor}")
    _sdist(tmp_path, "1.4", "not a specifier")  # left to pip, as before
    (tmp_path / "pkg-1.5.tar.gz").write_bytes(b"not a tar")
    target = interpreter_target(sys.executable)
    assert target is not None
    offered, other, _ = folder_listing(tmp_path, "pkg", target)
    assert sorted(map(str, offered)) == ["1.0", "1.3", "1.4", "1.5"]
    assert sorted(map(str, other)) == ["1.1", "1.2"]
    old = Target(tags=target.tags, python=Version("3.8"))
    assert sorted(map(str, folder_listing(tmp_path, "pkg", old)[1])) == ["1.1", "1.2", "1.3"]


def test_a_release_whose_wheel_excludes_the_interpreter_is_none_though_its_sdist_would_not(
    tmp_path: Path,
) -> None:
    """`pkg-1.2-py3-none-any.whl` (Requires-Python >=3.99) beside `pkg-1.2.tar.gz` (none):
    the sdist made 1.2 a candidate, but pip takes the wheel of a release over its sdist
    ("requires a different Python", the sdist never tried), so 1.2 ran as an error and the
    answer was "one of" where 1.2 is a release for another Python. Of several wheels pip
    takes the one whose tag it ranks first: a fitting platform wheel beside that
    py3-none-any one installs."""
    import shutil
    import sys

    from repromatrix.release_files import folder_listing, interpreter_target

    _wheel(tmp_path, "1.1", None)
    _sdist(tmp_path, "1.1", ">=3.99")  # the wheel installs: the sdist is never taken
    _wheel(tmp_path, "1.2", ">=3.99")
    _sdist(tmp_path, "1.2", None)
    target = interpreter_target(sys.executable)
    assert target is not None
    assert folder_listing(tmp_path, "pkg", target)[:2] == ({Version("1.1")}, {Version("1.2")})
    _wheel(tmp_path, "1.3", ">=3.99")
    _wheel(tmp_path, "1.3.9", None)
    best = tmp_path / f"pkg-1.3-{target.order[0]}.whl"
    shutil.move(tmp_path / "pkg-1.3.9-py3-none-any.whl", best)
    offered, other, _ = folder_listing(tmp_path, "pkg", target)
    assert sorted(map(str, offered)) == ["1.1", "1.3"]
    assert other == {Version("1.2")}


def _damaged(path: Path, member: str, method: int) -> None:
    """A zip at `path` whose directory is whole but whose `member` cannot be read back: its
    compressed bytes flipped (`method` ZIP_DEFLATED, ZIP_BZIP2 or ZIP_LZMA), or, for
    ZIP_STORED, a compression method no zip reader knows (99) written in its headers."""
    import struct
    import zipfile

    text = "Metadata-Version: 2.1\nName: pkg\nRequires-Python: >=3.99\n" + "x" * 4000
    with zipfile.ZipFile(path, "w", method) as z:
        z.writestr(member, text)
    data = bytearray(path.read_bytes())
    name, extra = struct.unpack("<HH", data[26:30])
    if method == zipfile.ZIP_STORED:
        data[8:10] = struct.pack("<H", 99)  # the local header's method
        central = data.index(b"PK\x01\x02")
        data[central + 10 : central + 12] = struct.pack("<H", 99)
    else:
        start = 30 + name + extra
        for i in range(start + 4, start + 40):
            data[i] ^= 0x5A
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("method", [0, 8, 12, 14])
def test_a_damaged_wheel_or_zip_sdist_in_a_folder_is_left_to_pip(
    tmp_path: Path, method: int
) -> None:
    """A wheel (or a .zip sdist) whose zip directory is whole but whose METADATA is not
    (a download cut or overwritten in place) ended the bisection before anything ran:
    "internal error: error: Error -3 while decompressing data" (zlib's error, and
    NotImplementedError or LZMAError for the other methods), exit 70. It is left to pip,
    as a file that is no zip at all is: the install fails, and the release is skipped."""
    import sys

    from repromatrix.release_files import folder_listing, interpreter_target

    _wheel(tmp_path, "1.0", None)
    _damaged(tmp_path / "pkg-1.1-py3-none-any.whl", "pkg-1.1.dist-info/METADATA", method)
    _damaged(tmp_path / "pkg-1.2.zip", "pkg-1.2/PKG-INFO", method)
    target = interpreter_target(sys.executable)
    assert target is not None
    offered, other, _ = folder_listing(tmp_path, "pkg", target)
    assert sorted(map(str, offered)) == ["1.0", "1.1", "1.2"]
    assert other == set()


def test_a_cut_or_extra_headed_gzip_sdist_in_a_folder_is_read_or_left_to_pip(
    tmp_path: Path,
) -> None:
    """A .tar.gz cut after its first three bytes (a download stopped there) raised
    TypeError inside tarfile's stream mode ("ord() expected a character"), an internal
    error (exit 70) before anything ran; one whose gzip header has an extra field (BGZF,
    as bgzip writes) was "invalid compressed data" there, so its Requires-Python went
    unread and a release for another Python was a candidate. gzip itself reads both."""
    import io
    import struct
    import sys
    import tarfile
    import zlib

    from repromatrix.release_files import folder_listing, interpreter_target

    (tmp_path / "pkg-1.0.tar.gz").write_bytes(b"\x1f\x8b\x08")  # cut: left to pip
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as t:
        meta = b"Metadata-Version: 2.1\nName: pkg\nVersion: 1.1\nRequires-Python: >=3.99\n"
        info = tarfile.TarInfo("pkg-1.1/PKG-INFO")
        info.size = len(meta)
        t.addfile(info, io.BytesIO(meta))
    raw = tar.getvalue()
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    extra = b"BC\x02\x00\x00\x00"
    header = b"\x1f\x8b\x08\x04" + bytes(4) + b"\x00\xff" + struct.pack("<H", len(extra)) + extra
    trailer = struct.pack("<II", zlib.crc32(raw), len(raw))
    body = deflate.compress(raw) + deflate.flush()
    (tmp_path / "pkg-1.1.tar.gz").write_bytes(header + body + trailer)
    target = interpreter_target(sys.executable)
    assert target is not None
    offered, other, _ = folder_listing(tmp_path, "pkg", target)
    assert offered == {Version("1.0")}
    assert other == {Version("1.1")}


def test_an_sdist_whose_version_holds_a_dash_is_left_to_pip(tmp_path: Path) -> None:
    """`pkg-1.1-1.tar.gz` is 1.1.post1 to pip 23 and no release of pkg to packaging's
    parser: pip is asked (`pip_reads_more`); an sdist packaging reads, or one of another
    project whose name starts with pkg's, asks nothing more."""
    from repromatrix.release_files import pip_reads_more

    for name in ("pkg-1.0.tar.gz", "pkg-tools-1.0.tar.gz", "pkg_tools-1.0.zip", "pkg-1.0.zip"):
        (tmp_path / name).write_bytes(b"")
    assert not pip_reads_more(tmp_path, "pkg")
    (tmp_path / "pkg-1.1-1.tar.gz").write_bytes(b"")
    assert pip_reads_more(tmp_path, "pkg")
    assert not pip_reads_more(tmp_path, "pkg-tools")


def test_pre_releases_left_out_between_the_answer_are_named(matrix: Matrix, wheels: Path) -> None:
    """22.0rc1 (bad too, say) was never run; 'first bad release: 22.0' must not hide it."""
    listing = Listing(versions=frozenset(folder_versions(wheels, "packaging")), sources=("f",))
    axis = release_candidates(matrix.libraries["packaging"], "20.0", "23.2", listing)
    assert axis.prereleases == (Version("22.0rc1"),)
    first_bad = [c.label for c in axis.candidates].index("22.0")
    outcome, _ = run(
        Bisector(axis.dag), lambda ps: [Verdict.NEW if p >= first_bad else Verdict.OLD for p in ps]
    )
    setup = make_setup(
        BisectRequest(repro="legacy", library="packaging", good="20.0", bad="23.2"), matrix
    )
    report = BisectReport(setup=setup, axis=axis, evaluated={}, outcome=outcome)
    assert report.headline() == ["first bad release: packaging 22.0"]
    (note,) = [n for n in report.notes() if "pre-release" in n]
    assert "were not run (22.0rc1)" in note


def test_releases_offered_only_for_other_platforms_are_named_between_the_answer(
    matrix: Matrix, tmp_path: Path
) -> None:
    """21.0 and 21.3 exist only as Windows / Python 3.9 wheels: no candidate here, but
    "first bad release: 22.0" must not hide that the change may have come in one."""
    import sys

    for name in (
        "packaging-20.0-py3-none-any.whl",
        "packaging-21.0-py3-none-win_amd64.whl",
        "packaging-21.3-cp39-cp39-manylinux1_x86_64.whl",
        "packaging-22.0-py3-none-any.whl",
        "packaging-23.2-py3-none-any.whl",
    ):
        (tmp_path / name).write_bytes(b"")
    listing = list_releases(
        "packaging", Sources(find_links=(tmp_path,), no_index=True), python=sys.executable,
        env={},
    )  # fmt: skip
    assert listing.elsewhere == {Version("21.0"), Version("21.3")}
    axis = release_candidates(matrix.libraries["packaging"], "20.0", "23.2", listing)
    assert [c.label for c in axis.candidates] == ["20.0", "22.0", "23.2"]
    outcome, _ = run(Bisector(axis.dag), lambda ps: [Verdict.NEW if p else Verdict.OLD for p in ps])
    setup = make_setup(
        BisectRequest(repro="legacy", library="packaging", good="20.0", bad="23.2"), matrix
    )
    report = BisectReport(setup=setup, axis=axis, evaluated={}, outcome=outcome)
    (note,) = report.notes()
    assert "release(s) between 20.0 (good) and 22.0 (bad) were not run (21.0, 21.3)" in note
    with pytest.raises(BisectError, match="only as files this interpreter cannot install"):
        release_candidates(matrix.libraries["packaging"], "21.0", "23.2", listing)


def test_an_end_offered_only_as_a_local_build_is_that_release(matrix: Matrix) -> None:
    """`pip install packaging==23.1` installs `23.1+cu1`: refused as "not offered"; given
    as `23.1+cu1` it was two candidates (23.1 and 23.1+cu1) for one install."""
    listing = Listing(
        versions=frozenset(Version(v) for v in ("20.0", "21.0+cu1", "22.0", "23.1+cu1")),
        sources=("folder f",),
    )
    lib = matrix.libraries["packaging"]
    plain = release_candidates(lib, "20.0", "23.1", listing)
    assert [c.label for c in plain.candidates] == ["20.0", "21.0", "22.0", "23.1"]
    local = release_candidates(lib, "20.0", "23.1+cu1", listing)
    assert [c.label for c in local.candidates] == ["20.0", "21.0", "22.0", "23.1+cu1"]


def test_an_end_given_as_a_local_build_keeps_the_other_builds_of_its_release(
    matrix: Matrix,
) -> None:
    """1.2+cu121 lies between 1.2+cu118 and 2.0 (PEP 440) and installs another build: it
    was dropped, and "first bad release: 1.3" hid that it was bad already."""
    listing = Listing(
        versions=frozenset(
            Version(v) for v in ("1.0", "1.1", "1.2+cu118", "1.2+cu121", "1.3", "2.0")
        ),
        sources=("folder f",),
    )
    lib = matrix.libraries["packaging"]
    axis = release_candidates(lib, "1.2+cu118", "2.0", listing)
    assert [c.label for c in axis.candidates] == ["1.2+cu118", "1.2+cu121", "1.3", "2.0"]
    down = release_candidates(lib, "1.0", "1.2+cu121", listing)
    assert [c.label for c in down.candidates] == ["1.0", "1.1", "1.2+cu118", "1.2+cu121"]
    # The bare release, offered as such, is another install (`===1.2`): a candidate too.
    both = Listing(versions=listing.versions | {Version("1.2")}, sources=("folder f",))
    axis = release_candidates(lib, "1.0", "1.2+cu121", both)
    assert [c.label for c in axis.candidates] == ["1.0", "1.1", "1.2", "1.2+cu118", "1.2+cu121"]
    # A build spelled `1.2.0+cu118` is a build of 1.2 as much: it was taken for a release
    # of its own offered as one build, run as `1.2.0`, which sorts before the end 1.2+cpu,
    # and it was no candidate at all.
    spelled = Listing(
        versions=frozenset(Version(v) for v in ("1.0", "1.2+cpu", "1.2.0+cu118", "1.2+cu121")),
        sources=("folder f",),
    )
    axis = release_candidates(lib, "1.2+cpu", "1.2+cu121", spelled)
    assert [c.label for c in axis.candidates] == ["1.2+cpu", "1.2.0+cu118", "1.2+cu121"]


def test_auto_takes_releases_for_ends_declared_in_another_spelling(tmp_path: Path) -> None:
    """`--good 1.0.0 --bad 2` with 1.0 and 2.0 declared went to git ("cannot clone";
    "auto takes them only when matrix.yaml declares both"), though it declares both."""
    from repromatrix.bisect_plan import source_of

    (tmp_path / "repros").mkdir()
    (tmp_path / "repros" / "r.py").write_text("print('hi')\n")
    (tmp_path / "matrix.yaml").write_text(
        MATRIX.replace("pypi: packaging\n", "pypi: packaging\n    git: https://example.org/p\n")
    )
    matrix = load_matrix(tmp_path / "matrix.yaml")

    def source(good: str, bad: str) -> str:
        request = BisectRequest(repro="legacy", library="packaging", good=good, bad=bad)
        return source_of(request, make_setup(request, matrix))

    assert source("20.0", "23.2") == "pypi"
    assert source("20.0.0", "23.2") == "pypi"
    assert source("0!20.0", "23.2.0") == "pypi"
    assert source("20.0", "23.1") == "git"  # not declared: a git name, as before
    assert source("v20.0", "v23.2") == "git"  # tags
    assert source("abc1234", "23.2") == "git"


def test_a_range_of_releases_marks_no_row_the_first_bad(matrix: Matrix) -> None:
    """The index unread, the answer was "first bad release not known: it is between 20.0
    (good) and 22.0 (bad)", while the table below marked 22.0 "◀ first bad" (bold in
    Markdown): the one claim the answer had just refused to make."""
    from repromatrix.bisect_evidence import Evaluated, Run
    from repromatrix.model import Status
    from repromatrix.records import Result

    setup = make_setup(
        BisectRequest(repro="legacy", library="packaging", good="20.0", bad="23.2"), matrix
    )
    offline = Listing(versions=frozenset(), sources=(), problems=("index: Connection refused",))
    listed = Listing(versions=frozenset(map(Version, ["20.0", "22.0", "23.2"])), sources=("index",))
    marks = {}
    said = {0: Verdict.OLD, 1: Verdict.NEW, 2: Verdict.NEW}
    for listing in (offline, listed):
        axis = release_candidates(matrix.libraries["packaging"], "20.0", "23.2", listing)
        outcome, _ = run(Bisector(axis.dag), lambda ps: [said[p] for p in ps])
        evaluated = {}
        for i, c in enumerate(axis.candidates):
            status = Status.PASSED if said[i] is Verdict.OLD else Status.REGRESSED
            result = Result(
                key="k", cell_id="c", repro="legacy", base="host", gpu="cpu", status=status
            )
            run_ = Run(result=result, verdict=said[i], reused=False)
            evaluated[i] = Evaluated(index=i, candidate=c, runs=[run_])
        report = BisectReport(setup=setup, axis=axis, evaluated=evaluated, outcome=outcome)
        marks[listing is listed] = {row[1].split()[0]: row[7] for row in report.rows()}
        assert ("| **22.0" in report.markdown()) is (listing is listed)
    assert marks[True]["22.0"] == "◀ first bad"
    assert marks[False]["22.0"] == "◀ first bad listed"


def test_an_inconclusive_release_bisection_speaks_of_releases(matrix: Matrix) -> None:
    """It said "no commit's runs disagreed" of releases."""
    from repromatrix.bisect import Mode, Outcome, OutcomeKind

    setup = make_setup(
        BisectRequest(repro="legacy", library="packaging", good="20.0", bad="23.2"), matrix
    )
    axis = release_candidates(matrix.libraries["packaging"], "20.0", "23.2", None)
    outcome = Outcome(
        kind=OutcomeKind.INCONCLUSIVE, suspects=(1,), mode=Mode.CALIBRATED, confidence=0.4
    )
    report = BisectReport(setup=setup, axis=axis, evaluated={}, outcome=outcome)
    assert "no release's runs disagreed" in report.problem()
    assert "commit" not in report.problem()


def test_a_folder_given_twice_is_one_source(wheels: Path) -> None:
    """`--find-links w --find-links w` read the folder twice and the header said 'from
    folder w, folder w', as if two sources agreed."""
    listing = list_releases(
        "packaging", Sources(find_links=(wheels, wheels), no_index=True), python="/x", env={}
    )
    assert listing.sources == (f"folder {wheels}",)


def test_a_folder_pips_variable_names_by_a_relative_path_is_the_given_one(
    wheels: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PIP_FIND_LINKS=wheels beside `--find-links wheels` (made absolute when given): one
    folder, read twice, and the header said 'from folder /x/wheels, folder wheels', as
    if two sources agreed."""
    monkeypatch.chdir(wheels.parent)
    listing = list_releases(
        "packaging", Sources(find_links=(wheels,), no_index=True), python="/x",
        env={"PIP_FIND_LINKS": "wheels ./wheels/"},
    )  # fmt: skip
    assert listing.sources == (f"folder {wheels}",)


def test_an_end_offered_only_as_several_local_builds_names_them(matrix: Matrix) -> None:
    """`--good 23.1` where the sources offer only 23.1+cu118 and 23.1+cu121: `===23.1`
    matched nothing, `==23.1` took the highest build, and with `--bad 23.1+cu121` both
    ends ran one build."""
    listing = Listing(
        versions=frozenset(Version(v) for v in ("22.0", "23.1+cu118", "23.1+cu121", "24.0")),
        sources=("folder f",),
    )
    lib = matrix.libraries["packaging"]
    with pytest.raises(BisectError, match=r"only as the builds 23\.1\+cu118, 23\.1\+cu121.*"):
        release_candidates(lib, "23.1", "23.1+cu121", listing)
    with pytest.raises(BisectError, match=r"--bad 23\.1: .*e\.g\. --bad 23\.1\+cu118"):
        release_candidates(lib, "22.0", "23.1", listing)
    one = Listing(versions=frozenset(Version(v) for v in ("22.0", "23.1+cu121")), sources=("f",))
    with pytest.raises(BisectError, match=r"only as the build 23\.1\+cu121, the other end"):
        release_candidates(lib, "23.1", "23.1+cu121", one)
    # A build named, or a release offered as one build alone, is one install.
    axis = release_candidates(lib, "23.1+cu118", "24.0", listing)
    assert [c.label for c in axis.candidates] == ["23.1+cu118", "23.1+cu121", "23.2", "24.0"]
    assert [c.label for c in release_candidates(lib, "22.0", "23.1", one).candidates] == [
        "22.0",
        "23.1",
    ]


def test_an_end_whose_plain_release_is_for_another_platform_is_its_builds_here(
    matrix: Matrix,
) -> None:
    """PyTorch's index: `23.1` as a macOS wheel, `23.1+cpu` and `23.1+cu121` for Linux.
    `--bad 23.1` was refused as "offered only as files this interpreter cannot install;
    pick an end that installs here", where `pip install packaging==23.1` installs
    23.1+cu121: the builds are named to pick from, and one build alone is the end."""
    builds = ("22.0", "23.1+cpu", "23.1+cu121")
    listing = Listing(
        versions=frozenset(Version(v) for v in builds),
        sources=("index",),
        elsewhere=frozenset({Version("23.1")}),
    )
    lib = matrix.libraries["packaging"]
    with pytest.raises(BisectError, match=r"--bad 23\.1: .* only as the builds 23\.1\+cpu, 23"):
        release_candidates(lib, "22.0", "23.1", listing)
    one = Listing(
        versions=frozenset(Version(v) for v in builds[:2]),
        sources=("index",),
        elsewhere=frozenset({Version("23.1")}),
    )
    axis = release_candidates(lib, "22.0", "23.1", one)
    assert [c.label for c in axis.candidates] == ["22.0", "23.1"]
    assert axis.elsewhere == ()
    # Offered here as no build at all, it is still refused as before.
    none = Listing(
        versions=frozenset({Version("22.0")}), sources=("index",), elsewhere=one.elsewhere
    )
    with pytest.raises(BisectError, match=r"only as files this interpreter cannot install"):
        release_candidates(lib, "22.0", "23.1", none)
    # In an image (another Python installs), only the platform bars it: no "interpreter".
    image = replace(none, image=True)
    with pytest.raises(BisectError, match=r"only as wheels no Linux image of this host installs"):
        release_candidates(lib, "22.0", "23.1", image)


def test_a_release_seen_before_is_gone_only_where_the_sources_were_read(matrix: Matrix) -> None:
    """A release an earlier bisection saw (the cache's list) that a complete listing no
    longer offers is `gone` (a range, its note: "offer them no more"). Where a source
    could not be read (an index unreachable), the same release was said to be no longer
    offered, though nothing said so: the list is incomplete, and that is the reason given."""
    lib, seen = matrix.libraries["packaging"], [Version("21.0")]
    offered = frozenset(map(Version, ["20.0", "22.0", "23.2"]))
    listed = Listing(versions=offered, sources=("index",))
    assert release_candidates(lib, "20.0", "23.2", listed, seen=seen).gone == (Version("21.0"),)
    unread = Listing(versions=offered, sources=(), problems=("index: Connection refused",))
    assert release_candidates(lib, "20.0", "23.2", unread, seen=seen).gone == ()


@pytest.mark.parametrize(("pre", "again"), [(False, "again with --pre"), (True, "again")])
def test_a_gone_pre_release_s_note_asks_for_pre_where_the_search_left_them_out(
    matrix: Matrix, pre: bool, again: str
) -> None:
    """A pre-release an earlier `--pre` bisection saw, gone from the folder now: its note
    said "put its wheel back ... and run the same command again", which, without --pre,
    runs no pre-release put back either."""
    lib, seen = matrix.libraries["packaging"], [Version("21.0rc1")]
    listed = Listing(versions=frozenset(map(Version, ["20.0", "22.0", "23.2"])), sources=("index",))
    axis = release_candidates(lib, "20.0", "23.2", listed, pre=pre, seen=seen)
    assert axis.gone == (Version("21.0rc1"),)
    setup = make_setup(
        BisectRequest(repro="legacy", library="packaging", good="20.0", bad="23.2", pre=pre),
        matrix,
    )
    said_by = {0: Verdict.OLD, 1: Verdict.NEW, 2: Verdict.NEW}
    outcome, _ = run(Bisector(axis.dag), lambda ps: [said_by[p] for p in ps])
    notes = BisectReport(setup=setup, axis=axis, evaluated={}, outcome=outcome).notes()
    gone = [n for n in notes if "offer them no more" in n]
    assert len(gone) == 1, notes
    assert "(21.0rc1)" in gone[0]
    assert gone[0].endswith(f"and run the same command {again}"), gone[0]


@pytest.mark.parametrize(
    ("harness", "said"),
    [
        (
            {"pins": {"packaging": {"installed": "22.0+cpu"}}},
            "packaging 22.0 (pip installed 22.0+cpu)",
        ),
        (None, "packaging 22.0"),  # a record whose provenance has no harness: nothing to say
        ("written by hand", "packaging 22.0"),
        ({"pins": ["packaging"]}, "packaging 22.0"),
    ],
)
def test_the_answer_reads_the_installed_build_of_any_stored_provenance(
    matrix: Matrix, harness: object, said: str
) -> None:
    """A stored record whose provenance held `"harness": null` (or text) stopped the
    answer's line with an AttributeError: only a mapping there was read safely."""
    from repromatrix.bisect_evidence import Evaluated, Run
    from repromatrix.model import Status
    from repromatrix.records import Result

    setup = make_setup(
        BisectRequest(repro="legacy", library="packaging", good="20.0", bad="23.2"), matrix
    )
    listed = Listing(versions=frozenset(map(Version, ["20.0", "22.0", "23.2"])), sources=("index",))
    axis = release_candidates(matrix.libraries["packaging"], "20.0", "23.2", listed)
    said_by = {0: Verdict.OLD, 1: Verdict.NEW, 2: Verdict.NEW}
    outcome, _ = run(Bisector(axis.dag), lambda ps: [said_by[p] for p in ps])
    evaluated = {}
    for i, c in enumerate(axis.candidates):
        status = Status.PASSED if said_by[i] is Verdict.OLD else Status.REGRESSED
        result = Result(
            key="k",
            cell_id="c",
            repro="legacy",
            base="host",
            gpu="cpu",
            status=status,
            provenance={"harness": harness},
        )
        evaluated[i] = Evaluated(
            index=i, candidate=c, runs=[Run(result=result, verdict=said_by[i], reused=False)]
        )
    report = BisectReport(setup=setup, axis=axis, evaluated=evaluated, outcome=outcome)
    assert report.headline()[0] == f"first bad release: {said}"


def test_the_way_out_of_a_range_names_several_releases_not_installable_here_as_them(
    matrix: Matrix,
) -> None:
    """Two releases between the boundary's ends installed nowhere here (Windows wheels
    alone): the way out said "bisect it with an interpreter or image it installs on"."""
    setup = make_setup(
        BisectRequest(repro="legacy", library="packaging", good="20.0", bad="23.2"), matrix
    )
    lib = matrix.libraries["packaging"]

    def problem(elsewhere: set[str]) -> str:
        listing = Listing(
            versions=frozenset(map(Version, ["20.0", "23.2"])),
            sources=("index",),
            elsewhere=frozenset(map(Version, elsewhere)),
        )
        axis = release_candidates(lib, "20.0", "23.2", listing)
        outcome, _ = run(
            Bisector(axis.dag), lambda ps: [Verdict.NEW if p else Verdict.OLD for p in ps]
        )
        return BisectReport(setup=setup, axis=axis, evaluated={}, outcome=outcome).range_problem()

    two = problem({"20.1", "21.0"})
    assert "bisect them with an interpreter or image they install on (--python" in two
    assert "add a wheel or sdist of each that installs here" in two
    one = problem({"21.0"})
    assert "bisect it with an interpreter or image it installs on (--python" in one
    assert "add a wheel or sdist of it that installs here" in one
