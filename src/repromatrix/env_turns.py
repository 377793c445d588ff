"""Whose turn it is: which planned cell a scheduler slot takes next, and when it may.

Apart from the scheduler's threads and records because it is one policy with state of its
own: cells of one environment run one after another, repeats of a cell whose kernels are
built may overlap, and a slot prefers the environment its worker already serves. The
scheduler lends it its lock (`turn`, which also counts the running slots) and its stop
flag; the reasons are at `may_start` and `take`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from repromatrix.executors.base import Slot
from repromatrix.planning import Pending, Planned, env_group, worker_env
from repromatrix.records import Result


class SlotEnvs:
    """The environment each slot's worker serves: a slot prefers its own for its next cell.

    Owned by whoever keeps the executors, and so their workers: a bisection's session
    keeps them from one round (`Scheduler`) to the next, and so must this memory, or each
    round's slots took the cells in plan order and swapped environments, each swap a
    worker start."""

    def __init__(self) -> None:
        self._env: dict[str, object] = {}

    def of(self, slot: str) -> object | None:
        """The environment `slot`'s worker serves; None before its first cell."""
        return self._env.get(slot)

    def others(self, slot: str) -> list[object]:
        """The environments the other slots' workers serve: theirs to take."""
        return [env for name, env in self._env.items() if name != slot]

    def serve(self, slot: str, env: object) -> None:
        self._env[slot] = env


class EnvTurns:
    """The environments in use, those warm, and each slot's last one, under `turn`."""

    def __init__(
        self,
        *,
        turn: threading.Condition,
        stop: threading.Event,
        note: Callable[[str], None],
        slot_envs: SlotEnvs | None = None,
    ) -> None:
        self._turn = turn
        self._stop = stop
        self._note = note
        #: Environment group → keys of the cells running in it now.
        self._busy: dict[object, list[str]] = {}
        #: Keys whose environment finished a run of them here: repeats may overlap.
        self._warm: set[str] = set()
        self._noted: set[object] = set()
        #: The environment each slot ran last: the caller's when it keeps the executors.
        self._slot_envs = SlotEnvs() if slot_envs is None else slot_envs

    def may_start(self, item: Planned) -> bool:
        """Whether `item`'s environment lets it start now.

        Two cells with the same pins share an environment and its compile caches;
        flashinfer 0.2.x's JIT does not lock its build directory, and two concurrent builds
        of one extension were seen to fail on an H200. So cells of one environment run one
        after another (the later ones find the cache warm), except repeats of one cell
        whose kernels are built already: they compile nothing and may overlap, which is
        what lets a flaky repro's repeats use every slot.
        """
        group = env_group(item.cell)
        running = self._busy.get(group) if group is not None else None
        if not running:
            return True
        key = item.cell.key
        return all(k == key for k in running) and (item.warm or key in self._warm)

    def take(
        self,
        items: Pending,
        slot: Slot,
        *,
        wait: bool = True,
        accept: Callable[[Planned], bool] | None = None,
    ) -> Planned | None:
        """The next cell that may start, or None when done: one of the environment this
        slot's worker serves if any is waiting (no new interpreter, torch import and CUDA
        context), else the longest expected one that no other slot's worker serves (at a
        round's start, the slot that got there first took the other's and both started
        a worker), else the longest expected one. With `wait=False`, None as soon as no
        cell (that `accept` takes) may start now."""

        def may_start(item: Planned) -> bool:
            return self.may_start(item) and (accept is None or accept(item))

        with self._turn:
            while not self._stop.is_set():
                if not items:
                    return None
                envs = self._slot_envs
                item = items.take(envs.of(slot.name), may_start, envs.others(slot.name))
                if item is not None:
                    envs.serve(slot.name, worker_env(item.cell))
                    group = env_group(item.cell)
                    if group is not None:
                        self._busy.setdefault(group, []).append(item.cell.key)
                    return item
                if not wait:
                    return None
                self._note_waiting(items)
                self._turn.wait(timeout=0.5)
            return None

    def _note_waiting(self, items: Pending) -> None:
        groups = {env_group(i.cell) for i in items} - self._noted
        for group in groups:
            if group is None:
                continue
            self._noted.add(group)
            waiting = [i for i in items if env_group(i.cell) == group]
            pins = ", ".join(p.spec for p in waiting[0].cell.pins)
            cells = len({i.cell.key for i in waiting})
            runs = f" ({len(waiting)} runs)" if len(waiting) != cells else ""
            self._note(
                f"{cells} cell(s){runs} wait for the environment {pins} on "
                f"{waiting[0].cell.base.name}: cells of one environment run one at a time "
                "(one set of compile caches)"
            )

    def release(self, item: Planned, result: Result | None) -> None:
        with self._turn:
            group = env_group(item.cell)
            if group is not None:
                running = self._busy.get(group, [])
                if item.cell.key in running:
                    running.remove(item.cell.key)
                if not running:
                    self._busy.pop(group, None)
            if result is not None and result.status.is_verdict:
                self._warm.add(item.cell.key)
            self._turn.notify_all()
