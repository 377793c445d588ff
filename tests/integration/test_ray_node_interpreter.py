"""A node whose interpreter (`ray-node --python`) was removed after it joined (a real local
Ray cluster): the run stops, as a local run refuses such a --python, with no record."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bisect_repo import REPRO, _init, write_wheel

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


def test_a_node_whose_interpreter_has_no_pip_stops_a_run_with_pins(
    make_cluster: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A node started with `--python` of a venv without pip (as uv makes them) and a cell
    with a release to install: the cell was an error record ("pip could not install
    bisectpkg===1.0: ... No module named pip"), exit 0, reused by the next run, where a
    local run refuses such an interpreter before any cell (exit 4)."""
    venv = tmp_path / "nopip"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    write_wheel(wheels, "bisectpkg", "1.0", _init(0, False))
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
    python = venv / "bin" / "python"
    cluster.add_node("a", "H100", 1, python=str(python))
    results = tmp_path / "results"
    out = cluster.run("--find-links", str(wheels), "--no-index", results=results)
    assert "Traceback" not in out.stderr, out.stderr
    assert out.returncode == 4, out.stdout + out.stderr
    line = out.stderr.strip().splitlines()[-1]
    assert f"{python} has no pip, which installs the pins of scale[H100,host,pkg=1.0]" in line
    assert "ray-node --python PATH" in line, line
    assert not ResultStore(results).load().results  # no error record for later runs
