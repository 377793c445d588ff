"""A release bisection whose listing was incomplete (an index it could not read), then
`repromatrix report` of its runs: real wheels, a real refusing index, real pip, the CLI."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from bisect_repo import build_wheels
from test_bisect_pypi import _index_answering, _pip_env, _two_ends

pytestmark = pytest.mark.integration


def _run(argv: Sequence[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)


def test_a_boundary_along_an_incomplete_listing_reads_as_the_bisection_said_it(
    tmp_path: Path,
) -> None:
    """The bisection could not read the index beside its folder, so releases between 1.1
    (good) and 1.2 (bad) may exist unlisted: it answered with a range (exit 6). The report
    of the same runs, with the same --cache, said "begins at 1.2 (last good 1.1)"."""
    wheels = build_wheels(tmp_path / "wheels", ["1.0", "1.1", "1.2", "1.3"], bad={"1.2", "1.3"})
    argv = _two_ends(tmp_path, wheels, "1.0", "1.3")
    argv.remove("--no-index")
    with _index_answering(403) as index:
        env = _pip_env(index)
        out = _run(argv, tmp_path, env)
    assert out.returncode == 6, out.stderr
    assert "between 1.1 (good) and 1.2 (bad), 1.2 included" in out.stdout, out.stdout
    report = [sys.executable, "-m", "repromatrix", "--matrix", "matrix.yaml", "report"]
    report += ["--cache", "cache", "--out", "rep"]
    done = _run(report, tmp_path, env)
    assert done.returncode == 0, done.stderr
    summary = (tmp_path / "rep" / "summary.md").read_text()
    assert "begins at 1.2" not in summary, summary
    said = "begins between 1.1 and 1.2 (last good 1.1, first bad 1.2; no verdict at releases "
    said += "between 1.1 and 1.2 (not all listed: pip index versions bisectpkg could not read "
    said += f"{index}/bisectpkg/: 403 Client Error"
    assert said in summary, summary
    # A listing that read every source says "at" again: the releases are all known.
    argv.append("--no-index")
    again = _run(argv, tmp_path, env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "first bad release: pkg 1.2\n" in again.stdout, again.stdout
    done = _run(report, tmp_path, env)
    assert done.returncode == 0, done.stderr
    summary = (tmp_path / "rep" / "summary.md").read_text()
    assert "begins at 1.2 (last good 1.1)" in summary, summary
