"""A cell for tests that judge, bound or redact one record: the repro's details do not
matter there, only that the record is made for some cell."""

from __future__ import annotations

from pathlib import Path

from repromatrix.model import CPU, HOST_BASE, Base, BaseKind, Cell

CELL = Cell(
    repro="r",
    script=Path("r.py"),
    base=Base(name=HOST_BASE, kind=BaseKind.HOST),
    gpu=CPU,
    pins=(),
    params={},
    timeout_s=30.0,
    key="k" * 20,
)
