"""The range finder over hand-built series, and the grouping of records into series."""

from __future__ import annotations

from repromatrix.entries import collect_entries
from repromatrix.grid import build_grids, choose_axes
from repromatrix.model import Status
from repromatrix.ordering import Orders, build_orders
from repromatrix.points import Point, PointVerdict, Series
from repromatrix.ranges import find_intervals
from repromatrix.records import Result

P, R, U, E, T, N = (
    Status.PASSED,
    Status.REGRESSED,
    Status.UNTESTABLE,
    Status.ERROR,
    Status.TIMEOUT,
    Status.NOT_RUN,
)


def series(*points: tuple[str, Status | None] | Point) -> Series:
    pts = tuple(p if isinstance(p, Point) else Point(label=p[0], status=p[1]) for p in points)
    return Series(repro="r", gpu="h100", axis="lib", base="host", points=pts)


def test_single_interval() -> None:
    f = find_intervals(series(("1", P), ("2", R), ("3", R), ("4", P)))
    (iv,) = f.intervals
    assert (iv.first_bad, iv.last_bad, iv.last_good, iv.first_good) == ("2", "3", "1", "4")
    assert not iv.open_start
    assert not iv.open_end
    assert f.summary == "begins at 2 (last good 1); ends at 4 (last bad 3)"


def test_two_intervals() -> None:
    f = find_intervals(series(("1", P), ("2", R), ("3", P), ("4", P), ("5", R), ("6", P)))
    assert [(i.first_bad, i.first_good) for i in f.intervals] == [("2", "3"), ("5", "6")]
    assert f.summary == (
        "begins at 2 (last good 1); ends at 3 (last bad 2) — then "
        "begins at 5 (last good 4); ends at 6 (last bad 5)"
    )


def test_open_at_start_like_flashinfer_mla() -> None:
    f = find_intervals(series(("0.2.2", R), ("0.2.3", R), ("0.2.4", P), ("0.5.3", P)))
    (iv,) = f.intervals
    assert iv.open_start
    assert not iv.open_end
    assert f.summary == "begins at or before 0.2.2 (first tested); ends at 0.2.4 (last bad 0.2.3)"


def test_open_at_end() -> None:
    f = find_intervals(series(("1", P), ("2", R), ("3", R)))
    (iv,) = f.intervals
    assert iv.open_end
    assert f.summary == "begins at 2 (last good 1); still present in the newest tested (3)"


def test_open_both_ends() -> None:
    f = find_intervals(series(("1", R), ("2", R)))
    (iv,) = f.intervals
    assert iv.open_start
    assert iv.open_end


def test_gap_inside_boundary_is_between_and_named() -> None:
    f = find_intervals(series(("1", P), ("2", U), ("3", E), ("4", R), ("5", T), ("6", P)))
    (iv,) = f.intervals
    assert iv.last_good == "1"
    assert iv.first_bad == "4"
    assert [p.label for p in iv.uncertain_before] == ["2", "3"]
    assert [p.label for p in iv.uncertain_after] == ["5"]
    assert iv.begin_text == (
        "begins between 1 and 4 (last good 1, first bad 4; no verdict at 2 (untestable), 3 (error))"
    )
    assert iv.end_text == (
        "ends between 4 and 6 (last bad 4, first good 6; no verdict at 5 (timeout))"
    )


def test_gaps_at_edges_never_count() -> None:
    f = find_intervals(series(("0", N), ("1", None), ("2", R), ("3", P), ("4", U)))
    (iv,) = f.intervals
    assert iv.open_start
    assert [p.why for p in iv.uncertain_before] == ["not run here", "no result yet"]
    assert iv.begin_text.startswith("begins at or before 2 (first verdict; no verdict at 0")
    assert iv.first_good == "3"
    # A trailing gap after a good point does not make a new interval.
    assert len(f.intervals) == 1


def test_gap_inside_interval_does_not_split_it() -> None:
    f = find_intervals(series(("1", P), ("2", R), ("3", E), ("4", R), ("5", P)))
    (iv,) = f.intervals
    assert (iv.first_bad, iv.last_bad) == ("2", "4")
    assert [p.label for p in iv.gaps_inside] == ["3"]


def test_open_end_with_trailing_gap() -> None:
    f = find_intervals(series(("1", P), ("2", R), ("3", None)))
    assert f.intervals[0].end_text == (
        "still present at 2, the newest verdict (no verdict at 3 (no result yet))"
    )


def test_flaky_points_are_flagged_and_uncertain() -> None:
    flaky = Point(label="2", status=R, flaky=True)
    assert flaky.verdict is PointVerdict.UNKNOWN
    f = find_intervals(series(("1", P), flaky, ("3", R), ("4", P)))
    assert f.flaky == ("2",)
    assert f.intervals[0].begin_text.startswith("begins between 1 and 3")
    assert "2 (flaky)" in f.summary
    assert not f.summary.endswith("; flaky at 2")  # named once, not twice
    counted = Point(label="2", status=R, flaky=True, passed=3, regressed=2)
    # Inside an interval a flaky point is not named by the sentence: the suffix names it.
    g = find_intervals(series(("1", R), counted, ("3", R), ("4", P)))
    assert g.summary == (
        "begins at or before 1 (first tested); ends at 4 (last bad 3); "
        "flaky at 2 (3 passed, 2 regressed)"
    )


def test_one_point_series() -> None:
    assert find_intervals(series(("1", R))).summary == "present at 1 (the only point tested)"
    assert find_intervals(series(("1", P))).summary == "not reproduced (1 of 1 passed)"
    assert find_intervals(series(("1", U))).summary == "no verdict (1 (untestable))"
    assert find_intervals(series()).summary == "no points"


def test_not_reproduced_with_gaps() -> None:
    f = find_intervals(series(("1", P), ("2", E), ("3", P)))
    assert not f.reproduced
    assert f.summary == "not reproduced where tested (2 passed; no verdict at 2 (error))"
    assert f.counts[PointVerdict.GOOD] == 2


def _result(
    label: str,
    status: Status,
    *,
    key: str | None = None,
    finished: str = "2025-01-01T00:00:00",
    gpu: str = "h100",
    host: str = "a",
) -> Result:
    return Result(
        key=key or f"k-{gpu}-{label}",
        cell_id=f"r[{gpu},host,lib={label}]",
        repro="r",
        base="host",
        image=None,
        gpu=gpu,
        pins={"lib": label, "torch": "2.5"},
        status=status,
        reason="",
        finished=finished,
        host=host,
    )


def test_collect_entries_flaky_history_and_newest_wins() -> None:
    records = [
        _result("1", P, finished="2025-01-01"),
        _result("1", R, finished="2025-01-02", host="b"),  # same key, conflicting → flaky
        _result("2", R, key="old", finished="2025-01-01"),
        _result("2", P, key="new", finished="2025-02-01"),  # new script: wins, not flaky
        _result("3", N, finished="2025-03-01"),
        _result("3", R, key="k3b", finished="2025-01-01"),  # a not_run never hides a result
    ]
    entries = {e.pins[0][1]: e for e in collect_entries(records)}
    assert entries["1"].flaky
    assert entries["1"].status is R
    assert [h.host for h in entries["1"].history] == ["a"]
    assert not entries["2"].flaky
    assert entries["2"].status is P
    assert [h.key for h in entries["2"].history] == ["old"]
    assert entries["3"].status is R


def test_grids_order_series_by_axis() -> None:
    records = [
        _result(v, s, gpu=g)
        for g in ("h100", "l4")
        for v, s in (("0.10", P), ("0.9", R), ("0.2.2.post1", R))
    ]
    entries = collect_entries(records)
    axes = choose_axes(entries)
    assert axes == {"r": "lib"}
    orders = Orders(gpus=("l4", "h100"), libraries={"lib": ("0.2.2.post1", "0.9", "0.10")})
    (grid,) = build_grids(entries, orders, axes)
    assert grid.rows == ("0.2.2.post1", "0.9", "0.10")
    assert [s.gpu for s in grid.series] == ["l4", "h100"]
    assert grid.series[0].fixed == (("torch", "2.5"),)
    f = find_intervals(grid.series[0])
    assert f.summary == (
        "begins at or before 0.2.2.post1 (first tested); ends at 0.10 (last bad 0.9)"
    )


def test_series_without_any_result_says_so_briefly() -> None:
    f = find_intervals(series(("0.2.2", None), ("0.2.3", None), ("0.2.4", None)))
    assert f.intervals == ()
    assert f.summary == "no results yet (3 cells)"
    mixed = find_intervals(series(("0.2.2", None), ("0.2.3", Status.UNTESTABLE)))
    assert mixed.summary.startswith("no verdict (0.2.2 (no result yet), 0.2.3 (untestable))")
    # A repro of one cell, not yet run (its neighbours of the report had records): it
    # read "no results yet (1 cells)" in every output.
    assert find_intervals(series(("0.2.2", None))).summary == "no results yet (1 cell)"


def test_a_version_another_gpu_ran_makes_this_gpus_boundary_a_range() -> None:
    """h200 never ran 0.2, which h100 did: its regression may begin there, so h200's
    boundary is "between 0.1 and 0.3", never "at 0.3". Outside h200's own span (0.5) the
    sentence stays as it was, and nothing counts the absent point as a cell."""
    records = [_result(v, s) for v, s in (("0.1", P), ("0.2", P), ("0.3", R), ("0.4", R))]
    records += [_result("0.5", R)]
    records += [_result(v, s, gpu="h200") for v, s in (("0.1", P), ("0.3", R), ("0.4", P))]
    entries = collect_entries(records)
    orders = Orders(gpus=("h100", "h200"), libraries={"lib": ("0.1", "0.2", "0.3", "0.4", "0.5")})
    (grid,) = build_grids(entries, orders, choose_axes(entries))
    h100, h200 = (find_intervals(s) for s in grid.series)
    assert h100.summary == "begins at 0.3 (last good 0.2); still present in the newest tested (0.5)"
    assert h200.summary == (
        "begins between 0.1 and 0.3 (last good 0.1, first bad 0.3; no verdict at 0.2 (not run "
        "in this series)); ends at 0.4 (last bad 0.3)"
    )
    assert [p.label for p in h200.series.points] == ["0.1", "0.2", "0.3", "0.4"]
    assert [p.label for p in h200.series.tested] == ["0.1", "0.3", "0.4"]
    assert sum(h200.counts.values()) == 3
    assert (grid.series.index(h200.series), "0.2") not in grid.entries


def test_spellings_pip_installs_as_one_release_are_one_point() -> None:
    """`0.10` and `v0.10` (or `1.0` and `1.0.0`) are one release: records that disagree
    there make one flaky point, not a boundary between two spellings of it."""
    records = [_result(v, s) for v, s in (("0.9", P), ("0.10", P), ("v0.10", R), ("0.11", R))]
    entries = collect_entries(records)
    orders = Orders(libraries={"lib": ("0.9", "0.10", "0.11")})
    (grid,) = build_grids(entries, orders, choose_axes(entries))
    (series,) = grid.series
    assert len(series.points) == 3
    assert find_intervals(series).summary == (
        "begins between 0.9 and 0.11 (last good 0.9, first bad 0.11; no verdict at 0.10 "
        "(flaky: 1 passed, 1 regressed)); still present in the newest tested (0.11)"
    )


def _commit(label: str, status: Status) -> Result:
    r = _result(label, status)
    return Result(**{**r.__dict__, "commits": {"lib": label * 5}})


def test_commits_whose_order_is_unknown_are_never_put_in_a_sentence_of_order() -> None:
    """No mirror, no commit date, no matrix: the tool cannot know how these commits are
    ordered, so it names each with its verdict instead of inventing intervals."""
    records = [_commit(c, s) for c, s in (("eeeeeeee", P), ("11111111", R), ("cccccccc", R))]
    entries = collect_entries(records)
    orders = build_orders(records)
    assert orders.unordered["lib"] == {"eeeeeeee", "11111111", "cccccccc"}
    (grid,) = build_grids(entries, orders, choose_axes(entries))
    (finding,) = (find_intervals(s) for s in grid.series)
    assert finding.intervals == ()
    assert finding.reproduced
    assert finding.summary == (
        "order unknown (no mirror in --cache to read its ancestry from, and a commit date is "
        "no order; or off the first-parent line of the others, or next to a release it "
        "cannot be compared with): "
        "11111111 (regressed), "
        "cccccccc (regressed), eeeeeeee (passed)"
    )


def test_a_label_neither_release_nor_commit_is_not_sent_after_a_mirror() -> None:
    """ "1.1|x" (an edited record) is no commit: the mirror and commit date reason said of
    commits does not fit it; a commit beside it keeps that reason, the label is named."""
    records = [_result(c, s) for c, s in (("1.1|x", R), ("1.2|y", P))]
    orders = build_orders(records)
    (grid,) = build_grids(collect_entries(records), orders, choose_axes(collect_entries(records)))
    (finding,) = (find_intervals(s) for s in grid.series)
    assert finding.summary == (
        "order unknown (neither a release nor a commit, which no version or ancestry "
        "orders): 1.1|x (regressed), 1.2|y (passed)"
    )
    # A commit, or a hash of an old record without its commit, keeps the mirror's reason.
    for other in (_commit("eeeeeeee", P), _result("deadbeef", P)):
        records = [_result("1.1|x", R), other]
        orders = build_orders(records)
        entries = collect_entries(records)
        (grid,) = build_grids(entries, orders, choose_axes(entries))
        (finding,) = (find_intervals(s) for s in grid.series)
        assert finding.summary.startswith("order unknown (no mirror in --cache to read its")
        assert "; 1.1|x: neither a release nor a commit, which no version" in finding.summary


def _dated(label: str, status: Status, committed: str) -> Result:
    r = _commit(label, status)
    pins = {"lib": {"kind": "git", "commit": label * 5, "rev": label, "committed": committed}}
    return Result(**{**r.__dict__, "provenance": {"harness": {"pins": pins}}})


def test_commits_of_one_commit_date_are_not_ordered_by_the_records_order() -> None:
    """Seven commits made in one second (a scripted or rebased series), recorded in
    another order than their history's: no interval is drawn from the records' order."""
    second = "2025-01-01T00:00:00+00:00"
    records = [
        _dated(c, s, second)
        for c, s in (("66666666", P), ("77777777", P), ("11111111", P), ("33333333", R))
    ] + [_dated(c, s, second) for c, s in (("22222222", P), ("55555555", R))]
    entries = collect_entries(records)
    orders = build_orders(records)
    assert orders.unordered["lib"] == {r.pins["lib"] for r in records}
    (grid,) = build_grids(entries, orders, choose_axes(entries))
    (finding,) = (find_intervals(s) for s in grid.series)
    assert finding.intervals == ()
    assert finding.summary.startswith("order unknown")


def test_a_commit_with_no_place_beside_ordered_releases_is_said_apart() -> None:
    records = [_result(v, P) for v in ("0.1", "0.2")] + [_commit("abcdef12", R)]
    entries = collect_entries(records)
    (grid,) = build_grids(entries, build_orders(records), choose_axes(entries))
    (finding,) = (find_intervals(s) for s in grid.series)
    assert finding.summary == (
        "not reproduced where the order is known (2 of 2 passed); order unknown (no mirror "
        "in --cache to read its ancestry from, and a commit date is no order; or off the "
        "first-parent line of the others, or next to a release it cannot be compared with): "
        "abcdef12 (regressed)"
    )


def test_another_series_commit_of_unknown_place_is_not_a_gap_here() -> None:
    """h100's commit with no known place is no point of h200's axis, not even a gap."""
    releases = [_result(v, P, gpu=g) for g in ("h100", "h200") for v in ("0.1", "0.2")]
    theirs = Result(**{**_commit("bcdef123", P).__dict__, "gpu": "h200", "key": "k-h200-c"})
    records = [*releases, _commit("abcdef12", R), _result("0.3", R, gpu="h200"), theirs]
    entries = collect_entries(records)
    (grid,) = build_grids(entries, build_orders(records), choose_axes(entries))
    h100, h200 = (find_intervals(s) for s in grid.series)
    assert [p.label for p in h200.series.points] == ["0.1", "0.2", "0.3", "bcdef123"]
    assert h200.summary == (
        "begins at 0.3 (last good 0.2); still present in the newest tested whose order is "
        "known (0.3); order unknown (no mirror in --cache to read its ancestry from, and a "
        "commit date is no order; or off the first-parent line of the others, or next to a "
        "release it cannot be compared with): "
        "bcdef123 (passed)"
    )
    assert h100.summary.endswith(
        "order unknown (no mirror in --cache to read its ancestry from, and a commit date is "
        "no order; or off the first-parent line of the others, or next to a release it "
        "cannot be compared with): "
        "abcdef12 (regressed)"
    )
