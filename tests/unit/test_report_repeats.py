"""What a page repeats is worked out once: a chart's few values, its points' positions and
titles, and compat.html's walk of the cells (which only repros along the bases need).
Counted by the calls that do the work; the text is the one written a point at a time."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from repromatrix import bisected_axes
from repromatrix.model import Status
from repromatrix.report import build_report, charts, compat, render, views
from repromatrix.report.charts import ChartLine, ChartPoint, SeriesValues, build_chart
from repromatrix.report.metrics import fmt_num
from repromatrix.run_summary import BISECT_RUN_PREFIX
from repromatrix.safetext import printable

from recordfactory import result  # isort: skip


def _series(label: str, values: dict[str, float | None]) -> SeriesValues:
    return SeriesValues(label=label, gpu=label, color="#1f77b4", values=values)


def test_a_chart_places_each_distinct_value_of_a_line_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """100,000 points of a page hold 4 distinct values: each point's height, its number's
    text and the polyline's "y" were worked out anew (a third of the charts' time)."""
    placed: list[float] = []
    real = charts._YScale.pos

    def pos(self: charts._YScale, v: float) -> float:
        placed.append(v)
        return real(self, v)

    monkeypatch.setattr(charts._YScale, "pos", pos)
    rows = [f"1.{i}" for i in range(50)]
    values: dict[str, float | None] = {row: (0.25, 0.5)[i % 2] for i, row in enumerate(rows)}
    one = build_chart(metric="m", rows=rows, series=[_series("a", values)], threshold=None)
    alone = len(placed)
    chart = build_chart(
        metric="m", rows=rows, series=[_series(g, values) for g in "abc"], threshold=None
    )
    assert one is not None
    assert chart is not None
    assert len(placed) - 2 * alone == 2 * 2  # two lines more: each of its two values once
    for line in chart.lines:
        assert [p.title for p in line.points] == [
            f"{line.label} @ {row}: {fmt_num(values[row])}" for row in rows
        ]
        (segment,) = line.segments
        assert segment == " ".join(f"{p.x:.1f},{p.y:.1f}" for p in line.points)


def test_a_chart_writes_zeros_and_whole_numbers_as_themselves() -> None:
    """0.0 == -0.0 == 0 and 1.0 == 1 as keys: the values known once are floats other than
    0, and each point says its own number as before."""
    rows = ["a", "b", "c", "d", "e"]
    values: dict[str, float | None] = {"a": 0.0, "b": -0.0, "c": 1, "d": 1.0, "e": 2.5}
    chart = build_chart(metric="m", rows=rows, series=[_series("g", values)], threshold=None)
    assert chart is not None
    (line,) = chart.lines
    assert [p.title for p in line.points] == [f"g @ {r}: {fmt_num(values[r])}" for r in rows]
    assert line.segments == (" ".join(f"{p.x:.1f},{p.y:.1f}" for p in line.points),)


def _line(points: list[ChartPoint]) -> ChartLine:
    return ChartLine(
        label="g", gpu="g", color="#1f77b4", dash="", segments=(), points=tuple(points), missing=()
    )


def test_chart_points_escape_each_distinct_title_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Charts of many repros repeat their points' titles (a series and row of one name in
    each: 2,666 distinct of 95,259): each was made printable and escaped per point."""
    made: list[str] = []

    def counted(text: str, *, newlines: bool = False) -> str:
        made.append(text)
        return printable(text, newlines=newlines)

    monkeypatch.setattr(render, "printable", counted)
    name = f"<g {uuid.uuid4()}>"  # titles no other test has written
    points = [ChartPoint(x=60.0 + i, y=12.5, title=f"{name} @ 1.{i}: 0.5") for i in range(20)]
    twice = [render.chart_points(_line(points)) for _ in range(2)]
    assert len(made) == 20
    assert twice[0] == twice[1]
    assert twice[0].startswith(
        '<circle cx="60.0" cy="12.5" r="2.5" fill="#1f77b4" stroke="none"><title>&lt;g '
    )


def test_chart_points_write_each_position_as_its_own() -> None:
    """-0.0 == 0.0: the position's own text, as a point at a time wrote it."""
    points = [ChartPoint(x=x, y=y, title="t") for x, y in [(0.0, 1.0), (-0.0, 1.0), (2.0, -0.0)]]
    cxy = [p.split('" r=')[0] for p in render.chart_points(_line(points)).split("<circle ")[1:]]
    assert cxy == ['cx="0.0" cy="1.0', 'cx="-0.0" cy="1.0', 'cx="2.0" cy="-0.0']


def test_compat_walks_the_cells_only_for_a_repro_along_the_bases(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """compat.html links a cell's details (`#c<index>`) only for repros that span the
    bases; it numbered all of a page's cells for any report (0.05 s of 100,000)."""
    walked: list[int] = []

    def counted(data: object) -> object:
        walked.append(1)
        return views.iter_cells(data)  # type: ignore[arg-type]

    monkeypatch.setattr(compat, "iter_cells", counted)
    along_lib = build_report([result("1.0"), result("2.0", Status.REGRESSED)])
    made = compat.build_compat(along_lib, None)
    assert walked == []
    assert [ln.text for row in made.rows for cell in row.cells for ln in cell] == [
        "regressed 2.0, still present"
    ]
    bases = [
        r.model_copy(update={"base": base, "cell_id": f"r[cpu,{base},lib=1.0]"})
        for r, base in [(result("1.0"), "img-a"), (result("1.0", Status.REGRESSED), "img-b")]
    ]
    made = compat.build_compat(build_report(bases), None)
    assert walked == [1]
    hrefs = [ln.href for row in made.rows for cell in row.cells for ln in cell]
    assert hrefs == ["index.html#c0", "index.html#c1"]


def test_only_cells_with_older_records_ask_which_of_them_bisected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The grid (which axes a cell stands on) and the page (its "bisect" badge) gathered
    the bisection runs of every cell's records, one call a cell (a tenth of the page's
    rows); a cell of one record is its record's run, asked there. Still, a bisection's
    record makes its row's badge, whether it won the cell or is an older one there."""
    asked: list[str] = []
    for module, name in ((bisected_axes, "_bisections"), (views, "_bisected")):
        real = getattr(module, name)

        def counted(e: object, real: Callable[[object], object] = real, name: str = name) -> object:
            asked.append(name)
            return real(e)

        monkeypatch.setattr(module, name, counted)
    plain = [result(f"1.{i}") for i in range(5)]
    older = result("2.0", finished="2026-11-21T00:00:00+00:00").model_copy(
        update={"run_id": f"{BISECT_RUN_PREFIX}x"}
    )
    won = result("3.0").model_copy(update={"run_id": f"{BISECT_RUN_PREFIX}y"})
    data = build_report([*plain, older, result("2.0"), won])
    sections, _ = views.build_sections(data)
    assert sorted(asked) == ["_bisected", "_bisections"]  # the one cell of two records
    badges = {row.label: row.badge for s in sections for row in s.rows}
    assert badges == {**{f"1.{i}": "" for i in range(5)}, "2.0": "bisect", "3.0": "bisect"}
