"""`--executor ray` on a real local Ray cluster: a head and nodes started with
`repromatrix ray-node`, each advertising a fake GPU type with fake device ids.

Every cell must run on a node of its GPU type, a type no node offers must be recorded
once the run's other cells are done (`test_ray_joins`: when its node joins), the records
must equal a local run's, and losing a node mid-run must lose no finished result: the
interrupted cell completes on another node of its type, or is recorded as an
infrastructure error when none is left.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from clihelpers import cli_argv, fixture_copy, pids_alive
from raycluster import GATED_SCRIPT, node_of

from repromatrix import proctable
from repromatrix.locks import CACHE_LOCK
from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.store import ResultStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TYPES = {
    "H100": ("NVIDIA H100 80GB HBM3", "9.0"),
    "L4": ("NVIDIA L4", "8.9"),
    "A100": ("NVIDIA A100-SXM4-80GB", "8.0"),
    "B200": ("NVIDIA B200", "10.0"),  # no node offers it
}
MATRIX_HEAD = "schema: 1\ndefaults: {timeout: 120}\ngpus:\n" + "".join(
    f'  {t}: {{compute_capability: "{cc}", smi_names: ["{smi}"]}}\n'
    for t, (smi, cc) in TYPES.items()
)
#: The fixture repro, relative to the matrix (`raycluster.gated` runs it too).
SCRIPT = GATED_SCRIPT


def _ray_cli() -> str:
    beside = Path(sys.executable).parent / "ray"
    if beside.is_file():
        return str(beside)
    found = shutil.which("ray")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("Ray is not installed: CI installs the ray extra (nox -s tests)")
        pytest.skip("Ray is not installed (pip install 'ray>=2.9')")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fake_gpus(node: str, gpu_type: str, count: int, first: int = 0) -> str:
    """`count` GPUs of one type as nvidia-smi lists them, indices from `first` (one host's
    indices are distinct: its worker slots are named by them)."""
    smi, cc = TYPES[gpu_type]
    return ";".join(f"{i}, {smi}, GPU-{node}-{i}, {cc}" for i in range(first, first + count))


@dataclass
class Cluster:
    address: str
    token: str
    root: Path
    matrix: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        env.update({"REPROMATRIX_TEST_RAY": self.token, **extra})
        if "REPROMATRIX_TEST_NODE" in extra:  # this cluster's node, no other test's "a"
            env["REPROMATRIX_TEST_NODE_ID"] = f"{self.token}:{extra['REPROMATRIX_TEST_NODE']}"
        # Notice a lost node in about a second, not Ray's default half minute.
        env.update({"RAY_health_check_period_ms": "500", "RAY_health_check_failure_threshold": "3"})
        return env

    def add_node(
        self,
        name: str,
        gpu_type: str,
        count: int,
        cache: Path | None = None,
        python: str = "",
        **extra: str,
    ) -> None:
        out = subprocess.run(
            cli_argv("--matrix", str(self.matrix), "ray-node", "--address", self.address,
                     "--cache", str(cache or self.root / f"node-{name}"),
                     *(("--python", python) if python else ())),
            env=self.env(
                REPROMATRIX_FAKE_GPUS=fake_gpus(name, gpu_type, count),
                REPROMATRIX_TEST_NODE=name,
                **extra,
            ),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert f"this node offers {count} × {gpu_type}" in out.stderr

    def kill_node(self, name: str) -> None:
        """What a crashed machine does: every process of the node dies at once."""
        assert proctable.sweep("REPROMATRIX_TEST_NODE_ID", f"{self.token}:{name}") > 0

    def run(self, *args: str, results: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args, results=results),
            cwd=self.root,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    @contextmanager
    def running(
        self,
        *args: str,
        results: Path,
        env: Mapping[str, str] | None = None,
        log: Path | None = None,
    ) -> Iterator[subprocess.Popen[str]]:
        """A run in the background (killed on the way out if the test left it running),
        with `env`'s variables beside the cluster's; its stdout and stderr go to pipes, or
        both into `log`, which the test reads while it runs (`raycluster.wait_for_text`)."""
        with contextlib.ExitStack() as stack:
            sink = stack.enter_context(log.open("w")) if log is not None else None
            runner = subprocess.Popen(
                self.argv(*args, results=results), cwd=self.root,
                env={**self.env(), **(env or {})}, text=True,
                stdout=subprocess.PIPE if sink is None else sink,
                stderr=subprocess.PIPE if sink is None else subprocess.STDOUT,
            )  # fmt: skip
            try:
                yield runner
            finally:
                if runner.poll() is None:
                    runner.kill()
                    runner.communicate()

    def argv(self, *args: str, results: Path) -> list[str]:
        # The cluster's address unless the test gives its own: `run` refuses a flag twice.
        address = () if "--ray-address" in args else ("--ray-address", self.address)
        return cli_argv("--matrix", str(self.matrix), "run", "--executor", "ray", *address,
                        "--no-progress", "--results", str(results), *args)  # fmt: skip


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[object]:
    started: list[Cluster] = []

    def make(repros: str, name: str = "c", head_cpus: int = 2) -> Cluster:
        root = tmp_path / name
        root.mkdir()
        fixture_copy(root)
        matrix = root / "m.yaml"
        matrix.write_text(MATRIX_HEAD + "repros:\n" + repros)
        cluster = Cluster(
            address=f"127.0.0.1:{_free_port()}",
            token=secrets.token_hex(6),
            root=root,
            matrix=matrix,
        )
        started.append(cluster)
        port = cluster.address.rsplit(":", 1)[1]
        head = subprocess.run(
            [_ray_cli(), "start", "--head", f"--port={port}", f"--num-cpus={head_cpus}",
             "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats"],
            env=cluster.env(REPROMATRIX_TEST_NODE=f"{name}-head"),
            capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
        assert head.returncode == 0, head.stderr
        return cluster

    yield make
    for cluster in started:
        proctable.sweep("REPROMATRIX_TEST_RAY", cluster.token)


def _records(results: Path) -> dict[str, Result]:
    return {r.cell_id: r for r in ResultStore(results).load().results}


def test_cells_run_on_nodes_of_their_type_and_match_a_local_run(
    make_cluster: object, tmp_path: Path
) -> None:
    cluster = make_cluster(  # type: ignore[operator]
        f"  probe: {{script: {SCRIPT}, gpus: [cpu, H100, L4, A100, B200], params: {{tag: p}}}}\n"
        f"  other: {{script: {SCRIPT}, gpus: [H100, L4], params: {{tag: o}}}}\n"
    )
    cluster.add_node("a", "H100", 2)
    cluster.add_node("b", "L4", 1)
    cluster.add_node("c", "A100", 2)
    out = cluster.run("--jobs", "2", results=tmp_path / "ray-results")
    assert out.returncode == 0, out.stderr
    got = _records(tmp_path / "ray-results")
    node_of_type = {"H100": "a", "L4": "b", "A100": "c"}
    ran = {cid: r for cid, r in got.items() if r.status is not Status.NOT_RUN}
    assert sorted(ran) == sorted(
        ["probe[cpu,host]", "probe[H100,host]", "probe[L4,host]", "probe[A100,host]",
         "other[H100,host]", "other[L4,host]"]
    )  # fmt: skip
    for cid, r in ran.items():
        assert r.status is Status.PASSED, (cid, r.reason)
        assert r.executor == "ray"
        assert r.provenance["harness"]["ray"]["node"]  # which node ran it
        if r.gpu == "cpu":
            assert r.provenance["cuda_visible_devices"] == ""
            continue
        # The GPU Ray reserved is the device the repro saw: a fake GPU of its node.
        seen = r.provenance["cuda_visible_devices"]
        assert seen.startswith(f"GPU-{node_of_type[r.gpu]}-"), (cid, seen)
        assert r.provenance["harness"]["gpu"]["uuid"] == seen
        assert r.provenance["harness"]["gpu"]["name"] == TYPES[r.gpu][0]
    missing = got["probe[B200,host]"]
    assert missing.status is Status.NOT_RUN
    assert missing.reason.startswith("no host with this GPU in the cluster")
    # The same matrix run locally, on a host that has every GPU the nodes have.
    local = subprocess.run(
        cli_argv("--matrix", str(cluster.matrix), "run", "--no-progress", "--jobs", "2",
                 "--results", str(tmp_path / "local-results")),
        cwd=cluster.root,
        env={**os.environ, "REPROMATRIX_FAKE_GPUS": ";".join(
            [fake_gpus("a", "H100", 2), fake_gpus("b", "L4", 1, 2), fake_gpus("c", "A100", 2, 3)])},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert local.returncode == 0, local.stderr
    there = _records(tmp_path / "local-results")
    for cid, r in ran.items():
        mine = (there[cid].status, there[cid].metrics)
        assert mine == (r.status, r.metrics), (cid, there[cid].reason)
    # A resumed run on the cluster reuses what the cluster made.
    again = cluster.run("--jobs", "2", results=tmp_path / "ray-results")
    assert again.returncode == 0, again.stderr
    assert "6 reused" in again.stderr


def test_losing_nodes_loses_no_result(make_cluster: object, tmp_path: Path) -> None:
    starts, gate = tmp_path / "starts", tmp_path / "gate"
    starts.mkdir()

    def cell(name: str, gpu: str) -> str:
        # Running until the nodes are killed: the gate opens then, not after 12 s twice.
        params = f"{{seconds: 120, gate: '{gate}', startfile: '{starts / name}', tag: {name}}}"
        return f"  {name}: {{script: {SCRIPT}, gpus: [{gpu}], params: {params}}}\n"

    cluster = make_cluster(cell("h1", "H100") + cell("h2", "H100") + cell("l1", "L4"))  # type: ignore[operator]
    cluster.add_node("a", "H100", 1)
    cluster.add_node("d", "H100", 1)
    cluster.add_node("b", "L4", 1)
    results = tmp_path / "results"
    with cluster.running(results=results) as runner:
        started = _started(starts, 3)
        on_a = [p.name for p in started if node_of(int(p.read_text())) == "a"]
        assert len(on_a) == 1
        cluster.kill_node("a")  # an H100 node: its cell must finish on the other one
        cluster.kill_node("b")  # the only L4 node: its cell cannot finish anywhere
        gate.touch()
        out, err = runner.communicate(timeout=300)
    # A cell cut short by a crashed node is no cell done: the run ended with exit 0 and
    # read as green in CI, though its only L4 node crashed under it.
    assert runner.returncode == 5, err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line == (
        "repromatrix: error: 1 cell(s) lost with their Ray nodes and no other node offers "
        "L4 (l1[L4,host]); they are noted 'not run here', earlier results are kept, and the "
        "next run does them"
    ), line
    # Ray's own words on the lost nodes (its raylet's log, in colour) went to stdout.
    assert out == ""
    got = {r.repro: r for r in ResultStore(results).load().results}
    assert sorted(got) == ["h1", "h2", "l1"]  # one record each: none lost, none doubled
    assert got["h1"].status is got["h2"].status is Status.PASSED
    moved = got[on_a[0]]
    assert moved.provenance["cuda_visible_devices"].startswith("GPU-d-")  # finished on d
    # Not a verdict: an error record hid the cell's earlier one and the next run reused
    # it; a "not run" note hides nothing, and the next run does the cell.
    assert got["l1"].status is Status.NOT_RUN, got["l1"].reason
    assert got["l1"].reason.startswith("no host with this GPU in the cluster any more")


def _started(starts: Path, cells: int) -> list[Path]:
    """The start files once `cells` cells have written theirs (each its pid)."""
    deadline = time.monotonic() + 120
    while True:
        found = list(starts.iterdir())
        if len(found) >= cells and all(p.read_text().strip() for p in found):
            return found
        assert time.monotonic() < deadline, f"{cells} cells did not start"
        time.sleep(0.1)


def test_ray_node_needs_an_address_or_head(tmp_path: Path) -> None:
    fixture_copy(tmp_path)
    matrix = tmp_path / "m.yaml"
    matrix.write_text(MATRIX_HEAD + f"repros:\n  p: {{script: {SCRIPT}, gpus: [cpu]}}\n")
    out = subprocess.run(
        cli_argv("--matrix", str(matrix), "ray-node"), capture_output=True, text=True, check=False
    )
    assert out.returncode == 64
    assert out.stderr.strip() == (
        "repromatrix: error: ray-node: give --address HEAD to join a cluster, or --head"
    )


def test_a_node_joins_again_on_the_cache_a_node_filled(
    make_cluster: object, tmp_path: Path
) -> None:
    """`ray-node` refuses a --cache holding envs/ or git/ that is no repromatrix cache, as
    `run` does; a node's own cache, filled from Ray's workers where no run leaves the lock
    file, must not read as a stranger's when the node starts again."""
    cluster = make_cluster(f"  r: {{script: {SCRIPT}, gpus: [cpu]}}\n")  # type: ignore[operator]
    cache = tmp_path / "node-cache"
    cluster.add_node("a", "H100", 1, cache=cache)
    assert (cache / CACHE_LOCK).is_file()
    (cache / "envs" / "env-1").mkdir(parents=True)
    (cache / "git" / "lib.git").mkdir(parents=True)
    cluster.add_node("b", "L4", 1, cache=cache)  # exit 0, or add_node says why


def test_bisect_uses_every_slot_of_its_type_in_the_cluster(
    make_cluster: object, tmp_path: Path
) -> None:
    """K is the cluster's: two H100 nodes of two GPUs each give four points a round though
    this machine has no GPU, and the answer is git's."""
    from history_repo import REPRO, build, write_matrix

    history = build(
        tmp_path / "upstream", main=40, main_flags=lambda i: {"SCALE_BUG_MAIN": i >= 23}
    )
    local = write_matrix(tmp_path / "m", history).read_text()
    # The same library and repro, on the cluster's fake H100s.
    libraries = local.split("libraries:\n", 1)[1].split("repros:\n", 1)[0]
    repros = local.split("repros:\n", 1)[1].replace("gpus: [cpu]", "gpus: [H100]")
    cluster = make_cluster(repros)  # type: ignore[operator]
    (cluster.root / "repros").mkdir()
    (cluster.root / "repros" / "pkg_check.py").write_text(REPRO)
    text = cluster.matrix.read_text().replace("repros:\n", "libraries:\n" + libraries + "repros:\n")
    cluster.matrix.write_text(text)
    cluster.add_node("a", "H100", 2)
    cluster.add_node("b", "H100", 2)
    out = subprocess.run(
        cli_argv("--matrix", str(cluster.matrix), "bisect", "pkg_check", "--library=bisectpkg",
                 "--good=good", "--bad=bad", "--gpu=H100", "--jobs=4", "--executor=ray",
                 "--ray-address", cluster.address, "--no-progress",
                 "--cache", str(tmp_path / "cache"), "--results", str(tmp_path / "results")),
        cwd=cluster.root, env=cluster.env(), capture_output=True, text=True, timeout=600,
        check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "4 point(s) per round" in out.stdout, out.stdout
    assert f"first bad commit: {history.sha('m23')}" in out.stdout, out.stdout
    ran = [r for r in ResultStore(tmp_path / "results").load().results if r.status.is_final]
    assert {r.executor for r in ran} == {"ray"}
    nodes = {r.provenance["harness"]["gpu"]["uuid"].split("-")[1] for r in ran}
    assert nodes == {"a", "b"}  # both nodes took points


def test_cpu_cells_submitted_early_never_outnumber_jobs(
    make_cluster: object, tmp_path: Path
) -> None:
    """Each slot is one actor that runs its cells in turn: a slot keeps its next cells
    submitted, and still no more than `--jobs` CPU cells run at once though the cluster
    has more CPUs."""
    repros = "".join(
        f"  c{i}: {{script: {SCRIPT}, gpus: [cpu], params: {{seconds: 0.5, tag: c{i}}}}}\n"
        for i in range(8)
    )
    cluster = make_cluster(repros)  # type: ignore[operator]
    cluster.add_node("a", "H100", 1)  # two more CPUs: four in the cluster
    out = cluster.run("--jobs", "2", results=tmp_path / "results")
    assert out.returncode == 0, out.stderr
    got = list(ResultStore(tmp_path / "results").load().results)
    assert len(got) == 8
    assert all(r.status is Status.PASSED for r in got), [r.reason for r in got]
    actors = [r.provenance["harness"]["ray"].get("slot_actor") for r in got]
    assert None not in actors  # every cell ran in its slot's actor
    assert len(set(actors)) == 2
    # The node's own times: the record's are the driver's, when each came back.
    times = [r.provenance["harness"]["ray"] for r in got]
    spans = [
        (datetime.fromisoformat(t["node_started"]), datetime.fromisoformat(t["node_finished"]))
        for t in times
    ]
    most = max(sum(1 for s, f in spans if s <= start < f) for start, _ in spans)
    assert most <= 2, spans


def _long_cpu_cells(tmp_path: Path, name: str) -> tuple[Path, str]:
    """Two 600 s CPU cells that mark their start in a folder: (that folder, the repros)."""
    starts = tmp_path / "starts"
    starts.mkdir()
    repros = "".join(
        f"  {name}{i}: {{script: {SCRIPT}, gpus: [cpu], "
        f"params: {{seconds: 600, startfile: '{starts / f'{name}{i}'}', tag: {name}{i}}}}}\n"
        for i in range(2)
    )
    return starts, repros


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_ends_the_runs_actors_and_their_cells(
    make_cluster: object, tmp_path: Path, sig: signal.Signals
) -> None:
    """Ctrl-C (or SIGTERM: a cancelled CI job) on a Ray run: exit 130 within seconds, no
    record for a cell cut short, and the repros that were running on the node are gone
    (their slots' actors ended), with their workers' socket folders (one each was left in
    /tmp). SIGTERM got Ray's own handler: a stack dump, exit 15."""
    starts, repros = _long_cpu_cells(tmp_path, "h")
    cluster = make_cluster(repros, head_cpus=0)  # type: ignore[operator]
    cluster.add_node("a", "H100", 1)  # two CPUs: both cells, their caches in tmp_path
    results = tmp_path / "results"
    with cluster.running("--jobs", "2", results=results) as runner:
        pids = [int(p.read_text()) for p in _started(starts, 2)]
        assert sorted(pids_alive(pids)) == sorted(pids)
        runner.send_signal(sig)
        _, err = runner.communicate(timeout=60)
    assert runner.returncode == 130, err
    assert "interrupted; finished cells are kept" in err
    assert "Traceback" not in err
    recorded = list(ResultStore(results).load().results) if results.exists() else []
    assert recorded == []  # half a cell is not a result
    deadline = time.monotonic() + 30
    while pids_alive(pids) or _worker_folders_into(tmp_path):
        left = (pids_alive(pids), _worker_folders_into(tmp_path))
        assert time.monotonic() < deadline, f"repro processes, worker folders left: {left}"
        time.sleep(0.2)


def test_a_cluster_that_stops_leaves_no_false_error(make_cluster: object, tmp_path: Path) -> None:
    """`ray stop` under a run: its cells were recorded as errors ("lost after 2 retries",
    none made) at exit 0, and a resumed run reused them."""
    starts, repros = _long_cpu_cells(tmp_path, "s")
    cluster = make_cluster(repros)  # type: ignore[operator]
    results = tmp_path / "results"
    with cluster.running("--jobs", "2", results=results) as runner:
        _started(starts, 2)
        # The head killed (not `ray stop --force`, which stops every Ray on the machine).
        cluster.kill_node("c-head")
        _, err = runner.communicate(timeout=180)
    assert runner.returncode == 5, err
    assert "stopped answering" in err  # the watch on the head, or the raylet lost
    recorded = list(ResultStore(results).load().results) if results.exists() else []
    assert [r for r in recorded if r.status is Status.ERROR] == []


def test_an_address_where_something_else_listens_ends_in_one_line(tmp_path: Path) -> None:
    """A web server at --ray-address: ray.init waited for ever, printing its retries."""
    import http.server
    import threading

    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        fixture_copy(tmp_path)
        matrix = tmp_path / "m.yaml"
        matrix.write_text(f"{MATRIX_HEAD}repros:\n  r: {{script: {SCRIPT}, gpus: [cpu]}}\n")
        address = f"127.0.0.1:{server.server_address[1]}"
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        started = time.monotonic()
        out = subprocess.run(
            cli_argv("--matrix", str(matrix), "run", "--executor", "ray", "--ray-address",
                     address, "--no-progress", "--results", str(tmp_path / "r")),
            cwd=tmp_path, env={**env, "REPROMATRIX_RAY_CONNECT_S": "8"},
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert out.returncode == 5, out.stderr[-2000:]
    # One line: Ray's own warnings of each try ("rpc_client.h:153: Failed to connect to
    # GCS at address ... within 5 seconds", eight of them in 120 s) came before it.
    assert out.stderr.splitlines() == [
        f"repromatrix: error: --ray-address {address}: no Ray cluster answered within 8 s "
        "(is something else listening there?); check the address"
    ]
    assert time.monotonic() - started < 60


def test_a_branch_pin_that_moved_is_run_again_on_the_cluster(
    make_cluster: object, tmp_path: Path
) -> None:
    """`{git: main}` on the cluster kept its record after main moved (the local executor
    ran the new commit): the record stood for the cluster and the variables alone."""
    lib = tmp_path / "lib"
    (lib / "movelib").mkdir(parents=True)

    def commit(value: int) -> None:
        (lib / "movelib" / "__init__.py").write_text(f"VALUE = {value}\n")
        git = ["git", "-C", str(lib), "-c", "user.name=t", "-c", "user.email=t@t"]
        subprocess.run([*git, "add", "-A"], check=True, capture_output=True)
        subprocess.run([*git, "commit", "-qm", f"v{value}"], check=True, capture_output=True)

    subprocess.run(["git", "init", "-q", "-b", "main", str(lib)], check=True)
    commit(1)
    cluster = make_cluster(
        "  moved: {script: repros/moved.py, gpus: [cpu], "  # type: ignore[operator]
        "libraries: {movelib: all}}\n"
    )
    (cluster.root / "repros").mkdir()
    (cluster.root / "repros" / "moved.py").write_text(
        "import movelib\n\n"
        "def run(params):\n"
        "    ok = movelib.VALUE == 1\n"
        "    return {'schema': 1, 'status': 'passed' if ok else 'regressed', "
        "'reason': f'VALUE={movelib.VALUE}'}\n"
    )
    text = cluster.matrix.read_text().replace(
        "repros:\n",
        f'libraries:\n  movelib: {{git: "{lib}", import: movelib, install: pythonpath, '
        "versions: [{git: main}]}\nrepros:\n",
    )
    cluster.matrix.write_text(text)
    first = cluster.run("--jobs", "1", results=tmp_path / "results")
    assert first.returncode == 0, first.stderr
    commit(2)
    second = cluster.run("--jobs", "1", results=tmp_path / "results")
    assert second.returncode == 0, second.stderr
    assert "1 reused" not in second.stderr
    reasons = sorted(r.reason for r in ResultStore(tmp_path / "results").load().results)
    assert reasons == ["VALUE=1", "VALUE=2"]
    third = cluster.run("--jobs", "1", results=tmp_path / "results")  # main stayed
    assert third.returncode == 0, third.stderr
    assert "1 reused" in third.stderr


def test_cpu_cells_end_when_the_last_node_with_a_cpu_is_lost(
    make_cluster: object, tmp_path: Path
) -> None:
    """A head without CPUs and one node with them: when that node died, the CPU cells
    waited for a CPU for ever, silently (a lost GPU type ended its cells)."""
    starts, repros = _long_cpu_cells(tmp_path, "s")
    cluster = make_cluster(repros, head_cpus=0)  # type: ignore[operator]
    cluster.add_node("c", "H100", 1)  # its CPUs are the cluster's only ones
    results = tmp_path / "results"
    with cluster.running("--jobs", "2", results=results) as runner:
        _started(starts, 1)
        cluster.kill_node("c")
        _, err = runner.communicate(timeout=240)
    got = ResultStore(results).load().results
    assert got, err
    assert all(r.status is Status.NOT_RUN for r in got), [(r.repro, r.reason) for r in got]
    assert any("no CPU in the cluster any more" in r.reason for r in got), err
    assert runner.returncode == 5, err
    assert "and no other node offers a CPU (s" in err.strip().splitlines()[-1], err


def test_a_node_without_a_docker_engine_stops_the_run_and_records_nothing(
    make_cluster: object, tmp_path: Path
) -> None:
    """An image cell on a node whose engine is unreachable was stored as an `error` at
    exit 0, and the next run reused it; a local run says so in one line, exit 5, and
    records nothing (the next run does the cell)."""
    cluster = make_cluster(  # type: ignore[operator]
        f"  img: {{script: {SCRIPT}, gpus: [cpu], bases: [testbase], params: {{tag: i}}}}\n",
        head_cpus=0,
    )
    text = cluster.matrix.read_text().replace(
        "repros:\n", 'images:\n  testbase: {ref: "repromatrix-test-base:bookworm"}\nrepros:\n'
    )
    cluster.matrix.write_text(text)
    nowhere = f"unix://{tmp_path / 'no-engine.sock'}"
    cluster.add_node("e", "H100", 1, DOCKER_HOST=nowhere)
    results = tmp_path / "results"
    out = cluster.run("--jobs", "1", results=results)
    assert out.returncode == 5, out.stderr
    assert "Traceback" not in out.stderr
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith("repromatrix: error: img[cpu,testbase] could not run: on Ray node")
    assert f"cannot reach the Docker engine at {nowhere}" in line
    recorded = list(ResultStore(results).load().results) if results.exists() else []
    assert recorded == []


def test_a_node_whose_cache_disk_is_full_stops_the_run_and_records_nothing(
    make_cluster: object, tmp_path: Path
) -> None:
    """A node whose cache's disk was full stored its cells as `error` at exit 0 (the next
    run reused them); a local run stops with exit 8 and records nothing."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("the disk-full test mounts a tmpfs and needs root in CI")
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(disk)], check=True)
    try:
        with contextlib.suppress(OSError), (disk / "filler").open("wb") as f:
            while True:  # fill the disk the node's cache is on
                f.write(b"x" * 4096)
                f.flush()
        cluster = make_cluster(  # type: ignore[operator]
            f"  r: {{script: {SCRIPT}, gpus: [cpu], params: {{tag: r}}}}\n", head_cpus=0
        )
        cluster.add_node("f", "H100", 1, cache=disk / "cache")
        results = tmp_path / "results"
        out = cluster.run("--jobs", "1", results=results)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
    assert out.returncode == 8, out.stderr
    assert "Traceback" not in out.stderr
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith(
        "repromatrix: error: r[cpu,host] could not run: No space left on device under Ray "
        f"node {socket.gethostname()}'s cache ({disk / 'cache'}); earlier results are kept"
    ), line
    assert ResultStore(results).load().results == ()


def test_a_cell_whose_needs_the_nodes_interpreter_lacks_stops_the_run_as_locally(
    make_cluster: object, tmp_path: Path
) -> None:
    """`needs:` was checked for local cells only: on the cluster the cell ran with a node
    interpreter that cannot import what it needs (for a GPU repro, torch), and its record
    (an error, or an untestable that hid the library's answer) was stored at exit 0; a
    local run refuses in one line, exit 4, and records nothing."""
    cluster = make_cluster(  # type: ignore[operator]
        f"  n: {{script: {SCRIPT}, gpus: [cpu], needs: [no_such_module_xyz], params: {{tag: n}}}}\n"
    )
    results = tmp_path / "results"
    out = cluster.run("--jobs", "1", results=results)
    assert out.returncode == 4, out.stderr
    assert "Traceback" not in out.stderr
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith("repromatrix: error: n[cpu,host] could not run: on Ray node"), line
    assert "cannot import no_such_module_xyz, which n[cpu,host] needs" in line
    assert "ray-node --python PATH" in line
    recorded = list(ResultStore(results).load().results) if results.exists() else []
    assert recorded == []


def test_a_node_with_another_repromatrix_stops_the_run_in_one_line(
    make_cluster: object, tmp_path: Path
) -> None:
    """A node running another repromatrix than the driver's ran and judged the driver's
    cells with its own code (the driver's objects unpickled into its classes field by
    field), and the records were stored at exit 0 as if the driver's code had made them."""
    other = tmp_path / "other-src"
    shutil.copytree(Path(__file__).resolve().parents[2] / "src", other)
    with (other / "repromatrix" / "records.py").open("a") as f:
        f.write("\n# another version\n")
    # Cells submitted to each slot behind the first: once the run stopped, Ray printed
    # their errors, which nothing waited for, as "Unhandled error" with a stack each.
    repros = "".join(
        f"  r{i}: {{script: {SCRIPT}, gpus: [cpu], params: {{tag: r{i}}}}}\n" for i in range(8)
    )
    cluster = make_cluster(repros, head_cpus=0)  # type: ignore[operator]
    cluster.add_node("v", "H100", 1, PYTHONPATH=str(other))
    results = tmp_path / "results"
    out = cluster.run("--jobs", "2", results=results)
    assert out.returncode == 4, out.stderr
    assert "Unhandled error" not in out.stderr
    assert 'File "' not in out.stderr
    line = out.stderr.strip().splitlines()[-1]
    assert re.match(r"repromatrix: error: r\d\[cpu,host\] could not run: on Ray node ", line), line
    assert f"its repromatrix ({other / 'repromatrix'}, code" in line
    assert "is not the driver's (code " in line
    recorded = list(ResultStore(results).load().results) if results.exists() else []
    assert recorded == []
    # An older repromatrix, from before on_node.py (the module of what Ray runs on a
    # node): Ray's code of the driver does not even import there. The cell was an `error`
    # record ("harness failed on the node: RuntimeError: The remote function failed to
    # import…") at exit 0, reused next time.
    older = tmp_path / "older-src"
    shutil.copytree(Path(__file__).resolve().parents[2] / "src", older)
    (older / "repromatrix" / "executors" / "ray" / "on_node.py").unlink()
    cluster.kill_node("v")
    cluster.add_node("w", "H100", 1, PYTHONPATH=str(older))
    out = cluster.run("--jobs", "1", results=results)
    assert out.returncode == 4, out.stderr
    assert "Traceback" not in out.stderr
    line = out.stderr.strip().splitlines()[-1]
    assert re.match(r"repromatrix: error: r\d\[cpu,host\] could not run: on Ray node ", line), line
    assert "repromatrix's code for the node could not be imported there (" in line
    assert "No module named 'repromatrix.executors.ray.on_node'" in line
    assert line.endswith(
        "install the driver's repromatrix on every node and restart them (`ray-node`)"
    )
    recorded = list(ResultStore(results).load().results) if results.exists() else []
    assert recorded == []


def test_a_cell_rays_memory_monitor_keeps_killing_ends_as_an_infrastructure_error(
    make_cluster: object, tmp_path: Path
) -> None:
    """A cell whose worker Ray's memory monitor killed was submitted again as a task,
    which Ray retries after each such kill for ever (task_oom_retries): the run hung. Now
    the cell is an infrastructure error that names the memory, and is not run again
    (`test_ray_errors.py`). (A node whose memory monitor kills at any usage.)"""
    cluster = make_cluster(  # type: ignore[operator]
        f"  m: {{script: {SCRIPT}, gpus: [H100], params: {{seconds: 2, tag: m}}}}\n"
    )
    cluster.add_node(
        "o", "H100", 1, RAY_memory_usage_threshold="0.0001", RAY_memory_monitor_refresh_ms="100"
    )
    results = tmp_path / "results"
    with cluster.running("--ray-retries", "1", results=results) as runner:
        try:
            out, err = runner.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail("the run hung on a cell Ray's memory monitor kills")
    assert runner.returncode == 0, err
    assert out == ""  # each kill's report (the node's top processes) went to stdout
    (record,) = ResultStore(results).load().results
    assert record.status is Status.ERROR
    assert record.reason.startswith("infrastructure: Ray killed the cell's worker because its ")
    assert "ran low on memory" in record.reason


def test_a_record_stands_for_its_cluster_however_its_address_is_spelled(
    make_cluster: object, tmp_path: Path
) -> None:
    """The record's base named the address as typed: the same cluster reached as
    127.0.0.1:PORT and then as localhost:PORT ran every cell again (0 reused)."""
    cluster = make_cluster(f"  r: {{script: {SCRIPT}, gpus: [cpu], params: {{tag: r}}}}\n")  # type: ignore[operator]
    results = tmp_path / "results"
    first = cluster.run(results=results)
    assert first.returncode == 0, first.stderr
    port = cluster.address.rsplit(":", 1)[1]
    again = cluster.run("--ray-address", f"localhost:{port}", results=results)
    assert again.returncode == 0, again.stderr
    assert "1 reused" in again.stderr, again.stderr


def test_a_run_leaves_no_worker_folder_on_its_nodes(make_cluster: object, tmp_path: Path) -> None:
    """The run's end killed each slot's actor (`ray.kill`), which gave its persistent
    workers no chance to remove their socket folders: every run left one per worker
    (rmw-*: a socket, links to the node's copy of the scripts) in the node's /tmp."""
    cluster = make_cluster(  # type: ignore[operator]
        f"  r: {{script: {SCRIPT}, gpus: [cpu, H100], params: {{tag: r}}}}\n", head_cpus=0
    )
    cluster.add_node("a", "H100", 1)  # its cache, hence the links' targets, is in tmp_path
    out = cluster.run("--jobs", "1", results=tmp_path / "results")
    assert out.returncode == 0, out.stderr
    assert len(ResultStore(tmp_path / "results").load().results) == 2
    assert _worker_folders_into(tmp_path) == []


def _worker_folders_into(root: Path) -> list[Path]:
    """Persistent workers' socket folders (rmw-*) whose links point into `root` (a node's
    cache there holds the scripts they link to)."""
    return [
        folder
        for tmp in {Path(tempfile.gettempdir()), Path("/tmp")}
        for folder in tmp.glob("rmw-*")
        if any(
            os.readlink(link).startswith(str(root))
            for link in (folder / "modules").glob("*")
            if link.is_symlink()
        )
    ]
