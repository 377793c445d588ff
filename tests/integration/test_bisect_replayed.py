"""The same `repromatrix bisect` command run twice over one store (real git, real pip, the
CLI as a subprocess): the second gives the first's answer and notes from the stored runs,
and runs the repro no more than the points the first left undecided need, as `git bisect
replay` of the first's log would."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from history_repo import bisect_cli, build, write_matrix

pytestmark = pytest.mark.integration


def said(out: subprocess.CompletedProcess[str]) -> list[str]:
    """The answer and its notes, to the blank line before the table: not the confidence
    line, whose count says how many runs were made and reused, nor the table, which marks
    stored runs, both of which differ between the two by design."""
    lines = out.stdout.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("first "))
    end = lines.index("", start)
    return [ln for ln in lines[start:end] if not ln.startswith("confidence:")]


@pytest.mark.parametrize("calibrate", ["0", "3"])
@pytest.mark.parametrize("find_fix", [True, False], ids=["find-fix", "plain"])
def test_a_second_identical_bisection_gives_the_first_answer_from_its_runs(
    tmp_path: Path, find_fix: bool, calibrate: str
) -> None:
    """--find-fix from m3 over a branch forked at m1, before the bug, and merged by m12:
    the first run lands on the branch, runs m1 (fixed), leaves the branch out and names
    m13. The second started from every stored run, the branch's "fixed" ones among them,
    never looked at m1's: the history read as changing twice, it ran 4 commits again
    ("each said twice") and named m13 with "the behaviour changes more than once ...
    bisect with --good", not saying the branch never had the regression. The plain
    direction (good m3, a bug from m5 on) is checked the same way, and each calibrated."""
    if find_fix:
        flags = lambda i: {"SCALE_BUG_MAIN": 3 <= i <= 12}  # noqa: E731
        args = ["--find-fix", "--bad=m3", "--good=bad"]
    else:
        flags = lambda i: {"SCALE_BUG_MAIN": i >= 5}  # noqa: E731
        args = ["--good=m3", "--bad=bad"]
    history = build(tmp_path / "upstream", main=16, main_flags=flags, branch=5, fork=1, merge=12)
    calls = tmp_path / "calls.log"
    write_matrix(tmp_path, history, params=f"{{calls: '{calls}'}}")
    args = [a.replace("m3", history.sha("m3")) for a in args] + [f"--calibrate={calibrate}"]
    first = bisect_cli(tmp_path, *args)
    assert first.returncode == 0, first.stdout + first.stderr
    answer = "first fixed commit: " + history.sha("m13") if find_fix else "first bad commit: "
    assert answer + ("" if find_fix else history.sha("m5")) in first.stdout, first.stdout
    if find_fix:  # the case: the branch was left out on its fork point's word
        assert "its 5 commit(s) were left out of the search" in first.stdout, first.stdout
    made = len(calls.read_text().split())
    again = bisect_cli(tmp_path, *args)
    assert again.returncode == 0, again.stdout + again.stderr
    assert said(again) == said(first), (first.stdout, again.stdout)
    assert len(calls.read_text().split()) == made, (again.stdout, again.stderr)
