"""`--title` is the user's text, shown in every output: a heading of summary.md and
changes.md (PR comments: bounded), the pages' title and header (escaped, whole), the
name of junit.xml's testsuites (well-formed XML)."""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from pathlib import Path

from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.report import write_report


def _rec(label: str, status: Status) -> Result:
    return Result(
        key=f"k{label}", cell_id=f"r[cpu,host,lib={label}]", repro="r", base="host",
        gpu="cpu", pins={"lib": label}, status=status, finished="2026-01-01T00:00:00+00:00",
    )  # fmt: skip


RECORDS = [_rec("1.0", Status.PASSED), _rec("1.1", Status.REGRESSED)]


def test_a_long_title_is_cut_in_the_markdown_headings_and_whole_in_the_pages(
    tmp_path: Path,
) -> None:
    """A title of 100,000 characters (a CI job's text passed as `--title`) made a
    summary.md and a changes.md of over 100,000 characters, which a PR comment (65,536 at
    most) refuses whole; every table of them was capped, the heading was not."""
    title = "nightly " + "x" * 100_000 + " END"
    paths = write_report(
        results=RECORDS, out_dir=tmp_path, title=title, compare=RECORDS[:1], compare_label="old"
    )
    for name, page in (("markdown", "index.html"), ("changes_markdown", "changes.html")):
        text = paths[name].read_text()
        assert len(text) < 65_536, (name, len(text))
        heading = text.splitlines()[0]
        assert heading.startswith("## nightly xxx"), heading[:40]
        assert f"\\[…99,712 characters cut here; {page} has them…\\]" in heading
        assert " END" in heading  # both ends kept
    assert "what changed since old" in paths["changes_markdown"].read_text().splitlines()[0]
    # The pages show it all.
    assert title in paths["html"].read_text()
    # A short title is as written.
    short = write_report(results=RECORDS, out_dir=tmp_path / "short", title="Nightly H100")
    assert short["markdown"].read_text().startswith("## Nightly H100\n")


def test_a_title_of_markup_and_control_characters_is_text_in_every_output(
    tmp_path: Path,
) -> None:
    title = 'A </title><script>x()</script> *b* | c\n`d` [e](f) & "g" \x1b[31m\x07 \u202e{{ h }}'
    paths = write_report(results=RECORDS, out_dir=tmp_path, title=title)
    for name in ("html", "compat"):
        html = paths[name].read_text()
        for raw in ("<script>x()", "</title><script>", "\u202e", "\x07", "\x1b"):
            assert raw not in html, (name, raw)
        assert "&lt;/title&gt;&lt;script&gt;x()&lt;/script&gt; *b* | c" in html
    heading = paths["markdown"].read_text().splitlines()[0]
    assert heading == (
        "## A &lt;/title&gt;&lt;script&gt;x()&lt;/script&gt; \\*b\\* \\| c \\`d\\` \\[e\\](f) "
        '&amp; "g" ? ?{{ h }}'
    )
    suites = ET.parse(paths["junit"]).getroot()  # well-formed: no control character
    assert suites.get("name", "").startswith("A </title><script>x()</script> *b* | c")
    with paths["csv"].open(newline="") as f:
        assert len(list(csv.DictReader(f))) == 2
