"""Release bisection in an image (`bisect --image`), against the real engine, real wheels
and the image's own pip: what another Python installs there decides the candidates."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

import pytest
from bisect_repo import REPRO, _init, build_wheels
from clihelpers import CliRunner
from test_docker_envs import derived_image

# The fixtures docker_client and pip_image come from this module.
pytest_plugins = ("docker_fixtures",)
pytestmark = [pytest.mark.integration, pytest.mark.docker]

#: The note on a release whose files the image's python3 (Debian's 3.11) cannot install.
_NOT_INSTALLABLE = re.compile(
    r"were not run \(1\.1\): offered only as files the image's python3 \(Python 3\.11\.\d+\) "
    r"cannot install \(wheels for another platform or Python, or a Requires-Python"
)


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
    assert _NOT_INSTALLABLE.search(out.stdout), out.stdout
    assert "1.1 (not installable here) between 1.0 and 1.2 was not run" in out.stderr
    assert out.returncode == 6, out.stderr


def _wheel(path: Path, *, bad: bool, requires: str = "") -> None:
    """A wheel of bisectpkg at `path` (its name gives version and tags), bad or good, with
    `requires` as its Requires-Python."""
    version = path.name.split("-")[1]
    dist = f"bisectpkg-{version}.dist-info"
    meta = f"Metadata-Version: 2.1\nName: bisectpkg\nVersion: {version}\n"
    meta += f"Requires-Python: {requires}\n" if requires else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("bisectpkg/__init__.py", _init(7, bad))
        zf.writestr(f"{dist}/METADATA", meta)
        zf.writestr(
            f"{dist}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        zf.writestr(f"{dist}/RECORD", "")


@pytest.mark.parametrize(
    ("name", "requires", "page"),
    [
        ("bisectpkg-1.1-py3-none-any.whl", ">=3.99", False),
        ("bisectpkg-1.1-cp399-cp399-manylinux2014_x86_64.whl", "", False),
        # Linked from a page in the folder (pip reads it, the Requires-Python its own).
        ("bisectpkg-1.1-py3-none-any.whl", ">=3.99", True),
    ],
)
def test_a_release_for_a_newer_python_than_the_images_is_not_installable_in_it(
    tmp_path: Path,
    run_cli: CliRunner,
    docker_client: Any,
    pip_image: str,
    name: str,
    requires: str,
    page: bool,
) -> None:
    """1.1's one wheel needs a newer Python than the image's python3 (Requires-Python, or
    a cp399-only wheel). The release list was made before the image's Python was known,
    so 1.1 was a candidate, its environment failed to build, and the answer was "first bad
    release is one of 2 ... --retry-errors", which cannot help: it is a release not
    installable on that image, as a Windows-only one is."""
    folder = build_wheels(tmp_path / "wheels", ["1.0", "1.2", "1.3"], bad={"1.2", "1.3"})
    wheel = (tmp_path / "elsewhere" if page else folder) / name
    _wheel(wheel, bad=False, requires=requires)
    if page:
        (folder / "index.html").write_text(
            f'<a href="{wheel.as_uri()}" data-requires-python="{requires}">{name}</a>\n'
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
    with derived_image(docker_client, pip_image, tag, "LABEL releases=2"):
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
    assert _NOT_INSTALLABLE.search(out.stdout), out.stdout
    assert "1.1 (not installable here) between 1.0 and 1.2 was not run" in out.stderr
    assert out.returncode == 6, out.stderr


def test_an_environment_image_of_another_file_of_the_release_is_not_reused(
    tmp_path: Path, run_cli: CliRunner, docker_client: Any, pip_image: str
) -> None:
    """Two folders each hold a `bisectpkg-1.1` wheel, regressed in one and not in the
    other: over the second, the environment image of 1.1 built from the first folder's
    wheel was reused (its key held the version alone), and the answer was "first bad
    release: pkg 1.1" (exit 0) of a folder whose 1.1 passes."""
    rebuilt = build_wheels(tmp_path / "rebuilt", ["1.0", "1.1", "1.2"], bad={"1.1", "1.2"})
    fixed = build_wheels(tmp_path / "fixed", ["1.0", "1.1"], bad=set())
    for end in ("1.0", "1.2"):  # the same files as `rebuilt`'s (a zip holds its time)
        name = f"bisectpkg-{end}-py3-none-any.whl"
        (fixed / name).write_bytes((rebuilt / name).read_bytes())
    (tmp_path / "repros").mkdir()
    (tmp_path / "repros" / "scale.py").write_text(REPRO)
    tag = f"repromatrix-test-releases:{tmp_path.name.lower()[-20:]}"
    (tmp_path / "matrix.yaml").write_text(
        f'schema: 1\nimages:\n  rbase: {{ref: "{tag}"}}\n'
        'libraries:\n  pkg: {pypi: bisectpkg, import: bisectpkg, versions: ["1.0", "1.2"]}\n'
        "repros:\n  scale: {script: repros/scale.py, gpus: [cpu], bases: [rbase], "
        "libraries: {pkg: all}}\n"
    )
    with derived_image(docker_client, pip_image, tag, "LABEL releases=2"):
        args = [
            "bisect", "scale", "--library", "pkg", "--good", "1.0", "--bad", "1.2",
            "--image", "rbase", "--executor", "docker", "--pull", "never", "--no-progress",
            "--no-index", "--cache", "c",
        ]  # fmt: skip
        outs = [
            run_cli(*args, "--find-links", str(folder), "--results", f"results-{folder.name}")
            for folder in (rebuilt, fixed)
        ]
    assert "first bad release: pkg 1.1\n" in outs[0].stdout, outs[0].stdout + outs[0].stderr
    assert outs[1].returncode == 0, outs[1].stdout + outs[1].stderr
    assert "first bad release: pkg 1.2\n" in outs[1].stdout, outs[1].stdout
