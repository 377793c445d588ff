"""Scheduler: planning (pure) and slot rules, with a fake executor (no processes)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from repromatrix.config import load_matrix
from repromatrix.executors.base import RunOutcome, Slot
from repromatrix.expand import expand
from repromatrix.host import HostInfo, parse_nvidia_smi
from repromatrix.model import Cell, Status
from repromatrix.records import Result
from repromatrix.scheduler import Scheduler, plan
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
        self.running: dict[str, Cell] = {}
        self.overlaps: list[tuple[str, str]] = []
        self.slots: dict[str, str] = {}

    def base_fingerprint(self, cell: Cell) -> str:
        return "fake"

    def can_run(self, cell: Cell) -> str | None:
        return None

    def run(self, cell: Cell, slot: Slot, workdir: Path) -> RunOutcome:
        with self.lock:
            for other in self.running.values():
                self.overlaps.append((other.id, cell.id))
            self.running[cell.id] = cell
            self.slots[cell.id] = slot.cuda_visible_devices
        time.sleep(0.05)
        with self.lock:
            del self.running[cell.id]
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
    p = plan(cells, host=HOST, choose=lambda c: ex, existing={})
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
    p = plan(cells, host=HOST, choose=lambda c: ex, existing={})
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
    reused = plan(cells, host=HOST, choose=lambda c: ex, existing=store.latest_by_key())
    assert len(reused.reused) == 5
    assert reused.to_run == ()


def test_results_from_another_base_are_shown_but_never_reused(cells: list[Cell]) -> None:
    """Published results from another host must not stand in for a run on this one."""
    ex = FakeExecutor()  # its base fingerprint is "fake"
    cell = next(c for c in cells if c.id == "c[cpu,host]")

    def prev(fingerprint: str) -> dict[str, Result]:
        return {
            cell.key: Result(
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
        }

    elsewhere = plan([cell], host=HOST, choose=lambda c: ex, existing=prev("host:other"))
    assert [p.cell.id for p in elsewhere.to_run] == ["c[cpu,host]"]
    here = plan([cell], host=HOST, choose=lambda c: ex, existing=prev("fake"))
    assert [c.id for c, _ in here.reused] == ["c[cpu,host]"]
    assert here.to_run == ()
