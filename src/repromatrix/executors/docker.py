"""Run cells in containers: the only module that talks to Docker (through the Docker SDK).

A cell runs in its *environment image*: the base image of the cell (an NGC image in
production) plus the cell's library pins, built once from `images/env.Dockerfile`, tagged
`repromatrix-env:<hash of its inputs>` and reused by every repro and run with those pins.
A cell without pins runs in the base image itself.

Per cell: the repro's directory is mounted read-only at /repromatrix/repros, a per-cell
output directory read-write at /repromatrix/out (the result JSON lands there), and a
per-environment cache directory at /repromatrix/cache (HOME, Triton, torch extensions, CUDA
PTX cache: reused within the environment, never across library versions, as in envs.py).
The exit code and result JSON are judged by `executors.base.judge`, as for the local
executor.

Every container and built image carries labels (`org.repromatrix.*`): which run and cell it
belongs to and which process on which host owns it. A run removes containers whose owner
process is gone when it connects, and `repromatrix clean` removes them on request, so a
`kill -9` of the runner leaves nothing behind for long and a new run never collides with it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docker
import docker.errors
import requests.exceptions
from docker.types import DeviceRequest, LogConfig

from repromatrix import proc
from repromatrix.envs import EnvCache, exclusive_use, git
from repromatrix.errors import DockerError, EnvironmentBuildError, MissingToolError
from repromatrix.executors.base import (
    PROTOCOL_SCHEMA,
    RESULT_FILE,
    RunOutcome,
    Slot,
    harness_failure,
)
from repromatrix.host import Interpreter
from repromatrix.locks import file_lock
from repromatrix.model import EXIT_UNTESTABLE, Cell, InstallMode, Pin, SourceKind, canonical_json

if TYPE_CHECKING:
    from repromatrix.runner import SessionConfig

log = logging.getLogger("repromatrix.docker")

#: Where things live inside the container.
REPROS_MOUNT = "/repromatrix/repros"
OUT_MOUNT = "/repromatrix/out"
CACHE_MOUNT = "/repromatrix/cache"
PINS_DIR = "/opt/repromatrix/pins"

#: Labels on every container and image we make.
LABEL = "org.repromatrix"
L_KIND = f"{LABEL}.kind"
L_RUN = f"{LABEL}.run-id"
L_CELL = f"{LABEL}.cell"
L_KEY = f"{LABEL}.cell-key"
L_HOST = f"{LABEL}.owner-host"
L_PID = f"{LABEL}.owner-pid"
#: Start time of the owner process (/proc/PID/stat field 22): tells a reused pid apart.
L_PID_START = f"{LABEL}.owner-start"
L_ENV_KEY = f"{LABEL}.env-key"
L_BASE_REF = f"{LABEL}.base-ref"
L_BASE_ID = f"{LABEL}.base-id"
L_PINS = f"{LABEL}.pins"
KIND_CELL = "cell"
KIND_ENV = "env"

ENV_REPOSITORY = "repromatrix-env"
#: Bump when the env image recipe or the context layout changes: images are then rebuilt.
ENV_IMAGE_LAYOUT = 1

NO_NVIDIA_RUNTIME = (
    "no NVIDIA runtime in Docker on this host: install nvidia-container-toolkit "
    "or use --executor local"
)

#: How long the harness waits for a killed container to report its exit.
_KILL_WAIT_S = 30
#: Oldest Docker API the SDK speaks (docker.constants.MINIMUM_DOCKER_API_VERSION).
_MIN_API = "1.24"
#: Build of an environment image (pip may compile an sdist silently for a long time).
_BUILD_TIMEOUT_S = 4 * 3600


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, docker.errors.APIError):
        text = str(exc.explanation or exc)
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())[:300]


def _engine_address(env: Mapping[str, str]) -> str:
    return env.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def engine_client(env: Mapping[str, str]) -> docker.DockerClient:
    """A client for the engine `env` points at (DOCKER_HOST, DOCKER_TLS_VERIFY...), pinged.

    Raises whatever the SDK raises when the engine is not there; callers turn it into one
    line (`unreachable_message`).
    """
    # The SDK's default version="auto" asks the engine for its API version inside the
    # constructor, and when that fails the half-made client leaks its socket. So: ping with
    # a client pinned to the oldest API the SDK speaks (no request at construction), read
    # the engine's API version, then make the real client with it. The short timeout makes
    # an unroutable DOCKER_HOST fail fast; later calls get the ordinary one (`wait` and
    # builds pass their own).
    _preflight(_engine_address(env))
    probe = docker.from_env(environment=dict(env), version=_MIN_API, timeout=15)
    try:
        probe.ping()
        api_version = str(probe.api.version(api_version=False)["ApiVersion"])
    finally:
        probe.close()
    return docker.from_env(
        environment=dict(env), version=api_version, timeout=120, max_pool_size=64
    )


def _preflight(address: str) -> None:
    """Connect to a unix socket ourselves first: the SDK leaks the socket of a failed
    connect (a ResourceWarning), and "No such file or directory" is the plainer reason."""
    if not address.startswith("unix://"):
        return
    path = address.removeprefix("unix://")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(15)
        try:
            sock.connect(path)
        except OSError as exc:
            raise ConnectionError(f"{path}: {exc.strerror or exc}") from None


def unreachable_message(env: Mapping[str, str], exc: BaseException) -> str:
    return (
        f"cannot reach the Docker engine at {_engine_address(env)} ({_one_line(exc)}); "
        "start it (e.g. systemctl start docker) or run with --executor local"
    )


# -- owner processes ------------------------------------------------------------------------


def _process_start(pid: int) -> str:
    """Start time of `pid` in clock ticks since boot ('' when unknown or not Linux)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else ""


def _owner_alive(labels: Mapping[str, str], hostname: str) -> bool | None:
    """True/False for a container owned by a process of this host; None for another host."""
    if labels.get(L_HOST) != hostname:
        return None
    try:
        pid = int(labels.get(L_PID, ""))
    except ValueError:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by someone else
    started = labels.get(L_PID_START, "")
    return not started or _process_start(pid) in ("", started)


def _owner_labels() -> dict[str, str]:
    pid = os.getpid()
    return {L_HOST: socket.gethostname(), L_PID: str(pid), L_PID_START: _process_start(pid)}


def _remove_orphans(client: docker.DockerClient, *, hostname: str) -> list[str]:
    """Remove cell containers of this host whose owner process is gone (a killed run)."""
    removed: list[str] = []
    for c in client.containers.list(
        all=True, sparse=True, filters={"label": [f"{L_KIND}={KIND_CELL}"]}
    ):
        labels: Mapping[str, str] = c.attrs.get("Labels") or {}
        if _owner_alive(labels, hostname) is not False:
            continue
        name = _listed_name(c)
        try:
            client.api.remove_container(str(c.id), force=True)
        except docker.errors.NotFound:
            continue
        except docker.errors.APIError as exc:
            log.warning("cannot remove leftover container %s: %s", name, _one_line(exc))
            continue
        removed.append(f"container {name}")
    return removed


def clean_leftovers(
    *, env: Mapping[str, str], images: bool = True, required: bool = True
) -> list[str]:
    """Remove containers of ours left by crashed runs, and (`images`) our env images.

    Containers whose owner process is still alive on this host belong to a run in progress
    and are kept; so are containers of other hosts sharing this engine, unless they stopped.
    With `required=False` an unreachable engine is not an error (plain `repromatrix clean`).
    """
    try:
        client = engine_client(env)
    except Exception as exc:  # the SDK raises DockerException, requests errors, OSError
        if required:
            raise DockerError(unreachable_message(env, exc)) from None
        return []
    hostname = socket.gethostname()
    try:
        removed = _remove_orphans(client, hostname=hostname)
        for c in client.containers.list(
            all=True, sparse=True, filters={"label": [f"{L_KIND}={KIND_CELL}"]}
        ):
            labels = c.attrs.get("Labels") or {}
            if _owner_alive(labels, hostname) is None and c.attrs.get("State") != "running":
                client.api.remove_container(str(c.id), force=True)
                removed.append(f"container {_listed_name(c)}")
        if images:
            for img in client.images.list(filters={"label": f"{L_KIND}={KIND_ENV}"}):
                tags = img.tags or [str(img.id)]
                try:
                    client.images.remove(str(img.id), force=False)
                except docker.errors.APIError as exc:  # in use by a running container
                    log.warning("keeping image %s: %s", tags[0], _one_line(exc))
                    continue
                removed.append(f"image {tags[0]}")
            # Layers of failed or removed builds (env.Dockerfile labels every step).
            pruned = client.images.prune(
                filters={"dangling": True, "label": f"{L_KIND}={KIND_ENV}"}
            )
            layers = len(pruned.get("ImagesDeleted") or [])
            if layers:
                removed.append(f"{layers} dangling env image layer(s)")
        return removed
    finally:
        client.close()


def _listed_name(c: Any) -> str:
    names = c.attrs.get("Names") or [c.id]
    return str(names[0]).lstrip("/")


# -- environment images ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ImageInfo:
    ref: str
    id: str
    #: Registry digest (repo@sha256:...) when the image came from a registry.
    digest: str | None
    #: PYTHONPATH the image sets (kept when pins are added in front of it).
    pythonpath: str


@dataclass(frozen=True, kw_only=True)
class EnvImage:
    tag: str
    id: str
    key: str
    base: ImageInfo
    #: Resolved pins, as envs.ResolvedPin.describe() writes them.
    pins: Mapping[str, Mapping[str, Any]]
    #: Paths (inside the image) to put first on PYTHONPATH (install: pythonpath pins).
    pythonpath: tuple[str, ...]
    #: True when this call built the image (False: it was there already).
    built: bool


class DockerExecutor:
    name = "docker"

    def __init__(
        self,
        client: docker.DockerClient,
        *,
        config: SessionConfig,
        env: Mapping[str, str],
        images_dir: Path | None = None,
    ) -> None:
        self.client = client
        self.config = config
        self.base_env = dict(env)
        self.hostname = socket.gethostname()
        self.images_dir = images_dir or _default_images_dir(config)
        self.cache_root = config.cache.resolve() / "docker"
        # Only the git side of EnvCache is used here (shared bare clones under cache/git);
        # the interpreter it would pip-install with is the one inside the image.
        self.git = EnvCache(
            config.cache.resolve(),
            Interpreter(executable="python3", version="", fingerprint="docker", packages={}),
            config.sources,
        )
        self.gpu_runtime = _has_gpu_runtime(client.info())
        #: How many environment images this executor built (reuse shows as 0).
        self.builds = 0
        self._lock = threading.Lock()
        self._bases: dict[str, ImageInfo | str] = {}
        self._env_locks: dict[str, threading.Lock] = {}
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
            for item in _remove_orphans(client, hostname=executor.hostname):
                log.info("removed leftover %s", item)
        except docker.errors.DockerException as exc:
            client.close()
            return unreachable_message(env, exc)
        return executor

    # -- Executor protocol -------------------------------------------------------------

    def base_fingerprint(self, cell: Cell) -> str:
        info = self._bases.get(cell.base.ref)
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
        info = self.base_image(cell.base.ref)
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
        base = self.base_image(cell.base.ref)
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
            envimg = self.ensure_env_image(
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
        name = _container_name(run_id, cell.key)
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
                log.warning("cannot remove container %s: %s", name, _one_line(exc))

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
                log.warning("cannot remove container %s: %s", cid[:12], _one_line(exc))

    def close(self) -> None:
        self.client.close()

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
        api = self.client.api
        digest = envimg.base.digest or envimg.base.id
        environment = {
            "PYTHONUNBUFFERED": "1",
            "REPROMATRIX_CELL": cell.id,
            "REPROMATRIX_KEY": cell.key,
            "REPROMATRIX_BASE": cell.base.name,
            "REPROMATRIX_IMAGE_REF": cell.base.ref,
            "REPROMATRIX_IMAGE_DIGEST": digest,
            "REPROMATRIX_ENV": envimg.key,
            "REPROMATRIX_ENV_IMAGE": envimg.tag,
            "REPROMATRIX_LIBRARIES": json.dumps(dict(envimg.pins), sort_keys=True),
            # Caches per environment, as envs.Environment.variables() does on the host.
            "HOME": f"{CACHE_MOUNT}/home",
            "XDG_CACHE_HOME": f"{CACHE_MOUNT}/xdg",
            "TRITON_CACHE_DIR": f"{CACHE_MOUNT}/triton",
            "TORCH_EXTENSIONS_DIR": f"{CACHE_MOUNT}/torch_extensions",
            "CUDA_CACHE_PATH": f"{CACHE_MOUNT}/nv",
            # We run as the host user's uid, which has no passwd entry in the image;
            # getpass.getuser() (torch inductor's cache dir) then needs these.
            "USER": "repromatrix",
            "LOGNAME": "repromatrix",
        }
        # Host toolchain workarounds (--cell-env), as the local executor applies them.
        environment.update(self.config.cell_env)
        for sub in ("home", "xdg"):
            (cache_dir / sub).mkdir(exist_ok=True)
        pythonpath = [
            *envimg.pythonpath,
            *([envimg.base.pythonpath] if envimg.base.pythonpath else []),
        ]
        if pythonpath:
            environment["PYTHONPATH"] = ":".join(pythonpath)
        device_requests: list[DeviceRequest] = []
        if slot.gpu is not None:
            # Exactly the slot's GPU: the runtime sets NVIDIA_VISIBLE_DEVICES from this.
            device_requests.append(
                DeviceRequest(device_ids=[slot.gpu.uuid], capabilities=[["gpu"]])
            )
        else:
            # NGC images set NVIDIA_VISIBLE_DEVICES=all; with nvidia as the default runtime
            # a CPU cell would see every GPU. "void" gives it none.
            environment["NVIDIA_VISIBLE_DEVICES"] = "void"
            environment["CUDA_VISIBLE_DEVICES"] = ""
        host_config = api.create_host_config(
            binds={
                str(cell.script.resolve().parent): {"bind": REPROS_MOUNT, "mode": "ro"},
                str(out_dir): {"bind": OUT_MOUNT, "mode": "rw"},
                str(cache_dir): {"bind": CACHE_MOUNT, "mode": "rw"},
            },
            # PID 1 of a container ignores signals it has no handler for, so a repro that
            # is PID 1 would survive its own SIGSEGV/SIGABRT; docker-init (tini) as PID 1
            # forwards signals, reaps the repro's children and exits 128+N when it dies.
            init=True,
            device_requests=device_requests or None,
            # json-file keeps the whole output until we read it (no rotation, no loss).
            log_config=LogConfig(type=LogConfig.types.JSON, config={}),
            # A killed run's container must stay until its exit code is read: never
            # auto-remove (it races with `wait`); we remove it ourselves, and clean does.
            auto_remove=False,
            shm_size="1g",
        )
        labels = {
            L_KIND: KIND_CELL,
            L_RUN: run_id,
            L_CELL: cell.id,
            L_KEY: cell.key,
            L_BASE_REF: cell.base.ref,
            L_ENV_KEY: envimg.key,
            **_owner_labels(),
        }
        command = [
            "python3",
            f"{REPROS_MOUNT}/{cell.script.name}",
            "--out",
            f"{OUT_MOUNT}/{RESULT_FILE}",
            "--params",
            json.dumps(dict(cell.params), sort_keys=True),
        ]
        created = api.create_container(
            envimg.id,
            command=command,
            name=name,
            labels=labels,
            environment=environment,
            working_dir=OUT_MOUNT,
            # The host user's ids, so result files and caches stay removable by them.
            user=f"{os.getuid()}:{os.getgid()}",
            host_config=host_config,
        )
        cid = str(created["Id"])
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
            code = _wait(api, cid, limit)
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as exc:
            # The wall-clock limit: the read of `wait` timed out (over a unix socket the SDK
            # reports that as a ConnectionError "Read timed out"). Anything sooner is the
            # engine going away, which is the harness's failure, not the repro's.
            if time.monotonic() - t0 < limit - 1.0:
                return self._failed(
                    cell,
                    started,
                    f"docker: lost the engine while waiting: {_one_line(exc)}",
                    harness,
                )
            timed_out = True
        if timed_out:
            # Kill (SIGKILL to init kills the whole container), then read the exit status.
            with contextlib.suppress(docker.errors.APIError):  # exited just before the kill
                api.kill(cid)
            try:
                code = _wait(api, cid, _KILL_WAIT_S)
            except (requests.exceptions.RequestException, docker.errors.DockerException):
                code = None
        duration = time.monotonic() - t0
        harness["t_end"] = datetime.now(UTC).isoformat(timespec="microseconds")
        with self._lock:
            cancelled = cid in self._killed
        notes: list[str] = []
        for path, which in ((stdout, "stdout"), (stderr, "stderr")):
            try:
                _save_logs(api, cid, path, stdout=which == "stdout")
            except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
                notes.append(f"{which} lost: {_one_line(exc)}")
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

    def base_image(self, ref: str) -> ImageInfo | str:
        """The base image per the pull policy (memoized), or why it is not available here."""
        from repromatrix.runner import PullPolicy

        with self._lock:
            known = self._bases.get(ref)
        if known is not None:
            return known
        policy = self.config.pull
        found = self._inspect(ref)
        if isinstance(found, ImageInfo) and policy is not PullPolicy.ALWAYS:
            result: ImageInfo | str = found
        elif found is not None and not isinstance(found, ImageInfo):
            result = found
        elif policy is PullPolicy.NEVER:
            result = (
                f"image {ref} is not on this host and --pull never forbids pulling it; "
                "load it (docker load -i ...) or use --pull missing"
            )
        else:
            result = self._pull(ref)
        with self._lock:
            self._bases[ref] = result
        return result

    def _inspect(self, ref: str) -> ImageInfo | str | None:
        try:
            attrs: dict[str, Any] = self.client.api.inspect_image(ref)  # type: ignore[no-untyped-call]
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.DockerException as exc:
            return f"cannot inspect image {ref}: {_one_line(exc)}"
        digests = [str(d) for d in attrs.get("RepoDigests") or []]
        env_list = (attrs.get("Config") or {}).get("Env") or []
        pythonpath = next(
            (e.split("=", 1)[1] for e in env_list if str(e).startswith("PYTHONPATH=")), ""
        )
        return ImageInfo(
            ref=ref,
            id=str(attrs["Id"]),
            digest=digests[0] if digests else None,
            pythonpath=pythonpath,
        )

    def _pull(self, ref: str) -> ImageInfo | str:
        log.info("pulling %s", ref)
        try:
            self.client.images.pull(ref)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            return (
                f"cannot pull image {ref} ({_one_line(exc)}); preload it (docker load) "
                "and run with --pull never, or check the registry login"
            )
        found = self._inspect(ref)
        return found if found is not None else f"image {ref} was pulled but is not found"

    def ensure_env_image(
        self, cell: Cell, base: ImageInfo, *, log_path: Path, run_id: str = ""
    ) -> EnvImage:
        """The environment image of (base, pins): reused when present, else built once."""
        if not cell.pins:
            return EnvImage(
                tag=base.ref,
                id=base.id,
                key=f"base-{base.id.removeprefix('sha256:')[:16]}",
                base=base,
                pins={},
                pythonpath=(),
                built=False,
            )
        resolved = [self._resolve(pin) for pin in cell.pins]
        recipe = self.recipe_path().read_text()
        material = {
            "layout": ENV_IMAGE_LAYOUT,
            "recipe": recipe,
            "base": {"ref": base.ref, "id": base.id},
            "pins": sorted(
                ({**p.key_material(), "commit": commit} for p, commit, _ in resolved),
                key=lambda m: str(m["library"]),
            ),
            "pip": {
                "no_index": self.config.sources.no_index,
                "args": list(self.config.sources.pip_args),
            },
        }
        key = hashlib.sha256(canonical_json(material).encode()).hexdigest()[:16]
        tag = f"{ENV_REPOSITORY}:{key}"
        pins = {
            p.library: {
                "rev": p.rev,
                "label": p.label,
                "kind": p.kind.value,
                "source": p.source,
                "commit": commit,
                "committed": committed,
                "install": p.install.value,
            }
            for p, commit, committed in resolved
        }
        pythonpath = tuple(
            f"{PINS_DIR}/src/{p.library}"
            for p, _, _ in resolved
            if p.kind is SourceKind.GIT and p.install is InstallMode.PYTHONPATH
        )
        with self._lock:
            lock = self._env_locks.setdefault(key, threading.Lock())
        # Threads of this run wait on the lock; other runs on this host on the file lock.
        with lock, file_lock(self.cache_root / "locks" / f"env-{key}.lock"):
            found = self._inspect(tag)
            if isinstance(found, ImageInfo):
                return EnvImage(
                    tag=tag,
                    id=found.id,
                    key=key,
                    base=base,
                    pins=pins,
                    pythonpath=pythonpath,
                    built=False,
                )
            image_id = self._build(tag, key, base, resolved, pins, log_path, run_id, cell)
        return EnvImage(
            tag=tag, id=image_id, key=key, base=base, pins=pins, pythonpath=pythonpath, built=True
        )

    def recipe_path(self) -> Path:
        path = self.images_dir / "env.Dockerfile"
        if not path.is_file():
            path = _packaged_recipe()
        return path

    def _resolve(self, pin: Pin) -> tuple[Pin, str | None, str | None]:
        if pin.kind is SourceKind.PYPI:
            return pin, None, None
        repo = self.git.mirror(pin.library, pin.source)
        spec = f"{pin.rev}^{{commit}}"
        try:
            commit = git(repo, "rev-parse", "--verify", "--quiet", spec)
        except proc.CommandFailed:
            self.git.update_mirror(pin.library, pin.source)
            try:
                commit = git(repo, "rev-parse", "--verify", "--quiet", spec)
            except proc.CommandFailed:
                raise EnvironmentBuildError(
                    f"git revision '{pin.rev}' of {pin.library} not found in {pin.source}; "
                    "check the revision or the --git-mirror"
                ) from None
        return pin, commit, git(repo, "show", "-s", "--format=%cI", commit)

    def _build(
        self,
        tag: str,
        key: str,
        base: ImageInfo,
        resolved: list[tuple[Pin, str | None, str | None]],
        pins: Mapping[str, Mapping[str, Any]],
        log_path: Path,
        run_id: str,
        cell: Cell,
    ) -> str:
        with tempfile.TemporaryDirectory(prefix="repromatrix-env-") as tmp:
            ctx = Path(tmp)
            shutil.copyfile(self.recipe_path(), ctx / "env.Dockerfile")
            requirements = self._context(ctx / "pins", resolved)
            buildargs = {
                "BASE": base.ref,
                "PIP_ARGS": " ".join(
                    [
                        *(["--no-index"] if self.config.sources.no_index else []),
                        *self.config.sources.pip_args,
                    ]
                ),
            }
            labels = {
                L_KIND: KIND_ENV,
                L_ENV_KEY: key,
                L_BASE_REF: base.ref,
                L_BASE_ID: base.id,
                L_PINS: json.dumps(dict(pins), sort_keys=True),
                L_RUN: run_id,
                L_CELL: cell.id,
                **_owner_labels(),
            }
            log.info("building %s from %s (%d requirement(s))", tag, base.ref, requirements)
            log_path.parent.mkdir(parents=True, exist_ok=True)
            lines: list[str] = []
            try:
                stream = self.client.api.build(
                    path=str(ctx),
                    dockerfile="env.Dockerfile",
                    tag=tag,
                    buildargs=buildargs,
                    labels=labels,
                    rm=True,
                    forcerm=True,  # no intermediate containers left when a step fails
                    pull=False,  # the base is resolved per the pull policy already
                    decode=True,
                    timeout=_BUILD_TIMEOUT_S,
                )
                error = None
                for chunk in stream:
                    if "stream" in chunk:
                        lines.append(str(chunk["stream"]))
                    if "error" in chunk:
                        error = str(chunk["error"]).strip()
            except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
                error = _one_line(exc)
            log_path.write_text(
                f"# docker build -t {tag} --build-arg BASE={base.ref} (images/env.Dockerfile)\n"
                + "".join(lines)
                + (f"\n# build failed: {error}\n" if error is not None else "")
            )
            if error is not None:
                # The tool's own last ERROR line (pip's "No matching distribution found for
                # ...") says more than the builder's "returned a non-zero code".
                text = _ANSI.sub("", "".join(lines))
                last = next(
                    (
                        ln.strip()
                        for ln in reversed(text.splitlines())
                        if ln.lstrip().startswith("ERROR")
                    ),
                    error,
                )
                raise EnvironmentBuildError(
                    f"building {tag} from {base.ref} failed: {last[:300]} (log: {log_path})"
                )
        found = self._inspect(tag)
        if not isinstance(found, ImageInfo):
            raise EnvironmentBuildError(f"built {tag} but the engine does not show it")
        with self._lock:
            self.builds += 1
        return found.id

    def _context(self, pins_dir: Path, resolved: list[tuple[Pin, str | None, str | None]]) -> int:
        """Fill the build context: git archives, find-links folders, requirements.txt."""
        (pins_dir / "src").mkdir(parents=True)
        (pins_dir / "links").mkdir()
        requirements: list[str] = []
        for pin, commit, _ in resolved:
            if pin.kind is SourceKind.PYPI:
                requirements.append(f"{pin.source}=={pin.rev}")
            else:
                assert commit is not None
                dest = pins_dir / "src" / pin.library
                dest.mkdir()
                self.git.export(pin.library, pin.source, commit, dest)
                if pin.install is InstallMode.PIP:
                    requirements.append(f"{PINS_DIR}/src/{pin.library}")
            requirements.extend(pin.requires)
        if any(p.kind is SourceKind.PYPI or p.requires for p, _, _ in resolved):
            for i, folder in enumerate(self.config.sources.find_links):
                shutil.copytree(folder, pins_dir / "links" / str(i), copy_function=_link_or_copy)
        (pins_dir / "requirements.txt").write_text("".join(f"{r}\n" for r in requirements))
        return len(requirements)


# -- helpers --------------------------------------------------------------------------------


def _wait(api: Any, cid: str, timeout_s: float) -> int:
    status = api.wait(cid, timeout=max(1, math.ceil(timeout_s)))
    return int(status.get("StatusCode", -1))


def _save_logs(api: Any, cid: str, path: Path, *, stdout: bool) -> None:
    """Stream one of the container's output streams into a file (no size limit)."""
    with path.open("wb") as f:
        for chunk in api.logs(cid, stdout=stdout, stderr=not stdout, stream=True, follow=False):
            f.write(chunk)


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


#: The legacy builder colours a step's stderr with terminal escapes.
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_NAME_BAD = re.compile(r"[^a-zA-Z0-9_.-]+")


def _container_name(run_id: str, key: str) -> str:
    """Unique per cell and run (a random tail: no collision with any leftover)."""
    safe = _NAME_BAD.sub("-", run_id).strip("-.")[:80] or "run"
    return f"repromatrix-{safe}-{key[:12]}-{secrets.token_hex(3)}"


def _default_images_dir(config: SessionConfig) -> Path:
    return Path(config.images_dir).resolve()


def _packaged_recipe() -> Path:
    """images/env.Dockerfile of the source tree this package was installed from."""
    return Path(__file__).resolve().parents[3] / "images" / "env.Dockerfile"


def _link_or_copy(src: str, dst: str) -> object:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst
