"""`bisect --image BASE --executor ray` over releases: the image's python3 on a node of the
cluster decides which releases install there, as under the Docker executor (real engine,
real wheels, a real local Ray cluster)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from bisect_repo import REPRO, build_wheels
from clihelpers import cli_argv
from docker_fixtures import derived_image
from test_docker_releases import _NOT_INSTALLABLE

# The cluster fixture comes from test_ray (imported, not re-collected).
from test_ray import make_cluster  # noqa: F401

pytest_plugins = ("docker_fixtures",)
pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.slow]


def test_a_release_the_images_python3_cannot_install_is_no_candidate_under_ray(
    make_cluster: Any,  # noqa: F811
    tmp_path: Path,
    docker_client: Any,
    pip_image: str,
) -> None:
    """1.1's one file is a cp399 wheel. Under the Docker executor it is a release not
    installable on the image; under Ray the image's python3 was never asked, so 1.1 was a
    candidate, its environment failed to build on the node, and the answer was "one of 2
    ... --retry-errors". Now a node of the type asks its engine, as Docker runs do."""
    folder = build_wheels(tmp_path / "wheels", ["1.0", "1.1", "1.2", "1.3"], bad={"1.2", "1.3"})
    (folder / "bisectpkg-1.1-py3-none-any.whl").rename(
        folder / "bisectpkg-1.1-cp399-cp399-manylinux2014_x86_64.whl"
    )
    tag = f"repromatrix-test-releases:{tmp_path.name.lower()[-20:]}"
    cluster = make_cluster(
        "  scale: {script: repros/scale.py, gpus: [cpu], bases: [rbase], libraries: {pkg: all}}\n",
        head_cpus=0,
    )
    (cluster.root / "repros").mkdir()
    (cluster.root / "repros" / "scale.py").write_text(REPRO)
    text = cluster.matrix.read_text().replace(
        "repros:\n",
        f'images:\n  rbase: {{ref: "{tag}"}}\nlibraries:\n  pkg: {{pypi: bisectpkg, '
        'import: bisectpkg, versions: ["1.0", "1.3"]}\nrepros:\n',
    )
    cluster.matrix.write_text(text)
    cluster.add_node("a", "H100", 1)
    with derived_image(docker_client, pip_image, tag, "LABEL releases=ray"):
        out = subprocess.run(
            cli_argv("--matrix", str(cluster.matrix), "bisect", "scale", "--library", "pkg",
                     "--good", "1.0", "--bad", "1.3", "--image", "rbase", "--gpu", "cpu",
                     "--executor", "ray", "--ray-address", cluster.address, "--pull", "never",
                     "--no-progress", "--find-links", str(folder), "--no-index",
                     "--cache", str(tmp_path / "cache"), "--results", str(tmp_path / "r")),
            cwd=cluster.root, env=cluster.env(), capture_output=True, text=True, timeout=600,
            check=False,
        )  # fmt: skip
    assert "Traceback" not in out.stderr, out.stderr
    assert "one of" not in out.stdout, out.stdout
    assert (
        "first bad release not known: it is between 1.0 (good) and 1.2 (bad), 1.2 included; "
        "1.1 between them was not run here"
    ) in out.stdout, out.stdout
    assert _NOT_INSTALLABLE.search(out.stdout), out.stdout
    assert out.returncode == 6, out.stderr
