"""`repromatrix bisect` over histories whose names stopped saying one thing: a short id that
names several commits, against what git itself says of the same history."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from pathlib import Path

import pytest
from history_repo import History, build_dag, write_matrix

pytestmark = pytest.mark.integration


def bisect(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "repromatrix", "--matrix", str(root / "matrix.yaml")]
    argv += ["bisect", "pkg_check", "--library=bisectpkg", "--executor=local", "--no-progress"]
    argv += [f"--cache={root / 'cache'}", f"--results={root / 'results'}", "--jobs=1", *args]
    return subprocess.run(
        argv,
        cwd=root,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def shared_prefix(history: History) -> tuple[str, list[str]]:
    """A 4-digit short id that two of the history's commits share (the shas are fixed)."""
    by_prefix = collections.defaultdict(list)
    for sha in history.shas.values():
        by_prefix[sha[:4]].append(sha)
    return next((p, shas) for p, shas in sorted(by_prefix.items()) if len(shas) > 1)


def test_an_end_given_as_a_short_id_that_names_two_commits_says_so(tmp_path: Path) -> None:
    """A short id that the history grew to share: git says "short object ID 6d3f is
    ambiguous" and lists the commits; bisect said "revision '6d3f' is not a commit in
    <cache>/git/bisectpkg.git; check it or the --git-mirror", as of a name it never had."""
    history = build_dag(tmp_path / "upstream", [(), *((i,) for i in range(899))], step=60)
    write_matrix(tmp_path, history)
    prefix, shas = shared_prefix(history)
    out = bisect(tmp_path, f"--good={prefix}", "--bad=bad")
    assert out.returncode == 6, out.stdout + out.stderr
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith(f"repromatrix: error: --good {prefix}: "), line
    assert f"revision '{prefix}' is a short id of {len(shas)} commits" in line, line
    for sha in shas:
        assert sha[:10] in line, line
    assert "give more of its digits" in line, line
    assert "Traceback" not in out.stderr
