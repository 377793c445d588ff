"""Fixtures for the Docker executor's tests: a real engine and the registry-free test image.

Test modules load it with `pytest_plugins = ("docker_fixtures",)` and import its helpers, so
the shared conftest stays free of Docker. Outside CI an unreachable engine skips these tests;
with CI set it fails them, because a CI run that silently skips Docker has tested nothing.

PYTEST_DONT_REWRITE: the test modules import the helpers before pytest loads the module as a
plugin; without this marker pytest warns that it can no longer rewrite its asserts.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from clihelpers import fixture_copy

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_REPROS = ROOT / "tests" / "fixtures" / "repros"
FIXTURE_MATRIX = ROOT / "tests" / "fixtures" / "matrix" / "docker.yaml"
TEST_BASE_SCRIPT = ROOT / "images" / "test-base.sh"
DEFAULT_TEST_BASE = "repromatrix-test-base:bookworm"
FAKE_H100 = "0,NVIDIA H100 80GB HBM3,GPU-fake-uuid,9.0,81559"


def base_image_ref() -> str:
    return os.environ.get("REPROMATRIX_TEST_BASE", DEFAULT_TEST_BASE)


def _missing(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"Docker tests need an engine in CI: {why} (run .ci/docker.sh)")
    pytest.skip(f"no Docker engine: {why}")


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """A client of the real engine (DOCKER_HOST or the default socket)."""
    try:
        from repromatrix.executors.docker import engine_client
    except ImportError:
        _missing("the Docker SDK is not installed (pip install docker)")
        raise  # unreachable: _missing skips or fails
    try:
        client = engine_client(os.environ)
    except Exception as exc:  # DockerException, requests errors: the engine is not there
        _missing(" ".join(str(exc).split())[:200])
        raise
    yield client
    client.close()


@pytest.fixture(scope="session")
def base_image(docker_client: Any) -> str:
    """The test base image reference, built by images/test-base.sh (reused when present)."""
    ref = base_image_ref()
    out = subprocess.run(
        ["bash", str(TEST_BASE_SCRIPT)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
        env={**os.environ, "REPROMATRIX_TEST_BASE": ref},
    )
    if out.returncode != 0:
        pytest.fail(f"images/test-base.sh failed: {out.stderr.strip()[-500:]}")
    assert out.stdout.strip().splitlines()[-1] == ref
    return ref


def write_docker_matrix(
    path: Path,
    ref: str,
    extra_repros: dict[str, str] | None = None,
    extra_images: dict[str, str] | None = None,
    extra: str = "",
) -> Path:
    """tests/fixtures/matrix/docker.yaml with absolute scripts and `ref` as the test base;
    `extra_repros` / `extra_images` are YAML flow bodies (`{fx}` = the fixture repros)."""
    fx = fixture_copy(path.parent)
    text = FIXTURE_MATRIX.read_text()
    text = text.replace("../repros/", f"{fx}/")
    text = text.replace(DEFAULT_TEST_BASE, ref)
    images = "".join(f"  {name}: {{{body}}}\n" for name, body in (extra_images or {}).items())
    text = text.replace("images:\n", f"images:\n{images}", 1)
    for name, body in (extra_repros or {}).items():
        text += f"  {name}: {{{body.replace('{fx}', str(fx))}}}\n"
    path.write_text(text + extra)
    return path


@pytest.fixture(scope="session")
def pip_image(docker_client: Any) -> str:
    """A second test base with pip (python3-pip), for PyPI pins installed into env images."""
    ref = f"{base_image_ref()}-pip"
    out = subprocess.run(
        ["bash", str(TEST_BASE_SCRIPT)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
        env={
            **os.environ,
            "REPROMATRIX_TEST_BASE": ref,
            "REPROMATRIX_TEST_BASE_INCLUDE": "python3,python3-pip",
        },
    )
    if out.returncode != 0:
        pytest.fail(f"images/test-base.sh (with pip) failed: {out.stderr.strip()[-500:]}")
    return ref


@pytest.fixture
def docker_matrix(tmp_path: Path, base_image: str) -> Callable[..., Path]:
    """Write the Docker fixture matrix into tmp_path (see `write_docker_matrix`)."""

    def write(
        extra_repros: dict[str, str] | None = None,
        extra_images: dict[str, str] | None = None,
        extra: str = "",
    ) -> Path:
        return write_docker_matrix(
            tmp_path / "matrix.yaml", base_image, extra_repros, extra_images, extra
        )

    return write


def our_containers(client: Any, **labels: str) -> list[Any]:
    """Containers (running or not) that repromatrix made to run cells — a container per
    cell, a persistent worker, or one asking an image's python3 — filtered by `labels`."""
    return _listed(client, ("cell", "worker", "probe"), labels)


def cell_containers(client: Any, **labels: str) -> list[Any]:
    """`our_containers` that run cells (not the short one asking an image's python3)."""
    return _listed(client, ("cell", "worker"), labels)


def _listed(client: Any, kinds: tuple[str, ...], labels: dict[str, str]) -> list[Any]:
    found: list[Any] = []
    for kind in kinds:
        filters = [
            f"org.repromatrix.kind={kind}",
            *(f"org.repromatrix.{k}={v}" for k, v in labels.items()),
        ]
        # sparse: no inspect per listed container, which would race with its removal.
        found += client.containers.list(all=True, sparse=True, filters={"label": filters})
    return found


def container_name(container: Any) -> str:
    """Name of a container from a sparse listing (those have `Names`, not `Name`)."""
    return str(container.attrs["Names"][0]).lstrip("/")


def poll(predicate: Callable[[], object], *, timeout: float = 60.0, what: str = "") -> Any:
    """Poll until `predicate()` is truthy (a deadline, never a sleep standing in for it)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(0.05)


@contextlib.contextmanager
def derived_image(docker_client: Any, base_image: str, tag: str, line: str) -> Iterator[None]:
    """The base image plus one Dockerfile `line`, tagged `tag` while the block runs."""
    recipe = f"FROM {base_image}\n{line}\n".encode()
    docker_client.images.build(fileobj=io.BytesIO(recipe), tag=tag, rm=True)
    try:
        yield
    finally:
        docker_client.images.remove(tag, force=True)
