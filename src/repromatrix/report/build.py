"""From result records (and optionally the matrix) to what every report format shows.
Pure: the only I/O of the report package is in `repromatrix.report.write_report` (and the
git read it may ask `ordering` for)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from repromatrix.entries import Entry, collect_entries
from repromatrix.fingerprints import split_checks
from repromatrix.grid import Grid, build_grids, choose_axes
from repromatrix.model import CPU_GPU, STATUS_TEXT, Cell, SourceKind, Status
from repromatrix.ordering import Orders, build_orders, listed_between, listed_rows, rev_infos
from repromatrix.points import Point, PointVerdict, Series, unsteady, unsure_name
from repromatrix.ranges import Finding, find_intervals
from repromatrix.records import Result
from repromatrix.report.axis_charts import AxisChart, axis_title, repro_charts
from repromatrix.report.calibrated import calibrated
from repromatrix.report.charts import DASHES, Chart, SeriesValues, build_chart, gpu_colors
from repromatrix.report.machine_bounds import with_machine_caveats
from repromatrix.report.machines import MachineSummary, machines
from repromatrix.report.metrics import choose_key_metric, match_threshold, threshold_for
from repromatrix.report.older import older_definitions
from repromatrix.report.release_lines import with_release_line_caveats
from repromatrix.report.unlisted import describe_unlisted
from repromatrix.report.unlisted_releases import series_filler
from repromatrix.report.untested import Fill, with_untested_rows
from repromatrix.report.yanked import old_listing_notes
from repromatrix.revision_catalog import build_catalog
from repromatrix.revision_order import RevInfo
from repromatrix.revisions import Catalog
from repromatrix.store import LoadProblem

if TYPE_CHECKING:
    from repromatrix.config import Matrix
    from repromatrix.gitlog import Line

#: Status names for counts, in display order; "none" is a cell with no result yet.
STATUS_ORDER: tuple[str, ...] = tuple(STATUS_TEXT)


@dataclass(frozen=True, kw_only=True)
class SummaryRow:
    """One series of one repro, as the summary table and the README show it."""

    repro: str
    gpu: str
    #: GPU plus whatever else is fixed along the series (base, other libraries).
    context: str
    axis: str
    sentence: str
    reproduced: bool
    first_bad: str | None = None
    last_good: str | None = None
    last_bad: str | None = None
    first_good: str | None = None
    open_start: bool = False
    open_end: bool = False
    intervals: int = 0
    #: The last interval's last bad point when it is still present at the newest verdict
    #: (with several intervals, the first one's end says nothing of that).
    still_bad_at: str | None = None
    #: The intervals after the first: (first bad, first good or None while still present,
    #: points without a verdict just before the first bad, and just before the first good).
    later: tuple[tuple[str, str | None, tuple[str, ...], tuple[str, ...]], ...] = ()
    #: Points without a verdict (flaky, errors) just before `first_bad` and just before
    #: `first_good`: the change may lie at one of them.
    unsure_before: tuple[str, ...] = ()
    unsure_after: tuple[str, ...] = ()
    #: Points without a verdict inside the intervals (it may have been fixed and come back).
    unsure_inside: tuple[str, ...] = ()
    flaky: tuple[str, ...] = ()
    #: "1.1 (2 passed, 1 regressed)": the flaky points of a series that regressed nowhere
    #: else ("" otherwise): not reproduced steadily, yet seen.
    flaky_only: str = ""
    #: "1.4 (1 passed, 1 regressed)": flaky points of a series that regressed steadily,
    #: other than those named at an interval's ends (`Finding.flaky_apart`).
    flaky_apart: str = ""
    #: Bad points whose place on the axis is unknown (commits without a mirror).
    bad_unordered: tuple[str, ...] = ()
    #: Points whose place is unknown that regressed, flaky ones too (`Finding.bad_apart`):
    #: the regression may begin at one of them, before `first_bad`.
    bad_apart: tuple[str, ...] = ()
    #: A point whose order is unknown has a verdict: "first tested" holds of the known order.
    seen_apart: bool = False
    #: Passes whose place is unknown beside a regression still present (any may be its
    #: fix: `Finding.passed_apart`).
    passed_unordered: tuple[str, ...] = ()
    #: What the sentence adds of its boundaries (`Finding.caveats`: machines that disagree).
    caveats: tuple[str, ...] = ()
    key_metric: str | None = None
    #: Key metric at `first_bad`, and at `first_good` (else `last_good`); NaN: kept as null.
    bad_value: float | None = None
    good_value: float | None = None
    threshold: float | None = None
    issue: str | None = None
    #: The repro has records but matrix.yaml (given) no longer lists it: a renamed one.
    unlisted: bool = False


@dataclass(frozen=True, kw_only=True)
class ReproReport:
    name: str
    description: str
    issue: str | None
    axis: str
    grid: Grid
    findings: tuple[Finding, ...]
    rows: tuple[SummaryRow, ...]
    key_metric: str | None
    chart: Chart | None
    counts: Mapping[str, int]
    #: matrix.yaml lists this repro (False: `upstream_pytest` of `bisect --test`, no matrix).
    listed: bool = True
    #: The threshold drawn on the chart, as the records name it (e.g. max_rel_err).
    threshold_key: str | None = None
    #: Series with no value of the key metric at all, left out of the chart.
    unplotted: tuple[str, ...] = ()
    axis_charts: tuple[AxisChart, ...] = ()  # per library where two were bisected; or why none

    @property
    def reproduced(self) -> bool:
        """Seen to regress somewhere, steadily or at flaky points only (the pages' header
        and summary.md's count these)."""
        return any(f.reproduced or f.flaky_only for f in self.findings)


@dataclass(frozen=True, kw_only=True)
class ReportData:
    title: str
    generated: str
    repros: tuple[ReproReport, ...]
    entries: tuple[Entry, ...]
    orders: Orders
    counts: Mapping[str, int]
    machines: tuple[MachineSummary, ...]
    records: int
    load_problems: tuple[LoadProblem, ...] = ()
    revisions: Mapping[str, Mapping[str, RevInfo]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    #: Those of `notes` on listings too old to say yanked releases (stderr says them too).
    old_listings: tuple[str, ...] = ()
    #: A matrix was given: cells outside it can be told apart.
    has_matrix: bool = False
    #: Every GPU type of the page, in order (columns, filters).
    gpus: tuple[str, ...] = ()
    #: GPU type → its one colour, the same on every chart of the page.
    colors: Mapping[str, str] = field(default_factory=dict)
    catalog: Catalog = field(default_factory=lambda: Catalog({}))

    @property
    def summary_rows(self) -> list[SummaryRow]:
        return [row for rr in self.repros for row in rr.rows]


def status_name(entry: Entry) -> str:
    r = entry.result
    return _NAMES[r.status] if r is not None else "none"


#: Status → its name (a dict lookup: an enum's `.value` is a property call).
_NAMES: Mapping[Status | None, str] = {s: s.value for s in Status}


def build_report(
    results: Sequence[Result],
    matrix: Matrix | None = None,
    cells: Sequence[Cell] = (),
    *,
    title: str = "repromatrix report",
    load_problems: Sequence[LoadProblem] = (),
    topo: Mapping[str, Mapping[str, int]] | None = None,
    generated: str | None = None,
    catalog: Catalog | None = None,
    releases: Mapping[str, Sequence[str]] | None = None,
    lines: Mapping[str, Line] | None = None,
    entries: list[Entry] | None = None,
    yanked: Mapping[str, Mapping[str, bool | None]] | None = None,
    cache: str | None = None,
    unlisted: Mapping[str, str] | None = None,
) -> ReportData:
    """Everything the report formats show. `cells`: the matrix's (default `expand(matrix)`);
    `catalog`, `entries`: `build_catalog`'s, `collect_entries`'s; `lines`, `unlisted`:
    `series_filler`'s; `cache`: the --cache `releases`, `yanked` were read from, as given
    (`old_listing_notes`)."""
    if not cells and matrix is not None:
        from repromatrix.expand import expand

        cells = expand(matrix)
    if catalog is None:
        catalog = build_catalog(results, matrix, cells)
    entries = collect_entries(results, cells, catalog) if entries is None else entries
    infos = rev_infos(results, matrix, catalog)
    for lib, labels in listed_between(infos, releases or {}).items():
        infos[lib] = [*infos[lib], *(RevInfo(label=x, kind=SourceKind.PYPI) for x in labels)]
    orders = build_orders(results, matrix, topo=topo, infos=infos)
    axes = choose_axes(entries, matrix)
    grids = build_grids(entries, orders, axes, listed_rows(infos, releases or {}))
    by_repro: dict[str, list[Result]] = {}
    for e in entries:
        if e.result is not None:
            by_repro.setdefault(e.repro, []).extend(e.verdicts)  # a flaky one's: all
    declared = {name: i for i, name in enumerate(matrix.repros if matrix is not None else ())}
    grids.sort(key=lambda g: (declared.get(g.repro, len(declared)), g.repro))
    # GPU types of the cells and records alone: the GPU menu offered "cpu" (and any type
    # matrix.yaml declares) where no cell of the report has it, a choice that shows nothing.
    used = {e.gpu for e in entries}
    gpus = [*(g for g in orders.gpus if g in used), *sorted(used - set(orders.gpus))]
    # Colours go to GPU types with results first, so the few with data get the most
    # distinct ones; a type has the same colour on every chart.
    with_data = {e.gpu for e in entries if e.result is not None and e.gpu != CPU_GPU}
    colors = gpu_colors(
        [g for g in gpus if g in with_data] + [g for g in gpus if g not in with_data]
    )
    fill = series_filler(lines or {}, infos, yanked or {}, unlisted or {})
    repros = [_repro_report(g, matrix, by_repro.get(g.repro, []), colors, fill) for g in grids]
    total = Counter(map(status_name, entries))
    old = old_listing_notes(repros, yanked or {}, cache=cache, matrix=matrix, results=results)
    return ReportData(
        notes=(*older_definitions(entries, cells, orders.matrix_file), *old),
        old_listings=old,
        title=title,
        generated=generated or datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        repros=tuple(repros),
        entries=tuple(entries),
        orders=orders,
        counts={s: total.get(s, 0) for s in STATUS_ORDER},
        machines=machines(results),
        records=len(results),
        load_problems=tuple(load_problems),
        revisions={lib: {i.label: i for i in revs} for lib, revs in infos.items()},
        has_matrix=matrix is not None,
        gpus=tuple(gpus),
        colors=colors,
        catalog=catalog,
    )


def _repro_report(
    grid: Grid, matrix: Matrix | None, rs: Sequence[Result], colors: Mapping[str, str], fill: Fill
) -> ReproReport:
    spec = matrix.repros.get(grid.repro) if matrix is not None else None
    metric = choose_key_metric(rs, spec.key_metric if spec is not None else None)
    findings = with_release_line_caveats(
        with_machine_caveats(grid, calibrated(find_intervals(fill(s)) for s in grid.series))
    )
    issue = spec.issue if spec is not None else None
    description = spec.description if spec is not None else ""
    if spec is None and matrix is not None:
        # Not in matrix.yaml (a bisect --test cell): say what it is from its records, all
        # of them (`rs` holds each cell's winner: a cell run twice counted once).
        every = [r for e in grid.entries.values() for r in e.records]
        described = describe_unlisted(grid.repro, every, matrix.path.name)
        description, issue = described.description, described.link
    unlisted = spec is None and matrix is not None
    rows = tuple(
        replace(_summary_row(grid, col, f, metric, issue), unlisted=unlisted)
        for col, f in enumerate(findings)
    )
    counts = Counter(map(status_name, {id(e): e for e in grid.entries.values()}.values()))
    chart, threshold_key, unplotted, axis_charts = repro_charts(grid, metric, colors, _chart)
    return ReproReport(
        name=grid.repro,
        description=description,
        issue=issue,
        axis=grid.axis,
        grid=with_untested_rows(grid, findings),  # after the chart: no points of its axis
        findings=findings,
        rows=rows,
        key_metric=metric,
        chart=chart,
        counts={s: counts.get(s, 0) for s in STATUS_ORDER},
        listed=spec is not None,
        threshold_key=threshold_key,
        unplotted=unplotted,
        axis_charts=axis_charts,
    )


def summary_rows(
    results: Sequence[Result], matrix: Matrix | None = None, cells: Sequence[Cell] = ()
) -> list[SummaryRow]:
    """Per repro, per series (GPU and what else is fixed): where the regression begins and
    ends, with the key metric on both sides of the first boundary."""
    return build_report(results, matrix, cells).summary_rows


def _labels(points: Sequence[Point]) -> tuple[str, ...]:
    return tuple(p.label for p in points)


def _unsure(points: Sequence[Point]) -> tuple[str, ...]:
    return tuple(map(unsure_name, points))


def _value(entry: Entry | None, metric: str | None) -> float | None:
    """None where the record lacks the metric; NaN where it keeps it as null (not finite)."""
    metrics = entry.result.metrics if entry is not None and entry.result is not None else {}
    if metric is None or metric not in metrics:
        return None
    return math.nan if (value := metrics[metric]) is None else value


def _summary_row(
    grid: Grid, col: int, finding: Finding, metric: str | None, issue: str | None
) -> SummaryRow:
    s = finding.series
    base = SummaryRow(
        repro=s.repro,
        gpu=s.gpu,
        context=series_context(grid, s),
        axis=s.axis,
        sentence=finding.summary,
        reproduced=finding.reproduced,
        flaky=finding.flaky,
        flaky_only=unsteady(finding.flaky_only, s.unordered),
        flaky_apart=unsteady(finding.flaky_apart, s.unordered) if finding.intervals else "",
        bad_unordered=tuple(p.label for p in finding.unordered if p.verdict is PointVerdict.BAD),
        passed_unordered=_labels(finding.passed_apart),
        bad_apart=_labels(finding.bad_apart),
        seen_apart=finding.seen_apart,
        caveats=finding.caveats,
        key_metric=metric,
        issue=issue,
    )
    if not finding.intervals:
        return base
    first = finding.intervals[0]
    bad = grid.entries.get((col, first.first_bad))
    good_label = first.first_good or first.last_good
    good = grid.entries.get((col, good_label)) if good_label is not None else None
    metric = _failed_there(bad, metric)
    threshold = None
    if metric is not None:
        for e in (bad, good):
            if e is not None and e.result is not None:
                threshold = threshold_for(metric, e.result.thresholds)
                if threshold is not None:
                    break
    return replace(
        base,
        first_bad=first.first_bad,
        last_good=first.last_good,
        last_bad=first.last_bad,
        first_good=first.first_good,
        open_start=first.open_start,
        open_end=first.open_end,
        intervals=len(finding.intervals),
        still_bad_at=finding.intervals[-1].last_bad if finding.intervals[-1].open_end else None,
        later=tuple(
            (iv.first_bad, iv.first_good, _unsure(iv.uncertain_before), _unsure(iv.uncertain_after))
            for iv in finding.intervals[1:]
        ),
        unsure_before=_unsure(first.uncertain_before),
        unsure_after=_unsure(first.uncertain_after),
        unsure_inside=tuple(p.label for iv in finding.intervals for p in iv.unsure_inside),
        key_metric=metric,
        bad_value=_value(bad, metric),
        good_value=_value(good, metric),
        threshold=threshold,
    )


def _failed_there(bad: Entry | None, metric: str | None) -> str | None:
    """The repro's key metric, unless it did not fail where the interval begins and
    another measured metric did (the failing check changed along the axis: the key
    metric, chosen over every record, showed a value that did not move there)."""
    if bad is None or bad.result is None or metric is None:
        return metric
    value = bad.result.metrics.get(metric)
    limit = threshold_for(metric, bad.result.thresholds)
    if value is None or limit is None or value > limit:
        return metric  # it failed there (or cannot be told): it stays
    checks = split_checks(bad.result.failure)
    failed = [m for m in sorted(checks) if m in bad.result.metrics]
    return failed[0] if failed else metric


def series_context(grid: Grid, s: Series) -> str:
    """What tells this series apart from the others of its grid: the GPU, plus the base,
    the library it runs along and the fixed ones only when they differ between series."""
    parts = [s.gpu]
    if s.base is not None and len({x.base for x in grid.series}) > 1:
        parts.append(s.base)
    if len({x.axis for x in grid.series}) > 1:  # two libraries bisected (bisected_axes.py)
        parts.append(f"along {axis_title(s.axis)}")
    for i, (lib, label) in enumerate(s.fixed):
        if len({x.fixed[i] if i < len(x.fixed) else None for x in grid.series}) > 1:
            parts.append(f"{lib}={label}")
    return " · ".join(parts)


def _chart(
    grid: Grid, metric: str, colors: Mapping[str, str]
) -> tuple[Chart | None, str | None, tuple[str, ...]]:
    """The key metric's chart, the threshold key drawn on it, and the series left out for
    having no value of the metric at all."""
    series: list[SeriesValues] = []
    unplotted: list[str] = []
    # Points per thresholds object (records share them), matched once each afterwards.
    bounded: dict[int, tuple[Mapping[str, float | None], int]] = {}
    per_gpu: Counter[str] = Counter()
    for col, s in enumerate(grid.series):
        vals: dict[str, float | None] = {}
        gaps: dict[str, str] = {}
        for p in s.points:
            e = grid.entries.get((col, p.label))
            if e is None:
                continue
            if e.result is None or metric not in e.result.metrics:
                gaps[p.label] = status_name(e)
                continue
            vals[p.label] = e.result.metrics[metric]
            bounds = e.result.thresholds
            seen = bounded.get(id(bounds))
            bounded[id(bounds)] = (bounds, 1 if seen is None else seen[1] + 1)
        context = series_context(grid, s)
        if not vals:
            unplotted.append(context)
            continue
        series.append(
            SeriesValues(
                label=context,
                gpu=s.gpu,
                color=colors.get(s.gpu, "#444444"),
                dash=DASHES[per_gpu[s.gpu] % len(DASHES)],
                values=vals,
                gaps=gaps,
                apart=s.unordered,
            )
        )
        per_gpu[s.gpu] += 1
    # Counted in the order the thresholds were first met: ties go to the first, as before.
    thresholds: Counter[tuple[str, float]] = Counter()
    for bounds, n in bounded.values():
        found = match_threshold(metric, bounds)
        if found is not None and found[1] is not None and math.isfinite(found[1]):
            thresholds[(found[0], found[1])] += n
    key: str | None = None
    threshold: float | None = None
    if thresholds:
        (key, threshold), _ = thresholds.most_common(1)[0]
    chart = build_chart(metric=metric, rows=grid.rows, series=series, threshold=threshold)
    return chart, key, tuple(unplotted)
