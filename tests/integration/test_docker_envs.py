"""Environment images as a GPU host's base images make them: bases with a user of their
own, builds that fail, against the real engine and the registry-free test images."""

from __future__ import annotations

import contextlib
import io
import shutil
import signal
import subprocess
import tarfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest
from clihelpers import CliRunner, cli_argv
from docker_fixtures import poll

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
        # Its cells' containers carry no build token: a Ctrl-C of the run that built the
        # image ends that run's builds, never another run's cells made from the image.
        image = docker_client.images.get(one.provenance["harness"]["image"]["env_image"])
        assert image.labels.get("org.repromatrix.build") == ""


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


def test_ctrl_c_ends_an_environment_build_at_once(
    tmp_path: Path, docker_matrix: MatrixWriter, docker_client: Any, pip_image: str
) -> None:
    """Ctrl-C while pip compiled a pin's sdist in an environment image's build: the run
    waited for the engine to finish the build (an hour for a CUDA sdist), then said
    "interrupted"; README says Ctrl-C ends environment builds too."""
    house = tmp_path / "house"
    src = tmp_path / "slowlib-1.0"
    src.mkdir()
    (src / "setup.py").write_text("import time\ntime.sleep(600)\n")
    house.mkdir()
    with tarfile.open(house / "slowlib-1.0.tar.gz", "w:gz") as tar:
        tar.add(src, arcname=src.name)
    matrix = docker_matrix(
        {
            "slow": "script: {fx}/env_probe_repro.py, gpus: [cpu], bases: [pipbase], "
            "params: {module: slowlib, good: 1.0}, libraries: {slowlib: all}"
        },
        {"pipbase": f'ref: "{pip_image}"'},
        extra="libraries:\n  slowlib: {pypi: slowlib, import: slowlib, versions: ['1.0']}\n",
    )
    env_label = {"label": "org.repromatrix.kind=env"}
    for img in docker_client.images.list(filters=env_label):  # an earlier build's image
        if "slowlib" in img.labels.get("org.repromatrix.pins", ""):
            docker_client.images.remove(str(img.id), force=True)
    before = {c.id for c in docker_client.containers.list(filters=env_label)}
    runner = subprocess.Popen(
        cli_argv(
            "--matrix", str(matrix), "run", "--executor", "docker", "--pull", "never",
            "--repro", "slow", "--no-progress", "--results", "results", "--cache", "cache",
            "--find-links", str(house), "--no-index",
        ),
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        poll(
            lambda: {c.id for c in docker_client.containers.list(filters=env_label)} - before,
            timeout=120,
            what="the build step's container",
        )
        time.sleep(2)  # into pip's compile of the sdist
        sent = time.monotonic()
        runner.send_signal(signal.SIGINT)
        _, err = runner.communicate(timeout=60)
        assert time.monotonic() - sent < 30, err
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert runner.returncode == 130, err
    assert "interrupted" in err
    if (tmp_path / "results").exists():  # half a run is not a result
        assert not latest(tmp_path / "results")


@pytest.mark.parametrize("spelling", ["path", "url", "files"])
def test_pip_find_links_of_the_host_reach_an_environment_build(
    tmp_path: Path,
    run_cli: CliRunner,
    docker_matrix: MatrixWriter,
    docker_client: Any,
    pip_image: str,
    wheelhouse: Path,
    spelling: str,
) -> None:
    """PIP_FIND_LINKS (and PIP_NO_INDEX) set for a run: a local run's pip reads them, the
    environment image's pip never saw them, so every pinned cell in Docker was an error
    record ("No matching distribution found"), reused by later runs."""
    tag = f"repromatrix-test-piplinks:{spelling}"
    folder = wheelhouse.as_uri() if spelling == "url" else str(wheelhouse)
    if spelling == "files":  # pip takes an archive's path as well as a folder's
        folder = " ".join(str(p) for p in sorted(wheelhouse.glob("*.whl")))
    with derived_image(docker_client, pip_image, tag, f"LABEL piplinks={tmp_path.name}"):
        matrix = docker_matrix(
            {
                "probe": "script: {fx}/env_probe_repro.py, gpus: [cpu], bases: [linkbase], "
                "params: {module: tinylib, good: 1.0}, libraries: {tinylib: all}"
            },
            {"linkbase": f'ref: "{tag}"'},
            extra=TINYLIB,
        )
        out = run_cli(
            "--matrix", str(matrix), "run", "--executor", "docker", "--pull", "never",
            "--no-progress", "--results", "results", "--cache", "cache", "--repro", "probe",
            env={"PIP_FIND_LINKS": f"{tmp_path / 'absent'} {folder}", "PIP_NO_INDEX": "1"},
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        got = latest(tmp_path / "results")
        one, two = got["probe[cpu,linkbase,tinylib=1.0]"], got["probe[cpu,linkbase,tinylib=2.0]"]
        assert one.status is Status.PASSED, one.reason
        assert two.status is Status.REGRESSED, two.reason


def test_an_environment_image_is_built_on_the_image_the_run_resolved(
    tmp_path: Path,
    run_cli: CliRunner,
    docker_matrix: MatrixWriter,
    docker_client: Any,
    pip_image: str,
    wheelhouse: Path,
) -> None:
    """The run takes a base's image id once (its cells' fingerprint, the environment
    image's key); its environment images were built `FROM <ref>`, so a tag rebuilt during
    the run gave the pinned cells the new image under the old one's key, kept for later runs
    of the old image."""
    tag = "repromatrix-test-moved:1"
    mark = f"LABEL moved={tmp_path.name}"
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "moved.py").write_text(
        "import os, time\n\ndef run(params):\n"
        "    deadline = time.monotonic() + 60\n"
        "    while params.get('wait') and time.monotonic() < deadline and not "
        "os.path.exists('/repromatrix/repros/moved'):\n"
        "        time.sleep(0.05)\n"
        "    moved = os.path.exists('/moved')\n"
        "    return {'schema': 1, 'status': 'regressed' if moved else 'passed', 'reason': ''}\n"
    )
    with derived_image(docker_client, pip_image, tag, mark):
        matrix = docker_matrix(
            {
                "first": f"script: {folder}/moved.py, gpus: [cpu], bases: [moving], "
                "params: {wait: 1}, timeout: 120",
                "pinned": f"script: {folder}/moved.py, gpus: [cpu], bases: [moving], "
                "libraries: {tinylib: ['1.0']}, timeout: 60",
            },
            {"moving": f'ref: "{tag}"'},
            extra=TINYLIB,
        )
        argv = cli_argv(
            "--matrix", str(matrix), "run", "--executor", "docker", "--pull", "never",
            "--jobs", "1", "--no-progress", "--results", str(tmp_path / "results"),
            "--cache", str(tmp_path / "cache"), "--find-links", str(wheelhouse), "--no-index",
            "--repro", "first", "--repro", "pinned",
        )  # fmt: skip
        with subprocess.Popen(argv, cwd=tmp_path, stderr=subprocess.PIPE, text=True) as run:
            poll(lambda: docker_client.containers.list(filters={"ancestor": tag}))
            # The tag now names another image (a rebuild by someone else mid-run).
            recipe = f"FROM {pip_image}\n{mark}\nRUN touch /moved\n".encode()
            docker_client.images.build(fileobj=io.BytesIO(recipe), tag=tag, rm=True)
            (folder / "moved").touch()
            _, stderr = run.communicate(timeout=300)
    for img in docker_client.images.list(filters={"label": f"moved={tmp_path.name}"}):
        with contextlib.suppress(docker.errors.APIError):  # the image the tag named first
            docker_client.images.remove(img.id, force=True)
    assert run.returncode == 0, stderr
    got = {r.repro: r for r in latest(tmp_path / "results").values()}
    assert got["first"].status is Status.PASSED
    assert got["pinned"].status is Status.PASSED, "built on the image the tag moved to"
