"""`--executor ray` on a node whose cache's disk fills during a cell: a real cluster
(`test_ray`'s fixture) with a node's cache on a small tmpfs."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clihelpers import pids_alive

# The cluster fixture and its helpers come from test_ray (imported, not re-collected).
from test_ray import SCRIPT, make_cluster  # noqa: F401

from repromatrix.logs import KEEP_BYTES
from repromatrix.model import Status
from repromatrix.store import ResultStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs, unmounted on the way out."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("the disk-full tests mount a tmpfs and need root in CI")
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_cell_that_fills_a_nodes_cache_with_its_output_leaves_room_for_the_next_run(
    make_cluster: Any,  # noqa: F811
    small_disk: Path,
    tmp_path: Path,
) -> None:
    """A repro printing 8 MiB on a node whose cache has 2 MiB: the run stopped with exit 8
    as it should, but the cell's stdout.log stayed whole on the node, so its disk stayed
    full and every later run of any cell there stopped the same way (a local run cuts the
    stopped cell's logs to their tails and says so). The node cuts them too, the line
    says how much they held and where, and the next run of another cell passes."""
    cluster = make_cluster(
        f"  flood: {{script: {SCRIPT}, gpus: [H100], params: {{mode: flood, mb: 8}}}}\n"
        f"  quiet: {{script: {SCRIPT}, gpus: [H100], params: {{tag: q}}}}\n",
        head_cpus=0,
    )
    cache = small_disk / "cache"
    cluster.add_node("f", "H100", 1, cache=cache)
    results = tmp_path / "results"
    out = cluster.run("--repro", "flood", results=results)
    assert out.returncode == 8, out.stderr
    assert "Traceback" not in out.stderr
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith("repromatrix: error: flood[H100,host] could not run: No space"), line
    (log,) = (cache / "runs").glob("*/*/stdout.log")
    assert log.stat().st_size <= KEEP_BYTES + 200  # its tail, and a line saying so
    assert f"are cut to their last 64 KiB in {log.parent} " in line, line
    assert "needs a `ray-node --cache` with more room" in line, line
    assert ResultStore(results).load().results == ()
    again = cluster.run("--repro", "quiet", results=results)
    assert again.returncode == 0, again.stderr
    (record,) = ResultStore(results).load().results
    assert record.status is Status.PASSED, record.reason


def test_a_run_stopped_by_a_nodes_full_disk_ends_the_cells_still_running(
    make_cluster: Any,  # noqa: F811
    small_disk: Path,
    tmp_path: Path,
) -> None:
    """A node's full cache stops the run (exit 8), but the run went on waiting for every
    cell still running on the other nodes, up to its timeout, and then threw its result
    away (a stopped run stores nothing more): a long GPU cell kept the user waiting for
    nothing. The cells still running are ended with the run, as Ctrl-C ends them."""
    start = tmp_path / "start"
    cluster = make_cluster(
        f"  flood: {{script: {SCRIPT}, gpus: [H100], "
        f"params: {{mode: flood, mb: 8, seconds: 3}}}}\n"
        f"  long: {{script: {SCRIPT}, gpus: [L4], "
        f"params: {{seconds: 300, startfile: '{start}'}}}}\n",
        head_cpus=0,
    )
    cluster.add_node("f", "H100", 1, cache=small_disk / "cache")
    cluster.add_node("g", "L4", 1)
    results = tmp_path / "results"
    with cluster.running(results=results) as runner:
        try:
            _, err = runner.communicate(timeout=100)
        except subprocess.TimeoutExpired:
            runner.kill()
            _, err = runner.communicate()
            pytest.fail(f"the stopped run waited on for its other cells: {err}")
    assert runner.returncode == 8, err
    assert "Traceback" not in err
    assert "flood[H100,host] could not run: No space" in err.strip().splitlines()[-1], err
    pid = int(start.read_text())
    deadline = time.monotonic() + 30
    while pids_alive([pid]):
        assert time.monotonic() < deadline, "the long cell runs on after its run stopped"
        time.sleep(0.2)
    assert ResultStore(results).load().results == ()
