"""`--executor ray` when the cluster, not the repro, fails a cell: nodes lost more often
than `--ray-retries` allows, a node that offers a GPU type it does not have, a library
build that fails on every slot. Real clusters (`test_ray`'s fixture)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

# The cluster fixture and its helpers come from test_ray (imported, not re-collected).
from test_ray import SCRIPT, _node_of, make_cluster  # noqa: F401

from repromatrix.model import Status
from repromatrix.store import ResultStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _node_running(startfile: Path, other_than: set[str]) -> str:
    """The test node of the process that last wrote `startfile` (its pid), once it is
    none of `other_than`."""
    deadline = time.monotonic() + 120
    while True:
        text = startfile.read_text().strip() if startfile.exists() else ""
        if text:
            try:
                node = _node_of(int(text))
            except (OSError, AssertionError):  # the process ended meanwhile
                node = ""
            if node and node not in other_than:
                return node
        assert time.monotonic() < deadline, f"the cell did not start on a node not in {other_than}"
        time.sleep(0.1)


def test_a_cell_lost_past_its_retries_is_run_again_and_the_run_says_so(
    make_cluster: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A cell whose node was lost more often than --ray-retries allows was stored as an
    `error` ("infrastructure: the task's node or worker was lost ... after 0 retries") at
    exit 0, and the next run reused it ("--retry-errors runs them again") as if the repro
    had failed. It is noted "not run here", the run ends with exit 5 naming it, and the
    next run does the cell."""
    start = tmp_path / "start"
    cluster = make_cluster(
        f"  h: {{script: {SCRIPT}, gpus: [H100], "
        f"params: {{seconds: 10, startfile: '{start}', tag: h}}}}\n"
    )
    for name in ("a", "b", "c"):
        cluster.add_node(name, "H100", 1)
    results = tmp_path / "results"
    with cluster.running("--ray-retries", "0", results=results) as runner:
        first = _node_running(start, set())
        cluster.kill_node(first)  # its slot's actor: the cell goes back as a task
        second = _node_running(start, {first})
        cluster.kill_node(second)  # the task, with no retry left
        _, err = runner.communicate(timeout=300)
    assert runner.returncode == 5, err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("repromatrix: error: 1 cell(s) lost with their Ray nodes"), line
    assert "--ray-retries 0 allows (h[H100,host])" in line, line
    (record,) = ResultStore(results).load().results
    assert record.status is Status.NOT_RUN, record.reason
    assert "lost" in record.reason
    again = cluster.run(results=results)
    assert again.returncode == 0, again.stderr
    assert "0 reused" in again.stderr, again.stderr
    got = [r for r in ResultStore(results).load().results if r.status is Status.PASSED]
    assert len(got) == 1
