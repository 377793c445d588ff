"""Record timestamps (`started`, `finished`: ISO 8601 text) in time order.

The harness writes UTC (`+00:00`), whose text order is time order, and that is how records
are compared everywhere: which is newest, which stands for a cell. A record written by
another tool, or merged from a host that wrote local time (`+05:00`) or `Z`, would compare
wrongly as text: 11:00+05:00 (06:00 UTC) would beat 10:00+00:00. `instant` makes every
spelling the harness's, so a plain text comparison stays right.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache

_UTC = "+00:00"


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
