"""Two Docker runs at once, as two users (or two terminals) start them, against the real
engine: each with its own worker containers (labelled with its run), both complete with
every cell recorded, neither sweeps the other's live containers as leftovers, and none
is left once both are over. One results folder is one run's at a time (exit 9).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from clihelpers import cli_argv
from docker_fixtures import our_containers

from repromatrix.model import Status
from repromatrix.store import ResultStore

pytest_plugins = ("docker_fixtures",)
pytestmark = [pytest.mark.integration, pytest.mark.docker]

#: Long enough for the two runs' cells to overlap, short enough for a test.
NAPS = """\
import os, time

def run(params):
    time.sleep(float(params["seconds"]))
    return {"schema": 1, "status": "passed", "reason": f"pid {os.getpid()}"}
"""


def test_two_runs_at_once_share_the_engine_and_the_cache(
    tmp_path: Path, docker_matrix: Callable[..., Path], docker_client: Any
) -> None:
    (tmp_path / "naps.py").write_text(NAPS)
    body = f"script: {tmp_path}/naps.py, gpus: [cpu], bases: [testbase], "
    names = [f"n{i}" for i in range(4)]
    matrix = docker_matrix(
        {n: body + f"params: {{seconds: {1 + i % 2}}}" for i, n in enumerate(names)}
    )
    runs = []
    for results in ("results-a", "results-a", "results-b"):
        argv = cli_argv(
            "--matrix", str(matrix), "run", "--executor", "docker", "--jobs", "2",
            "--no-progress", "--results", results, "--cache", "cache",
            *(a for n in names for a in ("--repro", n)),
        )  # fmt: skip
        runs.append(subprocess.Popen(argv, cwd=tmp_path, stderr=subprocess.PIPE, text=True))
    errs = [run.communicate(timeout=300)[1] for run in runs]
    codes = sorted(run.returncode for run in runs)
    # The second run of results-a is refused (another run uses the folder), whichever it is.
    assert codes == [0, 0, 9], errs
    assert sum("another repromatrix run is using it" in err for err in errs) == 1, errs
    run_ids = set()
    for results in ("results-a", "results-b"):
        got = ResultStore(tmp_path / results).latest_by_key().values()
        assert sorted(r.repro for r in got) == names
        assert {r.status for r in got} == {Status.PASSED}, [r.reason for r in got]
        run_ids |= {r.run_id for r in got}
    assert len(run_ids) == 2
    for run in runs:
        assert our_containers(docker_client, **{"owner-pid": str(run.pid)}) == []
