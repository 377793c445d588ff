"""`bisect --executor ray` when the cluster changes under it: a node that leaves takes its
slots along, and the rounds after it plan points for the slots left. Real clusters
(`test_ray`'s fixture)."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from clihelpers import cli_argv

# The cluster fixture comes from test_ray (imported, not re-collected).
from test_ray import make_cluster  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Put at the top of the history's repro: each cell says it started, then waits for `go`.
GATE = (
    "import time\n"
    "if params.get('gate'):\n"
    "    open(os.path.join(params['gate'], f'started-{os.getpid()}'), 'w').close()\n"
    "    while not os.path.exists(os.path.join(params['gate'], 'go')):\n"
    "        time.sleep(0.1)\n"
)


def _bisect_cluster(make: Any, tmp_path: Path, gate: Path) -> Any:
    from history_repo import REPRO, build, write_matrix

    history = build(
        tmp_path / "upstream", main=60, main_flags=lambda i: {"SCALE_BUG_MAIN": i >= 37}
    )
    local = write_matrix(tmp_path / "m", history, params=f"{{gate: '{gate}'}}").read_text()
    libraries = local.split("libraries:\n", 1)[1].split("repros:\n", 1)[0]
    repros = local.split("repros:\n", 1)[1].replace("gpus: [cpu]", "gpus: [H100]")
    cluster = make(repros)
    (cluster.root / "repros").mkdir()
    marker = "params = json.loads(a.params)\n"
    (cluster.root / "repros" / "pkg_check.py").write_text(REPRO.replace(marker, marker + GATE))
    text = cluster.matrix.read_text().replace("repros:\n", "libraries:\n" + libraries + "repros:\n")
    cluster.matrix.write_text(text)
    cluster.history = history
    return cluster


def test_a_bisect_plans_for_the_slots_left_once_a_node_leaves(
    make_cluster: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Two H100 nodes of two GPUs each: four points a round. Once node b died in round 1,
    every later round still planned four points for the two slots left (half of each
    round waited for the other half). Now they plan two, and a line says so once."""
    gate = tmp_path / "gate"
    gate.mkdir()
    cluster = _bisect_cluster(make_cluster, tmp_path, gate)
    cluster.add_node("a", "H100", 2)
    cluster.add_node("b", "H100", 2)
    argv = cli_argv(
        "--matrix", str(cluster.matrix), "bisect", "pkg_check", "--library=bisectpkg",
        "--good=good", "--bad=bad", "--gpu=H100", "--executor=ray",
        "--ray-address", cluster.address, "--no-progress",
        "--cache", str(tmp_path / "cache"), "--results", str(tmp_path / "results"),
    )  # fmt: skip
    runner = subprocess.Popen(
        argv, cwd=cluster.root, env=cluster.env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while len(list(gate.glob("started-*"))) < 4:  # round 1: on all four slots
            assert runner.poll() is None, runner.communicate()[1][-600:]
            assert time.monotonic() < deadline, "round 1 did not start on four slots"
            time.sleep(0.2)
        cluster.kill_node("b")
        time.sleep(3)  # the head notices the lost node (its health checks: ~1.5 s)
        (gate / "go").touch()
        out, err = runner.communicate(timeout=400)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
    assert runner.returncode == 0, err
    assert "4 point(s) per round" in out, out
    assert f"first bad commit: {cluster.history.sha('m37')}" in out, out
    rounds = re.findall(r"^round (\d+): (.*?); ", out, re.MULTILINE)
    assert len(rounds) >= 2, out
    assert len(rounds[0][1].split(", ")) == 4, out
    later = [len(notes.split(", ")) for _, notes in rounds[1:]]
    assert max(later) <= 2, out  # two slots left, two points a round
    said = "2 slot(s) of H100 left: 2 point(s) per round from now on, not 4"
    assert err.count(said) == 1, err
