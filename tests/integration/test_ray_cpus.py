"""`--executor ray` CPU cells on a cluster with fewer CPUs than `--jobs`: a real cluster
(`test_ray`'s fixture)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

# The cluster fixture and its helpers come from test_ray (imported, not re-collected).
from test_ray import SCRIPT, make_cluster  # noqa: F401

from repromatrix.model import Status
from repromatrix.store import ResultStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_more_jobs_than_the_cluster_has_cpus_runs_every_cpu_cell(
    make_cluster: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A cluster of one CPU and `--jobs 2`: each CPU slot is an actor holding a CPU for the
    run, so the second one could never start while the first lived, and the cells handed
    to its slot waited for ever, saying nothing (the run never ended). The run takes as
    many CPU slots as the cluster's live nodes have CPUs, says so, and does every cell."""
    repros = "".join(
        f"  c{i}: {{script: {SCRIPT}, gpus: [cpu], params: {{seconds: 1, tag: c{i}}}}}\n"
        for i in range(4)
    )
    repros += f"  g: {{script: {SCRIPT}, gpus: [H100], params: {{tag: g}}}}\n"
    cluster = make_cluster(repros, head_cpus=1)
    results = tmp_path / "results"
    with cluster.running("--jobs", "2", "--gpu", "cpu", results=results) as runner:
        try:
            _, err = runner.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            runner.kill()
            _, err = runner.communicate()
            pytest.fail(f"the run did not end within 120 s: {err}")
    assert runner.returncode == 0, err
    assert "Traceback" not in err
    said = "--jobs 2: the Ray cluster's live nodes have 1 CPU, so 1 CPU cell runs at a time"
    assert err.count(said) == 1, err
    got = ResultStore(results).load().results
    assert sorted(r.repro for r in got) == ["c0", "c1", "c2", "c3"]
    assert {r.status for r in got} == {Status.PASSED}
    # GPU cells alone: --jobs bounds no CPU cell, and nothing is said of the CPUs.
    cluster.add_node("a", "H100", 1)
    gpu = cluster.run("--jobs", "64", "--repro", "g", results=results)
    assert gpu.returncode == 0, gpu.stderr
    assert "CPU cell" not in gpu.stderr, gpu.stderr
