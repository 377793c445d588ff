"""What a run's Ray cells lost with their slots' actors become: moved (handed out again
by the scheduler, `RunOutcome.moved`) up to `--ray-retries` + 1 times a cell, or noted
"not run here" past that or with no node of their type left; and the run's closing line
for those (it must not end with exit 0).

Apart from the driver's executor because it is the run's count of such losses, asked by
each cell's wait; it knows nothing of records.
"""

from __future__ import annotations

import threading
from typing import Any

from repromatrix.executors.base import lost_line
from repromatrix.executors.ray.failures import death_of


class Losses:
    """How often each cell was moved, how each lost actor ended, the cells lost."""

    def __init__(self, retries: int) -> None:
        self.retries = retries
        self._lock = threading.Lock()
        self._moves: dict[tuple[str, str], int] = {}  # (cell key, its folder) → times moved
        self._deaths: dict[Any, str] = {}  # a lost slot's actor → how it ended
        self._lost: list[tuple[str, str]] = []  # (cell id, how it was lost)

    def death(self, actor: Any, stop: threading.Event) -> str:
        """How `actor` ended (`death_of`; `stop`: the run's Ctrl-C), asked once per
        actor: its queued calls fail with it, and it is killed once the first is known."""
        with self._lock:
            known = self._deaths.get(actor)
        if known is None:
            known = death_of(actor, stop)
            with self._lock:
                self._deaths[actor] = known
        return known

    def move(self, key: str, where: str) -> bool:
        """Whether the cell of `key` (in its folder `where`: a repeat has its own) may be
        moved once more; False past `--ray-retries` + 1 (a cell that takes its nodes down)."""
        with self._lock:
            moves = self._moves[(key, where)] = self._moves.get((key, where), 0) + 1
        return moves <= self.retries + 1

    def lose(self, cell_id: str, how: str) -> None:
        """The cell was noted "not run here" (`how`: the words of the closing line)."""
        with self._lock:
            self._lost.append((cell_id, how))

    def line(self) -> str | None:
        """Why the run must not end with exit 0: cells lost with their nodes (noted, never
        run to the end) since the last call (a bisection's round); None when none was. A
        cell cut short by a crashed node, whatever was left of the cluster, is no cell
        done: a run that ended with exit 0 after losing its only L4 node read as green."""
        with self._lock:
            lost, self._lost = self._lost, []
        return lost_line(lost)
