"""Boundaries that machines may explain (pure): where the machines of a GPU type disagree
on one cell (`winner.machines_split`), a boundary whose two sides ran on other machines
alone ("2.0 on m-b, 3.0 on m-a") may be the machines' change, not the library's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from repromatrix.grid import Grid
from repromatrix.ranges import Finding
from repromatrix.winner import machine_name


def _machines(grid: Grid, col: int, label: str) -> frozenset[str]:
    e = grid.entries.get((col, label))
    if e is None:
        return frozenset()
    return frozenset(machine_name(r) for r in e.records if r.status.is_verdict)


def with_machine_caveats(grid: Grid, findings: Sequence[Finding]) -> tuple[Finding, ...]:
    """`findings` (one per column of `grid`), each with a sentence per boundary whose
    sides ran on disjoint machines, where machines of its series disagree somewhere."""
    split: dict[int, list[str]] = {}
    for (col, label), e in grid.entries.items():
        if e.split:  # few: flaky positions whose machines each gave one verdict
            split.setdefault(col, []).append(label)
    return tuple(
        replace(f, caveats=_caveats(grid, col, f, split[col]))
        if col in split and f.intervals
        else f
        for col, f in enumerate(findings)
    )


def _caveats(grid: Grid, col: int, finding: Finding, split: list[str]) -> tuple[str, ...]:
    where = ", ".join(sorted(split)[:4]) + (f" and {len(split) - 4} more" if len(split) > 4 else "")
    out: list[str] = []
    for iv in finding.intervals:
        for before, after in ((iv.last_good, iv.first_bad), (iv.last_bad, iv.first_good)):
            if before is None or after is None:
                continue
            a, b = _machines(grid, col, before), _machines(grid, col, after)
            if a and b and not a & b and "" not in a | b:
                out.append(
                    f"{before} ran on {', '.join(sorted(a))} alone and {after} on "
                    f"{', '.join(sorted(b))} alone, machines that disagree at {where}: "
                    "the change may be theirs"
                )
    return tuple(out)
