"""A node whose interpreter (`ray-node --python`) was removed after it joined (a real local
Ray cluster): the run stops, as a local run refuses such a --python, with no record."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

# The cluster fixture comes from test_ray (imported, not re-collected).
from test_ray import SCRIPT, make_cluster  # noqa: F401

from repromatrix.store import ResultStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_node_whose_interpreter_is_gone_stops_the_run_without_records(
    make_cluster: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Each cell was an error record ("harness failed on the node: --python ...: cannot
    run it (not found)"), exit 0, and the next run reused them ('2 reused')."""
    cluster = make_cluster(
        "".join(
            f"  c{i}: {{script: {SCRIPT}, gpus: [H100], needs: [], params: {{tag: c{i}}}}}\n"
            for i in range(2)
        )
    )
    link = tmp_path / "gpu-python"
    link.symlink_to(sys.executable)
    cluster.add_node("a", "H100", 1, python=str(link))
    link.unlink()  # its venv removed while the node runs
    results = tmp_path / "results"
    out = cluster.run(results=results)
    assert "Traceback" not in out.stderr, out.stderr
    assert out.returncode == 4, out.stdout + out.stderr
    line = out.stderr.strip().splitlines()[-1]
    assert "could not run: on Ray node" in line, line
    assert f"--python {link}: cannot run it (not found)" in line, line
    assert not ResultStore(results).load().results  # no error record for later runs
