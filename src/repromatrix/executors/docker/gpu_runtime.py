"""Whether the engine can hand a GPU to a container, and what a GPU cell gets when it
cannot: the protocol's "cannot be tested here" (exit 125), answered by the harness for the
repro with a result JSON of its own, so `judge` records the cell "untestable" with the
reason, as any repro's 125 (not "not run here", a note about this host that a later run
retries: the cell asked for a GPU inside Docker and this engine has none to give)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from repromatrix.executors.base import RunOutcome, Slot
from repromatrix.model import EXIT_UNTESTABLE, Cell
from repromatrix.repro_result import PROTOCOL_SCHEMA

NO_NVIDIA_RUNTIME = (
    "no NVIDIA runtime in Docker on this host: install nvidia-container-toolkit "
    "or use --executor local"
)


def has_gpu_runtime(info: Mapping[str, Any]) -> bool:
    """Can this engine hand a GPU to a container (NVIDIA runtime, or a CDI spec for it)?"""
    runtimes = info.get("Runtimes") or {}
    if "nvidia" in runtimes or info.get("DefaultRuntime") == "nvidia":
        return True
    for d in info.get("CDISpecDirs") or []:  # Docker >= 25 with CDI enabled
        folder = Path(str(d))
        if folder.is_dir() and any("nvidia" in p.name for p in folder.iterdir()):
            return True
    return False


def untestable_outcome(
    cell: Cell,
    slot: Slot,
    started: datetime,
    result_json: Path,
    *,
    reason: str,
    executor: str,
    base_fingerprint: str,
    harness: dict[str, Any],
) -> RunOutcome:
    """The outcome of `cell`, which cannot be tested here for `reason`: exit 125 and a
    schema-1 result JSON at `result_json` saying so, written whole."""
    payload = {
        "schema": PROTOCOL_SCHEMA,
        "repro": cell.repro,
        "status": "untestable",
        "reason": reason,
        "metrics": {},
        "thresholds": {},
        "provenance": {"written_by": "repromatrix docker executor", "slot": slot.name},
    }
    tmp = result_json.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, result_json)
    return RunOutcome(
        exit_code=EXIT_UNTESTABLE,
        timed_out=False,
        cancelled=False,
        duration_s=(datetime.now(UTC) - started).total_seconds(),
        started=started,
        result_json=result_json,
        stdout_tail="",
        stderr_tail="",
        executor=executor,
        base_fingerprint=base_fingerprint,
        harness=harness,
    )
