"""A Ray node whose interpreter (`ray-node --python`) no longer runs: the run stops."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("ray")

from repromatrix.config import load_matrix
from repromatrix.executors.base import MISSING_TOOL
from repromatrix.executors.ray.cluster import NODE_CACHE_VAR, NODE_PYTHON_VAR
from repromatrix.executors.ray.node import NodeCannotRun, interpreter_refuses, node_for
from repromatrix.expand import expand
from repromatrix.host import Interpreter
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


def test_a_node_interpreter_older_than_cells_need_is_refused(tmp_path: Path) -> None:
    """A node started with `--python` of a Python 3.9: each cell was an error record ("the
    worker exited (1) before connecting"), exit 0, reused by later runs; a local run
    refuses such an interpreter (exit 4). So does the node now, before the cell runs."""
    (tmp_path / "r.py").write_text("")
    (tmp_path / "m.yaml").write_text(
        "schema: 1\nlibraries:\n  fi: {pypi: fi, import: fi, versions: ['1']}\n"
        "repros:\n  b: {script: r.py, gpus: [cpu], needs: [], libraries: {fi: all}}\n"
    )
    (cell,) = expand(load_matrix(tmp_path / "m.yaml"))

    def python(version: str) -> Interpreter:
        return Interpreter(executable="/opt/py/bin/python", version=version, fingerprint="f",
                           packages={})  # fmt: skip

    def has(*modules: str) -> Callable[[tuple[str, ...]], list[str]]:
        return lambda wanted: [m for m in wanted if m not in modules]

    assert interpreter_refuses(python("3.9.18"), cell, has("pip")) == (
        "/opt/py/bin/python is Python 3.9.18; cells need Python 3.10 or newer (the worker "
        "and repros/_repro.py): start the node with `repromatrix ray-node --python PATH` "
        "of a newer one"
    )
    assert interpreter_refuses(python("3.10.0"), cell, has("pip")) == ""
    # fi 1 is a release to install: pip must be there (a uv venv has none).
    assert interpreter_refuses(python("3.12.1"), cell, has()).startswith(
        "/opt/py/bin/python has no pip, which installs the pins of b[cpu,host,fi=1]"
    )
