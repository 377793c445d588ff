"""What the tests of a changing Ray cluster share (`test_ray`'s fixture starts it): which
test node a cell's process runs on, a cell that starts and waits for a gate the test
opens, waiting for a cell to start on a node, and waiting for a line in the log of a run
in the background (`Cluster.running(log=...)`)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Collection
from pathlib import Path

import pytest

#: The fixture repro (`tests/fixtures/repros`), relative to the matrix, which gets a copy
#: of the fixture repros beside it (`test_ray`'s fixture).
GATED_SCRIPT = "fixture-repros/worker_repro.py"


def gated(name: str, gpu: str, start: Path, gate: Path, startlog: Path | None = None) -> str:
    """The matrix line of repro `name` (of `gpu`) that writes its pid to `start` (and its
    name and test node as a line to `startlog`: the order cells started in) as it starts,
    then waits for the file `gate` (the test opens it) for at most 120 s, and passes."""
    params = f"tag: {name}, startfile: '{start}', gate: '{gate}', seconds: 120"
    if startlog is not None:
        params += f", startlog: '{startlog}'"
    return f"  {name}: {{script: {GATED_SCRIPT}, gpus: [{gpu}], params: {{{params}}}}}\n"


def node_of(pid: int) -> str:
    """The test node (REPROMATRIX_TEST_NODE) process `pid` belongs to."""
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    for entry in environ:
        if entry.startswith(b"REPROMATRIX_TEST_NODE="):
            return entry.split(b"=", 1)[1].decode()
    raise AssertionError(f"process {pid} is of no test node")


def started_on(
    starts: Path,
    node: str,
    *,
    other_than: Collection[str] = (),
    runner: subprocess.Popen[str] | None = None,
    log: Path | None = None,
) -> str:
    """The name of a cell that started on test node `node`, none of `other_than`: each
    cell writes its pid to its own file in `starts`, named for it. Fails at once if
    `runner` ended meanwhile, and after two minutes; either way with `log`'s text."""
    deadline = time.monotonic() + 120

    def said() -> str:
        return log.read_text() if log is not None else ""

    while True:
        if runner is not None and runner.poll() is not None:
            pytest.fail(f"the run ended ({runner.returncode}): {said() or runner.communicate()}")
        for path in sorted(starts.iterdir()):
            text = path.read_text().strip()
            if path.name in other_than or not text:
                continue
            try:
                if node_of(int(text)) == node:
                    return path.name
            except (OSError, AssertionError):  # its process ended meanwhile
                continue
        assert time.monotonic() < deadline, f"no cell started on node {node}: {said()}"
        time.sleep(0.1)


def wait_for_text(runner: subprocess.Popen[str], log: Path, text: str, within: float) -> str:
    """`log`'s text once it holds `text`; fails if `runner` ended first, or after
    `within` seconds."""
    deadline = time.monotonic() + within
    while text not in (said := log.read_text()):
        assert runner.poll() is None, said
        assert time.monotonic() < deadline, said
        time.sleep(0.1)
    return said
