"""`--executor ray` on nodes that differ from the driver's host: another clock, secrets
and logs of their own, resources that do not fit what the matrix asks for. Real clusters
(`test_ray`'s fixture); tests that can share one do, as each costs CI seconds."""

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


#: Prints a long log and its token, and names the token in its reason.
_LEAKY = """\
import os


def run(params):
    token = os.environ["HF_TOKEN"]
    print(("y" * 99 + "\\n") * 2000)
    print(f"using {token}", flush=True)
    return {"schema": 1, "status": "passed", "reason": f"token {token}"}
"""


def test_a_nodes_record_is_stored_as_a_local_runs_would_be(
    make_cluster: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """What a node returns is the driver's to store as a local run would:

    - dated by the driver's clock: a node whose clock ran 30 minutes ahead dated its
      records so (within the skew the store takes at its word), a `--rerun` on a node with
      a right clock made a record that seemed older, and the stale verdict went on
      standing for its cell; the node's own times stay in provenance;
    - its secrets hidden: `--cell-env HF_TOKEN=...` printed by a repro is `***` in a local
      run's record; a node, which never heard of the session's secrets, returned it in
      clear, and the driver showed it in the progress line and stored it;
    - its logs trimmed to their redacted tails once recorded: they stayed whole on the
      node (a chatty repro's hundreds of MiB per cell), with the secret.
    """
    skew = tmp_path / "skew"
    skew.mkdir()
    (skew / "sitecustomize.py").write_text(_SKEWED_CLOCK)
    secret = "hf_notARealToken0123456789"
    cluster = make_cluster(
        f"  r: {{script: {SCRIPT}, gpus: [H100], params: {{tag: r}}}}\n"
        "  leaky: {script: repros/leaky.py, gpus: [cpu]}\n",
        head_cpus=0,
    )
    (cluster.root / "repros").mkdir()
    (cluster.root / "repros" / "leaky.py").write_text(_LEAKY)
    # Its CPUs run the CPU cell; its cache is in tmp_path.
    cluster.add_node("a", "H100", 1, PYTHONPATH=str(skew), SKEW_MINUTES="30")
    results = tmp_path / "results"
    before = datetime.now(UTC)
    out = cluster.run("--cell-env", f"HF_TOKEN={secret}", results=results)
    after = datetime.now(UTC)
    assert out.returncode == 0, out.stderr
    got = {r.repro: r for r in ResultStore(results).load().results}
    assert got["r"].status is got["leaky"].status is Status.PASSED, out.stderr
    for record in got.values():
        started, finished = (datetime.fromisoformat(t) for t in (record.started, record.finished))
        assert before <= started <= finished <= after, (before, record.started, record.finished)
        ran = datetime.fromisoformat(record.provenance["harness"]["ray"]["node_finished"])
        assert ran - finished > timedelta(minutes=29)  # the node's clock was ahead
    assert secret not in out.stderr
    assert got["leaky"].reason == "token ***"
    assert "using ***" in got["leaky"].stdout_tail
    assert not [p for p in results.iterdir() if p.is_file() and secret in p.read_text()]
    (log,) = (cluster.root / "node-a" / "runs").glob(f"*/{got['leaky'].key}.*/stdout.log")
    assert 0 < log.stat().st_size <= KEEP_BYTES + 200  # its tail, from a line start
    left = [p for p in log.parent.iterdir() if p.is_file() and secret in p.read_text()]
    assert left == []


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


def test_ray_gets_a_nodes_gpus_of_one_matrix_type_alone(
    make_cluster: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Ray hands GPUs out by number, not type, and got every GPU of a node:

    - a node with an H100 and an L4: an L4 cell got the H100, stored as an error at exit
      0 and reused by the next run though it never ran. The error said to split such
      nodes with CUDA_VISIBLE_DEVICES, which `ray-node` did not read (it still offered
      both). Such a node is now refused in one line, and one started with
      CUDA_VISIBLE_DEVICES offers, and gives Ray, those GPUs alone;
    - a node with an H100 and a GPU of no matrix type (a workstation's display card): Ray
      reserved GPU 0, the other card, for the H100 cell ("Ray reserved GPU 0 (NVIDIA
      L40S) for a H100 cell"), stored so. Ray now gets the GPUs of matrix types alone.
    """
    cluster = make_cluster(f"  r: {{script: {SCRIPT}, gpus: [L4, H100], params: {{tag: r}}}}\n")

    def node(name: str, gpus: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            cli_argv("--matrix", str(cluster.matrix), "ray-node", "--address", cluster.address,
                     "--cache", str(tmp_path / f"node-{name}")),
            env=cluster.env(REPROMATRIX_FAKE_GPUS=gpus, REPROMATRIX_TEST_NODE=name, **extra),
            capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip

    two = fake_gpus("m", "H100", 1) + ";" + fake_gpus("m", "L4", 1, first=1)
    mixed = node("m", two)
    assert mixed.returncode == 64, mixed.stderr
    assert mixed.stderr.strip().splitlines()[-1] == (
        "repromatrix: error: ray-node: this node has GPUs of 2 matrix types (1 × H100, 1 × L4), "
        "and Ray hands GPUs out by number, not type: start one node per type, each with "
        "CUDA_VISIBLE_DEVICES set to its GPUs (nvidia-smi indices or UUIDs)"
    )
    split = node("m", two, CUDA_VISIBLE_DEVICES="1")
    assert split.returncode == 0, split.stderr
    assert "this node offers 1 × L4\n" in split.stderr
    display = node("d", "0, NVIDIA L40S, GPU-d-0, 8.9;" + fake_gpus("d", "H100", 1, first=1))
    assert display.returncode == 0, display.stderr
    assert "this node offers 1 × H100, 1 of no matrix type (NVIDIA L40S)" in display.stderr
    results = tmp_path / "results"
    out = cluster.run(results=results)
    assert out.returncode == 0, out.stderr
    got = {r.gpu: r for r in ResultStore(results).load().results}
    assert got["L4"].status is got["H100"].status is Status.PASSED, out.stderr
    assert got["L4"].provenance["cuda_visible_devices"] == "GPU-m-1"
    assert got["H100"].provenance["cuda_visible_devices"] == "GPU-d-1"


def test_a_library_whose_git_is_a_relative_path_is_cloned_on_the_nodes(
    make_cluster: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """`git: upstream` in matrix.yaml (a folder beside it), run from the matrix's folder:
    a local run clones it, but every node cloned `upstream` in its own working folder
    (Ray's), and each cell was an error record ("cannot clone bisectpkg from upstream:
    repository 'upstream' does not exist") at exit 0, reused by the next run. The nodes now
    clone the folder the driver's relative path names, as a --git-mirror's is taken."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from history_repo import REPRO, build, write_matrix

    cluster = make_cluster(f"  r: {{script: {SCRIPT}, gpus: [cpu]}}\n")
    history = build(
        cluster.root / "upstream", main=3, main_flags=lambda i: {"SCALE_BUG_MAIN": i >= 2}
    )
    text = write_matrix(cluster.root, history).read_text()
    (cluster.root / "repros" / "pkg_check.py").write_text(REPRO)
    cluster.matrix.write_text(text.replace(f"git: {history.path}", "git: upstream"))
    results = tmp_path / "results"
    out = cluster.run(results=results)
    assert out.returncode == 0, out.stderr
    got = {r.cell_id: r for r in ResultStore(results).load().results}
    assert sorted(r.status for r in got.values()) == [Status.PASSED, Status.REGRESSED], [
        r.reason for r in got.values()
    ]
    assert {r.executor for r in got.values()} == {"ray"}


_ECHO_VENV = "fixture-repros/env_echo_repro.py"


def test_a_relative_python_of_the_driver_is_the_one_the_nodes_run_cells_with(
    make_cluster: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """`run --executor ray --python ../venv/bin/python3`: each node looked for that path in
    its own working folder, found none, and ran the cells with its own Ray interpreter
    without a word (VIRTUAL_ENV another venv's), where the absolute path ran them with the
    venv given. A relative --python is now the driver's folder's, as locally."""
    import sys

    body = "gpus: [cpu], isolate: true, params: {var: VIRTUAL_ENV}"
    cluster = make_cluster(f"  echo: {{script: {_ECHO_VENV}, {body}}}\n")
    venv = cluster.root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    sub = cluster.root / "sub"
    sub.mkdir()
    results = tmp_path / "results"
    out = subprocess.run(
        cluster.argv("--python", "../venv/bin/python3", results=results),
        cwd=sub, env=cluster.env(), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (record,) = ResultStore(results).load().results
    assert record.reason == f"VIRTUAL_ENV={venv}", record.reason


def test_a_type_no_node_offers_is_said_at_once_and_its_node_counts_from_the_next_run(
    make_cluster: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A cell for a GPU type no live node offers: noted at once, never waited for;
    `--fail-on not_run` makes that exit 1 (by default it is no failure, as locally). Once
    a node of the type joins, the next run runs it."""
    cluster = make_cluster(f"  k: {{script: {SCRIPT}, gpus: [H100], params: {{tag: k}}}}\n")
    cluster.add_node("a", "L4", 1)
    results = tmp_path / "results"
    out = cluster.run("--fail-on", "not_run", results=results)
    assert out.returncode == 1, out.stderr
    assert "no host with this GPU in the cluster: no node offers H100" in out.stderr, out.stderr
    cluster.add_node("b", "H100", 1)
    again = cluster.run("--fail-on", "not_run", results=results)
    assert again.returncode == 0, again.stderr
    records = ResultStore(results).load().results
    assert [r.status for r in records] == [Status.NOT_RUN, Status.PASSED]
    assert records[-1].provenance["cuda_visible_devices"] == "GPU-b-0"
