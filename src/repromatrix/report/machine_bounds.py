"""Boundaries that machines may explain (pure): where the machines of a GPU type disagree
on one cell (`winner.machines_split`), a boundary whose two sides ran on other machines
alone ("2.0 on m-b, 3.0 on m-a") may be the machines' change, not the library's; where
GPUs of one machine disagree, so may one whose sides ran on other GPUs alone."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from repromatrix.grid import Grid
from repromatrix.ranges import Finding
from repromatrix.records import Result
from repromatrix.splits import SplitUnit
from repromatrix.winner import UNIT_NAMES


def _where(grid: Grid, col: int, label: str, unit: Callable[[Result], str]) -> frozenset[str]:
    e = grid.entries.get((col, label))
    if e is None:
        return frozenset()
    return frozenset(unit(r) for r in e.records if r.status.is_verdict)


def with_machine_caveats(grid: Grid, findings: Sequence[Finding]) -> tuple[Finding, ...]:
    """`findings` (one per column of `grid`), each with a sentence per boundary whose
    sides ran on disjoint machines (or GPUs), where those of its series disagree somewhere."""
    split: dict[int, dict[SplitUnit, list[str]]] = {}
    for (col, label), e in grid.entries.items():
        if e.split is not None:  # few: flaky positions whose machines each gave one verdict
            split.setdefault(col, {}).setdefault(e.split.unit, []).append(label)
    return tuple(
        replace(f, caveats=_caveats(grid, col, f, split[col]))
        if col in split and f.intervals
        else f
        for col, f in enumerate(findings)
    )


def _caveats(
    grid: Grid, col: int, finding: Finding, split: dict[SplitUnit, list[str]]
) -> tuple[str, ...]:
    out: list[str] = []
    for iv in finding.intervals:
        for before, after in ((iv.last_good, iv.first_bad), (iv.last_bad, iv.first_good)):
            if before is None or after is None:
                continue
            for what, unit in UNIT_NAMES.items():  # machines first: apart, so are their GPUs
                labels = split.get(what)
                if not labels:
                    continue
                a, b = _where(grid, col, before, unit), _where(grid, col, after, unit)
                if a and b and not a & b and "" not in a | b:
                    where = ", ".join(sorted(labels)[:4])
                    where += f" and {len(labels) - 4} more" if len(labels) > 4 else ""
                    out.append(
                        f"{before} ran on {', '.join(sorted(a))} alone and {after} on "
                        f"{', '.join(sorted(b))} alone, {what.value} that disagree at {where}: "
                        "the change may be theirs"
                    )
                    break
    return tuple(out)
