"""Releases a bisection could not list, where a series' verdict changes (pure).

A bisection whose listing was incomplete (an index out of reach, a source that offered
nothing) answers with a range: "first bad release: between 1.0 and 1.7", as releases
between them may exist unlisted. The report, reading the releases the cache kept, said
"begins at 1.7 (last good 1.0)" of the same runs. Where the kept listing of a library is
incomplete, each change of verdict along it is a range too: a point before the newer
side stands for the releases nobody listed ("no verdict at releases between 1.0 and 1.7
(not all listed: ...)"), as `report.untested` does for a history's unrun commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from repromatrix.gitlog import Line
from repromatrix.pep440 import pep440
from repromatrix.points import Point, PointVerdict, Series
from repromatrix.report.untested import Fill, untested_filler
from repromatrix.report.yanked import yanked_filler
from repromatrix.revision_order import RevInfo

#: How long a source's problem may be in a sentence (`problems` are whole stderr lines).
_WHY_CHARS = 160


def series_filler(
    lines: Mapping[str, Line],
    infos: Mapping[str, Sequence[RevInfo]],
    yanked: Mapping[str, Mapping[str, bool | None]],
    unlisted: Mapping[str, str],
) -> Fill:
    """What makes the points nothing ran points of a series, each said why: a history's
    commits no cell ran (`lines`: each library's first-parent line, `untested_filler`),
    yanked releases (`yanked_filler`), and releases a listing may have missed
    (`unlisted`: each library whose kept listing is incomplete, and why)."""
    return unlisted_filler(yanked_filler(untested_filler(lines, infos), yanked), unlisted)


def unlisted_filler(fill: Fill, unlisted: Mapping[str, str]) -> Fill:
    """`fill`, then for each series along a library of `unlisted` (library → why its kept
    listing is incomplete, `kept_releases.KeptListing.incomplete`) a point with no verdict
    before each release where the verdict changes."""
    if not unlisted:
        return fill

    def filled(series: Series) -> Series:
        s = fill(series)
        why = unlisted.get(s.axis)
        if why is None:
            return s
        note = f"not all listed: {why[:_WHY_CHARS]}"
        points: list[Point] = []
        last: Point | None = None  # the ordered point before with a verdict
        for p in s.points:
            changes = (
                last is not None
                and p.label not in s.unordered
                and p.verdict is not PointVerdict.UNKNOWN
                and p.verdict is not last.verdict
                and pep440(p.label) is not None
                and pep440(last.label) is not None
            )
            if changes and last is not None:
                label = f"releases between {last.label} and {p.label}"
                points.append(Point(label=label, status=None, absent=True, note=note))
            if p.label not in s.unordered and p.verdict is not PointVerdict.UNKNOWN:
                last = p
            points.append(p)
        return replace(s, points=tuple(points))

    return filled


__all__ = ["series_filler", "unlisted_filler"]
