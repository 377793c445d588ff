"""The geometry of metric charts (pure): one line per series, one colour per GPU type.

x is the ordered axis (revisions or bases), y the metric (log scale when values span two
decades). A point whose metric is NaN/null gets a × on the top edge; a point with no value
at all (timeout, error, untestable, not run, no result yet) breaks the line and gets its
status symbol on the bottom edge. Sizes are computed so that no label leaves the chart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from repromatrix.report.metrics import fmt_against, fmt_bound, fmt_num

#: One colour per GPU type, the same in every chart of a page (see `gpu_colors`).
PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#7f7f7f",
    "#bcbd22",
)
#: Series of one GPU type within a chart (other base, other pins) differ by dash.
DASHES = ("", "6 3", "2 3", "8 3 2 3")

#: Chart text is 10 px monospace (report.css): 0.6 em per character, with a margin.
CHAR_W = 6.6
FONT_H = 11.0
#: Tick labels longer than this are cut (the full text is the label's tooltip).
MAX_TICK_CHARS = 40
SIN45 = math.sqrt(0.5)


def gpu_colors(gpus: Sequence[str]) -> dict[str, str]:
    """GPU type → colour, by position in `gpus` (the page's GPU order)."""
    out: dict[str, str] = {}
    for gpu in gpus:
        out.setdefault(gpu, PALETTE[len(out) % len(PALETTE)])
    return out


@dataclass(frozen=True, kw_only=True)
class SeriesValues:
    """One series' values along the axis, as a chart takes them."""

    label: str
    gpu: str
    color: str
    dash: str = ""
    #: Row → metric value; None or NaN: the metric was recorded but is not a number.
    values: Mapping[str, float | None] = field(default_factory=dict)
    #: Row → status name of a point of this series without a value (timeout, not_run...).
    gaps: Mapping[str, str] = field(default_factory=dict)
    #: Rows whose place on the axis is unknown ("order unknown"): their points are drawn
    #: where the axis puts them, after the ordered ones, but never joined to the line.
    apart: frozenset[str] = frozenset()


class ChartPoint(NamedTuple):
    """A mark on a chart (a tuple: a chart of 100,000 cells makes as many)."""

    x: float
    y: float
    title: str
    #: Status name for gap marks ("timeout", "none", ...); "" for values.
    status: str = ""


@dataclass(frozen=True, kw_only=True)
class ChartLine:
    label: str
    gpu: str
    color: str
    dash: str
    #: Polylines ("x,y x,y ..."); a NaN value or a point without a value breaks the line.
    segments: tuple[str, ...]
    points: tuple[ChartPoint, ...]
    #: NaN/null values: × marks on the top edge.
    missing: tuple[ChartPoint, ...]
    #: Points without a value: their status symbol on the bottom edge.
    gaps: tuple[ChartPoint, ...] = ()
    #: Lines drawn earlier are wider, so one hidden under a later line with the same values
    #: (two GPUs that agree) still shows as its outline.
    width: float = 1.5
    radius: float = 2.5


@dataclass(frozen=True, kw_only=True)
class Tick:
    pos: float
    label: str
    #: The whole label when `label` was cut.
    full: str = ""


@dataclass(frozen=True, kw_only=True)
class Chart:
    metric: str
    width: int
    height: int
    left: int
    top: int
    plot_w: int
    plot_h: int
    log: bool
    lines: tuple[ChartLine, ...]
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    threshold_y: float | None
    threshold_label: str
    #: Where x tick labels start (below the plot).
    x_label_y: float = 0.0


@dataclass(frozen=True, kw_only=True)
class _YScale:
    """Where a value lands vertically: linear, or log10 when values span two decades."""

    top: float
    height: float
    log: bool
    lo: float
    hi: float

    @classmethod
    def fit(cls, bounds: Sequence[float], *, top: float, height: float) -> _YScale:
        positive = [v for v in bounds if v > 0]
        if positive and max(positive) / min(positive) >= 100 and min(bounds) >= 0:
            lo = math.floor(math.log10(min(positive)))
            hi = math.ceil(math.log10(max(positive)))
            return cls(top=top, height=height, log=True, lo=lo, hi=max(hi, lo + 1))
        vmin, vmax = min(*bounds, 0.0), max(bounds)
        if vmax <= vmin:  # one value, at most 0: a span of 1 above it, or up to 0 when
            # the value is below -2**53, where adding 1 gives the same number (-3.4e38,
            # float32's lowest, is a masked logit's minimum).
            vmax = vmin + 1 if vmin + 1 > vmin else 0.0
        return cls(top=top, height=height, log=False, lo=vmin, hi=vmax)

    def _fraction(self, v: float) -> float:
        """How far up the linear axis `v` is (0 to 1). Halved first when the span is
        more than a float holds (-1e308 to 1e308): the same fraction, never inf/inf."""
        span = self.hi - self.lo
        if math.isfinite(span):
            return (v - self.lo) / span
        return (v / 2 - self.lo / 2) / (self.hi / 2 - self.lo / 2)

    def pos(self, v: float) -> float:
        if not self.log:
            return self.top + self.height - self._fraction(v) * self.height
        if v <= 0:  # values ≤ 0 on a log scale sit on the bottom edge
            return self.top + self.height
        return (
            self.top + self.height - (math.log10(v) - self.lo) / (self.hi - self.lo) * self.height
        )

    def ticks(self) -> tuple[Tick, ...]:
        if self.log:
            lo, hi = int(self.lo), int(self.hi)
            step = max(1, (hi - lo) // 6)
            # 1e309 is more than a float holds; it is only ever the top (values near
            # float64's largest, 1.8e308, as an overflow's max_abs).
            return tuple(
                Tick(pos=self.pos(10.0**e) if e <= 308 else self.top, label=f"1e{e}")
                for e in range(lo, hi + 1, step)
            )
        span = self.hi - self.lo
        if math.isfinite(span):  # a quarter first: twice 1e308 is more than a float holds
            values = [self.lo + span / 4 * i for i in range(5)]
        else:  # the span is more than a float holds: weigh the ends, a quarter each
            values = [self.lo / 4 * (4 - i) + self.hi / 4 * i for i in range(5)]
        return tuple(Tick(pos=self.pos(v), label=fmt_num(v)) for v in values)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TICK_CHARS else text[: MAX_TICK_CHARS - 1] + "…"


def _line(
    n: int,
    total: int,
    s: SeriesValues,
    rows: Sequence[str],
    xs: Sequence[float],
    y: _YScale,
    x_text: Sequence[str],
    threshold: float | None = None,
) -> ChartLine:
    """One series: polylines broken at NaN/null values and at points without a value;
    `xs`: where each row is (computed once for every line of the chart), `x_text` each
    as the polylines write it."""
    segments: list[str] = []
    current: list[str] = []
    points: list[ChartPoint] = []
    missing: list[ChartPoint] = []
    gaps: list[ChartPoint] = []

    def brk() -> None:
        nonlocal current
        if current:
            segments.append(" ".join(current))
            current = []

    values = s.values
    # Lines repeat few values (100,000 points, 4 values): each float's height, text and
    # "y" of the polyline is worked out once (0.0 and ints aside: -0.0 == 0.0 == 0).
    known: dict[float, tuple[float, str, str]] = {}
    for i, row in enumerate(rows):
        if row in values:
            v = values[row]
            if v is None or not math.isfinite(v):
                brk()
                text = fmt_num(v)  # None: kept as null, "not finite" as details say
                missing.append(ChartPoint(x=xs[i], y=y.top, title=f"{s.label} @ {row}: {text}"))
                continue
            seen = known.get(v) if type(v) is float and v else None
            if seen is None:
                py = y.pos(v)
                seen = (py, fmt_against(v, threshold), f"{py:.1f}")  # on its side of it
                if type(v) is float and v:
                    known[v] = seen
            py, text, at = seen
            px = xs[i]
            title = f"{s.label} @ {row}: {text}"
            if row in s.apart:
                brk()
                title += " (order unknown: not joined to the line)"
            else:
                current.append(f"{x_text[i]},{at}")
            points.append(ChartPoint(x=px, y=py, title=title))
        elif row in s.gaps:
            brk()
            status = s.gaps[row]
            # Stacked per series, so two GPUs' marks at one point stay apart.
            gy = y.top + y.height - 7 - 12 * (n % 8)
            gaps.append(
                ChartPoint(
                    x=xs[i],
                    y=gy,
                    title=f"{s.label} @ {row}: no value ({status.replace('_', ' ')})",
                    status=status,
                )
            )
        # else: not a point of this series (e.g. a commit only another GPU tested)
    brk()
    under = max(0, total - 1 - n)
    width = min(1.5 + 1.5 * under, 6.0)
    return ChartLine(
        width=width,
        radius=2.5 + (width - 1.5) / 2,
        label=s.label,
        gpu=s.gpu,
        color=s.color,
        dash=s.dash,
        segments=tuple(segments),
        points=tuple(points),
        missing=tuple(missing),
        gaps=tuple(gaps),
    )


def build_chart(
    *,
    metric: str,
    rows: Sequence[str],
    series: Sequence[SeriesValues],
    threshold: float | None,
) -> Chart | None:
    """Lay out one chart: x = ordered axis points, y = metric, one line per series.

    None when no series has a finite value (nothing to draw a scale from).
    """
    values = [v for s in series for v in s.values.values() if v is not None and math.isfinite(v)]
    if not values or not rows:
        return None
    top, plot_h = 12, 200
    y = _YScale.fit(
        [*values, *([threshold] if threshold is not None else [])], top=top, height=plot_h
    )
    y_ticks = y.ticks()
    left = max(60, math.ceil(max(len(t.label) for t in y_ticks) * CHAR_W + 14))
    plot_w = max(240, min(900, 28 * len(rows)))

    def xpos(i: int) -> float:
        if len(rows) == 1:
            return left + plot_w / 2
        return left + i * plot_w / (len(rows) - 1)

    xs = [xpos(i) for i in range(len(rows))]
    x_text = [f"{x:.1f}" for x in xs]
    every = max(1, math.ceil(len(rows) / 40))
    x_ticks = tuple(
        Tick(pos=xpos(i), label=_cut(r), full=r if _cut(r) != r else "")
        for i, r in enumerate(rows)
        if i % every == 0
    )
    # Labels hang at 45° from their tick: each reaches (w + h)·sin45 right of and below it.
    label_y = top + plot_h + 8
    reach = [((len(t.label) * CHAR_W) + FONT_H) * SIN45 for t in x_ticks]
    right = max([left + plot_w + 12, *(t.pos + r + 6 for t, r in zip(x_ticks, reach, strict=True))])
    bottom = label_y + max(reach, default=0.0) + 6
    show_threshold = threshold is not None and (threshold > 0 or not y.log)
    label = f"threshold {fmt_bound(threshold)}" if threshold is not None else ""
    return Chart(
        metric=metric,
        width=math.ceil(right),
        height=math.ceil(bottom),
        left=left,
        top=top,
        plot_w=plot_w,
        plot_h=plot_h,
        log=y.log,
        lines=tuple(
            _line(n, len(series), s, rows, xs, y, x_text, threshold) for n, s in enumerate(series)
        ),
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        threshold_y=y.pos(threshold) if show_threshold and threshold is not None else None,
        threshold_label=label,
        x_label_y=label_y,
    )
