"""A revision named by its message (`:/text`, git's newest commit whose message matches),
declared in matrix.yaml: its cell runs that commit, and a bisection finds its stored result
as `git rev-parse ':/text'` names it; a search that matches nothing is a one-line error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from history_repo import build, write_matrix

from repromatrix.records import Result
from repromatrix.store import ResultStore

pytestmark = pytest.mark.integration


def cli(root: Path, matrix: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "repromatrix", "--matrix", str(matrix), *args]
    argv += ["--executor=local", "--no-progress", f"--cache={root / 'cache'}"]
    argv += [f"--results={root / 'results'}"]
    return subprocess.run(
        argv,
        cwd=root,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def records(root: Path) -> list[Result]:
    return [r for r in ResultStore(root / "results").load().results if r.status.is_final]


def test_a_matrix_revision_named_by_its_message_is_matched_to_its_stored_result(
    tmp_path: Path,
) -> None:
    """`{git: ":/^m25$"}` was refused by matrix.yaml ("is not a git revision") and, read
    through `resolve_many`, matched no commit (it asked git for `:/^m25$^{commit}`): a
    bisection ran m25 again instead of taking the matrix's result."""
    bug = {"SCALE_BUG_MAIN": True}
    history = build(tmp_path / "upstream", main=40, main_flags=lambda i: bug if i >= 25 else {})
    matrix = write_matrix(tmp_path, history)
    declared = '{git: ":/^m25$", label: m25}, {git: ":/nothing like it", label: nomatch}'
    text = matrix.read_text().replace("{git: bad}]", "{git: bad}, " + declared + "]")
    matrix.write_text(text)
    rev_parse = ["git", "-C", str(history.path), "rev-parse", ":/^m25$"]
    named = subprocess.run(rev_parse, capture_output=True, text=True, check=True).stdout
    assert named.strip() == history.sha("m25")
    run = cli(tmp_path, matrix, "run")
    said = run.stdout + run.stderr
    assert "Traceback" not in said, said
    assert "bisectpkg=m25]" in said, said
    # The search that matches nothing: that cell's error names it, on one line.
    nomatch = next(ln for ln in said.splitlines() if "bisectpkg=nomatch]" in ln)
    assert "git revision ':/nothing like it' of bisectpkg not found" in nomatch, said
    ran = [r for r in records(tmp_path) if r.commits.get("bisectpkg") == history.sha("m25")]
    assert len(ran) == 1, ran
    out = cli(
        tmp_path, matrix, "bisect", "pkg_check", "--library=bisectpkg", "--good=good", "--bad=bad"
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"first bad commit: {history.sha('m25')}" in out.stdout, out.stdout
    assert ", 3 already evaluated," in out.stdout.splitlines()[0], out.stdout
    ran = [r for r in records(tmp_path) if r.commits.get("bisectpkg") == history.sha("m25")]
    assert len(ran) == 1, ran  # the matrix's run, not a second one
    gone = cli(
        tmp_path,
        matrix,
        "bisect",
        "pkg_check",
        "--library=bisectpkg",
        "--good=good",
        "--bad=:/nothing like it",
    )
    assert gone.returncode == 6, gone.stdout + gone.stderr
    assert "Traceback" not in gone.stderr, gone.stderr
    error = [ln for ln in gone.stderr.splitlines() if "error:" in ln]
    assert len(error) == 1, gone.stderr
    assert "--bad :/nothing like it: revision ':/nothing like it'" in error[0], gone.stderr
