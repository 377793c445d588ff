"""`--executor ray` when a GPU node dies mid-run (a spot machine taken back): the cells
its slots' actors held, running and queued, are handed out again ahead of the cells no
slot has taken yet (behind those the live slots' actors hold queued), and its slots are
dropped, in one line. A real cluster (`test_ray`'s fixture)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from raycluster import gated, started_on, wait_for_text

# The cluster fixture comes from test_ray (imported, not re-collected).
from test_ray import make_cluster  # noqa: F401

from repromatrix.model import Status
from repromatrix.store import ResultStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _cells(starts: Path, startlog: Path, gate: Path, names: list[str]) -> str:
    """Cells that say their start (their pids in `starts`, their names in `startlog`) and
    wait for `gate`."""
    return "".join(gated(n, "H100", starts / n, gate, startlog) for n in names)


def test_a_dead_nodes_cells_run_next_and_its_slots_are_dropped(
    make_cluster: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Node a has one H100 slot, node b two; each slot's actor runs one cell and holds the
    next two, and two cells wait to be handed out. Node b dies: its six cells were
    submitted again as plain tasks, which waited for a free H100 while a's slot kept its
    GPU for the cells behind them, so they ran last. They run next on a's slot (after
    the two its actor already held), the cells behind them after; b's slots are dropped,
    in one line naming both (a line each named the node twice)."""
    starts, startlog, gate = tmp_path / "starts", tmp_path / "startlog", tmp_path / "go"
    starts.mkdir()
    cluster = make_cluster(_cells(starts, startlog, gate, [f"h{i:02}" for i in range(11)]))
    cluster.add_node("a", "H100", 1)
    cluster.add_node("b", "H100", 2)
    results, log = tmp_path / "results", tmp_path / "run.log"
    with cluster.running(results=results, log=log) as runner:
        first = started_on(starts, "a", runner=runner, log=log)
        cut = started_on(starts, "b", runner=runner, log=log)
        cut2 = started_on(starts, "b", other_than={cut}, runner=runner, log=log)
        cluster.kill_node("b")  # while `cut` and `cut2` run there, four cells queued
        # Until the run has heard of the loss (the old code said nothing of it).
        wait_for_text(runner, log, "left the cluster", within=30)
        out = _ended(runner, log, gate)
    # On a, the node left: a killed node's actor may start a queued cell on a new worker
    # process before the sweep reaches it (a start on b, and the cell is moved all the same).
    starts_on = [line.split() for line in startlog.read_text().splitlines()]
    order = [name for name, node in starts_on if node == "a"]
    assert sorted(order) == [f"h{i:02}" for i in range(11)], (starts_on, out)
    assert order[0] == first, (starts_on, out)
    # b's six cells come after the two a's actor held queued behind `first`...
    assert {cut, cut2} <= set(order[3:9]), (starts_on, out)
    # ...and h09 and h10, which waited to be handed out when b died, last.
    assert sorted(order[-2:]) == ["h09", "h10"], (starts_on, out)
    said = re.findall(r"Ray node \S+ \([0-9a-f]{8}\) left the cluster: .*", out)
    assert len(said) == 1, out
    assert re.fullmatch(
        r".*: slots gpu\d+, gpu\d+ are dropped; their 6 cell\(s\) run next on the 1 live "
        r"H100 slot",
        said[0],
    ), out
    got = {r.repro: r for r in ResultStore(results).load().results}
    assert sorted(got) == [f"h{i:02}" for i in range(11)]  # one record each
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
    with cluster.running(results=results, log=log, env=wait) as runner:
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
