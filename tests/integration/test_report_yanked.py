"""A release an index offers only as yanked files (PEP 592), which a bisection skips as
pip does, in the report of that bisection: real wheels, a real simple index page with
`data-yanked`, real pip, the real `repromatrix bisect` and `repromatrix report`."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from bisect_repo import build_wheels
from test_bisect_pypi import _pip_env, _two_ends

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.integration


def _bisected(
    tmp_path: Path, cache: str = "cache"
) -> tuple[Callable[[list[str]], subprocess.CompletedProcess[str]], list[str]]:
    """The bisection of 1.0 (good) to 2.0 (bad), 1.2 (yanked) between 1.1 (good) and 1.3
    (bad), run in `tmp_path` with the --cache `cache` (relative to it); what runs a
    command there as it ran, and that command."""
    files = build_wheels(
        tmp_path / "files", ["1.0", "1.1", "1.2", "1.3", "2.0"], bad={"1.2", "1.3", "2.0"}
    )
    index = tmp_path / "simple" / "bisectpkg" / "index.html"
    index.parent.mkdir(parents=True)
    links = [
        f'<a href="{f.as_uri()}"{" data-yanked=broken" if "-1.2-" in f.name else ""}>{f.name}</a>'
        for f in sorted(files.iterdir())
    ]
    index.write_text("<html><body>\n" + "\n".join(links) + "\n</body></html>\n")
    argv = _two_ends(tmp_path, tmp_path / "no-such-folder", "1.0", "2.0")
    argv = [a for a in argv if a != "--no-index" and not a.startswith("--find-links")]
    argv = [f"--cache={cache}" if a.startswith("--cache=") else a for a in argv]
    env = _pip_env((tmp_path / "simple").as_uri())

    def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, cwd=tmp_path, env=env, capture_output=True, text=True, check=False
        )

    bisect = run(argv)
    assert bisect.returncode == 6, bisect.stderr  # 1.2 may be the first bad: a range
    assert "1.2 (yanked) between 1.1 and 1.3 was not run" in bisect.stderr
    return run, argv


REPORT = [sys.executable, "-m", "repromatrix", "--matrix", "matrix.yaml", "report"]
REPORT += ["--results", "results", "--cache", "cache", "--out", "rep"]


def test_a_yanked_release_the_bisection_skipped_is_said_yanked(page: Page, tmp_path: Path) -> None:
    """1.2 (yanked) lies between 1.1 (good) and 1.3 (bad): the bisection skipped it and
    said so, but the report said "no verdict at 1.2 (not run in this series)", its grid
    row a bare "1.2": as if the search had not reached it. It says the release is yanked
    and that the bisection skipped it, in summary.md, compat.html and index.html's row."""
    run, _ = _bisected(tmp_path)
    done = run(REPORT)
    assert done.returncode == 0, done.stderr
    said = "1.2 (yanked: the bisection skipped it)"
    summary = (tmp_path / "rep" / "summary.md").read_text()
    assert f"begins between 1.1 and 1.3 (last good 1.1, first bad 1.3; no verdict at {said})" in (
        summary
    ), summary
    assert "not run in this series" not in summary
    compat = (tmp_path / "rep" / "compat.html").read_text()
    assert f"no verdict before it at {said})" in compat, compat
    page.goto((tmp_path / "rep" / "index.html").as_uri())
    row = page.locator("table.grid tbody th").filter(has_text="1.2")
    assert row.count() == 1
    assert row.inner_text().split() == ["1.2", "yanked"]
    assert row.get_attribute("title") == "yanked: the bisection skipped it"
    assert said in page.locator("section.repro ul.findings").inner_text()


def test_a_listing_kept_before_yanked_releases_were_said_reads_as_unknown(tmp_path: Path) -> None:
    """The cache's listing of a bisection made before yanked releases were kept (no
    "yanked" in it): the report said "no verdict at 1.2 (not run in this series)", as of a
    release the search had not reached, where the bisection skipped it for being yanked.
    Whether it is yanked is unknown from that listing, and the report says so, until
    `bisect` lists the releases again."""
    run, _ = _bisected(tmp_path)
    listing = tmp_path / "cache" / "releases" / "bisectpkg.json"
    data = json.loads(listing.read_text())
    assert data["yanked"] == ["1.2"], data
    listing.write_text(json.dumps({k: data[k] for k in ("project", "versions", "sources")}))
    done = run(REPORT)
    assert done.returncode == 0, done.stderr
    summary = (tmp_path / "rep" / "summary.md").read_text()
    said = "no verdict at 1.2 (not run in this series; whether yanked unknown)"
    assert said in summary, summary
    page = (tmp_path / "rep" / "index.html").read_text()
    assert '<th title="not run in this series; whether yanked unknown">1.2</th>' in page


def test_a_listing_too_old_to_say_yanked_names_the_bisection_that_lists_it_anew(
    page: Page, tmp_path: Path
) -> None:
    """A listing kept before yanked releases were: 1.2 read "whether yanked unknown", and
    nothing said how to know. One line of standard error (exit status 0 still) and the
    page's notes (summary.md's too) name the bisection to run again, one command: the page
    said "--cache …" where the line named the cache, and both "--good … --bad …". Run as
    named (its ends the oldest and newest releases tested, its --cache, whose name has a
    space, quoted), it lists the releases anew, runs nothing again, and the report then
    knows 1.2 yanked and says nothing of the listing."""
    run, _ = _bisected(tmp_path, cache="the cache")
    listing = tmp_path / "the cache" / "releases" / "bisectpkg.json"
    data = json.loads(listing.read_text())
    listing.write_text(json.dumps({k: data[k] for k in ("project", "versions", "sources")}))
    report = [*REPORT[: REPORT.index("--cache") + 1], "the cache", "--out", "rep"]
    done = run(report)
    assert done.returncode == 0, done.stderr
    command = "repromatrix bisect scale --library pkg --good 1.0 --bad 2.0 --cache 'the cache'"
    said = [line for line in done.stderr.splitlines() if "whether yanked unknown" in line]
    note = (
        "the cache's listing of pkg's releases was kept before yanked releases were: 1.2, "
        'which no cell ran, reads "whether yanked unknown"; run its bisection again from the '
        f"oldest to the newest release it tested, with --cache ({command}): it lists the "
        "releases anew, its stored runs reused"
    )
    assert said == [f"repromatrix: warning: {note}"], done.stderr
    summary = (tmp_path / "rep" / "summary.md").read_text()
    assert f"- {note}\n" in summary, summary
    page.goto((tmp_path / "rep" / "index.html").as_uri())
    assert note in page.locator("li").all_inner_texts()
    records = sum(len(f.read_text().splitlines()) for f in (tmp_path / "results").rglob("*.jsonl"))
    assert records > 0
    again = run([sys.executable, "-m", *shlex.split(command)])  # as the line names it
    assert again.returncode == 6, again.stderr
    assert json.loads(listing.read_text())["yanked"] == ["1.2"]
    assert records == sum(
        len(f.read_text().splitlines()) for f in (tmp_path / "results").rglob("*.jsonl")
    )
    known = run(report)
    assert known.returncode == 0, known.stderr
    assert "whether yanked unknown" not in known.stderr
    summary = (tmp_path / "rep" / "summary.md").read_text()
    assert "1.2 (yanked: the bisection skipped it)" in summary, summary
    assert "whether yanked unknown" not in summary
