"""Cells on a Ray cluster: the driver side (`--executor ray`).

Each scheduler slot is one Ray actor (`slots.py`) holding one slot of its GPU type (the
custom resource `repromatrix-gpu-<type>` that `repromatrix ray-node` publishes, plus
Ray's own GPU share so that Ray assigns a device) or one CPU for a `cpu` slot, for the
run; the slot's cells are calls of it, run in order. On its node the actor runs a cell
with the node's local or Docker executor and returns the record; the driver is the only
writer of the store.

A node that dies takes its actors along: each cell that was running or waiting on one
comes back to the scheduler as moved (`RunOutcome.moved`), which hands it out again ahead
of the cells no slot has taken and drops the slot (a node that joins later brings new
ones), up to `--ray-retries` + 1 times a cell; a plain task stood behind every actor that
kept its GPU for the run, so those cells ran last. A repro's own failure is a record,
never an exception, so it is never moved. A cell sent to a node that offers a type it
lacks goes again as a plain task, which avoids that node, and so does one whose actor its
node could not make (the task's error says why: the driver's code does not import there).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ray
import ray.exceptions

from repromatrix.executors.base import (
    MISSING_TOOL,
    RunOutcome,
    Slot,
    harness_failure,
    run_identity,
)
from repromatrix.executors.ray.builds import NODE_BUILD
from repromatrix.executors.ray.cluster import cluster_host, live_resources, resource
from repromatrix.executors.ray.driver import join
from repromatrix.executors.ray.failures import GONE, OWN, ActorLost, failure_of, other_files
from repromatrix.executors.ray.losses import Losses
from repromatrix.executors.ray.node import NodeLacksType, Shared, code_digest
from repromatrix.executors.ray.node_scripts import scripts_of
from repromatrix.executors.ray.on_node import on_node, slot_actor
from repromatrix.executors.ray.placement import Placement
from repromatrix.executors.ray.slots import SlotActors, kill, wants
from repromatrix.executors.ray.stored import as_stored, not_run, outcome_of
from repromatrix.executors.ray.waits import SAY_AFTER_VAR, Waits, say_after_seconds
from repromatrix.executors.refusals import RefusedImages
from repromatrix.git_pins import moving_commits
from repromatrix.gitpaths import relative_local
from repromatrix.host import HostInfo
from repromatrix.mirrors import Mirrors
from repromatrix.model import Cell, GpuType, SourceKind, Status
from repromatrix.options import SessionConfig
from repromatrix.records import Result
from repromatrix.release_digest import ReleaseFiles

_log = logging.getLogger("repromatrix.ray")
#: How often a waiting task looks at the cluster (node loss, Ctrl-C).
_POLL_S = 1.0
#: The most a task carries of its run's config and scripts itself (Ray puts arguments
#: over 100 KiB into its object store, once per task).
_INLINE_BYTES = 64 * 1024
#: The label every Ray node has: its id (a cell avoids a node by it).
_NODE_ID = "ray.io/node-id"


class RayExecutor:
    name = "ray"

    def __init__(self, config: SessionConfig, note: Callable[[str], None] | None = None) -> None:
        # A value that is no number of seconds is refused (exit 64) before connecting.
        say_after_s = say_after_seconds(os.environ.get(SAY_AFTER_VAR, ""))
        self.config = config
        self._sent = config  # what the nodes get: relative `git:` paths made this folder's
        self._mirrors = Mirrors(config.git_root, config.sources.git_mirrors)
        self._files = ReleaseFiles(config.sources.find_links, config.python)
        self._identities: dict[str, str] = {}  # cell key → its base (`base_fingerprint`)
        # A record made on the cluster stands for that cluster (its head, as the cluster
        # names it; whichever node ran it, whose interpreter is in provenance) and the
        # variables every cell was given: records copied in from another site's cluster
        # never stand in for a run here.
        self._head = join(config)
        self._identity = run_identity(f"ray:{self._head}", cell_env=config.cell_env)
        self._lock = threading.Lock()
        self._pending: set[Any] = set()
        self._losses = Losses(config.ray_retries)  # cells moved, or lost, with their nodes
        self._let_go: set[Any] = set()  # slots' actors ended on a node that lacks the type
        self._node_builds: list[tuple[str, str]] = []  # cells noted for a node's build
        self.refused = RefusedImages()  # images whose python3 a node refused (exit 4)
        self._placement = Placement()  # the nodes each GPU type avoids, the CPUs
        self._cancelled = threading.Event()
        self._said_cpus = threading.Event()
        #: Per script: a key unique to this run and script, and the run's config with the
        #: script's files, pickled once. Each task carries both (a few KiB, inside the task
        #: itself), and a worker unpickles them once per key: a reference into Ray's object
        #: store instead cost every task a fetch and an unpickling, and a reference that Ray
        #: passes unresolved costs its borrower bookkeeping. Big scripts go by reference.
        self._shared: dict[Path, tuple[str, Any]] = {}
        #: Slots whose actors a busy cluster has not placed: said, with how long (`note`).
        self._waits = Waits(note, say_after_s)
        self._slots = SlotActors(
            lambda options: slot_actor.options(**options).remote(),
            end=self._end_actor,
            made=lambda actor, options: self._waits.made(actor, *wants(options)),
        )

    # -- the cluster ---------------------------------------------------------------------

    def host(self, types: Iterable[GpuType]) -> HostInfo:
        """The cluster's GPUs of these types (live nodes only), as one host."""
        usable, without_gpu = live_resources()
        return cluster_host(usable, types, without_gpu)

    # -- Executor protocol ---------------------------------------------------------------

    def base_fingerprint(self, cell: Cell) -> str:
        # A git pin given by a name (`main`) stands for the commit it names now, as on the
        # local executor: after `main` moves, its old record is not this cell's.
        found = self._identities.get(cell.key)
        if found is None:
            moved = moving_commits(self._mirrors, cell.pins)
            found = self._identities[cell.key] = (
                run_identity(f"ray:{self._head}", cell_env=self.config.cell_env, moved=moved)
                if moved
                else self._identity
            )
        return found

    def cpu_slots(self, jobs: int, given: bool) -> int:
        """CPU cells at once: `jobs`, but no more than the live nodes' CPUs. Each CPU slot
        is an actor holding a CPU for the run, so one past them never started while the
        others lived, and the cells handed to its slot waited for ever, saying nothing.
        Said once when `--jobs` was `given`."""
        cpus = int(self._placement.cpus())
        if not 0 < cpus < jobs:
            return jobs
        if given and not self._said_cpus.is_set():
            self._said_cpus.set()  # a bisection asks once a round
            _log.warning(
                "--jobs %d: the Ray cluster's live nodes have %d CPU%s, so %d CPU cell%s at "
                "a time (start nodes with more CPUs for more)",
                jobs, cpus, "" if cpus == 1 else "s", cpus, " runs" if cpus == 1 else "s run",
            )  # fmt: skip
        return cpus

    def slots_now(self, cell: Cell) -> int:
        """The slots of `cell`'s pool the live cluster offers now (nodes join mid-run)."""
        return self._placement.slots(cell, self.config.per_gpu, self.config.jobs)

    def can_run(self, cell: Cell) -> str | None:
        # A CPU cell on a cluster without a CPU would wait for one for ever, silently (a
        # GPU type no node offers is found by the host's GPU list).
        if not cell.needs_gpu and self._placement.cpus() <= 0:
            return "the Ray cluster offers no CPU for a CPU cell (start a node with CPUs)"
        return None

    def run(self, cell: Cell, slot: Slot, workdir: Path) -> RunOutcome:
        return self.submit(cell, slot, workdir).outcome()

    def queues(self, cell: Cell) -> bool:
        """Every cell: a slot's actor runs its calls one at a time, so a cell submitted
        early waits there, for that slot alone."""
        return True

    def _resources(self, cell: Cell) -> dict[str, Any]:
        if cell.needs_gpu:
            share = 1.0 / self.config.per_gpu
            options: dict[str, Any] = {"num_cpus": 0, "num_gpus": share}
            options["resources"] = {resource(cell.gpu.name): share}
            avoided = self._placement.avoided(cell.gpu.name)
            if avoided:  # nodes that offer the type and have none of it
                options["label_selector"] = {_NODE_ID: f"!in({','.join(sorted(avoided))})"}
            return options
        return {"num_cpus": 1}

    def submit(self, cell: Cell, slot: Slot, workdir: Path) -> _Task:
        started = datetime.now(UTC)
        if self._cancelled.is_set():
            return _Task(executor=self, cell=cell, started=started)
        self._local_sources(cell)
        shared = self._shared.get(cell.script)
        if shared is None:  # once per script: each worker unpickles it once
            payload: Any = pickle.dumps(Shared(config=self._sent, scripts=scripts_of(cell.script)))
            if len(payload) > _INLINE_BYTES:
                payload = ray.put(pickle.loads(payload))
            shared = self._shared[cell.script] = (secrets.token_hex(8), payload)
        args = (cell, shared[0], shared[1], workdir.parent.name, code_digest())
        actor, ref = self._slots.call(slot.name, self._resources(cell), args)
        task = _Task(executor=self, cell=cell, started=started, slot=slot.name, where=workdir.name)
        return dataclasses.replace(task, actor=actor, ref=ref, args=args)

    def _local_sources(self, cell: Cell) -> None:
        """A `git:` path relative to this folder (`git: ../fla`) goes to the nodes as the
        folder it names here, as a --git-mirror's does: each node cloned it in its own
        working folder (Ray's), and every cell of the library was an error record."""
        mirrors = self._sent.sources.git_mirrors
        found = {
            p.library: str(Path(p.source).resolve())
            for p in cell.pins
            if p.kind is SourceKind.GIT and p.library not in mirrors
            and relative_local(p.source) and Path(p.source).exists()
        }  # fmt: skip
        if found:
            sources = dataclasses.replace(self._sent.sources, git_mirrors={**mirrors, **found})
            self._sent = dataclasses.replace(self._sent, sources=sources)
            self._shared.clear()  # sent again, with them

    def _end_actor(self, actor: Any) -> None:
        self._waits.gone(actor)
        kill(actor)

    def _outcome(self, task: _Task) -> RunOutcome:
        if task.ref is None:
            return self._failed(task.started, "cancelled (Ctrl-C) before it started", True)
        actor, ref = task.actor, task.ref
        held: tuple[str, float] | None = None  # what its plain task asks of the cluster
        try:
            while True:
                try:
                    return self._wait(ref, task, actor=actor)
                except ActorLost as lost:
                    cause = lost.__cause__ or lost
                    # An actor its node could not make (the driver's code does not import
                    # there), or one let go from a node that lacks its type: its cells go
                    # as plain tasks, whose errors or notes say why.
                    with self._lock:
                        let_go = actor in self._let_go
                    made = not let_go and not getattr(cause, "actor_init_failed", False)
                    words = self._losses.death(actor, self._cancelled) if made else ""
                    self._slots.lost(task.slot, actor)  # killed once Ray said how it ended
                    if lost.args[0] is not None:  # recorded, not run: it takes the memory
                        return self._failed_on(lost.args[0], task.started)
                    if made:
                        return self._moved(task, words) or self._lost(task, cause)
                except NodeLacksType as wrong:
                    if actor is not None:  # its next cells would go there too
                        with self._lock:
                            self._let_go.add(actor)
                        self._slots.lost(task.slot, actor)
                    self._placement.avoid(task.cell.gpu.name, wrong)
                finally:
                    with self._lock:
                        self._pending.discard(ref)
                # Submitted again as a plain task, which avoids the node (`_resources`).
                options = {
                    **self._resources(task.cell),
                    "max_retries": self.config.ray_retries,
                    "retry_exceptions": False,
                }
                actor, ref = None, on_node.options(**options).remote(*task.args)
                with self._lock:
                    self._pending.add(ref)
                if held is None:  # the run's own, not other jobs' (`Waits`)
                    held = wants(options)
                    self._waits.task(*held)
        finally:
            self._slots.ended(task.slot)
            if held is not None:
                self._waits.task(held[0], -held[1])

    def _wait(self, ref: Any, task: _Task, *, actor: Any = None) -> RunOutcome:
        """The record `ref` brings; raises `ActorLost` when `actor` (running it) died."""
        cell, started = task.cell, task.started
        while True:
            try:
                record = ray.get(ref, timeout=_POLL_S)
                break
            except ray.exceptions.GetTimeoutError:
                self._waits.look(wants(options := self._resources(cell))[0])
                if actor is not None:  # queued behind an actor another job keeps waiting?
                    self._slots.yield_idle(task.slot, options)
            except GONE as exc:
                if actor is not None and not self._cancelled.is_set():
                    oom = isinstance(exc, ray.exceptions.OutOfMemoryError)
                    raise ActorLost(exc if oom and self._slots.first_oom(actor) else None) from exc
                if isinstance(exc, OWN):  # this machine's Ray, a memory kill: said so
                    return self._failed_on(exc, started)
                return self._lost(task, exc)
            except ray.exceptions.RayError as exc:
                if isinstance(getattr(exc, "cause", None), NodeLacksType):
                    raise exc.cause from None
                return self._failed_on(exc, started)
            ended = self._never_starts(ref, task, actor)
            if ended is not None:
                return ended
            if actor is None:  # a cell of a lost actor: it may need an idle actor's slot
                self._slots.release_idle()
        return self._stored(cell, started, record)

    def _stored(self, cell: Cell, started: datetime, record: Any) -> RunOutcome:
        """The outcome of the record a node brought back for `cell`."""
        # The node's own `Result`, judged there by this version of repromatrix (the cell
        # itself travelled pickled too): validating it again here cost every cell.
        result = record if isinstance(record, Result) else Result.model_validate(record)
        self.refused.note(cell, result)
        if (other := other_files(result, cell.pins, self._files)) is not None:
            why = f"on Ray node {result.host}: {other}"  # no record: the run stops (exit 4)
            return self._failed(started, why, harness={MISSING_TOOL: why})
        ray_harness = (result.provenance.get("harness") or {}).get("ray") or {}
        if result.status is Status.NOT_RUN and ray_harness.get(NODE_BUILD):
            with self._lock:
                self._node_builds.append((cell.id, result.reason or ""))
        identity = self.base_fingerprint(cell)
        return outcome_of(as_stored(result, base_fingerprint=identity, submitted=started), started)

    def _never_starts(self, ref: Any, task: _Task, actor: Any) -> RunOutcome | None:
        """The outcome of a waiting cell that can never start (Ray would wait for ever
        for a lost type), which is ended; None while it can."""
        if self._cancelled.is_set():
            why, lost = "cancelled (Ctrl-C)", ""
        else:
            why, lost = self._placement.gone(task.cell)
        if not why:
            return None
        if lost and actor is not None and not self._cancelled.is_set():
            # Its slot's node left with the last of its type: the scheduler's rule for a
            # type no node offers applies (it may join again).
            self._slots.lost(task.slot, actor)
            moved = self._moved(task, f"a slot's Ray node left the cluster {lost}")
            if moved is not None:
                return moved
        self._stop(ref, actor)
        if self._cancelled.is_set():
            return self._failed(task.started, why, True)
        if lost:  # cut short by the cluster: the run must not end with exit 0
            self._losses.lose(task.cell.id, lost)
        # A note, not a verdict: an error record hid the cell's earlier one, and the next
        # run reused it; this one hides nothing, the next run does it.
        base = self.base_fingerprint(task.cell)
        return outcome_of(not_run(task.cell, why, run_id=task.args[3], base=base), task.started)

    def _moved(self, task: _Task, words: str) -> RunOutcome | None:
        """The outcome of a cell whose slot's actor is gone (`words`: how), for the
        scheduler to hand out again; None once it was moved more often than
        `--ray-retries` allows (a cell that takes its nodes down with it)."""
        if not self._losses.move(task.cell.key, task.where):
            return None
        return dataclasses.replace(self._failed(task.started, f"moved: {words}"), moved=words)

    def _lost(self, task: _Task, exc: BaseException) -> RunOutcome:
        """A cell whose node (or worker) was lost more often than `--ray-retries` allows:
        noted "not run here", not an error. An error record stood for a run that never
        ended, and the next run reused it as the repro's own failure; the note hides
        nothing and the next run does the cell. The run ends non-zero (`lost_cells`)."""
        if self._cancelled.is_set():
            return self._failed(task.started, "cancelled (Ctrl-C)", True)
        why = (
            f"lost: the Ray node or worker running it was lost ({type(exc).__name__}) "
            f"more often than --ray-retries {self.config.ray_retries} allows; the next run "
            "does it"
        )
        retries = self.config.ray_retries
        self._losses.lose(task.cell.id, f"more often than --ray-retries {retries} allows")
        base = self.base_fingerprint(task.cell)
        return outcome_of(not_run(task.cell, why, run_id=task.args[3], base=base), task.started)

    def lost_cells(self) -> str | None:
        """Why the run must not end with exit 0: cells lost with their nodes past
        `--ray-retries`, or with no node left to take them over, since the last call (a
        bisection's round; `Losses.line`); None when none was."""
        return self._losses.line()

    def node_builds(self) -> str | None:
        """Why the run must not end with exit 0: cells noted because their environment
        failed to build for a node's own want (its index, its compiler), since the last
        call; None when none was."""
        with self._lock:
            noted, self._node_builds = self._node_builds, []
        if not noted:
            return None
        names = ", ".join(cell for cell, _ in noted[:3]) + (", ..." if len(noted) > 3 else "")
        return f"{len(noted)} cell(s) not run ({names}): {noted[0][1]}"

    @staticmethod
    def _stop(ref: Any, actor: Any) -> None:
        """End a cell: its actor (Ray cannot force-cancel an actor's call), or its task."""
        if actor is not None:
            kill(actor)
        else:
            ray.cancel(ref, force=True)

    def _failed_on(self, exc: BaseException, started: datetime) -> RunOutcome:
        """The outcome of a cell whose wait ended in one of Ray's errors."""
        if self._cancelled.is_set() or isinstance(exc, ray.exceptions.TaskCancelledError):
            return self._failed(started, "cancelled (Ctrl-C)", True)
        why, harness = failure_of(exc)
        return self._failed(started, why, harness=harness)

    def _failed(
        self,
        started: datetime,
        why: str,
        cancelled: bool = False,
        harness: Mapping[str, str] | None = None,
    ) -> RunOutcome:
        """`harness`: ENGINE_LOST or HOST_STORAGE stops the run, with no record."""
        return harness_failure(
            executor=self.name,
            base_fingerprint=self._identity,
            started=started,
            why=why,
            harness=harness or {},
            cancelled=cancelled,
        )

    def cancel(self) -> None:
        self._cancelled.set()
        self._slots.kill_all()
        with self._lock:
            pending = list(self._pending)
        for ref in pending:
            ray.cancel(ref, force=True)

    def close(self) -> None:
        """Give the run's slots back, their workers stopped first (Ctrl-C kills at once)."""
        self._slots.kill_all(close_s=10.0)


@dataclass(frozen=True, kw_only=True)
class _Task:
    """A cell submitted to its slot's actor (no `ref`: refused, the run is cancelled)."""

    executor: RayExecutor
    cell: Cell
    started: datetime
    slot: str = ""
    where: str = ""  # the cell's folder's name (a cell's repeats each have one)
    actor: Any = None
    ref: Any = None
    #: The call's arguments, to submit it again as a plain task away from a node that
    #: lacks the cell's type.
    args: tuple[Any, ...] = ()

    def outcome(self) -> RunOutcome:
        return self.executor._outcome(self)
