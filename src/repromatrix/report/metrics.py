"""The key metric of a repro, which threshold applies to a metric, and number formatting.

Repro metrics are flat dotted keys (`mla.fa2.fp16.page1.max_abs`); thresholds use the same
keys or name a bound on a family of them (`max_rel_err` on `rel_err.*`, see
`match_threshold`). The key metric is declared (`key_metric` in matrix.yaml) or chosen: a
metric with a threshold first, then the one whose threshold best agrees with the verdicts.
Charts are in `charts.py`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from functools import lru_cache

from repromatrix.model import Repro, Status
from repromatrix.records import Result
from repromatrix.safetext import excerpt

# When no metric has a threshold, prefer error-like names over timings and counts.
_PREFERRED_SUFFIXES = (
    "max_abs", "rel_err", "max_rel", "mean_abs", "nan_count", "nans", "failed",
)  # fmt: skip


def _bound_of(key: str, metric: str) -> int | None:
    """How specifically threshold `key` names a bound on `metric` (higher: more specific),
    or None when it does not. In order:

    - the same key, or a dotted suffix of the metric (`max_abs` on `a.b.max_abs`);
    - `max_X` where X is the metric, a dotted suffix (`max_mismatch_frac` on
      `a.mismatch_frac`) or a dotted prefix (`max_rel_err` on `rel_err.s0p125.fused_chunk.dv`)
      of the metric: the upper bound of that metric or family;
    - `max_X` or `X` where X is any dotted part of the metric (`max_err` on `a.err.b`), as
      the judge reads a threshold when it names the failed check (`fingerprints._limits`):
      a bound the judge applied is never shown as one that bounds nothing;
    - `F_X` where F is the metric's first part and X a dotted suffix (`ort_max_abs_norm` on
      `ort.sdpa_vs_ref.max_abs_norm`).

    Tolerances that parametrise a test (`atol`, `rtol`) bound no single metric: they stay
    unmatched and are listed as such.
    """
    if key == metric:
        return 4 * len(key) + 3
    if metric.endswith("." + key):
        return 4 * len(key) + 2
    bare = key.removeprefix("max_")
    if (
        bare != key
        and bare
        and (metric == bare or metric.endswith("." + bare) or metric.startswith(bare + "."))
    ):
        return 4 * len(bare) + 1
    first, _, rest = metric.partition(".")
    if rest and key.startswith(first + "_"):
        tail = key.removeprefix(first + "_")
        if tail and (rest == tail or rest.endswith("." + tail)):
            return 4 * len(tail)
    if bare and bare in metric.split("."):
        return 4 * len(bare) - 1
    return None


def match_threshold(
    metric: str, thresholds: Mapping[str, float | None]
) -> tuple[str, float | None] | None:
    """(key, value) of the threshold that bounds `metric` (see `_bound_of`), or None."""
    if not thresholds:
        return None
    key = _bounding_key(metric, tuple(thresholds))
    return (key, thresholds[key]) if key is not None else None


@lru_cache(maxsize=1 << 14)
def _bounding_key(metric: str, keys: tuple[str, ...]) -> str | None:
    """The most specific of `keys` that bounds `metric` (the first among equals): the
    same few metric names and threshold keys recur in every record of a repro."""
    best: tuple[int, str] | None = None
    for key in keys:
        score = _bound_of(key, metric)
        if score is not None and (best is None or score > best[0]):
            best = (score, key)
    return best[1] if best is not None else None


def threshold_for(metric: str, thresholds: Mapping[str, float | None]) -> float | None:
    """The threshold of `metric` (see `match_threshold`), or None."""
    found = match_threshold(metric, thresholds)
    return found[1] if found is not None else None


def _bad(value: float | None, threshold: float | None) -> bool | None:
    if threshold is None:
        return None
    if value is None or math.isnan(value):
        return True
    return value > threshold


def choose_key_metric(results: Iterable[Result], declared: str | None = None) -> str | None:
    """The metric to chart for one repro's results (None when they carry no metrics).

    Declared, else by score: a metric with a threshold first, then the one whose
    threshold agrees with the most verdicts, one whose values on regressed cells and on
    passed cells do not overlap, the most values, an error-like name, the name.
    """
    results = list(results)
    # Every name in the order first met (the values are not looked at: no copy a record).
    names: dict[str, object] = {}
    for r in results:
        names.update(r.metrics)
    if declared and declared in names:
        return declared
    if not names:
        return None
    metrics = [r.metrics for r in results]
    statuses = [r.status for r in results]
    counts = _tally(metrics, statuses, [r.thresholds for r in results], names)

    def by_threshold(name: str) -> tuple[int, int]:
        with_threshold, agree, _ = counts[name]
        return (-min(with_threshold, 1), -agree)

    # The rest of the score is looked at only among the names best by their thresholds
    # (a repro of 100 metrics has a few with one): their value ranges are gathered alone.
    best = min(map(by_threshold, names))
    tied = [name for name in names if by_threshold(name) == best]

    def score(name: str) -> tuple[int, int, int, str]:
        suffix = next(
            (i for i, s in enumerate(_PREFERRED_SUFFIXES) if name.endswith(s)),
            len(_PREFERRED_SUFFIXES),
        )
        # Without thresholds (a bisect's upstream test), a metric that tells the regressed
        # cells from the passed ones beats one that is the same everywhere.
        separates = _separates([m.get(name) for m in metrics], statuses)
        return (-int(separates), -counts[name][2], suffix, name)

    return min(tied, key=score)


def _tally(
    metrics: list[Mapping[str, float | None]],
    statuses: list[Status],
    thresholds: list[Mapping[str, float | None]],
    names: Iterable[str],
) -> dict[str, tuple[int, int, int]]:
    """Per name: (with a threshold, agreeing with the verdict, with a value). Column by
    column: a name's values are gathered in one pass, then counted; thresholds are matched
    once per distinct set of them."""
    # One dict per distinct set of thresholds (records usually share them, but not those
    # a full validation made): each name is matched once per distinct set, not per record.
    same: dict[tuple[tuple[str, float | None], ...], Mapping[str, float | None]] = {}
    thresholds = [same.setdefault(tuple(t.items()), t) for t in thresholds]
    shared = {id(t): t for t in same.values() if t}
    counts: dict[str, tuple[int, int, int]] = {}
    for name in names:
        values = [m.get(name) for m in metrics]
        coverage = sum(1 for v in values if v is not None and not math.isnan(v))
        bounds = {key: threshold_for(name, t) for key, t in shared.items()}
        with_threshold = agree = 0
        if any(b is not None for b in bounds.values()):
            for value, status, t in zip(values, statuses, thresholds, strict=True):
                bound = bounds.get(id(t)) if t else None
                if bound is None:
                    continue
                with_threshold += 1
                if status.is_verdict and _bad(value, bound) == (status is Status.REGRESSED):
                    agree += 1
        counts[name] = (with_threshold, agree, coverage)
    return counts


def _separates(values: list[float | None], statuses: list[Status]) -> bool:
    """The values on regressed cells and those on passed cells do not overlap (both
    present; NaN and missing values left out)."""
    bad = [
        v
        for v, s in zip(values, statuses, strict=True)
        if s is Status.REGRESSED and v is not None and not math.isnan(v)
    ]
    good = [
        v
        for v, s in zip(values, statuses, strict=True)
        if s is Status.PASSED and v is not None and not math.isnan(v)
    ]
    if not bad or not good:
        return False
    return max(bad) < min(good) or min(bad) > max(good)


#: A metric (or threshold) the record keeps as null: the judge keeps NaN and inf so
#: (`records.finite_or_none`), JSON having neither. Every format says it in these words.
NOT_FINITE = "not finite"


@lru_cache(maxsize=1 << 16, typed=True)
def fmt_num(value: float | None) -> str:
    """A number as every output shows it: once per distinct value (a chart's titles and
    the page's details show the same 100,000 values, records repeat many of them); None
    (a value kept as null) as `NOT_FINITE`."""
    if value is None:
        return NOT_FINITE
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0:
        return "0"
    text = f"{value:.4g}"
    if _significant(text) < 4 and float(text) != value:
        # Rounded onto a rounder number than it is: 0.0100004 read "0.01" beside its
        # threshold 0.01, and a pass at 0.0099996 too. More digits, while they help.
        for digits in (6, 8):
            more = f"{value:.{digits}g}"
            if _significant(more) == digits or float(more) == value:
                return more
    return text


@lru_cache(maxsize=1 << 12)
def fmt_bound(value: float | None) -> str:
    """A threshold as every output shows it: `fmt_num`, with the digits it needs to read
    back exactly (1.23455, which four digits made "1.235"): a value beside it is shown on
    its own side of it (`fmt_against`) only if it is shown exactly. Thresholds are short
    numbers a person wrote, 0.01 and 1e-3: those read as before."""
    text = fmt_num(value)
    if value is None or not math.isfinite(value) or float(text) == value:
        return text
    return next(t for d in range(5, 18) if float(t := f"{value:.{d}g}") == value)


@lru_cache(maxsize=1 << 16, typed=True)
def fmt_against(value: float | None, bound: float | None) -> str:
    """`value` beside its threshold `bound` (as `fmt_bound` shows it): `fmt_num`, with more
    digits where four put it on the bound or across it. A regression at 1.23456 and a pass
    at 1.23454 each read "1.235" beside a threshold of 1.23455, whose own four digits made
    it "1.235" too; the rounding of `fmt_num` alone sees only rounder numbers (0.01)."""
    text = fmt_num(value)
    if value is None or bound is None or not math.isfinite(value) or not math.isfinite(bound):
        return text
    side = (value > bound) - (value < bound)
    for digits in range(5, 18):
        shown = float(text)
        if (shown > bound) - (shown < bound) == side:
            return text
        text = f"{value:.{digits}g}"
    return text  # 17 digits: the value itself


def _significant(text: str) -> int:
    """The significant digits `g` formatting wrote: "0.0100004" has 6, "1.5e+300" 2.
    (String methods, not a pattern: every number of a report comes here.)"""
    return len(text.partition("e")[0].lstrip("-0.").replace(".", ""))


def percent(p: float, digits: int = 1) -> str:
    """`p` as a percentage rounded down, so a doubt is never rounded away: 0.99996 is
    "99.9%", not "100.0%" (a posterior is never certain). Always a plain number, as
    scripts that read "confidence: N%" expect."""
    scale = 10 ** (digits + 2)
    return f"{math.floor(p * scale + 1e-9) / scale:.{digits}%}"


def digits_of(asked: float | None) -> int:
    """The decimals of a percentage that show `asked` (at least one): a confidence asked
    as 0.9999 and reached read "99.9%", less than was asked, at exit 0."""
    digits = 1
    while (
        asked is not None
        and digits < 6
        and not math.isclose(round(asked * 100, digits), asked * 100, abs_tol=1e-9)
    ):
        digits += 1
    return digits


def guess_odds(confidence: float | None, likely: float | None, digits: int = 0) -> str:
    """How sure an inconclusive best guess is. The least a plausible pair of rates gives
    (`confidence`) can be ~0 for the guess of a very flaky repro: alone, "most likely X
    (0%)" read as a contradiction, so how likely it is (`likely`) comes first."""
    sure = percent(confidence, digits) if confidence is not None else "unknown"
    if likely is None or confidence is None or likely <= confidence:
        return sure
    return f"{percent(likely, digits)} likely, at least {sure} whatever the rates"


def key_metrics_not_found(repros: Iterable[Repro], results: Iterable[Result]) -> list[str]:
    """One line per repro whose declared `key_metric` none of its records with metrics
    has: the report charts a metric it chose instead, and a misspelt name went unsaid."""
    from repromatrix.config.messages import did_you_mean

    pending = {r.name: r for r in repros if r.key_metric}
    seen: dict[str, dict[str, None]] = {}
    for res in results:
        repro = pending.get(res.repro)
        if repro is None or not res.metrics:
            continue
        if repro.key_metric in res.metrics:
            del pending[res.repro]
            seen.pop(res.repro, None)
            continue
        names = seen.setdefault(res.repro, {})
        if len(names) < 1000:  # enough for a hint; a repro may write thousands
            names.update(dict.fromkeys(res.metrics))
    lines = []
    for name, names in seen.items():
        repro = pending[name]
        declared = str(repro.key_metric)
        hint = did_you_mean(declared, names).removeprefix("; ")
        lines.append(
            f"{repro.key_metric_where}: key_metric '{excerpt(declared, 64)}' of repro "
            f"'{name}' is in none of its records, so the report charts one it chose; fix "
            f"the name ({hint or f'its records have {_few(names)}'})"
        )
    return lines


def _few(names: Iterable[str]) -> str:
    listed = [f"'{excerpt(n, 64)}'" for n in sorted(names)]
    return ", ".join(listed[:5]) + (f" and {len(listed) - 5} more" if len(listed) > 5 else "")
