"""`repromatrix ray-node --cache DIR` refuses a cache `run` would refuse, with run's line
and exit code, before it checks the head's address or calls `ray start`: the node joined
and failed cell by cell, or took a folder of someone else's for its environments.

No cluster is needed: the address given is one where nothing listens, so a node that got
past its cache check ends at the address (exit 5), never in `ray start`.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from clihelpers import cli_argv

from repromatrix import caches
from repromatrix.errors import ExitCode, UsageError
from repromatrix.locks import CACHE_LOCK

pytestmark = pytest.mark.integration


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def _matrix(tmp_path: Path) -> None:
    (tmp_path / "matrix.yaml").write_text("schema: 1\nrepros: {r: {script: r.py, gpus: [cpu]}}\n")
    (tmp_path / "r.py").write_text("")


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    matrix = tmp_path / "matrix.yaml"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.run(
        cli_argv("--matrix", str(matrix), *args),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def _node(tmp_path: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    address = f"127.0.0.1:{_closed_port()}"
    return _cli(tmp_path, "ray-node", "--address", address, "--cache", str(cache))


def _run(tmp_path: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    results = str(tmp_path / "results")
    return _cli(tmp_path, "run", "--no-progress", "--cache", str(cache), "--results", results)


def _file(tmp_path: Path) -> Path:
    (tmp_path / "afile").write_text("x")
    return tmp_path / "afile"


def _below_a_file(tmp_path: Path) -> Path:
    return _file(tmp_path) / "cache"


def _home(tmp_path: Path) -> Path:
    (tmp_path / "home" / "git" / "myproject").mkdir(parents=True)
    return tmp_path / "home"


def _read_only(tmp_path: Path) -> Path:
    if os.geteuid() == 0:
        pytest.skip("root writes into a read-only folder")
    (tmp_path / "ro").mkdir(mode=0o555)
    return tmp_path / "ro" / "cache"


def _separator(tmp_path: Path) -> Path:
    return tmp_path / f"a{os.pathsep}b"


@pytest.mark.parametrize(
    ("make", "code", "says"),
    [
        (_file, ExitCode.OUTPUT, "is a file; pass a folder"),
        (_below_a_file, ExitCode.OUTPUT, "cannot write there"),
        (_read_only, ExitCode.OUTPUT, "cannot write there"),
        (_home, ExitCode.USAGE, "holds git/, not made by repromatrix"),
        (_separator, ExitCode.USAGE, "which separates PYTHONPATH entries"),
    ],
)
def test_ray_node_refuses_a_cache_run_refuses_before_it_joins(
    tmp_path: Path, make: Callable[[Path], Path], code: ExitCode, says: str
) -> None:
    cache = make(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    node, run = _node(tmp_path, cache), _run(tmp_path, cache)
    # Not exit 5 at the address where nothing listens: refused before the address, too.
    assert node.returncode == run.returncode == code, node.stderr
    assert node.stderr.startswith(f"repromatrix: error: --cache {cache}: ")
    assert says in node.stderr
    assert node.stderr == run.stderr  # one line, the same as run's
    assert len(node.stderr.splitlines()) == 1
    assert sorted(tmp_path.rglob("*")) == before  # nothing made, nobody's git/ touched


def test_a_good_cache_gets_past_the_check_to_the_address(tmp_path: Path) -> None:
    """A new folder is taken: what stops this node is the head where nothing listens."""
    out = _node(tmp_path, tmp_path / "node-cache")
    assert out.returncode == ExitCode.DOCKER, out.stderr  # 5: no cluster answers there
    assert "--cache" not in out.stderr
    assert not (tmp_path / "node-cache").exists()  # nothing made for a node that never ran


def test_a_cache_a_node_claimed_is_its_own_at_the_next_start(tmp_path: Path) -> None:
    """A node leaves envs/ and git/ in its cache from Ray's workers, with no run to leave
    the lock file there: its next `ray-node` would take its own cache for a stranger's."""
    cache = tmp_path / "node-cache"
    caches.claim(cache)
    assert (cache / CACHE_LOCK).is_file()
    (cache / "envs" / "env-1").mkdir(parents=True)
    (cache / "git" / "lib.git").mkdir(parents=True)
    caches.check_cache(cache)
    (tmp_path / "other" / "envs" / "mine").mkdir(parents=True)
    with pytest.raises(UsageError, match="holds envs/, not made by repromatrix"):
        caches.check_cache(tmp_path / "other")
