"""`repromatrix bisect` whose standard output is a pipe the reader leaves (`| head -1`):
real git, real pip, the CLI as a real process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from bisect_repo import REGRESSION, build, write_matrix

from repromatrix.records import Result
from repromatrix.store import ResultStore

pytestmark = pytest.mark.integration


def test_a_reader_that_leaves_after_one_line_costs_the_bisection_nothing(tmp_path: Path) -> None:
    """`bisect … | head -1` stopped the bisection at its first round line (a
    BrokenPipeError): exit 0, no answer, no --markdown, most commits never evaluated. The
    lines go nowhere now, and the bisection runs to its end, its --markdown and its exit
    status."""
    repo = build(tmp_path / "upstream")
    matrix = write_matrix(tmp_path, repo)
    md = tmp_path / "answer.md"
    argv = [
        sys.executable, "-m", "repromatrix", "--matrix", str(matrix), "bisect",
        "bisectpkg_scale", "--library=bisectpkg", "--good=v1.0", "--bad=v2.0", "--jobs=2",
        "--executor", "local", "--no-progress", "--cache", str(tmp_path / "cache"),
        "--results", str(tmp_path / "results"), f"--markdown={md}",
    ]  # fmt: skip
    proc = subprocess.Popen(
        argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # the reader leaves, as `head -1` does
    _, err = proc.communicate(timeout=600)
    assert first.startswith("bisect bisectpkg_scale"), first
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert repo.sha(REGRESSION)[:10] in md.read_text()
    stored: list[Result] = list(ResultStore(tmp_path / "results").load().results)
    assert {r.pins["bisectpkg"] for r in stored} >= {repo.sha(REGRESSION)[:10]}
    assert "evaluation(s) in" in err
