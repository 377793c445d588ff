"""An environment image's build that failed for the machine's own want (its index out of
reach, its find-links folder not there), against the real engine: the cells are noted
"not run here", the run ends with exit 7, and the next run builds them, as a local run
does (`executors/build_words.py`); never error records that later runs reuse."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from clihelpers import CliRunner
from test_docker_envs import TINYLIB, derived_image, latest
from test_docker_index import _serving

from repromatrix.model import Status

pytest_plugins = ("docker_fixtures",)
pytestmark = [pytest.mark.integration, pytest.mark.docker]

ONE, TWO = "probe[cpu,ownbase,tinylib=1.0]", "probe[cpu,ownbase,tinylib=2.0]"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(run_cli: CliRunner, matrix: Path, env: dict[str, str]) -> Any:
    """A run of the probe's cells in Docker with pip's settings `env` (and none of this
    host's own, its variables or its configuration files)."""
    return run_cli(
        "--matrix", str(matrix), "run", "--executor", "docker", "--pull", "never",
        "--no-progress", "--results", "results", "--cache", "cache", "--repro", "probe",
        env={"PIP_FIND_LINKS": "", "PIP_NO_INDEX": "", "PIP_INDEX_URL": "",
             "PIP_CONFIG_FILE": "/dev/null", **env},
    )  # fmt: skip


def _matrix(docker_matrix: Callable[..., Path], tag: str) -> Path:
    return docker_matrix(
        {
            "probe": "script: {fx}/env_probe_repro.py, gpus: [cpu], bases: [ownbase], "
            "params: {module: tinylib, good: 1.0}, libraries: {tinylib: all}"
        },
        {"ownbase": f'ref: "{tag}"'},
        extra=TINYLIB,
    )


def test_an_index_out_of_reach_is_the_machines_own_and_built_next_run(
    tmp_path: Path,
    run_cli: CliRunner,
    docker_matrix: Callable[..., Path],
    docker_client: Any,
    pip_image: str,
    wheelhouse: Path,
) -> None:
    """PIP_INDEX_URL out of reach (nothing listens at its port): the build's pip says
    'NewConnectionError' and then 'No matching distribution found', as of an index that
    lacks the release; the cells are noted, and built once the index answers."""
    tag = "repromatrix-test-ownbuild:index"
    port = _free_port()
    url = f"http://127.0.0.1:{port}/simple/"
    with derived_image(docker_client, pip_image, tag, f"LABEL ownbuild={tmp_path.name}"):
        matrix = _matrix(docker_matrix, tag)
        out = _run(run_cli, matrix, {"PIP_INDEX_URL": url})
        got = latest(tmp_path / "results")
        assert out.returncode == 7, out.stderr
        assert {got[ONE].status, got[TWO].status} == {Status.NOT_RUN}
        assert "machine's own want ('NewConnectionError'" in got[ONE].reason, got[ONE].reason
        with _serving(tmp_path, wheelhouse, "127.0.0.1", port=port):
            out = _run(run_cli, matrix, {"PIP_INDEX_URL": url})
        assert out.returncode == 0, out.stderr
        got = latest(tmp_path / "results")
        assert got[ONE].status is Status.PASSED, got[ONE].reason
        assert got[TWO].status is Status.REGRESSED, got[TWO].reason


def test_a_find_links_folder_not_there_is_the_machines_own_and_built_next_run(
    tmp_path: Path,
    run_cli: CliRunner,
    docker_matrix: Callable[..., Path],
    docker_client: Any,
    pip_image: str,
    wheelhouse: Path,
) -> None:
    """A PIP_FIND_LINKS folder that is not there (a share not mounted) was left out of the
    build in silence: its pip found no release, and each cell was an error record at exit
    0, reused once the share was back. The build's pip is given the folder and says it
    is not there, as a local pip does: the cells are noted naming it, exit 7."""
    tag = "repromatrix-test-ownbuild:links"
    share = tmp_path / "share" / "wheels"
    env = {"PIP_FIND_LINKS": str(share), "PIP_NO_INDEX": "1"}
    with derived_image(docker_client, pip_image, tag, f"LABEL ownbuild={tmp_path.name}"):
        matrix = _matrix(docker_matrix, tag)
        out = _run(run_cli, matrix, env)
        got = latest(tmp_path / "results")
        assert out.returncode == 7, out.stderr
        assert {got[ONE].status, got[TWO].status} == {Status.NOT_RUN}
        said = f"own want ('Location '{share}' is ignored: it is either a non-existing path'"
        assert said in got[ONE].reason, got[ONE].reason
        share.parent.mkdir()
        wheelhouse.rename(share)
        out = _run(run_cli, matrix, env)
        assert out.returncode == 0, out.stderr
        got = latest(tmp_path / "results")
        assert got[ONE].status is Status.PASSED, got[ONE].reason
        assert got[TWO].status is Status.REGRESSED, got[TWO].reason
