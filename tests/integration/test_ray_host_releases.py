"""`bisect --source pypi --executor ray` with the host base (no image): the nodes install
each release with their own interpreter (`ray-node --python`), so theirs decides which
releases are candidates, not the driver's. Real wheels, a real local Ray cluster."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bisect_repo import REPRO, build_wheels
from clihelpers import cli_argv

# The cluster fixture comes from test_ray (imported, not re-collected).
from test_ray import make_cluster  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _other_python() -> str:
    """An interpreter of another minor version than the driver's, with pip (on PATH, or
    one pyenv installed)."""
    pyenv = sorted((Path.home() / ".pyenv" / "versions").glob("3.*/bin/python3"))
    for minor in (12, 13, 11, 10):
        if minor == sys.version_info.minor:
            continue
        found = [shutil.which(f"python3.{minor}")] + [
            str(p) for p in pyenv if p.parent.parent.name.startswith(f"3.{minor}.")
        ]
        for path in filter(None, found):
            ok = subprocess.run([path, "-m", "pip", "--version"], capture_output=True, check=False)
            if ok.returncode == 0:
                return path
    pytest.skip("no Python of another minor version with pip on this machine")


def test_the_nodes_python_decides_which_releases_a_host_bisection_runs(
    make_cluster: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    """1.1's one file is a wheel for the node's Python alone. The driver's interpreter
    judged it: 1.1 was no candidate ("offered only as files this interpreter cannot
    install"), and the answer a range, exit 6, though the node that runs the cells
    installs it. Now a node of the type says its interpreter's tags, as an image's
    python3 does under Docker."""
    python = _other_python()
    version = subprocess.run(
        [python, "-c", "import sys; print(f'{sys.version_info[0]}{sys.version_info[1]}')"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    folder = build_wheels(tmp_path / "wheels", ["1.0", "1.1", "1.2", "1.3"], bad={"1.2", "1.3"})
    (folder / "bisectpkg-1.1-py3-none-any.whl").rename(
        folder / f"bisectpkg-1.1-cp{version}-cp{version}-manylinux2014_x86_64.whl"
    )
    cluster = make_cluster(
        "  scale: {script: repros/scale.py, gpus: [cpu], libraries: {pkg: all}}\n", head_cpus=0
    )
    (cluster.root / "repros").mkdir()
    (cluster.root / "repros" / "scale.py").write_text(REPRO)
    text = cluster.matrix.read_text().replace(
        "repros:\n",
        'libraries:\n  pkg: {pypi: bisectpkg, import: bisectpkg, versions: ["1.0", "1.3"]}\n'
        "repros:\n",
    )
    cluster.matrix.write_text(text)
    cluster.add_node("a", "H100", 1, python=python)
    argv = cli_argv(
        "--matrix", str(cluster.matrix), "bisect", "scale", "--library", "pkg",
        "--good", "1.0", "--bad", "1.3", "--gpu", "cpu", "--executor", "ray",
        "--ray-address", cluster.address, "--no-progress", "--find-links", str(folder),
        "--no-index", "--cache", str(tmp_path / "cache"), "--results", str(tmp_path / "r"),
    )  # fmt: skip
    out = subprocess.run(
        argv, cwd=cluster.root, env=cluster.env(), capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    assert "Traceback" not in out.stderr, out.stderr
    assert out.returncode == 0, out.stdout + out.stderr
    assert "first bad release: pkg 1.2" in out.stdout, out.stdout
    # 1.2's one file now a wheel for the driver's Python alone: no candidate where the
    # cells install (it was one, and failed to build on the node), said in the nodes' words.
    mine = f"{sys.version_info[0]}{sys.version_info[1]}"
    (folder / "bisectpkg-1.2-py3-none-any.whl").rename(
        folder / f"bisectpkg-1.2-cp{mine}-cp{mine}-manylinux2014_x86_64.whl"
    )
    again = subprocess.run(
        argv, cwd=cluster.root, env=cluster.env(), capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    assert again.returncode == 6, again.stdout + again.stderr
    said = (
        "were not run (1.2): offered only as files the Ray nodes' interpreter (Python "
        f"{version[0]}.{version[1:]}."
    )
    assert said in again.stdout, again.stdout
