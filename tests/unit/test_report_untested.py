"""The commits of a first-parent line between a series' points that no cell ran (pure)."""

from __future__ import annotations

from dataclasses import replace

from repromatrix.model import Status
from repromatrix.points import Point, Series
from repromatrix.ranges import find_intervals
from repromatrix.report.untested import with_untested

LINE = [f"{i:x}" * 40 for i in range(10)]  # "000…", "111…": c0..c9, oldest first
AT = {sha: i for i, sha in enumerate(LINE)}


def _series(points: dict[str, Status], unordered: frozenset[str] = frozenset()) -> Series:
    return Series(
        repro="r", gpu="cpu", axis="lib", base="host", unordered=unordered,
        points=tuple(Point(label=label, status=st) for label, st in points.items()),
    )  # fmt: skip


def test_a_label_off_the_line_or_of_unknown_order_claims_nothing_between() -> None:
    """Between c2 and `x` (no commit known on the line) nothing is counted, nor between `x`
    and c7: where x lies is not known; between c7 and c9, c8."""
    commits = {"c2": LINE[2], "c7": LINE[7], "c9": LINE[9], "u": LINE[5]}
    good, bad = Status.PASSED, Status.REGRESSED
    series = _series({"c2": good, "x": good, "c7": bad, "c9": bad, "u": good}, frozenset({"u"}))
    filled = with_untested(series, LINE, AT, commits)
    assert [p.label for p in filled.points] == ["c2", "x", "c7", "88888888", "c9", "u"]
    assert filled.points[3].why == "untested"
    (interval,) = find_intervals(filled).intervals
    assert interval.begin_text == "begins at c7 (last good x)"


def test_the_commits_between_are_counted_and_named_by_their_ends() -> None:
    commits = {"c1": LINE[1], "c6": LINE[6]}
    series = _series({"c1": Status.PASSED, "c6": Status.REGRESSED})
    (interval,) = find_intervals(with_untested(series, LINE, AT, commits)).intervals
    assert interval.begin_text == (
        "begins between c1 and c6 (last good c1, first bad c6; no verdict at "
        "22222222–55555555 (4 commits untested))"
    )


def test_a_merge_among_the_untested_commits_says_its_branch_lies_there_too() -> None:
    """c3 and c5 merges: "4 commits untested" counted the line alone, where git bisect
    would search the merged branches' commits too."""
    commits = {"c1": LINE[1], "c6": LINE[6], "c8": LINE[8]}
    series = _series({"c1": Status.PASSED, "c6": Status.REGRESSED, "c8": Status.PASSED})
    filled = with_untested(series, LINE, AT, commits, frozenset({LINE[3], LINE[5], LINE[7]}))
    assert [p.why for p in filled.points if p.untested] == [
        "4 commits untested, 2 merges (their branches' commits lie here too)",
        "untested, a merge (its branch's commits lie here too)",
    ]
    one = with_untested(series, LINE, AT, commits, frozenset({LINE[4]}))
    (interval,) = find_intervals(one).intervals
    assert interval.begin_text.endswith(
        "(4 commits untested, one a merge (its branch's commits lie here too)))"
    )


def test_a_merge_at_a_boundary_brings_in_its_branchs_commits_unless_the_series_ran_them() -> None:
    """c5 a merge of b1, b2: good at c4 and bad at c5 said "begins at c5", where the change
    may be b1 or b2. Where the series ran both (said apart, their order unknown), what is
    left is the merge itself: "at" again."""
    b1, b2 = "b1" * 20, "b2" * 20
    commits = {"c4": LINE[4], "c5": LINE[5], "b1": b1, "b2": b2}
    series = _series({"c4": Status.PASSED, "c5": Status.REGRESSED})
    filled = with_untested(series, LINE, AT, commits, frozenset({LINE[5]}), {LINE[5]: (b1, b2)})
    (interval,) = find_intervals(filled).intervals
    assert interval.begin_text == (
        "begins between c4 and c5 (last good c4, first bad c5; no verdict at "
        "b1b1b1b1–b2b2b2b2 (2 commits untested, the branch merged at c5))"
    )
    ran = _series(
        {"c4": Status.PASSED, "b1": Status.PASSED, "b2": Status.REGRESSED, "c5": Status.REGRESSED},
        frozenset({"b1", "b2"}),
    )
    filled = with_untested(ran, LINE, AT, commits, frozenset({LINE[5]}), {LINE[5]: (b1, b2)})
    assert [p.label for p in filled.points] == ["c4", "b1", "b2", "c5"]
    assert find_intervals(filled).intervals[0].begin_text == "begins at c5 (last good c4)"


def test_a_branchs_commits_only_another_series_ran_are_untested_in_this_one() -> None:
    """b1, b2 of the branch the merge c5 brings in, run on another GPU alone (points of
    this series only as "not run in this series"): this one never ran them, yet its
    boundary at c5 read "begins at c5"."""
    b1, b2 = "b1" * 20, "b2" * 20
    commits = {"c4": LINE[4], "c5": LINE[5], "b1": b1, "b2": b2}
    points = [Point(label="c4", status=Status.PASSED)]
    points += [Point(label=b, status=None, absent=True) for b in ("b1", "b2")]
    points.append(Point(label="c5", status=Status.REGRESSED))
    series = replace(_series({}), points=tuple(points), unordered=frozenset({"b1", "b2"}))
    filled = with_untested(series, LINE, AT, commits, frozenset({LINE[5]}), {LINE[5]: (b1, b2)})
    (interval,) = find_intervals(filled).intervals
    assert interval.begin_text.endswith(
        "no verdict at b1b1b1b1–b2b2b2b2 (2 commits untested, the branch merged at c5))"
    )


def test_a_branchs_commits_before_or_after_its_runs_that_cannot_hold_the_change_are_left_out() -> (
    None
):
    """A fix merged at c5 from b0..b4, bad at c4, good at c5, and runs of b1 (bad) and b3
    (good): "no verdict at b0–b4 (3 commits untested …)", where b0 comes before a bad run
    (not fixed yet) and b4 after a good one (fixed already): only b2 may hold the fix, or
    b3, which the branch ran good after b1 bad (never the merge c5)."""
    b = [f"b{i}" * 20 for i in range(5)]
    graph = {sha: ((b[i - 1],) if i else (LINE[2],)) for i, sha in enumerate(b)}
    commits = {"c4": LINE[4], "c5": LINE[5]} | {f"b{i}": sha for i, sha in enumerate(b)}
    good, bad = Status.PASSED, Status.REGRESSED
    series = _series({"c4": bad, "b1": bad, "b3": good, "c5": good}, frozenset({"b1", "b3"}))
    merged = frozenset({LINE[5]})
    filled = with_untested(series, LINE, AT, commits, merged, {LINE[5]: tuple(b)}, None, graph)
    (interval,) = find_intervals(filled).intervals
    assert interval.end_text == (
        "ends between b1 and b3 (last bad b1, first good b3; no verdict at "
        "b2b2b2b2 (untested, the branch merged at c5))"
    )


def test_a_branch_commit_that_ran_bad_over_its_good_parent_is_where_it_begins_not_the_merge() -> (
    None
):
    """c4 good, the merge c5 of b0..b3 bad, and the branch ran b1 good, b2 bad: the report
    said "begins at c5 (last good c4)", where git bisect names b2 (bad, every tested
    commit below it good). Where the branch ran bad first at b0, c4 (the merge's first
    parent, above the fork) is its last good; b3, after b2, is no candidate."""
    b = [f"b{i}" * 20 for i in range(4)]
    graph = {sha: ((b[i - 1],) if i else (LINE[2],)) for i, sha in enumerate(b)}
    commits = {"c4": LINE[4], "c5": LINE[5]} | {f"b{i}": sha for i, sha in enumerate(b)}
    good, bad = Status.PASSED, Status.REGRESSED
    merged, branch = frozenset({LINE[5]}), {LINE[5]: tuple(b)}
    series = _series({"c4": good, "b1": good, "b2": bad, "c5": bad}, frozenset({"b1", "b2"}))
    filled = with_untested(series, LINE, AT, commits, merged, branch, None, graph)
    finding = find_intervals(filled)
    (interval,) = finding.intervals
    assert interval.begin_text == "begins at b2 (last good b1)"
    assert finding.unordered == ()  # placed, not said apart as well
    assert [p.label for p in filled.points] == ["c4", "b1", "b2", "c5"]
    series = _series({"c4": good, "b0": bad, "c5": bad}, frozenset({"b0"}))
    filled = with_untested(series, LINE, AT, commits, merged, branch, None, graph)
    (interval,) = find_intervals(filled).intervals
    assert interval.begin_text == "begins at b0 (last good c4)"
