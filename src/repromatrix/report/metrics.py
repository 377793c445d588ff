"""The key metric of a repro, number formatting, and the geometry of metric charts (pure).

Repro metrics are flat dotted keys (`mla.fa2.fp16.page1.max_abs`); thresholds use the same
keys. The key metric is declared (`params.key_metric` in matrix.yaml) or chosen: a metric
with a threshold first, then the one whose threshold best agrees with the verdicts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from repromatrix.model import Result, Status

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
    bounds = [*values, *([threshold] if threshold is not None else [])]
    positive = [v for v in bounds if v > 0]
    log = bool(positive) and max(positive) / min(positive) >= 100 and min(bounds) >= 0
    left, top, plot_h = 70, 12, 200
    plot_w = max(240, min(900, 28 * len(rows)))
    width, height = left + plot_w + 20, top + plot_h + 90

    if log:
        lo = math.floor(math.log10(min(positive)))
        hi = math.ceil(math.log10(max(positive)))
        if hi == lo:
            hi += 1

        def ypos(v: float) -> float:
            if v <= 0:
                return top + plot_h
            return top + plot_h - (math.log10(v) - lo) / (hi - lo) * plot_h

        step = max(1, (hi - lo) // 6)
        y_ticks = tuple(Tick(pos=ypos(10.0**e), label=f"1e{e}") for e in range(lo, hi + 1, step))
    else:
        vmin, vmax = min(*bounds, 0.0), max(bounds)
        if vmax == vmin:
            vmax = vmin + 1.0

        def ypos(v: float) -> float:
            return top + plot_h - (v - vmin) / (vmax - vmin) * plot_h

        y_ticks = tuple(
            Tick(
                pos=ypos(vmin + (vmax - vmin) * i / 4), label=fmt_num(vmin + (vmax - vmin) * i / 4)
            )
            for i in range(5)
        )

    def xpos(i: int) -> float:
        if len(rows) == 1:
            return left + plot_w / 2
        return left + i * plot_w / (len(rows) - 1)

    every = max(1, math.ceil(len(rows) / 40))
    x_ticks = tuple(Tick(pos=xpos(i), label=r) for i, r in enumerate(rows) if i % every == 0)
    lines: list[ChartLine] = []
    for n, (label, vals) in enumerate(series):
        segments: list[str] = []
        current: list[str] = []
        points: list[ChartPoint] = []
        missing: list[ChartPoint] = []
        for i, row in enumerate(rows):
            if row not in vals:
                continue  # no result here: neither a point nor a gap
            v = vals[row]
            if v is None or not math.isfinite(v):
                if current:
                    segments.append(" ".join(current))
                    current = []
                missing.append(
                    ChartPoint(
                        x=xpos(i),
                        y=top,
                        title=f"{label} @ {row}: {'null' if v is None else fmt_num(v)}",
                    )
                )
                continue
            x, y = xpos(i), ypos(v)
            current.append(f"{x:.1f},{y:.1f}")
            points.append(ChartPoint(x=x, y=y, title=f"{label} @ {row}: {fmt_num(v)}"))
        if current:
            segments.append(" ".join(current))
        lines.append(
            ChartLine(
                label=label,
                color=PALETTE[n % len(PALETTE)],
                dash=DASHES[(n // len(PALETTE)) % len(DASHES)],
                segments=tuple(segments),
                points=tuple(points),
                missing=tuple(missing),
            )
        )
    threshold_y = None
    if threshold is not None and (threshold > 0 or not log):
        threshold_y = ypos(threshold)
    return Chart(
        metric=metric,
        width=width,
        height=height,
        left=left,
        top=top,
        plot_w=plot_w,
        plot_h=plot_h,
        log=log,
        lines=tuple(lines),
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        threshold_y=threshold_y,
        threshold_label=f"threshold {fmt_num(threshold)}" if threshold is not None else "",
    )
