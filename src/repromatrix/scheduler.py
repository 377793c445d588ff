"""Run planned cells: one slot per GPU (or `per_gpu` per GPU), CPU cells `jobs` at a time.

Each slot is a thread bound to its GPU through CUDA_VISIBLE_DEVICES; it takes the longest
expected cell it may run next (`planning.plan` sorted them). Cells of one environment run
one after another (see `_take`) without holding up cells of other environments; the
progress line says when cells wait on a shared environment. Where the executor queues
cells itself (Ray's GPU cells), a slot keeps its next cells submitted while one runs.

Every cell ends in exactly one record: an executor or judge that raises is recorded as an
`error` with the reason, never a lost thread. When a record cannot be stored at all (a full
disk) or a slot fails, the run stops, keeps every earlier record, and says so
(`RunSummary.lost`). Ctrl-C cancels running cells (their process groups), records nothing
half-done, and keeps every finished result."""

from __future__ import annotations

import contextlib
import secrets
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from repromatrix import proc
from repromatrix.errors import DockerError, ExitCode, MissingToolError, ReproMatrixError, StoreError
from repromatrix.executors import base
from repromatrix.executors.base import Executor, Slot
from repromatrix.flights import Flight, judge_outcome, launch, queues
from repromatrix.host import HostGpu, HostInfo
from repromatrix.logs import trim_cell_logs
from repromatrix.model import Cell, Status
from repromatrix.planning import History, Pending, Planned, env_group, worker_env
from repromatrix.records import Result
from repromatrix.store import ResultStore
from repromatrix.timestamps import newest

#: Cells a slot keeps submitted behind the running one where the executor queues them.
_AHEAD = 2


class Reporter(Protocol):
    """Progress sink (rich in the CLI, a list in tests)."""

    def start(self, total: int, cells: int = 0) -> None: ...
    def started(self, cell: Cell, slot: Slot) -> None: ...
    def finished(self, result: Result) -> None: ...
    def note(self, text: str) -> None: ...
    def stop(self) -> None: ...


class SilentReporter:
    def start(self, total: int, cells: int = 0) -> None:
        pass

    def started(self, cell: Cell, slot: Slot) -> None:
        pass

    def finished(self, result: Result) -> None:
        pass

    def note(self, text: str) -> None:
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
    #: Per key, the stored records that count on this host (`Plan.evidence`).
    evidence: Mapping[str, tuple[Result, ...]] = field(default_factory=dict)
    #: Why a result could not be stored (the run stopped there); None when all were.
    lost: str | None = None
    #: The exit code that stop means (a store or cache that cannot be written, or a
    #: container engine that stopped answering).
    lost_code: ExitCode = ExitCode.STORE

    def lost_error(self) -> ReproMatrixError:
        """The error to end the command with, when the run stopped (`lost`)."""
        why = self.lost or "the run stopped"
        codes = {ExitCode.DOCKER: DockerError, ExitCode.MISSING_TOOL: MissingToolError}
        return codes.get(self.lost_code, StoreError)(why)

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status is status)


def new_run_id(hostname: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in hostname)[:40] or "host"
    return f"{stamp}-{safe}-{secrets.token_hex(2)}"


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
        #: Environment group → keys of the cells running in it now.
        self._busy: dict[object, list[str]] = {}
        #: Keys whose environment finished a run of them here: repeats may overlap.
        self._warm: set[str] = set()
        self._noted: set[object] = set()
        #: The environment each slot ran last (its worker's): preferred for its next cell.
        self._slot_env: dict[str, object] = {}
        self._active = 0

    def record_not_run(
        self, items: Iterable[tuple[Cell, str]], history: History, fingerprint: str
    ) -> int:
        """Note cells this host cannot run, once per host and reason (no pile-up on reruns)."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        count = 0
        notes: list[Result] = []
        for cell, reason in items:
            count += 1
            prev = newest(history.get(cell.key, ()))
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
        for pool, in_order in pending.items():
            items = Pending(in_order)  # shared by the pool's slots, under self._turn
            for slot in self._slots(pool, smi_names[pool]):
                t = threading.Thread(
                    target=self._worker, args=(items, slot, summary), name=slot.name, daemon=True
                )
                threads.append(t)
        self.reporter.start(len(planned), len({p.cell.key for p in planned}))
        self._active = len(threads)
        try:
            for t in threads:
                t.start()
            self._wait_for_workers()
        except KeyboardInterrupt:
            summary.interrupted = True
            # The user asked to stop: what is left of this process is clean-up and saying
            # so. A second Ctrl-C must not cut either short, so they stay ignored.
            _ignore_interrupts()
            self._halt(executors.values())
        finally:
            self.reporter.stop()
        if summary.lost is not None:
            self._halt(executors.values())
        return summary

    def _halt(self, executors: Iterable[Executor]) -> None:
        """Stop everything: cells, their workers and containers, environment builds."""
        with _uninterruptible():
            self._stop.set()
            with self._turn:
                self._turn.notify_all()
            for ex in executors:
                ex.cancel()
            # pip and git run outside any executor's bookkeeping: end them too, or Ctrl-C
            # would wait for a flashinfer build to finish.
            proc.terminate_all()
            self._wait_for_workers()

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

    def _may_start(self, item: Planned) -> bool:
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

    def _take(
        self,
        items: Pending,
        slot: Slot,
        *,
        wait: bool = True,
        accept: Callable[[Planned], bool] | None = None,
    ) -> Planned | None:
        """The next cell that may start, or None when done: one of the environment this
        slot's worker serves if any is waiting (no new interpreter, torch import and CUDA
        context), else the longest expected one. With `wait=False`, None as soon as no
        cell (that `accept` takes) may start now."""

        def may_start(item: Planned) -> bool:
            return self._may_start(item) and (accept is None or accept(item))

        with self._turn:
            while not self._stop.is_set():
                if not items:
                    return None
                item = items.take(self._slot_env.get(slot.name), may_start)
                if item is not None:
                    self._slot_env[slot.name] = worker_env(item.cell)
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
            self.reporter.note(
                f"{cells} cell(s){runs} wait for the environment {pins} on "
                f"{waiting[0].cell.base.name}: cells of one environment run one at a time "
                "(one set of compile caches)"
            )

    def _release(self, item: Planned, result: Result | None) -> None:
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

    def _worker(self, items: Pending, slot: Slot, summary: RunSummary) -> None:
        try:
            self._work(items, slot, summary)
        except Exception as exc:  # not a thread's traceback and a run that ends well
            self._lose(
                summary,
                f"internal error in slot {slot.name}: {type(exc).__name__}: {exc}; its cell "
                "got no record; earlier results are kept: run again, and report this",
            )
        finally:
            with self._turn:
                self._active -= 1
                self._turn.notify_all()

    def _work(self, items: Pending, slot: Slot, summary: RunSummary) -> None:
        """Run cells in this slot until none is left.

        Where the executor queues cells itself (Ray, GPU cells), the slot keeps the next
        cell submitted while the current one runs: the backend starts it the moment the
        slot's resources free up, and the driver judges and stores one record while the
        next cell already runs, instead of a round trip through the driver between
        cells. A cell submitted early that the run does not reach (Ctrl-C, a full disk)
        is cancelled with the rest, and recorded by no one: the next run does it again.
        """
        ahead: deque[Flight] = deque()
        try:
            while True:
                if not ahead:
                    item = self._take(items, slot)
                    if item is None:
                        return
                    ahead.append(launch(item, slot, self._workdir(item)))
                    self.reporter.started(item.cell, slot)
                while len(ahead) <= _AHEAD and ahead[-1].queued:
                    nxt = self._take(items, slot, wait=False, accept=queues)
                    if nxt is None:
                        break
                    ahead.append(launch(nxt, slot, self._workdir(nxt)))
                flight = ahead.popleft()
                if not self._finish(flight, summary):
                    return
                if ahead:
                    self.reporter.started(ahead[0].item.cell, slot)
        finally:
            for flight in ahead:  # submitted, never reached: not a result
                self._release(flight.item, None)

    def _workdir(self, item: Planned) -> Path:
        name = item.cell.key if item.attempt == 0 else f"{item.cell.key}.{item.attempt}"
        return self.workroot / self.run_id / name

    def _finish(self, flight: Flight, summary: RunSummary) -> bool:
        """Wait for one cell, judge and store it; False when the slot must stop."""
        item, cell = flight.item, flight.item.cell
        result: Result | None = None
        stored = False
        try:
            outcome = flight.outcome()
            if outcome.cancelled or self._stop.is_set():
                # Half a run is not a result: the next run does this cell again.
                return False
            stop = self._stop_for(outcome)
            if stop is not None:  # not the repro's error: no record, the next run does it
                self._lose(summary, f"{cell.id} could not run: {stop[0]}", code=stop[1])
                return False
            result = judge_outcome(cell, outcome, host=self.host, run_id=self.run_id)
            stored = self._store(result, summary)
        finally:
            self._release(item, result)
        if not stored:
            return False
        trim_cell_logs(flight.workdir)  # recorded: keep the tails
        self.reporter.finished(result)
        return True

    def _stop_for(self, outcome: base.RunOutcome) -> tuple[str, ExitCode] | None:
        """Why no later cell would fare better, and the run's exit code; None if nothing."""
        full = base.host_full(outcome)
        if full is not None:  # as on a full results disk; a Ray node's says where
            where = outcome.harness.get(base.HOST_STORAGE_AT) or f"the cache ({self.workroot})"
            why = f"{full} under {where}; earlier results are kept: "
            return why + f"{base.storage_fix(full, where)}, then run again", ExitCode.STORE
        gone = base.engine_lost(outcome)
        if gone is not None:
            why = f"{gone}; earlier results are kept, and the next run does what is left once "
            return why + "the engine is back", ExitCode.DOCKER
        tool = outcome.harness.get(base.MISSING_TOOL)  # a Ray node's interpreter lacks one
        return None if tool is None else (str(tool), ExitCode.MISSING_TOOL)

    def _store(self, result: Result, summary: RunSummary) -> bool:
        with self._write:
            if summary.lost is not None:
                return False
            try:
                self.store.append(result)
            except OSError as exc:
                summary.lost = (
                    f"the result of {result.cell_id} could not be stored in "
                    f"{self.store.path}: {exc.strerror or exc}; earlier results are kept: "
                    "make room or grant access there, then run again"
                )
                self._stop.set()
                return False
            summary.results.append(result)
            return True

    def _lose(self, summary: RunSummary, why: str, code: ExitCode = ExitCode.STORE) -> None:
        """Stop the run for a reason no cell can work around (the first one is kept)."""
        with self._write:
            if summary.lost is None:
                summary.lost, summary.lost_code = why, code
            self._stop.set()


def _ignore_interrupts() -> None:
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)


@contextlib.contextmanager
def _uninterruptible() -> Iterator[None]:
    """Ignore Ctrl-C and SIGTERM while cleaning up: a second one must not cut the
    clean-up short and leave process groups or containers behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    for sig in saved:
        signal.signal(sig, signal.SIG_IGN)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
