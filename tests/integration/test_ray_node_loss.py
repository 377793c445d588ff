"""`--executor ray` when a GPU node dies mid-run (a spot machine taken back): the cells
its slot's actor held, running and queued, are handed out again ahead of the cells no
slot has taken yet, and its slot is dropped. A real cluster (`test_ray`'s fixture)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from raycluster import logged_run, started_on, wait_for_text

# The cluster fixture comes from test_ray (imported, not re-collected).
from test_ray import make_cluster  # noqa: F401

from repromatrix.model import Status
from repromatrix.store import ResultStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Says its start (a line of `startlog`, its pid in `startfile`), then waits for `gate`.
_ORDERED = """\
import os
import time


def run(params):
    with open(params["startlog"], "a") as f:
        f.write(params["name"] + "\\n")
    with open(params["startfile"], "w") as f:
        f.write(str(os.getpid()))
    deadline = time.monotonic() + 120
    while not os.path.exists(params["gate"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    seen = os.environ.get("CUDA_VISIBLE_DEVICES")
    return {"schema": 1, "status": "passed", "reason": "opened",
            "provenance": {"cuda_visible_devices": seen}}
"""


def _cells(starts: Path, startlog: Path, gate: Path, names: list[str]) -> str:
    return "".join(
        f"  {n}: {{script: ordered.py, gpus: [H100], params: {{name: {n}, "
        f"startlog: '{startlog}', startfile: '{starts / n}', gate: '{gate}'}}}}\n"
        for n in names
    )


def test_a_dead_nodes_cells_run_next_and_its_slot_is_dropped(
    make_cluster: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Two H100 nodes, a slot each; each slot's actor runs one cell and holds the next
    two, and two cells wait to be handed out. Node b dies: its three cells were submitted
    again as plain tasks, which waited for a free H100 while a's slot kept its GPU for
    the cells behind them, so they ran last, after every other cell. They run next on
    a's slot (after the two its actor already held), the cells behind them after; b's
    slot is dropped, and one line says so."""
    starts, startlog, gate = tmp_path / "starts", tmp_path / "startlog", tmp_path / "go"
    starts.mkdir()
    cluster = make_cluster(_cells(starts, startlog, gate, [f"h{i}" for i in range(8)]))
    (cluster.root / "ordered.py").write_text(_ORDERED)
    cluster.add_node("a", "H100", 1)
    cluster.add_node("b", "H100", 1)
    results, log = tmp_path / "results", tmp_path / "run.log"
    with logged_run(cluster, results=results, log=log) as runner:
        started_on(starts, "a", runner=runner, log=log)
        cut = started_on(starts, "b", runner=runner, log=log)
        cluster.kill_node("b")  # while `cut` runs there, two cells queued behind it
        # Until the run has heard of the loss (the old code said nothing of it).
        wait_for_text(runner, log, "left the cluster", within=30)
        out = _ended(runner, log, gate)
    order = startlog.read_text().split()
    assert len(order) == 9, order  # eight cells, and `cut` again
    assert order.count(cut) == 2, order
    # h6 and h7 waited to be handed out when b died: the moved cells run before them.
    assert sorted(order[-2:]) == ["h6", "h7"], order
    said = re.search(
        r"Ray node \S+ \([0-9a-f]{8}\) left the cluster: slot gpu\d+ is dropped; "
        r"its 3 cell\(s\) run next on the 1 live H100 slot",
        out,
    )
    assert said is not None, out
    got = {r.repro: r for r in ResultStore(results).load().results}
    assert sorted(got) == [f"h{i}" for i in range(8)]  # one record each
    assert {r.status for r in got.values()} == {Status.PASSED}, got
    # On the same cluster (each new one costs CI seconds): the last node of the type.
    _the_last_nodes_cells_wait_for_a_node_that_joins(cluster, tmp_path)


def _the_last_nodes_cells_wait_for_a_node_that_joins(cluster: Any, tmp_path: Path) -> None:
    """Node a, the last H100 node, dies holding three cells: its slot is dropped and they
    wait for a node of the type, as cells of a type no node offered at the start do
    (REPROMATRIX_RAY_NODE_WAIT_S); node c joins and gets a new slot, which runs them."""
    starts, startlog, gate = tmp_path / "starts2", tmp_path / "startlog2", tmp_path / "go2"
    starts.mkdir()
    cluster.matrix.write_text(
        cluster.matrix.read_text().split("repros:\n")[0]
        + "repros:\n"
        + _cells(starts, startlog, gate, ["j0", "j1", "j2"])
    )
    results, log = tmp_path / "results2", tmp_path / "run2.log"
    wait = {"REPROMATRIX_RAY_NODE_WAIT_S": "150"}
    with logged_run(cluster, results=results, log=log, env=wait) as runner:
        cut = started_on(starts, "a", runner=runner, log=log)
        cluster.kill_node("a")
        wait_for_text(runner, log, "is dropped", within=90)
        cluster.add_node("c", "H100", 1)
        out = _ended(runner, log, gate)
    assert "its 3 cell(s) wait for a free H100 slot or node, as cells of a type no" in out
    assert "1 more H100 slot for the 3 cell(s) still waiting" in out, out
    got = {r.repro: r for r in ResultStore(results).load().results}
    assert sorted(got) == ["j0", "j1", "j2"]
    assert {r.status for r in got.values()} == {Status.PASSED}, got
    assert got[cut].provenance["cuda_visible_devices"] == "GPU-c-0"


def _ended(runner: Any, log: Path, gate: Path) -> str:
    """The run's output once the gate opened and the run ended with exit 0, no traceback."""
    gate.touch()
    assert runner.wait(timeout=240) == 0, log.read_text()
    out = log.read_text()
    assert "Traceback" not in out
    return out
