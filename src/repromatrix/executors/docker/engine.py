"""The connection to the Docker engine, and the SDK's rough edges around it.

The Docker package is the only code that imports `docker` (the SDK); inside it, this module
is the only one that makes a client.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping

import docker
import docker.errors

#: Oldest Docker API the SDK speaks (docker.constants.MINIMUM_DOCKER_API_VERSION).
_MIN_API = "1.24"


def one_line(exc: BaseException) -> str:
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


def unreachable_message(
    env: Mapping[str, str], exc: BaseException, *, instead: str = "run with --executor local"
) -> str:
    """The one line for an engine that does not answer; `instead`: the way on without it."""
    return (
        f"cannot reach the Docker engine at {_engine_address(env)} ({one_line(exc)}); "
        f"start it (e.g. systemctl start docker) or {instead}"
    )
