"""What a cell's container gives it and does to it: a temporary folder of its own (a
container per cell, `--isolate`, starts each cell with the image's own /tmp; the persistent
worker container ran cell after cell in one, so a file a cell left in
`tempfile.gettempdir()` was there for the next cell of the image), and a memory limit.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from clihelpers import CliRunner, cli_argv
from docker_fixtures import cell_containers, derived_image, poll, write_docker_matrix

from repromatrix.model import Status
from repromatrix.store import ResultStore

pytest_plugins = ("docker_fixtures",)
pytestmark = [pytest.mark.integration, pytest.mark.docker]

#: Regressed when a file of an earlier cell is in its temporary folder; leaves one there.
LEAVES_A_FILE = """\
import os, tempfile

def run(params):
    folder = tempfile.gettempdir()
    seen = sorted(n for n in os.listdir(folder) if n.startswith("left-by-"))
    with open(os.path.join(folder, "left-by-" + params["tag"]), "w") as f:
        f.write("x")
    if seen or os.environ.get("TMPDIR", folder) != folder:
        return {"schema": 1, "status": "regressed", "reason": f"{folder}: {seen}"}
    return {"schema": 1, "status": "passed", "reason": folder}
"""


@pytest.mark.parametrize("isolate", [False, True])
def test_each_cell_of_a_docker_worker_has_a_temporary_folder_of_its_own(
    tmp_path: Path, run_cli: CliRunner, base_image: str, isolate: bool
) -> None:
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "leaves.py").write_text(LEAVES_A_FILE)
    body = "script: leaves.py, gpus: [cpu], bases: [testbase]"
    body += ", isolate: true" if isolate else ""
    matrix = write_docker_matrix(
        folder / "m.yaml",
        base_image,
        {f"t{n}": body + f", params: {{tag: '{n}'}}" for n in range(3)},
    )
    out = run_cli(
        "--matrix", str(matrix), "run", "--executor", "docker", "--jobs", "1",
        "--no-progress", "--results", "results",
        *(a for n in range(3) for a in ("--repro", f"t{n}")),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    got = {r.repro: r for r in ResultStore(tmp_path / "results").latest_by_key().values()}
    assert len(got) == 3
    assert {name: r.status for name, r in got.items()} == dict.fromkeys(got, Status.PASSED), {
        name: r.reason for name, r in got.items()
    }
    if not isolate:  # the cells shared one worker container
        containers = {r.provenance["harness"]["worker"]["container"] for r in got.values()}
        assert len(containers) == 1


#: Regressed when a file of an earlier cell is in /dev/shm (its tmpfs, which a cell fills
#: with shared memory, semaphores or files: DataLoader workers, NCCL); leaves one there.
LEAVES_SHARED_MEMORY = """\
import os

def run(params):
    seen = sorted(os.listdir("/dev/shm"))
    with open("/dev/shm/left-by-" + params["tag"], "wb") as f:
        f.write(b"x" * (1 << 20))
    if seen:
        return {"schema": 1, "status": "regressed", "reason": f"/dev/shm: {seen}"}
    return {"schema": 1, "status": "passed", "reason": "/dev/shm empty"}
"""


@pytest.mark.parametrize("isolate", [False, True])
def test_each_cell_of_a_docker_worker_starts_with_an_empty_dev_shm(
    tmp_path: Path, run_cli: CliRunner, base_image: str, isolate: bool
) -> None:
    """A container per cell starts each cell with an empty /dev/shm; the worker container
    kept what a cell left there for every later cell (files read back, a full tmpfs)."""
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "shm.py").write_text(LEAVES_SHARED_MEMORY)
    body = "script: shm.py, gpus: [cpu], bases: [testbase]"
    body += ", isolate: true" if isolate else ""
    matrix = write_docker_matrix(
        folder / "m.yaml",
        base_image,
        {f"s{n}": body + f", params: {{tag: '{n}'}}" for n in range(3)},
    )
    out = run_cli(
        "--matrix", str(matrix), "run", "--executor", "docker", "--jobs", "1",
        "--no-progress", "--results", "results",
        *(a for n in range(3) for a in ("--repro", f"s{n}")),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    got = {r.repro: r for r in ResultStore(tmp_path / "results").latest_by_key().values()}
    assert {name: r.reason for name, r in got.items()} == dict.fromkeys(
        ("s0", "s1", "s2"), "/dev/shm empty"
    )
    if not isolate:  # the cells shared one worker container
        containers = {r.provenance["harness"]["worker"]["container"] for r in got.values()}
        assert len(containers) == 1


#: Allocates 1 GiB once its container's memory limit is set (the test lowers it).
ALLOCATES = """\
import os, time

def run(params):
    deadline = time.monotonic() + 60
    while not os.path.exists("/repromatrix/repros/limited") and time.monotonic() < deadline:
        time.sleep(0.05)
    blocks = [bytearray(64 * 2**20) for _ in range(16)]
    return {"schema": 1, "status": "passed", "reason": str(len(blocks))}
"""


@pytest.mark.parametrize("isolate", [False, True])
def test_a_cell_whose_container_ran_out_of_memory_says_so(
    tmp_path: Path, run_cli: CliRunner, base_image: str, docker_client: Any, isolate: bool
) -> None:
    """A container the kernel killed for its memory limit (`docker run --memory`, `docker
    update --memory`) was recorded 'crashed: killed by signal 9', as if someone had
    killed it; the engine knows it ran out of memory (State.OOMKilled)."""
    tag = f"repromatrix-test-oom:{int(isolate)}"
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "alloc.py").write_text(ALLOCATES)
    body = "script: alloc.py, gpus: [cpu], bases: [oom]" + (", isolate: true" if isolate else "")
    with derived_image(docker_client, base_image, tag, f"LABEL oomtest={tmp_path.name}"):
        matrix = write_docker_matrix(
            folder / "m.yaml", base_image, {"alloc": body}, {"oom": f'ref: "{tag}"'}
        )
        argv = cli_argv(
            "--matrix", str(matrix), "run", "--executor", "docker", "--pull", "never",
            "--no-progress", "--results", str(tmp_path / "results"), "--repro", "alloc",
        )  # fmt: skip
        with subprocess.Popen(argv, cwd=tmp_path, stderr=subprocess.PIPE, text=True) as run:
            poll(lambda: _limit_running(docker_client, tag), what="a running cell to limit")
            (folder / "limited").touch()
            _, stderr = run.communicate(timeout=120)
    assert run.returncode == 0, stderr
    (record,) = ResultStore(tmp_path / "results").latest_by_key().values()
    assert record.status is Status.ERROR
    assert record.reason.startswith("crashed: killed by signal 9 (out of memory"), record.reason
    assert record.provenance["harness"]["oom_killed"] is True


def _limit_running(docker_client: Any, tag: str) -> bool:
    """Give the running cell containers of `tag` a memory limit the cell will pass; False
    while there is none yet. The listing also holds containers that have just ended (the
    engine answered 404 to an update of one), so only a running one counts, and one gone
    between the listing and the update is passed over."""
    import docker

    limited = False
    for found in cell_containers(docker_client, **{"base-ref": tag}):
        if found.attrs.get("State") != "running":
            continue
        try:
            docker_client.api.update_container(found.id, mem_limit="96m", memswap_limit="96m")
        except docker.errors.NotFound:
            continue
        limited = True
    return limited
