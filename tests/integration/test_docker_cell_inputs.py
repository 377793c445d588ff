"""A cell's input files (`Cell.inputs`, a `bisect --test` file) in a container, against the
real engine: laid in the container's working folder as inputs/<sha256>, in a container of
the cell's own and in a worker's, whatever their size (its params carry the digest alone).

The executor is driven directly: only `bisect --test` makes cells with inputs, and the test
image has no pytest to run one."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

pytest_plugins = ("docker_fixtures",)
pytestmark = [pytest.mark.integration, pytest.mark.docker]

#: Passed when inputs/<digest> in its working folder holds the bytes that digest names.
READS = """\
import hashlib, os

def run(params):
    path = os.path.join(os.getcwd(), "inputs", params["digest"])
    with open(path, "rb") as f:
        data = f.read()
    ok = hashlib.sha256(data).hexdigest() == params["digest"]
    return {"schema": 1, "status": "passed" if ok else "regressed", "reason": f"{len(data)}"}
"""


@pytest.mark.parametrize("isolate", [True, False], ids=["own-container", "worker"])
def test_a_cells_input_file_of_300_kb_reaches_its_container(
    tmp_path: Path, docker_matrix: Callable[..., Path], isolate: bool
) -> None:
    from repromatrix.config import load_matrix
    from repromatrix.executors.base import Slot
    from repromatrix.executors.docker import DockerExecutor
    from repromatrix.expand import expand
    from repromatrix.options import ExecutorKind, SessionConfig

    (tmp_path / "reads.py").write_text(READS)
    content = b"# " + b"long comment " * 24_000 + b"\n"
    digest = hashlib.sha256(content).hexdigest()
    body = f"script: {tmp_path}/reads.py, gpus: [cpu], bases: [testbase]"
    matrix = load_matrix(docker_matrix({"reads": body + f", params: {{digest: {digest}}}"}))
    cell = next(c for c in expand(matrix) if c.repro == "reads")
    cell = dataclasses.replace(cell, inputs=(content,), isolate=isolate)
    config = SessionConfig(
        results=tmp_path / "results", cache=tmp_path / "cache", executor=ExecutorKind.DOCKER
    )
    executor = DockerExecutor.connect(config, env=os.environ)
    assert isinstance(executor, DockerExecutor), executor
    run_dir = (tmp_path / "cache" / "runs" / f"inputs-{os.getpid()}").resolve()
    try:
        outcome = executor.run(cell, Slot(name="cpu0"), run_dir / "c0")
    finally:
        executor.close()
    assert (outcome.exit_code, outcome.harness_error) == (0, None), outcome
    assert outcome.result_json is not None
    result = json.loads(outcome.result_json.read_text())
    assert (result["status"], result["reason"]) == ("passed", str(len(content))), result
