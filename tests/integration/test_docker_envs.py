"""Environment images as a GPU host's base images make them: bases with a user of their
own, builds that fail, against the real engine and the registry-free test images."""

from __future__ import annotations

import contextlib
import io
import shutil
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from clihelpers import CliRunner

from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.store import ResultStore

# The fixtures (docker_client, base_image, docker_matrix, pip_image) come from this module.
pytest_plugins = ("docker_fixtures",)
pytestmark = [pytest.mark.integration, pytest.mark.docker]

MatrixWriter = Callable[..., Path]

TINYLIB = textwrap.dedent(
    """
    libraries:
      tinylib: {pypi: tinylib, import: tinylib, versions: ["1.0", "2.0"]}
    """
)


def latest(results: Path) -> dict[str, Result]:
    return {r.cell_id: r for r in ResultStore(results).latest_by_key().values()}


@contextlib.contextmanager
def derived_image(docker_client: Any, base: str, tag: str, lines: str) -> Iterator[None]:
    """`base` plus Dockerfile `lines`, tagged `tag` while the block runs; the environment
    images built from it are removed with it."""
    recipe = f"FROM {base}\n{lines}\n".encode()
    docker_client.images.build(fileobj=io.BytesIO(recipe), tag=tag, rm=True)
    try:
        yield
    finally:
        for img in docker_client.images.list(
            filters={"label": ["org.repromatrix.kind=env", f"org.repromatrix.base-ref={tag}"]}
        ):
            docker_client.images.remove(str(img.id), force=True)
        docker_client.images.remove(tag, force=True)


def test_a_base_image_with_a_user_of_its_own_gets_its_pins_installed(
    tmp_path: Path,
    run_cli: CliRunner,
    docker_matrix: MatrixWriter,
    docker_client: Any,
    pip_image: str,
    wheelhouse: Path,
) -> None:
    """A base whose Dockerfile ends in `USER bob` (many images do): pip ran as bob, fell
    back to a user installation under bob's home (which the cells, run as the host user
    with a HOME of their own, never see) and the recipe's clean-up of /root failed, so
    every pinned cell of that base was "rm: cannot remove '/root/.cache/pip'"."""
    tag = "repromatrix-test-userbase:1"
    with derived_image(docker_client, pip_image, tag, "RUN useradd -u 4321 -m bob\nUSER bob"):
        matrix = docker_matrix(
            {
                "probe": "script: {fx}/env_probe_repro.py, gpus: [cpu], bases: [userbase], "
                "params: {module: tinylib, good: 1.0}, libraries: {tinylib: all}"
            },
            {"userbase": f'ref: "{tag}"'},
            extra=TINYLIB,
        )
        out = run_cli(
            "--matrix", str(matrix), "run", "--executor", "docker", "--pull", "never",
            "--no-progress", "--results", "results", "--cache", "cache",
            "--find-links", str(wheelhouse), "--no-index", "--repro", "probe",
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        got = latest(tmp_path / "results")
        one, two = got["probe[cpu,userbase,tinylib=1.0]"], got["probe[cpu,userbase,tinylib=2.0]"]
        assert one.status is Status.PASSED, one.reason
        assert two.status is Status.REGRESSED, two.reason


def test_an_environment_that_fails_to_build_is_tried_once_per_run(
    tmp_path: Path,
    run_cli: CliRunner,
    docker_matrix: MatrixWriter,
    pip_image: str,
    wheelhouse: Path,
) -> None:
    """Two cells of pins that cannot be installed: each cell built the environment image
    again and failed again (for an sdist whose compile fails after an hour, an hour per
    cell), where README promises an environment built once for all the cells of its pins."""
    probe = "script: {fx}/env_probe_repro.py, gpus: [cpu], bases: [pipbase], "
    matrix = docker_matrix(
        {
            "one": probe + "params: {module: tinylib, good: 1.0}, libraries: {tinylib: ['9.9']}",
            "two": probe + "params: {module: tinylib, good: 2.0}, libraries: {tinylib: ['9.9']}",
            "ok": probe + "params: {module: tinylib, good: 1.0}, libraries: {tinylib: ['1.0']}",
        },
        {"pipbase": f'ref: "{pip_image}"'},
        extra=TINYLIB.replace('"2.0"]', '"2.0", "9.9"]'),
    )
    out = run_cli(
        "--matrix", str(matrix), "run", "--executor", "docker", "--pull", "never", "--jobs",
        "1", "--no-progress", "--results", "results", "--cache", "cache", "--find-links",
        str(wheelhouse), "--no-index", "--repro", "one", "--repro", "two", "--repro", "ok",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    got = latest(tmp_path / "results")
    one, two = got["one[cpu,pipbase,tinylib=9.9]"], got["two[cpu,pipbase,tinylib=9.9]"]
    for r in (one, two):
        assert r.status is Status.ERROR
        assert "No matching distribution found for tinylib==9.9" in r.reason, r.reason
    assert one.reason == two.reason  # the one build's words and log, for both
    # One build, one log: the other cell of those pins was told what the build said.
    logs = [p.parent.name for p in (tmp_path / "cache" / "runs").glob("*/*/env-build.log")]
    assert sorted(k for k in logs if k in (one.key, two.key)) in ([one.key], [two.key])
    # Other pins are another environment, built and run as ever.
    assert got["ok[cpu,pipbase,tinylib=1.0]"].status is Status.PASSED


def test_a_wheel_for_another_platform_is_named_in_the_reason(
    tmp_path: Path,
    run_cli: CliRunner,
    docker_matrix: MatrixWriter,
    pip_image: str,
    wheelhouse: Path,
) -> None:
    """--find-links held only a Windows wheel of the pinned release: the record said "No
    matching distribution found for tinylib==9.9", as if the file were not there."""
    (one,) = wheelhouse.glob("tinylib-1.0-*.whl")
    shutil.copyfile(one, wheelhouse / "tinylib-9.9-py3-none-win_amd64.whl")
    matrix = docker_matrix(
        {
            "probe": "script: {fx}/env_probe_repro.py, gpus: [cpu], bases: [pipbase], "
            "params: {module: tinylib, good: 1.0}, libraries: {tinylib: ['9.9']}"
        },
        {"pipbase": f'ref: "{pip_image}"'},
        extra=TINYLIB.replace('"2.0"]', '"2.0", "9.9"]'),
    )
    out = run_cli(
        "--matrix", str(matrix), "run", "--executor", "docker", "--pull", "never",
        "--no-progress", "--results", "results", "--cache", "cache", "--find-links",
        str(wheelhouse), "--no-index", "--repro", "probe",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (r,) = latest(tmp_path / "results").values()
    assert r.status is Status.ERROR
    assert "No matching distribution found for tinylib==9.9" in r.reason, r.reason
    assert "tinylib-9.9-py3-none-win_amd64.whl: not for this environment's" in r.reason
