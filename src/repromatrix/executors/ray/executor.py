"""Cells as Ray tasks: the driver side (`--executor ray`).

Each cell becomes one task that needs one GPU slot of its GPU type (the custom resource
`repromatrix-gpu-<type>` that `repromatrix ray-node` publishes, plus Ray's own GPU so that
Ray reserves a device index) or one CPU for a `cpu` cell. On its node the task runs the
cell with the node's local or Docker executor and returns the record; the driver is the
only writer of the store. Ray retries a task whose node or worker died (a bounded number
of times); a repro's own failure is a record, never an exception, so it is never retried.
A task whose GPU type no live node offers any more is cancelled and recorded as such.
"""

from __future__ import annotations

import pickle
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import ray
import ray.exceptions

from repromatrix.executors.base import RunOutcome, Slot, harness_failure
from repromatrix.executors.ray.cluster import cluster_host, resource
from repromatrix.executors.ray.cpuslots import CpuSlots
from repromatrix.executors.ray.node import NodeTask, Shared, run_cell, shared_for
from repromatrix.host import HostInfo
from repromatrix.model import Cell, GpuType
from repromatrix.options import SessionConfig
from repromatrix.records import Result

#: How often a waiting task looks at the cluster (node loss, Ctrl-C).
_POLL_S = 1.0
#: The most a task carries of its run's config and scripts itself (Ray puts arguments
#: over 100 KiB into its object store, once per task).
_INLINE_BYTES = 64 * 1024
#: Failures of the infrastructure, which Ray retries: a node or a worker process died.
_LOST = (
    ray.exceptions.WorkerCrashedError,
    ray.exceptions.NodeDiedError,
    ray.exceptions.ObjectLostError,
    ray.exceptions.OwnerDiedError,
    ray.exceptions.LocalRayletDiedError,
)


def _on_node_body(cell: Cell, key: str, shared: bytes | Shared, run_id: str) -> Result:
    context = ray.get_runtime_context()
    if isinstance(shared, bytes):  # unpickled once per worker process
        shared = shared_for(key, partial(pickle.loads, shared))
    task = NodeTask(cell=cell, shared=shared, run_id=run_id)
    # Asked only where they can be set: each question costs a walk of Ray's state.
    if cell.needs_gpu:
        gpu_ids, group = [int(i) for i in ray.get_gpu_ids()], ""
    else:
        gpu_ids, group = [], context.get_placement_group_id() or ""
    return run_cell(task, gpu_ids, context.get_node_id(), group=group)


#: The task. max_calls=0: Ray may run many of them in one worker process, which is what
#: lets the node keep its persistent workers (Ray's default for GPU tasks is one call).
_on_node: Any = ray.remote(max_calls=0)(_on_node_body)


class RayExecutor:
    name = "ray"

    def __init__(self, config: SessionConfig) -> None:
        self.config = config
        address = config.ray_address or "auto"
        ray.init(
            address=address,
            ignore_reinit_error=True,
            log_to_driver=False,
            logging_level="ERROR",
            include_dashboard=False if address == "local" else None,
        )
        self._lock = threading.Lock()
        self._pending: set[Any] = set()
        self._cancelled = threading.Event()
        #: Per script: a key unique to this run and script, and the run's config with the
        #: script's files, pickled once. Each task carries both (a few KiB, inside the task
        #: itself), and a worker unpickles them once per key: a reference into Ray's object
        #: store instead cost every task a fetch and an unpickling, and a reference that Ray
        #: passes unresolved costs its borrower bookkeeping. Big scripts go by reference.
        self._shared: dict[Path, tuple[str, Any]] = {}
        #: The scheduler's CPU slots (`--jobs`), as bundles of one placement group.
        self._cpu = CpuSlots(config.jobs)

    # -- the cluster ---------------------------------------------------------------------

    def host(self, types: Iterable[GpuType]) -> HostInfo:
        """The cluster's GPUs of these types (live nodes only), as one host."""
        return cluster_host(ray.cluster_resources(), types)

    def _offered(self, gpu_type: GpuType) -> bool:
        return bool(ray.cluster_resources().get(resource(gpu_type.name), 0))

    # -- Executor protocol ---------------------------------------------------------------

    def base_fingerprint(self, cell: Cell) -> str:
        return "ray"

    def can_run(self, cell: Cell) -> str | None:
        return None

    def run(self, cell: Cell, slot: Slot, workdir: Path) -> RunOutcome:
        return self.submit(cell, slot, workdir).outcome()

    def queues(self, cell: Cell) -> bool:
        """GPU cells: each asks for its slot's share of a GPU of its type, and the cluster
        has exactly the slots the scheduler runs, so a task submitted early waits in Ray
        until a slot frees. A CPU cell asks for one CPU, of which the cluster may have more
        than `--jobs`: it is submitted early only when pinned to its slot's bundle of the
        run's placement group (`cpuslots`), where it waits for that slot alone."""
        return cell.needs_gpu or self._cpu.available()

    def submit(self, cell: Cell, slot: Slot, workdir: Path) -> _Task:
        started = datetime.now(UTC)
        if self._cancelled.is_set():
            return _Task(self, None, cell, started)
        shared = self._shared.get(cell.script)
        if shared is None:  # once per script: each worker fetches it once
            payload: Any = pickle.dumps(Shared(config=self.config, scripts=_scripts(cell.script)))
            if len(payload) > _INLINE_BYTES:
                payload = ray.put(pickle.loads(payload))
            shared = self._shared[cell.script] = (secrets.token_hex(8), payload)
        options: dict[str, Any] = {
            "max_retries": self.config.ray_retries,
            "retry_exceptions": False,
        }
        if cell.needs_gpu:
            share = 1.0 / self.config.per_gpu
            options.update(num_cpus=0, num_gpus=share, resources={resource(cell.gpu.name): share})
        else:
            options.update(self._cpu.options(slot.name) or {"num_cpus": 1})
        ref = _on_node.options(**options).remote(cell, shared[0], shared[1], workdir.parent.name)
        with self._lock:
            self._pending.add(ref)
        return _Task(self, ref, cell, started)

    def _outcome(self, ref: Any, cell: Cell, started: datetime) -> RunOutcome:
        if ref is None:
            return self._failed(started, "cancelled (Ctrl-C) before it started", cancelled=True)
        try:
            return self._wait(ref, cell, started)
        finally:
            with self._lock:
                self._pending.discard(ref)

    def _wait(self, ref: Any, cell: Cell, started: datetime) -> RunOutcome:
        while True:
            try:
                record = ray.get(ref, timeout=_POLL_S)
                break
            except ray.exceptions.GetTimeoutError:
                pass
            except _LOST as exc:
                return self._failed(
                    started,
                    f"infrastructure: the task's node or worker was lost "
                    f"({type(exc).__name__}) after {self.config.ray_retries} retries",
                )
            except ray.exceptions.TaskCancelledError:
                return self._failed(started, "cancelled (Ctrl-C)", cancelled=True)
            except ray.exceptions.RayError as exc:
                return self._failed(started, f"harness failed on the node: {_one_line(exc)}")
            if self._cancelled.is_set():
                ray.cancel(ref, force=True)
                return self._failed(started, "cancelled (Ctrl-C)", cancelled=True)
            gone = self._gone(cell)
            if gone:  # Ray would wait forever
                ray.cancel(ref, force=True)
                return self._failed(started, f"infrastructure: {gone}")
        # The node's own `Result`, judged there by this version of repromatrix (the cell
        # itself travelled pickled too): validating it again here cost every cell.
        result = record if isinstance(record, Result) else Result.model_validate(record)
        return RunOutcome(
            exit_code=result.exit_code,
            timed_out=False,
            cancelled=False,
            duration_s=result.duration_s,
            started=started,
            result_json=None,
            stdout_tail=result.stdout_tail,
            stderr_tail=result.stderr_tail,
            executor=self.name,
            base_fingerprint="ray",
            judged=result,
        )

    def _gone(self, cell: Cell) -> str:
        """Why a waiting cell can never start (its node died and nothing is left to take
        it over), else ''."""
        if cell.needs_gpu and not self._offered(cell.gpu):
            return (
                f"no host with this GPU in the cluster any more (the node running it was "
                f"lost and no other node offers {cell.gpu.name})"
            )
        if not cell.needs_gpu and self._cpu.lost():
            return (
                "the node holding this cell's CPU slot was lost and no other node has had "
                "a free CPU for it"
            )
        return ""

    def _failed(self, started: datetime, why: str, *, cancelled: bool = False) -> RunOutcome:
        return harness_failure(
            executor=self.name,
            base_fingerprint="ray",
            started=started,
            why=why,
            harness={},
            cancelled=cancelled,
        )

    def cancel(self) -> None:
        self._cancelled.set()
        with self._lock:
            pending = list(self._pending)
        for ref in pending:
            ray.cancel(ref, force=True)

    def close(self) -> None:
        """Release the run's CPU slots; the nodes keep their workers for the next run."""
        self._cpu.close()


@dataclass(frozen=True)
class _Task:
    """A cell submitted as a Ray task (None: refused, the run is being cancelled)."""

    executor: RayExecutor
    ref: Any
    cell: Cell
    started: datetime

    def outcome(self) -> RunOutcome:
        return self.executor._outcome(self.ref, self.cell, self.started)


def _scripts(script: Path) -> dict[str, bytes]:
    """The script and the `_*.py` helpers beside it (what its key covers): shipped to the
    node, which may not have this checkout."""
    files = {script.name: script.read_bytes()}
    for helper in sorted(script.parent.glob("_*.py")):
        files[helper.name] = helper.read_bytes()
    return files


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]
