"""Run cells in containers: one labelled container per cell, judged like any other run.

How the container is made (mounts, environment, GPU) is `containers.py`; the exit code and
result JSON are judged by `executors.judge`, as for the local executor.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions

from repromatrix import proc
from repromatrix.envs import exclusive_use
from repromatrix.errors import DockerError, EnvironmentBuildError, MissingToolError
from repromatrix.executors.base import RESULT_FILE, RunOutcome, Slot, harness_failure
from repromatrix.executors.docker import containers
from repromatrix.executors.docker.containers import OUT_MOUNT, REPROS_MOUNT
from repromatrix.executors.docker.engine import engine_client, one_line, unreachable_message
from repromatrix.executors.docker.images import EnvImage, ImageInfo, Images
from repromatrix.executors.docker.janitor import (
    KIND_CELL,
    L_BASE_REF,
    L_CELL,
    L_ENV_KEY,
    L_KEY,
    L_KIND,
    L_RUN,
    owner_labels,
    remove_orphans,
)
from repromatrix.model import EXIT_UNTESTABLE, Cell
from repromatrix.options import SessionConfig
from repromatrix.records import PROTOCOL_SCHEMA

log = logging.getLogger("repromatrix.docker")

NO_NVIDIA_RUNTIME = (
    "no NVIDIA runtime in Docker on this host: install nvidia-container-toolkit "
    "or use --executor local"
)

#: How long the harness waits for a killed container to report its exit.
_KILL_WAIT_S = 30


class DockerExecutor:
    name = "docker"

    def __init__(
        self,
        client: docker.DockerClient,
        *,
        config: SessionConfig,
        env: Mapping[str, str],
    ) -> None:
        self.client = client
        self.config = config
        self.base_env = dict(env)
        self.hostname = socket.gethostname()
        self.images = Images(client, config=config)
        self.cache_root = config.cache.resolve() / "docker"
        self.gpu_runtime = _has_gpu_runtime(client.info())
        self._lock = threading.Lock()
        self._running: dict[str, str] = {}  # container id → name
        self._cancelled = threading.Event()
        self._killed: set[str] = set()

    @classmethod
    def connect(cls, config: SessionConfig, *, env: Mapping[str, str]) -> DockerExecutor | str:
        """The executor, or one line saying why there is none here (engine unreachable)."""
        try:
            client = engine_client(env)
        except Exception as exc:  # the SDK raises DockerException, requests errors, OSError
            return unreachable_message(env, exc)
        try:
            executor = cls(client, config=config, env=env)
            # A run killed with -9 leaves its containers; remove them before starting ours.
            for item in remove_orphans(client, hostname=executor.hostname):
                log.info("removed leftover %s", item)
        except docker.errors.DockerException as exc:
            client.close()
            return unreachable_message(env, exc)
        return executor

    # -- Executor protocol -------------------------------------------------------------

    def base_fingerprint(self, cell: Cell) -> str:
        info = self.images.known(cell.base.ref)
        if isinstance(info, ImageInfo):
            return f"image:{info.id}"
        return f"image:{cell.base.ref}"

    def can_run(self, cell: Cell) -> str | None:
        if cell.base.is_host:
            return (
                f"base '{cell.base.name}' is the host interpreter; the Docker executor runs "
                "only image bases (use --executor local or auto)"
            )
        # A GPU cell on an engine without the NVIDIA runtime is runnable in the sense of
        # this method: run() records it "untestable" rather than "not run" (see run()).
        info = self.images.base_image(cell.base.ref)
        return info if isinstance(info, str) else None

    def run(self, cell: Cell, slot: Slot, workdir: Path) -> RunOutcome:
        started = datetime.now(UTC)
        workdir = workdir.resolve()
        out_dir = workdir / "out"
        out_dir.mkdir(parents=True, exist_ok=True)
        result_json = out_dir / RESULT_FILE
        result_json.unlink(missing_ok=True)
        # The scheduler gives each run its own directory: workroot/<run id>/<cell key>.
        run_id = workdir.parent.name
        harness: dict[str, Any] = {"slot": slot.name, "workdir": str(workdir)}
        if self.config.cell_env:
            harness["cell_env"] = dict(self.config.cell_env)
        if slot.gpu is not None:
            harness["gpu"] = {"index": slot.gpu.index, "name": slot.gpu.name, "uuid": slot.gpu.uuid}
        if self._cancelled.is_set():
            return self._failed(cell, started, "cancelled (Ctrl-C) before it started", harness)
        base = self.images.base_image(cell.base.ref)
        if isinstance(base, ImageInfo):
            harness["image"] = _image_facts(cell, base, None)
        if slot.gpu is not None and not self.gpu_runtime:
            # Not `can_run`: a reason there makes the cell "not run here", a note about this
            # host that a later run retries. The cell asked for a GPU inside Docker and this
            # engine cannot give one, which is the protocol's "cannot be tested here" (125),
            # so the harness answers for the repro with exit 125 and a schema-1 result JSON,
            # and `judge` records it "untestable" with the reason, like any repro's 125.
            return self._untestable(cell, slot, started, result_json, NO_NVIDIA_RUNTIME, harness)
        if isinstance(base, str):
            return self._failed(cell, started, base, harness)
        try:
            envimg = self.images.ensure_env_image(
                cell, base, log_path=workdir / "env-build.log", run_id=run_id
            )
        except (EnvironmentBuildError, MissingToolError, DockerError) as exc:
            harness["image"] = _image_facts(cell, base, None)
            return self._failed(cell, started, f"environment: {exc}", harness)
        harness["image"] = _image_facts(cell, base, envimg)
        harness["env"] = envimg.key
        harness["pins"] = dict(envimg.pins)
        cache_dir = self.cache_root / "cache" / envimg.key
        cache_dir.mkdir(parents=True, exist_ok=True)
        name = containers.container_name(run_id, cell.key)
        harness["container"] = name
        try:
            cid = self._create(cell, slot, envimg, name, run_id, out_dir, cache_dir)
        except docker.errors.DockerException as exc:
            return self._failed(cell, started, f"docker: cannot create container: {exc}", harness)
        stdout, stderr = workdir / "stdout.log", workdir / "stderr.log"
        try:
            with exclusive_use(cache_dir, [cache_dir], pinned=bool(cell.pins)) as stale:
                if stale:
                    harness["removed_stale_locks"] = stale
                return self._start_and_wait(
                    cell, cid, started, harness, result_json, stdout, stderr
                )
        finally:
            with self._lock:
                self._running.pop(cid, None)
            try:
                self.client.api.remove_container(cid, force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.DockerException as exc:
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
                self.client.api.remove_container(cid, force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.DockerException as exc:
                log.warning("cannot remove container %s: %s", cid[:12], one_line(exc))

    # -- running -----------------------------------------------------------------------

    def _create(
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
        cid = containers.create(
            self.client.api,
            image=envimg.id,
            command=command,
            name=name,
            labels=labels,
            environment=containers.environment(
                cell, envimg, cell_env=self.config.cell_env, cache_dir=cache_dir, gpu=slot.gpu
            ),
            binds=containers.binds(cell, out_dir=out_dir, cache_dir=cache_dir),
            gpu=slot.gpu,
        )
        with self._lock:
            self._running[cid] = name
        return cid

    def _start_and_wait(
        self,
        cell: Cell,
        cid: str,
        started: datetime,
        harness: dict[str, Any],
        result_json: Path,
        stdout: Path,
        stderr: Path,
    ) -> RunOutcome:
        api = self.client.api
        if self._cancelled.is_set():
            return self._failed(cell, started, "cancelled (Ctrl-C) before it started", harness)
        t0 = time.monotonic()
        try:
            api.start(cid)
        except docker.errors.DockerException as exc:
            return self._failed(cell, started, f"docker: cannot start container: {exc}", harness)
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
                return self._failed(
                    cell,
                    started,
                    f"docker: lost the engine while waiting: {one_line(exc)}",
                    harness,
                )
            timed_out = True
        if timed_out:
            # Kill (SIGKILL to init kills the whole container), then read the exit status.
            with contextlib.suppress(docker.errors.APIError):  # exited just before the kill
                api.kill(cid)
            try:
                code = containers.wait(api, cid, _KILL_WAIT_S)
            except (requests.exceptions.RequestException, docker.errors.DockerException):
                code = None
        duration = time.monotonic() - t0
        harness["t_end"] = datetime.now(UTC).isoformat(timespec="microseconds")
        with self._lock:
            cancelled = cid in self._killed
        notes: list[str] = []
        for path, which in ((stdout, "stdout"), (stderr, "stderr")):
            try:
                containers.save_logs(api, cid, path, stdout=which == "stdout")
            except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
                notes.append(f"{which} lost: {one_line(exc)}")
        if notes:
            harness["log_problems"] = notes
        return RunOutcome(
            exit_code=code,
            timed_out=timed_out,
            cancelled=cancelled,
            duration_s=duration,
            started=started,
            result_json=result_json,
            stdout_tail=proc.tail(stdout),
            stderr_tail=proc.tail(stderr),
            executor=self.name,
            base_fingerprint=self.base_fingerprint(cell),
            harness=harness,
        )

    def _failed(
        self, cell: Cell, started: datetime, why: str, harness: dict[str, Any]
    ) -> RunOutcome:
        return harness_failure(
            executor=self.name,
            base_fingerprint=self.base_fingerprint(cell),
            started=started,
            why=why,
            harness=harness,
            cancelled=self._cancelled.is_set(),
        )

    def _untestable(
        self,
        cell: Cell,
        slot: Slot,
        started: datetime,
        result_json: Path,
        reason: str,
        harness: dict[str, Any],
    ) -> RunOutcome:
        payload = {
            "schema": PROTOCOL_SCHEMA,
            "repro": cell.repro,
            "status": "untestable",
            "reason": reason,
            "metrics": {},
            "thresholds": {},
            "provenance": {"written_by": "repromatrix docker executor", "slot": slot.name},
        }
        tmp = result_json.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, indent=2))
        os.replace(tmp, result_json)
        return RunOutcome(
            exit_code=EXIT_UNTESTABLE,
            timed_out=False,
            cancelled=False,
            duration_s=(datetime.now(UTC) - started).total_seconds(),
            started=started,
            result_json=result_json,
            stdout_tail="",
            stderr_tail="",
            executor=self.name,
            base_fingerprint=self.base_fingerprint(cell),
            harness=harness,
        )

    # -- images ------------------------------------------------------------------------


def _image_facts(cell: Cell, base: ImageInfo, envimg: EnvImage | None) -> dict[str, Any]:
    facts: dict[str, Any] = {"ref": cell.base.ref, "id": base.id, "digest": base.digest}
    if envimg is not None:
        facts.update(env_image=envimg.tag, env_image_id=envimg.id, built=envimg.built)
    return facts


def _has_gpu_runtime(info: Mapping[str, Any]) -> bool:
    """Can this engine hand a GPU to a container (NVIDIA runtime, or a CDI spec for it)?"""
    runtimes = info.get("Runtimes") or {}
    if "nvidia" in runtimes or info.get("DefaultRuntime") == "nvidia":
        return True
    for d in info.get("CDISpecDirs") or []:  # Docker >= 25 with CDI enabled
        folder = Path(str(d))
        if folder.is_dir() and any("nvidia" in p.name for p in folder.iterdir()):
            return True
    return False
