"""Releases a listing saw only as yanked files (PEP 592), where a series passes them by
(pure).

pip leaves a yanked release out unless it is pinned exactly, and so does a bisection's
search (`candidate_releases`). Between two tested releases such a release is a point of
the axis nothing ran: the report said "no verdict at 1.2 (not run in this series)", as
if it were any release the search had not reached. It says "yanked", and where a
bisection's ends lay around it, that the bisection skipped it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from repromatrix.points import Series
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
