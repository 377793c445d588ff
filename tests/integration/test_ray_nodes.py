"""`--executor ray` on nodes that differ from the driver's host: another clock, resources
that do not fit what the matrix asks for. Real clusters (`test_ray`'s fixture)."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

# The cluster fixture and its helpers come from test_ray (imported, not re-collected).
from clihelpers import cli_argv
from test_ray import SCRIPT, _ray_cli, fake_gpus, make_cluster  # noqa: F401

from repromatrix.logs import KEEP_BYTES
from repromatrix.model import Status
from repromatrix.store import ResultStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: A node's clock `SKEW_MINUTES` ahead, for its Python processes (Ray's workers, which
#: judge and date the node's cells): the machine's own clock is everyone's.
_SKEWED_CLOCK = """\
import datetime as _dt
import os

_SHIFT = _dt.timedelta(minutes=float(os.environ.get("SKEW_MINUTES", "0")))
_REAL = _dt.datetime


class datetime(_REAL):
    @classmethod
    def now(cls, tz=None):
        return _REAL.now(tz) + _SHIFT


_dt.datetime = datetime
"""


def test_a_record_is_dated_by_the_drivers_clock_not_its_nodes(
    make_cluster: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A node whose clock ran 30 minutes ahead dated its records so, within the skew the
    store takes at its word: a `--rerun` on a node with a right clock made a record that
    seemed older, and the stale verdict went on standing for its cell. The driver, the
    store's one writer, dates them now; the node's own time stays in provenance."""
    skew = tmp_path / "skew"
    skew.mkdir()
    (skew / "sitecustomize.py").write_text(_SKEWED_CLOCK)
    cluster = make_cluster(f"  r: {{script: {SCRIPT}, gpus: [H100], params: {{tag: r}}}}\n")
    cluster.add_node("a", "H100", 1, PYTHONPATH=str(skew), SKEW_MINUTES="30")
    results = tmp_path / "results"
    before = datetime.now(UTC)
    out = cluster.run(results=results)
    after = datetime.now(UTC)
    assert out.returncode == 0, out.stderr
    (record,) = ResultStore(results).load().results
    assert record.status is Status.PASSED, record.reason
    started, finished = (datetime.fromisoformat(t) for t in (record.started, record.finished))
    assert before <= started <= finished <= after, (before, record.started, record.finished)
    node_finished = datetime.fromisoformat(record.provenance["harness"]["ray"]["node_finished"])
    assert node_finished - finished > timedelta(minutes=29)  # the node's clock was ahead


def test_a_gpu_type_whose_nodes_have_no_gpu_for_ray_is_said_not_waited_for(
    make_cluster: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A node that offers a type's resource but no GPU for Ray to reserve with it (started
    by hand, `ray start --resources '{"repromatrix-gpu-L4": 1}'` where Ray sees no GPU):
    the cell asks for both, no node has both, and the run waited for ever, saying nothing.
    It is "not run here" at once, naming what the node lacks; the cell of a type a node
    offers with its GPUs runs."""
    cluster = make_cluster(f"  r: {{script: {SCRIPT}, gpus: [L4, H100], params: {{tag: r}}}}\n")
    joined = subprocess.run(
        [_ray_cli(), "start", f"--address={cluster.address}", "--num-cpus=1", "--num-gpus=0",
         '--resources={"repromatrix-gpu-L4": 1}', "--disable-usage-stats"],
        env=cluster.env(REPROMATRIX_TEST_NODE="plain"),
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert joined.returncode == 0, joined.stderr
    cluster.add_node("a", "H100", 1)
    results = tmp_path / "results"
    with cluster.running(results=results) as runner:
        try:
            _, err = runner.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail("the run waited for ever on a type no node can give a GPU of")
    assert runner.returncode == 0, err
    got = {r.gpu: r for r in ResultStore(results).load().results}
    assert got["H100"].status is Status.PASSED, got["H100"].reason
    assert got["L4"].status is Status.NOT_RUN
    assert got["L4"].reason.startswith("no host with this GPU in the cluster"), got["L4"].reason
    assert "1 × L4 on nodes without a GPU for Ray" in got["L4"].reason, got["L4"].reason


#: Prints a long log and its token, and names the token in its reason.
_LEAKY = """\
import os


def run(params):
    token = os.environ["HF_TOKEN"]
    print(("y" * 99 + "\\n") * 2000)
    print(f"using {token}", flush=True)
    return {"schema": 1, "status": "passed", "reason": f"token {token}"}
"""


def test_a_node_hides_the_sessions_secrets_in_its_records_as_a_local_run_does(
    make_cluster: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """`--cell-env HF_TOKEN=...` printed by a repro is `***` in a local run's record; a
    node, which never heard of the session's secrets, returned it in clear, and the
    driver showed it in the progress line and stored it. And the cell's logs on the node
    are trimmed to their tails and redacted once it is recorded, as a local run's are:
    they stayed whole (a chatty repro's hundreds of MiB per cell) with the secret."""
    secret = "hf_notARealToken0123456789"
    cluster = make_cluster("  leaky: {script: repros/leaky.py, gpus: [cpu]}\n", head_cpus=0)
    (cluster.root / "repros").mkdir()
    (cluster.root / "repros" / "leaky.py").write_text(_LEAKY)
    cluster.add_node("a", "H100", 1)  # its CPUs run the cell, its cache is in tmp_path
    results = tmp_path / "results"
    out = cluster.run("--cell-env", f"HF_TOKEN={secret}", results=results)
    assert out.returncode == 0, out.stderr
    assert secret not in out.stderr
    (record,) = ResultStore(results).load().results
    assert record.status is Status.PASSED, record.reason
    assert record.reason == "token ***"
    assert "using ***" in record.stdout_tail
    assert not [p for p in results.iterdir() if p.is_file() and secret in p.read_text()]
    (log,) = (cluster.root / "node-a" / "runs").glob("*/*/stdout.log")
    assert 0 < log.stat().st_size <= KEEP_BYTES + 200  # its tail, from a line start
    left = [p for p in log.parent.iterdir() if p.is_file() and secret in p.read_text()]
    assert left == []


def test_a_gpu_of_no_matrix_type_beside_the_nodes_h100_is_never_given_to_a_cell(
    make_cluster: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A node with an H100 and a GPU of no matrix type (a workstation's display card) gave
    Ray both: Ray reserved GPU 0, the other card, for the H100 cell, which was stored as an
    error ("Ray reserved GPU 0 (NVIDIA L40S) for a H100 cell") at exit 0 and reused by the
    next run though it never ran. Ray now gets the node's GPUs of matrix types alone."""
    cluster = make_cluster(f"  r: {{script: {SCRIPT}, gpus: [H100], params: {{tag: r}}}}\n")
    gpus = "0, NVIDIA L40S, GPU-m-0, 8.9;" + fake_gpus("m", "H100", 1, first=1)
    joined = subprocess.run(
        cli_argv("--matrix", str(cluster.matrix), "ray-node", "--address", cluster.address,
                 "--cache", str(tmp_path / "node-m")),
        env=cluster.env(REPROMATRIX_FAKE_GPUS=gpus, REPROMATRIX_TEST_NODE="m"),
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert joined.returncode == 0, joined.stderr
    assert "this node offers 1 × H100, 1 of no matrix type (NVIDIA L40S)" in joined.stderr
    results = tmp_path / "results"
    out = cluster.run(results=results)
    assert out.returncode == 0, out.stderr
    (record,) = ResultStore(results).load().results
    assert record.status is Status.PASSED, record.reason
    assert record.provenance["cuda_visible_devices"] == "GPU-m-1"


def test_a_node_with_gpus_of_two_types_is_refused_and_cuda_visible_devices_splits_it(
    make_cluster: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A node with an H100 and an L4 gave Ray both, and Ray hands GPUs out by number: an L4
    cell got the H100, stored as an error at exit 0, reused by the next run though it never
    ran. The error said to split such nodes with CUDA_VISIBLE_DEVICES, which `ray-node`
    did not read (it still offered both). Now such a node is refused in one line, and one
    started with CUDA_VISIBLE_DEVICES offers, and gives Ray, those GPUs alone."""
    cluster = make_cluster(f"  r: {{script: {SCRIPT}, gpus: [L4], params: {{tag: r}}}}\n")
    gpus = fake_gpus("m", "H100", 1) + ";" + fake_gpus("m", "L4", 1, first=1)

    def node(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            cli_argv("--matrix", str(cluster.matrix), "ray-node", "--address", cluster.address,
                     "--cache", str(tmp_path / "node-m")),
            env=cluster.env(REPROMATRIX_FAKE_GPUS=gpus, REPROMATRIX_TEST_NODE="m", **extra),
            capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip

    mixed = node()
    assert mixed.returncode == 64, mixed.stderr
    assert mixed.stderr.strip().splitlines()[-1] == (
        "repromatrix: error: ray-node: this node has GPUs of 2 matrix types (1 × H100, 1 × L4), "
        "and Ray hands GPUs out by number, not type: start one node per type, each with "
        "CUDA_VISIBLE_DEVICES set to its GPUs (nvidia-smi indices or UUIDs)"
    )
    split = node(CUDA_VISIBLE_DEVICES="1")
    assert split.returncode == 0, split.stderr
    assert "this node offers 1 × L4\n" in split.stderr
    results = tmp_path / "results"
    out = cluster.run(results=results)
    assert out.returncode == 0, out.stderr
    (record,) = ResultStore(results).load().results
    assert record.status is Status.PASSED, record.reason
    assert record.provenance["cuda_visible_devices"] == "GPU-m-1"
