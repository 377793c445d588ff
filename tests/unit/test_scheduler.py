"""Scheduler: planning (pure) and slot rules, with a fake executor (no processes)."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from repromatrix.config import load_matrix
from repromatrix.errors import ExitCode
from repromatrix.executors.base import ENGINE_LOST, RunOutcome, Slot, harness_failure
from repromatrix.expand import expand
from repromatrix.host import HostInfo, parse_nvidia_smi
from repromatrix.model import Cell, Status
from repromatrix.planning import Plan, plan
from repromatrix.progress import SilentReporter
from repromatrix.records import Machine, Result
from repromatrix.scheduler import RunSummary, Scheduler
from repromatrix.store import ResultStore

MATRIX = """\
schema: 1
gpus:
  H100: {compute_capability: "9.0", smi_names: ["NVIDIA H100 80GB HBM3"]}
  L4: {compute_capability: "8.9", smi_names: ["NVIDIA L4"]}
libraries:
  fi: {pypi: fi, import: fi, versions: ["1", "2"]}
repros:
  a: {script: r.py, gpus: [H100, L4], libraries: {fi: all}}
  b: {script: r.py, gpus: [H100], libraries: {fi: all}}
  c: {script: r.py, gpus: [cpu]}
"""


class FakeExecutor:
    """Records which cells overlap; each run takes a short, fixed time."""

    name = "fake"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running: list[Cell] = []
        self.overlaps: list[tuple[str, str]] = []
        self.slots: dict[str, str] = {}

    def base_fingerprint(self, cell: Cell) -> str:
        return "fake"

    def can_run(self, cell: Cell) -> str | None:
        return None

    def run(self, cell: Cell, slot: Slot, workdir: Path) -> RunOutcome:
        with self.lock:
            for other in self.running:
                self.overlaps.append((other.id, cell.id))
            self.running.append(cell)
            self.slots[cell.id] = slot.cuda_visible_devices
        time.sleep(0.05)
        with self.lock:
            self.running.remove(cell)
        workdir.mkdir(parents=True, exist_ok=True)
        out = workdir / "result.json"
        out.write_text('{"schema": 1, "status": "passed", "reason": "ok", "metrics": {}}')
        return RunOutcome(
            exit_code=0,
            timed_out=False,
            cancelled=False,
            duration_s=0.05,
            started=datetime.now(UTC),
            result_json=out,
            stdout_tail="",
            stderr_tail="",
            executor="fake",
            base_fingerprint="fake",
        )

    def cancel(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def cells(tmp_path: Path) -> list[Cell]:
    (tmp_path / "r.py").write_text("")
    (tmp_path / "m.yaml").write_text(MATRIX)
    return expand(load_matrix(tmp_path / "m.yaml"))


HOST = HostInfo(
    hostname="box",
    gpus=parse_nvidia_smi(
        "0, NVIDIA H100 80GB HBM3, GPU-aaa, 9.0, 81559\n"
        "1, NVIDIA H100 80GB HBM3, GPU-bbb, 9.0, 81559\n"
    ),
)


def test_plan_splits_runnable_not_run_and_reused(cells: list[Cell], tmp_path: Path) -> None:
    ex = FakeExecutor()
    p = plan(cells, host=HOST, choose=lambda c: ex, history={})
    assert sorted(x.cell.id for x in p.to_run) == [
        "a[H100,host,fi=1]",
        "a[H100,host,fi=2]",
        "b[H100,host,fi=1]",
        "b[H100,host,fi=2]",
        "c[cpu,host]",
    ]
    assert [(c.id, why) for c, why in p.not_run] == [
        (
            "a[L4,host,fi=1]",
            "no L4 on this host (has 0: NVIDIA H100 80GB HBM3, 1: NVIDIA H100 80GB HBM3)",
        ),
        (
            "a[L4,host,fi=2]",
            "no L4 on this host (has 0: NVIDIA H100 80GB HBM3, 1: NVIDIA H100 80GB HBM3)",
        ),
    ]


@pytest.mark.parametrize("per_gpu", [1, 3])
def test_cells_of_one_environment_never_overlap(
    cells: list[Cell], tmp_path: Path, per_gpu: int
) -> None:
    ex = FakeExecutor()
    p = plan(cells, host=HOST, choose=lambda c: ex, history={})
    store = ResultStore(tmp_path / "res", host="box")
    sched = Scheduler(store=store, host=HOST, workroot=tmp_path / "w", jobs=2, per_gpu=per_gpu)
    summary = sched.run(p.to_run)
    assert summary.count(Status.PASSED) == 5
    same_env = [
        (x, y)
        for x, y in ex.overlaps
        if x.split("[")[1][-5:] == y.split("[")[1][-5:] and "fi=" in x
    ]
    assert same_env == []  # a and b at fi=1 share an environment: one after the other
    assert ex.overlaps  # but different environments did run at the same time
    assert {ex.slots[c] for c in ex.slots if "H100" in c} <= {"GPU-aaa", "GPU-bbb"}
    assert ex.slots["c[cpu,host]"] == ""  # CPU cells see no GPU
    reused = plan(cells, host=HOST, choose=lambda c: ex, history=store.history())
    assert len(reused.reused) == 5
    assert reused.to_run == ()


def test_results_from_another_base_are_shown_but_never_reused(cells: list[Cell]) -> None:
    """Published results from another host must not stand in for a run on this one."""
    ex = FakeExecutor()  # its base fingerprint is "fake"
    cell = next(c for c in cells if c.id == "c[cpu,host]")

    def prev(fingerprint: str) -> dict[str, list[Result]]:
        return {
            cell.key: [
                Result(
                    key=cell.key,
                    cell_id=cell.id,
                    repro="c",
                    base="host",
                    image=None,
                    gpu="cpu",
                    pins={},
                    status=Status.PASSED,
                    reason="ok",
                    base_fingerprint=fingerprint,
                )
            ]
        }

    elsewhere = plan([cell], host=HOST, choose=lambda c: ex, history=prev("host:other"))
    assert [p.cell.id for p in elsewhere.to_run] == ["c[cpu,host]"]
    here = plan([cell], host=HOST, choose=lambda c: ex, history=prev("fake"))
    assert [c.id for c, _ in here.reused] == ["c[cpu,host]"]
    assert here.to_run == ()


def record(cell: Cell, status: Status, *, duration: float = 1.0, fp: str = "fake") -> Result:
    return Result.for_cell(
        cell,
        status=status,
        reason=status.value,
        duration_s=duration,
        base_fingerprint=fp,
        finished=f"2026-01-01T00:00:{int(duration):02d}+00:00",
    )


def test_repeat_counts_the_records_made_here_and_rerun_makes_fresh_ones(
    cells: list[Cell],
) -> None:
    ex = FakeExecutor()
    cell = next(c for c in cells if c.id == "c[cpu,host]")
    history = {cell.key: [record(cell, Status.PASSED), record(cell, Status.REGRESSED, fp="x")]}
    p = plan([cell], host=HOST, choose=lambda c: ex, history=history, repeat=3)
    # One record was made here (the other on another base): two more runs.
    assert [x.attempt for x in p.to_run] == [0, 1]
    assert all(x.warm for x in p.to_run)
    p = plan([cell], host=HOST, choose=lambda c: ex, history=history, repeat=3, rerun=True)
    assert len(p.to_run) == 3
    p = plan([cell, cell], host=HOST, choose=lambda c: ex, history=history, repeat=1)
    assert [c.id for c, _ in p.reused] == ["c[cpu,host]"]  # listed twice, counted once
    p = plan([cell], host=HOST, choose=lambda c: ex, history={}, repeat={cell.key: 2})
    assert [x.warm for x in p.to_run] == [False, False]
    p = plan([cell], host=HOST, choose=lambda c: ex, history={}, repeat={cell.key: 0})
    assert p.to_run == ()
    assert p.reused == ()


def test_longest_expected_first_whatever_the_matrix_order(cells: list[Cell]) -> None:
    ex = FakeExecutor()
    runnable = [c for c in cells if "L4" not in c.id]
    durations = {c.key: float(i + 1) for i, c in enumerate(runnable)}
    history = {c.key: [record(c, Status.PASSED, duration=durations[c.key])] for c in runnable}
    fresh = next(c for c in runnable if not c.pins)
    history.pop(fresh.key)  # never seen: its timeout is the prior, so it goes first
    expected = [fresh.id] + [
        c.id for c in sorted(runnable, key=lambda c: -durations[c.key]) if c is not fresh
    ]
    for order in (runnable, runnable[::-1]):
        p = plan(order, host=HOST, choose=lambda c: ex, history=history, rerun=True)
        assert [x.cell.id for x in p.to_run] == expected


def run_all(
    cells: list[Cell],
    ex: FakeExecutor,
    tmp_path: Path,
    *,
    jobs: int = 1,
    store: ResultStore | None = None,
) -> tuple[Plan, ResultStore, RunSummary]:
    """Plan every cell on `ex` and run them into `store` (default: a fresh one)."""
    p = plan(cells, host=HOST, choose=lambda c: ex, history={})
    store = store if store is not None else ResultStore(tmp_path / "res", host="box")
    summary = Scheduler(store=store, host=HOST, workroot=tmp_path / "w", jobs=jobs).run(p.to_run)
    return p, store, summary


class RaisingExecutor(FakeExecutor):
    def run(self, cell: Cell, slot: Slot, workdir: Path) -> RunOutcome:
        if "fi=1" in cell.id:
            raise RuntimeError("executor bug")
        return super().run(cell, slot, workdir)


def test_an_executor_that_raises_costs_a_record_not_the_cell(
    cells: list[Cell], tmp_path: Path
) -> None:
    ex = RaisingExecutor()
    p, store, summary = run_all(cells, ex, tmp_path)
    stored = {r.cell_id: r for r in store.load().results}
    assert len(stored) == len(p.to_run) == len(summary.results)
    assert stored["a[H100,host,fi=1]"].status is Status.ERROR
    assert stored["a[H100,host,fi=1]"].reason == "harness failed: RuntimeError: executor bug"
    assert stored["c[cpu,host]"].status is Status.PASSED


def test_a_judge_that_raises_costs_a_record_not_the_cell(
    cells: list[Cell], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Reliability table's first row: a judge that raises on a cell's output is that
    cell's `error` record with its reason; the other cells are judged as ever."""
    from repromatrix import flights
    from repromatrix.executors.judge import judge as real_judge

    def judge(cell: Cell, outcome: RunOutcome, **kw: object) -> Result:
        if "fi=1" in cell.id:
            raise ValueError("judge bug")
        return real_judge(cell, outcome, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(flights, "judge", judge)
    p, store, summary = run_all(cells, FakeExecutor(), tmp_path)
    stored = {r.cell_id: r for r in store.load().results}
    assert len(stored) == len(p.to_run) == len(summary.results)
    assert stored["a[H100,host,fi=1]"].status is Status.ERROR
    assert stored["a[H100,host,fi=1]"].reason == (
        "harness could not judge the output: ValueError: judge bug"
    )
    assert stored["c[cpu,host]"].status is Status.PASSED


class FullStore(ResultStore):
    """A store whose disk fills up after `room` records."""

    def __init__(self, root: Path, room: int) -> None:
        super().__init__(root, host="box")
        self.room = room

    def append_many(self, results: Iterable[Result]) -> None:
        results = list(results)
        if results and self.room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(results)
        super().append_many(results)


def test_a_result_that_cannot_be_stored_stops_the_run_and_says_so(
    cells: list[Cell], tmp_path: Path
) -> None:
    ex = FakeExecutor()
    _p, store, summary = run_all(cells, ex, tmp_path, store=FullStore(tmp_path / "res", room=2))
    assert summary.lost is not None
    assert "could not be stored" in summary.lost
    assert "No space left on device" in summary.lost
    assert len(store.load().results) == len(summary.results) == 2


class UnwritableStore(ResultStore):
    """A store that fails with something other than an OSError (a bug of its own)."""

    def append_many(self, results: Iterable[Result]) -> None:
        if list(results):
            raise ValueError("Out of range float values are not JSON compliant")


def test_a_slot_that_fails_stops_the_run_and_says_so_instead_of_losing_cells(
    cells: list[Cell], tmp_path: Path
) -> None:
    """The slot's thread died with a traceback, its cells got no record, and the run
    ended as if all were done (exit 0)."""
    p, _store, summary = run_all(
        cells, FakeExecutor(), tmp_path, store=UnwritableStore(tmp_path / "res", host="box")
    )
    assert p.to_run
    assert not summary.results
    assert summary.lost is not None
    assert "internal error in slot" in summary.lost
    assert "ValueError: Out of range float values" in summary.lost
    assert summary.lost_error().exit_code is ExitCode.STORE


class Recorder(SilentReporter):
    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        self.notes.append(text)


def test_repeats_of_a_warm_cell_overlap_other_cells_of_its_environment_wait(
    cells: list[Cell], tmp_path: Path
) -> None:
    ex = FakeExecutor()
    a1 = next(c for c in cells if c.id == "a[H100,host,fi=1]")
    b1 = next(c for c in cells if c.id == "b[H100,host,fi=1]")
    history = {a1.key: [record(a1, Status.PASSED)]}
    p = plan([a1, b1], host=HOST, choose=lambda c: ex, history=history, repeat={a1.key: 4})
    reporter = Recorder()
    sched = Scheduler(
        store=ResultStore(tmp_path / "res", host="box"),
        host=HOST,
        workroot=tmp_path / "w",
        per_gpu=2,
        reporter=reporter,
    )
    summary = sched.run(p.to_run)
    assert summary.count(Status.PASSED) == 4  # three more of a1, one of b1
    repeats = [(x, y) for x, y in ex.overlaps if x == y == a1.id]
    assert repeats  # the warm repeats ran side by side
    assert not [(x, y) for x, y in ex.overlaps if {x, y} == {a1.id, b1.id}]
    assert any("wait for the environment fi=1 on host" in n for n in reporter.notes)


def test_an_unseen_cell_borrows_the_duration_of_its_environment(cells: list[Cell]) -> None:
    ex = FakeExecutor()
    a1 = next(c for c in cells if c.id == "a[H100,host,fi=1]")
    b1 = next(c for c in cells if c.id == "b[H100,host,fi=1]")
    history = {b1.key: [record(b1, Status.PASSED, duration=7.0)]}
    p = plan([a1, b1], host=HOST, choose=lambda c: ex, history=history, rerun=True)
    assert [x.expected_s for x in p.to_run] == [7.0, 7.0]


class QueueingFake(FakeExecutor):
    """A backend with its own queue (as Ray's): `submit` hands it a cell, `outcome` waits
    for it. Records how many cells each slot had submitted at once."""

    def __init__(self, *, fail_submit: str = "", slots: int = 0) -> None:
        super().__init__()
        #: Cells start only once this many slots have submitted one: a slot's thread
        #: started late on a loaded machine would otherwise find the work taken.
        self.slots_started = threading.Barrier(slots) if slots else None
        self.all_started = threading.Event()
        self.outstanding: dict[str, list[str]] = {}
        self.most: dict[str, int] = {}
        self.early: list[tuple[str, str]] = []
        self.submitted: list[str] = []
        self.cancelled = False
        self.fail_submit = fail_submit

    def queues(self, cell: Cell) -> bool:
        return cell.needs_gpu

    def submit(self, cell: Cell, slot: Slot, workdir: Path) -> _Submitted:
        if self.fail_submit and self.fail_submit in cell.id:
            raise RuntimeError("submit bug")
        with self.lock:
            mine = self.outstanding.setdefault(slot.name, [])
            self.early.extend((other, cell.id) for other in mine)
            mine.append(cell.id)
            self.most[slot.name] = max(self.most.get(slot.name, 0), len(mine))
            self.submitted.append(cell.id)
        return _Submitted(self, cell, slot, workdir)

    def cancel(self) -> None:
        self.cancelled = True


class _Submitted:
    def __init__(self, ex: QueueingFake, cell: Cell, slot: Slot, workdir: Path) -> None:
        self.ex, self.cell, self.slot, self.workdir = ex, cell, slot, workdir

    def outcome(self) -> RunOutcome:
        barrier = self.ex.slots_started
        if barrier is not None and not self.ex.all_started.is_set():
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=30)  # each slot's first cell, once
            self.ex.all_started.set()
        done = self.ex.run(self.cell, self.slot, self.workdir)
        with self.ex.lock:
            self.ex.outstanding[self.slot.name].remove(self.cell.id)
        return done


def _env(cell_id: str) -> str:
    return cell_id.rsplit(",", maxsplit=1)[-1]  # "fi=1]": the environment of a and b


def test_a_queueing_backend_gets_the_next_cell_before_the_current_one_ends(
    tmp_path: Path,
) -> None:
    (tmp_path / "r.py").write_text("")
    many = MATRIX.replace('versions: ["1", "2"]', "versions: [v1, v2, v3, v4, v5, v6]")
    (tmp_path / "m.yaml").write_text(many)
    cells = expand(load_matrix(tmp_path / "m.yaml"))
    ex = QueueingFake()
    p, store, summary = run_all(cells, ex, tmp_path, jobs=2)
    stored = [r.cell_id for r in store.load().results]
    assert sorted(stored) == sorted(x.cell.id for x in p.to_run)  # one record per cell
    assert summary.count(Status.PASSED) == len(p.to_run) == 13
    assert max(ex.most.values()) == 3  # the running cell and two queued behind it
    assert ex.early  # so the backend never waits for the driver between cells
    # Never early: a CPU cell (its CPUs may outnumber --jobs) or a cell of an environment
    # that another submitted cell holds (one set of compile caches).
    assert not [e for e in ex.early if "cpu" in e[1]]
    assert not [e for e in ex.early if _env(e[0]) == _env(e[1])]
    assert "c[cpu,host]" in stored


def test_a_queueing_backends_slots_take_no_more_than_their_share(tmp_path: Path) -> None:
    """Four GPU cells on two GPUs: the first slot to ask queued two behind its own cell
    (3 and 1), and the other slot then sat idle for a whole cell's time while a cell
    waited in the first one's queue (six cells on three Ray slots went 3, 2 and 1)."""
    (tmp_path / "r.py").write_text("")
    many = MATRIX.replace('versions: ["1", "2"]', "versions: [v1, v2, v3, v4]")
    (tmp_path / "m.yaml").write_text(many)
    cells = [c for c in expand(load_matrix(tmp_path / "m.yaml")) if c.id.startswith("a[H100")]
    ex = QueueingFake(slots=2)
    p, store, _ = run_all(cells, ex, tmp_path, jobs=2)
    assert len(p.to_run) == len(store.load().results) == 4
    assert sorted(Counter(ex.slots.values()).values()) == [2, 2]  # cells per slot
    assert ex.early  # each still queued one behind its running cell


def test_cells_submitted_early_are_dropped_when_the_run_stops(
    cells: list[Cell], tmp_path: Path
) -> None:
    ex = QueueingFake()
    gpu_cells = [c for c in cells if c.needs_gpu]
    p = plan(gpu_cells, host=HOST, choose=lambda c: ex, history={})
    store = FullStore(tmp_path / "res", room=1)
    summary = Scheduler(store=store, host=HOST, workroot=tmp_path / "w", jobs=1).run(p.to_run)
    assert summary.lost is not None
    assert len(store.load().results) == len(summary.results) == 1
    assert ex.early  # cells were submitted behind a running one...
    recorded = {r.cell_id for r in store.load().results}
    assert set(ex.submitted) - recorded  # ...and those never reached have no record
    assert ex.cancelled


def test_a_submit_that_raises_costs_a_record_not_the_cell(
    cells: list[Cell], tmp_path: Path
) -> None:
    ex = QueueingFake(fail_submit="b[H100,host,fi=2]")
    p, store, _ = run_all(cells, ex, tmp_path)
    stored = {r.cell_id: r for r in store.load().results}
    assert len(stored) == len(p.to_run)
    assert stored["b[H100,host,fi=2]"].status is Status.ERROR
    assert stored["b[H100,host,fi=2]"].reason == "harness failed: RuntimeError: submit bug"
    assert stored["a[H100,host,fi=2]"].status is Status.PASSED


def test_a_record_of_another_machine_with_the_same_base_never_stands_in_for_a_run_here(
    cells: list[Cell],
) -> None:
    ex = FakeExecutor()
    cell = next(c for c in cells if c.id == "c[cpu,host]")
    here = HostInfo(hostname="vm", gpus=(), machine=Machine(id="m-here"))

    def made_on(machine: str) -> dict[str, list[Result]]:
        r = record(cell, Status.PASSED)
        return {cell.key: [r.model_copy(update={"machine": Machine(id=machine)})]}

    # Two lent VMs of one image share the base fingerprint ("fake"), not the machine.
    other = plan([cell], host=here, choose=lambda c: ex, history=made_on("m-other"))
    assert [p.cell.id for p in other.to_run] == ["c[cpu,host]"]
    same = plan([cell], host=here, choose=lambda c: ex, history=made_on("m-here"))
    assert [c.id for c, _ in same.reused] == ["c[cpu,host]"]
    # A record that names no machine (older records), and slots of a cluster (no one
    # machine), keep reusing as before.
    unnamed = plan([cell], host=here, choose=lambda c: ex, history=made_on(""))
    assert unnamed.to_run == ()
    # ...unless it names another host (an old record merged in from elsewhere).
    (old,) = made_on("")[cell.key]
    merged = {cell.key: [old.model_copy(update={"host": "otherhost"})]}
    assert plan([cell], host=here, choose=lambda c: ex, history=merged).to_run != ()
    mine = {cell.key: [old.model_copy(update={"host": "vm"})]}
    assert plan([cell], host=here, choose=lambda c: ex, history=mine).to_run == ()
    cluster = HostInfo(hostname="ray-cluster", gpus=(), scope="cluster")
    assert plan([cell], host=cluster, choose=lambda c: ex, history=made_on("m-other")).to_run == ()


class EngineGoneExecutor(FakeExecutor):
    """The container engine stops answering after the first cell."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def run(self, cell: Cell, slot: Slot, workdir: Path) -> RunOutcome:
        self.calls += 1
        if self.calls == 1:
            return super().run(cell, slot, workdir)
        return harness_failure(
            executor="fake",
            base_fingerprint="fake",
            started=datetime.now(UTC),
            why="docker: ('Connection aborted.', ConnectionRefusedError(111))",
            harness={ENGINE_LOST: "the Docker engine stopped answering"},
        )


def test_an_engine_that_stops_answering_stops_the_run_with_exit_5_not_error_records(
    cells: list[Cell], tmp_path: Path
) -> None:
    ex = EngineGoneExecutor()
    p, store, summary = run_all(cells, ex, tmp_path)
    assert summary.lost is not None
    assert "the Docker engine stopped answering" in summary.lost
    assert summary.lost_error().exit_code == ExitCode.DOCKER
    # The cell the engine failed has no record (the next run does it), nor any after it.
    assert {r.status for r in store.load().results} <= {Status.PASSED}
    assert len(store.load().results) < len(p.to_run)


def test_a_timeout_shorter_than_the_cells_timeout_now_is_run_again(cells: list[Cell]) -> None:
    """`timeout: 1` timed out; after raising it to 20 in matrix.yaml (or a one-off
    `--timeout 0.01`), the old timeout was reused: it says nothing of 20 s."""
    ex = FakeExecutor()
    cell = dataclasses.replace(next(c for c in cells if c.id == "c[cpu,host]"), timeout_s=20.0)
    history = {cell.key: [record(cell, Status.TIMEOUT, duration=1.02)]}
    raised = plan([cell], host=HOST, choose=lambda c: ex, history=history)
    assert [p.cell.id for p in raised.to_run] == ["c[cpu,host]"]
    same = dataclasses.replace(cell, timeout_s=1.0)
    again = plan([same], host=HOST, choose=lambda c: ex, history=history)
    assert [c.id for c, _ in again.reused] == ["c[cpu,host]"]


@pytest.mark.parametrize(
    ("why", "fix"),
    [
        ("No space left on device", "free space there (`repromatrix clean` empties its runs/)"),
        ("[Errno 30] Read-only file system: '/cache/runs'", "make it writable"),
        ("Permission denied", "make it writable"),
        ("Not a directory", "make the file on its path a folder again"),
    ],
)
def test_a_cache_that_cannot_be_written_is_told_what_helps(why: str, fix: str) -> None:
    """A Ray node's cache remounted read-only stopped the run with advice to free space."""
    from repromatrix.executors.base import storage_fix

    assert storage_fix(why, "Ray node n1's cache").startswith(fix)


def test_a_file_where_the_cache_has_a_folder_stops_the_run_without_a_record(
    tmp_path: Path,
) -> None:
    """A Ray node's --cache removed and made a file: each cell was an error record
    ("harness failed on the node: NotADirectoryError"), exit 0, that later runs reused."""
    from repromatrix.executors.base import HOST_FULL, cannot_write

    cache = tmp_path / "cache"
    cache.write_text("")
    with pytest.raises(NotADirectoryError) as raised:
        (cache / "runs").mkdir(parents=True)
    assert raised.value.errno in HOST_FULL
    line = cannot_write(raised.value, cache)
    assert line is not None
    assert line.startswith(f"cannot write {cache / 'runs'} (Not a directory)"), line
    assert "make the file on its path a folder again" in line


class _NoJsonExecutor(FakeExecutor):
    """A repro that exits 0 and writes no result JSON (an error, never a pass)."""

    def run(self, cell: Cell, slot: Slot, workdir: Path) -> RunOutcome:
        workdir.mkdir(parents=True, exist_ok=True)
        outcome = super().run(cell, slot, workdir.parent / f"{workdir.name}.elsewhere")
        return dataclasses.replace(outcome, result_json=workdir / "result.json")


def test_two_runs_of_one_cache_in_one_second_never_share_a_work_folder(
    cells: list[Cell], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs of one cache (two results folders) begun in the same second on hosts of one
    name drew the same run id one time in 65,536, and with it one folder per cell: the
    second run's repro wrote no result JSON and was recorded as the first one's pass."""
    from repromatrix import run_summary

    class _OneSecond(datetime):
        @classmethod
        def now(cls, tz: object = None) -> _OneSecond:
            return cls(2026, 12, 5, 12, 0, 0, tzinfo=UTC)

    drawn = iter(["abcd", "abcd", "ef01"])
    real = secrets.token_hex

    def token_hex(n: int | None = None) -> str:
        return next(drawn) if n == 2 else real(n)

    monkeypatch.setattr(run_summary, "datetime", _OneSecond)
    monkeypatch.setattr(secrets, "token_hex", token_hex)
    (c,) = [cell for cell in cells if cell.gpu.name == "cpu"]
    summaries = []
    for ex, results in ((FakeExecutor(), "ra"), (_NoJsonExecutor(), "rb")):
        p = plan([c], host=HOST, choose=functools.partial(lambda e, _c: e, ex), history={})
        store = ResultStore(tmp_path / results, host="box")
        sched = Scheduler(store=store, host=HOST, workroot=tmp_path / "w", jobs=1)
        summaries.append(sched.run(p.to_run))
    first, second = summaries
    assert [r.status for r in first.results] == [Status.PASSED]
    assert [r.status for r in second.results] == [Status.ERROR], second.results[0].reason
    assert first.run_id != second.run_id
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == sorted(
        [first.run_id, second.run_id]
    )


def test_a_run_id_is_drawn_once_where_its_folder_cannot_be_made(tmp_path: Path) -> None:
    """A file where the cache's runs/ folder goes: the id is not claimed, never drawn
    again and again (the run then fails where it did)."""
    from repromatrix import run_summary

    (tmp_path / "runs").write_text("a file where a folder goes")
    assert "-box-" in run_summary.new_run_id("box", tmp_path / "runs")
    assert "-box-" in run_summary.new_run_id("box", tmp_path / "runs" / "deeper")
