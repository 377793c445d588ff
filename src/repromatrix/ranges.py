"""Where each regression begins and ends along a series (`points.py`; pure: no I/O).

Points without a verdict never count as good or bad: a boundary across them is "between W
and X", naming them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from repromatrix.fingerprints import same_failure
from repromatrix.points import BASE_AXIS, Point, PointVerdict, Series, named, unsteady
from repromatrix.splits import SplitUnit
from repromatrix.unplaced import base_why, unordered_why


def _intermittent(pts: Sequence[Point]) -> str:
    """The sentence of a series whose only regressions are at flaky points: it did regress
    there, one run in a few, so neither "not reproduced" nor a bare "no verdict" is true."""
    good = sum(1 for p in pts if p.verdict is PointVerdict.GOOD)
    rest = [p for p in pts if p.verdict is PointVerdict.UNKNOWN and not p.flaky]
    flaky = [p for p in pts if p.flaky]
    # Steady on each machine is no intermittence: it regressed on some machines only.
    units = {p.split.unit if p.split is not None else None for p in flaky}
    how = "intermittently" if None in units else "on some machines"
    if units == {SplitUnit.BASES}:  # one machine's interpreters or --cell-env variables
        how = "on some bases"  # (`winner.base_name`)
    text = f"regressed only {how}: {unsteady(flaky)}"
    if good:
        text += f"; {good} of {len(pts)} passed"
    return text + (f"; no verdict at {named(rest)}" if rest else "")


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
    #: (first point, fingerprint) of each failure along the interval, when the checks that
    #: fail change inside it (another bug taking over); empty when one failure runs through.
    failures: tuple[tuple[str, str], ...] = ()

    @property
    def unsure_inside(self) -> tuple[Point, ...]:
        """The series' own cells inside the interval that gave no verdict (an error, a
        timeout, no result yet): flaky ones are said apart, and points only other series
        ran (a bisection's commits) were never this series' to test."""
        return tuple(p for p in self.gaps_inside if not p.absent and not p.flaky)

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
                f"no verdict at {named(self.uncertain_before)})"
            )
        if not self.uncertain_before:
            return f"begins at or before {fb} (first tested)"
        return (
            f"begins at or before {fb} (first verdict; no verdict at "
            f"{named(self.uncertain_before)})"
        )

    @property
    def end_text(self) -> str:
        lb, fg = self.last_bad, self.first_good
        if fg is not None and not self.uncertain_after:
            return f"ends at {fg} (last bad {lb})"
        if fg is not None:
            return (
                f"ends between {lb} and {fg} (last bad {lb}, first good {fg}; "
                f"no verdict at {named(self.uncertain_after)})"
            )
        if not self.uncertain_after:
            return f"still present in the newest tested ({lb})"
        return (
            f"still present at {lb}, the newest verdict (no verdict at "
            f"{named(self.uncertain_after)})"
        )

    @property
    def sentence(self) -> str:
        text = f"{self.begin_text}; {self.end_text}"
        if self.unsure_inside:
            # Bad on both sides, unknown there: it may have been fixed and come back.
            text += f"; no verdict inside it at {named(self.unsure_inside)}"
        if not self.failures:
            return text
        changes = ", then ".join(f"{fp} from {label}" for label, fp in self.failures)
        return f"{text}; the failing check changes: {changes}"


@dataclass(frozen=True, kw_only=True)
class Finding:
    """What one series says: the bad intervals, flaky points, and a sentence."""

    series: Series
    intervals: tuple[Interval, ...]
    flaky: tuple[str, ...] = ()
    #: The series' own points whose order is unknown, said apart from the sentence.
    unordered: tuple[Point, ...] = ()
    #: What the sentence adds about its boundaries (e.g. `report.machine_bounds`).
    caveats: tuple[str, ...] = ()

    @property
    def reproduced(self) -> bool:
        return bool(self.intervals) or any(p.verdict is PointVerdict.BAD for p in self.unordered)

    @property
    def flaky_only(self) -> tuple[Point, ...]:
        """The flaky points of a series that regressed nowhere else: where it regressed, one
        run in a few (empty when it regressed steadily somewhere, or never)."""
        return () if self.reproduced else tuple(p for p in self.series.tested if p.flaky)

    @property
    def flaky_apart(self) -> tuple[Point, ...]:
        """The flaky points of a series that regressed steadily that no interval names at
        its ends: inside an interval, after its fix (seen again, one run in a few), or where
        the order is unknown (they may be after it too)."""
        ends = {p.label for i in self.intervals for p in (*i.uncertain_before, *i.uncertain_after)}
        return tuple(p for p in self.series.tested if p.flaky and p.label not in ends)

    @property
    def bad_apart(self) -> tuple[Point, ...]:
        """The points whose order is unknown that regressed (steadily, or one run in a few):
        any of them may lie before the first bad point whose order is known, where the
        regression would then begin, so "begins at" holds of the known order only."""
        return tuple(p for p in self.unordered if p.verdict is PointVerdict.BAD or p.flaky)

    @property
    def seen_apart(self) -> bool:
        """A point whose order is unknown has a verdict (or is flaky): it may be older than
        the first point whose order is known, so that one is the first tested no more."""
        return any(p.verdict is not PointVerdict.UNKNOWN or p.flaky for p in self.unordered)

    @property
    def passed_apart(self) -> tuple[Point, ...]:
        """The passes whose order is unknown beside a regression still present at the newest
        point whose order is known: any of them may be newer, its fix."""
        if not self.intervals or not self.intervals[-1].open_end:
            return ()
        return tuple(p for p in self.unordered if p.verdict is PointVerdict.GOOD)

    @property
    def counts(self) -> Mapping[PointVerdict, int]:
        out = dict.fromkeys(PointVerdict, 0)
        for p in self.series.tested:
            out[p.verdict] += 1
        return out

    @property
    def summary(self) -> str:
        text = self._ordered_summary()
        # "begins at or before", "still present ... whose order is known" (below) hold already;
        # "ends at 3.0" not: a regression, or a pass (its fix), of unknown order may be beyond.
        good = any(p.verdict is PointVerdict.GOOD for p in self.unordered)
        bad = self.bad_apart and any(not (i.open_start and i.open_end) for i in self.intervals)
        if bad or (good and any(not i.open_end for i in self.intervals)):
            text = f"where the order is known: {text}"
        if any(p.verdict is PointVerdict.BAD or p.flaky for p in self.unordered):
            # It did reproduce (if only one run in a few), at a point the order cannot place.
            text = text.replace("not reproduced", "not reproduced where the order is known", 1)
        if self.seen_apart:
            text = text.replace("(first tested)", "(first tested whose order is known)", 1)
        if self.seen_apart:
            # "Newest tested" held of the ordered points only: a pass named below may be
            # newer, the fix; a regression, newer still. Only the last interval is still
            # present: its words come last.
            for said in ("still present in the newest tested", ", the newest verdict"):
                head, found, tail = text.rpartition(said)
                if found:
                    text = f"{head}{said} whose order is known{tail}"
                    break
        if self.unordered:
            why = (
                base_why(
                    self.unordered, self.series.tied, self.series.doubt, self.series.matrix_file
                )
                if self.series.axis == BASE_AXIS
                else unordered_why(
                    self.unordered, self.series.neither, self.series.doubt, self.series.mirrored
                )
            )
            said = f"order unknown ({why}): {named(self.unordered)}"
            text = said if text == "no points" else f"{text}; {said}"
        return "; ".join((text, *self.caveats))

    def _ordered_summary(self) -> str:
        pts = tuple(p for p in self.series.tested if p.label not in self.series.unordered)
        if not pts:
            text = "no points"
        elif self.intervals:
            if len(pts) == 1:
                # Others tested whose order is unknown are named after this.
                only = "whose order is known" if self.unordered else "tested"
                text = f"present at {pts[0].label} (the only point {only})"
            else:
                text = " — then ".join(i.sentence for i in self.intervals)
        elif any(p.flaky for p in pts):
            return _intermittent(pts)  # names every flaky point, with its counts
        else:
            good = [p for p in pts if p.verdict is PointVerdict.GOOD]
            unknown = [p for p in pts if p.verdict is PointVerdict.UNKNOWN]
            if good and not unknown:
                text = f"not reproduced ({len(good)} of {len(pts)} passed)"
            elif good:
                text = (
                    f"not reproduced where tested ({len(good)} passed; no verdict at "
                    f"{named(unknown)})"
                )
            elif all(p.status is None for p in unknown):
                # Nothing ran for this GPU/base yet: naming every version says nothing more.
                n = len(unknown)  # "(1 cells)" was said of a repro of one cell
                text = f"no results yet ({n} cell{'' if n == 1 else 's'})"
            elif len(unknown) > 1 and len({p.why for p in unknown}) == 1:
                text = f"no verdict ({len(unknown)} cells {unknown[0].why})"
            else:
                text = f"no verdict ({named(unknown)})"
        # Flaky points the sentence does not name already (as "X (flaky: ...)", after a
        # space: 11.1's "11.1 (flaky" holds "1.1 (flaky" too).
        spaced = " " + text
        flaky = [p for p in pts if p.flaky and f" {p.label} ({p.why}" not in spaced]
        return text + (f"; {unsteady(flaky)}" if flaky else "")


def find_intervals(series: Series) -> Finding:
    """Every interval where the regression is present along `series` (points whose place
    is a guess are left out of every interval, and said apart)."""
    pts = tuple(p for p in series.points if p.label not in series.unordered)
    known = [i for i, p in enumerate(pts) if p.verdict is not PointVerdict.UNKNOWN]
    intervals: list[Interval] = []
    k = 0
    while k < len(known):
        i = known[k]
        if pts[i].verdict is not PointVerdict.BAD:
            k += 1
            continue
        start = k
        while k + 1 < len(known) and pts[known[k + 1]].verdict is PointVerdict.BAD:
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
                gaps_inside=tuple(
                    p for p in pts[first : last + 1] if p.verdict is PointVerdict.UNKNOWN
                ),
                failures=_failures(pts[first : last + 1]),
            )
        )
        k += 1
    return Finding(
        series=series,
        intervals=tuple(intervals),
        flaky=tuple(p.label for p in pts if p.flaky),
        unordered=tuple(p for p in series.tested if p.label in series.unordered),
    )


def _failures(points: Sequence[Point]) -> tuple[tuple[str, str], ...]:
    """(first point, fingerprint) of each stretch of one failure among the bad `points`,
    when there is more than one (a failure sharing no check with the one before it)."""
    runs: list[tuple[str, str]] = []
    for p in points:
        if p.verdict is not PointVerdict.BAD or not p.failure:
            continue
        if not runs or not same_failure(runs[-1][1], p.failure):
            runs.append((p.label, p.failure))
    return tuple(runs) if len(runs) > 1 else ()
