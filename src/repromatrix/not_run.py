"""Why cells were not run on this host, one line per reason (the end of a run says them)."""

from __future__ import annotations

from collections.abc import Sequence

from repromatrix.model import Cell


def _article(name: str) -> str:
    """ "a" or "an" before a GPU name read letter by letter or as a word (an H100, an L4,
    an A100, a T4, an RTX4090)."""
    first = name[:1].upper()
    return "an" if first and first in "AEFHILMNORSX" else "a"


def not_run_lines(items: Sequence[tuple[Cell, str]]) -> list[str]:
    """One line per reason cells were not run here, with how many: "4 cells need an H100;
    this host has none (it has: no GPU (nvidia-smi not found))"."""
    groups: dict[tuple[str, str], list[Cell]] = {}
    for cell, reason in items:
        gpu = cell.gpu.name
        missing_gpu = cell.needs_gpu and reason.startswith(f"no {gpu} on this host")
        groups.setdefault((gpu if missing_gpu else "", reason), []).append(cell)
    lines = []
    for (gpu, reason), cells in groups.items():
        n = len(cells)
        what = f"{n} cell{'' if n == 1 else 's'}"
        if gpu:
            has = reason.removeprefix(f"no {gpu} on this host").strip()
            if has.startswith("(") and has.endswith(")"):
                has = has[1:-1]
            has = has.removeprefix("has ").strip()
            lines.append(
                f"{what} need{'s' if n == 1 else ''} {_article(gpu)} {gpu}; this host has none"
                + (f" (it has {has})" if has else "")
            )
        else:
            lines.append(f"{what} not run here: {reason}")
    return lines
