"""A node that installs a release from other files than the driver's find-links folders
hold of it (a real local Ray cluster, real wheels, real pip): its verdict is not the
release's the cell's key names, and is not stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from bisect_repo import REPRO, _init, write_wheel

# The cluster fixture comes from test_ray (imported, not re-collected).
from test_ray import make_cluster  # noqa: F401

from repromatrix.store import ResultStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_node_whose_folder_holds_another_wheel_of_the_release_stops_the_run(
    make_cluster: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The node's PIP_FIND_LINKS (its pip.conf, or its own folder at the driver's path on
    another host) offered a broken wheel of bisectpkg 1.0 beside the driver's good one.
    The driver stored the node's 'regressed' as 1.0's, exit 0, and every later run ran
    the cell again (its record's files were not the driver's), saying nothing."""
    good, other = tmp_path / "good", tmp_path / "other"
    good.mkdir()
    other.mkdir()
    write_wheel(good, "bisectpkg", "1.0", _init(0, False))
    write_wheel(other, "bisectpkg", "1.0", _init(1, True))
    cluster = make_cluster(
        "  scale: {script: repros/scale.py, gpus: [H100], needs: [], libraries: {pkg: all}}\n"
    )
    (cluster.root / "repros").mkdir()
    (cluster.root / "repros" / "scale.py").write_text(REPRO)
    text = cluster.matrix.read_text().replace(
        "repros:\n",
        'libraries:\n  pkg: {pypi: bisectpkg, import: bisectpkg, versions: ["1.0"]}\nrepros:\n',
    )
    cluster.matrix.write_text(text)
    cluster.add_node("a", "H100", 1, PIP_FIND_LINKS=str(other))
    results = tmp_path / "results"
    out = cluster.run("--find-links", str(good), "--no-index", results=results)
    assert "Traceback" not in out.stderr, out.stderr
    assert out.returncode == 4, out.stdout + out.stderr
    line = out.stderr.strip().splitlines()[-1]
    assert "scale[H100,host,pkg=1.0] could not run: on Ray node" in line, line
    assert "hold other files of bisectpkg 1.0 than the driver's" in line, line
    assert "put the driver's files at the same paths on every node" in line, line
    assert not ResultStore(results).load().results  # no verdict of the other wheel's
