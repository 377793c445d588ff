"""Record timestamps (`started`, `finished`: ISO 8601 text) in time order.

The harness writes UTC (`+00:00`), whose text order is time order, and that is how records
are compared everywhere: which is newest, which stands for a cell. A record written by
another tool, or merged from a host that wrote local time (`+05:00`) or `Z`, would compare
wrongly as text: 11:00+05:00 (06:00 UTC) would beat 10:00+00:00. `instant` makes every
spelling the harness's, so a plain text comparison stays right.

Which record is newest asks `recency`, not `instant`: a time past the clock of the process
that reads it (a host whose clock ran ahead, a record dated 2099 by hand) is no time at
all, and taken at its word it would stand for its cell for ever, over every record made
after it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Protocol, TypeVar

from repromatrix.safetext import excerpt

_UTC = "+00:00"
#: Clock skew between hosts that is taken as such, not as a record from the future.
SKEW = timedelta(hours=1)
#: Before every time: `recency` of a record dated in the future sorts among its kind only.
_FUTURE = "!"


def instant(stamp: str) -> str:
    """`stamp` as UTC ISO text (text order = time order). The harness's own are returned
    as they are (no parsing: a report compares 100,000 of them); another offset or `Z` is
    converted, a time without an offset is taken as UTC, and text that is no time at all
    stays itself (it sorts as text, as before)."""
    if stamp.endswith(_UTC):
        return stamp
    return _in_utc(stamp)


@cache
def _in_utc(stamp: str) -> str:
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC).isoformat()
    except OverflowError:  # 0001-01-01T00:00+14:00 is before year 1 in UTC: no datetime
        return stamp  # nor could it sort among real times other than as text


class _Horizon:
    """Now plus `SKEW` as the harness's text, read again only when a stamp passes it (a
    run that lasts days makes records past the horizon it started with)."""

    text = ""

    @classmethod
    def passed_by(cls, utc: str) -> bool:
        if utc <= cls.text:
            return False
        return utc > cls.read()

    @classmethod
    def read(cls) -> str:
        cls.text = (datetime.now(UTC) + SKEW).isoformat()
        return cls.text


def recency(stamp: str) -> str:
    """The key of "which record is newest": `instant(stamp)`, except that a time later than
    now (by more than `SKEW`), or text that is no time at all, sorts before every possible
    time, and among such stamps only: a record dated in the future never hides one made
    after it, whatever its clock said. No time is no time whatever its text: "31/12/2026"
    sorted after every year (and was said), "05/12/2026" or "" before them (in silence)."""
    utc = instant(stamp)
    if not utc.endswith(_UTC):  # no time (`is_time`): `instant` gives every time so
        return _FUTURE + utc
    return _FUTURE + utc if _Horizon.passed_by(utc) else utc


def in_future(stamp: str) -> bool:
    """Whether `stamp` is later than now by more than `SKEW`: a time `recency` puts
    before every possible one."""
    return recency(stamp).startswith(_FUTURE)


def odd_stamps(stamps: Iterable[str]) -> tuple[list[str], list[str]]:
    """Of `stamps` (in their order), those `in_future` and those `zoneless`. The harness's
    own (UTC, before the horizon) are neither, which a comparison and a suffix test tell:
    the two tests on each of a load's 100,000 stamps took 0.06 s."""
    # A horizon read earlier is sooner than now's: a stamp past it is asked again.
    horizon = _Horizon.text or _Horizon.read()
    odd = [s for s in stamps if s > horizon or not s.endswith(_UTC)]
    return [s for s in odd if in_future(s)], [s for s in odd if zoneless(s)]


def future_note(stamps: Sequence[str]) -> str:
    """What to say of records whose `finished` times are `in_future`: a clock that ran
    ahead, or text that is no time at all (which sorts as text, after every year)."""
    times = [s for s in stamps if _in_utc(s) != s or s.endswith(_UTC)]
    if len(times) < len(stamps):
        n, odd = len(stamps) - len(times), next(s for s in stamps if s not in times)
        return (
            f"{n} record{'s give' if n != 1 else ' gives'} 'finished' as no time "
            f"({excerpt(odd, 40)!r}); {'each' if n != 1 else 'it'} counts as older than "
            "every other record of its cell: write an ISO 8601 time there, as repromatrix does"
        )
    n, latest = len(times), max(times, key=instant)
    return (
        f"{n} record{'s' if n != 1 else ''} finished later than this host's clock says it "
        f"is now (the latest at {excerpt(latest, 40)}: a clock that ran ahead?); each counts "
        "as older than every other record of its cell: correct the clock of the host that "
        "wrote them"
    )


def is_time(stamp: str) -> bool:
    """Whether `stamp` is a time at all (any ISO 8601 spelling), not text such as "" or
    "05/12/2026 22:03", which `recency` puts before every time."""
    return instant(stamp).endswith(_UTC)


def zoneless(stamp: str) -> bool:
    """Whether `stamp` is a time without a UTC offset ("2026-12-05T22:03:00"): `instant`
    takes it as UTC, which it is not where the host that wrote it kept local time."""
    return not stamp.endswith(_UTC) and _zoneless(stamp)


@cache
def _zoneless(stamp: str) -> bool:
    try:
        return datetime.fromisoformat(stamp).tzinfo is None
    except ValueError:
        return False


def zoneless_note(stamps: Sequence[str]) -> str:
    """What to say of records whose `finished` times are `zoneless`."""
    n = len(stamps)
    return (
        f"{n} record{'s give' if n != 1 else ' gives'} 'finished' without a UTC offset "
        f"({excerpt(stamps[0], 40)!r}), taken as UTC: a host that wrote local time puts "
        f"{'them' if n != 1 else 'it'} hours away from its other records; write the offset "
        "there (+00:00), as repromatrix does"
    )


def supersedes(later: str, earlier: str) -> bool:
    """Whether a record finished at `later`, stored after one finished at `earlier`, is the
    newer of the two: of equal times the one stored later is (a rerun within the clock's
    resolution replaces, it does not hide behind, the record it reran)."""
    return recency(later) >= recency(earlier)


class _Timed(Protocol):
    @property
    def finished(self) -> str: ...


_T = TypeVar("_T", bound=_Timed)


def newest(records: Iterable[_T]) -> _T | None:
    """The record made last (by `recency`; of equal times, the one stored later, as
    `records.latest_by_key` and the report have it), or None when there is none."""
    found: _T | None = None
    for r in records:
        if found is None or supersedes(r.finished, found.finished):
            found = r
    return found
