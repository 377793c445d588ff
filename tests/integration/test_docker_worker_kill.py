"""Killing a worker container mid-cell, against the real engine, the ways it meets others.

A worker's kill had retried the removal once the container stopped, for a container left
behind once in CI and never reproduced. Here a busy worker container is killed as the
pool kills one (a timeout, a crash), with a `docker kill` a moment before, one at the
same moment, and another removal at the same moment ("removal … is already in
progress"): each time the container must be gone, and the kill must not raise.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import docker.errors
import pytest
from docker_fixtures import our_containers

from repromatrix.executors.docker.janitor import KIND_WORKER, L_KIND, L_RUN
from repromatrix.executors.docker.workers import ContainerProcess

pytest_plugins = ("docker_fixtures",)
pytestmark = [pytest.mark.integration, pytest.mark.docker]

#: Kills of each kind: enough to meet a busy engine's races, few enough for a test.
_ROUNDS = 8


@pytest.mark.parametrize("meets", ["docker-kill-before", "docker-kill-at-once", "rm-at-once"])
def test_a_worker_killed_mid_cell_is_removed_whatever_it_meets(
    docker_client: Any, base_image: str, meets: str
) -> None:
    api = docker_client.api
    run_id = f"kill-{meets}"
    for _ in range(_ROUNDS):
        created = api.create_container(
            base_image,
            command=["python3", "-c", "while True: sum(range(10**5))"],  # a cell computing
            labels={L_KIND: KIND_WORKER, L_RUN: run_id},
            host_config=api.create_host_config(init=True),
        )
        cid = str(created["Id"])
        api.start(cid)
        worker = ContainerProcess(api, cid, "worker")
        other: threading.Thread | None = None
        if meets == "docker-kill-before":
            api.kill(cid)
        elif meets == "docker-kill-at-once":
            other = threading.Thread(target=_docker_kill, args=(api, cid))
        else:  # someone's `docker rm -f`, or another of our clean-ups
            other = threading.Thread(target=ContainerProcess(api, cid, "other").kill)
        if other is not None:
            other.start()
        try:
            worker.kill()
        finally:
            if other is not None:
                other.join()
        # Gone once both returned: no second try was needed.
        assert not our_containers(docker_client, **{"run-id": run_id}), meets


def _docker_kill(api: Any, cid: str) -> None:
    with contextlib.suppress(docker.errors.APIError):  # ended (removed) before it
        api.kill(cid)
