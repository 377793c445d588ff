"""A release pin spelled otherwise than its files (`1.0.0`, the folder offering `1.0` and
the local build `1.0+cu121`) in an environment image: the image's pip found no file for
`===1.0.0`, and the build's fallback asked `==1.0.0`, which took `1.0+cu121` (bad): the
cell 1.0.0 read regressed where 1.0 passes, exit 1. The image is built again asking the
spelling the image's pip lists (`===1.0`), as a local environment does."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from clihelpers import CliRunner
from tinywheels import build_tinylib

from repromatrix.model import Status
from repromatrix.store import ResultStore

pytest_plugins = ("docker_fixtures",)


def test_an_image_of_a_pin_spelled_1_0_0_installs_1_0_not_its_local_build(
    tmp_path: Path,
    run_cli: CliRunner,
    docker_matrix: Any,
    docker_client: Any,
    pip_image: str,
    wheelhouse: Path,
) -> None:
    matrix = docker_matrix(
        {
            "probe": "script: {fx}/env_probe_repro.py, gpus: [cpu], bases: [pipbase], "
            "params: {module: tinylib, good: 1.0}, libraries: {tinylib: all}"
        },
        {"pipbase": f'ref: "{pip_image}"'},
        extra=textwrap.dedent(
            """
            libraries:
              tinylib: {pypi: tinylib, import: tinylib, versions: ["1.0.0"]}
            """
        ),
    )
    build_tinylib(wheelhouse, "1.0+cu121", "2.0")
    label = {"label": ["org.repromatrix.kind=env", f"org.repromatrix.base-ref={pip_image}"]}
    before = {t for img in docker_client.images.list(filters=label) for t in img.tags}
    try:
        out = run_cli(
            "--matrix", str(matrix), "run", "--executor", "docker", "--no-progress",
            "--results", "results", "--cache", "cache", "--find-links", str(wheelhouse),
            "--no-index", "--repro", "probe",
        )  # fmt: skip
        got = list(ResultStore(tmp_path / "results").latest_by_key().values())
        assert [(r.cell_id, r.status, r.reason) for r in got] == [
            ("probe[cpu,pipbase,tinylib=1.0.0]", Status.PASSED, "VALUE=1.0")
        ], out.stderr
        assert out.returncode == 0, out.stderr
    finally:
        after = {t for img in docker_client.images.list(filters=label) for t in img.tags}
        for tag in after - before:
            docker_client.images.remove(tag, force=True)
