"""Slots a run gains while it goes on (`slot_growth.py`): the scheduler with an executor
whose cluster offers more once the run has started (no processes; Ray's own is
`tests/integration/test_ray_joins.py`)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from repromatrix import slot_growth
from repromatrix.config import load_matrix
from repromatrix.errors import ExitCode, UsageError
from repromatrix.executors.base import RunOutcome, Slot
from repromatrix.expand import expand
from repromatrix.host import HostInfo, parse_nvidia_smi
from repromatrix.model import Cell, Status
from repromatrix.planning import plan
from repromatrix.progress import SilentReporter
from repromatrix.scheduler import Scheduler
from repromatrix.store import ResultStore

MATRIX = """\
schema: 1
gpus:
  H100: {compute_capability: "9.0", smi_names: ["NVIDIA H100 80GB HBM3"]}
libraries:
  fi: {pypi: fi, import: fi, versions: ["1", "2", "3", "4"]}
repros:
"""
HOST = HostInfo(
    hostname="box", gpus=parse_nvidia_smi("0, NVIDIA H100 80GB HBM3, GPU-aaa, 9.0, 81559\n")
)


class Joining:
    """An executor whose cells each wait until `slots` slots run one at once (or 30 s):
    that many only once the run added slots for a node that joined (`capacity`)."""

    name = "joining"

    def __init__(self, slots: int, offered: int) -> None:
        self.slots, self.offered = slots, offered
        self.started = threading.Event()  # the run's first cell: the node joins
        self.lock = threading.Condition()
        self.running: set[str] = set()
        self.seen: dict[str, str] = {}  # cell id → slot name

    def capacity(self, cell: Cell) -> int:
        return self.offered if self.started.is_set() else 0

    def base_fingerprint(self, cell: Cell) -> str:
        return "joining"

    def can_run(self, cell: Cell) -> str | None:
        return None

    def run(self, cell: Cell, slot: Slot, workdir: Path) -> RunOutcome:
        self.started.set()
        with self.lock:
            self.seen[cell.id] = slot.name
            self.running.add(slot.name)
            self.lock.notify_all()
            self.lock.wait_for(lambda: len(self.running) >= self.slots, timeout=30)
        return _passed(workdir)

    def cancel(self) -> None:
        pass

    def close(self) -> None:
        pass


class Notes(SilentReporter):
    def __init__(self) -> None:
        self.said: list[str] = []

    def note(self, text: str) -> None:
        self.said.append(text)


@pytest.mark.parametrize(
    ("gpu", "per_gpu", "offered", "names", "said"),
    [
        ("cpu", 1, 3, {"cpu0", "cpu1", "cpu2"}, "2 more CPU slots for the 3"),
        ("H100", 2, 4, {"gpu0.0", "gpu0.1", "gpu1.0", "gpu1.1"}, "2 more H100 slots for the 2"),
    ],
)
def test_a_run_adds_slots_the_cluster_offers_once_it_started(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    gpu: str,
    per_gpu: int,
    offered: int,
    names: set[str],
    said: str,
) -> None:
    """Slots were counted once, at the run's start: what a node that joined offered was
    used by the next run only. The run asks while cells wait, and adds the slots (new
    names, whole GPUs), saying so once."""
    monkeypatch.setattr(slot_growth, "LOOK_S", 0.0)
    (tmp_path / "r.py").write_text("")
    # Four environments: cells of one run one after another.
    repro = f"  r: {{script: r.py, gpus: [{gpu}], libraries: {{fi: all}}}}\n"
    (tmp_path / "m.yaml").write_text(MATRIX + repro)
    cells = expand(load_matrix(tmp_path / "m.yaml"))
    ex = Joining(slots=len(names), offered=offered)
    p = plan(cells, host=HOST, choose=lambda c: ex, history={})
    notes = Notes()
    sched = Scheduler(
        store=ResultStore(tmp_path / "res", host="box"), host=HOST, workroot=tmp_path / "w",
        jobs=1, per_gpu=per_gpu, reporter=notes, capacity=ex.capacity,
    )  # fmt: skip
    summary = sched.run(p.to_run)
    assert summary.count(Status.PASSED) == 4
    assert set(ex.seen.values()) == names  # every slot at once, none named twice
    assert [n for n in notes.said if "more" in n] == [
        f"{said} cell(s) still waiting: the cluster offers more than at the run's start "
        "(a node joined)"
    ]


class Booting(Joining):
    """H100 cells run until an L4 cell has run (or 10 s); an L4 node joins once the first
    H100 cell started, where it `joins` at all."""

    def __init__(self, joins: bool) -> None:
        super().__init__(slots=1, offered=1 if joins else 0)

    def capacity(self, cell: Cell) -> int:
        if cell.gpu.name == "H100":
            return 1
        return self.offered if self.started.is_set() else 0

    def run(self, cell: Cell, slot: Slot, workdir: Path) -> RunOutcome:
        if cell.gpu.name == "H100":
            self.started.set()
            with self.lock:
                self.lock.wait_for(lambda: bool(self.running), timeout=10 if self.offered else 0)
        else:
            with self.lock:
                self.running.add(cell.id)
                self.lock.notify_all()
        self.seen[cell.id] = slot.name
        return _passed(workdir)


def _passed(workdir: Path) -> RunOutcome:
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "result.json"
    out.write_text('{"schema": 1, "status": "passed", "reason": "ok", "metrics": {}}')
    return RunOutcome(
        exit_code=0, timed_out=False, cancelled=False, duration_s=0.0,
        started=datetime.now(UTC), result_json=out, stdout_tail="", stderr_tail="",
        executor="joining", base_fingerprint="joining",
    )  # fmt: skip


L4 = '  L4: {compute_capability: "8.9", smi_names: ["NVIDIA L4"]}\n'


@pytest.mark.parametrize("joins", [True, False])
def test_cells_of_a_type_no_node_offered_at_the_start_wait_while_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, joins: bool
) -> None:
    """A GPU type no node offered when the run started was noted "not run here" at once,
    though a node of it joined while the run went on (its nodes still booting). Its cells
    wait for one while the run's other cells go on, and run there once it joins; when none
    does, each is handed back once (repeats too) to be noted, with why."""
    monkeypatch.setattr(slot_growth, "LOOK_S", 0.0)
    (tmp_path / "r.py").write_text("")
    matrix = MATRIX.replace("gpus:\n", "gpus:\n" + L4)
    (tmp_path / "m.yaml").write_text(matrix + "  r: {script: r.py, gpus: [H100, L4]}\n")
    cells = expand(load_matrix(tmp_path / "m.yaml"))
    ex = Booting(joins)
    p = plan(cells, host=HOST, choose=lambda c: ex, history={}, repeat=2, wait_for_gpus=True)
    assert [c.id for c, _ in p.not_run] == []
    notes = Notes()
    sched = Scheduler(
        store=ResultStore(tmp_path / "res", host="box"), host=HOST, workroot=tmp_path / "w",
        reporter=notes, capacity=ex.capacity,
    )  # fmt: skip
    summary = sched.run(p.to_run)
    assert notes.said[0] == (
        "2 L4 cell(s) wait for a node of type L4 to join the cluster (none offers it now) "
        "while the run's other cells go on; else they are noted 'not run here'"
    )
    if joins:
        assert summary.count(Status.PASSED) == 4, summary.results
        assert summary.no_node == []
        assert ex.seen["r[L4,host]"] == "gpu1"  # a slot of its own
        assert "1 more L4 slot for the 2 cell(s) still waiting" in notes.said[1]
        return
    assert summary.count(Status.PASSED) == 2
    assert [(c.id, why) for c, why in summary.no_node] == [
        ("r[L4,host]", "no L4 on this host (has 0: NVIDIA H100 80GB HBM3)")
    ]
    assert notes.said[1:] == [
        "no node of type L4 joined while the run went on: its 1 cell(s) are noted 'not run here'"
    ]


@pytest.mark.parametrize("text", ["abc", "-1", "nan", "1e3", "86401", " 5"])
def test_a_node_wait_that_is_no_number_of_seconds_is_refused_in_one_line(text: str) -> None:
    with pytest.raises(UsageError) as refused:
        slot_growth.node_wait_seconds(text)
    assert str(refused.value).startswith(f"REPROMATRIX_RAY_NODE_WAIT_S={text!a}: give the ")
    assert refused.value.exit_code is ExitCode.USAGE


@pytest.mark.parametrize(("text", "seconds"), [("", 0.0), ("0", 0.0), ("2.5", 2.5), (".5", 0.5)])
def test_a_node_wait_is_its_seconds(text: str, seconds: float) -> None:
    assert slot_growth.node_wait_seconds(text) == seconds


LEFT = "Ray node 10.0.0.2 (abcd1234) left the cluster"


class _Flight:
    def __init__(self, outcome: Callable[[], RunOutcome]) -> None:
        self.outcome = outcome


class Leaving:
    """A queueing executor (as Ray's) whose slots `leaving` (`gpu1`) lose their node at
    their first cells: each comes back moved, once every such slot was handed three.
    `gpu0`'s first cell waits until the run said so (or 30 s); with `joins`, its cells
    wait until a new slot took one. `capacity`: the slots the cluster offers, `before`
    the node left and `offered` once it did (a cell came back moved)."""

    name = "leaving"

    def __init__(
        self,
        offered: int,
        joins: bool = False,
        before: int = 2,
        leaving: tuple[str, ...] = ("gpu1",),
    ) -> None:
        self.offered, self.joins, self.before, self.leaving = offered, joins, before, leaving
        self.said = threading.Event()
        self.left = threading.Event()  # a cell came back moved: the node is gone
        self.lock = threading.Condition()
        self.ran: list[tuple[str, str]] = []  # (cell id, slot), in the order they ran
        self.sent: dict[str, list[str]] = {}  # slot → the cells handed to it

    def capacity(self, cell: Cell) -> int:
        return self.offered if self.left.is_set() else self.before

    def base_fingerprint(self, cell: Cell) -> str:
        return "leaving"

    def can_run(self, cell: Cell) -> str | None:
        return None

    def queues(self, cell: Cell) -> bool:
        return True

    def submit(self, cell: Cell, slot: Slot, workdir: Path) -> _Flight:
        with self.lock:
            self.sent.setdefault(slot.name, []).append(cell.id)
            self.lock.notify_all()
        if slot.name in self.leaving:
            return _Flight(lambda: self._leave(workdir))
        return _Flight(lambda: self._run(cell, slot, workdir))

    def _leave(self, workdir: Path) -> RunOutcome:
        with self.lock:  # the node's slots all hold their cells when it leaves
            self.lock.wait_for(
                lambda: all(len(self.sent.get(s, [])) >= 3 for s in self.leaving), timeout=30
            )
        self.left.set()
        return _moved(workdir)

    def _run(self, cell: Cell, slot: Slot, workdir: Path) -> RunOutcome:
        self.said.wait(timeout=30)
        with self.lock:
            if self.joins and slot.name == "gpu0":
                self.lock.wait_for(lambda: "gpu2" in self.sent, timeout=30)
            self.ran.append((cell.id, slot.name))
        return _passed(workdir)

    def run(self, cell: Cell, slot: Slot, workdir: Path) -> RunOutcome:
        raise AssertionError("a queueing executor's cells are submitted")

    def cancel(self) -> None:
        pass

    def close(self) -> None:
        pass


class Said(Notes):
    def __init__(self, ex: Leaving) -> None:
        super().__init__()
        self.ex = ex

    def note(self, text: str) -> None:
        super().note(text)
        if " dropped; " in text:
            self.ex.said.set()


def _moved(workdir: Path) -> RunOutcome:
    return dataclasses.replace(
        _passed(workdir), exit_code=None, result_json=None, harness_error="moved", moved=LEFT
    )


def _leaving_run(tmp_path: Path, ex: Leaving, repros: int, host: HostInfo) -> tuple[Said, Any]:
    (tmp_path / "r.py").write_text("")
    (tmp_path / "m.yaml").write_text(
        MATRIX + "".join(f"  r{i}: {{script: r.py, gpus: [H100]}}\n" for i in range(repros))
    )
    cells = expand(load_matrix(tmp_path / "m.yaml"))
    p = plan(cells, host=host, choose=lambda c: ex, history={})
    notes = Said(ex)
    sched = Scheduler(
        store=ResultStore(tmp_path / "res", host="box"), host=host, workroot=tmp_path / "w",
        reporter=notes, capacity=ex.capacity,
    )  # fmt: skip
    return notes, sched.run(p.to_run)


TWO = HostInfo(
    hostname="box",
    gpus=parse_nvidia_smi(
        "0, NVIDIA H100 80GB HBM3, GPU-aaa, 9.0, 81559\n"
        "1, NVIDIA H100 80GB HBM3, GPU-bbb, 9.0, 81559\n"
    ),
)


@pytest.mark.parametrize("joins", [False, True])
def test_a_slot_whose_node_left_is_dropped_and_its_cells_run_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, joins: bool
) -> None:
    """Two slots, each holding three cells; two cells not handed out yet. Slot gpu1's
    node leaves: its cells come back moved. They run next on the live slot, before the
    two behind them; gpu1 gets no cell again and is said dropped, and the cluster offers
    one slot so none is added. With a node that joins (the cluster offers two again), a
    new slot (a new name) takes cells."""
    monkeypatch.setattr(slot_growth, "LOOK_S", 0.0)
    ex = Leaving(offered=2 if joins else 1, joins=joins)
    notes, summary = _leaving_run(tmp_path, ex, 8, TWO)
    assert summary.lost is None, summary.lost
    assert summary.count(Status.PASSED) == 8  # one record each
    moved = ex.sent["gpu1"]
    assert len(moved) == 3, ex.sent  # the first three, then no more
    dropped = f"{LEFT}: slot gpu1 is dropped; its 3 cell(s) run next on the 1 live H100 slot"
    assert dropped in notes.said, notes.said
    ran = [cell for cell, _ in ex.ran]
    assert sorted(ran) == sorted(f"r{i}[H100,host]" for i in range(8))
    if not joins:
        assert {slot for _, slot in ex.ran} == {"gpu0"}
        behind = {"r6[H100,host]", "r7[H100,host]"}  # not handed out when gpu1's node left
        assert set(ran[-2:]) == behind, ran
        assert set(moved) & behind == set()
        return
    assert "gpu2" in {slot for _, slot in ex.ran}, ex.ran
    assert any("1 more H100 slot for the" in said for said in notes.said), notes.said


THREE = HostInfo(
    hostname="box",
    gpus=parse_nvidia_smi(
        "".join(f"{i}, NVIDIA H100 80GB HBM3, GPU-{i}, 9.0, 81559\n" for i in range(3))
    ),
)


def test_a_node_that_left_with_several_slots_is_said_once_naming_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slots gpu1 and gpu2 are on one node, which leaves while each holds three cells:
    one line says the node left, naming both slots and their six cells (it was a line
    per slot, each naming the node). They run next on gpu0, the live slot."""
    monkeypatch.setattr(slot_growth, "LOOK_S", 0.0)
    ex = Leaving(offered=1, before=3, leaving=("gpu1", "gpu2"))
    notes, summary = _leaving_run(tmp_path, ex, 9, THREE)
    assert summary.lost is None, summary.lost
    assert summary.count(Status.PASSED) == 9
    assert [said for said in notes.said if LEFT in said] == [
        f"{LEFT}: slots gpu1, gpu2 are dropped; their 6 cell(s) run next on the 1 live H100 slot"
    ], notes.said
    assert {slot for _, slot in ex.ran} == {"gpu0"}


def test_cells_of_a_node_that_left_with_no_other_of_its_type_are_noted_as_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The only slot's node leaves and no node of the type is left: its cells wait as a
    type no node offers does (here no time), then are noted "not run here", each once,
    and the run must not end with exit 0: it ends as cells lost with their nodes do."""
    monkeypatch.setattr(slot_growth, "LOOK_S", 0.0)
    ex = Leaving(offered=0, before=1)
    one = HostInfo(
        hostname="box",
        gpus=parse_nvidia_smi("1, NVIDIA H100 80GB HBM3, GPU-bbb, 9.0, 81559\n"),
    )
    notes, summary = _leaving_run(tmp_path, ex, 4, one)
    assert ex.ran == []
    assert (
        f"{LEFT}: slot gpu1 is dropped; its 3 cell(s) wait for a free H100 slot or node, as "
        "cells of a type no node offers do"
    ) in notes.said, notes.said
    assert sorted(c.id for c, _ in summary.no_node) == [f"r{i}[H100,host]" for i in range(4)]
    reasons = {why for c, why in summary.no_node if c.id != "r3[H100,host]"}
    assert reasons == {
        "no host with this GPU in the cluster any more (the node running it was lost and no "
        "other node offers H100)"
    }
    assert summary.lost_code is ExitCode.DOCKER
    assert summary.lost == (
        "3 cell(s) lost with their Ray nodes and no other node offers H100 (r0[H100,host], "
        "r1[H100,host], r2[H100,host]); they are noted 'not run here', earlier results are "
        "kept, and the next run does them"
    )
