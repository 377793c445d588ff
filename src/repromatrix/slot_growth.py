"""Slots a run gains while it goes on: where the machines are a cluster (`--executor ray`),
a node that joins mid-run offers more GPUs of a type (or CPUs) than the run counted at
its start, and the cells still waiting get slots there.

A pool may start with no slot at all: a GPU type no node offered at the run's start (its
nodes still booting); its cells wait for one while the run goes on (`waiting`).

A slot that ends is no longer counted: one whose node left (its cells are put back, to
be taken first by the pool's live slots) and one whose pool had no cell left. A pool with
cells left and fewer slots than the executor offers gets new ones (a node joined, or cells
were put back after its other slots ended); a pool left with no slot waits for a node
as a type no node offered at the start does, and its cells are then noted as lost.

Apart from the scheduler because it is a view of what the executor offers now against
what the run has; it knows nothing of records.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from repromatrix.errors import UsageError
from repromatrix.executors.base import Slot, lost_line
from repromatrix.host import HostGpu
from repromatrix.model import Cell, GpuType
from repromatrix.planning import Pending

_log = logging.getLogger("repromatrix.scheduler")

#: How many slots a pool's cells may have now (any of its cells stands for the pool: its
#: GPU type, or `cpu`).
Capacity = Callable[[Cell], int]
#: The executor is asked at most this often: each question is a walk of the cluster's
#: nodes, while the scheduler looks every fraction of a second.
LOOK_S = 2.0

#: How long (s) cells of a GPU type no node offers wait once the run's other cells are
#: done (`--executor ray`); unset: not at all, as before nodes could join mid-run.
NODE_WAIT_VAR = "REPROMATRIX_RAY_NODE_WAIT_S"


def node_wait_seconds(text: str) -> float:
    """`NODE_WAIT_VAR`'s value as seconds, 0 when unset; no number of seconds is refused."""
    if not text:
        return 0.0
    seconds = float(text) if re.fullmatch(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+", text) else -1.0
    if not 0 <= seconds <= 86400:
        raise UsageError(
            f"{NODE_WAIT_VAR}={text[:40]!a}: give the seconds cells of a GPU type no node "
            "offers wait for one to join once the run's other cells are done, 0 to 86400 "
            "(default 0), or unset it"
        )
    return seconds


@dataclass
class _Pool:
    items: Pending
    cell: Cell
    slots: int  # how many it has (running)
    held: int = 0  # cells its slots hold, submitted or running
    #: Keys of the cells put back when their slot's node left: noted as lost if no slot
    #: is left to run them.
    moved: set[str] = field(default_factory=set)


class SlotGrowth:
    """The run's pools, their slots, and new slots once the executor offers more."""

    def __init__(
        self,
        capacity: Capacity | None,
        *,
        per_gpu: int,
        gpus: int,
        cpus: int,
        node_wait_s: float = 0.0,
    ) -> None:
        """`gpus`, `cpus`: the numbers the run's first GPU and CPU slot to come take.
        `node_wait_s`: how long a pool with no slot waits once no slot has work left."""
        self._capacity, self._per_gpu = capacity, max(1, per_gpu)
        self._node_wait_s = node_wait_s
        self._idle_since: float | None = None  # since when no slot had work
        self._next_gpu, self._next_cpu = gpus, cpus
        self._pools: dict[str, _Pool] = {}
        self._looked = time.monotonic()  # the slots were just counted

    def pool(self, name: str, items: Pending, cell: Cell, slots: int) -> str:
        """Counts the pool; what to say of it where it has no slot and may get one."""
        self._pools[name] = _Pool(items, cell, slots)
        if slots or self._capacity is None:
            return ""
        after = f", and {self._node_wait_s:g} s after" if self._node_wait_s > 0 else ""
        return (
            f"{len(items)} {name} cell(s) wait for a node of type {name} to join the "
            f"cluster (none offers it now) while the run's other cells go on{after}; else "
            "they are noted 'not run here'"
        )

    def busy(self) -> None:
        """A slot has work: a pool with no slot may wait on."""
        self._idle_since = None

    def hold(self, items: Pending, more: int) -> None:
        """The pool whose cells are `items` holds `more` cells in its slots (or fewer)."""
        for pool in self._pools.values():
            if pool.items is items:
                pool.held += more

    def share(self, items: Pending, left: int) -> int:
        """The most cells one slot of the pool may hold now: its cells, held and `left`,
        over its slots, rounded up. Six cells on three Ray slots went 3, 2 and 1 (the
        first slot to ask queued two behind its own), and one slot sat idle for a whole
        cell's time while cells waited in another's queue."""
        for pool in self._pools.values():
            if pool.items is items:
                return -(-(left + pool.held) // max(1, pool.slots))
        return left

    def ended(self, items: Pending, moved: Iterable[str] = ()) -> tuple[int, str]:
        """A slot of the pool whose cells are `items` ended (`moved`: the keys of the
        cells it put back there, its node having left): how many slots the pool has
        left, and what they are of (a GPU type, or CPU)."""
        for pool in self._pools.values():
            if pool.items is items:
                pool.slots -= 1
                pool.moved.update(moved)
                return pool.slots, "CPU" if pool.cell.gpu.is_cpu else pool.cell.gpu.name
        return 0, "?"

    def no_node(
        self, lacks: Callable[[GpuType], str]
    ) -> tuple[list[tuple[Cell, str]], list[str], str | None] | None:
        """Asked while no slot has work: None while a pool with no slot still waits for
        one (`node_wait_s` from the first ask), else the cells of every such pool, taken
        out of it, each once with why it did not run (`lacks`, or `gone` for a cell put
        back when its node left), a line for each pool, and the run's closing line when
        cells were so lost (the run must not end with exit 0)."""
        waiting = [p for p in self._pools.values() if p.slots == 0 and len(p.items)]
        now = time.monotonic()
        if self._idle_since is None:
            self._idle_since = now
            if waiting and self._capacity is not None:
                # Look at the cluster once more first: cells put back after the pool's
                # other slots had ended, with their nodes still there, get slots.
                self._looked = -1e9
                return None
        if waiting and now - self._idle_since < self._node_wait_s:
            return None
        cells: list[tuple[Cell, str]] = []
        said: list[str] = []
        lost: list[tuple[str, str]] = []  # (cell id, how)
        for pool in waiting:
            keys: set[str] = set()  # a cell's repeats are one note
            while (item := pool.items.take(None, lambda _: True)) is not None:
                if item.cell.key not in keys:
                    keys.add(item.cell.key)
                    if item.cell.key in pool.moved:
                        why, how = gone(item.cell)
                        lost.append((item.cell.id, how))
                    else:
                        why = lacks(item.cell.gpu)
                    cells.append((item.cell, why))
            said.append(
                f"no node of type {pool.cell.gpu.name} joined while the run went on: its "
                f"{len(keys)} cell(s) are noted 'not run here'"
            )
        return cells, said, lost_line(lost)

    def waiting(self) -> list[tuple[Pending, Cell]]:
        """The pools that have no slot yet (each with its cells, and one that stands for
        them): a GPU type none of the cluster's nodes offered so far."""
        return [(pool.items, pool.cell) for pool in self._pools.values() if pool.slots == 0]

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


def gone(cell: Cell) -> tuple[str, str]:
    """Why a cell put back when its slot's node left was not run (no node of its type, or
    no CPU, was left or joined), and how the run's closing line says it was lost."""
    if cell.gpu.is_cpu:
        return (
            "no CPU in the cluster any more (the node running it was lost and no other node "
            "offers a CPU)"
        ), "and no other node offers a CPU"
    name = cell.gpu.name
    return (
        f"no host with this GPU in the cluster any more (the node running it was lost and "
        f"no other node offers {name})"
    ), f"and no other node offers {name}"
