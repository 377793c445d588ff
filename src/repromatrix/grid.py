"""From the positions of the matrix to what a report shows: grids of series.

An *entry* is one position of the matrix with the record that wins there (`entries.py`);
a *grid* lays a repro's entries out as series of points along one axis (`points.py`; see
`ranges.py`, which finds where the regression begins and ends along each series). Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from repromatrix.bisected_axes import entry_axes, joined
from repromatrix.entries import Entry
from repromatrix.model import Status
from repromatrix.ordering import Orders, build_variant
from repromatrix.points import BASE_AXIS, Point, Series

if TYPE_CHECKING:
    from repromatrix.config import Matrix


def choose_axes(entries: Iterable[Entry], matrix: Matrix | None = None) -> dict[str, str]:
    """Per repro, the axis its series run along: the one matrix.yaml spans (the library
    it lists most revisions of, else its bases); for a repro it does not list (or spans
    no axis of), the library with the most distinct revisions in the records (declared
    order breaks ties), else the base axis when bases vary."""
    labels: dict[str, dict[str, set[str]]] = {}
    bases: dict[str, set[str]] = {}
    # Entries share their pins' tuples (`collect_entries`): each repro, base and pins are
    # read once (held here, so an id stays its tuple's).
    read: dict[tuple[str, str, int], Pins] = {}
    for e in entries:
        if (place := (e.repro, e.base, id(e.pins))) in read:
            continue
        read[place] = e.pins
        per = labels.setdefault(e.repro, {})
        for lib, label in e.pins:
            per.setdefault(lib, set()).add(label)
        bases.setdefault(e.repro, set()).add(e.base)
    out: dict[str, str] = {}
    for repro, per in labels.items():
        declared: list[str] = []
        if matrix is not None and repro in matrix.repros:
            spec = matrix.repros[repro]
            declared = list(spec.libraries)
            # The axis matrix.yaml spans: a bisection of another library (ten commits at
            # one torch) must not turn the report of a torch regression sideways.
            spans = [lib for lib in declared if len(spec.libraries[lib]) > 1 and lib in per]
            if spans:
                out[repro] = max(spans, key=lambda lib: len(spec.libraries[lib]))
                continue
            if len(spec.bases) > 1 and len(bases.get(repro, ())) > 1:
                out[repro] = BASE_AXIS
                continue
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


def _point(label: str, e: Entry) -> Point:
    """`Point(...)` of an entry, made as `entries._entry` makes one (100,000 cells, as
    many)."""
    r, point, fields = e.result, _new(Point), _POINT_FIELDS.copy()
    fields["label"], fields["flaky"] = label, e.flaky
    fields["passed"], fields["regressed"] = e.passed, e.regressed
    if e.split is not None:
        fields["split"] = e.split
    if r is not None:
        fields["status"], fields["key"] = r.status, r.key
        if r.status is Status.REGRESSED:
            fields["failure"] = r.fingerprint
    _set(point, "__dict__", fields)
    return point


_POINT_FIELDS = Point(label="", status=None).__dict__  # its defaults, copied by `_point`
_new = object.__new__
_set = object.__setattr__


#: The row of a record that does not pin the library its repro's axis runs along (one of
#: an older matrix.yaml, before the library was pinned): no revision, so no place on it.
NOT_PINNED = "(not pinned)"


Pins = tuple[tuple[str, str], ...]


def _fixed_pins(pins: Pins, axis: str) -> tuple[Pins, str | None]:
    """The pins fixed along a series on `axis`, and the entry's label on it (None: the
    base axis, labelled by the base). An entry that does not pin `axis` is its own series
    (the library marked as not pinned): never a point among the library's revisions,
    where it would sort last and read as the newest one."""
    if axis == BASE_AXIS:
        return pins, None
    fixed = tuple(p for p in pins if p[0] != axis)
    if len(fixed) == len(pins):
        return (*fixed, (axis, NOT_PINNED)), NOT_PINNED
    label = next(label for lib, label in pins if lib == axis)
    # Builds for another CUDA (+cu118, +cu121) are variants, none after another: a series each.
    variant = build_variant(label)
    return (fixed if variant is None else (*fixed, (f"{axis} build", variant))), label


@dataclass(frozen=True, kw_only=True)
class Grid:
    """A repro's series side by side: rows are axis points, columns are series."""

    repro: str
    axis: str
    rows: tuple[str, ...]
    series: tuple[Series, ...]
    #: (column index, row label) → entry.
    entries: Mapping[tuple[int, str], Entry] = field(default_factory=dict)


def build_grids(
    entries: Iterable[Entry],
    orders: Orders,
    axes: Mapping[str, str],
    known: Mapping[str, Sequence[str]] | None = None,
) -> list[Grid]:
    """Group entries into per-repro grids of series, each ordered along its axis. `known`:
    per library, points of its axis that exist although nothing ran them (releases a
    listing saw): inside a repro's rows they are rows too, so a boundary across one is a
    range, not a sharp "at"."""
    # Each entry with its label on its repro's axis.
    groups: dict[tuple[str, str], dict[Context, list[tuple[str, Entry]]]] = {}
    # A context's fixed pins as its first entry lists them (matrix.yaml's order), for
    # display: contexts themselves hold them sorted, since records of an older matrix.yaml
    # may list the same pins in another order, and one series must not become two.
    shown: dict[Context, tuple[tuple[str, str], ...]] = {}
    placed: dict[tuple[str, int], tuple[Pins, Pins, str | None]] = {}
    on = entry_axes(entries := list(entries), axes)  # a bisection of another library: its own
    for e in entries:
        for axis in on(e):
            found = placed.get((axis, id(e.pins)))  # entries share their pins' tuples
            if found is None:
                fixed, label = _fixed_pins(e.pins, axis)
                found = placed[(axis, id(e.pins))] = (fixed, tuple(sorted(fixed)), label)
            fixed, key, label = found
            ctx: Context = (e.gpu, None if axis == BASE_AXIS else e.base, key)
            shown.setdefault(ctx, fixed)
            groups.setdefault((e.repro, axis), {}).setdefault(ctx, []).append(
                (e.base if label is None else label, e)
            )
    grids: list[Grid] = []
    for (repro, axis), by_ctx in groups.items():

        def rank(label: str, axis: str = axis) -> tuple[int, str]:
            return (orders.rank(axis, label), label)

        def ctx_rank(ctx: Context) -> tuple[object, ...]:
            gpu, base, _ = ctx
            return (
                orders.rank("gpu", gpu),
                gpu,
                orders.rank(BASE_AXIS, base) if base is not None else -1,
                tuple((orders.rank(lib, lab), lab) for lib, lab in shown[ctx]),
            )

        contexts = sorted(by_ctx, key=ctx_rank)
        tied, doubt = frozenset[str](), ""
        all_labels = {label for es in by_ctx.values() for label, _ in es}
        guessed = orders.unordered.get(axis, frozenset())
        if axis == BASE_AXIS:
            # Bases without a release among dated images: where they stand is a guess
            # (all undated, the declared order is all there is, and it stands; but a base
            # matrix.yaml does not declare stands only where its records were read).
            undated = all_labels & orders.undated_bases
            guessed = frozenset(undated)
            if undated == all_labels:
                many = len(undated) > 1
                guessed = frozenset(undated - orders.declared_bases) if many else frozenset()
            tied, doubt = _same_release(all_labels, orders)
            guessed |= tied
        ranks = [rank(label)[0] for label in all_labels]
        # Commits matrix.yaml lists are rows of a repro that runs some of them; one that
        # runs its releases alone reads "ends at 0.2.4", its first good release, as before.
        commits = orders.listed_commits.get(axis, frozenset())
        all_labels |= {
            label
            for label in [*(known or {}).get(axis, ()), *(commits if commits & all_labels else ())]
            if ranks and min(ranks) < rank(label)[0] < max(ranks)
        }
        rows = tuple(sorted(all_labels, key=rank))
        series: list[Series] = []
        cells: dict[tuple[int, str], Entry] = {}
        for col, context in enumerate(contexts):
            gpu, base, fixed = context
            here = dict(by_ctx[context])
            for label, e in here.items():
                cells[(col, label)] = e
            # Inside the span this series ran, a point only other series ran is still a
            # point of the axis: the change may be there ("between 0.1 and 0.3", not "at
            # 0.3"). Outside it, "at or before" and "newest tested" already hedge. Points
            # whose place is a guess (`Orders.unordered`) make no span; the series' own
            # ones follow, said apart by `find_intervals`.
            own = [i for i, label in enumerate(rows) if label in here and label not in guessed]
            span = rows[own[0] : own[-1] + 1] if own else ()
            variant = dict(fixed).get(f"{axis} build")  # another build's releases are none
            apart = guessed & here.keys()  # once, not per row (2,000 rows, 1,000 apart)
            points = tuple(
                _point(label, here[label])
                if label in here
                else Point(label=label, status=None, absent=True)
                for label in span
                if label not in guessed and (label in here or build_variant(label) == variant)
            ) + (
                tuple(_point(label, here[label]) for label in rows if label in apart)
                if apart
                else ()
            )
            series.append(
                Series(
                    repro=repro,
                    gpu=gpu,
                    axis=axis,
                    base=base,
                    fixed=shown[context],
                    points=points,
                    unordered=frozenset(apart),
                    doubt=orders.doubts.get(axis, "") if axis != BASE_AXIS else doubt,
                    neither=orders.neither.get(axis, frozenset()) & here.keys(),
                    mirrored=axis in orders.mirrored,
                    tied=tied & here.keys(),
                    matrix_file=orders.matrix_file,
                )
            )
        grids.append(Grid(repro=repro, axis=axis, rows=rows, series=tuple(series), entries=cells))
    return joined(grids, axes)


def _same_release(labels: Iterable[str], orders: Orders) -> tuple[frozenset[str], str]:
    """Bases of one release, none after another (pytorch:24.12, tensorrt:24.12), and why:
    their order is a guess unless matrix.yaml lists them all (its order is the user's word,
    as among undated bases)."""
    by_release: dict[tuple[int, int], list[str]] = {}
    for label in sorted(labels):
        if (rel := orders.releases.get(label)) is not None:
            by_release.setdefault(rel, []).append(label)
    ties = {
        rel: same
        for rel, same in by_release.items()
        if len(same) > 1 and not set(same) <= orders.declared_bases
    }
    why = "; ".join(
        f"{', '.join(same)} are {'both' if len(same) == 2 else 'all'} of {y}-{m:02d}"
        for (y, m), same in sorted(ties.items())
    )
    tied = frozenset(label for same in ties.values() for label in same)
    return tied, f"{why}: neither is after the other" if why else ""
