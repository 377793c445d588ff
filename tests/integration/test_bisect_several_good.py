"""Several `--good` ends, as `git bisect start BAD GOOD1 GOOD2` takes them: real git (its
own `git bisect run` the reference), real pip installs per commit, the CLI as a
subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import random_history
from bisect_repo import _git
from history_repo import CHECK, History, bisect_cli, build, write_matrix
from random_history import Case, Shape

pytestmark = pytest.mark.integration


def history_with_branch(root: Path, *, side_bad: bool = False) -> History:
    """m0..m11, the bug from m7 on the main line; a branch b0..b2 forked after m3 and
    merged by m10 (its b1 on broken too with `side_bad`)."""
    return build(
        root / "upstream",
        main=12,
        main_flags=lambda i: {"SCALE_BUG_MAIN": i >= 7},
        branch=3,
        fork=3,
        merge=10,
        side_flags=lambda j: {"SCALE_BUG_SIDE": side_bad and j >= 1},
    )


def git_first_bad(history: History, work: Path, bad: str, *good: str) -> str:
    clone = work / "clone"
    subprocess.run(["git", "clone", "--quiet", str(history.path), str(clone)], check=True)
    script = work / "check.py"
    script.write_text(CHECK.format(log=str(work / "log")))
    _git(clone, "bisect", "start", bad, *good)
    out = _git(clone, "bisect", "run", sys.executable, str(script))
    return next(ln.split()[0] for ln in out.splitlines() if "is the first bad commit" in ln)


def test_two_good_ends_neither_below_the_other_bisect_as_git_does(tmp_path: Path) -> None:
    """`--good m5 --good b1` was refused ("argument --good: given twice; the command takes
    one, keep it") where git bisect names the first bad commit."""
    history = history_with_branch(tmp_path)
    write_matrix(tmp_path, history)
    m5, b1 = history.sha("m5"), history.sha("b1")
    expected = git_first_bad(history, tmp_path / "git", "bad", m5, b1)
    assert expected == history.sha("m7")
    out = bisect_cli(tmp_path, "--bad=bad", f"--good={m5}", f"--good={b1}")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"first bad commit: {expected}" in out.stdout
    assert out.stdout.startswith(f"bisect pkg_check [cpu, host] bisectpkg {m5}, {b1}..bad (")
    # Nothing either good end reaches is a candidate: b0 and m0..m5 never ran.
    ran = {ln.split()[1] for ln in out.stdout.splitlines() if ln.startswith("round ")}
    assert not ran & {history.sha(n)[:8] for n in ("b0", "m0", "m4")}


def test_a_good_end_of_several_that_is_bad_is_named(tmp_path: Path) -> None:
    """The second `--good` regressed: the refusal names that end, not the first one."""
    history = history_with_branch(tmp_path, side_bad=True)
    write_matrix(tmp_path, history)
    m5, b1 = history.sha("m5"), history.sha("b1")
    out = bisect_cli(tmp_path, "--bad=bad", f"--good={m5}", f"--good={b1}")
    assert out.returncode == 6, out.stdout + out.stderr
    assert f"error: --good {b1} ({b1[:8]}) is not good: the repro says regressed" in out.stderr


def test_a_second_bad_end_is_refused_in_one_line(tmp_path: Path) -> None:
    history = history_with_branch(tmp_path)
    write_matrix(tmp_path, history)
    out = bisect_cli(tmp_path, "--bad=bad", f"--bad={history.sha('m9')}", "--good=good")
    assert out.returncode == 64, out.stdout + out.stderr
    assert out.stderr.strip().splitlines() == [
        f"repromatrix: error: --bad given 2 times (bad, {history.sha('m9')}): a bisection has "
        "one bad end, as git bisect has; keep one"
    ]


def evaluations(out: subprocess.CompletedProcess[str]) -> list[str]:
    """The commits each round ran, in order."""
    return [ln.split()[2] for ln in out.stdout.splitlines() if ln.startswith("round ")]


def test_one_good_end_named_twice_bisects_as_that_end_alone(tmp_path: Path) -> None:
    """`--good b1 --good b1~0`, b1 on a branch --bad m9 does not hold: one commit named
    twice was taken as two ends and refused ("with several old ends each must be in m9's
    history") where `--good b1` alone tests their merge base first, as git bisect does. It
    is now that very bisection, in the same runs; so is an end another one reaches."""
    history = history_with_branch(tmp_path)
    b1, m9 = history.sha("b1"), history.sha("m9")
    alone = tmp_path / "alone"
    write_matrix(alone, history)
    out = bisect_cli(alone, f"--bad={m9}", f"--good={b1}")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"first bad commit: {history.sha('m7')}" in out.stdout
    for twice in ([f"--good={b1}", f"--good={b1}~0"], [f"--good={b1}~1", f"--good={b1}"]):
        work = tmp_path / twice[0].removeprefix("--good=")
        write_matrix(work, history)
        again = bisect_cli(work, f"--bad={m9}", *twice)
        assert again.returncode == 0, again.stdout + again.stderr
        assert again.stdout.splitlines()[0] == out.stdout.splitlines()[0]
        assert evaluations(again) == evaluations(out)
        assert f"first bad commit: {history.sha('m7')}" in again.stdout


def test_several_good_ends_under_first_parent_are_each_named(tmp_path: Path) -> None:
    """`--first-parent --good a1 --good b1`, both on branches merged into the main line
    (a1's forked at c2, b1's at c3), the bug at c4: the line stops at c3, where it meets
    b1's history. The start line named the first good end alone ("(a1..c10)") and the answer
    said nothing of the last good commit on the line, which no end given is; both are now
    said, as with one good end off the line."""
    names = ["c0", "c1", "c2", "a0", "a1", "c3", "b0", "b1", "c4", "c5", "c6", "c7", "c8"]
    names += ["c9", "c10"]
    up = {"a0": "c2", "c3": "c2", "b0": "c3", "c4": "c3", "c6": "c5", "c8": "c7"}
    merged = {"c6": "a1", "c8": "b1"}
    at = {n: i for i, n in enumerate(names)}
    parents = [
        () if i == 0 else (at[up.get(n, names[i - 1])], *((at[merged[n]],) if n in merged else ()))
        for i, n in enumerate(names)
    ]
    shape = Shape(
        parents=tuple(parents),
        times=tuple(1_700_000_000 + 3600 * i for i in range(len(names))),
        tip=at["c10"],
        tags={"gb": at["b1"]},
    )
    case = Case(shape=shape, old=at["a1"], new=at["c10"], changes=(at["c4"],), first_parent=True)
    built = random_history.build(tmp_path / "upstream", case)
    sha = {n: built.shas[i] for n, i in at.items()}
    write_dir = tmp_path / "work"
    random_history.write_matrix(write_dir, built)
    out = random_history.bisect_cli(write_dir, case, jobs=1, extra=["--good=gb"])
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"first bad commit: {sha['c4']}" in out.stdout  # git bisect's, below
    first = out.stdout.splitlines()[0]
    assert f"({sha['a1'][:8]}, {sha['b1'][:8]}..{sha['c10'][:8]}: " in first, first
    assert "the line leaves the history of gb below them" in first, first
    assert (
        f"  last good commit on the first-parent line: {sha['c3']}, its first parent, where "
        "the line leaves --good gb's history"
    ) in out.stdout
    clone = tmp_path / "git"
    subprocess.run(["git", "clone", "--quiet", str(built.path), str(clone)], check=True)
    _git(clone, "bisect", "start", "--first-parent", sha["c10"], sha["a1"], sha["b1"])
    said = _git(clone, "bisect", "run", "sh", "-c", "! grep -q BUG mk/marker.txt")
    assert f"{sha['c4']} is the first bad commit" in said


def test_a_good_end_off_the_bad_end_s_history_below_another_good_end_is_dropped(
    tmp_path: Path,
) -> None:
    """`--good m5 --good b1 --bad m9`, b1 on a branch forked after m3 that m9 does not
    hold: refused ("b1 is not in m9's history; with several old ends each must be (git
    bisect tests their merge base m3 first) ...", exit 6), where git bisect, their merge
    base m3 below m5, tests nothing more and names m7; b1 says nothing m5 does not."""
    history = history_with_branch(tmp_path)
    write_matrix(tmp_path, history)
    m5, b1, m9 = history.sha("m5"), history.sha("b1"), history.sha("m9")
    expected = git_first_bad(history, tmp_path / "git", m9, m5, b1)
    assert expected == history.sha("m7")
    runs = len((tmp_path / "git" / "log").read_text().splitlines())
    out = bisect_cli(tmp_path, f"--bad={m9}", f"--good={m5}", f"--good={b1}")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"first bad commit: {expected}" in out.stdout
    # m6..m9 and the end m5: git's runs plus the two ends at the most, no branch commit.
    ran = evaluations(out)
    assert len(ran) <= runs + 2, (ran, runs)
    assert not set(ran) & {history.sha(n)[:8] for n in ("b0", "b1", "b2", "m3")}
