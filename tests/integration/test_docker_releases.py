"""Release bisection in an image (`bisect --image`), against the real engine, real wheels
and the image's own pip: what another Python installs there decides the candidates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from bisect_repo import REPRO, build_wheels
from clihelpers import CliRunner
from test_docker_envs import derived_image

# The fixtures docker_client and pip_image come from this module.
pytest_plugins = ("docker_fixtures",)
pytestmark = [pytest.mark.integration, pytest.mark.docker]


def test_a_release_offered_only_as_a_windows_wheel_is_not_installable_in_an_image(
    tmp_path: Path, run_cli: CliRunner, docker_client: Any, pip_image: str
) -> None:
    """1.1's one file is a Windows wheel, not yanked. On the host it is a release not
    installable here (a range, exit 6, saying how to run it); in an image every file pip
    skipped here counted, so 1.1 was a candidate, its environment failed to build, and the
    answer was "first bad release is one of 2 ... --retry-errors", which cannot help."""
    folder = build_wheels(tmp_path / "wheels", ["1.0", "1.1", "1.2", "1.3"], bad={"1.2", "1.3"})
    (folder / "bisectpkg-1.1-py3-none-any.whl").rename(
        folder / "bisectpkg-1.1-cp311-cp311-win_amd64.whl"
    )
    (tmp_path / "repros").mkdir()
    (tmp_path / "repros" / "scale.py").write_text(REPRO)
    tag = f"repromatrix-test-releases:{tmp_path.name.lower()[-20:]}"
    (tmp_path / "matrix.yaml").write_text(
        f'schema: 1\nimages:\n  rbase: {{ref: "{tag}"}}\n'
        'libraries:\n  pkg: {pypi: bisectpkg, import: bisectpkg, versions: ["1.0", "1.3"]}\n'
        "repros:\n  scale: {script: repros/scale.py, gpus: [cpu], bases: [rbase], "
        "libraries: {pkg: all}}\n"
    )
    with derived_image(docker_client, pip_image, tag, "LABEL releases=1"):
        out = run_cli(
            "bisect", "scale", "--library", "pkg", "--good", "1.0", "--bad", "1.3",
            "--image", "rbase", "--executor", "docker", "--pull", "never", "--no-progress",
            "--find-links", str(folder), "--no-index", "--cache", "c",
        )  # fmt: skip
    assert "Traceback" not in out.stderr, out.stderr
    assert "one of" not in out.stdout, out.stdout
    assert (
        "first bad release not known: it is between 1.0 (good) and 1.2 (bad), 1.2 included; "
        "1.1 between them was not run here"
    ) in out.stdout, out.stdout
    assert (
        "were not run (1.1): offered only as wheels no Linux image of this host installs (for "
        "Windows, macOS or another machine)"
    ) in out.stdout, out.stdout
    assert "1.1 (not installable here) between 1.0 and 1.2 was not run" in out.stderr
    assert out.returncode == 6, out.stderr
