"""A repro's charts, one per library its series run along (pure).

Two libraries bisected in one repro (`bisected_axes`: la, then lb at la's bad end) make one
grid whose rows are la's revisions then lb's. Its one chart laid lb's series on that x
axis too: lb's points to the right of la's, as if lb's commits came after la's newest.
Each library's series get a chart of their own here, along that library's revisions
alone, titled with it (the table keeps one grid: its columns say "along la" / "along lb").
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from itertools import pairwise

from markupsafe import Markup

from repromatrix.grid import Grid
from repromatrix.points import BASE_AXIS, Series
from repromatrix.report.charts import Chart


class NoChart(Enum):
    """Why an axis of a repro has no chart, as the page says it in the chart's place (a
    chart not drawn left nothing there, as if it had been lost); {by}: the axis."""

    NO_RESULT = "no cell along {by} has a result yet"
    NO_METRIC = "no key metric recorded"
    NO_VALUE = "no cell along {by} recorded a value of it"
    #: Each kept as null: no finite value to draw a scale from (`build_chart`).
    NOT_FINITE = "no cell along {by} recorded a finite value of it (each is NaN or inf)"


@dataclass(frozen=True, kw_only=True)
class AxisChart:
    """One chart of a repro's section, with what its caption says beside it; or, where
    none was drawn (`chart` None), why (`why`)."""

    chart: Chart | None = None
    #: The library (or "image / base") its x axis runs along; "" where the repro has one
    #: axis only (the section's title says it).
    title: str = ""
    #: The threshold drawn on it, as the records name it (e.g. max_rel_err).
    threshold_key: str | None = None
    #: Series with no value of the key metric at all, left out of it.
    unplotted: tuple[str, ...] = ()
    why: NoChart | None = None


#: `build._chart`: a grid's chart of a metric (GPU colours given), the threshold key drawn
#: on it and the series left out.
ChartOf = Callable[[Grid, str, Mapping[str, str]], tuple[Chart | None, str | None, tuple[str, ...]]]


def axis_title(axis: str) -> str:
    return "image / base" if axis == BASE_AXIS else axis


def repro_charts(
    grid: Grid, metric: str | None, colors: Mapping[str, str], chart_of: ChartOf
) -> tuple[Chart | None, str | None, tuple[str, ...], tuple[AxisChart, ...]]:
    """The key metric's chart of a repro (`chart_of`'s three), and (): or, where its
    series run along two libraries, no such chart and one per library, along its own
    revisions, titled with it. An axis with no chart gets, in its place, one saying why
    (`why`): a repro of one axis too, as the last of the four."""
    parts = axis_grids(grid)
    if not parts:
        drawn = chart_of(grid, metric, colors) if metric is not None else (None, None, ())
        if drawn[0] is not None or not grid.series:
            return (*drawn, ())
        return None, None, (), (AxisChart(why=_why(grid, metric)),)
    per = []
    for g in parts:  # in the axes' order, a chart or why there is none alike
        c, key, left = chart_of(g, metric, colors) if metric is not None else (None, None, ())
        why = _why(g, metric) if c is None else None
        title = axis_title(g.axis)
        per.append(AxisChart(chart=c, title=title, threshold_key=key, unplotted=left, why=why))
    return None, None, (), tuple(per)


def _why(grid: Grid, metric: str | None) -> NoChart:
    """Why `grid` (one axis' cells) drew no chart of `metric`."""
    results = [e.result for e in grid.entries.values() if e.result is not None]
    if not results:
        return NoChart.NO_RESULT
    if metric is None:
        return NoChart.NO_METRIC
    # Recorded, each as null: `build_chart` has no finite value to draw a scale from.
    if any(metric in r.metrics for r in results):
        return NoChart.NOT_FINITE
    return NoChart.NO_VALUE


def no_chart_words(why: NoChart, metric: str | None, by: str) -> Markup:
    """The line in place of a chart not drawn: "No chart of err by lb: no cell along lb
    recorded a value of it."."""
    of = Markup(" of <code>{}</code>").format(metric) if metric is not None else ""
    return Markup("No chart{of} by {by}: " + why.value + ".").format(of=of, by=by)


def axis_grids(grid: Grid) -> list[Grid]:
    """The grid split by the axis its series run along: each part holds those series
    (entries renumbered) and the rows of that axis alone, in that axis' order. [] when
    every series runs along one axis."""
    axes = list(dict.fromkeys(s.axis for s in grid.series))
    if len(axes) < 2:
        return []
    out: list[Grid] = []
    for axis in axes:
        cols = [c for c, s in enumerate(grid.series) if s.axis == axis]
        new = {c: i for i, c in enumerate(cols)}
        series = tuple(grid.series[c] for c in cols)
        entries = {(new[c], row): e for (c, row), e in grid.entries.items() if c in new}
        rows = _axis_rows(grid.rows, series)
        out.append(replace(grid, axis=axis, rows=rows, series=series, entries=entries))
    return out


def _axis_rows(rows: Sequence[str], series: Sequence[Series]) -> tuple[str, ...]:
    """The rows of these series' points, in their axis' order: each series' ordered points
    are in that order, so their sequences are merged (a label both libraries have, "1.0"
    of la and of lb, is one row of the joined grid, at la's place); ties, and the points
    whose place is unknown (after the others, as the grid has them), by the grid's rows."""
    at = {row: i for i, row in enumerate(rows)}
    seqs: list[list[str]] = []
    apart: set[str] = set()
    for s in series:
        apart |= s.unordered
        seqs.append([p.label for p in s.points if p.label not in s.unordered])
    ordered = {label for seq in seqs for label in seq}
    apart -= ordered
    after: dict[str, set[str]] = {label: set() for label in ordered}
    before = dict.fromkeys(ordered, 0)
    for seq in seqs:
        for a, b in pairwise(seq):
            if b not in after[a]:
                after[a].add(b)
                before[b] += 1
    big = len(at)
    ready = [(at.get(label, big), label) for label, n in before.items() if n == 0]
    heapq.heapify(ready)
    out: list[str] = []
    while ready:
        _, label = heapq.heappop(ready)
        out.append(label)
        for b in after[label]:
            before[b] -= 1
            if before[b] == 0:
                heapq.heappush(ready, (at.get(b, big), b))
    # Series that disagree on an order (never so of one axis' points): the rest by the grid.
    left = sorted(ordered - set(out), key=lambda label: (at.get(label, big), label))
    return (*out, *left, *sorted(apart, key=lambda label: (at.get(label, big), label)))
