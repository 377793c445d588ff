"""`--executor ray` on a cluster whose nodes change while a run goes on: a node that joins
mid-run takes the cells still waiting, and one that dies loses none of them; and what a run
asks a node of a GPU type goes to a node that has GPUs of it. Real clusters
(`test_ray`'s fixture)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from raycluster import gated, started_on, wait_for_text

# The cluster fixture and its helpers come from test_ray (imported, not re-collected).
from test_ray import TYPES, _ray_cli, fake_gpus, make_cluster  # noqa: F401

from repromatrix.model import Status
from repromatrix.store import ResultStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_node_that_joins_mid_run_takes_waiting_cells_and_dies_losing_none(
    make_cluster: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The run counted its slots at its start: a node that joined while it went on was
    used by the next run only, and a long matrix ran on the nodes it started with. The
    joined node gets slots and cells; when it dies, its cells run on the node left, and
    every cell has one record."""
    starts, gates = tmp_path / "starts", tmp_path / "gates"
    starts.mkdir()
    gates.mkdir()
    repros = "".join(gated(f"h{i}", "H100", starts / f"h{i}", gates / f"h{i}") for i in range(6))
    cluster = make_cluster(repros)
    cluster.add_node("a", "H100", 1)
    results = tmp_path / "results"
    with cluster.running(results=results) as runner:
        # One slot: its actor runs one cell and holds the next two; three cells wait.
        first = started_on(starts, "a", runner=runner)
        cluster.add_node("b", "H100", 1)
        on_b = started_on(starts, "b", runner=runner)
        (gates / on_b).touch()  # done on b
        cut = started_on(starts, "b", runner=runner, other_than={on_b})
        cluster.kill_node("b")  # while `cut` runs there, another cell queued behind it
        for i in range(6):
            (gates / f"h{i}").touch()
        out, err = runner.communicate(timeout=180)
    assert runner.returncode == 0, err
    assert "Traceback" not in err
    said = "1 more H100 slot for the 3 cell(s) still waiting: the cluster offers more"
    assert said in out + err, out + err
    got = {r.repro: r for r in ResultStore(results).load().results}
    assert sorted(got) == [f"h{i}" for i in range(6)]  # one record each
    assert {r.status for r in got.values()} == {Status.PASSED}, got
    assert got[on_b].provenance["cuda_visible_devices"] == "GPU-b-0"
    assert got[first].provenance["cuda_visible_devices"] == "GPU-a-0"
    # Cut short by its node's death, it ran again on the node left.
    assert got[cut].provenance["cuda_visible_devices"] == "GPU-a-0"
    # On the same cluster (each new one costs CI seconds): what a run asks of a type.
    _a_node_of_the_type_says_its_python(cluster, tmp_path)


#: Holds the H100 of node `a` (another job's slot), then asks a node of H100 for the host
#: base's interpreter, as a release bisection does.
_ASK = """\
import sys

import ray

from repromatrix.executors.ray.image_pythons import image_target
from repromatrix.model import GpuType
from repromatrix.options import SessionConfig

ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
holder = ray.remote(num_cpus=0, num_gpus=1, resources={"repromatrix-gpu-H100": 1})(
    type("Holder", (), {})
).remote()
ray.get(holder.__ray_ready__.remote(), timeout=60)
h100 = GpuType(name="H100", compute_capability="9.0", smi_names=(sys.argv[2],))
found = image_target(SessionConfig(), "", h100)
print("python", found.python if found is not None else None)
"""


def _a_node_of_the_type_says_its_python(cluster: Any, tmp_path: Path) -> None:
    """The question went with a 0.001 share of the type's resource: on a node started by
    hand that offers H100 with no GPU for Ray (and another interpreter), or, with the
    H100s held by a run's slots, there alone (its answer: none, every release a
    candidate). It goes to a node that has the type's GPUs, beside what holds them."""
    joined = subprocess.run(
        [_ray_cli(), "start", f"--address={cluster.address}", "--num-cpus=1", "--num-gpus=0",
         '--resources={"repromatrix-gpu-H100": 1}', "--disable-usage-stats"],
        env=cluster.env(
            REPROMATRIX_TEST_NODE="plain",
            REPROMATRIX_FAKE_GPUS=fake_gpus("plain", "L4", 1),
            REPROMATRIX_NODE_PYTHON=str(tmp_path / "no-such-python"),
        ),
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert joined.returncode == 0, joined.stderr
    asked = subprocess.run(
        [sys.executable, "-c", _ASK, cluster.address, TYPES["H100"][0]],
        env=cluster.env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    version = ".".join(map(str, sys.version_info[:3]))
    assert asked.stdout.strip().splitlines()[-1] == f"python {version}", asked.stdout


GPUS_OF = {"h0": "H100", "l0": "L4", "a0": "A100"}


def test_a_gpu_type_no_node_offered_at_the_start_runs_once_its_node_joins(
    make_cluster: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A type no node offered when the run started was noted "not run here" at once, though
    its node joined while the run went on (GPU nodes still booting). Its cells wait while
    the run's other cells go on, and run on the node that joins; with
    REPROMATRIX_RAY_NODE_WAIT_S they wait that long once nothing else is left."""
    starts, gates = tmp_path / "starts", tmp_path / "gates"
    starts.mkdir()
    gates.mkdir()
    cluster = make_cluster(
        "".join(gated(n, gpu, starts / n, gates / n) for n, gpu in GPUS_OF.items())
    )
    cluster.add_node("a", "H100", 1)
    (gates / "l0").touch()
    (gates / "a0").touch()
    results = tmp_path / "results"
    with cluster.running("--gpu", "H100", "--gpu", "L4", results=results) as runner:
        started_on(starts, "a", runner=runner)  # h0 holds the run open
        cluster.add_node("b", "L4", 1)
        assert started_on(starts, "b", runner=runner) == "l0"
        (gates / "h0").touch()
        out, err = runner.communicate(timeout=180)
    assert runner.returncode == 0, err
    assert "Traceback" not in err
    said = (
        "1 L4 cell(s) wait for a node of type L4 to join the cluster (none offers it now) "
        "while the run's other cells go on; else they are noted 'not run here'"
    )
    assert said in out + err, out + err
    got = {r.repro: r for r in ResultStore(results).load().results}
    assert sorted(got) == ["h0", "l0"]  # no note beside l0's record
    assert got["l0"].status is Status.PASSED, got["l0"].reason
    assert got["l0"].provenance["cuda_visible_devices"] == "GPU-b-0"
    # A run of that type alone: it waits the seconds it is given, the node joins meanwhile.
    log, wait = tmp_path / "a0.log", {"REPROMATRIX_RAY_NODE_WAIT_S": "150"}
    with cluster.running("--gpu", "A100", results=results, log=log, env=wait) as alone:
        said = wait_for_text(alone, log, "wait for a node of type A100", within=120)
        assert "and 150 s after" in said
        cluster.add_node("c", "A100", 1)
        assert alone.wait(timeout=180) == 0, log.read_text()
    got = {r.repro: r for r in ResultStore(results).load().results}
    assert got["a0"].status is Status.PASSED, got["a0"].reason
    assert got["a0"].provenance["cuda_visible_devices"] == "GPU-c-0"
