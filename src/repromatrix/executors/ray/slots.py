"""The run's slots on the cluster: one Ray actor per scheduler slot.

An actor holds its slot's resources for the run (a slot of a GPU type, or one CPU) and
runs the slot's cells one after another, in the order they were submitted. Ray sends a
call to the actor's process as soon as it is made, so a slot's next cell is already
there when one ends: no lease and no round trip through the driver between cells (a
task per cell cost both, about twice the actor's per-cell overhead on no-op cells). And
as a slot is one actor, no more cells run at once than the scheduler has slots, CPU
slots included, however many CPUs the cluster has.

A slot whose actor was lost with its node gets a new one at its next cell. An actor
with no cell in flight can be let go (`release_idle`): after a node loss, a cell
submitted again as a plain task may need the slot an idle actor holds.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ray

#: Makes an actor with the given Ray options (`_SlotActor.options(**o).remote()`).
MakeActor = Callable[[Mapping[str, Any]], Any]


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
        self._oom: list[Any] = []  # actors whose memory kill was attributed to a call

    def call(self, slot: str, options: Mapping[str, Any], args: Sequence[Any]) -> tuple[Any, Any]:
        """Submit one cell to `slot`'s actor: (the actor, the call's object reference)."""
        with self._lock:
            actor = self._actors.get(slot)
            if actor is None:
                actor = self._actors[slot] = self._make(options)
                if self._made is not None:
                    self._made(actor, options)
            self._in_flight[slot] += 1
            return actor, actor.run.remote(*args)

    def ended(self, slot: str) -> None:
        """One of `slot`'s cells has its outcome."""
        with self._lock:
            self._in_flight[slot] -= 1

    def lost(self, slot: str, actor: Any) -> None:
        """`actor` died (its node did): the slot makes a new one at its next cell."""
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

    def release_idle(self) -> int:
        """Let go of every actor with no cell in flight; how many."""
        with self._lock:
            idle = [s for s in self._actors if self._in_flight[s] <= 0]
            actors = [self._actors.pop(s) for s in idle]
        for actor in actors:
            self._end(actor)
        return len(actors)

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
