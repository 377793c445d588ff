"""`repromatrix clean --cache NODE_CACHE` while a Ray node's cells run from it: its cells
run in Ray's worker processes, which hold no run's cache lock, so clean took the worker
program from under their workers. Real clusters (`test_ray`'s fixture)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from clihelpers import cli_argv, pids_alive

# The cluster fixture comes from test_ray (imported, not re-collected).
from test_ray import SCRIPT, _started, _worker_folders_into, make_cluster  # noqa: F401

from repromatrix.model import Status
from repromatrix.store import ResultStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_clean_keeps_the_worker_program_a_live_ray_node_runs(
    make_cluster: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """While a node's cell runs, `clean` of the node's cache removes what no live process
    uses and keeps workers/, saying so; the run's cells still pass."""
    start, gate = tmp_path / "start", tmp_path / "gate"
    cluster = make_cluster(  # running until `clean` is done, then the gate opens
        f"  h: {{script: {SCRIPT}, gpus: [H100], "
        f"params: {{seconds: 120, gate: '{gate}', startfile: '{start}', tag: h}}}}\n"
    )
    cache = tmp_path / "node-cache"
    cluster.add_node("a", "H100", 1, cache=cache)
    results = tmp_path / "results"
    with cluster.running(results=results) as runner:
        deadline = time.monotonic() + 120
        while not (start.exists() and start.read_text().strip()):
            assert runner.poll() is None, runner.communicate()[1][-600:]
            assert time.monotonic() < deadline, "the cell did not start"
            time.sleep(0.1)
        programs = list((cache / "workers").glob("program-*/worker_main.py"))
        assert programs, list(cache.rglob("*"))
        (cache / "parsed").mkdir(exist_ok=True)  # what no live process uses goes
        clean = subprocess.run(
            cli_argv("clean", "--cache", str(cache)),
            env=cluster.env(), capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert runner.poll() is None  # the cell still ran while `clean` looked
        gate.touch()
        _, err = runner.communicate(timeout=300)
    assert clean.returncode == 0, clean.stderr
    said = clean.stdout + clean.stderr
    assert f"kept {cache / 'runs'} and {cache / 'workers'}: a live Ray node's" in said, said
    assert str(cache / "parsed") in said, said
    assert all(p.is_file() for p in programs)
    assert runner.returncode == 0, err
    (record,) = ResultStore(results).load().results
    assert record.status is Status.PASSED, record.reason


def test_a_driver_killed_outright_leaves_nothing_running_and_the_rerun_finishes(
    make_cluster: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """`kill -9` of `run --executor ray` (no handler runs): Ray ends the job's actors, and
    with them the repros running on the node and their workers' socket folders; the rerun
    records every cell once, and `clean` of the node's cache takes what the dead run left."""
    starts, gate = tmp_path / "starts", tmp_path / "gate"
    starts.mkdir()
    # k0 and k1 run until the driver is killed; the gate opens before the rerun, which
    # paid their 20 s sleep again.
    wait = f"seconds: 120, gate: '{gate}'"
    cluster = make_cluster(
        "".join(
            f"  k{i}: {{script: {SCRIPT}, gpus: [H100], "
            f"params: {{{wait if i < 2 else 'seconds: 0'}, startfile: '{starts / f'k{i}'}', "
            f"tag: k{i}}}}}\n"
            for i in range(4)
        ),
        head_cpus=0,
    )
    cache = tmp_path / "node-cache"
    cluster.add_node("a", "H100", 2, cache=cache)
    results = tmp_path / "results"
    with cluster.running(results=results) as runner:
        pids = [int(p.read_text()) for p in _started(starts, 2)]
        runner.kill()
        runner.communicate(timeout=60)
    deadline = time.monotonic() + 60
    while pids_alive(pids) or _worker_folders_into(tmp_path):
        left = (pids_alive(pids), _worker_folders_into(tmp_path))
        assert time.monotonic() < deadline, f"repro processes, worker folders left: {left}"
        time.sleep(0.2)
    assert list((cache / "runs").iterdir())  # the dead run's cell folders
    clean = subprocess.run(
        cli_argv("clean", "--cache", str(cache)),
        env=cluster.env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert clean.returncode == 0, clean.stderr
    assert not (cache / "runs").exists() or not list((cache / "runs").iterdir())
    gate.touch()
    again = cluster.run(results=results)
    assert again.returncode == 0, again.stderr
    got = [r.repro for r in ResultStore(results).load().results]
    assert sorted(got) == ["k0", "k1", "k2", "k3"], got
    assert _worker_folders_into(tmp_path) == []
