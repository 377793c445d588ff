"""Run cells in containers: one labelled container per cell, judged like any other run.

How the container is made (mounts, environment, GPU) is `containers.py`; the exit code and
result JSON are judged by `executors.judge`, as for the local executor.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import socket
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests
import urllib3.exceptions

from repromatrix import proc
from repromatrix.env_use import exclusive_use
from repromatrix.errors import DockerError, EnvironmentBuildError, MissingToolError
from repromatrix.executors.base import (
    ENGINE_LOST,
    ENGINE_STORAGE,
    HOST_STORAGE,
    HOST_STORAGE_AT,
    MISSING_TOOL,
    OOM_KILLED,
    RESULT_FILE,
    FailedBuilds,
    RunOutcome,
    Slot,
    harness_failure,
    run_identity,
    run_of,
)
from repromatrix.executors.cell_inputs import lay_inputs
from repromatrix.executors.docker import containers
from repromatrix.executors.docker.containers import REPROS_MOUNT
from repromatrix.executors.docker.engine import engine_client, one_line, unreachable_message
from repromatrix.executors.docker.gpu_runtime import (
    NO_NVIDIA_RUNTIME,
    has_gpu_runtime,
    untestable_outcome,
)
from repromatrix.executors.docker.images import EnvImage, ImageInfo, Images
from repromatrix.executors.docker.isolated import CellContainers
from repromatrix.executors.docker.janitor import remove_orphans
from repromatrix.executors.docker.pythons import ImagePythons
from repromatrix.executors.docker.workers import RUNS_MOUNT, note_removed, start_worker_container
from repromatrix.executors.refusals import RefusedImages
from repromatrix.executors.worker_pool import WorkerPool
from repromatrix.executors.workers import CellRequest, WorkerFailed, WorkerProcess
from repromatrix.git_pins import moving_commits
from repromatrix.model import Cell
from repromatrix.options import SessionConfig
from repromatrix.release_files import Target

log = logging.getLogger("repromatrix.docker")

#: How the engine says its own storage cannot take a container's layer, an image build's
#: or a worker's start (ENOSPC, EDQUOT, EROFS as Go prints them).
_ENGINE_FULL = re.compile(
    r"no space left on device|disk quota exceeded|read-only file system", re.IGNORECASE
)

#: How the engine says its NVIDIA runtime found no driver to give a GPU cell's container
#: (the toolkit installed, the driver not, or not loaded): every GPU cell fails so.
_NO_GPU_DRIVER = re.compile(r'could not select device driver "[^"]*" with capabilities')


class DockerExecutor:
    name = "docker"

    def __init__(
        self,
        client: docker.DockerClient,
        *,
        config: SessionConfig,
        env: Mapping[str, str],
        failed_builds: FailedBuilds | None = None,
    ) -> None:
        self.client = client
        self.config = config
        self.base_env = dict(env)
        self.hostname = socket.gethostname()
        self.images = Images(client, config=config)
        if failed_builds is not None:  # a Ray node's: each slot is a process of its own
            self.images.failed_builds = failed_builds
        self.cache_root = config.cache.resolve() / "docker"
        self.gpu_runtime = has_gpu_runtime(client.info())
        self.pool = WorkerPool(max_rss_mb=config.worker_max_rss_mb)
        self.cells = CellContainers(client.api, cell_env=dict(config.cell_env))
        self.pythons = ImagePythons(client.api, self.cache_root / "pythons")
        self._refused = RefusedImages()
        self._cancelled = threading.Event()

    @classmethod
    def connect(
        cls,
        config: SessionConfig,
        *,
        env: Mapping[str, str],
        failed_builds: FailedBuilds | None = None,
    ) -> DockerExecutor | str:
        """The executor, or one line saying why there is none here (engine unreachable);
        `failed_builds`: the image builds that failed in a run, where others share them."""
        try:
            client = engine_client(env)
        except Exception as exc:  # the SDK raises DockerException, requests errors, OSError
            return unreachable_message(env, exc)
        try:
            executor = cls(client, config=config, env=env, failed_builds=failed_builds)
            # A run killed with -9 leaves its containers; remove them before starting ours.
            for item in remove_orphans(client, hostname=executor.hostname):
                log.info("removed leftover %s", item)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            # requests' own: an engine that answered the ping and stopped just after.
            client.close()
            return unreachable_message(env, exc)
        return executor

    # -- Executor protocol -------------------------------------------------------------

    def base_fingerprint(self, cell: Cell) -> str:
        info = self.images.known(cell.base.ref)
        image = f"image:{info.id}" if isinstance(info, ImageInfo) else f"image:{cell.base.ref}"
        if cell.needs_gpu and not self.gpu_runtime:
            # Its record is "untestable: install nvidia-container-toolkit": the run after
            # that install must run the cell, where the same base reused the record.
            image += "+no-nvidia-runtime"
        moved = moving_commits(self.images.mirrors, cell.pins)
        return run_identity(image, cell_env=self.config.cell_env, moved=moved)

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

    def refuses(self, cell: Cell) -> str | None:
        """Why a cell `can_run` accepted and that is about to run cannot (its image's
        python3 is missing or too old), or None. Asked only of cells that will run, not
        in `can_run`: planning asks that of reused cells too, and the answer costs a
        container per image (none once the image's good answer is in the cache)."""
        info = self.images.base_image(cell.base.ref)
        if isinstance(info, str):
            return info
        # Asked once per image, before any of its cells: an interpreter that cannot run
        # the worker made every cell of the image an error record, reused by later runs.
        why = self.pythons.unusable(info.id, cell.base.ref)
        if why is not None:
            self._refused.add(cell, why)
        return why

    def image_target(self, ref: str) -> Target | None:
        """The version and wheel tags of image `ref`'s python3, which installs the pins
        of its cells (None: not known, as for an image that cannot be had or says no
        tags): a release bisection in the image lists what installs there."""
        info = self.images.base_image(ref)
        return None if isinstance(info, str) else self.pythons.target(info.id, ref)

    def refused_images(self) -> str | None:
        """Why the run must not end with exit 0: images whose python3 cannot run cells
        (their cells noted "not run here"), as a local run refuses such an interpreter
        before any cell; None when every image could."""
        return self._refused.line()

    def run(self, cell: Cell, slot: Slot, workdir: Path) -> RunOutcome:
        started = datetime.now(UTC)
        try:
            outcome = self._run(cell, slot, workdir, started)
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as exc:
            # urllib3's own: a stream the engine's death cut (an image build's output)
            # raises ProtocolError, which requests does not wrap there.
            outcome = self._failed(cell, started, f"docker: {one_line(exc)}", {})
        failed = outcome.harness_error is not None or outcome.exit_code is None
        # A signal's exit: also how an engine that stops (SIGTERM, a restart) ends its
        # containers, which is no verdict on the cell when the engine is gone after it.
        signalled = outcome.exit_code is not None and outcome.exit_code > 128
        if not (failed or signalled) or outcome.cancelled:
            return outcome
        # Not the repro's failure, and every later cell would fail the same way: the
        # scheduler stops the run (exit 5, or 8 for a full disk) and records nothing for
        # this cell, where an error record would be reused by every later run.
        if not self._engine_answers():
            why = "the Docker engine stopped answering"
            return dataclasses.replace(outcome, harness={**outcome.harness, ENGINE_LOST: why})
        driver = _NO_GPU_DRIVER.search(outcome.harness_error or "")
        if driver is not None:  # an `error` record, reused by later runs: this host's fault
            why = (
                f"the Docker engine cannot give its container a GPU ({driver.group()} "
                "[[gpu]]): install the NVIDIA driver and nvidia-container-toolkit (`nvidia-ctk "
                "runtime configure`, then restart dockerd), or use --executor local"
            )
            return dataclasses.replace(outcome, harness={**outcome.harness, MISSING_TOOL: why})
        if _ENGINE_FULL.search(outcome.harness_error or ""):  # it cannot make containers
            full = {HOST_STORAGE: outcome.harness_error, HOST_STORAGE_AT: ENGINE_STORAGE}
            return dataclasses.replace(outcome, harness={**outcome.harness, **full})
        return outcome

    def _engine_answers(self) -> bool:
        try:
            return bool(self.client.api.ping())
        except Exception:  # the SDK raises DockerException, requests errors, OSError
            return False

    def _run(self, cell: Cell, slot: Slot, workdir: Path, started: datetime) -> RunOutcome:
        workdir = workdir.resolve()
        out_dir = workdir / "out"
        out_dir.mkdir(parents=True, exist_ok=True)
        result_json = out_dir / RESULT_FILE
        result_json.unlink(missing_ok=True)
        lay_inputs(cell, out_dir)  # the container's working folder, its own or a worker's
        run_id = run_of(workdir)
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
            # Not `can_run`: a reason there makes the cell "not run here" (gpu_runtime.py).
            return untestable_outcome(
                cell,
                slot,
                started,
                result_json,
                reason=NO_NVIDIA_RUNTIME,
                executor=self.name,
                base_fingerprint=self.base_fingerprint(cell),
                harness=harness,
            )
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
        if not (self.config.isolate or cell.isolate):
            with exclusive_use(cache_dir, [cache_dir], pinned=bool(cell.pins)) as stale:
                if stale:
                    harness["removed_stale_locks"] = stale
                return self._in_worker(cell, slot, envimg, workdir, cache_dir, started, harness)
        harness["isolated"] = True
        return self._isolated(cell, slot, envimg, workdir, cache_dir, started, harness)

    def _isolated(
        self,
        cell: Cell,
        slot: Slot,
        envimg: EnvImage,
        workdir: Path,
        cache_dir: Path,
        started: datetime,
        harness: dict[str, Any],
    ) -> RunOutcome:
        """A container of the cell's own (`isolate`)."""
        run_id = run_of(workdir)
        out_dir = workdir / "out"
        name = containers.container_name(run_id, cell.key)
        harness["container"] = name
        try:
            cid = self.cells.create(cell, slot, envimg, name, run_id, out_dir, cache_dir)
        except docker.errors.DockerException as exc:
            why = f"docker: cannot create container: {one_line(exc)}"
            return self._failed(cell, started, why, harness)
        stdout, stderr = workdir / "stdout.log", workdir / "stderr.log"
        try:
            with exclusive_use(cache_dir, [cache_dir], pinned=bool(cell.pins)) as stale:
                if stale:
                    harness["removed_stale_locks"] = stale
                waited = self.cells.start_and_wait(
                    cell, cid, started, harness, out_dir / RESULT_FILE, stdout, stderr
                )
        finally:
            self.cells.remove(cid, name)
        if isinstance(waited, str):
            return self._failed(cell, started, waited, harness)
        return RunOutcome(
            exit_code=waited.code,
            timed_out=waited.timed_out,
            cancelled=waited.cancelled,
            duration_s=waited.duration_s,
            started=started,
            result_json=out_dir / RESULT_FILE,
            stdout_tail=proc.tail(stdout),
            stderr_tail=proc.tail(stderr),
            executor=self.name,
            base_fingerprint=self.base_fingerprint(cell),
            harness=harness,
        )

    def cancel(self) -> None:
        self._cancelled.set()
        self.images.cancel()
        self.pool.close(kill=True)
        self.cells.cancel()

    def close(self) -> None:
        self.pool.close()
        self.client.close()

    # -- running -----------------------------------------------------------------------

    def _in_worker(
        self,
        cell: Cell,
        slot: Slot,
        envimg: EnvImage,
        workdir: Path,
        cache_dir: Path,
        started: datetime,
        harness: dict[str, Any],
    ) -> RunOutcome:
        """Run the cell in the worker container of (environment image, slot)."""
        # <cache>/runs/<run id>: this run's cells, and no other run's (a cell must not
        # read or rewrite another run's results).
        run_dir = workdir.parent
        run_id = run_dir.name
        inside = f"{RUNS_MOUNT}/{run_id}/{workdir.name}"

        made: list[WorkerProcess] = []  # the containers this cell started, if any

        def start(folder: Path) -> WorkerProcess:
            made.append(
                start_worker_container(
                    self.client.api,
                    cell=cell,
                    envimg=envimg,
                    gpu=slot.gpu,
                    folder=folder,
                    run_dir=run_dir,
                    cache_dir=cache_dir,
                    cell_env=dict(self.config.cell_env),
                    name=containers.container_name(f"{run_id}-worker-{slot.name}", envimg.key),
                    run_id=run_id,
                )
            )
            return made[-1]

        worker_key = (envimg.key, str(cell.script.resolve().parent), str(run_dir))
        env = containers.environment(
            cell, envimg, cell_env=self.config.cell_env, cache_dir=cache_dir, gpu=slot.gpu
        )
        request = CellRequest(
            script=f"{REPROS_MOUNT}/{cell.script.name}",
            params=cell.params,
            out=f"{inside}/out/{RESULT_FILE}",
            stdout=f"{inside}/stdout.log",
            stderr=f"{inside}/stderr.log",
            cwd=f"{inside}/out",
            env={k: v for k, v in env.items() if k.startswith("REPROMATRIX_")},
            fresh_tmp=True,  # as a container of the cell's own starts with the image's /tmp
        )
        try:
            worker, done = self.pool.run(
                slot.name, worker_key, start, request, cell.timeout_s, connect_s=cell.timeout_s
            )
        except WorkerFailed as exc:
            note_removed(made, harness)  # then the run stops, and no record is made
            if exc.timed_out:  # the cell's time ran out before its worker could start
                return dataclasses.replace(
                    self._failed(cell, started, "", harness), harness_error=None, timed_out=True
                )
            return self._failed(cell, started, f"docker worker: {one_line(exc)}", harness)
        except (OSError, docker.errors.DockerException) as exc:
            return self._failed(cell, started, f"docker worker: {one_line(exc)}", harness)
        t_end = datetime.now(UTC)
        harness["t_start"] = (t_end - timedelta(seconds=done.duration_s)).isoformat(
            timespec="microseconds"
        )
        harness["t_end"] = t_end.isoformat(timespec="microseconds")
        harness["worker"] = {
            **worker.process.describe(),
            "cell": worker.cells,
            "retired": done.why or None,
            **({"rerun": done.rerun} if done.rerun else {}),
        }
        harness["container"] = harness["worker"]["container"]
        if getattr(worker.process, "oom_killed", False):
            harness[OOM_KILLED] = True
        note_removed([worker.process, *made], harness)
        if not done.started:  # twice: not the cell's doing (the engine going, say)
            return self._failed(cell, started, f"docker worker: {done.why}", harness)
        return RunOutcome(
            exit_code=done.exit_code,
            timed_out=done.timed_out,
            cancelled=self._cancelled.is_set(),
            duration_s=done.duration_s,
            started=started,
            result_json=workdir / "out" / RESULT_FILE,
            stdout_tail=proc.tail(workdir / "stdout.log"),
            stderr_tail=proc.tail(workdir / "stderr.log"),
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

    # -- images ------------------------------------------------------------------------


def _image_facts(cell: Cell, base: ImageInfo, envimg: EnvImage | None) -> dict[str, Any]:
    facts: dict[str, Any] = {"ref": cell.base.ref, "id": base.id, "digest": base.digest}
    if envimg is not None:
        facts.update(env_image=envimg.tag, env_image_id=envimg.id, built=envimg.built)
    return facts
