"""Labels on everything we make in Docker, and the sweeper of what crashed runs left.

Every container and built image carries labels (`org.repromatrix.*`): which run and cell it
belongs to and which process on which host owns it. A run removes containers whose owner
process is gone when it connects, and `repromatrix clean` removes them on request, so a
`kill -9` of the runner leaves nothing behind for long and a new run never collides with it.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors

from repromatrix import proc
from repromatrix.errors import DockerError
from repromatrix.executors.docker.engine import engine_client, one_line, unreachable_message

log = logging.getLogger("repromatrix.docker")

LABEL = "org.repromatrix"
L_KIND = f"{LABEL}.kind"
L_RUN = f"{LABEL}.run-id"
L_CELL = f"{LABEL}.cell"
L_KEY = f"{LABEL}.cell-key"
L_HOST = f"{LABEL}.owner-host"
L_PID = f"{LABEL}.owner-pid"
#: Start time of the owner process (/proc/PID/stat field 22): tells a reused pid apart.
L_PID_START = f"{LABEL}.owner-start"
#: The owner's PID namespace: a pid means something only inside the namespace it is in (a
#: CI job's container sharing the engine and the hostname has pids of its own).
L_PID_NS = f"{LABEL}.owner-pidns"
L_ENV_KEY = f"{LABEL}.env-key"
L_BASE_REF = f"{LABEL}.base-ref"
L_BASE_ID = f"{LABEL}.base-id"
L_PINS = f"{LABEL}.pins"
#: The build (a token per run) whose step a container runs: images/env.Dockerfile sets it.
L_BUILD = f"{LABEL}.build"
KIND_CELL = "cell"
#: A persistent worker container (one per environment image and slot).
KIND_WORKER = "worker"
#: A short container that asks an image's python3 for its version (`pythons.py`).
KIND_PROBE = "probe"
#: Containers that run cells (or ask for what cells need), ours to sweep when their
#: owner is gone.
RUNNING_KINDS = (KIND_CELL, KIND_WORKER, KIND_PROBE)
KIND_ENV = "env"
#: Where environment images are tagged (`repromatrix-env:<hash of their inputs>`).
ENV_REPOSITORY = "repromatrix-env"
#: How long an environment build's step container has been exited before it is taken for
#: one whose build died with the engine (its build commits and removes it in seconds).
_STEP_ENDED_S = 60


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
    if labels.get(L_HOST) != hostname or labels.get(L_PID_NS, _PID_NS) != _PID_NS:
        return None  # another host's, or another PID namespace's: not ours to judge
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


def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return ""


_PID_NS = _pid_namespace()


def owner_labels() -> dict[str, str]:
    pid = os.getpid()
    labels = {L_HOST: socket.gethostname(), L_PID: str(pid), L_PID_START: _process_start(pid)}
    labels[L_PID_NS] = _PID_NS
    token = os.environ.get(proc.RUN_TOKEN)
    if token:  # the run's watchdog removes these containers if we are killed
        labels[proc.RUN_TOKEN_LABEL] = token
    return labels


def remove_orphans(client: docker.DockerClient, *, hostname: str) -> list[str]:
    """Remove cell and worker containers of this host whose owner process is gone (a
    killed run)."""
    removed: list[str] = []
    for c in _ours(client):
        labels: Mapping[str, str] = c.attrs.get("Labels") or {}
        if _owner_alive(labels, hostname) is not False:
            continue
        name = listed_name(c)
        try:
            client.api.remove_container(str(c.id), force=True, v=True)
        except docker.errors.NotFound:
            continue
        except docker.errors.APIError as exc:
            log.warning("cannot remove leftover container %s: %s", name, one_line(exc))
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
            # `clean --docker` runs no cells: "--executor local" is no way on from it.
            instead = "leave out --docker (the cache's folders are removed without it)"
            raise DockerError(unreachable_message(env, exc, instead=instead)) from None
        return []
    hostname = socket.gethostname()
    try:
        removed = remove_orphans(client, hostname=hostname)
        for c in _ours(client):
            labels = c.attrs.get("Labels") or {}
            if _owner_alive(labels, hostname) is None and c.attrs.get("State") != "running":
                client.api.remove_container(str(c.id), force=True, v=True)
                removed.append(f"container {listed_name(c)}")
        removed += _remove_stopped_build_steps(client)
        if images:
            for img in client.images.list(filters={"label": f"{L_KIND}={KIND_ENV}"}):
                if any(not t.startswith(f"{ENV_REPOSITORY}:") for t in img.tags):
                    continue  # a user's image built FROM one of ours inherits its labels
                tags = img.tags or [str(img.id)]
                try:
                    client.images.remove(str(img.id), force=False)
                except docker.errors.APIError as exc:  # in use by a running container
                    log.warning("keeping image %s: %s", tags[0], one_line(exc))
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


def _remove_stopped_build_steps(client: docker.DockerClient) -> list[str]:
    """Remove the step containers of environment builds that ended long ago. The engine
    commits and removes a step's container as soon as it exits (`rm`, `forcerm`); one
    killed mid-build (dockerd -9, restarted) leaves it exited for ever, holding a layer,
    and it carries no owner labels (a step gets the image's labels alone), so
    `remove_orphans` never saw it and `clean --docker` kept the layer "in use"."""
    removed: list[str] = []
    steps = client.containers.list(
        all=True, sparse=True, filters={"label": [f"{L_KIND}={KIND_ENV}"], "status": ["exited"]}
    )
    now = datetime.now(UTC)
    for c in steps:
        if not (c.attrs.get("Labels") or {}).get(L_BUILD):
            # No build token: a container made from a finished env image (or a user's
            # image built FROM one, which inherits its labels), not a build's step.
            continue
        try:
            state = client.api.inspect_container(str(c.id)).get("State") or {}
            # Go's RFC 3339 with nanoseconds: the seconds are all this needs.
            finished = datetime.fromisoformat(str(state.get("FinishedAt", ""))[:19] + "+00:00")
        except docker.errors.NotFound:
            continue  # its build removed it meanwhile
        except ValueError:
            continue
        if (now - finished).total_seconds() < _STEP_ENDED_S:
            continue  # a build in progress is about to commit and remove it
        try:
            client.api.remove_container(str(c.id), force=True, v=True)
        except docker.errors.NotFound:
            continue
        except docker.errors.APIError as exc:
            log.warning("cannot remove leftover container %s: %s", listed_name(c), one_line(exc))
            continue
        removed.append(f"container {listed_name(c)}")
    return removed


def _ours(client: docker.DockerClient) -> list[Any]:
    """Containers that ran cells for us: per-cell containers and persistent workers."""
    found: list[Any] = []
    for kind in RUNNING_KINDS:
        found += client.containers.list(
            all=True, sparse=True, filters={"label": [f"{L_KIND}={kind}"]}
        )
    return found


def listed_name(c: Any) -> str:
    names = c.attrs.get("Names") or [c.id]
    return str(names[0]).lstrip("/")
