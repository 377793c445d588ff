"""The pool of persistent workers: at most one per slot, for the environment it last
served, replaced when it fails (`workers.py` holds one worker and its start)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace

from repromatrix.executors.workers import (
    CONNECT_TIMEOUT_S,
    CellDone,
    CellRequest,
    Starter,
    Worker,
    WorkerFailed,
    start_worker,
)


@dataclass(kw_only=True)
class WorkerPool:
    """At most one live worker per slot, for the environment it last served.

    A slot that moves to another environment stops its worker first, so an idle worker
    never holds a GPU's memory while another environment runs there.
    """

    max_rss_mb: float | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    _by_slot: dict[str, tuple[object, Worker]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: How many workers were started (each start costs an interpreter and a torch import).
    started: int = 0

    def get(
        self, slot: str, env: object, start: Starter, *, connect_s: float = CONNECT_TIMEOUT_S
    ) -> Worker:
        """The slot's worker for `env`, started if needed; a start takes at most
        `connect_s` (the cell's timeout when shorter: a worker that cannot start in the
        time its cell has makes the cell time out, not wait two minutes)."""
        if self.cancelled.is_set():
            raise WorkerFailed("cancelled")
        with self._lock:
            held = self._by_slot.pop(slot, None)
        if held is not None:
            if held[0] == env:
                with self._lock:
                    self._by_slot[slot] = held
                return held[1]
            held[1].stop()
        worker = start_worker(
            start,
            max_rss_mb=self.max_rss_mb,
            cancelled=self.cancelled,
            connect_s=min(connect_s, CONNECT_TIMEOUT_S),
        )
        with self._lock:
            self._by_slot[slot] = (env, worker)
            self.started += 1
        return worker

    def run(
        self,
        slot: str,
        env: object,
        start: Starter,
        request: CellRequest,
        timeout_s: float,
        *,
        connect_s: float = CONNECT_TIMEOUT_S,
    ) -> tuple[Worker, CellDone]:
        """Run a cell in the slot's worker for `env` (`get`; raises what it raises). One
        that did not take the cell (killed while idle) is replaced once: the cell never ran;
        one asked to (`CellDone.again`) runs once more in a fresh one (`rerun`: why)."""
        rerun = ""  # why the cell's second run, if any
        for attempt in (1, 2):
            worker = self.get(slot, env, start, connect_s=connect_s)
            done = worker.run(request, timeout_s)
            if done.retire:
                self.retire(slot, worker)
            if attempt == 2 or (done.started and not done.again):
                break
            rerun = done.why if done.again else rerun
        return worker, replace(done, rerun=rerun) if rerun else done

    def retire(self, slot: str, worker: Worker) -> None:
        with self._lock:
            held = self._by_slot.get(slot)
            if held is not None and held[1] is worker:
                del self._by_slot[slot]
        worker.kill()

    def close(self, *, kill: bool = False) -> None:
        """Stop every worker (`kill`: at once, and start no more: Ctrl-C)."""
        if kill:
            self.cancelled.set()
        with self._lock:
            held = list(self._by_slot.values())
            self._by_slot.clear()
        # All at once: a worker that ignores SIGTERM costs its grace period once, not
        # once per worker.
        threads = [
            threading.Thread(target=worker.kill if kill else worker.stop, daemon=True)
            for _, worker in held
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
