"""Run planned cells: one slot per GPU (or `per_gpu` per GPU), CPU cells `jobs` at a time.

Each slot is a thread bound to its GPU through CUDA_VISIBLE_DEVICES; it takes the longest
expected cell it may run next (`planning.plan` sorted them). Cells of one environment run
one after another (see `env_turns.py`) without holding up cells of other environments; the
progress line says when cells wait on a shared environment. Where the executor queues
cells itself (Ray's GPU cells), a slot keeps its next cells submitted while one runs.

Every cell ends in exactly one record: an executor or judge that raises is recorded as an
`error` with the reason, never a lost thread. A cell whose slot is gone before it ended (a
Ray node left: `RunOutcome.moved`) is put back, taken before the cells not taken yet, and
its slot is dropped (`slot_growth`). When a record cannot be stored at all (a full
disk) or a slot fails, the run stops, keeps every earlier record, and says so
(`RunSummary.lost`). Ctrl-C cancels running cells (their process groups), records nothing
half-done, and keeps every finished result."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from repromatrix import proc
from repromatrix.code_watch import CodeWatch, edited_line
from repromatrix.env_turns import EnvTurns, SlotEnvs
from repromatrix.errors import ExitCode
from repromatrix.executors import base
from repromatrix.executors.base import Executor, Slot
from repromatrix.executors.build_words import own_build
from repromatrix.flights import Flight, judge_outcome, launch, queues
from repromatrix.host import HostGpu, HostInfo
from repromatrix.interrupts import ignore_interrupts, uninterruptible
from repromatrix.logs import cut_for_room, trim_cell_logs
from repromatrix.model import Cell, Status
from repromatrix.planning import History, Pending, Planned
from repromatrix.progress import Reporter, SilentReporter
from repromatrix.records import Result
from repromatrix.run_summary import RunSummary, new_run_id
from repromatrix.slot_drops import SlotDrops
from repromatrix.slot_growth import Capacity, SlotGrowth
from repromatrix.store import ResultStore
from repromatrix.timestamps import newest

#: Cells a slot keeps submitted behind the running one where the executor queues them,
#: at most, and never past its share of its pool's (`SlotGrowth.share`). Cells moved off a
#: lost Ray node run after those: they cannot be taken back, as Ray (2.60) still runs a
#: queued actor call it was asked to cancel; 1 instead of 2 gave no change on no-op cells.
_AHEAD = 2


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
        capacity: Capacity | None = None,
        node_wait_s: float = 0.0,
        slot_envs: SlotEnvs | None = None,
    ) -> None:
        """`capacity`: how many slots a pool's cells may have now, asked while the run goes
        on (a cluster whose nodes join mid-run); None: the slots counted at the start.
        A pool with no slot at the start (a GPU type no node offers yet) waits for one
        while the run's other cells go on, and `node_wait_s` more once they are done.
        `slot_envs`: the environment each slot's worker serves, kept by the caller across
        runs of the same executors (`SlotEnvs`)."""
        self.store = store
        self.host = host
        self.workroot = workroot.resolve()
        self.jobs = jobs
        self.per_gpu = per_gpu
        self.run_id = run_id or new_run_id(host.hostname, self.workroot)
        self.reporter: Reporter = reporter or SilentReporter()
        self._stop = threading.Event()
        self._write = threading.Lock()
        self._turn = threading.Condition()
        self._turns = EnvTurns(
            turn=self._turn, stop=self._stop, note=self.reporter.note, slot_envs=slot_envs
        )
        self._active = 0
        #: This run's environment builds that failed for the machine's own want, and why.
        self._own_builds: dict[str, str] = {}
        self._code = CodeWatch(())  # the repros' code as `run` found it (`code_watch`)
        self._capacity = capacity
        self._node_wait_s = node_wait_s
        self._growth = SlotGrowth(None, per_gpu=per_gpu, gpus=0, cpus=0)
        self._drops = SlotDrops()  # slots whose node left, said one line per node

    def not_run_notes(
        self, items: Iterable[tuple[Cell, str]], history: History, fingerprint: str
    ) -> list[Result]:
        """The notes of cells this host cannot run that the store lacks: once per host and
        reason (no pile-up on reruns). Stored with `store.append_many`."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        notes: list[Result] = []
        for cell, reason in items:
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
        return notes

    def run(self, planned: Sequence[Planned]) -> RunSummary:
        summary = RunSummary(run_id=self.run_id)
        self._code = CodeWatch(p.cell.script for p in planned)
        pending: dict[str, list[Planned]] = {}
        for item in planned:
            pending.setdefault(item.pool, []).append(item)
        threads: list[threading.Thread] = []
        executors = {id(p.executor): p.executor for p in planned}
        smi_names = {p.pool: p.cell.gpu.smi_names for p in planned}
        gpus = max((g.index + 1 for g in self.host.gpus), default=0)
        self._growth = SlotGrowth(
            self._capacity, per_gpu=self.per_gpu, gpus=gpus, cpus=self.jobs,
            node_wait_s=self._node_wait_s,
        )  # fmt: skip
        for pool, in_order in pending.items():
            items = Pending(in_order)  # shared by the pool's slots, under self._turn
            slots = self._slots(pool, smi_names[pool])
            said = self._growth.pool(pool, items, in_order[0].cell, len(slots))
            if said:  # a GPU type no node offers yet: its cells wait for one
                self.reporter.note(said)
            for slot in slots:
                t = threading.Thread(
                    target=self._worker, args=(items, slot, summary), name=slot.name, daemon=True
                )
                threads.append(t)
        self.reporter.start(len(planned), len({p.cell.key for p in planned}))
        self._active = len(threads)
        try:
            for t in threads:
                t.start()
            # Until a stop: a full disk, a lost engine. The cells still running on other
            # slots (a long GPU cell on another Ray node) were waited for, up to their
            # timeouts, and their records then thrown away; `_halt` ends them below.
            self._wait_for_workers(until_stop=True, summary=summary)
        except KeyboardInterrupt:
            summary.interrupted = True
            # The user asked to stop: what is left of this process is clean-up and saying
            # so. A second Ctrl-C must not cut either short, so they stay ignored.
            ignore_interrupts()
            self._halt(executors.values())
        finally:
            self._say_drops(every=True)
            self.reporter.stop()
        if summary.lost is not None:
            self._halt(executors.values())
        elif summary.own_builds and not summary.interrupted:
            # Noted, not recorded: the run must not end as if it had done them.
            cells = [cell for cell, _ in summary.own_builds]
            names = ", ".join(cells[:3]) + (", ..." if len(cells) > 3 else "")
            summary.lost = f"{len(cells)} cell(s) not run ({names}): {summary.own_builds[0][1]}"
            summary.lost_code = ExitCode.ENVIRONMENT
        return summary

    def _halt(self, executors: Iterable[Executor]) -> None:
        """Stop everything: cells, their workers and containers, environment builds."""
        with uninterruptible():
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

    def _wait_for_workers(
        self, *, until_stop: bool = False, summary: RunSummary | None = None
    ) -> None:
        """Block until every worker has returned (`until_stop`: or the run must stop);
        meanwhile, with `summary`, start the slots the executor offers more of.

        Not Thread.join(): on Python 3.11 a join interrupted by Ctrl-C can mark a running
        thread as finished (gh-90882), and we would return while a cell still runs.
        """
        while True:
            with self._turn:
                if until_stop and self._stop.is_set():
                    return
                if self._active > 0:
                    self._growth.busy()
                elif summary is None:
                    return
                elif (ended := self._growth.no_node(self.host.lacks)) is not None:
                    # Cells of a type no node joined for: noted "not run here" by the caller.
                    summary.no_node.extend(ended[0])
                    for line in [*self._drops.due(every=True), *ended[1]]:  # drops first
                        self.reporter.note(line)
                    if ended[2] is not None and summary.lost is None:  # cut short: not done
                        summary.lost, summary.lost_code = ended[2], ExitCode.DOCKER
                    return
                self._turn.wait(timeout=0.2)
            self._say_drops()
            if summary is not None:  # asked outside the lock: the slots hand out cells
                self._grow(summary)

    def _grow(self, summary: RunSummary) -> None:
        """Slots for cells still waiting where the executor offers more than the run
        counted at its start (a node joined the cluster): it was used by the next run only."""

        def left(items: Pending) -> int:
            with self._turn:
                return len(items)

        said: set[str] = set()
        for slot, items, why in self._growth.more(left):
            if why not in said:
                said.add(why)
                self.reporter.note(why)
            thread = threading.Thread(
                target=self._worker, args=(items, slot, summary), name=slot.name, daemon=True
            )
            # Counted and started as one: Ctrl-C between them left `_halt` waiting for ever.
            with uninterruptible(), self._turn:
                if self._stop.is_set():
                    return
                self._active += 1
                thread.start()

    def _worker(self, items: Pending, slot: Slot, summary: RunSummary) -> None:
        moved: list[str] = []  # keys of the cells put back, its node having left
        why = ""
        try:
            why = self._work(items, slot, summary, moved)
        except Exception as exc:  # not a thread's traceback and a run that ends well
            self._lose(
                summary,
                base.cannot_write(exc, self.workroot)
                or f"internal error in slot {slot.name}: {type(exc).__name__}: {exc}; its cell "
                "got no record; earlier results are kept: run again, and report this",
            )
        finally:
            with self._turn:
                self._active -= 1
                live, pool = self._growth.ended(items, moved)
                if why:  # said with the node's other slots (`slot_drops`)
                    self._drops.dropped(why, slot.name, len(moved), live, pool)
                self._turn.notify_all()

    def _say_drops(self, *, every: bool = False) -> None:
        with self._turn:
            lines = self._drops.due(every=every)
        for line in lines:
            self.reporter.note(line)

    def _work(self, items: Pending, slot: Slot, summary: RunSummary, moved: list[str]) -> str:
        """Run cells in this slot until none is left; what took the slot away ('' if
        nothing did), its cells' keys put back in `moved`.

        Where the executor queues cells itself (Ray, GPU cells), the slot keeps the next
        cell submitted while the current one runs: the backend starts it the moment the
        slot's resources free up, and the driver judges and stores one record while the
        next cell already runs, instead of a round trip through the driver between
        cells. A cell submitted early that the run does not reach (Ctrl-C, a full disk)
        is cancelled with the rest, and recorded by no one: the next run does it again.
        """
        ahead: deque[Flight] = deque()
        gone = ""  # once the slot is gone: its cells submitted ahead are waited for
        try:
            while True:
                if not ahead:
                    item = self._turns.take(items, slot) if not gone else None
                    if item is None:
                        return gone
                    self._held(items, 1)
                    ahead.append(launch(item, slot, self._workdir(item)))
                    self.reporter.started(item.cell, slot)
                while not gone and ahead[-1].queued and len(ahead) < self._room(items):
                    nxt = self._turns.take(items, slot, wait=False, accept=queues)
                    if nxt is None:
                        break
                    self._held(items, 1)
                    ahead.append(launch(nxt, slot, self._workdir(nxt)))
                flight = ahead.popleft()
                try:
                    done = self._finish(flight, summary, items)
                finally:
                    self._held(items, -1)
                if done is False:
                    return gone
                if isinstance(done, str):
                    gone = gone or done
                    moved.append(flight.item.cell.key)
                elif ahead and not gone:
                    self.reporter.started(ahead[0].item.cell, slot)
        finally:
            for flight in ahead:  # submitted, never reached: not a result
                self._turns.release(flight.item, None)
            self._held(items, -len(ahead))

    def _held(self, items: Pending, more: int) -> None:
        """Count `more` cells held by the slots of the pool whose cells are `items`."""
        with self._turn:
            self._growth.hold(items, more)

    def _room(self, items: Pending) -> int:
        """How many cells one slot of the pool may hold now (its running one included)."""
        with self._turn:
            return min(1 + _AHEAD, self._growth.share(items, len(items)))

    def _workdir(self, item: Planned) -> Path:
        name = item.cell.key if item.attempt == 0 else f"{item.cell.key}.{item.attempt}"
        return self.workroot / self.run_id / name

    def _finish(self, flight: Flight, summary: RunSummary, items: Pending) -> bool | str:
        """Wait for one cell, judge and store it; False when the slot must stop, and
        what took the slot away when the cell was put back in `items` (`moved`)."""
        item, cell = flight.item, flight.item.cell
        result: Result | None = None
        stored = False
        try:
            outcome = flight.outcome()
            if outcome.cancelled or self._stop.is_set():
                # Half a run is not a result: the next run does this cell again.
                return False
            if outcome.moved is not None:  # taken first by the pool's live slots
                with self._turn:
                    items.put_back(item)
                return outcome.moved
            stop = self._stop_for(outcome, flight.workdir)
            if stop is not None:  # not the repro's error: no record, the next run does it
                self._lose(summary, f"{cell.id} could not run: {stop[0]}", code=stop[1])
                return False
            edited = self._code.changed(cell.script)
            if edited is not None:  # its record would be the old code's under its key
                self._lose(summary, edited_line(edited, cell.id), code=ExitCode.CONFIG)
                return False
            result = self._own_build(cell, outcome, flight.workdir)
            own = result is not None
            if result is None:
                result = judge_outcome(cell, outcome, host=self.host, run_id=self.run_id)
            stored = self._store(result, summary)
            if stored and own:
                summary.own_builds.append((cell.id, result.reason))
        finally:
            self._turns.release(item, result)
        if not stored:
            return False
        trim_cell_logs(flight.workdir)  # recorded: keep the tails
        self.reporter.finished(result)
        return True

    def _own_build(self, cell: Cell, outcome: base.RunOutcome, workdir: Path) -> Result | None:
        """The "not run here" note of a cell whose environment failed to build for this
        machine's own want (its index out of reach, no compiler); None for any other
        outcome. An error record of it was reused by later runs after the machine mended,
        and the pins were never built again; a note is done again by the next run."""
        if outcome.judged is not None:  # a Ray node's record: the node judged it so
            return None
        with self._write:
            words = own_build(outcome.harness_error, workdir / "env-build.log", self._own_builds)
        if words is None:
            return None
        why = (outcome.harness_error or "").removeprefix("environment: ")
        now = datetime.now(UTC).isoformat(timespec="seconds")
        return Result.for_cell(
            cell, status=Status.NOT_RUN, started=now, finished=now,
            reason=f"not built on {self.host.hostname} for the machine's own want ('{words}' "
            f"in its build log): {why}; the next run builds it again",
            host=self.host.hostname, run_id=self.run_id, machine=self.host.machine,
            executor=outcome.executor, base_fingerprint=outcome.base_fingerprint,
        )  # fmt: skip

    def _stop_for(self, outcome: base.RunOutcome, workdir: Path) -> tuple[str, ExitCode] | None:
        """Why no later cell would fare better, and the run's exit code; None if nothing."""
        full = base.host_full(outcome)
        if full is not None:  # as on a full results disk; a Ray node's says where
            where = outcome.harness.get(base.HOST_STORAGE_AT) or f"the cache ({self.workroot})"
            why = f"{full} under {where}; earlier results are kept: "
            # A repro that printed more than the disk holds filled it with its own logs,
            # and left whole they kept it full for every later run and cell.
            # A Ray node cut them where they are, and says so (`HOST_LOGS_CUT`).
            why += cut_for_room(workdir) or outcome.harness.get(base.HOST_LOGS_CUT, "")
            return why + f"{base.storage_fix(full, where)}, then run again", ExitCode.STORE
        gone = base.engine_lost(outcome)
        if gone is not None:
            when = outcome.harness.get(base.ENGINE_WHEN, "once the engine is back")
            why = f"{gone}; earlier results are kept, and the next run does what is left "
            return why + str(when), ExitCode.DOCKER
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


__all__ = ["RunSummary", "Scheduler", "new_run_id"]
