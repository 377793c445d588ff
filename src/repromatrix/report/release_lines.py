"""A regression "back again" across release lines (pure): version order is no time order.

Releases sort by PEP 440, so a fix backported to an older line (1.1.1, after 1.1 was bad)
sorts before the next line's first release (2.0) that may be older than it and never had
the fix. "ends at 1.1.1 — then begins at 2.0 (last good 1.1.1)" then reads as 2.0 breaking
again what 1.1.1 fixed; the sentence says what the order cannot tell instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from repromatrix.pep440 import pep440
from repromatrix.ranges import Finding, Interval


def _line(label: str) -> tuple[int, ...] | None:
    """(major, minor) of a patch release (`1.1.1`), None for anything else: a commit, a
    release of fewer parts (`2.0`, the first of its line, or an all-digit commit)."""
    version = pep440(label)
    if version is None or len(version.release) < 3:
        return None
    return version.release[:2]


def _other_line(label: str) -> tuple[int, ...] | None:
    version = pep440(label)
    return version.release[:2] if version is not None and len(version.release) >= 2 else None


def _caveat(before: Interval, after: Interval) -> str | None:
    fixed = before.first_good
    if fixed is None:
        return None
    line = _line(fixed)
    if line is None or _other_line(before.last_bad) != line:
        return None  # not a later release of the line that was bad: no backport
    again = _other_line(after.first_bad)
    if again is None or again == line:
        return None  # bad again on its own line: it did come back
    name = ".".join(map(str, line))
    return (
        f"{fixed} is a later release of the {name} line (a backport?), not a step towards "
        f"{after.first_bad}: {after.first_bad} may predate that fix rather than bring the "
        "regression back"
    )


def with_release_line_caveats(findings: Sequence[Finding]) -> tuple[Finding, ...]:
    """`findings`, each with a caveat per "then begins" whose good point before it is a
    later release of the line of the bad one before it, and whose bad point is of another
    release line (see the module's docstring)."""
    out = []
    for f in findings:
        said = [
            c
            for a, b in zip(f.intervals, f.intervals[1:], strict=False)
            if (c := _caveat(a, b)) is not None
        ]
        out.append(replace(f, caveats=(*f.caveats, *said)) if said else f)
    return tuple(out)
