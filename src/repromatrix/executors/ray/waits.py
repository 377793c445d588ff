"""What a run's cells wait for on a busy cluster: slots whose actors Ray has not placed yet
because every unit of their GPU type (or every CPU) is held by other jobs (another
driver's tasks or actors), said once the wait has lasted a while, and how long.

Apart from the executor because it is a view of the cluster's free resources against the
run's own, asked now and then by waiting cells; it knows nothing of records.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray

from repromatrix.errors import UsageError
from repromatrix.executors.ray.cluster import RESOURCE_PREFIX, live_resources

#: A slot waits this long for its actor before the run says what it waits for: an actor
#: Ray has given its GPU but whose process is still starting reads as one waiting, and the
#: GPU as another job's, for the few seconds a worker process takes to start.
SAY_AFTER_S = 30.0
#: Seconds in place of `SAY_AFTER_S` (a cluster whose workers start fast can say sooner).
SAY_AFTER_VAR = "REPROMATRIX_RAY_SAY_WAIT_S"
#: While it still waits, said again this often (the duration grows).
SAY_AGAIN_S = 300.0
#: The cluster's free resources are asked at most this often per resource.
_LOOK_S = 2.0


@dataclass
class _Actor:
    resource: str  # `repromatrix-gpu-<type>` or "CPU"
    share: float
    made: float
    ready: Any  # the reference of its `__ray_ready__` call: done once Ray placed it
    placed: bool = False


def say_after_seconds(text: str) -> float:
    """`SAY_AFTER_VAR`'s value as seconds, `SAY_AFTER_S` when unset; no number of seconds
    from 0 to 86400 is refused."""
    if not text:
        return SAY_AFTER_S
    seconds = float(text) if re.fullmatch(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+", text) else -1.0
    if not 0 <= seconds <= 86400:
        raise UsageError(
            f"{SAY_AFTER_VAR}={text[:40]!a}: give the seconds a slot waits for a GPU (or CPU) "
            f"other jobs hold before the run says so, 0 to 86400 (default {SAY_AFTER_S:g}), "
            "or unset it"
        )
    return seconds


class Waits:
    """The run's actors by resource, whether Ray placed them, and what was said."""

    def __init__(
        self, note: Callable[[str], None] | None, say_after_s: float = SAY_AFTER_S
    ) -> None:
        self._note = note
        self._say_after_s = say_after_s
        self._lock = threading.Lock()
        self._actors: dict[int, _Actor] = {}  # id(actor) → what it asked for
        self._tasks: dict[str, float] = {}  # resource → the run's plain tasks' shares
        self._looked: dict[str, float] = {}
        self._said: dict[str, float] = {}  # resource → when its wait was last said

    def made(self, actor: Any, resource: str, share: float) -> None:
        """`actor` (a slot's, maybe known already) asks for `share` of `resource`."""
        if self._note is None:
            return
        with self._lock:
            if id(actor) in self._actors:
                return
        try:
            ready = actor.__ray_ready__.remote()
        except Exception:  # no Ray actor (a test's stand-in): nothing to watch
            return
        with self._lock:
            self._actors[id(actor)] = _Actor(resource, share, time.monotonic(), ready)

    def gone(self, actor: Any) -> None:
        with self._lock:
            self._actors.pop(id(actor), None)

    def task(self, resource: str, share: float) -> None:
        """A plain task of the run holds (`share` > 0) or gave back (< 0) a share."""
        with self._lock:
            self._tasks[resource] = self._tasks.get(resource, 0.0) + share

    def look(self, resource: str) -> None:
        """Say, once a slot of `resource` has waited `say_after_s` for Ray to place its
        actor while the cluster has none of it free, what holds it."""
        now = time.monotonic()
        with self._lock:
            if self._note is None or now - self._looked.get(resource, -1e9) < _LOOK_S:
                return
            self._looked[resource] = now
            mine = [a for a in self._actors.values() if a.resource == resource]
        for actor in mine:
            if not actor.placed:
                done, _ = ray.wait([actor.ready], timeout=0)
                actor.placed = bool(done)
        waiting = [a for a in mine if not a.placed]
        if not waiting:
            self._said.pop(resource, None)
            return
        since = min(a.made for a in waiting)
        said = self._said.get(resource)
        if now - since < self._say_after_s or (said is not None and now - said < SAY_AGAIN_S):
            return
        total = float(live_resources()[0].get(resource, 0.0))
        free = float(ray.available_resources().get(resource, 0.0))
        ours = sum(a.share for a in mine if a.placed) + self._tasks.get(resource, 0.0)
        others = total - free - ours
        if total <= 0 or free >= max(a.share for a in waiting) or others <= 0:
            return  # none to wait for (a lost type is said elsewhere), or not others'
        self._said[resource] = now
        what = "CPU" if resource == "CPU" else resource.removeprefix(RESOURCE_PREFIX)
        held = "all " + _units(total) if others >= total else f"{_units(others)} of {_units(total)}"
        slots = f"{len(waiting)} slot{'' if len(waiting) == 1 else 's'} of this run"
        self._note(
            f"waiting for a free {what} on the Ray cluster: {held} held by other jobs "
            f"({slots} waiting for {_duration(now - since)})"
        )


def _units(n: float) -> str:
    return str(round(n)) if abs(n - round(n)) < 1e-6 else f"{n:.2f}".rstrip("0")


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"
