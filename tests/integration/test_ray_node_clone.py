"""A node that cannot clone a library's git source the driver cloned (a path only the
driver's host has, a host the node cannot reach; a real local Ray cluster, real git): its
cells are the node's own want, noted "not run here", never error records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from history_repo import REPRO, build, write_matrix

# The cluster fixture comes from test_ray (imported, not re-collected).
from test_ray import make_cluster  # noqa: F401

from repromatrix.model import Status
from repromatrix.store import ResultStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_node_that_cannot_clone_the_source_notes_its_cells_not_run(
    make_cluster: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The cell was an error record ("environment: cannot clone bisectpkg from ...:
    fatal: ..."), exit 0, that the next run reused ("1 reused (1 error/timeout ...)")
    once the node reached the source; now it is noted, exit 7, and the next run builds."""
    history = build(tmp_path / "upstream", main=3, main_flags=lambda i: {}, importable=True)
    local = write_matrix(tmp_path / "m", history).read_text()
    libraries = local.split("libraries:\n", 1)[1].split("repros:\n", 1)[0]
    repros = local.split("repros:\n", 1)[1].replace("gpus: [cpu]", "gpus: [H100]\n    needs: []")
    cluster = make_cluster(repros)
    (cluster.root / "repros").mkdir()
    (cluster.root / "repros" / "pkg_check.py").write_text(REPRO)
    text = cluster.matrix.read_text().replace("repros:\n", "libraries:\n" + libraries + "repros:\n")
    cluster.matrix.write_text(text)
    # This node's git reads the source's path as another, which it has not.
    away = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": f"url.{tmp_path}/gone.insteadOf",
            "GIT_CONFIG_VALUE_0": str(history.path)}  # fmt: skip
    cluster.add_node("a", "H100", 1, **away)
    results = tmp_path / "results"
    out = cluster.run("--library", "bisectpkg=good", results=results)
    assert "Traceback" not in out.stderr, out.stderr
    assert out.returncode == 7, out.stdout + out.stderr
    line = out.stderr.strip().splitlines()[-1]
    assert "not built on Ray node" in line, line
    assert "cannot clone bisectpkg from" in line, line
    got = ResultStore(results).load().results
    assert [r.status for r in got] == [Status.NOT_RUN], [r.reason for r in got]
