"""pip's index variables (PIP_INDEX_URL, PIP_EXTRA_INDEX_URL) of a run and an environment
image's build, against the real engine and a real package index on this host."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from clihelpers import CliRunner
from test_docker_envs import TINYLIB, derived_image, latest

from repromatrix.model import Status

# The fixtures (docker_client, docker_matrix, pip_image, wheelhouse) come from this module.
pytest_plugins = ("docker_fixtures",)
pytestmark = [pytest.mark.integration, pytest.mark.docker]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def index(tmp_path: Path, wheelhouse: Path) -> Iterator[str]:
    """A package index of tinylib's wheels (a folder's listing, which pip reads as one),
    served on this host's loopback, as a devpi or a proxy of the site's would be."""
    project = tmp_path / "index" / "simple" / "tinylib"
    project.mkdir(parents=True)
    for wheel in wheelhouse.glob("*.whl"):
        shutil.copy(wheel, project)
    handler = functools.partial(_Quiet, directory=str(tmp_path / "index"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/simple/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("variable", ["PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"])
def test_pip_index_urls_of_the_host_reach_an_environment_build(
    tmp_path: Path,
    run_cli: CliRunner,
    docker_matrix: Callable[..., Path],
    docker_client: Any,
    pip_image: str,
    index: str,
    variable: str,
) -> None:
    """PIP_INDEX_URL (or PIP_EXTRA_INDEX_URL) set for a run: a local run's pip reads it,
    the environment image's pip never saw it (PIP_FIND_LINKS reached it), so every pinned
    cell in Docker was an error record ('No matching distribution found') reused by later
    runs. An index on the host's loopback (a devpi) is reached from the build as well."""
    tag = f"repromatrix-test-pipindex:{variable.lower().replace('_', '-')}"
    with derived_image(docker_client, pip_image, tag, f"LABEL pipindex={tmp_path.name}"):
        matrix = docker_matrix(
            {
                "probe": "script: {fx}/env_probe_repro.py, gpus: [cpu], bases: [indexbase], "
                "params: {module: tinylib, good: 1.0}, libraries: {tinylib: all}"
            },
            {"indexbase": f'ref: "{tag}"'},
            extra=TINYLIB,
        )
        out = run_cli(
            "--matrix", str(matrix), "run", "--executor", "docker", "--pull", "never",
            "--no-progress", "--results", "results", "--cache", "cache", "--repro", "probe",
            env={variable: index, "PIP_FIND_LINKS": "", "PIP_NO_INDEX": ""},
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        got = latest(tmp_path / "results")
        one, two = got["probe[cpu,indexbase,tinylib=1.0]"], got["probe[cpu,indexbase,tinylib=2.0]"]
        assert one.status is Status.PASSED, one.reason
        assert two.status is Status.REGRESSED, two.reason
