"""A cell that ends (or spoils) its Docker worker container's worker, then the next cell,
against the real engine: each fault costs its own cell, whose outcome names why, and no
other; the next cell runs (in a fresh worker container where the old one cannot serve),
and no container is left behind.

The executor is driven directly, cell after cell on one slot, so the order is the test's.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from docker_fixtures import our_containers, poll

pytest_plugins = ("docker_fixtures",)
pytestmark = [pytest.mark.integration, pytest.mark.docker]

#: What each cell does, by its `mode`; "ok" needs room in /dev/shm, as a DataLoader does.
FAULTS = """\
import os, signal, time

def run(params):
    mode = params["mode"]
    print("started", flush=True)
    if mode == "exit":
        os._exit(3)
    if mode == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if mode in ("hang", "outside"):
        time.sleep(3600)
    if mode == "grow":
        KEPT.append(bytearray(160 * 2**20))
        KEPT[-1][::4096] = b"x" * len(KEPT[-1][::4096])  # touched: resident
    if mode == "fill_shm":
        with open("/dev/shm/filler", "wb") as f:
            try:
                while True:
                    f.write(b"x" * (1 << 20))
                    f.flush()
            except OSError as exc:
                return {"schema": 1, "status": "untestable", "reason": str(exc)}
    with open("/dev/shm/room", "wb") as f:
        f.write(b"x" * (1 << 20))
        f.flush()
    os.unlink("/dev/shm/room")
    return {"schema": 1, "status": "passed", "reason": "ran"}

KEPT = []
"""

MODES = ("exit", "sigkill", "hang", "outside", "grow", "fill_shm", "ok")


def _executor_and_cells(
    tmp_path: Path, docker_matrix: Callable[..., Path], timeout: int
) -> tuple[Any, dict[str, Any]]:
    from repromatrix.config import load_matrix
    from repromatrix.executors.docker import DockerExecutor
    from repromatrix.expand import expand
    from repromatrix.options import ExecutorKind, SessionConfig

    (tmp_path / "faults.py").write_text(FAULTS)
    body = f"script: {tmp_path}/faults.py, gpus: [cpu], bases: [testbase], timeout: {timeout}"
    matrix = load_matrix(docker_matrix({m: body + f", params: {{mode: {m}}}" for m in MODES}))
    cells = {c.repro: c for c in expand(matrix) if c.repro in MODES}
    config = SessionConfig(
        results=tmp_path / "results",
        cache=tmp_path / "cache",
        executor=ExecutorKind.DOCKER,
        worker_max_rss_mb=128.0,  # "grow" keeps 160 MiB
    )
    executor = DockerExecutor.connect(config, env=os.environ)
    assert isinstance(executor, DockerExecutor), executor
    return executor, cells


def _kill_when_started(docker_client: Any, name: str, stdout: Path) -> threading.Thread:
    """`docker kill` of container `name` from another thread, once the cell has started."""

    def kill() -> None:
        poll(lambda: stdout.exists() and "started" in stdout.read_text(), what="the cell")
        docker_client.containers.get(name).kill()

    killer = threading.Thread(target=kill)
    killer.start()
    return killer


@pytest.mark.parametrize("fault", [m for m in MODES if m != "ok"])
def test_a_fault_in_a_worker_container_costs_its_cell_alone(
    tmp_path: Path, docker_matrix: Callable[..., Path], docker_client: Any, fault: str
) -> None:
    from repromatrix.executors.base import ENGINE_LOST, Slot

    executor, cells = _executor_and_cells(tmp_path, docker_matrix, 8 if fault == "hang" else 60)
    run_id = f"faults-{fault}-{os.getpid()}"
    run_dir = (tmp_path / "cache" / "runs" / run_id).resolve()
    slot = Slot(name="cpu0")
    try:
        first = executor.run(cells["ok"], slot, run_dir / "c0")
        assert (first.exit_code, first.harness_error) == (0, None), first
        killer = None
        if fault == "outside":
            name = first.harness["container"]
            killer = _kill_when_started(docker_client, name, run_dir / "c1" / "stdout.log")
        faulty = executor.run(cells[fault], slot, run_dir / "c1")
        if killer is not None:
            killer.join()
        after = executor.run(cells["ok"], slot, run_dir / "c2")
    finally:
        executor.close()
    worker = faulty.harness["worker"]
    assert worker["container"] == first.harness["container"]
    assert worker["cell"] == 2
    # Only a `docker kill` from outside is no verdict (the run stops, exit 5).
    assert (ENGINE_LOST in faulty.harness) is (fault == "outside"), faulty.harness
    expected = {
        "exit": (3, False, "crashed"),
        "sigkill": (137, False, "crashed"),  # the cell's own kill: a verdict, unlike docker's
        "hang": (None, True, "timed out"),
        "outside": (137, False, "crashed"),
        "grow": (0, False, "holds"),
        "fill_shm": (125, False, None),  # untestable: /dev/shm full; emptied after it
    }[fault]
    got = (faulty.exit_code, faulty.timed_out, worker["retired"])
    assert got[:2] == expected[:2], faulty
    assert (got[2] or "").startswith(expected[2] or ""), worker
    if fault == "outside":
        assert "killed from outside" in str(faulty.harness[ENGINE_LOST])
    assert (after.exit_code, after.harness_error, after.timed_out) == (0, None, False), after
    # A fresh worker container after a worker that cannot serve; the same one otherwise.
    fresh = after.harness["container"] != first.harness["container"]
    assert fresh is (fault != "fill_shm"), (first.harness, after.harness)
    assert after.harness["worker"]["cell"] == (1 if fresh else 3)
    deadline = time.monotonic() + 60  # the engine may finish a removal after answering
    while our_containers(docker_client, **{"run-id": run_id}):
        assert time.monotonic() < deadline, "a worker container was left behind"
        time.sleep(0.5)
