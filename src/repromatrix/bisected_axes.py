"""Which axes of its repro an entry stands on: the repro's own (`grid.choose_axes`), and
the library a bisection of its varied, where that is another.

Two `bisect --library` runs on one repro (la, then lb at la's bad end) each make a line of
their own library's revisions. Laid along the repro's one axis (la), lb's commits were
each a series of one point ("present at c9 (the only point tested)"), and where lb's
regression begins was said nowhere. A bisection's records (`run_id` "bisect-…") that vary
one library alone are points of that library's line; an entry they share with the repro's
own axis (the run's ends, a matrix run's cell) stands on both. Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol, TypeVar, cast

from repromatrix.points import BASE_AXIS
from repromatrix.records import Result
from repromatrix.run_summary import BISECT_RUN_PREFIX


class Entry(Protocol):  # `entries.Entry`; grid.py, which lays them out, imports this one
    @property
    def repro(self) -> str: ...
    @property
    def pins(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def result(self) -> Result | None: ...
    @property
    def history(self) -> tuple[Result, ...]: ...


class _Grid(Protocol):  # `grid.Grid`, which imports this module
    @property
    def repro(self) -> str: ...
    @property
    def axis(self) -> str: ...
    @property
    def rows(self) -> tuple[str, ...]: ...
    @property
    def series(self) -> tuple[Any, ...]: ...
    @property
    def entries(self) -> Mapping[tuple[int, str], Any]: ...


G = TypeVar("G", bound=_Grid)

#: The axes an entry stands on, its repro's own first where it stands there.
Axes = Callable[[Entry], Sequence[str]]


def _bisections(e: Entry) -> set[str]:
    """The run ids of `e`'s bisection records."""
    runs = {r.run_id for r in (e.result, *e.history) if r is not None}
    return {run for run in runs if run.startswith(BISECT_RUN_PREFIX)}


def entry_axes(entries: Iterable[Entry], axes: Mapping[str, str]) -> Axes:
    """Per entry, the axes it stands on (`axes`: each repro's own): a bisection's records
    of another library than its repro's axis (the one library whose revision varies among
    that run's records) stand on that library's line alone."""
    labels: dict[tuple[str, str], dict[str, set[str]]] = {}  # (repro, run) → lib → labels
    for e in entries:
        if (r := e.result) is None:
            continue
        if e.history:
            runs: Iterable[str] = _bisections(e)
        elif r.run_id.startswith(BISECT_RUN_PREFIX):  # `_bisections` of one record
            runs = (r.run_id,)
        else:
            continue
        for run in runs:
            per = labels.setdefault((e.repro, run), {})
            for lib, label in e.pins:
                per.setdefault(lib, set()).add(label)
    side: dict[tuple[str, str], str] = {}  # (repro, run) → the library it bisected
    for (repro, run), per in labels.items():
        varied = [lib for lib, seen in per.items() if len(seen) > 1]
        if len(varied) == 1 and varied[0] != axes.get(repro, BASE_AXIS):
            side[(repro, run)] = varied[0]
    repros = {repro for repro, _ in side}
    alone = {repro: (axis,) for repro, axis in axes.items()}  # made once, not an entry

    def on(e: Entry) -> Sequence[str]:
        if e.repro not in repros or e.result is None:
            return alone.get(e.repro, (BASE_AXIS,))
        own = axes.get(e.repro, BASE_AXIS)
        records = (e.result, *e.history)
        libs = [side.get((e.repro, r.run_id)) for r in records if r is not None]
        found = [lib for lib in dict.fromkeys(libs) if lib is not None]
        return ((own,) if None in libs else ()) + tuple(found)

    return on


def joined(grids: Sequence[G], axes: Mapping[str, str]) -> list[G]:
    """`grids` with each repro's one grid: its own axis' (`axes`), then each line of
    another library a bisection made, as columns (series) of their own, their rows after
    its rows; an entry on two lines is a cell of both."""
    by_repro: dict[str, list[G]] = {}
    for g in grids:
        by_repro.setdefault(g.repro, []).append(g)
    out: list[G] = []
    for repro, some in by_repro.items():
        some.sort(key=lambda g: g.axis != axes.get(repro, BASE_AXIS))  # stable: its own first
        first = some[0]
        for g in some[1:]:
            seen = set(first.rows)
            rows = (*first.rows, *(r for r in g.rows if r not in seen))
            n = len(first.series)
            cells = {**first.entries, **{(c + n, label): e for (c, label), e in g.entries.items()}}
            series = (*first.series, *g.series)
            first = cast(G, replace(cast(Any, first), rows=rows, series=series, entries=cells))
        out.append(first)
    return out
