"""Slots a run gains while it goes on: where the machines are a cluster (`--executor ray`),
a node that joins mid-run offers more GPUs of a type (or CPUs) than the run counted at
its start, and the cells still waiting get slots there.

Apart from the scheduler because it is a view of what the executor offers now against
what the run has; it knows nothing of records. Slots only grow: a node that leaves takes
its cells along (the executor runs them elsewhere or notes them), and its slots wait for
a GPU of their type like any other.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from repromatrix.executors.base import Slot
from repromatrix.host import HostGpu
from repromatrix.model import Cell
from repromatrix.planning import Pending

_log = logging.getLogger("repromatrix.scheduler")

#: How many slots a pool's cells may have now (any of its cells stands for the pool: its
#: GPU type, or `cpu`).
Capacity = Callable[[Cell], int]
#: The executor is asked at most this often: each question is a walk of the cluster's
#: nodes, while the scheduler looks every fraction of a second.
LOOK_S = 2.0


@dataclass
class _Pool:
    items: Pending
    cell: Cell
    slots: int  # how many it has


class SlotGrowth:
    """The run's pools, their slots, and new slots once the executor offers more."""

    def __init__(self, capacity: Capacity | None, *, per_gpu: int, gpus: int, cpus: int) -> None:
        """`gpus`, `cpus`: the numbers the run's first GPU and CPU slot to come take."""
        self._capacity, self._per_gpu = capacity, max(1, per_gpu)
        self._next_gpu, self._next_cpu = gpus, cpus
        self._pools: dict[str, _Pool] = {}
        self._looked = time.monotonic()  # the slots were just counted

    def pool(self, name: str, items: Pending, cell: Cell, slots: int) -> None:
        self._pools[name] = _Pool(items, cell, slots)

    def more(self, left: Callable[[Pending], int]) -> list[tuple[Slot, Pending, str]]:
        """New slots (each with its pool's cells and what to say of it) for the pools
        that have cells `left` to hand out, once the executor offers more than they have."""
        now = time.monotonic()
        if self._capacity is None or now - self._looked < LOOK_S:
            return []
        self._looked = now
        made: list[tuple[Slot, Pending, str]] = []
        for name, pool in self._pools.items():
            if left(pool.items) <= 0:
                continue
            try:
                offered = self._capacity(pool.cell)
            except Exception as exc:  # a cluster gone: the cells' own waits say so
                _log.debug("could not count %s slots: %s", name, exc)
                continue
            new = self._slots(pool, offered)
            if new:
                pool.slots += len(new)
                what = "CPU" if pool.cell.gpu.is_cpu else pool.cell.gpu.name
                said = (
                    f"{len(new)} more {what} slot{'' if len(new) == 1 else 's'} for the "
                    f"{left(pool.items)} cell(s) still waiting: the cluster offers more "
                    "than at the run's start (a node joined)"
                )
                made.extend((slot, pool.items, said) for slot in new)
        return made

    def _slots(self, pool: _Pool, offered: int) -> list[Slot]:
        """The slots that take `pool` up to `offered` (a GPU's `per_gpu` slots at once)."""
        gpu = pool.cell.gpu
        if gpu.is_cpu:
            first, self._next_cpu = self._next_cpu, self._next_cpu + max(0, offered - pool.slots)
            return [Slot(name=f"cpu{i}") for i in range(first, self._next_cpu)]
        gpus = max(0, offered - pool.slots) // self._per_gpu
        first, self._next_gpu = self._next_gpu, self._next_gpu + gpus
        made: list[Slot] = []
        for i in range(first, self._next_gpu):
            host_gpu = HostGpu(
                index=i,
                name=gpu.smi_names[0] if gpu.smi_names else gpu.name,
                uuid=f"joined:{gpu.name}:{i}",
                compute_capability=gpu.compute_capability,
            )
            shares = [""] if self._per_gpu == 1 else [f".{j}" for j in range(self._per_gpu)]
            made.extend(Slot(name=f"gpu{i}{share}", gpu=host_gpu) for share in shares)
        return made
