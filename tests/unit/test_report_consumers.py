"""What each output's reader makes of hostile text: GitHub of summary.md and the README
table, a CI page of junit.xml, a spreadsheet of results.csv. Each is checked the way its
reader sees it (a CommonMark parser with GFM tables, an XML parser), not by string search."""

from __future__ import annotations

import csv
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

from repromatrix.cli import main
from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.report import reproduced_table_markdown

#: GitHub's user and team mentions (html-pipeline's MentionFilter: `@` after a non-word
#: character, then a letter or digit) and its issue references (`#123`, `GH-123`).
_MENTION = re.compile(r"(?:^|\W)@[a-z0-9]", re.IGNORECASE | re.ASCII)
_ISSUE = re.compile(r"#[0-9]|\bGH-[0-9]", re.IGNORECASE | re.ASCII)


def rec(status: Status, *, key: str, label: str, repro: str = "r", **extra: Any) -> Result:
    return Result(
        key=key,
        cell_id=f"{repro}[cpu,host,lib={label}]",
        repro=repro,
        base="host",
        gpu="cpu",
        pins={"lib": label},
        status=status,
        reason=extra.pop("reason", status.value),
        finished=extra.pop("finished", "2026-01-01T00:00:00+00:00"),
        **extra,
    )


def report(tmp_path: Path, records: list[Result], *more: str) -> Path:
    """`repromatrix report` of `records`; the report folder."""
    store = tmp_path / "results"
    store.mkdir(parents=True, exist_ok=True)
    (store / "x.jsonl").write_text("".join(json.dumps(r.record()) + "\n" for r in records))
    out = tmp_path / "rep"
    argv = ["--matrix", str(tmp_path / "none.yaml"), "report", "--results", str(store)]
    assert main([*argv, "--out", str(out), *more]) == 0
    return out


def rendered_text(markdown: str) -> list[str]:
    """The text GitHub's mention and reference filters read: the rendered document's text
    nodes (escapes and entities resolved), table cells included."""
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    return [
        child.content
        for token in tokens
        if token.type == "inline"
        for child in token.children or ()
        if child.type == "text"
    ]


def test_summary_md_and_the_readme_table_never_ping_people_or_link_issues(
    tmp_path: Path,
) -> None:
    """A repro, revision or metric named `@octocat` or `#45` pinged that user and linked
    that issue wherever summary.md was pasted (a PR comment, a CI step summary)."""
    metric = "@org/team err"
    records = [
        rec(Status.PASSED, key="a", label="1.0", repro="probe @octocat", metrics={metric: 0.0}),
        rec(
            Status.REGRESSED,
            key="b",
            label="2.0 #45 GH-7",
            repro="probe @octocat",
            metrics={metric: 2.0},
            thresholds={metric: 0.1},
            finished="2026-02-01T00:00:00+00:00",
        ),
    ]
    out = report(tmp_path, records)
    for markdown in (
        (out / "summary.md").read_text(encoding="utf-8"),
        reproduced_table_markdown(records),
    ):
        texts = rendered_text(markdown)
        assert not [t for t in texts if _MENTION.search(t) or _ISSUE.search(t)]
        # Shown as written, but for an invisible space after `@` and `#`.
        shown = " ".join(texts).replace("\u200b", "")
        assert "probe @octocat" in shown
        assert "2.0 #45 GH-7" in shown
        assert "@org/team err" in shown
    # The other outputs name it as it is.
    with (out / "results.csv").open(newline="", encoding="utf-8") as f:
        assert {row["repro"] for row in csv.DictReader(f)} == {"probe @octocat"}
    assert 'name="probe @octocat"' in (out / "junit.xml").read_text(encoding="utf-8")


def _junit_cases(out: Path) -> list[ET.Element]:
    return list(ET.parse(out / "junit.xml").getroot().iter("testcase"))


def test_every_cell_is_a_testcase_of_its_own_name_however_long_or_odd_its_labels(
    tmp_path: Path,
) -> None:
    """Names are cut at 500 characters, in the middle: two cells whose long labels differ
    there (a 500-character revision beside another library's) were one testcase name,
    which CI pages merge into one test; so were names that differ by an invisible
    character shown as "?"."""
    long = "v" * 500

    def cell(key: str, lib: str, **pins: str) -> Result:
        return rec(Status.REGRESSED, key=key, label=lib).model_copy(
            update={"pins": {"lib": lib, **pins}}
        )

    records = [
        cell("a", long + "1", other="o" * 400),
        cell("b", long + "2", other="o" * 400),
        cell("c", "1\u200b"),
        cell("d", "1?"),
        # Two repros whose names read alike: two suites, whose testcases CI pages merge.
        rec(Status.REGRESSED, key="e", label="1.0", repro="q?"),
        rec(Status.REGRESSED, key="f", label="1.0", repro="q\u200b"),
    ]
    cases = _junit_cases(report(tmp_path, records))
    names = [(c.attrib["classname"], c.attrib["name"]) for c in cases]
    assert len(names) == 6
    assert len(set(names)) == 6
    # A name stays the cell's from one report to the next (CI pages follow a test by it).
    again = _junit_cases(report(tmp_path / "again", [records[1], records[0], *records[2:]]))
    assert {c.attrib["name"] for c in again} == {n for _, n in names}


def test_junit_times_are_never_negative_or_absurd(tmp_path: Path) -> None:
    """A record's duration is wall-clock time: a clock stepped back during a cell made it
    negative, one set right by years made it huge, and junit.xml wrote them as they were
    (`time="-5.000"`, a 300-digit time; a suite's time the sum), which CI pages show or
    refuse. NaN cannot be stored, but a record made in code (`write_report`) can hold it."""
    from repromatrix.report import write_report

    durations = [12.5, -5.0, 3.2e9, 1e300]
    records = [
        rec(Status.REGRESSED, key=f"k{i}", label=f"1.{i}", duration_s=d)
        for i, d in enumerate(durations)
    ]
    cases = _junit_cases(report(tmp_path, records))
    times = sorted(float(c.attrib["time"]) for c in cases)
    assert times == [0.0, 0.0, 0.0, 12.5]
    nan = rec(Status.REGRESSED, key="nan", label="2.0").model_copy(
        update={"duration_s": float("nan")}
    )
    paths = write_report(results=[*records, nan], out_dir=tmp_path / "code")
    root = ET.parse(paths["junit"]).getroot()
    for node in (*root.iter("testsuite"), *root.iter("testcase")):
        assert re.fullmatch(r"[0-9]+\.[0-9]{3}", node.attrib["time"]), node.attrib["time"]
    assert [s.attrib["time"] for s in root.iter("testsuite")] == ["12.500"]


def test_a_table_cell_of_summary_md_is_cut_to_a_size_a_pr_comment_holds(tmp_path: Path) -> None:
    """A regression that came and went at every other release of 400 wrote one sentence of
    over 7,000 characters into one cell of summary.md and of the README table: past what
    a reader follows, and a few such rows pass the 65,536 characters a GitHub comment
    holds. A cell is cut in the middle, saying where the rest is; its two ends stay."""
    records = [
        rec(Status.REGRESSED if (i // 2) % 2 else Status.PASSED, key=f"k{i}",
            label=f"1.{i}", metrics={"err": float(i)})
        for i in range(400)
    ]  # fmt: skip
    out = report(tmp_path, records)
    for markdown in (
        (out / "summary.md").read_text(encoding="utf-8"),
        reproduced_table_markdown(records),
    ):
        rows = [ln for ln in markdown.splitlines() if ln.startswith("| r |")]
        assert rows
        cells = [c for row in rows for c in row.split(" | ")]
        assert max(map(len, cells)) <= 2200
        texts = " ".join(rendered_text(markdown))
        assert "characters cut here; index.html has them" in texts
        assert "1.2" in texts  # where it first begins
        assert "1.398" in texts  # and where it is last seen


#: What Jenkins' xunit plugin's junit-10.xsd allows on each element: it validates
#: junit.xml against that schema and rejects the whole file on any other attribute (a
#: testcase has no <properties> there either).
_JUNIT_10_ATTRIBUTES = {
    "testsuites": {"name", "time", "tests", "failures", "errors"},
    "testsuite": {
        "name", "tests", "failures", "errors", "group", "time", "skipped", "timestamp",
        "hostname", "id", "package", "file", "log", "url",
    },
    "testcase": {"name", "time", "classname", "group"},
    "failure": {"type", "message"},
    "error": {"type", "message"},
    "skipped": {"type", "message"},
    "system-out": set(),
    "system-err": set(),
}  # fmt: skip
_JUNIT_10_CHILDREN = {
    "testsuites": {"testsuite"},
    "testsuite": {"testsuite", "properties", "testcase", "system-out", "system-err"},
    "testcase": {"skipped", "error", "failure", "system-out", "system-err"},
}


def test_junit_xml_holds_only_what_jenkins_junit_10_schema_allows(tmp_path: Path) -> None:
    """junit.xml put host, machine, finished, flaky and verdicts on each testcase and
    `skipped` on <testsuites>: Jenkins' xunit plugin, which validates against its
    junit-10.xsd, refused the file. Where and when a cell ran is now its system-out's
    first line; a flaky cell is a failure whose message gives the counts."""
    records = [
        rec(Status.PASSED, key="a", label="1.0", host="gpu-7", machine={"id": "m-1"},
            stdout_tail="the repro said this"),
        rec(Status.REGRESSED, key="b", label="1.1", host="gpu-7", stderr_tail="warn"),
        rec(Status.PASSED, key="b", label="1.1", host="gpu-8",
            finished="2026-01-02T00:00:00+00:00"),
        rec(Status.ERROR, key="c", label="1.2"),
        rec(Status.UNTESTABLE, key="d", label="1.3"),
    ]  # fmt: skip
    root = ET.parse(report(tmp_path, records) / "junit.xml").getroot()
    for node in root.iter():
        assert set(node.attrib) <= _JUNIT_10_ATTRIBUTES[node.tag], (node.tag, node.attrib)
        assert {c.tag for c in node} <= _JUNIT_10_CHILDREN.get(node.tag, set()), node.tag
    for case in root.iter("testcase"):
        assert {"name", "classname", "time"} <= set(case.attrib)
    by_label = {c.attrib["name"].split("lib=")[1].rstrip("]"): c for c in root.iter("testcase")}
    out = by_label["1.0"].findtext("system-out") or ""
    assert out.splitlines() == [
        "[repromatrix] ran on gpu-7 (machine m-1), finished 2026-01-01T00:00:00+00:00",
        "the repro said this",
    ]
    flaky = by_label["1.1"].find("failure")
    assert flaky is not None
    assert flaky.attrib["type"] == "flaky"
    assert "1 passed, 1 regressed" in flaky.attrib["message"]
