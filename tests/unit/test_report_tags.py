"""A tag matrix.yaml pins is one point with the records of its commit (a bisection's, which
pin the commit): the report asks the mirror what the tag names."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from repromatrix.cli import main
from repromatrix.model import Status
from repromatrix.records import Result


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    return subprocess.run(
        ["git", "-C", str(repo), *args], env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def _report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, str], str]:
    """a - b - c - d, tagged good (a) and bad (d), the bug from b; records as a bisection
    of good..bad stores them (each pinned by its commit), no matrix run: (name → short
    commit, summary.md)."""
    work = tmp_path / "work"
    work.mkdir()
    _git(work, "init", "-q", "-b", "main")
    shas: dict[str, str] = {}
    for name in "abcd":
        (work / "f").write_text(name)
        _git(work, "add", "f")
        _git(work, "commit", "-q", "-m", name)
        shas[name] = _git(work, "rev-parse", "HEAD")
    _git(work, "tag", "good", shas["a"])
    _git(work, "tag", "-a", "-m", "annotated", "bad", shas["d"])
    (tmp_path / "cache" / "git").mkdir(parents=True)
    _git(work, "clone", "-q", "--bare", ".", str(tmp_path / "cache" / "git" / "lib.git"))
    (tmp_path / "r.py").write_text("")
    (tmp_path / "matrix.yaml").write_text(
        "schema: 1\n"
        f"libraries:\n  lib: {{git: {work}, import: lib,"
        " versions: [{git: good}, {git: bad}]}\n"
        "repros:\n  r: {script: r.py, gpus: [cpu], libraries: {lib: all}}\n"
    )
    records = []
    for name, sha in shas.items():
        status = Status.PASSED if name == "a" else Status.REGRESSED
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
            )
        )
    store = tmp_path / "results"
    store.mkdir()
    (store / "x.jsonl").write_text("".join(json.dumps(r.record()) + "\n" for r in records))
    argv = ["--matrix", str(tmp_path / "matrix.yaml"), "report", "--results", str(store)]
    argv += ["--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "rep"), "--jobs=1"]
    assert main(argv) == 0, capsys.readouterr().err
    return {n: s[:8] for n, s in shas.items()}, (tmp_path / "rep" / "summary.md").read_text()


def test_a_tag_the_matrix_pins_is_the_point_of_its_commit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The tags' cells had no record of their own: summary.md said "no verdict at bad (no
    result yet)" beside the verdict of bad's very commit, and counted them as two more
    cells without a result."""
    short, summary = _report(tmp_path, capsys)
    assert "no result yet" not in summary, summary
    assert f"begins at {short['b']} (last good good · {short['a']})" in summary, summary
    assert f"still present in the newest tested (bad · {short['d']})" in summary, summary
    assert "4 records from 1 machine, 4 cells" in summary, summary
