"""An unreachable Docker engine: one clear line and exit 5, or "not run here" under auto.

No engine is needed (DOCKER_HOST points at a socket that does not exist), so these run
everywhere, without the `docker` marker.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from clihelpers import CliRunner
from docker_fixtures import DEFAULT_TEST_BASE, write_docker_matrix

from repromatrix.model import Status
from repromatrix.store import ResultStore

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("executor", ["docker", "auto"])
def test_unreachable_engine(tmp_path: Path, run_cli: CliRunner, executor: str) -> None:
    matrix = write_docker_matrix(tmp_path / "matrix.yaml", DEFAULT_TEST_BASE)
    out = run_cli(
        "--matrix", str(matrix), "run", "--executor", executor, "--repro", "pass_repro",
        "--no-progress", "--results", "results",
        env={"DOCKER_HOST": f"unix://{tmp_path}/dead.sock"},
    )  # fmt: skip
    assert "Traceback" not in out.stderr
    if executor == "docker":
        assert out.returncode == 5, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1, out.stderr
        assert lines[0].startswith("repromatrix: error: cannot reach the Docker engine at unix://")
        assert lines[0].endswith("or run with --executor local")
        assert (
            not (tmp_path / "results").exists()
            or not ResultStore(tmp_path / "results").load().results
        )
    else:
        assert out.returncode == 0, out.stderr
        (r,) = ResultStore(tmp_path / "results").latest_by_key().values()
        assert r.status is Status.NOT_RUN
        assert r.reason.startswith(f"image {DEFAULT_TEST_BASE} needs Docker: cannot reach")


def test_plain_clean_does_not_need_an_engine(tmp_path: Path, run_cli: CliRunner) -> None:
    out = run_cli("clean", env={"DOCKER_HOST": f"unix://{tmp_path}/dead.sock"})
    assert out.returncode == 0, out.stderr
    out = run_cli("clean", "--docker", env={"DOCKER_HOST": f"unix://{tmp_path}/dead.sock"})
    assert out.returncode == 5, out.stderr
    assert "cannot reach the Docker engine" in out.stderr
    # It said "or run with --executor local", a flag clean does not take.
    assert "--executor" not in out.stderr, out.stderr
    assert out.stderr.rstrip().endswith(
        "or leave out --docker (the cache's folders are removed without it)"
    )


def test_clean_docker_without_an_engine_removes_nothing(tmp_path: Path, run_cli: CliRunner) -> None:
    """It exited 5 having already emptied runs/ (and, with --envs, envs/), saying neither."""
    cache = tmp_path / ".repromatrix"
    (cache / "runs" / "r1").mkdir(parents=True)
    (cache / ".repromatrix-cache.lock").touch()
    dead = {"DOCKER_HOST": f"unix://{tmp_path}/dead.sock"}
    out = run_cli("clean", "--docker", "--envs", env=dead)
    assert out.returncode == 5, out.stderr
    assert (cache / "runs" / "r1").is_dir()
