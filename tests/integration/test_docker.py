"""The Docker executor against the real engine, through the CLI as a real process.

Every cell runs in the registry-free test image (images/test-base.sh). Containers are found
through the SDK by their labels, so "nothing left behind" is checked, not assumed.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import textwrap
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import docker.errors
import pytest
from clihelpers import CliRunner, cli_argv
from docker_fixtures import (
    FAKE_H100,
    FIXTURE_REPROS,
    cell_containers,
    container_name,
    derived_image,
    our_containers,
    poll,
)
from tinywheels import build_tinylib

from repromatrix.executors.docker import NO_NVIDIA_RUNTIME
from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.store import ResultStore

# The fixtures (docker_client, base_image, docker_matrix) come from this plugin module.
pytest_plugins = ("docker_fixtures",)
pytestmark = [pytest.mark.integration, pytest.mark.docker]

MatrixWriter = Callable[..., Path]


def latest(results: Path) -> dict[str, Result]:
    return {r.cell_id: r for r in ResultStore(results).latest_by_key().values()}


def run_ids(results: Path) -> set[str]:
    return {r.run_id for r in ResultStore(results).load().results if r.executor == "docker"}


def test_every_protocol_outcome_in_containers(
    tmp_path: Path, run_cli: CliRunner, docker_matrix: MatrixWriter, docker_client: Any
) -> None:
    matrix = docker_matrix()
    out = run_cli(
        "--matrix", str(matrix), "run", "--executor", "docker", "--jobs", "2", "--no-progress",
        "--results", "results", "--repro", "pass_repro", "--repro", "regress_repro",
        "--repro", "untestable_repro", "--repro", "segfault_repro", "--repro", "exit3_repro",
        "--repro", "garbage_repro", "--repro", "mismatch_repro", "--repro", "hang_repro",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    got = latest(tmp_path / "results")
    assert {k: r.status for k, r in got.items()} == {
        "pass_repro[cpu,testbase]": Status.PASSED,
        "regress_repro[cpu,testbase]": Status.REGRESSED,
        "untestable_repro[cpu,testbase]": Status.UNTESTABLE,
        "segfault_repro[cpu,testbase]": Status.ERROR,
        "exit3_repro[cpu,testbase]": Status.ERROR,
        "garbage_repro[cpu,testbase]": Status.ERROR,
        "mismatch_repro[cpu,testbase]": Status.ERROR,
        "hang_repro[cpu,testbase]": Status.TIMEOUT,
    }
    assert all(r.executor == "docker" for r in got.values())
    assert got["pass_repro[cpu,testbase]"].reason == "max abs 1.0e-05 <= 1e-3"
    assert got["regress_repro[cpu,testbase]"].metrics["max_abs"] == pytest.approx(1.97)
    assert got["untestable_repro[cpu,testbase]"].reason == "no CUDA device"
    # The repro is not PID 1 (docker-init is), so its own SIGSEGV kills it: signal 11.
    segv = got["segfault_repro[cpu,testbase]"]
    assert segv.exit_code == 139
    assert segv.reason.startswith("crashed: killed by signal 11")
    assert "segfault coming" in segv.reason
    assert "about to crash" in segv.stdout_tail
    assert "segfault coming" in segv.stderr_tail
    assert got["exit3_repro[cpu,testbase]"].reason.startswith("exited 3 without a result")
    assert "does not parse" in got["garbage_repro[cpu,testbase]"].reason
    assert "disagrees" in got["mismatch_repro[cpu,testbase]"].reason
    hang = got["hang_repro[cpu,testbase]"]
    assert hang.duration_s < 30, "the 3 s limit was not enforced"
    assert "hanging" in hang.stdout_tail
    # Provenance: which image, by id; the harness knows it even when the repro does not.
    image = hang.provenance["harness"]["image"]
    assert image["ref"] == got["pass_repro[cpu,testbase]"].image
    assert image["id"].startswith("sha256:")
    assert hang.base_fingerprint == f"image:{image['id']}"
    # Nothing of this run is left in the engine: the timed-out container included.
    (run_id,) = run_ids(tmp_path / "results")
    assert our_containers(docker_client, **{"run-id": run_id}) == []


def test_mounts_environment_and_provenance(
    tmp_path: Path, run_cli: CliRunner, docker_matrix: MatrixWriter
) -> None:
    repros = tmp_path / "repros"
    repros.mkdir()
    (repros / "_fixture.py").write_text((FIXTURE_REPROS / "_fixture.py").read_text())
    (repros / "env_repro.py").write_text(
        textwrap.dedent(
            """
            import json, os, sys
            here = os.path.dirname(os.path.abspath(__file__))
            sys.path.insert(0, here)
            from _fixture import args
            out, params = args()
            try:
                open(os.path.join(here, "probe"), "w").close()
                read_only = False
            except OSError:
                read_only = True
            keys = ("REPROMATRIX_IMAGE_REF", "REPROMATRIX_IMAGE_DIGEST", "HOME",
                    "CUDA_VISIBLE_DEVICES", "TRITON_CACHE_DIR", "REPROMATRIX_CELL")
            result = {
                "schema": 1, "repro": "env_repro", "status": "passed", "reason": "facts",
                "metrics": {"repros_read_only": float(read_only)},
                "provenance": {"env": {k: os.environ.get(k) for k in keys},
                               "argv": sys.argv, "params": params,
                               "home_writable": os.access(os.environ["HOME"], os.W_OK)},
            }
            with open(out, "w") as f:
                json.dump(result, f)
            """
        )
    )
    matrix = docker_matrix(
        {
            "env_repro": f"script: {repros}/env_repro.py, gpus: [cpu], bases: [testbase], "
            "params: {answer: 42}"
        }
    )
    out = run_cli(
        "--matrix", str(matrix), "run", "--executor", "docker", "--repro", "env_repro",
        "--no-progress", "--results", "results",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (r,) = latest(tmp_path / "results").values()
    assert r.status is Status.PASSED, r.reason
    assert r.metrics["repros_read_only"] == 1.0
    assert not (repros / "probe").exists()
    prov = r.provenance
    # The cell ran in the environment's worker container, with the command line a
    # container of its own would give it, its result JSON in its own output folder.
    assert prov["argv"][0] == "/repromatrix/repros/env_repro.py"
    assert prov["argv"][1] == "--out"
    assert prov["argv"][2].startswith("/repromatrix/runs/")
    assert prov["argv"][2].endswith(f"/{r.key}/out/result.json")
    assert prov["harness"]["worker"]["container"].startswith("repromatrix-")
    assert prov["params"] == {"answer": 42}
    image = prov["harness"]["image"]
    assert prov["env"]["REPROMATRIX_IMAGE_REF"] == image["ref"] == r.image
    # A locally imported image has no registry digest: the content id stands in for it.
    assert image["digest"] is None
    assert prov["env"]["REPROMATRIX_IMAGE_DIGEST"] == image["id"]
    assert prov["env"]["CUDA_VISIBLE_DEVICES"] == ""
    assert prov["env"]["HOME"].startswith("/repromatrix/cache")
    assert prov["home_writable"] is True
    assert prov["env"]["REPROMATRIX_CELL"] == r.cell_id
    # The result JSON came through the read-write output mount into the run's workdir.
    workdir = Path(prov["harness"]["workdir"])
    assert (workdir / "out" / "result.json").is_file()
    assert (workdir / "stdout.log").is_file()
    assert (workdir / "stderr.log").is_file()


def test_cells_run_in_parallel_through_the_cli(
    tmp_path: Path, run_cli: CliRunner, docker_matrix: MatrixWriter
) -> None:
    slow = "script: {fx}/slow_repro.py, gpus: [cpu], bases: [testbase], params: {seconds: 3}"
    matrix = docker_matrix({"slow_a": slow, "slow_b": slow})
    out = run_cli(
        "--matrix", str(matrix), "run", "--executor", "docker", "--jobs", "2",
        "--repro", "slow_a", "--repro", "slow_b", "--no-progress", "--results", "results",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    got = latest(tmp_path / "results")
    assert {r.status for r in got.values()} == {Status.PASSED}
    spans = [
        (
            datetime.fromisoformat(r.provenance["harness"]["t_start"]),
            datetime.fromisoformat(r.provenance["harness"]["t_end"]),
        )
        for r in got.values()
    ]
    (a0, a1), (b0, b1) = spans
    # Both containers were running at once: each started before the other finished.
    assert a0 < b1, spans
    assert b0 < a1, spans
    names = {r.provenance["harness"]["container"] for r in got.values()}
    assert len(names) == 2


def _toylib(tmp_path: Path) -> Path:
    repo = tmp_path / "toylib"
    (repo / "toylib").mkdir(parents=True)

    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-C", str(repo), *args], check=True, capture_output=True,
            env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
                 "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"},
        )  # fmt: skip

    git("init", "-q", "-b", "main")
    for version in ("1", "2"):
        (repo / "toylib" / "__init__.py").write_text(f"VALUE = {version}\n")
        git("add", "-A")
        git("commit", "-q", "-m", f"v{version}")
        git("tag", f"v{version}")
    return repo


def test_environment_image_is_built_once_and_reused(
    tmp_path: Path, run_cli: CliRunner, docker_matrix: MatrixWriter, docker_client: Any
) -> None:
    repo = _toylib(tmp_path)
    repros = tmp_path / "repros"
    repros.mkdir()
    (repros / "_fixture.py").write_text((FIXTURE_REPROS / "_fixture.py").read_text())
    (repros / "toy_repro.py").write_text(
        textwrap.dedent(
            """
            import os, sys
            sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
            from _fixture import args, finish
            import toylib
            out, params = args()
            status = "regressed" if toylib.VALUE >= 2 else "passed"
            finish(out, "toy_repro", status, f"toylib {toylib.VALUE}", value=toylib.VALUE)
            """
        )
    )
    body = (
        f"script: {repros}/toy_repro.py, gpus: [cpu], bases: [testbase], libraries: {{toylib: all}}"
    )
    matrix = docker_matrix(
        # Two repros over the same pins: one image per pin set, shared by both.
        {"toy_a": body, "toy_b": body},
        extra=textwrap.dedent(
            f"""
            libraries:
              toylib: {{git: "{repo}", import: toylib, install: pythonpath, versions: [v1, v2]}}
            """
        ),
    )
    args = [
        "--matrix", str(matrix), "run", "--executor", "docker", "--jobs", "2", "--no-progress",
        "--results", "results", "--cache", "cache", "--repro", "toy_a", "--repro", "toy_b",
    ]  # fmt: skip
    env_images: set[str] = set()
    try:
        first = run_cli(*args)
        assert first.returncode == 0, first.stderr
        got = latest(tmp_path / "results")
        assert {k: r.status for k, r in got.items()} == {
            "toy_a[cpu,testbase,toylib=v1]": Status.PASSED,
            "toy_a[cpu,testbase,toylib=v2]": Status.REGRESSED,
            "toy_b[cpu,testbase,toylib=v1]": Status.PASSED,
            "toy_b[cpu,testbase,toylib=v2]": Status.REGRESSED,
        }
        images = {k: r.provenance["harness"]["image"] for k, r in got.items()}
        env_images = {i["env_image"] for i in images.values()}
        assert len(env_images) == 2
        assert all(t.startswith("repromatrix-env:") for t in env_images)
        # Each pin set was built by exactly one of its two cells; the other reused it.
        assert sum(i["built"] for i in images.values()) == 2
        ids = {t: docker_client.images.get(t).id for t in env_images}
        for tag in env_images:
            labels = docker_client.images.get(tag).labels
            assert labels["org.repromatrix.kind"] == "env"
            assert labels["org.repromatrix.base-ref"] == got["toy_a[cpu,testbase,toylib=v1]"].image
            assert json.loads(labels["org.repromatrix.pins"])["toylib"]["commit"]
        prov = got["toy_a[cpu,testbase,toylib=v2]"].provenance["harness"]
        assert prov["pins"]["toylib"]["rev"] == "v2"

        second = run_cli(*args, "--rerun")
        assert second.returncode == 0, second.stderr
        records = ResultStore(tmp_path / "results").load().results
        (run2,) = {r.run_id for r in records} - {r.run_id for r in got.values()}
        again = [r for r in records if r.run_id == run2]
        assert len(again) == 4
        # The second run built nothing: every cell found its image, with the same id.
        assert [r.provenance["harness"]["image"]["built"] for r in again] == [False] * 4
        assert {t: docker_client.images.get(t).id for t in env_images} == ids
        assert not list((tmp_path / "cache" / "runs" / run2).glob("*/env-build.log"))
    finally:
        for tag in env_images:
            docker_client.images.remove(tag, force=True)


def test_gpu_cell_without_nvidia_runtime_is_untestable(
    tmp_path: Path, run_cli: CliRunner, docker_matrix: MatrixWriter, docker_client: Any
) -> None:
    if "nvidia" in (docker_client.info().get("Runtimes") or {}):
        pytest.skip("this engine has the NVIDIA runtime: the fake GPU would be handed to it")
    out = run_cli(
        "--matrix", str(docker_matrix()), "run", "--executor", "docker", "--repro", "gpu_repro",
        "--no-progress", "--results", "results",
        env={"REPROMATRIX_FAKE_GPUS": FAKE_H100},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (r,) = latest(tmp_path / "results").values()
    assert r.status is Status.UNTESTABLE
    assert r.reason == NO_NVIDIA_RUNTIME
    assert r.exit_code == 125
    assert r.provenance["harness"]["gpu"]["uuid"] == "GPU-fake-uuid"


def test_pull_never_with_an_absent_image_is_not_run_here(
    tmp_path: Path, run_cli: CliRunner, docker_matrix: MatrixWriter
) -> None:
    matrix = docker_matrix(
        {"absent": "script: {fx}/pass_repro.py, gpus: [cpu], bases: [absent]"},
        {"absent": 'ref: "repromatrix-absent:nope"'},
    )
    r = _only_record(run_cli, matrix, tmp_path, "absent")
    assert r.status is Status.NOT_RUN
    assert "repromatrix-absent:nope is not on this host" in r.reason
    assert "--pull never" in r.reason


def _only_record(run_cli: CliRunner, matrix: Path, tmp_path: Path, repro: str) -> Result:
    """`repro`'s one record after a Docker run that pulls nothing (which must end well)."""
    out = run_cli(
        "--matrix", str(matrix), "run", "--executor", "docker", "--pull", "never",
        "--repro", repro, "--no-progress", "--results", "results",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (r,) = latest(tmp_path / "results").values()
    return r


def _start_hanging_run(tmp_path: Path, matrix: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cli_argv(
            "--matrix",
            str(matrix),
            "run",
            "--executor",
            "docker",
            "--repro",
            "hang_repro",
            "--timeout",
            "300",
            "--no-progress",
            "--results",
            "results",
            "--cache",
            "cache",
        ),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _running_container_of(client: Any, pid: int) -> Any:
    # Not the short one that asked the image's python3 for its version before the cells.
    mine = cell_containers(client, **{"owner-pid": str(pid)})
    found = [c for c in mine if c.status == "running"]
    return found[0] if found else None


def watchdog_of(container: Any) -> int:
    """The pid of the watchdog of the run that made `container` (by its run token)."""
    token = container.attrs["Labels"]["org.repromatrix.run-token"].encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"repromatrix.watchdog" in cmdline and token in cmdline:
                return int(entry.name)
    raise AssertionError(f"no watchdog with token {token!r}")


@pytest.mark.parametrize("then", ["watchdog", "clean", "next-run"])
def test_kill_9_of_the_runner_leaves_no_container(
    tmp_path: Path,
    run_cli: CliRunner,
    docker_matrix: MatrixWriter,
    docker_client: Any,
    then: str,
) -> None:
    matrix = docker_matrix()
    runner = _start_hanging_run(tmp_path, matrix)
    try:
        container = poll(
            lambda: _running_container_of(docker_client, runner.pid),
            timeout=120,
            what="the hanging cell's container",
        )
        watchdog = watchdog_of(container)
        if then != "watchdog":  # both killed at once: only the janitor is left to clean up
            os.kill(watchdog, signal.SIGKILL)
    finally:
        runner.send_signal(signal.SIGKILL)
        runner.communicate(timeout=60)
    name = container_name(container)
    if then == "watchdog":
        # The watchdog saw its runner die and removed the container within seconds.
        poll(
            lambda: our_containers(docker_client, **{"owner-pid": str(runner.pid)}) == [],
            timeout=5,
            what=f"the watchdog to remove {name}",
        )
        return
    # The runner and its watchdog are gone; the container is not (what a crash leaves).
    assert docker_client.containers.get(name).status == "running"
    if then == "clean":
        out = run_cli("clean", "--cache", "cache")
        assert out.returncode == 0, out.stderr
        assert f"container {name}" in out.stderr
    else:
        out = run_cli(
            "--matrix", str(matrix), "run", "--executor", "docker", "--repro", "pass_repro",
            "--no-progress", "--results", "results", "--cache", "cache",
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert latest(tmp_path / "results")["pass_repro[cpu,testbase]"].status is Status.PASSED
    assert our_containers(docker_client, **{"owner-pid": str(runner.pid)}) == []


def test_ctrl_c_kills_the_running_container(
    tmp_path: Path, docker_matrix: MatrixWriter, docker_client: Any
) -> None:
    runner = _start_hanging_run(tmp_path, docker_matrix())
    try:
        poll(
            lambda: _running_container_of(docker_client, runner.pid),
            timeout=120,
            what="the hanging cell's container",
        )
        runner.send_signal(signal.SIGINT)
        _, err = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert runner.returncode == 130, err
    assert "interrupted" in err
    assert our_containers(docker_client, **{"owner-pid": str(runner.pid)}) == []
    # Half a run is not a result.
    assert not (tmp_path / "results").exists() or not latest(tmp_path / "results")


def test_pypi_pins_from_find_links_and_per_environment_caches(
    tmp_path: Path,
    run_cli: CliRunner,
    docker_matrix: MatrixWriter,
    docker_client: Any,
    pip_image: str,
    wheelhouse: Path,
) -> None:
    probe = "script: {fx}/env_probe_repro.py, gpus: [cpu], bases: [pipbase], "
    matrix = docker_matrix(
        {
            "probe": probe + "params: {module: tinylib, good: 1.0}, libraries: {tinylib: all}",
            "probe2": probe + "params: {module: tinylib, good: 1.0, other: 1}, "
            "libraries: {tinylib: ['1.0']}",
        },
        {"pipbase": f'ref: "{pip_image}"'},
        extra=textwrap.dedent(
            """
            libraries:
              tinylib: {pypi: tinylib, import: tinylib, versions: ["1.0", "2.0", "9.9"]}
            """
        ),
    )
    # A local build of 1.0 (bad) beside 1.0: `tinylib==1.0` installed it, as the highest
    # match; the pin 1.0 names the release itself.
    build_tinylib(wheelhouse, "1.0+cu121", "2.0")
    args = [
        "--matrix", str(matrix), "run", "--executor", "docker", "--jobs", "1", "--no-progress",
        "--results", "results", "--cache", "cache", "--find-links", str(wheelhouse),
        "--no-index", "--repro", "probe", "--repro", "probe2",
    ]  # fmt: skip
    env_images: set[str] = set()
    # Env images of this base that were there before (another run's on a shared engine):
    # not this run's to account for.
    label = {"label": ["org.repromatrix.kind=env", f"org.repromatrix.base-ref={pip_image}"]}
    before = {t for img in docker_client.images.list(filters=label) for t in img.tags}
    try:
        out = run_cli(*args)
        assert out.returncode == 0, out.stderr
        got = latest(tmp_path / "results")
        env_images = {
            str(r.provenance["harness"]["image"].get("env_image"))
            for r in got.values()
            if "env_image" in r.provenance["harness"].get("image", {})
        }
        assert got["probe[cpu,pipbase,tinylib=1.0]"].status is Status.PASSED
        assert got["probe[cpu,pipbase,tinylib=2.0]"].status is Status.REGRESSED
        missing = got["probe[cpu,pipbase,tinylib=9.9]"]
        assert missing.status is Status.ERROR
        assert missing.reason.startswith("environment: building repromatrix-env:")
        assert "No matching distribution found for tinylib==9.9" in missing.reason
        # Same pins, same environment image and compile cache; other pins, a cold cache.
        assert got["probe[cpu,pipbase,tinylib=1.0]"].metrics["warm"] == 0.0
        assert got["probe2[cpu,pipbase,tinylib=1.0]"].metrics["warm"] == 1.0
        assert got["probe[cpu,pipbase,tinylib=2.0]"].metrics["warm"] == 0.0
        one = got["probe[cpu,pipbase,tinylib=1.0]"].provenance["harness"]
        assert one["env"] == got["probe2[cpu,pipbase,tinylib=1.0]"].provenance["harness"]["env"]
        assert one["pins"]["tinylib"]["kind"] == "pypi"
        # A failed build leaves no tagged image and no intermediate container behind.
        assert len(env_images) == 2
        labelled = docker_client.images.list(filters=label)
        assert {t for img in labelled for t in img.tags} - before == env_images - before
        assert docker_client.containers.list(all=True, filters={"ancestor": pip_image}) == []
    finally:
        for tag in env_images:
            if docker_client.images.list(name=tag):
                docker_client.images.remove(tag, force=True)


def test_auto_runs_image_bases_in_docker_and_the_host_base_locally(
    tmp_path: Path, run_cli: CliRunner, docker_matrix: MatrixWriter
) -> None:
    matrix = docker_matrix(
        {"both": "script: {fx}/pass_repro.py, gpus: [cpu], bases: [testbase, host]"}
    )
    out = run_cli(
        "--matrix", str(matrix), "run", "--executor", "auto", "--repro", "both",
        "--no-progress", "--results", "results",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    got = latest(tmp_path / "results")
    assert {k: (r.status, r.executor) for k, r in got.items()} == {
        "both[cpu,testbase]": (Status.PASSED, "docker"),
        "both[cpu,host]": (Status.PASSED, "local"),
    }
    assert got["both[cpu,testbase]"].base_fingerprint.startswith("image:sha256:")
    assert got["both[cpu,host]"].base_fingerprint.startswith("host:")


def test_clean_docker_removes_our_env_images(
    tmp_path: Path, run_cli: CliRunner, docker_matrix: MatrixWriter, docker_client: Any
) -> None:
    repo = _toylib(tmp_path)
    matrix = docker_matrix(
        {"toy": "script: {fx}/pass_repro.py, gpus: [cpu], bases: [testbase], "
         "libraries: {toylib: [v1]}"},
        extra=f'libraries:\n  toylib: {{git: "{repo}", import: toylib, install: pythonpath, '
        "versions: [v1]}\n",
    )  # fmt: skip
    out = run_cli(
        "--matrix", str(matrix), "run", "--executor", "docker", "--repro", "toy",
        "--no-progress", "--results", "results", "--cache", "cache",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (r,) = latest(tmp_path / "results").values()
    tag = r.provenance["harness"]["image"]["env_image"]
    assert docker_client.images.list(name=tag)
    # A user's image built FROM ours inherits its labels: it is not ours to remove.
    (tmp_path / "derived").mkdir()
    (tmp_path / "derived" / "Dockerfile").write_text(f"FROM {tag}\nRUN echo keep > /keep\n")
    docker_client.images.build(path=str(tmp_path / "derived"), tag="user-derived:1", rm=True)
    try:
        # Plain clean keeps env images (a cache worth keeping); --docker removes them.
        assert run_cli("clean", "--cache", "cache").returncode == 0
        assert docker_client.images.list(name=tag)
        out = run_cli("clean", "--cache", "cache", "--docker")
        assert out.returncode == 0, out.stderr
        assert "user-derived" not in out.stderr
        assert docker_client.images.list(name="user-derived")
    finally:
        docker_client.images.remove("user-derived:1", force=True)
    out = run_cli("clean", "--cache", "cache", "--docker")
    assert out.returncode == 0, out.stderr
    assert not docker_client.images.list(name=tag)
    # The test base is not ours to remove: it is a recipe's product, not a cache.
    assert docker_client.images.list(name=r.image)


def test_cell_env_reaches_both_executors_and_provenance(
    tmp_path: Path, run_cli: CliRunner, docker_matrix: MatrixWriter
) -> None:
    matrix = docker_matrix(
        {
            "echo": "script: {fx}/env_echo_repro.py, gpus: [cpu], bases: [testbase, host], "
            "params: {var: NVCC_APPEND_FLAGS}"
        }
    )
    flags = "-static-global-template-stub=false -DX=Y"
    out = run_cli(
        "--matrix", str(matrix), "run", "--executor", "auto", "--repro", "echo",
        "--no-progress", "--results", "results", "--cell-env", f"NVCC_APPEND_FLAGS={flags}",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    got = latest(tmp_path / "results")
    for cell_id in ("echo[cpu,testbase]", "echo[cpu,host]"):
        assert got[cell_id].reason == f"NVCC_APPEND_FLAGS={flags}"
        assert got[cell_id].provenance["harness"]["cell_env"] == {"NVCC_APPEND_FLAGS": flags}


def test_a_worker_container_serves_an_environment_and_is_replaced_after_a_crash(
    tmp_path: Path, run_cli: CliRunner, docker_matrix: MatrixWriter, docker_client: Any
) -> None:
    """The Docker variant of persistent workers: one long-lived container per (environment
    image, slot) runs cell after cell; a crash costs its cell and the next cell gets a new
    container; none is left once the run is over."""
    body = "script: {fx}/worker_repro.py, gpus: [cpu], bases: [testbase], timeout: 60, "
    matrix = docker_matrix(
        {
            "w1": body + "params: {tag: one}",
            "w2": body + "params: {tag: two}",
            "w3": body + "params: {mode: crash}",
            "w4": body + "params: {tag: four}",
        }
    )
    out = run_cli(
        "--matrix", str(matrix), "run", "--executor", "docker", "--jobs", "1", "--no-progress",
        "--results", "results", "--repro", "w1", "--repro", "w2", "--repro", "w3",
        "--repro", "w4",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    got = {r.repro: r for r in latest(tmp_path / "results").values()}
    worker = {name: r.provenance["harness"]["worker"] for name, r in got.items()}
    assert got["w1"].status is got["w2"].status is got["w4"].status is Status.PASSED
    assert worker["w1"]["container"] == worker["w2"]["container"] == worker["w3"]["container"]
    assert [worker[n]["cell"] for n in ("w1", "w2", "w3")] == [1, 2, 3]
    assert got["w3"].status is Status.ERROR
    assert got["w3"].reason.startswith("crashed: killed by signal 11")
    assert worker["w4"]["container"] != worker["w1"]["container"]
    assert worker["w4"]["cell"] == 1
    assert got["w1"].stdout_tail == f"cell one in pid {got['w1'].provenance['pid']}\n"
    assert our_containers(docker_client, **{"run-id": got["w1"].run_id}) == []


@pytest.mark.parametrize("isolate", [False, True])
def test_a_repro_folder_whose_path_holds_a_colon_is_mounted(
    tmp_path: Path, run_cli: CliRunner, base_image: str, isolate: bool
) -> None:
    """`-v /tmp/col:on/repros:/repromatrix/repros:ro` is a wrong volume specification:
    every cell of such a folder was an error record, at exit 0, reused by later runs."""
    from docker_fixtures import write_docker_matrix

    folder = tmp_path / "col:on"
    folder.mkdir()
    isolated = ", isolate: true" if isolate else ""
    matrix = write_docker_matrix(
        folder / "m.yaml",
        base_image,
        {"colon": "script: {fx}/pass_repro.py, gpus: [cpu], bases: [testbase]" + isolated},
    )
    out = run_cli(
        "--matrix", str(matrix), "run", "--executor", "docker", "--repro", "colon",
        "--no-progress", "--results", "results",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert latest(tmp_path / "results")["colon[cpu,testbase]"].status is Status.PASSED


def test_an_isolated_repro_module_without_a_command_line_runs_in_its_container(
    tmp_path: Path, run_cli: CliRunner, base_image: str
) -> None:
    """`isolate: true` ran `python3 m.py --out ...` in the container, which only defined
    `run` and exited 0: an error record for a module its worker runs well."""
    from docker_fixtures import write_docker_matrix

    folder = tmp_path / "proj"
    (folder / "mods").mkdir(parents=True)
    (folder / "mods" / "only_run.py").write_text(
        "import os\n\ndef run(params):\n"
        "    return {'schema': 1, 'status': 'regressed', 'reason': f'pid {os.getpid()}'}\n"
    )
    matrix = write_docker_matrix(
        folder / "m.yaml",
        base_image,
        {"mod": "script: mods/only_run.py, gpus: [cpu], bases: [testbase], isolate: true"},
    )
    out = run_cli(
        "--matrix", str(matrix), "run", "--executor", "docker", "--repro", "mod",
        "--no-progress", "--results", "results",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    record = latest(tmp_path / "results")["mod[cpu,testbase]"]
    assert (record.status, record.exit_code) == (Status.REGRESSED, 1), record.reason


def test_an_environment_image_that_cannot_build_says_pips_words(
    tmp_path: Path, run_cli: CliRunner, docker_matrix: MatrixWriter, wheelhouse: Path
) -> None:
    """The test base has no pip: the reason was the builder's "Removing intermediate
    container …", the decisive line only in the log."""
    matrix = docker_matrix(
        {
            "nopip": "script: {fx}/env_probe_repro.py, gpus: [cpu], bases: [testbase], "
            "params: {module: tinylib, good: 1.0}, libraries: {tinylib: ['1.0']}"
        },
        extra=textwrap.dedent(
            """
            libraries:
              tinylib: {pypi: tinylib, import: tinylib, versions: ["1.0"]}
            """
        ),
    )
    out = run_cli(
        "--matrix", str(matrix), "run", "--executor", "docker", "--no-progress", "--results",
        "results", "--find-links", str(wheelhouse), "--no-index", "--repro", "nopip",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (r,) = latest(tmp_path / "results").values()
    assert r.status is Status.ERROR
    assert "No module named pip" in r.reason, r.reason


def test_a_run_in_another_pid_namespace_never_sweeps_a_live_runs_containers(
    docker_client: Any, base_image: str
) -> None:
    """A CI job's container sharing the engine and the hostname has pids of its own: its
    run took a live run's containers for orphans (their owner pid was not alive in its
    namespace), removed them, and the live run recorded false errors at exit 0."""
    import socket

    from repromatrix.executors.docker import janitor

    def labelled(pidns: str) -> Any:
        labels = {
            janitor.L_KIND: janitor.KIND_CELL,
            janitor.L_HOST: socket.gethostname(),
            janitor.L_PID: "999999",  # no such process here
            janitor.L_PID_NS: pidns,
        }
        return docker_client.containers.create(base_image, ["true"], labels=labels)

    elsewhere = labelled("1")
    here = labelled(janitor._pid_namespace())
    volume_image, _ = docker_client.images.build(
        fileobj=io.BytesIO(f"FROM {base_image}\nVOLUME /data\n".encode()),
        tag="rm-volume:1",
        rm=True,
    )
    with_volume = docker_client.containers.create(
        "rm-volume:1",
        ["true"],
        labels={
            janitor.L_KIND: janitor.KIND_CELL,
            janitor.L_HOST: socket.gethostname(),
            janitor.L_PID: "999999",
            janitor.L_PID_NS: janitor._pid_namespace(),
        },
    )
    volumes = [m["Name"] for m in docker_client.api.inspect_container(with_volume.id)["Mounts"]]
    try:
        removed = janitor.remove_orphans(docker_client, hostname=socket.gethostname())
        names = {c.name for c in (here, with_volume)}
        assert {r.removeprefix("container ") for r in removed} >= names
        assert elsewhere.name not in " ".join(removed)
        docker_client.containers.get(elsewhere.id)  # still there
        for name in volumes:  # a VOLUME of the image goes with its container
            with pytest.raises(docker.errors.NotFound):
                docker_client.volumes.get(name)
    finally:
        elsewhere.remove(force=True, v=True)
        docker_client.images.remove(volume_image.id, force=True)


@pytest.mark.parametrize("how", ["kill", "rm", "pause"])
def test_a_worker_container_gone_between_cells_costs_the_next_cell_nothing(
    tmp_path: Path, docker_matrix: MatrixWriter, docker_client: Any, how: str
) -> None:
    """A worker container killed while idle (`docker kill`, `docker rm -f`, the OOM killer
    choosing it) was handed the next cell anyway: the cell was recorded "crashed: killed
    by signal 9" although it never started, and later runs reused that error; one
    paused (frozen) while idle made the next cell a timeout. The executor is driven
    directly so that the container dies between two cells, not in one.
    """
    from repromatrix.config import load_matrix
    from repromatrix.executors.base import Slot
    from repromatrix.executors.docker import DockerExecutor
    from repromatrix.expand import expand
    from repromatrix.options import ExecutorKind, SessionConfig

    # The frozen worker costs the cell its whole timeout before a fresh one runs it.
    timeout = 15 if how == "pause" else 60
    body = f"script: {{fx}}/worker_repro.py, gpus: [cpu], bases: [testbase], timeout: {timeout}, "
    matrix = load_matrix(
        docker_matrix({"w1": body + "params: {tag: one}", "w2": body + "params: {tag: two}"})
    )
    cells = {c.repro: c for c in expand(matrix) if c.repro in ("w1", "w2")}
    config = SessionConfig(
        results=tmp_path / "results", cache=tmp_path / "cache", executor=ExecutorKind.DOCKER
    )
    executor = DockerExecutor.connect(config, env=os.environ)
    assert isinstance(executor, DockerExecutor), executor
    # A run id of each case's own: what one case leaves is not another's to answer for.
    run_dir = (tmp_path / "cache" / "runs" / f"idle-worker-{how}").resolve()
    slot = Slot(name="cpu0")
    try:
        first = executor.run(cells["w1"], slot, run_dir / "w1")
        assert first.exit_code == 0, first
        container = docker_client.containers.get(first.harness["container"])
        if how == "kill":
            container.kill()
        elif how == "pause":
            container.pause()
        else:
            container.remove(force=True)
        second = executor.run(cells["w2"], slot, run_dir / "w2")
    finally:
        executor.close()
    assert (second.exit_code, second.harness_error, second.timed_out) == (0, None, False)
    assert second.harness["container"] != first.harness["container"]
    assert second.harness["worker"]["cell"] == 1
    # Removed: the engine may finish removing a container it was told to remove a moment
    # after it answered (seen under load, with another test worker beside this one).
    deadline = time.monotonic() + 60
    while our_containers(docker_client, **{"run-id": f"idle-worker-{how}"}):
        assert time.monotonic() < deadline, "a worker container was left behind"
        time.sleep(0.5)


@pytest.mark.parametrize("isolate", [False, True])
def test_an_engine_whose_storage_is_full_stops_the_run_without_error_records(
    tmp_path: Path, docker_matrix: MatrixWriter, monkeypatch: pytest.MonkeyPatch, isolate: bool
) -> None:
    """The engine's data root full (seen with a daemon on a full disk): every cell was an
    error record "docker worker: write /var/lib/docker/overlay2/…: no space left on device"
    at exit 0, and the next run reused them all. The engine's own words stand in for the
    disk here (a full data root cannot be arranged under a shared engine): the cell must
    say "host storage full" so the scheduler stops the run (exit 8) and records nothing.
    """
    from repromatrix.config import load_matrix
    from repromatrix.executors.base import HOST_STORAGE_AT, Slot, host_full
    from repromatrix.executors.docker import DockerExecutor, containers
    from repromatrix.expand import expand
    from repromatrix.options import ExecutorKind, SessionConfig

    words = "write /var/lib/docker/overlay2/0a1b-init/lower: no space left on device"

    def full(*args: object, **kwargs: object) -> str:
        import requests

        response = requests.Response()  # as the SDK has it from the engine
        response.status_code, response.reason = 500, "Internal Server Error"
        response.url = "http+docker://localhost/v1.41/containers/create?name=x"
        raise docker.errors.APIError("500 Server Error", response=response, explanation=words)

    monkeypatch.setattr(containers, "create", full)
    matrix = load_matrix(docker_matrix())
    (cell,) = (c for c in expand(matrix) if c.repro == "pass_repro")
    config = SessionConfig(
        results=tmp_path / "results",
        cache=tmp_path / "cache",
        executor=ExecutorKind.DOCKER,
        isolate=isolate,
    )
    executor = DockerExecutor.connect(config, env=os.environ)
    assert isinstance(executor, DockerExecutor), executor
    try:
        outcome = executor.run(cell, Slot(name="cpu0"), tmp_path / "cache" / "runs" / "r" / "c")
    finally:
        executor.close()
    why = host_full(outcome)
    assert words in str(why), outcome
    # The engine's words, not the SDK's wrapping of them (the request's URL and status).
    assert "http+docker" not in str(why)
    assert str(outcome.harness.get(HOST_STORAGE_AT)).startswith("the Docker engine's storage")


def test_an_image_whose_entrypoint_does_not_run_the_worker_says_so(
    tmp_path: Path,
    run_cli: CliRunner,
    docker_matrix: MatrixWriter,
    docker_client: Any,
    base_image: str,
) -> None:
    """An image with ENTRYPOINT ["/bin/false"] (or a server's) ran it instead of the
    worker: every cell said only "the worker exited (1) before connecting". Its python3
    is asked before any cell, through the ENTRYPOINT as a worker is started: the cells
    are noted "not run here" naming it, and the run ends with exit 4, as for an image
    whose python3 is too old (test_docker_image_python.py)."""
    tag = "repromatrix-test-entrypoint:1"
    with derived_image(docker_client, base_image, tag, 'ENTRYPOINT ["/bin/false"]'):
        matrix = docker_matrix(
            {"ep": "script: {fx}/pass_repro.py, gpus: [cpu], bases: [ep]"},
            {"ep": f'ref: "{tag}"'},
        )
        out = run_cli(
            "--matrix", str(matrix), "run", "--executor", "docker", "--pull", "never",
            "--repro", "ep", "--no-progress", "--results", "results",
        )  # fmt: skip
    assert out.returncode == 4, out.stderr
    (r,) = latest(tmp_path / "results").values()
    assert r.status is Status.NOT_RUN
    assert 'ENTRYPOINT ["/bin/false"]' in r.reason, r.reason
    assert 'ENTRYPOINT ["/bin/false"]' in out.stderr.strip().splitlines()[-1]


def test_a_deep_temporary_folder_does_not_keep_worker_containers_from_starting(
    tmp_path: Path, run_cli: CliRunner, docker_matrix: MatrixWriter
) -> None:
    """TMPDIR deeper than a Unix socket path can be: "docker worker: AF_UNIX path too
    long" was every cell's error record, at exit 0."""
    deep = tmp_path / ("d" * 100)
    deep.mkdir()
    out = run_cli(
        "--matrix", str(docker_matrix()), "run", "--executor", "docker", "--repro",
        "pass_repro", "--no-progress", "--results", "results", env={"TMPDIR": str(deep)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    record = latest(tmp_path / "results")["pass_repro[cpu,testbase]"]
    assert record.status is Status.PASSED, record.reason


@pytest.mark.parametrize("how", ["rm", "kill", "stop", "pause"])
@pytest.mark.parametrize("isolate", [True, False], ids=["isolate", "worker"])
def test_a_container_removed_from_outside_mid_cell_is_no_verdict(
    tmp_path: Path, docker_matrix: MatrixWriter, docker_client: Any, isolate: bool, how: str
) -> None:
    """`docker rm -f` of a cell's container by someone else was recorded as an error
    'crashed: killed by signal 9' that later runs reused, with exit 0; so was `docker kill`
    (and `docker stop`, 'killed by signal 15'), which the cell's own SIGKILL of itself
    cannot be told from by the exit code, only by the engine's "kill" event; `docker pause`
    made the cell a timeout. The cell now gets no record, the run exits 5, and the next
    run runs it."""
    timeout = "10" if how == "pause" else "300"  # a frozen cell ends at its timeout
    argv = cli_argv(
        "--matrix", str(docker_matrix()), "run", "--executor", "docker",
        "--repro", "hang_repro", "--timeout", timeout, "--no-progress",
        "--results", "results", "--cache", "cache", *(["--isolate"] if isolate else []),
    )  # fmt: skip
    runner = subprocess.Popen(argv, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        container = poll(
            lambda: _running_container_of(docker_client, runner.pid),
            timeout=120,
            what="the hanging cell's container",
        )
        poll(
            # Its own container's output (--isolate), or the cell's log in a worker.
            lambda: (
                b"hanging" in container.logs()
                or any(
                    "hanging" in p.read_text() for p in tmp_path.glob("cache/runs/*/*/stdout.log")
                )
            ),
            timeout=60,
            what="the cell running in it",
        )
        if how == "rm":
            container.remove(force=True)
        elif how == "kill":
            container.kill()
        elif how == "stop":
            container.stop(timeout=1)
        else:
            container.pause()
        _, err = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert runner.returncode == 5, err
    assert {"rm": "removed", "pause": "paused"}.get(how, "killed") + " from outside" in err
    assert "Traceback" not in err
    assert not (tmp_path / "results").exists() or not latest(tmp_path / "results")
