"""The runs a bisection says it took, against the repro's invocations, counted by the repro
itself: the confidence line, the stderr summary and the Markdown report say one number."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from history_repo import bisect_cli, fixed_beside_a_branch, write_matrix

pytestmark = pytest.mark.integration


def said_runs(out: subprocess.CompletedProcess[str]) -> tuple[int, int]:
    """(runs, repeats) of the answer's confidence line."""
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("confidence:"))
    found = re.search(r"(\d+) run\(s\), (\d+) of them repeats", line)
    assert found is not None, line
    return int(found[1]), int(found[2])


@pytest.mark.parametrize("calibrate", ["0", "3"])
def test_runs_of_a_branch_left_out_count_in_the_confidence_line(
    tmp_path: Path, calibrate: str
) -> None:
    """--find-fix from m3 (scale broke there): a branch forked at m1, before the bug, and
    merged by m12 never had it; the search lands on its first commit, runs m1, drops the
    branch and searches again. Its confidence line counted only the search made again and
    m1 ("7 run(s), 0 of them repeats") where stderr said 10 evaluations, the repro ran 10
    times and m1 twice (30 against "20 run(s), 12 of them repeats" calibrated)."""
    history = fixed_beside_a_branch(tmp_path / "upstream")
    calls = tmp_path / "calls.log"
    write_matrix(tmp_path, history, params=f"{{calls: '{calls}'}}")
    m3 = history.sha("m3")
    args = ["--find-fix", f"--bad={m3}", "--good=bad", f"--calibrate={calibrate}"]
    markdown = tmp_path / "bisect.md"
    out = bisect_cli(tmp_path, *args, f"--markdown={markdown}")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"first fixed commit: {history.sha('m13')}" in out.stdout, out.stdout
    assert "its 5 commit(s) were left out of the search" in out.stdout, out.stdout  # the case
    made = calls.read_text().split()
    runs, repeats = len(made), len(made) - len(set(made))
    assert said_runs(out) == (runs, repeats), (out.stdout, made)
    assert f"repromatrix: {runs} evaluation(s) in " in out.stderr, out.stderr
    assert f"in {runs} run(s), 0 of them stored run(s) reused" in markdown.read_text()
    if calibrate == "0":  # again, from the store: its runs are those reused and made
        again = bisect_cli(tmp_path, *args)
        assert again.returncode == 0, again.stdout + again.stderr
        made_again = len(calls.read_text().split()) - runs
        summary = re.search(r"(\d+) evaluation\(s\) in \d+ round\(s\), (\d+) stored", again.stderr)
        assert summary is not None, again.stderr
        assert int(summary[1]) == made_again, again.stderr
        assert said_runs(again)[0] == made_again + int(summary[2]), again.stdout
