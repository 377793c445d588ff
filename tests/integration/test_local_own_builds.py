"""A local run whose environment build failed for the machine's own want (its index out of
reach), with real pip and a real index: the cells are noted "not run here", the run ends
with exit 7, and the next run, the index back, builds them; an error record of such a
build was reused by every later run ("1 reused"), and the pins were never built again."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from clihelpers import CliRunner, write_matrix

from repromatrix.model import Status
from repromatrix.store import ResultStore

pytestmark = pytest.mark.integration


def _wheel(house: Path, version: str, value: float) -> None:
    """A real wheel of tinylib `version` (pure Python), written as pip's own would be."""
    files = {
        "tinylib/__init__.py": f"VALUE = {value}\n".encode(),
        f"tinylib-{version}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: tinylib\nVersion: {version}\n".encode()
        ),
        f"tinylib-{version}.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    house.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(house / f"tinylib-{version}-py3-none-any.whl", "w") as whl:
        for name, data in files.items():
            whl.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{name},sha256={digest.decode()},{len(data)}")
        record.append(f"tinylib-{version}.dist-info/RECORD,,")
        whl.writestr(f"tinylib-{version}.dist-info/RECORD", "\n".join(record) + "\n")


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound and never listening: connections to it are refused."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        yield closed.getsockname()[1]


def _pip_env(**given: str) -> dict[str, str]:
    """pip's settings: this host's pip.conf (its own indexes) left out, `given` in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return {**env, "PIP_CONFIG_FILE": os.devnull, "PIP_RETRIES": "1", **given}


def _matrix(tmp_path: Path) -> Path:
    return write_matrix(
        tmp_path / "m.yaml",
        {
            name: "script: {fx}/env_probe_repro.py, gpus: [cpu], "
            f"params: {{module: tinylib, good: 1.0, n: {n}}}, libraries: {{tinylib: all}}"
            for n, name in enumerate(("one", "two"))
        },
        extra=textwrap.dedent("""\
            libraries:
              tinylib: {pypi: tinylib, import: tinylib, versions: ["1.0"]}
            """),
    )


def test_an_index_out_of_reach_is_noted_and_the_next_run_builds(
    tmp_path: Path, run_cli: CliRunner, closed_port: int
) -> None:
    matrix = _matrix(tmp_path)
    args = ("--matrix", str(matrix), "run", "--results", "res", "--no-progress", "--jobs", "1",
            "--cache", "cache")  # fmt: skip
    down = run_cli(*args, env=_pip_env(PIP_INDEX_URL=f"http://127.0.0.1:{closed_port}/simple/"))
    assert down.returncode == 7, down.stderr
    assert "for the machine's own want" in down.stderr, down.stderr
    assert "Traceback" not in down.stderr
    latest = ResultStore(tmp_path / "res").latest_by_key().values()
    assert {r.status for r in latest} == {Status.NOT_RUN}, [r.reason for r in latest]
    assert all("the next run builds it again" in r.reason for r in latest)
    # The index is back (here: a folder of its wheels): the cells are built and run.
    _wheel(tmp_path / "house", "1.0", 1.0)
    back = run_cli(*args, "--find-links", str(tmp_path / "house"), "--no-index", env=_pip_env())
    assert back.returncode == 0, back.stderr
    assert "2 passed, 0 reused" in back.stderr, back.stderr
    latest = ResultStore(tmp_path / "res").latest_by_key().values()
    assert {r.status for r in latest} == {Status.PASSED}
