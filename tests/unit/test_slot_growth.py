"""Slots a run gains while it goes on (`slot_growth.py`): the scheduler with an executor
whose cluster offers more once the run has started (no processes; Ray's own is
`tests/integration/test_ray_joins.py`)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from repromatrix import slot_growth
from repromatrix.config import load_matrix
from repromatrix.executors.base import RunOutcome, Slot
from repromatrix.expand import expand
from repromatrix.host import HostInfo, parse_nvidia_smi
from repromatrix.model import Cell, Status
from repromatrix.planning import plan
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
        workdir.mkdir(parents=True, exist_ok=True)
        out = workdir / "result.json"
        out.write_text('{"schema": 1, "status": "passed", "reason": "ok", "metrics": {}}')
        return RunOutcome(
            exit_code=0, timed_out=False, cancelled=False, duration_s=0.0,
            started=datetime.now(UTC), result_json=out, stdout_tail="", stderr_tail="",
            executor="joining", base_fingerprint="joining",
        )  # fmt: skip

    def cancel(self) -> None:
        pass

    def close(self) -> None:
        pass


class Notes:
    def __init__(self) -> None:
        self.said: list[str] = []

    def start(self, total: int, cells: int = 0) -> None:
        pass

    def started(self, cell: Cell, slot: Slot) -> None:
        pass

    def finished(self, result: object) -> None:
        pass

    def note(self, text: str) -> None:
        self.said.append(text)

    def stop(self) -> None:
        pass


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
