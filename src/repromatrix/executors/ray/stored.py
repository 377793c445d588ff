"""A record as the driver stores it: a node's, with the driver's base and clock, or the
driver's own note of a cell the cluster can no longer run.

The driver is the store's one writer, and which record stands for a cell is a matter of
its `finished` time: a node whose clock ran ahead (within the skew the store takes at its
word) dated its records past those of a later `--rerun`, whose verdict then hid behind
the stale one; a node whose clock lagged made a rerun's record lose to the one it reran.
The node's times are moved onto the driver's clock (the span the node measured is kept),
and its own stay in `provenance.harness.ray` (`node_started`, `node_finished`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from repromatrix.executors.base import RunOutcome
from repromatrix.model import Cell, Status
from repromatrix.records import Result


def as_stored(result: Result, *, base_fingerprint: str, submitted: datetime) -> Result:
    """`result`, come back now from the node, with the driver's base and clock; it began
    no earlier than the driver `submitted` it."""
    now = datetime.now(UTC)
    update: dict[str, Any] = {}
    if result.base_fingerprint != base_fingerprint:
        update["base_fingerprint"] = base_fingerprint
    try:
        node_started = datetime.fromisoformat(result.started)
        node_finished = datetime.fromisoformat(result.finished)
    except ValueError:  # not the node's own dates: say when the driver saw it
        node_started = node_finished = now
    started = max(now - (node_finished - node_started), submitted)
    update["started"] = started.isoformat(timespec="milliseconds")
    update["finished"] = now.isoformat(timespec="milliseconds")
    provenance = dict(result.provenance)
    harness = dict(provenance.get("harness") or {})
    harness["ray"] = {
        **dict(harness.get("ray") or {}),
        "node_started": result.started,
        "node_finished": result.finished,
    }
    provenance["harness"] = harness
    update["provenance"] = provenance
    return result.model_copy(update=update)


def not_run(cell: Cell, why: str, *, run_id: str, base: str) -> Result:
    """The note of a cell the cluster can no longer run (the node running it was lost, and
    no live node offers what it needs): "not run here", as for a type no node offers."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    return Result.for_cell(
        cell, status=Status.NOT_RUN, reason=why, started=now, finished=now,
        host="ray-cluster", run_id=run_id, base_fingerprint=base, executor="ray",
    )  # fmt: skip


def outcome_of(result: Result, started: datetime) -> RunOutcome:
    """The outcome of a cell whose record is made (`judged`): stored as it is."""
    return RunOutcome(
        exit_code=result.exit_code,
        timed_out=False,
        cancelled=False,
        duration_s=result.duration_s,
        started=started,
        result_json=None,
        stdout_tail=result.stdout_tail,
        stderr_tail=result.stderr_tail,
        executor="ray",
        base_fingerprint=result.base_fingerprint,
        judged=result,
    )
