"""A cell, and what running it gave, for tests that judge, bound or redact one record: the
repro's details do not matter there, only that the record is made for some cell."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from repromatrix.executors.base import RunOutcome
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


def outcome(result_json: Path | None, *, code: int | None = 0, **changes: Any) -> RunOutcome:
    """A local run of CELL that exited `code` after writing `result_json`; any other field
    as `changes` says."""
    fields: dict[str, Any] = {
        "exit_code": code,
        "timed_out": False,
        "cancelled": False,
        "duration_s": 1.0,
        "started": datetime(2026, 1, 1, tzinfo=UTC),
        "result_json": result_json,
        "stdout_tail": "",
        "stderr_tail": "",
        "executor": "local",
        "base_fingerprint": "host:x",
        "harness": {"slot": "cpu0"},
    }
    return RunOutcome(**{**fields, **changes})
