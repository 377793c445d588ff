"""A container per cell (`--isolate`, or a repro that declares `isolate: true`).

The container runs `python3 SCRIPT --out RESULT.json --params JSON` under docker-init and
is removed once its exit code and output are read; Ctrl-C removes it at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker.errors
import requests.exceptions

from repromatrix.executors.base import ENGINE_LOST, ENGINE_WHEN, OOM_KILLED, RESULT_FILE, Slot
from repromatrix.executors.docker import containers
from repromatrix.executors.docker.containers import OUT_MOUNT, REPROS_MOUNT
from repromatrix.executors.docker.engine import one_line
from repromatrix.executors.docker.images import EnvImage
from repromatrix.executors.docker.janitor import (
    KIND_CELL,
    L_BASE_REF,
    L_CELL,
    L_ENV_KEY,
    L_KEY,
    L_KIND,
    L_RUN,
    owner_labels,
)
from repromatrix.executors.docker.workers import WORKER_MOUNT, worker_binds
from repromatrix.executors.worker_main import ONCE
from repromatrix.executors.worker_scripts import module_only
from repromatrix.model import Cell

log = logging.getLogger("repromatrix.docker")

#: How long the harness waits for a killed container to report its exit.
_KILL_WAIT_S = 30


@dataclass(frozen=True, kw_only=True)
class Waited:
    code: int | None
    timed_out: bool
    cancelled: bool
    duration_s: float


class CellContainers:
    """The per-cell containers of one executor: made, waited for, removed."""

    def __init__(self, api: Any, *, cell_env: dict[str, str]) -> None:
        self.api = api
        self.cell_env = cell_env
        self._lock = threading.Lock()
        self._running: dict[str, str] = {}  # container id → name
        self._killed: set[str] = set()
        self._cancelled = threading.Event()

    def create(
        self,
        cell: Cell,
        slot: Slot,
        envimg: EnvImage,
        name: str,
        run_id: str,
        out_dir: Path,
        cache_dir: Path,
    ) -> str:
        labels = {
            L_KIND: KIND_CELL,
            L_RUN: run_id,
            L_CELL: cell.id,
            L_KEY: cell.key,
            L_BASE_REF: cell.base.ref,
            L_ENV_KEY: envimg.key,
            **owner_labels(),
        }
        command = [
            "python3",
            f"{REPROS_MOUNT}/{cell.script.name}",
            "--out",
            f"{OUT_MOUNT}/{RESULT_FILE}",
            "--params",
            json.dumps(dict(cell.params), sort_keys=True),
        ]
        binds = containers.binds(cell, out_dir=out_dir, cache_dir=cache_dir)
        if module_only(str(cell.script)):
            # `run(params)` and no command line: its one cell as a worker would run it.
            command = ["python3", WORKER_MOUNT, ONCE, *command[1::2]]  # SCRIPT OUT PARAMS
            binds.update(worker_binds())
        cid = containers.create(
            self.api,
            image=envimg.id,
            command=command,
            name=name,
            labels=labels,
            environment=containers.environment(
                cell, envimg, cell_env=self.cell_env, cache_dir=cache_dir, gpu=slot.gpu
            ),
            binds=binds,
            gpu=slot.gpu,
        )
        with self._lock:
            self._running[cid] = name
        return cid

    def start_and_wait(
        self,
        cell: Cell,
        cid: str,
        started: datetime,
        harness: dict[str, Any],
        result_json: Path,
        stdout: Path,
        stderr: Path,
    ) -> Waited | str:
        """What the container did, or why it could not run (the harness's failure)."""
        api = self.api
        if self._cancelled.is_set():
            return "cancelled (Ctrl-C) before it started"
        t0 = time.monotonic()
        since = time.time() - 60  # its events are not older; the slack: the engine's clock
        try:
            api.start(cid)
        except docker.errors.DockerException as exc:
            return f"docker: cannot start container: {one_line(exc)}"
        harness["t_start"] = datetime.now(UTC).isoformat(timespec="microseconds")
        timed_out = False
        code: int | None = None
        limit = max(1.0, cell.timeout_s - (time.monotonic() - t0))
        try:
            code = containers.wait(api, cid, limit)
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as exc:
            # The wall-clock limit: the read of `wait` timed out (over a unix socket the SDK
            # reports that as a ConnectionError "Read timed out"). Anything sooner is the
            # engine going away, which is the harness's failure, not the repro's.
            if time.monotonic() - t0 < limit - 1.0:
                return f"docker: lost the engine while waiting: {one_line(exc)}"
            timed_out = True
        frozen = timed_out and containers.paused(api, cid)  # by someone's `docker pause`
        if timed_out:
            # Kill (SIGKILL to init kills the whole container), then read the exit status.
            with contextlib.suppress(docker.errors.APIError):  # exited just before the kill
                api.kill(cid)
            try:
                code = containers.wait(api, cid, _KILL_WAIT_S)
            except (requests.exceptions.RequestException, docker.errors.DockerException):
                code = None
        duration = time.monotonic() - t0
        with self._lock:
            cancelled = cid in self._killed
            name = self._running.get(cid, cid[:12])
        ours = (timed_out and not frozen) or cancelled
        outside = None if ours else containers.ended_outside(api, cid, code, since, frozen=frozen)
        if outside is not None:
            # Not ours, and no verdict on the cell: the run stops as for a lost engine.
            why = outside.format(name=name)
            harness[ENGINE_LOST] = why
            harness[ENGINE_WHEN] = "(this cell included)"
            return f"docker: {why}"
        if code is not None and not timed_out and containers.oom_killed(api, cid):
            harness[OOM_KILLED] = True
        harness["t_end"] = datetime.now(UTC).isoformat(timespec="microseconds")
        notes: list[str] = []
        for path, which in ((stdout, "stdout"), (stderr, "stderr")):
            try:
                containers.save_logs(api, cid, path, stdout=which == "stdout")
            except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
                notes.append(f"{which} lost: {one_line(exc)}")
        if notes:
            harness["log_problems"] = notes
        return Waited(code=code, timed_out=timed_out, cancelled=cancelled, duration_s=duration)

    def remove(self, cid: str, name: str) -> None:
        with self._lock:
            self._running.pop(cid, None)
        try:
            self.api.remove_container(cid, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except requests.exceptions.RequestException:
            pass  # the engine is gone: the next run's sweep removes it once it answers
        except docker.errors.DockerException as exc:
            if not _being_removed(exc):  # Ctrl-C's removal of it got there first
                # Left for the next run or `repromatrix clean` (it carries our labels).
                log.warning("cannot remove container %s: %s", name, one_line(exc))

    def cancel(self) -> None:
        self._cancelled.set()
        with self._lock:
            running = list(self._running)
            self._killed.update(running)
        # Kill *and remove* here, synchronously, rather than leaving the removal to the
        # worker thread: the process may exit as soon as this returns. (On Python 3.11 a
        # Thread.join() interrupted by Ctrl-C marks the thread stopped while it still runs,
        # bpo-45274 / gh-90882, so the scheduler's join after cancel() can return at once.)
        # The worker's `wait` then returns, and its own removal finds nothing to remove.
        for cid in running:
            try:
                self.api.remove_container(cid, force=True, v=True)
            except docker.errors.NotFound:
                pass
            except requests.exceptions.RequestException:
                # The engine stopped answering (dockerd restarted mid-cell): the run says
                # so in its one line; this escaped the run's stop as an internal error.
                pass
            except docker.errors.DockerException as exc:
                if not _being_removed(exc):  # the cell's own removal got there first
                    log.warning("cannot remove container %s: %s", cid[:12], one_line(exc))


def _being_removed(exc: Exception) -> bool:
    """The engine's answer when another call is removing the same container (409)."""
    return "already in progress" in str(exc)
