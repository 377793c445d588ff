"""A commit date is no place on a library's axis: git keeps the date a commit was made,
not where it stands in the history, and a branch merged later interleaves by date with the
line it joins. Without a mirror to read ancestry from, a report names such commits apart
("order unknown") and draws no begin or end across them; with one, ancestry orders them."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from repromatrix.cli import main
from repromatrix.model import Status
from repromatrix.records import Result


def _git(repo: Path, *args: str, date: str = "") -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    if date:
        env |= {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    return subprocess.run(
        ["git", "-C", str(repo), *args], env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def _history(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """main: a - b - c - m - d, m merging s (a branch made at a, dated after c):
    name → (commit, commit date)."""
    work = tmp_path / "work"
    work.mkdir()
    _git(work, "init", "-q", "-b", "main")
    out: dict[str, tuple[str, str]] = {}

    def commit(name: str, day: int) -> None:
        (work / "f").write_text(name)
        date = f"2026-01-0{day}T00:00:00+00:00"
        _git(work, "add", "f")
        _git(work, "commit", "-q", "-m", name, date=date)
        out[name] = (_git(work, "rev-parse", "HEAD"), date)

    commit("a", 1)
    _git(work, "checkout", "-q", "-b", "side")
    commit("s", 5)
    _git(work, "checkout", "-q", "main")
    commit("b", 2)
    commit("c", 3)
    date = "2026-01-06T00:00:00+00:00"
    _git(work, "merge", "-q", "--no-ff", "-s", "ours", "-m", "m", "side", date=date)
    out["m"] = (_git(work, "rev-parse", "HEAD"), date)
    commit("d", 7)
    (tmp_path / "cache" / "git").mkdir(parents=True)
    _git(work, "clone", "-q", "--bare", ".", str(tmp_path / "cache" / "git" / "lib.git"))
    return out


#: The regression begins at b and is fixed at d, on main; s, on the merged branch, never had it.
VERDICTS = {"a": Status.PASSED, "b": Status.REGRESSED, "c": Status.REGRESSED,
            "s": Status.PASSED, "m": Status.REGRESSED, "d": Status.PASSED}  # fmt: skip


def _report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], *, cache: str
) -> tuple[dict[str, str], str, str, str]:
    """(name → short commit, summary.md, README row, compat.html) of a report of the
    history's records."""
    shas = _history(tmp_path)
    records = []
    for name, status in VERDICTS.items():
        sha, date = shas[name]
        pin = {"kind": "git", "commit": sha, "rev": sha[:10], "committed": date}
        records.append(
            Result(
                key=f"k{name}",
                cell_id=f"r[cpu,host,lib={sha[:10]}]",
                repro="r",
                base="host",
                gpu="cpu",
                pins={"lib": sha[:10]},
                commits={"lib": sha},
                status=status,
                reason=status.value,
                finished="2026-02-01T00:00:00+00:00",
                provenance={"harness": {"pins": {"lib": pin}}},
            )
        )
    store = tmp_path / "results"
    store.mkdir()
    (store / "x.jsonl").write_text("".join(json.dumps(r.record()) + "\n" for r in records))
    readme = tmp_path / "README.md"
    readme.write_text("<!-- reproduced:begin -->\nold\n<!-- reproduced:end -->\n")
    out = tmp_path / "rep"
    argv = ["--matrix", str(tmp_path / "none.yaml"), "report", "--results", str(store)]
    argv += ["--cache", str(tmp_path / cache), "--out", str(out), "--readme", str(readme)]
    assert main(argv) == 0, capsys.readouterr().err
    (row,) = [ln for ln in readme.read_text().splitlines() if ln.startswith("| r |")]
    short = {name: sha[:8] for name, (sha, _) in shas.items()}
    return short, (out / "summary.md").read_text(), row, (out / "compat.html").read_text()


def test_commits_without_a_mirror_are_not_ordered_by_their_dates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """By date, s (made at a, on a branch) came between c and m: every output said the
    regression "ends at s" and "begins again at m", a fix that never was."""
    shas, summary, row, compat = _report(tmp_path, capsys, cache="no-cache")
    for text in (summary, row, compat):
        assert f"ends at {shas['s']}" not in text
        assert f"fixed in {shas['s']}" not in text
        assert f"| {shas['s']}" not in text
        assert "begins at" not in text
    assert "order unknown" in summary
    assert f"{shas['s']} (passed)" in summary
    assert "| at " in row
    assert "(order unknown) | unknown |" in row


def test_commits_with_a_mirror_are_ordered_by_ancestry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shas, summary, row, _ = _report(tmp_path, capsys, cache="cache")
    assert f"begins at {shas['b']} (last good {shas['a']}); ends at {shas['d']}" in summary
    assert f"{shas['s']} (passed)" in summary  # off the first-parent line: said apart
    assert f"| {shas['b']} (last good {shas['a']}) | {shas['d']} |" in row


def test_a_commit_off_the_mirror_s_line_is_not_said_to_lack_a_mirror(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the mirror there, s (on the merged branch) was "order unknown (no mirror in
    --cache to read its ancestry from, …)", sending the user after a clone they had."""
    shas, summary, _, _ = _report(tmp_path, capsys, cache="cache")
    assert (
        "order unknown (not on the first-parent line of the others in the mirror in --cache "
        "(a commit of a merged branch, one no branch or tag holds now (force-pushed away, "
        "deleted), or one the mirror lacks), or next to a release it "
        f"cannot be compared with): {shas['s']} (passed)"
    ) in summary
    assert "no mirror" not in summary
    (tmp_path / "bare").mkdir()
    shas, summary, _, _ = _report(tmp_path / "bare", capsys, cache="no-cache")
    assert "order unknown (no mirror in --cache to read its ancestry from" in summary
