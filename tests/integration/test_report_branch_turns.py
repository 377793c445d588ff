"""A regression that turns more than once on a branch merged into the line, and a fix
that is a revert on a side branch merged later. Real git (a mirror in --cache, as `run`
and `bisect` leave it), records as `run` writes them, the real `repromatrix report`."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_report_untested_commits import _records, _run_report, git

from repromatrix.model import Status

pytestmark = pytest.mark.integration

G, B = Status.PASSED, Status.REGRESSED


def _branch_merged(root: Path, verdicts: dict[str, Status]) -> tuple[str, dict[str, str]]:
    """c0..c3 on main, a branch b1..b4 from c3, c4..c6 on main, the branch merged at m,
    then c7; records of `r` at the commits of `verdicts` (matrix.yaml lists them). The
    report's summary.md and each commit's short sha."""
    src = root / "src"
    src.mkdir()
    git(src, "init", "-q", "-b", "main")
    sha: dict[str, str] = {}

    def commit(name: str) -> None:
        git(src, "commit", "-q", "--allow-empty", "-m", name)
        sha[name] = git(src, "rev-parse", "HEAD")

    for i in range(4):
        commit(f"c{i}")
    git(src, "checkout", "-q", "-b", "side")
    for i in range(1, 5):
        commit(f"b{i}")
    git(src, "checkout", "-q", "main")
    for i in range(4, 7):
        commit(f"c{i}")
    git(src, "merge", "-q", "--no-ff", "-m", "m", "side")
    sha["m"] = git(src, "rev-parse", "HEAD")
    commit("c7")
    (root / "cache" / "git").mkdir(parents=True)
    git(root, "clone", "-q", "--bare", str(src), str(root / "cache" / "git" / "lib.git"))
    (root / "r.py").write_text("")
    listed = ", ".join(repr(sha[k][:8]) for k in verdicts)
    (root / "matrix.yaml").write_text(
        "schema: 1\nlibraries:\n"
        f"  lib: {{git: {src}, import: lib, versions: [{listed}]}}\n"
        "repros:\n  r: {script: r.py, gpus: [cpu], libraries: {lib: all}}\n"
    )
    _records(root, [(sha[k][:8], sha[k], v) for k, v in verdicts.items()])
    return _run_report(root, "--cache", "cache"), {k: v[:8] for k, v in sha.items()}


def test_a_branch_that_turned_twice_brings_the_merge_its_newest_turn(tmp_path: Path) -> None:
    """b1 bad, b2 good, b3 bad on a branch merged at m (bad), main good up to c6: the
    report said "begins at b1 (last good c6)", a turn b2 had undone, where the regression
    the merge brought is b3's (last good b2)."""
    summary, c = _branch_merged(
        tmp_path, {"c0": G, "c3": G, "b1": B, "b2": G, "b3": B, "c6": G, "m": B, "c7": B}
    )
    assert f"begins at {c['b3']} (last good {c['b2']}); still present" in summary, summary
    assert f"begins at {c['b1']}" not in summary
    assert f"{c['b1']} (regressed)" in summary  # said apart, its place not a boundary


def test_a_branch_turned_back_leaves_its_untested_commits_after_it_a_range(
    tmp_path: Path,
) -> None:
    """b1 bad, b2 good, b3 and b4 untested, the merge m bad: "begins at m (last good c6)",
    b3 and b4 left out as after b1 (bad), where b2 had turned it back and either may hold
    the change m brought."""
    summary, c = _branch_merged(tmp_path, {"c0": G, "c3": G, "b1": B, "b2": G, "c6": G, "m": B})
    begins = f"begins between {c['c6']} and {c['m']} (last good {c['c6']}, first bad {c['m']}; "
    begins += f"no verdict at {c['b3']}–{c['b4']} (2 commits untested, the branch merged at "
    assert begins + f"{c['m']}))" in summary, summary


def test_a_branch_good_at_its_tip_leaves_the_turn_at_the_merge(tmp_path: Path) -> None:
    """b4, the branch's tip, ran good: no bad run of the branch is in what m merges (each
    was undone), so the change is at m itself, not at b1 or b3."""
    summary, c = _branch_merged(
        tmp_path, {"c0": G, "c3": G, "b1": B, "b2": G, "b3": B, "b4": G, "c6": G, "m": B}
    )
    assert f"begins at {c['m']} (last good {c['c6']})" in summary, summary
    assert f"begins at {c['b1']}" not in summary
    assert f"begins at {c['b3']}" not in summary


def test_a_revert_on_a_side_branch_ends_the_regression_at_the_revert(tmp_path: Path) -> None:
    """Bad from c1 on main; b1, on a branch from c3, reverts it (good) and the branch is
    merged at m (good): the fix is b1, not the merge, and main's c6 stays bad."""
    summary, c = _branch_merged(
        tmp_path, {"c0": G, "c1": B, "c3": B, "b1": G, "c6": B, "m": G, "c7": G}
    )
    assert f"begins at {c['c1']} (last good {c['c0']}); ends at {c['b1']} (last bad " in summary
    assert "order unknown" not in summary, summary


def test_a_revert_tested_only_below_the_branch_tip_is_a_range(tmp_path: Path) -> None:
    """Only b3 of the branch ran (good): the revert is one of b1..b3, said as a range that
    names the branch's untested commits below b3, never b4, which is after it."""
    summary, c = _branch_merged(tmp_path, {"c0": G, "c1": B, "c6": B, "b3": G, "m": G})
    ends = f"ends between {c['c6']} and {c['b3']} (last bad {c['c6']}, first good {c['b3']}; "
    ends += f"no verdict at {c['b1']}–{c['b2']} (2 commits untested, the branch merged at "
    assert ends + f"{c['m']}))" in summary, summary
    assert c["b4"] not in summary
