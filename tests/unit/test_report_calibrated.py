"""A series of a flaky repro across one change, weighed as a calibrated bisect weighs it
(`report/calibrated.py`)."""

from __future__ import annotations

from repromatrix.model import Status
from repromatrix.points import Point, Series
from repromatrix.ranges import find_intervals
from repromatrix.report.calibrated import with_calibrated_bounds


def _point(label: str, passed: int, regressed: int) -> Point:
    status = Status.REGRESSED if regressed > passed else Status.PASSED
    flaky = bool(passed and regressed)
    return Point(label=label, status=status, flaky=flaky, passed=passed, regressed=regressed)


def _summary(*runs: tuple[int, int]) -> str:
    pts = tuple(_point(f"c{i}", p, r) for i, (p, r) in enumerate(runs))
    finding = find_intervals(Series(repro="r", gpu="cpu", axis="lib", base="host", points=pts))
    return with_calibrated_bounds(finding).summary


def test_the_runs_of_a_calibrated_bisect_place_one_boundary_and_say_how_sure() -> None:
    """c5 broke it; the repro says "regressed" one time in five where it is fine: c2's one
    false alarm and c1's and c4's split runs made "begins between c0 and c2 … — then begins
    between c3 and c5", a range the 40 runs had narrowed."""
    said = _summary((9, 0), (4, 1), (0, 1), (1, 0), (7, 1), (0, 9), (0, 1), (0, 9))
    assert said.startswith("begins at c5 (last good c4); still present"), said
    assert "then begins" not in said, said
    assert "begins after c4 by c5: 99." in said, said
    assert "flaky repro (read as its false verdicts: c2 (bad))" in said, said


def test_a_history_that_changed_twice_keeps_its_intervals() -> None:
    """c2 said "regressed" three times and never otherwise: no lie of a flaky repro, but a
    change (and its fix) of its own; the single boundary the model would place is none."""
    said = _summary((9, 0), (4, 1), (0, 3), (3, 0), (7, 1), (0, 9), (0, 1), (0, 9))
    assert "then begins" in said, said
    assert "sure, as a calibrated bisect" not in said, said


def test_a_regression_that_began_and_was_fixed_has_both_boundaries_weighed() -> None:
    """Runs of 8 said good, good, 7 of 8 bad, 7 of 8 bad, good, good: "regressed only
    intermittently: flaky at c2, c3", where the runs place where it began and where it was
    fixed, each as a calibrated bisect weighs one change."""
    said = _summary((8, 0), (8, 0), (1, 7), (1, 7), (8, 0), (8, 0))
    assert "intermittently" not in said, said
    assert said.startswith("begins at c2 (last good c1); ends at c4 (last bad c3)"), said
    assert "begins after c1 by c2: 99." in said, said
    assert "fixed after c3 by c4: 99." in said, said


def test_a_window_of_one_false_alarm_is_no_regression() -> None:
    """One "regressed" of 8 runs at c2 between good points is a flaky repro's lie, no
    window: nothing is placed."""
    said = _summary((8, 0), (8, 0), (7, 1), (8, 0), (8, 0))
    assert "begins" not in said, said
