"""What a position's verdicts disagree between, each side steady (`winner.machines_split`):
machines, one machine's bases, or one machine's GPUs of a type. No flaky repro but places
that differ, which every output tells apart from flakiness; each names it as `str(split)`
("machines disagree: m-1 passed 2, m-2 regressed 1"), and readers ask `unit`, never the
words."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class SplitUnit(Enum):
    """What the verdicts disagree between; the value is the word outputs use."""

    MACHINES = "machines"
    BASES = "bases"  # one machine's interpreters or --cell-env variables
    GPUS = "GPUs"  # one machine's GPUs of one type, on one base


@dataclass(frozen=True)
class Split:
    unit: SplitUnit
    #: Each side and its one verdict, "m-1 passed 2, m-2 regressed 1" (four, "and N more").
    said: str

    @property
    def head(self) -> str:
        """ "machines disagree": what a change or a symbol is named."""
        return f"{self.unit.value} disagree"

    def __str__(self) -> str:
        return f"{self.head}: {self.said}"
