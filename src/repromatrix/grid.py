"""From result records to what a report shows: positions of the matrix, grids of series.

An *entry* is one position of the matrix (repro, GPU, base, pins) with the record that wins
there and the others; a *grid* lays a repro's entries out as series along one axis (see
`ranges.py`, which finds where the regression begins and ends along each series). Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from repromatrix.model import Cell, Status
from repromatrix.ordering import Orders
from repromatrix.ranges import BASE_AXIS, Point, Series
from repromatrix.records import Result, latest_by_key, newer

if TYPE_CHECKING:
    from repromatrix.config import Matrix


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
        if prev is None or newer(r, prev):
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
