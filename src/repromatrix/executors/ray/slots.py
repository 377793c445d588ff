"""The run's slots on the cluster: one Ray actor per scheduler slot.

An actor holds its slot's resources for the run (a slot of a GPU type, or one CPU) and
runs the slot's cells one after another, in the order they were submitted. Ray sends a
call to the actor's process as soon as it is made, so a slot's next cell is already
there when one ends: no lease and no round trip through the driver between cells (a
task per cell cost both, about twice the actor's per-cell overhead on no-op cells). And
as a slot is one actor, no more cells run at once than the scheduler has slots, CPU
slots included, however many CPUs the cluster has.

A slot whose actor was lost (with its node) is dropped by the scheduler, its cells put
back; one whose actor sat on a node that lacks its type gets a new one at its next cell.
An actor with no cell in flight can be let go (`release_idle`): a cell submitted again as
a plain task (away from such a node) may need the slot an idle actor holds; and on a busy
cluster, cells queued on a slot whose actor Ray has not placed may need the GPU another
slot's idle actor holds (`yield_idle`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ray

#: Makes an actor with the given Ray options (`on_node.slot_actor.options(**o).remote()`).
MakeActor = Callable[[Mapping[str, Any]], Any]
#: A slot's actor that Ray has not placed for this long, while the cluster has none of
#: its resource free, waits for another job (or another slot's actor): not for its
#: worker process to start, which takes a second or two.
UNPLACED_S = 5.0


def kill(actor: Any) -> None:
    """End `actor` and give its slot back to the cluster."""
    with contextlib.suppress(Exception):  # already dead, or the cluster is gone
        ray.kill(actor, no_restart=True)


class SlotActors:
    """Slot name → its actor (made at the slot's first cell), and its cells in flight."""

    def __init__(
        self,
        make: MakeActor,
        end: Callable[[Any], None] = kill,
        made: Callable[[Any, Mapping[str, Any]], None] | None = None,
    ) -> None:
        """`made(actor, options)`: called with each new actor before its first call."""
        self._make, self._end, self._made = make, end, made
        self._lock = threading.Lock()
        self._actors: dict[str, Any] = {}
        self._in_flight: Counter[str] = Counter()
        self._holds: dict[str, tuple[Any, ...]] = {}  # slot → what its actor holds
        #: slot → when its actor was made, and the actor's `__ray_ready__` call once asked
        self._made_at: dict[str, tuple[float, Any]] = {}
        self._oom: list[Any] = []  # actors whose memory kill was attributed to a call

    def call(self, slot: str, options: Mapping[str, Any], args: Sequence[Any]) -> tuple[Any, Any]:
        """Submit one cell to `slot`'s actor: (the actor, the call's object reference)."""
        with self._lock:
            actor = self._actors.get(slot)
            if actor is None:
                actor = self._actors[slot] = self._make(options)
                self._holds[slot] = _held(options)
                self._made_at[slot] = (time.monotonic(), None)
                if self._made is not None:
                    self._made(actor, options)
            self._in_flight[slot] += 1
            return actor, actor.run.remote(*args)

    def ended(self, slot: str) -> None:
        """One of `slot`'s cells has its outcome."""
        with self._lock:
            self._in_flight[slot] -= 1

    def lost(self, slot: str, actor: Any) -> None:
        """`actor` died (its node did) or is let go: a next cell of the slot, if any,
        gets a new one."""
        with self._lock:
            if self._actors.get(slot) is actor:
                del self._actors[slot]
        self._end(actor)

    def first_oom(self, actor: Any) -> bool:
        """Whether this is the first of `actor`'s calls to report its kill by Ray's memory
        monitor: the one it was running. Every call of a killed actor raises
        OutOfMemoryError, the queued ones too; a slot waits on its calls in the order it
        made them, and those before the running one had come back."""
        with self._lock:
            if any(known is actor for known in self._oom):
                return False
            self._oom.append(actor)
            return True

    def release_idle(self, like: Mapping[str, Any] | None = None) -> int:
        """Let go of every actor with no cell in flight (with `like`, only those holding
        what an actor of these options holds); how many."""
        held = None if like is None else _held(like)
        with self._lock:
            idle = [
                s for s in self._actors
                if self._in_flight[s] <= 0 and held in (None, self._holds.get(s))
            ]  # fmt: skip
            actors = [self._actors.pop(s) for s in idle]
        for actor in actors:
            self._end(actor)
        return len(actors)

    def yield_idle(self, slot: str, options: Mapping[str, Any]) -> int:
        """Let go of the idle actors that hold what `slot`'s actor (made with `options`)
        waits for, once Ray has not placed it for `UNPLACED_S` and the cluster has none
        of it free; how many. Each actor holds its GPU for the run: with one slot's cells
        done and another's queued behind an actor another job kept from its GPU, the run
        waited for that job while its own GPU sat idle, and two runs started together,
        each holding one GPU so, waited for each other for ever."""
        with self._lock:
            actor, known = self._actors.get(slot), self._made_at.get(slot)
            held = _held(options)
            idle = any(self._in_flight[s] <= 0 and self._holds.get(s) == held for s in self._actors)
        if actor is None or known is None or known[1] is True or not idle:
            return 0
        made, ready = known
        if time.monotonic() - made < UNPLACED_S:
            return 0
        if ready is None:  # asked once: done once Ray placed the actor
            ready = actor.__ray_ready__.remote()
        placed = bool(ray.wait([ready], timeout=0)[0])
        with self._lock:
            if self._actors.get(slot) is actor:
                self._made_at[slot] = (made, True if placed else ready)
        if placed:
            return 0
        resource, share = wants(options)
        if float(ray.available_resources().get(resource, 0.0)) >= share:
            return 0  # Ray places it in a moment
        return self.release_idle(like=options)

    def kill_all(self, close_s: float = 0.0) -> None:
        """End every actor; with `close_s`, after asking each to stop its workers and
        waiting that long for them (a call queued behind a running cell never comes)."""
        with self._lock:
            actors = list(self._actors.values())
            self._actors.clear()
        if close_s > 0 and actors:
            with contextlib.suppress(Exception):  # dead actors, a cluster gone
                closing = [actor.close.remote() for actor in actors]
                ray.wait(closing, num_returns=len(closing), timeout=close_s)
        for actor in actors:
            self._end(actor)


def _held(options: Mapping[str, Any]) -> tuple[Any, ...]:
    """What an actor of Ray `options` holds: its custom resources and CPUs (not where)."""
    return tuple(sorted((options.get("resources") or {}).items())), options.get("num_cpus")


def wants(options: Mapping[str, Any]) -> tuple[str, float]:
    """The resource a slot's or task's Ray `options` ask for, and how much of it."""
    for name, share in (options.get("resources") or {}).items():
        return str(name), float(share)
    return "CPU", float(options.get("num_cpus", 1))
