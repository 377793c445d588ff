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


@pytest.mark.parametrize("retries", ["1", "0"])
def test_an_index_out_of_reach_is_noted_and_the_next_run_builds(
    tmp_path: Path, run_cli: CliRunner, closed_port: int, retries: str
) -> None:
    """Without retries (PIP_RETRIES=0, or retries = 0 in pip.conf) pip's output says
    nothing of the index it could not reach, only "No matching distribution found", as
    of an index that lacks the release: its log does, and the reason now says it."""
    matrix = _matrix(tmp_path)
    args = ("--matrix", str(matrix), "run", "--results", "res", "--no-progress", "--jobs", "1",
            "--cache", "cache")  # fmt: skip
    index = f"http://127.0.0.1:{closed_port}/simple/"
    down = run_cli(*args, env=_pip_env(PIP_INDEX_URL=index, PIP_RETRIES=retries))
    assert down.returncode == 7, down.stderr
    assert "for the machine's own want" in down.stderr, down.stderr
    assert "Traceback" not in down.stderr
    latest = ResultStore(tmp_path / "res").latest_by_key().values()
    assert {r.status for r in latest} == {Status.NOT_RUN}, [r.reason for r in latest]
    assert all("the next run builds it again" in r.reason for r in latest)
    if retries == "0":
        assert all(f"could not read {index}tinylib/" in r.reason for r in latest), latest
    # The index is back (here: a folder of its wheels): the cells are built and run.
    _wheel(tmp_path / "house", "1.0", 1.0)
    back = run_cli(*args, "--find-links", str(tmp_path / "house"), "--no-index", env=_pip_env())
    assert back.returncode == 0, back.stderr
    assert "2 passed, 0 reused" in back.stderr, back.stderr
    latest = ResultStore(tmp_path / "res").latest_by_key().values()
    assert {r.status for r in latest} == {Status.PASSED}


def test_an_index_pip_conf_names_for_installs_alone_out_of_reach_is_noted(
    tmp_path: Path, run_cli: CliRunner, closed_port: int
) -> None:
    """pip.conf's `[install]` section names the index, out of reach, over a `[global]`
    one that answers: without retries pip says only "No matching distribution found",
    and the check of its pages asked `pip index versions`, which reads `[global]` alone
    (an index that lacks the project: a complete answer), so the cells were error
    records, exit 0, that later runs reused."""
    matrix = _matrix(tmp_path)
    answers = tmp_path / "empty" / "simple"
    answers.mkdir(parents=True)
    index = f"http://127.0.0.1:{closed_port}/simple/"
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\nindex-url = {answers.as_uri()}/\n[install]\nindex-url = {index}\n")
    env = _pip_env(PIP_CONFIG_FILE=str(conf), PIP_RETRIES="0")
    env["XDG_CONFIG_HOME"] = str(tmp_path / "no-user-config")  # this host's own pip.conf
    args = ("--matrix", str(matrix), "run", "--results", "res", "--no-progress", "--jobs", "1",
            "--cache", "cache")  # fmt: skip
    down = run_cli(*args, env=env)
    assert down.returncode == 7, down.stderr
    latest = ResultStore(tmp_path / "res").latest_by_key().values()
    assert {r.status for r in latest} == {Status.NOT_RUN}, [r.reason for r in latest]
    assert all(f"could not read {index}tinylib/" in r.reason for r in latest), latest


def test_an_error_record_stored_for_an_index_out_of_reach_is_not_reused(
    tmp_path: Path, run_cli: CliRunner, closed_port: int
) -> None:
    """Records stored before such builds were noted: 'error' with pip's 'No matching
    distribution found', which a reachable index lacking the release gives too; the build
    log the record names (the first cell's, then a note pointing to it) tells them apart.
    They were reused by every later run, the index back, and the pins never built again."""
    matrix = _matrix(tmp_path)
    args = ("--matrix", str(matrix), "run", "--results", "res", "--no-progress", "--jobs", "1",
            "--cache", "cache")  # fmt: skip
    down = run_cli(*args, env=_pip_env(PIP_INDEX_URL=f"http://127.0.0.1:{closed_port}/simple/"))
    assert down.returncode == 7, down.stderr
    store = ResultStore(tmp_path / "res")
    for note in store.latest_by_key().values():
        # The record the run stored before such builds were noted: the same run, its log.
        why = note.reason.split("build log): ", 1)[1].removesuffix("; the next run builds it again")
        workdir = tmp_path / "cache" / "runs" / note.run_id / note.key
        assert (workdir / "env-build.log").is_file()
        store.append(
            note.model_copy(
                update={
                    "status": Status.ERROR,
                    "reason": f"environment: {why}",
                    "provenance": {"harness": {"workdir": str(workdir)}},
                }
            )
        )
    assert {r.status for r in store.latest_by_key().values()} == {Status.ERROR}
    _wheel(tmp_path / "house", "1.0", 1.0)
    back = run_cli(*args, "--find-links", str(tmp_path / "house"), "--no-index", env=_pip_env())
    assert back.returncode == 0, back.stderr
    assert "2 passed, 0 reused" in back.stderr, back.stderr


def test_an_error_record_of_a_release_the_index_lacks_is_reused(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """The index answered and lacks the release: a verdict on the pins, reused."""
    matrix = _matrix(tmp_path)
    _wheel(tmp_path / "house", "2.0", 2.0)
    args = ("--matrix", str(matrix), "run", "--results", "res", "--no-progress", "--jobs", "1",
            "--cache", "cache", "--find-links", str(tmp_path / "house"), "--no-index")  # fmt: skip
    first = run_cli(*args, env=_pip_env())
    assert first.returncode == 0, first.stderr
    assert "2 error, 0 reused" in first.stderr, first.stderr
    again = run_cli(*args, env=_pip_env())
    assert again.returncode == 0, again.stderr
    assert "2 reused" in again.stderr, again.stderr


def test_a_find_links_folder_that_is_missing_is_noted_and_the_next_run_builds(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """PIP_FIND_LINKS (or pip.conf's find-links) names a folder that is not there (a share
    not mounted): pip warns and finds nothing, and the cells were error records that
    later runs reused once the folder was back."""
    matrix = _matrix(tmp_path)
    house = tmp_path / "share" / "wheels"
    args = ("--matrix", str(matrix), "run", "--results", "res", "--no-progress", "--jobs", "1",
            "--cache", "cache")  # fmt: skip
    env = _pip_env(PIP_FIND_LINKS=str(house), PIP_NO_INDEX="1")
    gone = run_cli(*args, env=env)
    assert gone.returncode == 7, gone.stderr
    assert str(house) in gone.stderr, gone.stderr
    _wheel(house, "1.0", 1.0)
    back = run_cli(*args, env=env)
    assert back.returncode == 0, back.stderr
    assert "2 passed, 0 reused" in back.stderr, back.stderr
