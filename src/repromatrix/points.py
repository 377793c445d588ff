"""A series and its points (pure): one repro on one GPU type with everything fixed but one
axis, each point good (passed), bad (regressed) or without a verdict (untestable, error,
timeout, not run here, no result yet, flaky), and how sentences name the points without
one. `ranges.py` finds where a regression begins and ends along a series.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import assert_never

from repromatrix.model import Status
from repromatrix.splits import Split

#: The axis name used for the base/image axis (library axes use the library's name).
BASE_AXIS = "base"


class PointVerdict(StrEnum):
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
    #: Verdict records behind a flaky point, for "flaky: 3 passed, 2 regressed".
    passed: int = 0
    regressed: int = 0
    #: A point other series of the repro ran, inside this series' span, that this one did
    #: not: it may be where the change is, so a boundary across it is a range.
    absent: bool = False
    #: A regression's recorded fingerprint: which check failed ("" when not recorded).
    failure: str = ""
    #: "machines disagree: m-1 passed 2, m-2 regressed 1": a flaky point whose records
    #: disagree only between machines, bases or GPUs, each steady (see
    #: `winner.machines_split`); None where flaky it is, or not flaky at all.
    split: Split | None = None
    #: Commits of the history here that no cell ran (`label` names the first and last):
    #: the change may be at one, so a boundary across them is a range (`absent` too).
    untested: int = 0
    #: ", one a merge (its branch's commits lie here too)" (`report.untested`).
    merged: str = ""
    note: str = ""  # why nothing ran an absent point ("yanked": `report.yanked`)

    @property
    def verdict(self) -> PointVerdict:
        if self.flaky or self.status is None:
            return PointVerdict.UNKNOWN
        match self.status:
            case Status.PASSED:
                return PointVerdict.GOOD
            case Status.REGRESSED:
                return PointVerdict.BAD
            case Status.UNTESTABLE | Status.ERROR | Status.TIMEOUT | Status.NOT_RUN:
                return PointVerdict.UNKNOWN
            case _:
                assert_never(self.status)

    @property
    def why(self) -> str:
        """Why this point has no verdict (or its verdict), for sentences."""
        if n := self.untested:
            return ("untested" if n == 1 else f"{n:,} commits untested") + self.merged
        if self.absent:
            return self.note or "not run in this series"
        if self.flaky:
            counts = f": {self.passed} passed, {self.regressed} regressed"
            flaky = "flaky" + (counts if self.passed or self.regressed else "")
            return str(self.split) if self.split is not None else flaky
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
    #: Labels of points whose place on the axis is a guess (commits with no mirror, date
    #: or declared place): never part of a begin/end sentence.
    unordered: frozenset[str] = frozenset()
    #: Why the order matrix.yaml gives is none ("" when it stands, or was not needed).
    doubt: str = ""
    #: Labels that are neither a release nor a commit (`RevInfo.neither`).
    neither: frozenset[str] = frozenset()
    #: A mirror in --cache ordered the axis' commits (`Orders.mirrored`).
    mirrored: bool = False
    #: Bases whose release another image shares (`doubt` says which): no order among them.
    tied: frozenset[str] = frozenset()
    #: The matrix file given (--matrix), as the report's texts name it.
    matrix_file: str = "matrix.yaml"

    @property
    def tested(self) -> tuple[Point, ...]:
        """The points of the series' own cells (not those only other series ran)."""
        return tuple(p for p in self.points if not p.absent)


def named(points: Sequence[Point]) -> str:
    shown = ", ".join(f"{p.label} ({p.why})" for p in points[:4])
    return shown + (f" and {len(points) - 4} more" if len(points) > 4 else "")


def flaky_list(points: Sequence[Point], unordered: frozenset[str] = frozenset()) -> str:
    """ "1.1 (2 passed, 1 regressed), 1.3": flaky points as every "flaky at" names them;
    those of `unordered` as "c1 (order unknown; 1 passed, 1 regressed)"."""
    return ", ".join(
        _flaky(
            p.label,
            p.why.removeprefix("flaky: ") if p.passed or p.regressed else "",
            p.label in unordered,
        )
        for p in points
    )


def unsteady(points: Sequence[Point], unordered: frozenset[str] = frozenset()) -> str:
    """ "flaky at 1.1 (2 passed, 1 regressed); machines disagree at 1.3 (m-1 passed 1, m-2
    regressed 1)": the points without a verdict because their records disagree, each
    under what a reader must do about it (a flaky repro, or machines that differ)."""
    heads: dict[str, list[Point]] = {}
    for p in points:
        heads.setdefault(p.split.head if p.split is not None else "flaky", []).append(p)
    return "; ".join(
        f"{head} at "
        + ", ".join(
            _flaky(p.label, p.split.said, p.label in unordered)
            if p.split is not None
            else flaky_list([p], unordered)
            for p in pts
        )
        for head, pts in heads.items()
    )


def unsure_name(p: Point) -> str:
    """A point without a verdict at a boundary, as the tables name it: a flaky one with its
    counts ("1.1 (flaky: 1 passed, 1 regressed)": it did regress there, one run in a few)."""
    return f"{p.label} ({p.why})" if p.flaky or p.untested or p.note else p.label


def _flaky(label: str, counts: str, unordered: bool) -> str:
    said = "; ".join(x for x in ("order unknown" if unordered else "", counts) if x)
    return f"{label} ({said})" if said else label
