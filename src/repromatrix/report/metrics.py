"""The key metric of a repro, number formatting, and the geometry of metric charts (pure).

Repro metrics are flat dotted keys (`mla.fa2.fp16.page1.max_abs`); thresholds use the same
keys. The key metric is declared (`params.key_metric` in matrix.yaml) or chosen: a metric
with a threshold first, then the one whose threshold best agrees with the verdicts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from repromatrix.model import Status
from repromatrix.records import Result

# When no metric has a threshold, prefer error-like names over timings and counts.
_PREFERRED_SUFFIXES = (
    "max_abs", "rel_err", "max_rel", "mean_abs", "nan_count", "nans", "failed",
)  # fmt: skip


def threshold_for(metric: str, thresholds: Mapping[str, float | None]) -> float | None:
    """The threshold of `metric`: same key, else a key that is a dotted suffix of it."""
    if metric in thresholds:
        return thresholds[metric]
    best: tuple[int, float | None] | None = None
    for key, value in thresholds.items():
        if metric.endswith("." + key) and (best is None or len(key) > best[0]):
            best = (len(key), value)
    return best[1] if best is not None else None


def _bad(value: float | None, threshold: float | None) -> bool | None:
    if threshold is None:
        return None
    if value is None or math.isnan(value):
        return True
    return value > threshold


def choose_key_metric(results: Iterable[Result], declared: str | None = None) -> str | None:
    """The metric to chart for one repro's results (None when they carry no metrics)."""
    results = list(results)
    names: dict[str, None] = {}
    for r in results:
        names.update(dict.fromkeys(r.metrics))
    if declared and declared in names:
        return declared
    if not names:
        return None

    def separates(name: str) -> bool:
        """Its values on regressed cells and on passed cells do not overlap."""
        bad = [r.metrics.get(name) for r in results if r.status is Status.REGRESSED]
        good = [r.metrics.get(name) for r in results if r.status is Status.PASSED]
        bad_v = [v for v in bad if v is not None and not math.isnan(v)]
        good_v = [v for v in good if v is not None and not math.isnan(v)]
        if not bad_v or not good_v:
            return False
        return max(bad_v) < min(good_v) or min(bad_v) > max(good_v)

    def score(name: str) -> tuple[int, int, int, int, int, str]:
        with_threshold = 0
        agree = 0
        coverage = 0
        for r in results:
            value = r.metrics.get(name)
            if name in r.metrics and value is not None and not math.isnan(value):
                coverage += 1
            t = threshold_for(name, r.thresholds)
            if t is None:
                continue
            with_threshold += 1
            if r.status.is_verdict:
                predicted = _bad(value, t)
                if predicted == (r.status is Status.REGRESSED):
                    agree += 1
        suffix = next(
            (i for i, s in enumerate(_PREFERRED_SUFFIXES) if name.endswith(s)),
            len(_PREFERRED_SUFFIXES),
        )
        # Without thresholds (a bisect's upstream test), a metric that tells the regressed
        # cells from the passed ones beats one that is the same everywhere.
        return (-min(with_threshold, 1), -agree, -int(separates(name)), -coverage, suffix, name)

    return min(names, key=score)


def fmt_num(value: float | None) -> str:
    if value is None:
        return "—"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0:
        return "0"
    return f"{value:.4g}"


# -- charts -------------------------------------------------------------------------------

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
DASHES = ("", "6 3", "2 3", "8 3 2 3")


@dataclass(frozen=True, kw_only=True)
class ChartPoint:
    x: float
    y: float
    title: str


@dataclass(frozen=True, kw_only=True)
class ChartLine:
    label: str
    color: str
    dash: str
    #: Polylines ("x,y x,y ..."); a missing or NaN value breaks the line.
    segments: tuple[str, ...]
    points: tuple[ChartPoint, ...]
    #: Points whose value is NaN/null, drawn as marks on the top edge (x, title).
    missing: tuple[ChartPoint, ...]


@dataclass(frozen=True, kw_only=True)
class Tick:
    pos: float
    label: str


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
        return cls(top=top, height=height, log=False, lo=vmin, hi=vmax if vmax > vmin else vmin + 1)

    def pos(self, v: float) -> float:
        if not self.log:
            return self.top + self.height - (v - self.lo) / (self.hi - self.lo) * self.height
        if v <= 0:  # values ≤ 0 on a log scale sit on the bottom edge
            return self.top + self.height
        return (
            self.top + self.height - (math.log10(v) - self.lo) / (self.hi - self.lo) * self.height
        )

    def ticks(self) -> tuple[Tick, ...]:
        if self.log:
            lo, hi = int(self.lo), int(self.hi)
            step = max(1, (hi - lo) // 6)
            return tuple(
                Tick(pos=self.pos(10.0**e), label=f"1e{e}") for e in range(lo, hi + 1, step)
            )
        values = [self.lo + (self.hi - self.lo) * i / 4 for i in range(5)]
        return tuple(Tick(pos=self.pos(v), label=fmt_num(v)) for v in values)


def _line(
    n: int,
    label: str,
    values: Mapping[str, float | None],
    rows: Sequence[str],
    xpos: Callable[[int], float],
    y: _YScale,
) -> ChartLine:
    """One series: polylines broken at NaN/null values, which get a mark on the top edge."""
    segments: list[str] = []
    current: list[str] = []
    points: list[ChartPoint] = []
    missing: list[ChartPoint] = []
    for i, row in enumerate(rows):
        if row not in values:
            continue  # no result here: neither a point nor a gap
        v = values[row]
        if v is None or not math.isfinite(v):
            if current:
                segments.append(" ".join(current))
                current = []
            text = "null" if v is None else fmt_num(v)
            missing.append(ChartPoint(x=xpos(i), y=y.top, title=f"{label} @ {row}: {text}"))
            continue
        px, py = xpos(i), y.pos(v)
        current.append(f"{px:.1f},{py:.1f}")
        points.append(ChartPoint(x=px, y=py, title=f"{label} @ {row}: {fmt_num(v)}"))
    if current:
        segments.append(" ".join(current))
    return ChartLine(
        label=label,
        color=PALETTE[n % len(PALETTE)],
        dash=DASHES[(n // len(PALETTE)) % len(DASHES)],
        segments=tuple(segments),
        points=tuple(points),
        missing=tuple(missing),
    )


def build_chart(
    *,
    metric: str,
    rows: Sequence[str],
    series: Sequence[tuple[str, Mapping[str, float | None]]],
    threshold: float | None,
) -> Chart | None:
    """Lay out one chart: x = ordered axis points, y = metric, one line per series.

    Log scale when the positive values span more than two decades; values ≤ 0 on a log
    scale sit on the bottom edge (titled with their value); NaN/null values are gaps.
    """
    values = [v for _, vals in series for v in vals.values() if v is not None and math.isfinite(v)]
    if not values or not rows:
        return None
    left, top, plot_h = 70, 12, 200
    plot_w = max(240, min(900, 28 * len(rows)))
    y = _YScale.fit(
        [*values, *([threshold] if threshold is not None else [])], top=top, height=plot_h
    )

    def xpos(i: int) -> float:
        if len(rows) == 1:
            return left + plot_w / 2
        return left + i * plot_w / (len(rows) - 1)

    every = max(1, math.ceil(len(rows) / 40))
    show_threshold = threshold is not None and (threshold > 0 or not y.log)
    return Chart(
        metric=metric,
        width=left + plot_w + 20,
        height=top + plot_h + 90,
        left=left,
        top=top,
        plot_w=plot_w,
        plot_h=plot_h,
        log=y.log,
        lines=tuple(_line(n, label, vals, rows, xpos, y) for n, (label, vals) in enumerate(series)),
        x_ticks=tuple(Tick(pos=xpos(i), label=r) for i, r in enumerate(rows) if i % every == 0),
        y_ticks=y.ticks(),
        threshold_y=y.pos(threshold) if show_threshold and threshold is not None else None,
        threshold_label=f"threshold {fmt_num(threshold)}" if threshold is not None else "",
    )
