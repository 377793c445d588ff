"""Where a Ray cell may still go: the nodes each GPU type avoids this run (they offer the
type and have none of it), whether any live node still offers the type or a CPU, and why a
waiting cell can never start.

Apart from the driver's executor because it is a view of the cluster's nodes kept for the
run, asked by the executor at each submission and wait; it knows nothing of records.
"""

from __future__ import annotations

import logging
import threading
import time

import ray

from repromatrix.executors.ray.cluster import live_resources, resource
from repromatrix.executors.ray.node import NodeLacksType
from repromatrix.model import Cell, GpuType

_log = logging.getLogger("repromatrix.ray")


class Placement:
    """The run's avoided nodes per GPU type, and the cluster's CPUs asked now and then."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cpus_at: tuple[float, float] = (-1e9, 0.0)
        #: GPU type → the nodes that offer it and have none (node id → why): no cell of
        #: the type goes there again in this run.
        self._avoided: dict[str, dict[str, str]] = {}

    def avoided(self, gpu_type: str) -> dict[str, str] | None:
        """The nodes (id → why) that `gpu_type`'s cells avoid; None when none."""
        return self._avoided.get(gpu_type)

    def offered(self, gpu_type: GpuType) -> bool:
        avoided = self._avoided.get(gpu_type.name, {})
        return bool(live_resources(avoided)[0].get(resource(gpu_type.name), 0))

    def slots(self, cell: Cell, per_gpu: int, jobs: int) -> int:
        """The slots `cell`'s pool has on the live nodes now: its type's GPUs, but those
        of nodes it avoids, x `per_gpu`; for a CPU cell `jobs`, no more than the CPUs."""
        if cell.needs_gpu:
            avoided = self._avoided.get(cell.gpu.name, {})
            return int(live_resources(avoided)[0].get(resource(cell.gpu.name), 0)) * per_gpu
        return min(jobs, int(self.cpus()))

    def cpus(self) -> float:
        """CPUs of the cluster's live nodes, asked at most every few seconds."""
        now = time.monotonic()
        if now - self._cpus_at[0] > 5.0:
            self._cpus_at = (now, float(ray.cluster_resources().get("CPU", 0)))
        return self._cpus_at[1]

    def avoid(self, gpu_type: str, wrong: NodeLacksType) -> None:
        """No more cells of `gpu_type` on `wrong`'s node this run; said once: its cells
        go to other nodes, and nothing else tells the user that the node is set up wrong."""
        with self._lock:  # a new mapping: others read theirs unlocked
            known = self._avoided.get(gpu_type, {})
            self._avoided[gpu_type] = {**known, wrong.node_id: wrong.why}
        if wrong.node_id not in known:
            fix = "start it with `repromatrix ray-node`, which offers the GPU types a node has"
            _log.warning("%s; no more %s cells go there this run: %s", wrong.why, gpu_type, fix)

    def gone(self, cell: Cell) -> tuple[str, str]:
        """Why a waiting cell can never start (its node died and nothing is left to take
        it over), else ''; and, when it was cut short so (not by a node set up wrong), how
        the run's closing line says it was lost."""
        if cell.needs_gpu and not self.offered(cell.gpu):
            avoided = self._avoided.get(cell.gpu.name)
            if avoided:  # the only nodes that offer it have none: no node to lose
                return (
                    f"no host with this GPU in the cluster: {'; '.join(sorted(avoided.values()))}"
                    "; start such nodes with `repromatrix ray-node`, which offers the GPU "
                    "types a node has"
                ), ""
            return (
                f"no host with this GPU in the cluster any more (the node "
                f"running it was lost and no other node offers {cell.gpu.name})"
            ), f"and no other node offers {cell.gpu.name}"
        if not cell.needs_gpu and self.cpus() <= 0:
            return (
                "no CPU in the cluster any more (the node running it was "
                "lost and no other node offers a CPU)"
            ), "and no other node offers a CPU"
        return "", ""
