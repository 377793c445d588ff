"""matrix.yaml's order of a library's revisions is the axis' order only where nothing
contradicts it: a list that puts 0.3 before 0.1, or commits newest first by their dates,
is no statement of history, and without a mirror to read ancestry from its points have no
known order (said so, and why), never begin/end claims read the wrong way round."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repromatrix.cli import main
from repromatrix.model import Status
from repromatrix.records import Result

#: Oldest first by date: a passed; b, c regressed (it begins at b, still present at c).
COMMITS = {"a": ("a" * 40, 1, Status.PASSED), "b": ("b" * 40, 2, Status.REGRESSED),
           "c": ("c" * 40, 3, Status.REGRESSED)}  # fmt: skip


def _record(label: str, status: Status, commit: str = "", committed: str = "") -> Result:
    pin = {"kind": "git", "commit": commit, "rev": label, "committed": committed}
    return Result(
        key=f"k{label}",
        cell_id=f"r[cpu,host,lib={label}]",
        repro="r",
        base="host",
        gpu="cpu",
        pins={"lib": label},
        commits={"lib": commit} if commit else {},
        status=status,
        reason=status.value,
        finished="2026-02-01T00:00:00+00:00",
        provenance={"harness": {"pins": {"lib": pin}}} if commit else {},
    )


def _report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], library: str, records: list[Result]
) -> tuple[str, str]:
    """(summary.md's row, the README row) of a report of `records` under `library`."""
    (tmp_path / "r.py").write_text("")
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(
        f"schema: 1\nlibraries:\n  lib:\n{library}"
        "repros:\n  r: {script: r.py, gpus: [cpu], libraries: {lib: all}}\n"
    )
    store = tmp_path / "results"
    store.mkdir()
    (store / "x.jsonl").write_text("".join(json.dumps(r.record()) + "\n" for r in records))
    readme = tmp_path / "README.md"
    readme.write_text("<!-- reproduced:begin -->\nold\n<!-- reproduced:end -->\n")
    out = tmp_path / "rep"
    argv = ["--matrix", str(matrix), "report", "--results", str(store), "--out", str(out)]
    argv += ["--cache", str(tmp_path / "no-cache"), "--readme", str(readme)]
    assert main(argv) == 0, capsys.readouterr().err
    (row,) = [ln for ln in readme.read_text().splitlines() if ln.startswith("| r |")]
    (said,) = [
        ln for ln in (out / "summary.md").read_text().splitlines() if ln.startswith("| r | cpu")
    ]
    return said, row


def test_commits_listed_newest_first_are_not_read_as_oldest_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Listed c, b, a (newest first) with no mirror: every output said "begins at or before
    cccccccc; ends at aaaaaaaa", a fix at the commit before the regression."""
    listed = "".join(f"      - {{git: {COMMITS[n][0][:8]}}}\n" for n in "cba")
    library = f"    git: https://example.invalid/lib\n    import: lib\n    versions:\n{listed}"
    records = [
        _record(sha[:8], status, sha, f"2026-01-0{day}T00:00:00+00:00")
        for sha, day, status in COMMITS.values()
    ]
    said, row = _report(tmp_path, capsys, library, records)
    for text in (said, row):
        assert "ends at aaaaaaaa" not in text, text
        assert "| aaaaaaaa |" not in text, text
        assert "begins" not in text, text
        assert "(first tested)" not in text, text
    assert "order unknown (matrix.yaml lists lib's commits newest first by their dates" in said
    assert "cccccccc (regressed)" in said
    assert "| at bbbbbbbb, cccccccc (order unknown) | unknown |" in row, row


def test_versions_listed_out_of_release_order_are_ordered_by_release(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Listed 0.3, dddddddd, 0.1: "begins at or before 0.3; ends at 0.1 (last bad dddddddd)".
    The releases have an order of their own; the commit, declared between them in a list
    that is not oldest first, has none."""
    library = (
        "    pypi: lib-project\n    git: https://example.invalid/lib\n    import: lib\n"
        "    versions: ['0.3', {git: dddddddd}, '0.1']\n"
    )
    records = [
        _record("0.1", Status.PASSED),
        _record("dddddddd", Status.REGRESSED, "d" * 40),
        _record("0.3", Status.REGRESSED),
    ]
    said, row = _report(tmp_path, capsys, library, records)
    assert "begins at 0.3 (last good 0.1)" in said, said
    assert "ends at 0.1" not in said
    assert "order unknown (matrix.yaml lists lib's 0.3 before 0.1" in said, said
    assert "dddddddd (regressed)" in said
    assert "| 0.3 (last good 0.1; order unknown at dddddddd) |" in row, row


def test_what_does_not_contradict_the_declared_order_leaves_it_standing() -> None:
    """Builds of one release for two CUDAs are no order; one commit dated before the one
    listed ahead of it (a merged branch's) proves no list newest first."""
    from repromatrix.model import SourceKind
    from repromatrix.revision_order import RevInfo, declared_order_doubt

    builds = [RevInfo(label=v, kind=SourceKind.PYPI, declared=i)
              for i, v in enumerate(["2.1.0+cu121", "2.1.0+cu118", "2.2.0"])]  # fmt: skip
    assert declared_order_doubt(builds) == ""
    days = [1, 3, 2, 4]
    commits = [
        RevInfo(label=f"c{i}", kind=SourceKind.GIT, declared=i, committed=f"2026-01-0{d}T00:00")
        for i, d in enumerate(days)
    ]
    assert declared_order_doubt(commits) == ""
    assert declared_order_doubt([*commits[::-1][:2], commits[0]], library="lib") == ""
    backwards = [RevInfo(label=c.label, kind=c.kind, declared=3 - (c.declared or 0),
                         committed=c.committed) for c in commits if c.label != "c1"]  # fmt: skip
    assert declared_order_doubt(backwards, library="lib").startswith(
        "matrix.yaml lists lib's commits newest first by their dates (c3 of 2026-01-04"
    )
