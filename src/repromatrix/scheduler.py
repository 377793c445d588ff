"""Decide what runs where (pure `plan`), then run it: one slot per GPU, CPU cells in parallel.

Each physical GPU gets one worker thread bound to it through CUDA_VISIBLE_DEVICES; cells
needing no GPU share `jobs` CPU workers. Cells for a GPU type or image this host lacks are
recorded as `not_run` at once, with the reason. Ctrl-C cancels running cells (their whole
process groups), records nothing half-done, and keeps every finished result.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from repromatrix.executors.base import Executor, Slot
from repromatrix.executors.judge import judge
from repromatrix.host import HostGpu, HostInfo
from repromatrix.model import Cell, Status
from repromatrix.records import Result
from repromatrix.store import ResultStore


@dataclass(frozen=True, kw_only=True)
class Planned:
    cell: Cell
    executor: Executor
    #: GPU type name, or "cpu".
    pool: str


@dataclass(frozen=True, kw_only=True)
class Plan:
    to_run: tuple[Planned, ...]
    reused: tuple[tuple[Cell, Result], ...]
    not_run: tuple[tuple[Cell, str], ...]


def plan(
    cells: Sequence[Cell],
    *,
    host: HostInfo,
    choose: Callable[[Cell], Executor | str],
    existing: Mapping[str, Result],
    rerun: bool = False,
    retry_errors: bool = False,
) -> Plan:
    """Split cells into reused (a final result exists), not runnable here, and to run.

    `choose` returns the executor for a cell, or a one-line reason none can run it here.
    A final result is reused only if it was made on the same base (same interpreter and
    packages, or same image): results merged in from other hosts (results/published/) are
    shown by reports but never stand in for a run on this one.
    """
    to_run: list[Planned] = []
    reused: list[tuple[Cell, Result]] = []
    not_run: list[tuple[Cell, str]] = []
    for cell in cells:
        if cell.needs_gpu and not host.gpus_of_type(cell.gpu):
            not_run.append((cell, f"no {cell.gpu.name} on this host (has {host.describe_gpus()})"))
            continue
        choice = choose(cell)
        if isinstance(choice, str):
            not_run.append((cell, choice))
            continue
        prev = existing.get(cell.key)
        if prev is not None and prev.status.is_final and not rerun:
            retry = retry_errors and prev.status in (Status.ERROR, Status.TIMEOUT)
            same_base = prev.base_fingerprint in ("", choice.base_fingerprint(cell))
            if same_base and not retry:
                reused.append((cell, prev))
                continue
        to_run.append(Planned(cell=cell, executor=choice, pool=cell.gpu.name))
    return Plan(to_run=tuple(to_run), reused=tuple(reused), not_run=tuple(not_run))


class Reporter(Protocol):
    """Progress sink (rich in the CLI, a list in tests)."""

    def start(self, total: int) -> None: ...
    def started(self, cell: Cell, slot: Slot) -> None: ...
    def finished(self, result: Result) -> None: ...
    def stop(self) -> None: ...


class SilentReporter:
    def start(self, total: int) -> None:
        pass

    def started(self, cell: Cell, slot: Slot) -> None:
        pass

    def finished(self, result: Result) -> None:
        pass

    def stop(self) -> None:
        pass


@dataclass(kw_only=True)
class RunSummary:
    run_id: str
    results: list[Result] = field(default_factory=list)
    reused: int = 0
    not_run: int = 0
    interrupted: bool = False
    reused_results: list[Result] = field(default_factory=list)
    not_run_cells: list[tuple[Cell, str]] = field(default_factory=list)

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status is status)


def new_run_id(hostname: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{hostname}-{secrets.token_hex(2)}"


class Scheduler:
    def __init__(
        self,
        *,
        store: ResultStore,
        host: HostInfo,
        workroot: Path,
        jobs: int = 1,
        per_gpu: int = 1,
        run_id: str | None = None,
        reporter: Reporter | None = None,
    ) -> None:
        self.store = store
        self.host = host
        self.workroot = workroot.resolve()
        self.jobs = jobs
        self.per_gpu = per_gpu
        self.run_id = run_id or new_run_id(host.hostname)
        self.reporter: Reporter = reporter or SilentReporter()
        self._stop = threading.Event()
        self._write = threading.Lock()
        self._turn = threading.Condition()
        self._busy: set[object] = set()
        self._active = 0

    def record_not_run(
        self, items: Iterable[tuple[Cell, str]], existing: Mapping[str, Result], fingerprint: str
    ) -> int:
        """Note cells this host cannot run, once per host and reason (no pile-up on reruns)."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        count = 0
        notes: list[Result] = []
        for cell, reason in items:
            count += 1
            prev = existing.get(cell.key)
            if (
                prev is not None
                and prev.status is Status.NOT_RUN
                and prev.host == self.host.hostname
                and prev.reason == reason
            ):
                continue
            notes.append(
                Result.for_cell(
                    cell,
                    status=Status.NOT_RUN,
                    reason=reason,
                    started=now,
                    finished=now,
                    host=self.host.hostname,
                    run_id=self.run_id,
                    base_fingerprint=fingerprint,
                    machine=self.host.machine,
                )
            )
        self.store.append_many(notes)
        return count

    def run(self, planned: Sequence[Planned]) -> RunSummary:
        summary = RunSummary(run_id=self.run_id)
        pending: dict[str, list[Planned]] = {}
        for item in planned:
            pending.setdefault(item.pool, []).append(item)
        threads: list[threading.Thread] = []
        executors = {id(p.executor): p.executor for p in planned}
        smi_names = {p.pool: p.cell.gpu.smi_names for p in planned}
        for pool, items in pending.items():
            for slot in self._slots(pool, smi_names[pool]):
                t = threading.Thread(
                    target=self._worker, args=(items, slot, summary), name=slot.name, daemon=True
                )
                threads.append(t)
        self.reporter.start(len(planned))
        self._active = len(threads)
        try:
            for t in threads:
                t.start()
            self._wait_for_workers()
        except KeyboardInterrupt:
            summary.interrupted = True
            self._stop.set()
            with self._turn:
                self._turn.notify_all()
            for ex in executors.values():
                ex.cancel()
            self._wait_for_workers()
        finally:
            self.reporter.stop()
        return summary

    def _slots(self, pool: str, smi_names: tuple[str, ...]) -> list[Slot]:
        if pool == "cpu":
            return [Slot(name=f"cpu{i}") for i in range(max(1, self.jobs))]
        wanted = {n.strip().lower() for n in smi_names}
        gpus: list[HostGpu] = [g for g in self.host.gpus if g.name.strip().lower() in wanted]
        if self.per_gpu == 1:
            return [Slot(name=f"gpu{g.index}", gpu=g) for g in gpus]
        # Several cells per GPU: worth it when cells are bound by JIT compilation on the
        # CPU (flashinfer 0.2.x, Triton), at the price of latency metrics measured while
        # another cell may use the same GPU (the slot name records it).
        return [Slot(name=f"gpu{g.index}.{j}", gpu=g) for g in gpus for j in range(self.per_gpu)]

    def _wait_for_workers(self) -> None:
        """Block until every worker has returned.

        Not Thread.join(): on Python 3.11 a join interrupted by Ctrl-C can mark a running
        thread as finished (gh-90882), and we would return while a cell still runs.
        """
        with self._turn:
            while self._active > 0:
                self._turn.wait(timeout=0.2)

    def _take(self, items: list[Planned]) -> tuple[Planned, object] | None:
        """The next cell whose environment no other slot is using, or None when done.

        Two cells with the same pins share an environment and its compile caches;
        flashinfer 0.2.x's JIT does not lock its build directory, and two concurrent builds
        of one extension were seen to fail on an H200. So cells of one environment run one
        after another (the later ones find the cache warm); other environments overlap.
        Cells without pins compile nothing of a library and may overlap freely.
        """
        with self._turn:
            while not self._stop.is_set():
                if not items:
                    return None
                for i, item in enumerate(items):
                    group = _env_group(item.cell)
                    if group is None or group not in self._busy:
                        del items[i]
                        if group is not None:
                            self._busy.add(group)
                        return item, group
                self._turn.wait(timeout=0.5)
            return None

    def _release(self, group: object) -> None:
        with self._turn:
            self._busy.discard(group)
            self._turn.notify_all()

    def _worker(self, items: list[Planned], slot: Slot, summary: RunSummary) -> None:
        try:
            self._work(items, slot, summary)
        finally:
            with self._turn:
                self._active -= 1
                self._turn.notify_all()

    def _work(self, items: list[Planned], slot: Slot, summary: RunSummary) -> None:
        while True:
            taken = self._take(items)
            if taken is None:
                return
            item, group = taken
            cell = item.cell
            self.reporter.started(cell, slot)
            try:
                outcome = item.executor.run(cell, slot, self.workroot / self.run_id / cell.key)
            finally:
                self._release(group)
            if outcome.cancelled or self._stop.is_set():
                # Half a run is not a result: the next run does this cell again.
                return
            result = judge(
                cell,
                outcome,
                host=self.host.hostname,
                run_id=self.run_id,
                machine=self.host.machine,
            )
            with self._write:
                self.store.append(result)
                summary.results.append(result)
            self.reporter.finished(result)


def _env_group(cell: Cell) -> object | None:
    if not cell.pins:
        return None
    return (cell.base.name, tuple((p.library, p.kind.value, p.rev) for p in cell.pins))
