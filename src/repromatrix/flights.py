"""One cell a slot has taken, from its hand-over to an executor to its record.

A cell is either run by the slot when its turn comes, or — where the executor queues cells
itself (`QueueingExecutor`: Ray's GPU cells) — submitted ahead of its turn, so the backend
starts it the moment a slot frees. Either way an executor that raises, or output that
cannot be judged, costs the cell an `error` record with the reason, never the cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from repromatrix.executors.base import (
    HOST_FULL,
    HOST_STORAGE,
    HOST_STORAGE_AT,
    QueueingExecutor,
    RunOutcome,
    Slot,
    Submitted,
    harness_failure,
)
from repromatrix.executors.judge import judge
from repromatrix.host import HostInfo
from repromatrix.model import Cell, Status
from repromatrix.planning import Planned
from repromatrix.records import Result


@dataclass(frozen=True, kw_only=True)
class Flight:
    """A cell a slot has taken: submitted to a queueing executor, or to run when its turn
    comes (`submitted` None)."""

    item: Planned
    workdir: Path
    slot: Slot
    submitted: Submitted | None

    @property
    def queued(self) -> bool:
        return self.submitted is not None

    def outcome(self) -> RunOutcome:
        """Wait for the cell to end (or run it now); an executor's bug is its outcome."""
        started = datetime.now(UTC)
        try:
            if self.submitted is not None:
                done = self.submitted.outcome()
            else:
                done = self.item.executor.run(self.item.cell, self.slot, self.workdir)
        except Exception as exc:  # a bug in an executor must cost a record, not the cell
            return _harness_bug(self.item, self.slot, started, exc)
        return relinked(self, done) or done


def queues(item: Planned) -> bool:
    """Whether `item`'s executor would hold it back until a slot is free (so it may be
    submitted before its turn)."""
    ask = getattr(item.executor, "queues", None)
    return bool(ask is not None and ask(item.cell))


def launch(item: Planned, slot: Slot, workdir: Path) -> Flight:
    """Hand `item` over: submitted now where its executor queues it, else run later."""
    if not queues(item):
        return Flight(item=item, workdir=workdir, slot=slot, submitted=None)
    executor = cast("QueueingExecutor", item.executor)
    started = datetime.now(UTC)
    submitted: Submitted
    try:
        submitted = executor.submit(item.cell, slot, workdir)
    except Exception as exc:  # a bug in an executor must cost a record, not the cell
        submitted = _Done(_harness_bug(item, slot, started, exc))
    return Flight(item=item, workdir=workdir, slot=slot, submitted=submitted)


def relinked(flight: Flight, outcome: RunOutcome) -> RunOutcome | None:
    """An error outcome when the cell replaced its folder, or the one its result JSON goes
    in, with a link (a container's root may rename what is mounted into it): the result,
    logs and tails would then be read, and trimmed, wherever the link points on this host.
    None when every folder is still a folder; nothing from a relinked one is read."""
    if outcome.judged is not None:
        return None
    folders = [flight.workdir]
    if outcome.result_json is not None and flight.workdir in outcome.result_json.parents:
        inner = outcome.result_json.parent.relative_to(flight.workdir)
        folders += [flight.workdir.joinpath(*inner.parts[: i + 1]) for i in range(len(inner.parts))]
    link = next((f for f in folders if f.is_symlink()), None)
    if link is None:
        return None
    return harness_failure(
        executor=outcome.executor,
        base_fingerprint=outcome.base_fingerprint,
        started=outcome.started,
        why=f"the cell replaced its folder {link.name!r} with a link; links are not followed, "
        "so nothing it left is read (the repro must not move its own folders)",
        harness=outcome.harness,
    )


def judge_outcome(cell: Cell, outcome: RunOutcome, *, host: HostInfo, run_id: str) -> Result:
    """The cell's record: judged here, or as judged on the node that ran it."""
    if outcome.judged is not None:  # judged on the node that ran it
        return outcome.judged
    try:
        return judge(cell, outcome, host=host.hostname, run_id=run_id, machine=host.machine)
    except Exception as exc:  # whatever the repro wrote, the cell gets a record
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        return Result.for_cell(
            cell,
            status=Status.ERROR,
            reason=f"harness could not judge the output: {type(exc).__name__}: {exc}",
            exit_code=outcome.exit_code,
            started=outcome.started.isoformat(timespec="milliseconds"),
            finished=now,
            host=host.hostname,
            machine=host.machine,
            run_id=run_id,
            executor=outcome.executor,
            base_fingerprint=outcome.base_fingerprint,
        )


@dataclass(frozen=True)
class _Done:
    """An outcome known at submission (the executor failed to submit)."""

    done: RunOutcome

    def outcome(self) -> RunOutcome:
        return self.done


def _harness_bug(item: Planned, slot: Slot, started: datetime, exc: Exception) -> RunOutcome:
    harness: dict[str, object] = {"slot": slot.name}
    if isinstance(exc, OSError) and exc.errno in HOST_FULL:
        harness[HOST_STORAGE] = exc.strerror or str(exc)
        if exc.filename:  # the folder to fix: the cache's envs/ or workers/
            harness[HOST_STORAGE_AT] = str(exc.filename)
    return harness_failure(
        executor=getattr(item.executor, "name", "?"),
        base_fingerprint="",
        started=started,
        why=f"harness failed: {type(exc).__name__}: {exc}",
        harness=harness,
    )
