"""Cells shown by a record of another definition (pure): a repro's script, params or a
pin's spelling changed since the record was made (or a bisection spelled the pin
otherwise), so its key is no cell's now. Such a record stands in for its cell until the
cell runs again (a comment edited in a script would otherwise leave every cell without a
result), and the report says how many do."""

from __future__ import annotations

from collections.abc import Sequence

from repromatrix.entries import Entry
from repromatrix.model import Cell


def older_definitions(
    entries: Sequence[Entry], cells: Sequence[Cell], file: str = "matrix.yaml"
) -> tuple[str, ...]:
    """A note when cells show a record of another definition (no record of the cell's key
    now): it stands in until the cell runs again, and every output showed it as the
    verdict of the repro as it is, without a word. `file`: the matrix file (--matrix)."""
    if not cells:
        return ()
    current = {c.key for c in cells}
    shown = [e for e in entries if e.expected and e.result is not None]
    older = sum(1 for e in shown if e.definition not in current)
    if not older:
        return ()
    return (
        f"{older:,} of {len(shown):,} cells with a record show one of another definition of "
        "the cell (the repro's script, its params or a pin's spelling differ from "
        f"{file}'s now, which has not run there yet): repromatrix run runs them",
    )
