"""Where each regression begins and ends (pure: no I/O).

A *series* is one repro on one GPU type with everything fixed except one axis: a library's
revisions (the others pinned), or the base/image axis for repros that span images. Along a
series each point is good (passed), bad (regressed) or without a verdict (untestable,
error, timeout, not run here, no result yet, flaky). Points without a verdict never count
as good or bad: a boundary across them is "between W and X", naming them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, assert_never

from repromatrix.model import Cell, Result, Status
from repromatrix.ordering import Orders
from repromatrix.store import latest_by_key

if TYPE_CHECKING:
    from repromatrix.matrix import Matrix

#: The axis name used for the base/image axis (library axes use the library's name).
BASE_AXIS = "base"


class Verdict(StrEnum):
    GOOD = "good"
    BAD = "bad"
    UNKNOWN = "unknown"


@dataclass(frozen=True, kw_only=True)
class Point:
    """One position on a series' axis."""

    label: str
    #: None: the matrix expands to this point but no result exists yet.
    status: Status | None
    #: Records of the same key disagree (passed and regressed): no verdict, flagged.
    flaky: bool = False
    key: str | None = None

    @property
    def verdict(self) -> Verdict:
        if self.flaky or self.status is None:
            return Verdict.UNKNOWN
        match self.status:
            case Status.PASSED:
                return Verdict.GOOD
            case Status.REGRESSED:
                return Verdict.BAD
            case Status.UNTESTABLE | Status.ERROR | Status.TIMEOUT | Status.NOT_RUN:
                return Verdict.UNKNOWN
            case _:
                assert_never(self.status)

    @property
    def why(self) -> str:
        """Why this point has no verdict (or its verdict), for sentences."""
        if self.flaky:
            return "flaky"
        if self.status is None:
            return "no result yet"
        if self.status is Status.NOT_RUN:
            return "not run here"
        return self.status.value


@dataclass(frozen=True, kw_only=True)
class Series:
    repro: str
    gpu: str
    #: "base" or a library name: what varies along the points.
    axis: str
    #: The base, when the axis is a library (None when the axis is the base).
    base: str | None
    #: The other libraries' labels, fixed along the series.
    fixed: tuple[tuple[str, str], ...] = ()
    #: Ordered oldest → newest.
    points: tuple[Point, ...] = ()

    @property
    def context(self) -> str:
        """What identifies this series within its repro besides the axis: GPU, base, pins."""
        parts = [self.gpu]
        if self.base is not None:
            parts.append(self.base)
        parts.extend(f"{lib}={label}" for lib, label in self.fixed)
        return " · ".join(parts)


def _named(points: Sequence[Point]) -> str:
    return ", ".join(f"{p.label} ({p.why})" for p in points)


@dataclass(frozen=True, kw_only=True)
class Interval:
    """One stretch of the series where the regression is present."""

    first_bad: str
    last_bad: str
    #: Newest good point before the interval; None when the interval is open at the start.
    last_good: str | None
    #: Oldest good point after the interval; None when it is still present at the end.
    first_good: str | None
    #: Points without a verdict between `last_good` (or the series' start) and `first_bad`.
    uncertain_before: tuple[Point, ...] = ()
    #: Points without a verdict between `last_bad` and `first_good` (or the series' end).
    uncertain_after: tuple[Point, ...] = ()
    #: Points without a verdict inside the interval (they do not split it).
    gaps_inside: tuple[Point, ...] = ()

    @property
    def open_start(self) -> bool:
        return self.last_good is None

    @property
    def open_end(self) -> bool:
        return self.first_good is None

    @property
    def begin_text(self) -> str:
        fb, lg = self.first_bad, self.last_good
        if lg is not None and not self.uncertain_before:
            return f"begins at {fb} (last good {lg})"
        if lg is not None:
            return (
                f"begins between {lg} and {fb} (last good {lg}, first bad {fb}; "
                f"no verdict at {_named(self.uncertain_before)})"
            )
        if not self.uncertain_before:
            return f"begins at or before {fb} (first tested)"
        return (
            f"begins at or before {fb} (first verdict; no verdict at "
            f"{_named(self.uncertain_before)})"
        )

    @property
    def end_text(self) -> str:
        lb, fg = self.last_bad, self.first_good
        if fg is not None and not self.uncertain_after:
            return f"ends at {fg} (last bad {lb})"
        if fg is not None:
            return (
                f"ends between {lb} and {fg} (last bad {lb}, first good {fg}; "
                f"no verdict at {_named(self.uncertain_after)})"
            )
        if not self.uncertain_after:
            return f"still present in the newest tested ({lb})"
        return (
            f"still present at {lb}, the newest verdict (no verdict at "
            f"{_named(self.uncertain_after)})"
        )

    @property
    def sentence(self) -> str:
        return f"{self.begin_text}; {self.end_text}"


@dataclass(frozen=True, kw_only=True)
class Finding:
    """What one series says: the bad intervals, flaky points, and a sentence."""

    series: Series
    intervals: tuple[Interval, ...]
    flaky: tuple[str, ...] = ()

    @property
    def reproduced(self) -> bool:
        return bool(self.intervals)

    @property
    def counts(self) -> Mapping[Verdict, int]:
        out = dict.fromkeys(Verdict, 0)
        for p in self.series.points:
            out[p.verdict] += 1
        return out

    @property
    def summary(self) -> str:
        pts = self.series.points
        if not pts:
            text = "no points"
        elif self.intervals:
            if len(pts) == 1:
                text = f"present at {pts[0].label} (the only point tested)"
            else:
                text = " — then ".join(i.sentence for i in self.intervals)
        else:
            good = [p for p in pts if p.verdict is Verdict.GOOD]
            unknown = [p for p in pts if p.verdict is Verdict.UNKNOWN]
            if good and not unknown:
                text = f"not reproduced ({len(good)} of {len(pts)} passed)"
            elif good:
                text = (
                    f"not reproduced where tested ({len(good)} passed; no verdict at "
                    f"{_named(unknown)})"
                )
            elif all(p.status is None for p in unknown):
                # Nothing ran for this GPU/base yet: naming every version says nothing more.
                text = f"no results yet ({len(unknown)} cells)"
            else:
                text = f"no verdict ({_named(unknown)})"
        if self.flaky:
            text += f"; flaky at {', '.join(self.flaky)}"
        return text


def find_intervals(series: Series) -> Finding:
    """Every interval where the regression is present along `series`."""
    pts = series.points
    known = [i for i, p in enumerate(pts) if p.verdict is not Verdict.UNKNOWN]
    intervals: list[Interval] = []
    k = 0
    while k < len(known):
        i = known[k]
        if pts[i].verdict is not Verdict.BAD:
            k += 1
            continue
        start = k
        while k + 1 < len(known) and pts[known[k + 1]].verdict is Verdict.BAD:
            k += 1
        first, last = known[start], known[k]
        before = known[start - 1] if start > 0 else None
        after = known[k + 1] if k + 1 < len(known) else None
        lo = before + 1 if before is not None else 0
        hi = after if after is not None else len(pts)
        intervals.append(
            Interval(
                first_bad=pts[first].label,
                last_bad=pts[last].label,
                last_good=pts[before].label if before is not None else None,
                first_good=pts[after].label if after is not None else None,
                uncertain_before=tuple(pts[lo:first]),
                uncertain_after=tuple(pts[last + 1 : hi]),
                gaps_inside=tuple(p for p in pts[first : last + 1] if p.verdict is Verdict.UNKNOWN),
            )
        )
        k += 1
    return Finding(
        series=series,
        intervals=tuple(intervals),
        flaky=tuple(p.label for p in pts if p.flaky),
    )


# -- from records to series ---------------------------------------------------------------

Coord = tuple[str, str, str, tuple[tuple[str, str], ...]]


def coord_of(result: Result) -> Coord:
    return (result.repro, result.gpu, result.base, tuple(sorted(result.pins.items())))


def coord_of_cell(cell: Cell) -> Coord:
    return (
        cell.repro,
        cell.gpu.name,
        cell.base.name,
        tuple(sorted((p.library, p.label) for p in cell.pins)),
    )


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One position of the matrix as the report shows it: the winning record, the others."""

    repro: str
    gpu: str
    base: str
    #: Library → label, in the cell's pin order.
    pins: tuple[tuple[str, str], ...]
    #: The newest record of the newest key here; None when nothing was recorded yet.
    result: Result | None
    #: Every other record at this position (same key or an older script), newest first.
    history: tuple[Result, ...] = ()
    #: The winner's key has both passed and regressed records.
    flaky: bool = False
    #: matrix.yaml expands to this position (False: e.g. a commit evaluated by bisect).
    expected: bool = False
    cell_id: str = ""

    @property
    def status(self) -> Status | None:
        return self.result.status if self.result is not None else None

    def label(self, axis: str) -> str:
        if axis == BASE_AXIS:
            return self.base
        return dict(self.pins).get(axis, "")


def _newer(a: Result, b: Result) -> bool:
    """Whether `a` should win over `b` (store.latest_by_key's rule, across keys)."""
    if a.status is Status.NOT_RUN and b.status is not Status.NOT_RUN:
        return False
    if b.status is Status.NOT_RUN and a.status is not Status.NOT_RUN:
        return True
    return a.finished >= b.finished


def collect_entries(results: Iterable[Result], cells: Sequence[Cell] = ()) -> list[Entry]:
    """Group records by matrix position; the newest record of the newest key wins.

    Records of one key that disagree (passed vs regressed) make the position flaky.
    Positions the matrix expands to without any record appear with `result=None`.
    """
    results = list(results)
    by_key: dict[str, list[Result]] = {}
    for r in results:
        by_key.setdefault(r.key, []).append(r)
    latest = latest_by_key(results)
    flaky_keys = {
        key
        for key, recs in by_key.items()
        if {Status.PASSED, Status.REGRESSED} <= {r.status for r in recs}
    }
    coords = {id(r): coord_of(r) for r in results}
    winners: dict[Coord, Result] = {}
    for r in latest.values():
        c = coords[id(r)]
        prev = winners.get(c)
        if prev is None or _newer(r, prev):
            winners[c] = r
    members: dict[Coord, list[Result]] = {}
    order: dict[Coord, tuple[tuple[str, str], ...]] = {}
    for r in results:
        c = coords[id(r)]
        bucket = members.get(c)
        if bucket is None:
            members[c] = [r]
            order[c] = tuple(r.pins.items())
        else:
            bucket.append(r)
    expected: dict[Coord, Cell] = {coord_of_cell(cell): cell for cell in cells}
    out: list[Entry] = []
    for c, win in winners.items():
        group = members[c]
        history = (
            sorted((r for r in group if r is not win), key=lambda r: r.finished, reverse=True)
            if len(group) > 1
            else []
        )
        cell = expected.get(c)
        out.append(
            Entry(
                repro=c[0],
                gpu=c[1],
                base=c[2],
                pins=order[c],
                result=win,
                history=tuple(history),
                flaky=win.key in flaky_keys,
                expected=cell is not None,
                cell_id=win.cell_id,
            )
        )
    for c, cell in expected.items():
        if c not in winners:
            out.append(
                Entry(
                    repro=c[0],
                    gpu=c[1],
                    base=c[2],
                    pins=tuple((p.library, p.label) for p in cell.pins),
                    result=None,
                    expected=True,
                    cell_id=cell.id,
                )
            )
    return out


def choose_axes(entries: Iterable[Entry], matrix: Matrix | None = None) -> dict[str, str]:
    """Per repro, the axis its series run along: the library with the most distinct
    revisions (declared order breaks ties), else the base axis when bases vary."""
    labels: dict[str, dict[str, set[str]]] = {}
    bases: dict[str, set[str]] = {}
    for e in entries:
        per = labels.setdefault(e.repro, {})
        for lib, label in e.pins:
            per.setdefault(lib, set()).add(label)
        bases.setdefault(e.repro, set()).add(e.base)
    out: dict[str, str] = {}
    for repro, per in labels.items():
        declared: list[str] = []
        if matrix is not None and repro in matrix.repros:
            declared = list(matrix.repros[repro].libraries)
        libs = sorted(
            per,
            key=lambda lib: (
                -len(per[lib]),
                declared.index(lib) if lib in declared else len(declared),
                lib,
            ),
        )
        if libs and len(per[libs[0]]) > 1:
            out[repro] = libs[0]
        elif len(bases.get(repro, ())) > 1 or not libs:
            out[repro] = BASE_AXIS
        else:
            out[repro] = libs[0]
    return out


Context = tuple[str, str | None, tuple[tuple[str, str], ...]]


def _key(e: Entry) -> str | None:
    return e.result.key if e.result is not None else None


@dataclass(frozen=True, kw_only=True)
class Grid:
    """A repro's series side by side: rows are axis points, columns are series."""

    repro: str
    axis: str
    rows: tuple[str, ...]
    series: tuple[Series, ...]
    #: (column index, row label) → entry.
    entries: Mapping[tuple[int, str], Entry] = field(default_factory=dict)


def build_grids(entries: Iterable[Entry], orders: Orders, axes: Mapping[str, str]) -> list[Grid]:
    """Group entries into per-repro grids of series, each ordered along its axis."""
    groups: dict[str, dict[Context, list[Entry]]] = {}
    for e in entries:
        axis = axes.get(e.repro, BASE_AXIS)
        ctx: Context
        if axis == BASE_AXIS:
            ctx = (e.gpu, None, tuple(e.pins))
        else:
            ctx = (e.gpu, e.base, tuple((lib, lab) for lib, lab in e.pins if lib != axis))
        groups.setdefault(e.repro, {}).setdefault(ctx, []).append(e)
    grids: list[Grid] = []
    for repro, by_ctx in groups.items():
        axis = axes.get(repro, BASE_AXIS)

        def rank(label: str, axis: str = axis) -> tuple[int, str]:
            return (orders.rank(axis, label), label)

        def ctx_rank(ctx: Context) -> tuple[object, ...]:
            gpu, base, fixed = ctx
            return (
                orders.rank("gpu", gpu),
                gpu,
                orders.rank(BASE_AXIS, base) if base is not None else -1,
                tuple((orders.rank(lib, lab), lab) for lib, lab in fixed),
            )

        contexts = sorted(by_ctx, key=ctx_rank)
        all_labels = {e.label(axis) for es in by_ctx.values() for e in es}
        rows = tuple(sorted(all_labels, key=rank))
        series: list[Series] = []
        cells: dict[tuple[int, str], Entry] = {}
        for col, context in enumerate(contexts):
            gpu, base, fixed = context
            here = {e.label(axis): e for e in by_ctx[context]}
            for label, e in here.items():
                cells[(col, label)] = e
            points = tuple(
                Point(
                    label=label,
                    status=here[label].status,
                    flaky=here[label].flaky,
                    key=_key(here[label]),
                )
                for label in rows
                if label in here
            )
            series.append(
                Series(repro=repro, gpu=gpu, axis=axis, base=base, fixed=fixed, points=points)
            )
        grids.append(Grid(repro=repro, axis=axis, rows=rows, series=tuple(series), entries=cells))
    return grids
