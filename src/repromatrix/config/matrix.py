"""What a matrix.yaml becomes: the `Matrix` (its bases, GPU types, libraries, repros) and
its include and exclude `Rule`s (`build.py` checks the file and builds them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from repromatrix.model import Base, Cell, GpuType, Library, Repro


@dataclass(frozen=True, kw_only=True)
class Rule:
    """An include or exclude entry. Unset fields match anything (exclude)."""

    repro: str | None
    gpu: str | None
    base: str | None
    libraries: Mapping[str, str]
    #: `file:line:column` of the entry, for a warning that it changes nothing.
    where: str = field(default="", compare=False)

    def matches(self, cell: Cell) -> bool:
        if self.repro is not None and cell.repro != self.repro:
            return False
        if self.gpu is not None and cell.gpu.name != self.gpu:
            return False
        if self.base is not None and cell.base.name != self.base:
            return False
        for lib, rev in self.libraries.items():
            pin = cell.pin(lib)
            if pin is None or rev not in (pin.rev, pin.label):
                return False
        return True


@dataclass(frozen=True, kw_only=True)
class Matrix:
    path: Path
    #: Directory scripts are resolved against (the matrix file's directory).
    root: Path
    bases: Mapping[str, Base]
    gpus: Mapping[str, GpuType]
    libraries: Mapping[str, Library]
    repros: Mapping[str, Repro]
    include: tuple[Rule, ...]
    exclude: tuple[Rule, ...]
