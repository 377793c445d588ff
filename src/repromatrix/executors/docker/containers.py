"""How a cell's container is made: its environment, mounts, GPU and process settings.

Per cell: the repro's directory is mounted read-only at /repromatrix/repros, a per-cell
output directory read-write at /repromatrix/out (the result JSON lands there), and a
per-environment cache directory at /repromatrix/cache (HOME, Triton, torch extensions, CUDA
PTX cache: reused within the environment, never across library versions, as on the host).
"""

from __future__ import annotations

import math
import os
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import docker.errors
import requests.exceptions
from docker.types import DeviceRequest, LogConfig, Mount

from repromatrix.executors.cellenv import cell_variables
from repromatrix.executors.docker.images import EnvImage
from repromatrix.host import HostGpu
from repromatrix.model import Cell

#: Where things live inside the container.
REPROS_MOUNT = "/repromatrix/repros"
OUT_MOUNT = "/repromatrix/out"
CACHE_MOUNT = "/repromatrix/cache"

_NAME_BAD = re.compile(r"[^a-zA-Z0-9_.-]+")


def environment(
    cell: Cell,
    envimg: EnvImage,
    *,
    cell_env: Mapping[str, str],
    cache_dir: Path,
    gpu: HostGpu | None,
) -> dict[str, str]:
    """The container's environment: the cell's variables, the image facts, --cell-env."""
    variables = cell_variables(
        cell,
        env_key=envimg.key,
        libraries=envimg.pins,
        home=f"{CACHE_MOUNT}/home",
        cache=f"{CACHE_MOUNT}/xdg",
    )
    variables.update(
        {
            "REPROMATRIX_IMAGE_REF": cell.base.ref,
            "REPROMATRIX_IMAGE_DIGEST": envimg.base.digest or envimg.base.id,
            "REPROMATRIX_ENV_IMAGE": envimg.tag,
            # We run as the host user's uid, which has no passwd entry in the image;
            # getpass.getuser() (torch inductor's cache dir) then needs these.
            "USER": "repromatrix",
            "LOGNAME": "repromatrix",
        }
    )
    # Host toolchain workarounds (--cell-env), as the local executor applies them.
    variables.update(cell_env)
    for sub in ("home", "xdg"):
        (cache_dir / sub).mkdir(parents=True, exist_ok=True)
    pythonpath = [*envimg.pythonpath, *([envimg.base.pythonpath] if envimg.base.pythonpath else [])]
    if pythonpath:
        variables["PYTHONPATH"] = ":".join(pythonpath)
    if gpu is None:
        # NGC images set NVIDIA_VISIBLE_DEVICES=all; with nvidia as the default runtime
        # a CPU cell would see every GPU. "void" gives it none.
        variables["NVIDIA_VISIBLE_DEVICES"] = "void"
        variables["CUDA_VISIBLE_DEVICES"] = ""
    return variables


def binds(cell: Cell, *, out_dir: Path, cache_dir: Path) -> dict[str, dict[str, str]]:
    return {
        str(cell.script.resolve().parent): {"bind": REPROS_MOUNT, "mode": "ro"},
        str(out_dir): {"bind": OUT_MOUNT, "mode": "rw"},
        str(cache_dir): {"bind": CACHE_MOUNT, "mode": "rw"},
    }


def create(
    api: Any,
    *,
    image: str,
    command: Sequence[str],
    name: str,
    labels: Mapping[str, str],
    environment: Mapping[str, str],
    binds: Mapping[str, Mapping[str, str]],
    gpu: HostGpu | None,
    working_dir: str = OUT_MOUNT,
) -> str:
    """Create (not start) the container; its id."""
    # Exactly the slot's GPU: the runtime sets NVIDIA_VISIBLE_DEVICES from this.
    device_requests = (
        [DeviceRequest(device_ids=[gpu.uuid], capabilities=[["gpu"]])] if gpu is not None else None
    )
    # Mounts, not `-v` strings: a path holding ':' (or ',') split those into a wrong volume
    # specification, and every cell of the folder was an error. A mount's source must
    # exist (`-v` made missing ones as root).
    mounts = []
    for source, spec in binds.items():
        if not os.path.lexists(source):
            Path(source).mkdir(parents=True, exist_ok=True)
        read_only = spec.get("mode") == "ro"
        mounts.append(Mount(spec["bind"], source, type="bind", read_only=read_only))
    host_config = api.create_host_config(
        mounts=mounts,
        # PID 1 of a container ignores signals it has no handler for, so a repro that
        # is PID 1 would survive its own SIGSEGV/SIGABRT; docker-init (tini) as PID 1
        # forwards signals, reaps the repro's children and exits 128+N when it dies.
        init=True,
        device_requests=device_requests,
        # json-file keeps the whole output until we read it (no rotation, no loss).
        log_config=LogConfig(type=LogConfig.types.JSON, config={}),
        # A killed run's container must stay until its exit code is read: never
        # auto-remove (it races with `wait`); we remove it ourselves, and clean does.
        auto_remove=False,
        shm_size="1g",
    )
    created = api.create_container(
        image,
        command=list(command),
        name=name,
        labels=dict(labels),
        environment=dict(environment),
        working_dir=working_dir,
        # The host user's ids, so result files and caches stay removable by them.
        user=f"{os.getuid()}:{os.getgid()}",
        host_config=host_config,
    )
    return str(created["Id"])


def wait(api: Any, cid: str, timeout_s: float) -> int:
    status = api.wait(cid, timeout=max(1, math.ceil(timeout_s)))
    return int(status.get("StatusCode", -1))


def oom_killed(api: Any, cid: str) -> bool:
    """Whether the kernel killed in the (exited) container for its memory limit: its exit
    says only "killed by signal 9", as if someone had killed it."""
    try:
        return bool(api.inspect_container(cid)["State"].get("OOMKilled"))
    except (requests.exceptions.RequestException, docker.errors.DockerException):
        return False


def removed(api: Any, cid: str) -> bool:
    """Whether the container no longer exists (someone else's `docker rm -f` mid-cell: its
    wait returns 137, as for a repro killed by signal 9, with its output gone)."""
    try:
        state = api.inspect_container(cid)["State"]
    except docker.errors.NotFound:
        return True
    except (requests.exceptions.RequestException, docker.errors.DockerException):
        return False
    # The wait returns while the engine is still removing it.
    return bool(state.get("Status") in ("removing", "dead"))


#: Why a cell whose container was removed by someone else gets no verdict.
REMOVED_WORDS = (
    "its container {name} was removed from outside repromatrix while the cell ran "
    "(`docker rm -f`, a prune or another tool's clean-up)"
)
#: Why a cell whose container someone else killed gets no verdict.
KILLED_WORDS = (
    "its container {name} was killed from outside repromatrix while the cell ran "
    "(`docker kill`, `docker stop` or another tool's, signal {signal})"
)


#: Why a cell whose container someone else froze until its timeout gets no verdict.
PAUSED_WORDS = (
    "its container {name} was paused from outside repromatrix while the cell ran "
    "(`docker pause` or another tool's), and the cell ran out of time frozen"
)


def paused(api: Any, cid: str) -> bool:
    """Whether the container is frozen (`docker pause`): asked of one whose cell timed out,
    before it is killed, since a paused cell cannot finish and its timeout is no verdict."""
    try:
        return bool(api.inspect_container(cid)["State"].get("Paused"))
    except (requests.exceptions.RequestException, docker.errors.DockerException):
        return False


def ended_outside(
    api: Any, cid: str, code: int | None, since: float, *, frozen: bool = False
) -> str | None:
    """Why the exited container's end is no verdict on its cell, its name left as `{name}`:
    someone else removed, killed or (`frozen`, found at its timeout) paused it (`since`: a
    Unix time before it started); or None."""
    if frozen:
        return PAUSED_WORDS
    if removed(api, cid):
        return REMOVED_WORDS
    if code is not None and code > 128:  # a signal's exit
        signal = killed_outside(api, cid, since)
        if signal is not None:
            return KILLED_WORDS.replace("{signal}", signal)
    return None


def killed_outside(api: Any, cid: str, since: float) -> str | None:
    """The signal of a "kill" the engine logged for the container since `since` (a Unix
    time), or None: `docker kill` and `docker stop` of a running container end it as the
    cell's own SIGKILL of itself (or a crash by SIGTERM) would, exit 137 (143), and only
    the engine's events tell them apart. Asked only of a container we did not kill."""
    try:
        events = api.events(
            since=f"{since:.6f}",
            until=f"{time.time():.6f}",  # a past end: the answer does not wait for more
            filters={"container": cid, "event": "kill"},
            decode=True,
        )
        for event in events:
            return str(event.get("Actor", {}).get("Attributes", {}).get("signal", "?"))
    except (requests.exceptions.RequestException, docker.errors.DockerException):
        return None
    return None


def save_logs(api: Any, cid: str, path: Path, *, stdout: bool) -> None:
    """Stream one of the container's output streams into a file (no size limit)."""
    with path.open("wb") as f:
        for chunk in api.logs(cid, stdout=stdout, stderr=not stdout, stream=True, follow=False):
            f.write(chunk)


def container_name(run_id: str, key: str) -> str:
    """Unique per cell and run (a random tail: no collision with any leftover)."""
    safe = _NAME_BAD.sub("-", run_id).strip("-.")[:80] or "run"
    return f"repromatrix-{safe}-{key[:12]}-{secrets.token_hex(3)}"
