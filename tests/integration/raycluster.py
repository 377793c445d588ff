"""What the tests of a changing Ray cluster share (`test_ray`'s fixture starts it): which
test node a cell's process runs on, waiting for a cell to start on a node, and a run in
the background whose output goes to a log file the test reads while it runs."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest


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


@contextmanager
def logged_run(
    cluster: Any, *args: str, results: Path, log: Path, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    """`cluster`'s run in the background, its stdout and stderr both into `log` (read
    while it runs); killed on the way out if the test left it running. `env`: variables
    beside the cluster's."""
    with log.open("w") as sink:
        runner = subprocess.Popen(
            cluster.argv(*args, results=results), cwd=cluster.root,
            env={**cluster.env(), **(env or {})},
            stdout=sink, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            yield runner
        finally:
            if runner.poll() is None:
                runner.kill()
                runner.wait()


def wait_for_text(runner: subprocess.Popen[str], log: Path, text: str, within: float) -> str:
    """`log`'s text once it holds `text`; fails if `runner` ended first, or after
    `within` seconds."""
    deadline = time.monotonic() + within
    while text not in (said := log.read_text()):
        assert runner.poll() is None, said
        assert time.monotonic() < deadline, said
        time.sleep(0.1)
    return said
