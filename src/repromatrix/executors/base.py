"""What every executor does, and the one place a repro's output becomes a Result.

An executor runs one cell in one slot and reports what happened as a `RunOutcome`; turning
that outcome (exit code, result JSON, output tails) into a `Result` is shared here so the
local and Docker executors judge a repro identically.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from repromatrix.host import HostGpu
from repromatrix.model import (
    EXIT_PASSED,
    EXIT_REGRESSED,
    EXIT_UNTESTABLE,
    Cell,
    Result,
    Status,
)

#: Result JSON schema of the repro protocol that this harness reads (repros/_repro.py).
PROTOCOL_SCHEMA = 1
RESULT_FILE = "result.json"


@dataclass(frozen=True, kw_only=True)
class Slot:
    """Where a cell may run: one physical GPU, or a CPU worker."""

    name: str
    gpu: HostGpu | None = None

    @property
    def cuda_visible_devices(self) -> str:
        # An empty value hides every GPU from a CPU cell, so it really runs on the CPU.
        return self.gpu.uuid if self.gpu is not None else ""


@dataclass(frozen=True, kw_only=True)
class RunOutcome:
    """What an executor observed; `judge` turns it into a Result."""

    exit_code: int | None
    timed_out: bool
    cancelled: bool
    duration_s: float
    started: datetime
    result_json: Path | None
    stdout_tail: str
    stderr_tail: str
    executor: str
    base_fingerprint: str
    #: Facts the harness knows but the repro cannot (env key, resolved commits, slot).
    harness: Mapping[str, Any] = field(default_factory=dict)
    #: Set when the harness failed before the repro ran (e.g. environment build).
    harness_error: str | None = None


def harness_failure(
    *,
    executor: str,
    base_fingerprint: str,
    started: datetime,
    why: str,
    harness: Mapping[str, Any],
    cancelled: bool = False,
) -> RunOutcome:
    """The outcome of a cell the harness could not start (environment, image, engine)."""
    return RunOutcome(
        exit_code=None,
        timed_out=False,
        cancelled=cancelled,
        duration_s=(datetime.now(UTC) - started).total_seconds(),
        started=started,
        result_json=None,
        stdout_tail="",
        stderr_tail="",
        executor=executor,
        base_fingerprint=base_fingerprint,
        harness=harness,
        harness_error=why,
    )


class Executor(Protocol):
    name: str

    def base_fingerprint(self, cell: Cell) -> str:
        """Identity of the base the cell would run on here (interpreter or image content)."""
        ...

    def can_run(self, cell: Cell) -> str | None:
        """None when this executor can run the cell here, else why not (one line)."""
        ...

    def run(self, cell: Cell, slot: Slot, workdir: Path) -> RunOutcome: ...

    def cancel(self) -> None:
        """Stop every running cell now (Ctrl-C); their outcomes say `cancelled`."""
        ...


def judge(cell: Cell, outcome: RunOutcome, *, host: str, run_id: str) -> Result:
    """One rule set for every executor: exit code and result JSON must agree.

    A crash, a kill or unreadable JSON is an error, never a pass; a timeout is its own
    status; a repro that exits 0 but writes "regressed" (or vice versa) is an error too,
    because one of the two is lying.
    """
    finished = datetime.now(UTC)
    status, reason, payload = _verdict(outcome, timeout_s=cell.timeout_s)
    provenance: dict[str, Any] = dict(payload.get("provenance") or {})
    provenance["harness"] = dict(outcome.harness)
    return Result(
        key=cell.key,
        cell_id=cell.id,
        repro=cell.repro,
        base=cell.base.name,
        image=cell.base.ref or None,
        gpu=cell.gpu.name,
        pins={p.library: p.label for p in cell.pins},
        status=status,
        reason=reason,
        metrics=_clean_numbers(payload.get("metrics")),
        thresholds=_clean_numbers(payload.get("thresholds")),
        provenance=provenance,
        exit_code=outcome.exit_code,
        duration_s=round(outcome.duration_s, 3),
        started=outcome.started.isoformat(timespec="seconds"),
        finished=finished.isoformat(timespec="seconds"),
        host=host,
        run_id=run_id,
        executor=outcome.executor,
        base_fingerprint=outcome.base_fingerprint,
        stdout_tail=outcome.stdout_tail,
        stderr_tail=outcome.stderr_tail,
    )


def _verdict(outcome: RunOutcome, *, timeout_s: float) -> tuple[Status, str, Mapping[str, Any]]:
    if outcome.harness_error is not None:
        return Status.ERROR, outcome.harness_error, {}
    payload, problem = read_result_json(outcome.result_json)
    code = outcome.exit_code
    if outcome.timed_out:
        # Keep whatever partial numbers a repro managed to write before the limit.
        return (
            Status.TIMEOUT,
            f"timed out: killed at the {timeout_s:g} s limit{_last_line(outcome)}",
            payload or {},
        )
    if outcome.cancelled:
        return Status.ERROR, "cancelled (Ctrl-C) before it finished", payload or {}
    if code is None:
        return Status.ERROR, "the repro did not report an exit code", payload or {}
    if code < 0 or code >= 128:
        sig = -code if code < 0 else code - 128
        return Status.ERROR, f"crashed: killed by signal {sig}{_last_line(outcome)}", payload or {}
    expected = Status.from_exit_code(code)
    if payload is None:
        if code in (EXIT_PASSED, EXIT_REGRESSED, EXIT_UNTESTABLE):
            return (
                Status.ERROR,
                f"exited {code} but {problem}; a verdict without its result JSON is not trusted",
                {},
            )
        return Status.ERROR, f"exited {code} without a result ({problem}){_last_line(outcome)}", {}
    written = str(payload.get("status", ""))
    reason = str(payload.get("reason", "")).strip().replace("\n", " ")
    if expected is Status.ERROR:
        return Status.ERROR, f"exited {code}: {reason or 'no reason given'}", payload
    if written != expected.value:
        return (
            Status.ERROR,
            f"exit code {code} ({expected.value}) disagrees with result JSON status {written!r}",
            payload,
        )
    return expected, reason or expected.value, payload


def read_result_json(path: Path | None) -> tuple[dict[str, Any] | None, str]:
    """Parse and sanity-check a repro's result file; (None, why) when unusable."""
    if path is None or not path.is_file():
        return None, "wrote no result JSON"
    try:
        data = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except ValueError as exc:
        return None, f"wrote result JSON that does not parse ({exc})"
    if not isinstance(data, dict):
        return None, "wrote result JSON that is not an object"
    schema = data.get("schema")
    if schema != PROTOCOL_SCHEMA:
        return None, f"wrote result JSON with schema {schema!r} (expected {PROTOCOL_SCHEMA})"
    if data.get("status") not in {s.value for s in Status if s.is_final}:
        return None, f"wrote result JSON with unknown status {data.get('status')!r}"
    return data, ""


def _last_line(outcome: RunOutcome) -> str:
    for text in (outcome.stderr_tail, outcome.stdout_tail):
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if lines:
            return f"; last output: {lines[-1][:200]}"
    return ""


def _clean_numbers(raw: Any) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    if not isinstance(raw, dict):
        return out
    for k, v in raw.items():
        if isinstance(v, bool):
            out[str(k)] = float(v)
        elif isinstance(v, int | float):
            out[str(k)] = float(v) if math.isfinite(v) else None
        elif v is None:
            out[str(k)] = None
    return out
