"""A Ray node whose interpreter (`ray-node --python`) no longer runs: the run stops."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("ray")

from repromatrix.executors.base import MISSING_TOOL
from repromatrix.executors.ray.cluster import NODE_CACHE_VAR, NODE_PYTHON_VAR
from repromatrix.executors.ray.node import NodeCannotRun, node_for
from repromatrix.options import SessionConfig


def test_a_node_whose_interpreter_is_gone_stops_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node's --python, a link whose venv was removed after `ray-node` started: each
    cell was an error record, "harness failed on the node: --python ...: cannot run it
    (not found)", exit 0, and the next run reused them. Now no record: NodeCannotRun,
    which stops the run with exit 4, as a local run refuses such a --python."""
    gone = tmp_path / "venv" / "bin" / "python3"
    monkeypatch.setenv(NODE_PYTHON_VAR, str(gone))
    monkeypatch.setenv(NODE_CACHE_VAR, str(tmp_path / "node-cache"))
    monkeypatch.setenv("REPROMATRIX_FAKE_GPUS", "")
    config = SessionConfig(results=tmp_path / "res", cache=tmp_path / "cache")
    with pytest.raises(NodeCannotRun) as caught:
        node_for(config)
    assert caught.value.key == MISSING_TOOL
    assert str(caught.value).endswith(
        f"--python {gone}: cannot run it (not found); pass a Python interpreter"
    )
    assert str(caught.value).startswith("on Ray node ")
