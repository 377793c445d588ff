"""`--executor ray` when the cluster, not the repro, fails a cell: nodes lost more often
than `--ray-retries` allows, a node that offers a GPU type it does not have, a library
build that fails on every slot. Real clusters (`test_ray`'s fixture)."""

from __future__ import annotations

import functools
import http.server
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from bisect_repo import build_wheels
from raycluster import node_of

# The cluster fixture and its helpers come from test_ray (imported, not re-collected).
from test_ray import SCRIPT, _ray_cli, fake_gpus, make_cluster  # noqa: F401

from repromatrix.model import Status
from repromatrix.store import ResultStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _node_running(startfile: Path, other_than: set[str]) -> str:
    """The test node of the process that last wrote `startfile` (its pid), once it is
    none of `other_than`."""
    deadline = time.monotonic() + 120
    while True:
        text = startfile.read_text().strip() if startfile.exists() else ""
        if text:
            try:
                node = node_of(int(text))
            except (OSError, AssertionError):  # the process ended meanwhile
                node = ""
            if node and node not in other_than:
                return node
        assert time.monotonic() < deadline, f"the cell did not start on a node not in {other_than}"
        time.sleep(0.1)


def test_a_cell_lost_past_its_retries_is_run_again_and_the_run_says_so(
    make_cluster: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A cell whose node was lost more often than --ray-retries allows was stored as an
    `error` ("infrastructure: the task's node or worker was lost ... after 0 retries") at
    exit 0, and the next run reused it ("--retry-errors runs them again") as if the repro
    had failed. It is noted "not run here", the run ends with exit 5 naming it, and the
    next run does the cell."""
    start, gate = tmp_path / "start", tmp_path / "gate"
    cluster = make_cluster(  # running until its second node is killed, then the gate opens
        f"  h: {{script: {SCRIPT}, gpus: [H100], "
        f"params: {{seconds: 120, gate: '{gate}', startfile: '{start}', tag: h}}}}\n"
    )
    for name in ("a", "b", "c"):
        cluster.add_node(name, "H100", 1)
    results = tmp_path / "results"
    with cluster.running("--ray-retries", "0", results=results) as runner:
        first = _node_running(start, set())
        cluster.kill_node(first)  # its slot's actor: the cell goes back as a task
        second = _node_running(start, {first})
        cluster.kill_node(second)  # the task, with no retry left
        _, err = runner.communicate(timeout=300)
    gate.touch()  # the next run's cell passes at once
    assert runner.returncode == 5, err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("repromatrix: error: 1 cell(s) lost with their Ray nodes"), line
    assert "--ray-retries 0 allows (h[H100,host])" in line, line
    (record,) = ResultStore(results).load().results
    assert record.status is Status.NOT_RUN, record.reason
    assert "lost" in record.reason
    again = cluster.run(results=results)
    assert again.returncode == 0, again.stderr
    assert "0 reused" in again.stderr, again.stderr
    got = [r for r in ResultStore(results).load().results if r.status is Status.PASSED]
    assert len(got) == 1


def test_a_node_that_offers_a_type_it_lacks_gets_no_cell_of_it(
    make_cluster: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A node started by hand that offers H100 (`ray start --num-gpus 1 --resources
    '{"repromatrix-gpu-H100": 1}'`) on a machine whose GPU is an L4: Ray gave it H100
    cells, each stored as an error ("Ray reserved GPU 0 (NVIDIA L4) for a H100 cell") at
    exit 0 and reused by the next run though it never ran. Its cells are noted "not run
    here", naming the node, while it is the only one; once a node that has an H100
    joins, they run there, and the run warns of the node once."""
    repros = "".join(
        f"  h{i}: {{script: {SCRIPT}, gpus: [H100], params: {{tag: h{i}}}}}\n" for i in range(3)
    )
    cluster = make_cluster(repros)
    joined = subprocess.run(
        [_ray_cli(), "start", f"--address={cluster.address}", "--num-cpus=1", "--num-gpus=1",
         '--resources={"repromatrix-gpu-H100": 1}', "--disable-usage-stats"],
        env=cluster.env(
            REPROMATRIX_TEST_NODE="plain",
            REPROMATRIX_FAKE_GPUS=fake_gpus("plain", "L4", 1),
            REPROMATRIX_NODE_CACHE=str(tmp_path / "plain-cache"),
        ),
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert joined.returncode == 0, joined.stderr
    results = tmp_path / "results"
    out = cluster.run(results=results)
    assert out.returncode == 0, out.stderr
    got = ResultStore(results).load().results
    assert len(got) == 3
    for record in got:
        assert record.status is Status.NOT_RUN, record.reason
        assert record.reason.startswith("no host with this GPU in the cluster: Ray node "), (
            record.reason
        )
        assert "GPU 0 (NVIDIA L4)" in record.reason, record.reason
        assert "repromatrix ray-node" in record.reason, record.reason
    cluster.add_node("a", "H100", 1)
    again = cluster.run(results=results)
    assert again.returncode == 0, again.stderr
    # Two slots, an actor each, one on each node: the node is found out, and said once
    # (its cells went elsewhere, and nothing told the user it was set up wrong).
    said = "offers H100, but Ray reserved GPU 0 (NVIDIA L4) there for its cell; no more H100"
    assert again.stderr.count(said) == 1, again.stderr
    ran = [r for r in ResultStore(results).load().results if r.status is not Status.NOT_RUN]
    assert sorted(r.repro for r in ran) == ["h0", "h1", "h2"]
    for record in ran:
        assert record.status is Status.PASSED, record.reason
        assert record.provenance["cuda_visible_devices"] == "GPU-a-0"


def test_a_library_build_that_fails_is_tried_once_per_run_on_the_cluster(
    make_cluster: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Pins pip cannot install, in six cells over three slots on two nodes: each slot's
    worker process (and each node) ran pip again, where a local run builds an environment
    once and gives its other cells the first build's error. Now one build for the run,
    whichever node and slot; the other cells get its reason and a note where its log is."""
    repros = "".join(
        f"  c{i}: {{script: {SCRIPT}, gpus: [cpu], libraries: {{nolib: ['9.9']}}, "
        f"params: {{tag: c{i}}}}}\n"
        for i in range(6)
    )
    cluster = make_cluster(repros, head_cpus=0)
    text = cluster.matrix.read_text().replace(
        "repros:\n",
        'libraries:\n  nolib: {pypi: nolib, import: nolib, versions: ["9.9"]}\nrepros:\n',
    )
    cluster.matrix.write_text(text)
    cluster.add_node("a", "H100", 1)
    cluster.add_node("b", "L4", 1)
    wheels = tmp_path / "no-wheels"
    wheels.mkdir()
    results = tmp_path / "results"
    out = cluster.run(
        "--jobs", "3", "--no-index", "--find-links", str(wheels), results=results
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    got = ResultStore(results).load().results
    assert len(got) == 6
    (reason,) = {r.reason for r in got}
    assert reason.startswith("environment: pip could not install nolib"), reason
    assert {r.status for r in got} == {Status.ERROR}
    logs = [
        log.read_text()
        for node in ("a", "b")
        for log in (cluster.root / f"node-{node}" / "runs").glob("*/*/env-build.log")
    ]
    assert len(logs) == 6
    built = [log for log in logs if not log.startswith("# not built again")]
    assert len(built) == 1, logs
    assert "pip" in built[0]


class _Index(http.server.SimpleHTTPRequestHandler):
    """A package index (a folder's listing, which pip reads as one) that answers once
    `ready` is set: the node that can reach it builds after the other one failed."""

    ready = threading.Event()

    def do_GET(self) -> None:
        self.ready.wait(120)
        super().do_GET()

    def log_message(self, *args: Any) -> None:
        pass


def test_a_build_that_failed_for_a_nodes_own_want_is_built_on_the_other_nodes(
    make_cluster: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Node a cannot reach the package index (its PIP_INDEX_URL is a closed port), node b
    can. a's failed build was shared with the whole cluster, and every cell b ran after it
    ended in a's "No matching distribution" though b had built the environment. Now a
    failure whose log shows the node's own want is kept for that node: b's cells pass."""
    simple = tmp_path / "index" / "simple" / "bisectpkg"
    build_wheels(simple, ["1.0"], bad=set())
    handler = functools.partial(_Index, directory=str(tmp_path / "index"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    repros = "".join(
        f"  c{i}: {{script: {SCRIPT}, gpus: [{gpu}], libraries: {{bisectpkg: ['1.0']}}, "
        f"params: {{tag: c{i}}}}}\n"
        for i, gpu in enumerate(["H100"] * 2 + ["L4"] * 3)
    )
    cluster = make_cluster(repros, head_cpus=0)
    text = cluster.matrix.read_text().replace(
        "repros:\n",
        "libraries:\n  bisectpkg: {pypi: bisectpkg, import: bisectpkg, versions: ['1.0']}\n"
        "repros:\n",
    )
    cluster.matrix.write_text(text)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    port = closed.getsockname()[1]
    cluster.add_node("a", "H100", 1, PIP_INDEX_URL=f"http://127.0.0.1:{port}/simple/")
    cluster.add_node("b", "L4", 1, PIP_INDEX_URL=f"http://127.0.0.1:{server.server_port}/simple/")
    results = tmp_path / "results"
    try:
        with cluster.running(results=results) as runner:
            a_logs = cluster.root / "node-a" / "runs"
            deadline = time.monotonic() + 120
            while not any("No matching distribution" in p.read_text()
                          for p in a_logs.glob("*/*/env-build.log")):  # fmt: skip
                assert time.monotonic() < deadline, "node a's build did not fail"
                time.sleep(0.2)
            time.sleep(1)  # its failure is stored
            _Index.ready.set()
            _, err = runner.communicate(timeout=300)
    finally:
        _Index.ready.set()
        server.shutdown()
        server.server_close()
        closed.close()
    assert runner.returncode == 7, err  # a's cells noted: the next run does them
    got = {r.repro: r for r in ResultStore(results).load().results}
    assert len(got) == 5
    for name in ("c2", "c3", "c4"):
        assert got[name].status is Status.PASSED, (name, got[name].reason)
    for name in ("c0", "c1"):
        assert got[name].status is Status.NOT_RUN
        assert "No matching distribution" in got[name].reason, got[name].reason
    built_on_a = [
        log
        for log in a_logs.glob("*/*/env-build.log")
        if not log.read_text().startswith("# not built again")
    ]
    assert len(built_on_a) == 1  # a's other cell gets its failure: the node's slots share it


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def test_a_build_that_failed_for_a_nodes_own_want_is_built_again_by_the_next_run(
    make_cluster: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Node a cannot reach the package index (its PIP_INDEX_URL a closed port). Its cells'
    build failed for the node's own want and was stored as an error at exit 0; the next
    run, on a node that reaches the index, reused it ('2 reused') and never built again.
    Now the cells are noted 'not run here' with the node's want (exit 7, as for an
    environment that cannot be made), and the next run builds them: they pass."""
    build_wheels(tmp_path / "index" / "simple" / "bisectpkg", ["1.0"], bad=set())
    handler = functools.partial(_Quiet, directory=str(tmp_path / "index"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    repros = "".join(
        f"  c{i}: {{script: {SCRIPT}, gpus: [H100], libraries: {{bisectpkg: ['1.0']}}, "
        f"params: {{tag: c{i}}}}}\n"
        for i in range(2)
    )
    cluster = make_cluster(repros, head_cpus=0)
    text = cluster.matrix.read_text().replace(
        "repros:\n",
        "libraries:\n  bisectpkg: {pypi: bisectpkg, import: bisectpkg, versions: ['1.0']}\n"
        "repros:\n",
    )
    cluster.matrix.write_text(text)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    results = tmp_path / "results"
    try:
        cluster.add_node(
            "a", "H100", 1, PIP_INDEX_URL=f"http://127.0.0.1:{closed.getsockname()[1]}/simple/"
        )
        first = cluster.run(results=results)
        cluster.kill_node("a")
        cluster.add_node(
            "b", "H100", 1, PIP_INDEX_URL=f"http://127.0.0.1:{server.server_port}/simple/"
        )
        second = cluster.run(results=results)
    finally:
        server.shutdown()
        server.server_close()
        closed.close()
    assert first.returncode == 7, first.stderr
    assert "the node's own" in first.stderr, first.stderr
    assert "the next run" in first.stderr, first.stderr
    noted = ResultStore(results).load().results[:2]
    assert {r.status for r in noted} == {Status.NOT_RUN}, [r.reason for r in noted]
    for record in noted:
        assert record.reason is not None
        assert "Connection refused" in record.reason or "NewConnection" in record.reason
    assert second.returncode == 0, second.stderr
    records = ResultStore(results).load().results
    latest = {r.repro: r for r in records}  # in the order they were stored
    assert {name: r.status for name, r in latest.items()} == {
        "c0": Status.PASSED,
        "c1": Status.PASSED,
    }, [r.reason for r in records]
