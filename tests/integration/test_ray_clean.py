"""`repromatrix clean --cache NODE_CACHE` while a Ray node's cells run from it: its cells
run in Ray's worker processes, which hold no run's cache lock, so clean took the worker
program from under their workers. Real clusters (`test_ray`'s fixture)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from clihelpers import cli_argv

# The cluster fixture comes from test_ray (imported, not re-collected).
from test_ray import SCRIPT, make_cluster  # noqa: F401

from repromatrix.model import Status
from repromatrix.store import ResultStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_clean_keeps_the_worker_program_a_live_ray_node_runs(
    make_cluster: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """While a node's cell runs, `clean` of the node's cache removes what no live process
    uses and keeps workers/, saying so; the run's cells still pass."""
    start = tmp_path / "start"
    cluster = make_cluster(
        f"  h: {{script: {SCRIPT}, gpus: [H100], "
        f"params: {{seconds: 8, startfile: '{start}', tag: h}}}}\n"
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
        _, err = runner.communicate(timeout=300)
    assert clean.returncode == 0, clean.stderr
    said = clean.stdout + clean.stderr
    assert f"kept {cache / 'runs'} and {cache / 'workers'}: a live Ray node's" in said, said
    assert str(cache / "parsed") in said, said
    assert all(p.is_file() for p in programs)
    assert runner.returncode == 0, err
    (record,) = ResultStore(results).load().results
    assert record.status is Status.PASSED, record.reason
