"""A fix backported to an older release line sorts before the next line's first release:
"then begins at 2.0 (last good 1.1.1)" must not read as 2.0 breaking again what 1.1.1
fixed, in any output that carries the sentence."""

from __future__ import annotations

from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.report import build_report
from repromatrix.report.compat import build_compat
from repromatrix.report.markdown import render_markdown, reproduced_table

P, R = Status.PASSED, Status.REGRESSED
CAVEAT = (
    "1.1.1 is a later release of the 1.1 line (a backport?), not a step towards 2.0: "
    "2.0 may predate that fix rather than bring the regression back"
)


def rec(label: str, status: Status) -> Result:
    return Result(
        key=f"k{label}",
        cell_id=f"r[cpu,host,lib={label}]",
        repro="r",
        base="host",
        gpu="cpu",
        pins={"lib": label},
        status=status,
        finished="2026-01-01T00:00:00+00:00",
    )


def outputs(points: list[tuple[str, Status]]) -> list[str]:
    data = build_report([rec(label, status) for label, status in points])
    (row,) = data.summary_rows
    (compat_row,) = build_compat(data, None).rows
    (((line,),)) = compat_row.cells
    return [row.sentence, reproduced_table(data.summary_rows), render_markdown(data), line.text]


def test_a_fix_backported_to_an_older_line_is_not_read_as_a_regression_coming_back() -> None:
    # Released in this order: 1.0, 1.1 (bad), 2.0 (still bad), 1.1.1 (the fix, backported),
    # 2.1 (the fix). PEP 440 sorts 1.1.1 before 2.0.
    shown = outputs([("1.0", P), ("1.1", R), ("2.0", R), ("1.1.1", P), ("2.1", P)])
    assert "then begins at 2.0 (last good 1.1.1)" in shown[0]
    for text in shown:
        assert CAVEAT in text


def test_a_regression_back_on_its_own_line_or_after_a_plain_release_has_no_caveat() -> None:
    for points in (
        [("1.0", P), ("1.1", R), ("1.2", P), ("2.0", R)],  # 1.2 is no patch release
        [("1.1", R), ("1.1.1", P), ("1.1.2", R)],  # back on the 1.1 line itself
        [("1.0.0", P), ("1.0.1", R), ("1.1.1", P), ("2.0", R)],  # 1.1.1: not 1.0's line
        [("11111111", R), ("22222222", P), ("33333333", R)],  # all-digit commits
    ):
        for text in outputs(points):
            assert "backport" not in text, points
