"""`--executor ray` with image bases: a node runs them with its own Docker executor, in
worker containers that its slot's actor owns. Those containers must not outlive the
actor: not after the run ends, and not after Ctrl-C (the actors are killed, and a killed
process cleans nothing up by itself).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker_fixtures import cell_containers, container_name, derived_image, our_containers, poll
from test_docker_image_python import _BROKEN

# The cluster fixture and its helpers come from test_ray (imported, not re-collected).
from test_ray import SCRIPT, Cluster, make_cluster  # noqa: F401

from repromatrix.model import Status
from repromatrix.store import ResultStore

pytest_plugins = ("docker_fixtures",)
pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.slow]


@pytest.fixture
def image_cluster(make_cluster: Any, base_image: str, docker_client: Any) -> Iterator[Any]:  # noqa: F811
    """A cluster of a CPU-less head and one node; `make(repros)` gives it a matrix whose
    repros run on the test base image."""

    before = {c.id for c in our_containers(docker_client)}

    def make(repros: str, images: str = "") -> Cluster:
        cluster: Cluster = make_cluster(repros, head_cpus=0)
        text = cluster.matrix.read_text().replace(
            "repros:\n", f'images:\n  testbase: {{ref: "{base_image}"}}\n{images}repros:\n'
        )
        cluster.matrix.write_text(text)
        cluster.add_node("a", "H100", 1)  # its CPUs run the image cells
        return cluster

    yield make
    for c in our_containers(docker_client):  # what a failed test left, none of the rest
        if c.id not in before:
            docker_client.api.remove_container(c.id, force=True)


def _running(client: Any) -> list[str]:
    """Running cell and worker containers (not the short one asking an image's python3)."""
    mine = cell_containers(client)
    return sorted(container_name(c) for c in mine if c.attrs.get("State") == "running")


def _cell(name: str, seconds: float) -> str:
    return (
        f"  {name}: {{script: {SCRIPT}, gpus: [cpu], bases: [testbase], "
        f"params: {{seconds: {seconds}, startfile: start, tag: {name}}}}}\n"
    )


def test_a_runs_worker_containers_end_with_the_run(
    image_cluster: Any, docker_client: Any, tmp_path: Path
) -> None:
    """A finished run left its worker containers behind on the node (stopped, never
    removed): only the node's next Docker run swept them."""
    before = {container_name(c) for c in our_containers(docker_client)}
    cluster = image_cluster(_cell("quick", 0))
    out = cluster.run("--jobs", "1", results=tmp_path / "results")
    assert out.returncode == 0, out.stderr
    (record,) = ResultStore(tmp_path / "results").load().results
    assert record.status is Status.PASSED, record.reason
    assert record.provenance["harness"]["container"]
    poll(
        lambda: {container_name(c) for c in our_containers(docker_client)} <= before,
        timeout=30,
        what="the run's worker containers to be removed",
    )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_ends_the_cells_running_in_containers(
    image_cluster: Any, docker_client: Any, tmp_path: Path, sig: signal.Signals
) -> None:
    """Ctrl-C killed the slots' actors, but the cells in their worker containers ran on to
    their end (a worker in a container has no parent to watch): the cluster's CPUs stayed
    busy, and a GPU cell would have run on beside the next run's attempt at it."""
    before = set(_running(docker_client))
    cluster = image_cluster(_cell("long", 600))
    with cluster.running("--jobs", "1", results=tmp_path / "results") as runner:
        started = poll(
            lambda: set(_running(docker_client)) - before,
            timeout=180,
            what="the cell's worker container",
        )
        # The repro writes its start file in its out folder, under the node's cache.
        poll(
            lambda: list((cluster.root / "node-a").rglob("out/start")),
            timeout=60,
            what="the cell to start",
        )
        runner.send_signal(sig)
        _, err = runner.communicate(timeout=60)
    assert runner.returncode == 130, err
    poll(
        lambda: not set(_running(docker_client)) & started,
        timeout=30,
        what=f"{sorted(started)} to stop",
    )


def test_an_image_a_node_lacks_under_pull_never_is_not_run_there(
    image_cluster: Any, tmp_path: Path
) -> None:
    """Locally, `--pull never` and an absent image make a "not run here" note, which the
    next run (the image loaded) retries; on a node the cell was stored as an `error`, a
    final record that the next run reused."""
    cell = f"  absent: {{script: {SCRIPT}, gpus: [cpu], bases: [absent], params: {{tag: a}}}}\n"
    cluster = image_cluster(cell, '  absent: {ref: "repromatrix-absent:nope"}\n')
    results = tmp_path / "results"
    out = cluster.run("--pull", "never", results=results)
    assert out.returncode == 0, out.stderr
    (record,) = ResultStore(results).load().results
    assert record.status is Status.NOT_RUN, record.reason
    assert "repromatrix-absent:nope is not on this host" in record.reason
    assert "--pull never" in record.reason


def test_an_image_whose_python3_cannot_run_cells_ends_a_ray_run_as_a_local_one(
    image_cluster: Any, tmp_path: Path, docker_client: Any, base_image: str
) -> None:
    """A local run notes such an image's cells "not run here" and ends with exit 4; on a
    node the cells were noted the same way, but the run ended with exit 0."""
    tag = "repromatrix-test-ray-python38:1"
    cell = f"  old: {{script: {SCRIPT}, gpus: [cpu], bases: [old], params: {{tag: o}}}}\n"
    with derived_image(docker_client, base_image, tag, _BROKEN["python38"]):
        cluster = image_cluster(cell, f'  old: {{ref: "{tag}"}}\n')
        results = tmp_path / "results"
        out = cluster.run("--pull", "never", "--repeat", "2", results=results)
    assert out.returncode == 4, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    for said in ("1 cell(s) not run", tag, "its python3 is Python 3.8.18", "3.10 or newer"):
        assert said in last, out.stderr
    assert "Traceback" not in out.stderr
    records = ResultStore(results).load().results
    assert {r.status for r in records} == {Status.NOT_RUN}, records
    assert all(tag in r.reason for r in records), records


def test_an_image_build_that_fails_is_tried_once_per_run_on_the_cluster(
    image_cluster: Any, tmp_path: Path
) -> None:
    """An environment image pip cannot build, in four cells over two slots: each slot's
    worker process built the image again (a compile that fails after an hour, twice),
    where a local run builds it once. Now one build for the run; the other cells get its
    reason, which names its log."""
    repros = "".join(
        f"  c{i}: {{script: {SCRIPT}, gpus: [cpu], bases: [testbase], "
        f"libraries: {{nolib: ['9.9']}}, params: {{tag: c{i}}}}}\n"
        for i in range(4)
    )
    cluster = image_cluster(
        repros, images='libraries:\n  nolib: {pypi: nolib, import: nolib, versions: ["9.9"]}\n'
    )
    wheels = tmp_path / "no-wheels"
    wheels.mkdir()
    results = tmp_path / "results"
    out = cluster.run(
        "--jobs", "2", "--no-index", "--find-links", str(wheels), results=results
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    got = ResultStore(results).load().results
    assert len(got) == 4
    assert {r.status for r in got} == {Status.ERROR}, {r.reason for r in got}
    (reason,) = {r.reason for r in got}
    assert reason.startswith("environment: "), reason
    logs = list((cluster.root / "node-a" / "runs").glob("*/*/env-build.log"))
    assert len(logs) == 1, logs
    assert str(logs[0]) in reason
