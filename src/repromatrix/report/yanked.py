"""Releases a listing saw only as yanked files (PEP 592), where a series passes them by
(pure).

pip leaves a yanked release out unless it is pinned exactly, and so does a bisection's
search (`candidate_releases`). Between two tested releases such a release is a point of
the axis nothing ran: the report said "no verdict at 1.2 (not run in this series)", as
if it were any release the search had not reached. It says "yanked", and where a
bisection's ends lay around it, that the bisection skipped it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Protocol

from repromatrix.points import Series
from repromatrix.ranges import Finding
from repromatrix.report.untested import Fill

#: What a series says of a yanked release nothing ran (`Point.note`).
YANKED = "yanked"
SKIPPED = "yanked: the bisection skipped it"
#: ... of a release a listing kept before yanked ones were said lists: not "not run in
#: this series" alone, which reads as a release the search had not reached.
UNKNOWN = "not run in this series; whether yanked unknown"
NOTES = {True: SKIPPED, False: YANKED, None: UNKNOWN}


def yanked_filler(fill: Fill, yanked: Mapping[str, Mapping[str, bool | None]]) -> Fill:
    """`fill`, then each point of a series along a library of `yanked` (library →
    release → whether a bisection skipped it, None where unknown whether it is yanked,
    `pypi_index.KeptListing.yanked_or_unknown`) that nothing ran there, said to be yanked."""
    if not any(yanked.values()):
        return fill

    def filled(series: Series) -> Series:
        s = fill(series)
        here = yanked.get(s.axis)
        if not here or not any(p.label in here for p in s.points):
            return s
        points = tuple(
            replace(p, note=NOTES[here[p.label]])
            if p.label in here and p.absent and p.status is None and not p.untested
            else p
            for p in s.points
        )
        return replace(s, points=points)

    return filled


class _Repro(Protocol):
    """A repro's report (`build.ReproReport`, which imports this module)."""

    @property
    def findings(self) -> Sequence[Finding]: ...


def old_listing_notes(
    repros: Iterable[_Repro], *, cache: str = "…", matrix: str = ""
) -> tuple[str, ...]:
    """What to run where a listing too old to say which releases are yanked (None in
    `yanked_filler`'s) left releases nothing ran "whether yanked unknown" (`UNKNOWN`): the
    bisection of the library run again, which lists its releases anew (`bisect_axis` saves
    each listing; the stored runs are taken again, none run twice). One note, or none.
    `cache`, `matrix` (its path, "" for matrix.yaml): as the command takes them."""
    unknown: dict[str, dict[str, None]] = {}  # library → its releases said so, in order
    repro: dict[str, str] = {}  # library → the first repro bisected along it
    for rr in repros:
        for f in rr.findings:
            for p in f.series.points:
                if p.note == UNKNOWN:
                    unknown.setdefault(f.series.axis, {})[p.label] = None
                    repro.setdefault(f.series.axis, f.series.repro)
    if not unknown:
        return ()
    many = len(unknown) > 1
    libs = _and([lib + "'s" for lib in unknown])
    labels = [f"{lib + ' ' if many else ''}{_and(list(seen))}" for lib, seen in unknown.items()]
    one = not many and len(next(iter(unknown.values()))) == 1
    where = f" --matrix {matrix}" if matrix else ""
    ends = f"--good … --bad … --cache {cache}"
    runs = [f"repromatrix{where} bisect {repro[lib]} --library {lib} {ends}" for lib in unknown]
    listing, were, its = ("listings", "were", "each") if many else ("listing", "was", "its")
    return (
        f"the cache's {listing} of {libs} releases {were} kept before yanked releases were: "
        f'{", ".join(labels)}, which no cell ran, {"reads" if one else "read"} "whether '
        f'yanked unknown"; run {its} bisection again with the same ends and --cache '
        f"({_and(runs)}): it lists the releases anew, its stored runs reused",
    )


def _and(items: list[str]) -> str:
    """a; a and b; a, b and c; the first three of more, and how many more."""
    if len(items) > 3:
        items = [*items[:3], f"{len(items) - 3} more"]
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
