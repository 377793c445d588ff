"""What the HTML page shows of each repro (pure): grid rows and cells, summary lines.

A grid's cells are written here, escaped, as one piece of HTML per row: a template step
per cell cost more than everything else on a 100,000-cell page. Each cell's details are
serialized (and escaped) when the page streams its data blob (`iter_details`), one cell
at a time, in the order the cells are numbered here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from markupsafe import Markup, escape

from repromatrix.entries import Entry
from repromatrix.grid import Grid
from repromatrix.model import STATUS_TEXT, Status
from repromatrix.points import BASE_AXIS
from repromatrix.ranges import Finding
from repromatrix.report.axis_charts import AxisChart, axis_title
from repromatrix.report.blob import DetailsWriter
from repromatrix.report.build import ReportData, ReproReport, series_context
from repromatrix.report.build import status_name as _status_name
from repromatrix.report.details import clip
from repromatrix.report.escape import safe_url
from repromatrix.report.symbols import icon
from repromatrix.report.yanked import SKIPPED, YANKED
from repromatrix.revision_order import RevInfo
from repromatrix.run_summary import BISECT_RUN_PREFIX

STATUS_LABELS: Mapping[str, str] = {k: label for k, (_, label) in STATUS_TEXT.items()}

#: Row labels longer than this are cut for display, the full label in the row's tooltip: a
#: 900-character revision made the sticky first column wider than the screen, over every cell.
MAX_ROW_LABEL = 40


@dataclass(frozen=True, kw_only=True)
class RowView:
    label: str
    title: str
    badge: str
    #: The row's place on the axis is a guess (`Series.unordered`): said by a badge.
    unordered: bool = False
    #: Space-separated "<gpu index>:<status>" tokens for the status filter.
    tokens: str
    #: The row's `<td>` cells, escaped: `data-i` numbers a cell's details, and a blank
    #: position (this column has no such point) has none.
    cells: Markup


@dataclass(frozen=True, kw_only=True)
class ColumnView:
    gpu_idx: int
    gpu: str
    sub: str
    sentence: str
    color: str


@dataclass(frozen=True, kw_only=True)
class SummaryItem:
    """One line of a repro's findings: series that say the same thing share one line."""

    gpu_idxs: tuple[int, ...]
    context: str
    sentence: str
    reproduced: bool

    @property
    def gpu_tokens(self) -> str:
        return " ".join(str(i) for i in self.gpu_idxs)


@dataclass(frozen=True, kw_only=True)
class SectionView:
    anchor: str
    rr: ReproReport
    issue_href: str | None
    axis_title: str
    columns: tuple[ColumnView, ...]
    rows: tuple[RowView, ...]
    items: tuple[SummaryItem, ...]
    statuses: str
    reproduced: bool
    #: How many cells (with details) the grid has.
    cells: int
    #: Its charts: one per library where two were bisected, else one; in the axes' order,
    #: each not drawn saying why in its place (`AxisChart.why`), never nothing.
    charts: tuple[AxisChart, ...] = ()


def repro_charts(rr: ReproReport) -> tuple[AxisChart, ...]:
    """The charts of a repro's section: one per library where two were bisected."""
    if rr.axis_charts or rr.chart is None:
        return rr.axis_charts
    return (AxisChart(chart=rr.chart, threshold_key=rr.threshold_key, unplotted=rr.unplotted),)


def _row_badge(badge: str, info: RevInfo | None) -> str:
    """`badge`, but a commit a tag of the matrix named when it ran (and names no more) is
    no commit the matrix lacks: it says which tag it was."""
    if info is not None and info.moved and badge == "not in matrix":
        return f"{info.moved} before it moved"
    return badge


def _rev_title(info: RevInfo | None) -> str:
    if info is None:
        return ""
    parts = []
    if info.commit:
        was = f", which {info.moved} named when this ran (the tag has moved since)"
        parts.append(f"commit {info.commit}" + (was if info.moved else ""))
    if info.committed:
        parts.append(f"committed {info.committed}")
    return ", ".join(parts)


def _range_classes(grid: Grid, findings: Sequence[Finding]) -> dict[tuple[int, str], str]:
    """CSS classes that draw each bad interval on the grid: a bar down its cells with a
    cap at both ends, and a pale bar over the points without a verdict at its edges."""
    index = {label: i for i, label in enumerate(grid.rows)}
    out: dict[tuple[int, str], list[str]] = {}
    for col, f in enumerate(findings):
        for iv in f.intervals:
            lo, hi = index[iv.first_bad], index[iv.last_bad]
            for i in range(lo, hi + 1):
                cls = out.setdefault((col, grid.rows[i]), [])
                cls.append("ri")
                if i == lo:
                    cls.append("rt")
                if i == hi:
                    cls.append("rb")
            for p in (*iv.uncertain_before, *iv.uncertain_after):
                out.setdefault((col, p.label), []).append("ru")
    return {k: " ".join(v) for k, v in out.items()}


def _cell_title(e: Entry) -> str:
    if e.result is None:
        return "no result yet"
    if e.flaky:
        return e.flaky_text
    r = e.result
    if r.status is Status.NOT_RUN:
        return clip(f"not run here: {r.reason}" if r.reason else "not run here", 300)
    return STATUS_LABELS[r.status.value]


#: Symbol name → its inline SVG (the same few for every cell).
_ICONS: dict[str, Markup] = {}


def _icon(name: str) -> Markup:
    found = _ICONS.get(name)
    if found is None:
        found = _ICONS[name] = icon(name)
    return found


_NOT_RUN = Status.NOT_RUN


@lru_cache(maxsize=1 << 12)
def _title_attr(title: str) -> str:
    """` title="…"`, escaped ("" without a title): cells repeat a few titles."""
    return f' title="{escape(title)}"' if title else ""


def _bisected(e: Entry) -> bool:
    """A record of the cell comes from a bisect run."""
    r = e.result
    if r is not None and r.run_id.startswith(BISECT_RUN_PREFIX):
        return True
    return any(h.run_id.startswith(BISECT_RUN_PREFIX) for h in e.history) if e.history else False


def merged_items(rr: ReproReport, gpus: Sequence[str]) -> tuple[SummaryItem, ...]:
    """The findings of a repro, one line per distinct sentence: eight GPUs without results
    say so once, not eight times."""
    by_sentence: dict[tuple[str, bool], list[tuple[int, str]]] = {}
    for row in rr.rows:
        idx = gpus.index(row.gpu) if row.gpu in gpus else len(gpus)
        # Regressed only one run in a few (flaky points alone) is still regressed: red.
        bad = row.reproduced or bool(row.flaky_only)
        by_sentence.setdefault((row.sentence, bad), []).append((idx, row.context))
    # A shared sentence's counts are each series' own ("2 of 2 passed" of H100 and of
    # H200 is 4 cells): the line says "(each)".
    return tuple(
        SummaryItem(
            gpu_idxs=tuple(sorted({i for i, _ in members})),
            context=", ".join(c for _, c in members) + (" (each)" if len(members) > 1 else ""),
            sentence=sentence,
            reproduced=reproduced,
        )
        for (sentence, reproduced), members in by_sentence.items()
    )


def _section(n: int, rr: ReproReport, data: ReportData, gpus: list[str], first: int) -> SectionView:
    """The view of section `n`, whose first cell has details index `first`."""
    grid = rr.grid
    for s in grid.series:
        if s.gpu not in gpus:
            gpus.append(s.gpu)
    ranges = _range_classes(grid, rr.findings)
    # Two libraries bisected in one repro make a grid of two lines (`bisected_axes`): the
    # axis' title names both (each column says which it runs along: `series_context`), or
    # lb's series read as points of la.
    axes = tuple(dict.fromkeys(s.axis for s in grid.series)) or (grid.axis,)
    columns = tuple(
        ColumnView(
            gpu_idx=gpus.index(s.gpu),
            gpu=s.gpu,
            sub=series_context(grid, s).removeprefix(s.gpu).removeprefix(" · "),
            sentence=f.summary,
            color=data.colors.get(s.gpu, "#999999"),
        )
        for s, f in zip(grid.series, rr.findings, strict=True)
    )
    on = _row_axes(grid, axes)
    rows: list[RowView] = []
    guessed = frozenset[str]().union(*(s.unordered for s in grid.series))
    idx = first
    entries = grid.entries
    made: dict[tuple[int, Status | None, str | None], tuple[str, str, tuple[str, ...]]] = {}
    # A yanked release nothing ran (`report.yanked`): its row says so, not a bare "1.2".
    noted = {p.label: p.note for f in rr.findings for p in f.series.points if p.note}
    for label in grid.rows:
        cells: list[str] = []
        tokens: set[str] = set()
        badge = ""
        declared = False
        for col, column in enumerate(columns):
            # The same walk as `iter_cells`: details are numbered in this order.
            at = (col, label)
            e = entries.get(at)
            mark = ranges.get(at) if ranges else None
            if e is None:  # the interval's bar runs through (untested commits, releases)
                cells.append(
                    f'<td class="x g{column.gpu_idx}{"" if mark is None else " " + mark}"></td>'
                )
                continue
            declared = declared or e.expected
            r = e.result
            # `_bisected(e)`, its record asked here (a call a cell was a tenth of the time).
            if (r is not None and r.run_id.startswith(BISECT_RUN_PREFIX)) or (
                e.history and _bisected(e)
            ):
                badge = "bisect"
            elif not badge and r is not None and data.has_matrix and rr.listed:
                # A repro the matrix lacks is badged once, at its name: its revisions
                # are no more missing from the matrix than any other of its points.
                badge = "not in matrix"
            # Cells differ in few ways (status, flaky, range marks, title): each way is
            # written once (`_cell_html`); the title depends on the status alone but for
            # flaky cells and "not run here" ones.
            own = e.flaky or (r is not None and r.status is _NOT_RUN)
            way = (column.gpu_idx, r.status if r is not None else None, mark)
            found = _cell_html(column.gpu_idx, e, mark) if own else made.get(way)
            if found is None:
                found = made[way] = _cell_html(column.gpu_idx, e, mark)
            tokens.update(found[2])
            cells.append(f"{found[0]}{idx}{found[1]}")
            idx += 1
        axis = on.get(label, grid.axis)
        revs = data.revisions.get(axis, {}) if axis != BASE_AXIS else {}
        info = revs.get(label)
        title = _rev_title(info) or noted.get(label, "")
        badge = _row_badge(
            badge or ("yanked" if noted.get(label) in (YANKED, SKIPPED) else ""), info
        )
        shown = label
        if len(label) > MAX_ROW_LABEL:
            shown = label[: MAX_ROW_LABEL - 1] + "…"
            title = f"{label} ({title})" if title else label
        rows.append(
            RowView(
                label=shown,
                title=title,
                # Only rows matrix.yaml does not declare say where they came from; a row
                # whose place is a guess says so, or its place reads as its order.
                badge="" if declared else badge,
                unordered=label in guessed,
                tokens=" ".join(sorted(tokens)),
                cells=Markup("".join(cells)),
            )
        )
    statuses = " ".join(sorted({tok for row in rows for tok in row.tokens.split()}))
    return SectionView(
        anchor=f"r{n}",
        rr=rr,
        issue_href=safe_url(rr.issue),
        axis_title=" / ".join(map(axis_title, axes)),
        columns=columns,
        rows=tuple(rows),
        items=merged_items(rr, gpus),
        statuses=statuses,
        reproduced=rr.reproduced,
        cells=idx - first,
        charts=repro_charts(rr),
    )


def _row_axes(grid: Grid, axes: tuple[str, ...]) -> dict[str, str]:
    """Row → the axis of its first series with a cell there (its revision's library)."""
    if len(axes) == 1 and grid.series:  # one axis (nearly always): no need to sort the cells
        return dict.fromkeys((label for _, label in grid.entries), grid.series[0].axis)
    on: dict[str, str] = {}
    for col, label in sorted(grid.entries):
        on.setdefault(label, grid.series[col].axis)
    return on


def _cell_html(gpu_idx: int, e: Entry, ranges: str | None) -> tuple[str, str, tuple[str, ...]]:
    """A cell's `<td>` before and after its details index, and its filter tokens."""
    st = _status_name(e)
    tokens: tuple[str, ...] = (f"{gpu_idx}:{st}",)
    cls = f"c s-{st} g{gpu_idx}"
    if e.split:  # machines disagree, each steady: no flaky repro, filtered apart
        cls += " fl md"
        tokens += (f"{gpu_idx}:machines-disagree",)
    elif e.flaky:
        cls += " fl"
        tokens += (f"{gpu_idx}:flaky",)
    if ranges is not None:
        cls += " " + ranges
    # `cls` is made of our own class names: nothing in it to escape.
    # tabindex: keyboard users reach a cell and open its details (Enter, Space).
    return (
        f'<td class="{cls}" data-i="',
        f'" tabindex="0"{_title_attr(_cell_title(e))}>{_icon("flaky" if e.flaky else st)}</td>',
        tokens,
    )


def iter_cells(data: ReportData) -> Iterator[tuple[int, int, Entry]]:
    """(section number, detail index, entry) of every grid cell, in the order the page
    numbers them: `index.html#c<index>` opens that cell."""
    idx = 0
    for n, rr in enumerate(data.repros):
        grid = rr.grid
        for label in grid.rows:
            for col in range(len(grid.series)):
                e = grid.entries.get((col, label))
                if e is not None:
                    yield n, idx, e
                    idx += 1


def build_sections(data: ReportData) -> tuple[list[SectionView], list[str]]:
    """Views of every repro section, and the GPU list."""
    gpus: list[str] = list(data.gpus)
    sections: list[SectionView] = []
    first = 0
    for n, rr in enumerate(data.repros):
        sections.append(_section(n, rr, data, gpus, first))
        first += sections[-1].cells
    return sections, gpus


def iter_details(data: ReportData) -> Iterator[str]:
    """Every grid cell's details as JSON for the page's data blob (see `escape.script_json`),
    in the order `build_sections` numbers the cells."""
    return details_of(page_cells(data))


def page_cells(data: ReportData) -> Iterator[tuple[Entry, bool]]:
    """Every grid cell in the order `build_sections` numbers them, and whether its repro is
    one the matrix lacks (its details say so, not "this cell")."""
    apart = {n for n, rr in enumerate(data.repros) if not rr.listed and data.has_matrix}
    for n, _, e in iter_cells(data):
        yield e, n in apart


def details_of(cells: Iterable[tuple[Entry, bool]]) -> Iterator[str]:
    """The details of `cells` (`page_cells`), each as JSON for the page's data blob."""
    writer = DetailsWriter()
    for e, apart in cells:
        yield writer.cell(e)[:-1] + ',"apart":true}' if apart else writer.cell(e)
