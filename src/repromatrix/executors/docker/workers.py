"""Persistent workers in Docker: one long-lived container per (environment image, slot).

The container runs `worker_main.py` (mounted read-only) under docker-init and connects to
the harness's Unix socket through a bind-mounted folder; the run's work folder is mounted
at /repromatrix/runs so each cell's result JSON and output files land where the harness
reads them, as with a container per cell.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import docker.errors
import requests.exceptions

from repromatrix.executors.base import ENGINE_LOST, ENGINE_WHEN
from repromatrix.executors.docker import containers
from repromatrix.executors.docker.images import EnvImage
from repromatrix.executors.docker.janitor import (
    KIND_WORKER,
    L_BASE_REF,
    L_ENV_KEY,
    L_KIND,
    L_RUN,
    owner_labels,
)
from repromatrix.executors.workers import WORKER_FILES
from repromatrix.host import HostGpu
from repromatrix.model import Cell
from repromatrix.safetext import excerpt

WORKER_MOUNT = "/repromatrix/worker/worker_main.py"
CTL_MOUNT = "/repromatrix/ctl"
RUNS_MOUNT = "/repromatrix/runs"


#: What a call to the engine raises when it fails or is gone.
_ENGINE_ERRORS = (requests.exceptions.RequestException, docker.errors.DockerException)


class ContainerProcess:
    """A worker as a container (a `workers.WorkerProcess`)."""

    def __init__(self, api: Any, cid: str, name: str) -> None:
        self.api = api
        self.cid = cid
        self.name = name
        #: The kernel killed the container for its memory limit (known once it exited).
        self.oom_killed = False
        #: Someone else removed it (`docker rm -f`): known once it exited, no verdict.
        self.removed_outside = False
        #: The signal someone else's `docker kill` / `docker stop` sent it mid-cell.
        self.killed_outside: str | None = None
        #: Someone else paused it (`docker pause`): found as we kill it (its cell timed out).
        self.paused_outside = False
        # Events of this container cannot be older; the slack is for an engine's clock.
        self._since = time.time() - 60
        self._ours = False

    def describe(self) -> dict[str, object]:
        return {"container": self.name}

    def alive(self) -> bool:
        try:
            state = self.api.inspect_container(self.cid)["State"]
        except _ENGINE_ERRORS:
            return False
        return bool(state.get("Running"))

    def exit_code(self, wait_s: float) -> int | None:
        try:
            code: int | None = containers.wait(self.api, self.cid, wait_s)
        except (requests.exceptions.RequestException, docker.errors.DockerException):
            code = None  # no container left to wait for, or no engine
        else:
            self.oom_killed = containers.oom_killed(self.api, self.cid)
        self.removed_outside = not self._ours and containers.removed(self.api, self.cid)
        if not self._ours and not self.removed_outside and code is not None and code > 128:
            self.killed_outside = containers.killed_outside(self.api, self.cid, self._since)
        return code

    def last_words(self) -> str:
        """The container's last lines of output, printable on one line ("" when none),
        and the image's ENTRYPOINT when it has one: the worker's command is only its
        arguments, so one that does not exec them (a server, `/bin/false`) ends the
        worker before it starts, often without a word."""
        try:
            text = self.api.logs(self.cid, tail=5).decode("utf-8", errors="replace")
            entrypoint = self.api.inspect_container(self.cid)["Config"].get("Entrypoint")
        except _ENGINE_ERRORS:
            return ""
        said = excerpt(" / ".join(ln.strip() for ln in text.splitlines() if ln.strip()), 300)
        if not entrypoint:
            return said
        shown = excerpt(json.dumps(entrypoint), 200)
        note = f"the image's ENTRYPOINT {shown} ran it (it must exec its arguments)"
        return f"{said} ({note})" if said else note

    def kill(self) -> None:
        # An engine gone away (killed, restarting) takes its containers' fate with it: the
        # next run's sweep removes what is left once it answers again. A conflict is
        # "removal of container … is already in progress" (a `docker rm -f` by someone
        # else, or two of our clean-ups meeting): the other removal takes it. A container
        # dying as it is removed (`docker kill` a moment before, or at once) is removed by
        # the first call; 150 such kills on a real engine gave no conflict, 50 removals at
        # once gave only that one, and left nothing (test_docker_worker_kill.py).
        if not self._ours:
            self.paused_outside = containers.paused(self.api, self.cid)
        self._ours = True
        with contextlib.suppress(*_ENGINE_ERRORS):
            self.api.remove_container(self.cid, force=True, v=True)


def worker_binds() -> dict[str, dict[str, str]]:
    """The worker program and the files it imports, mounted read-only beside each other."""
    folder = WORKER_MOUNT.rsplit("/", 1)[0]
    return {str(path): {"bind": f"{folder}/{path.name}", "mode": "ro"} for path in WORKER_FILES}


def start_worker_container(
    api: Any,
    *,
    cell: Cell,
    envimg: EnvImage,
    gpu: HostGpu | None,
    folder: Path,
    run_dir: Path,
    cache_dir: Path,
    cell_env: dict[str, str],
    name: str,
    run_id: str,
) -> ContainerProcess:
    binds = {
        str(cell.script.resolve().parent): {"bind": containers.REPROS_MOUNT, "mode": "ro"},
        **worker_binds(),
        str(folder): {"bind": CTL_MOUNT, "mode": "rw"},
        str(run_dir): {"bind": f"{RUNS_MOUNT}/{run_id}", "mode": "rw"},
        str(cache_dir): {"bind": containers.CACHE_MOUNT, "mode": "rw"},
    }
    labels = {
        L_KIND: KIND_WORKER,
        L_RUN: run_id,
        L_BASE_REF: cell.base.ref,
        L_ENV_KEY: envimg.key,
        **owner_labels(),
    }
    cid = containers.create(
        api,
        image=envimg.id,
        command=["python3", WORKER_MOUNT, f"{CTL_MOUNT}/w.sock"],
        name=name,
        labels=labels,
        environment=containers.environment(
            cell, envimg, cell_env=cell_env, cache_dir=cache_dir, gpu=gpu
        ),
        binds=binds,
        gpu=gpu,
        working_dir=RUNS_MOUNT,
    )
    process = ContainerProcess(api, cid, name)
    try:
        api.start(cid)
    except docker.errors.DockerException:
        process.kill()
        raise
    return process


def note_removed(made: Sequence[object], harness: dict[str, Any]) -> None:
    """Note in `harness` when someone else removed, killed or paused the cell's worker
    container while it ran: no verdict on the cell; the run stops as for a lost engine (exit 5), the
    next runs it."""
    for process in made:
        if not isinstance(process, ContainerProcess):
            continue
        if process.paused_outside:
            harness[ENGINE_LOST] = containers.PAUSED_WORDS.format(name=process.name)
        elif process.removed_outside:
            harness[ENGINE_LOST] = containers.REMOVED_WORDS.format(name=process.name)
        elif process.killed_outside is not None:
            harness[ENGINE_LOST] = containers.KILLED_WORDS.format(
                name=process.name, signal=process.killed_outside
            )
        else:
            continue
        harness[ENGINE_WHEN] = "(this cell included)"
        return
