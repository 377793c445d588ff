"""A record cut short on a line of its own, in the middle of a results file, is what a
killed run leaves only once a later record closed its line; a stored record damaged since
(a disk, an edit, a copy cut short) looks the same, and was a result. A report that may
lack results must not pass (README, exit 3); a cut last line, a write a run was killed in
or is making now, was never one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from recordfactory import result

from repromatrix.cli import main


def _report(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.chdir(tmp_path)  # no matrix.yaml here: a report of the records alone
    store = tmp_path / "results"
    store.mkdir()
    (store / "x.jsonl").write_text(text)
    out = tmp_path / "rep"
    return main(
        ["report", "--results", str(store), "--out", str(out), "--cache", str(tmp_path / "c")]
    )


def test_cut_lines_mid_file_fail_the_report_and_are_not_all_called_killed_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """5,000 lines `{"schema": 3, "broken": 0` between two records were each "a record cut
    short by a killed run", and the report exited 0 without them."""
    whole = [json.dumps(result(k).record()) + "\n" for k in "ab"]
    cut = '{"schema": 3, "broken": 0\n' * 5000
    assert _report(tmp_path, whole[0] + cut + whole[1], monkeypatch) == 3
    err = capsys.readouterr().err
    assert "by a killed run" not in err
    assert (
        "x.jsonl:2: a record cut short (25 bytes, never a whole record) on a line of its "
        "own: a killed run's, its line closed off by the next record, or a stored record "
        "damaged since, a result then; left out until a `run` or `bisect` with --results"
    ) in err
    assert "5,000 recorded results could not be read (the first: " in err
    summary = (tmp_path / "rep" / "summary.md").read_text()
    assert "… and 4,980 more unreadable record(s) in 1 file(s)" in summary


def test_a_cut_last_line_leaves_the_report_passing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run killed mid-write (or writing now) left it: never a result."""
    whole = json.dumps(result("a").record()) + "\n"
    assert _report(tmp_path, whole + '{"schema": 3, "broken": 0', monkeypatch) == 0
    assert "truncated last record (a run was killed while writing it" in capsys.readouterr().err


def test_notes_past_those_named_are_not_counted_as_unreadable_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """30 records whose `duration_s` is NaN are all kept, each with a note: standard error
    and summary.md named 20 and ended "… and 10 more unreadable record(s)", under a report
    of all 30 records that exited 0."""
    lines = []
    for k in range(30):
        record = result(f"k{k}").record()
        record["duration_s"] = float("nan")
        lines.append(json.dumps(record) + "\n")
    assert _report(tmp_path, "".join(lines), monkeypatch) == 0
    err = capsys.readouterr().err
    assert "report of 30 cells (30 records)" in err
    assert "unreadable" not in err
    said = "… and 10 more note(s) on what was read, no record left out, in 1 file(s)"
    assert f"warning: {said}; the report's index.html lists them all" in err
    summary = (tmp_path / "rep" / "summary.md").read_text()
    assert "unreadable" not in summary
    assert f"- {said}; index.html lists them all" in summary


def test_index_html_names_a_whole_file_problem_without_a_line_zero(tmp_path: Path) -> None:
    """A link to nothing in the results folder costs its file's records (no line of it):
    standard error and summary.md said "results/y.jsonl: a link that leads nowhere",
    index.html "results/y.jsonl:0: …", a line no file has."""
    from repromatrix.report import write_report
    from repromatrix.store import LoadProblem

    problems = [
        LoadProblem(file="results/y.jsonl", line=0, message="a link that leads nowhere"),
        LoadProblem(file="results/x.jsonl", line=3, message="unreadable <record>"),
    ]
    paths = write_report(results=[result("a")], out_dir=tmp_path, load_problems=problems)
    html = paths["html"].read_text()
    assert "<li>results/y.jsonl: a link that leads nowhere</li>" in html
    assert "<li>results/x.jsonl:3: unreadable &lt;record&gt;</li>" in html
    assert "y.jsonl:0" not in html
