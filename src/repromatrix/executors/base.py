"""What every executor does: run one cell in one slot and report a `RunOutcome`.

Turning that outcome (exit code, result JSON, output tails) into a `Result` is `judge.py`,
shared so that every executor judges a repro identically.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from repromatrix.host import HostGpu
from repromatrix.model import Cell, canonical_json
from repromatrix.records import Result

#: Name of the result JSON a repro writes in its work directory.
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
    #: The record, when the cell was judged where it ran (a Ray node): stored as it is.
    judged: Result | None = None


#: `RunOutcome.harness` keys of a cell that failed for a reason no later cell would escape:
#: this host cannot write what cells need (a full disk), or the container engine is gone.
#: The run stops there, and the cell gets no record (the next run does it).
HOST_STORAGE = "host_storage"
ENGINE_LOST = "engine_lost"


def run_identity(
    base: str,
    *,
    cell_env: Mapping[str, str],
    pythonpath: str | None = None,
    moved: Mapping[str, str] | None = None,
) -> str:
    """A cell's base fingerprint: `base` (the interpreter's or image's identity) and what
    else its result depends on that its key does not name: the `--cell-env` variables,
    the PYTHONPATH the cells inherit (code there is imported, with no metadata to see), and
    the commits git names stand for now (`envs.moving_commits`). A record made with other
    ones is not reused. Nothing extra: `base` itself, as records before this had it."""
    extra: dict[str, Any] = {}
    if cell_env:
        extra["cell_env"] = dict(sorted(cell_env.items()))
    if pythonpath:
        extra["pythonpath"] = pythonpath
    if moved:
        extra["moved"] = dict(sorted(moved.items()))
    if not extra:
        return base
    return f"{base}+{hashlib.sha256(canonical_json(extra).encode()).hexdigest()[:12]}"


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

    def close(self) -> None:
        """Release what the executor keeps between cells (workers): end of a session."""
        ...


class Submitted(Protocol):
    """A cell handed to a queueing executor: `outcome` waits for it to end."""

    def outcome(self) -> RunOutcome: ...


class QueueingExecutor(Executor, Protocol):
    """An executor whose backend keeps its own queue per slot (Ray): a slot may hand it
    the next cell while the current one runs, and the backend starts that cell the moment
    the slot's resources free up, without a round trip through the driver between them."""

    def queues(self, cell: Cell) -> bool:
        """Whether the backend itself holds a cell of this kind back until a slot is free
        (so that a second one submitted early waits instead of running alongside)."""
        ...

    def submit(self, cell: Cell, slot: Slot, workdir: Path) -> Submitted: ...
