"""A cells' interpreter without pip (a uv environment has none unless asked for it; a venv
made `--without-pip`): every cell with a pin to install was an error record ("pip could
not install tinylib===1.0: ... No module named pip"), the run exited 0, and later runs
reused them. It is refused before any cell, in one line, as one that lacks torch is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from repromatrix.cli import main
from repromatrix.store import ResultStore

MATRIX = """\
schema: 1
libraries:
  tinylib: {pypi: tinylib, import: tinylib, versions: ["1.0"]}
repros:
  pinned: {script: r.py, gpus: [cpu], libraries: {tinylib: all}}
  plain: {script: r.py, gpus: [cpu]}
"""


@pytest.fixture
def no_pip(tmp_path: Path) -> Path:
    """A venv of the base interpreter without pip (as `uv venv` makes one)."""
    base = getattr(sys, "_base_executable", sys.executable)
    venv = tmp_path / "uv env"  # the commands the line gives are quoted for a shell
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    found = subprocess.run([str(python), "-c", "import pip"], capture_output=True, check=False)
    if found.returncode == 0:
        pytest.skip("the base interpreter lends its venvs a pip")
    return python


def _run(tmp_path: Path, python: Path, *select: str) -> list[str]:
    (tmp_path / "r.py").write_text("raise SystemExit(0)\n")
    (tmp_path / "m.yaml").write_text(MATRIX)
    return [
        "--matrix", str(tmp_path / "m.yaml"), "run", "--no-progress", "--python", str(python),
        "--results", str(tmp_path / "res"), "--cache", str(tmp_path / "cache"),
        "--find-links", str(tmp_path), "--no-index", *select,
    ]  # fmt: skip


def test_a_cells_interpreter_without_pip_is_refused_before_its_pins_are_built(
    tmp_path: Path, no_pip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_run(tmp_path, no_pip, "--repro", "pinned")) == 4
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("repromatrix: error:")]
    assert lines == [
        f"repromatrix: error: {no_pip} has no pip, which installs the pins of 1 cell(s) "
        "(e.g. pinned[cpu,host,tinylib=1.0]): add it to that environment "
        f"('{no_pip}' -m ensurepip, or uv pip install --python '{no_pip}' pip) or pass --python "
        "PATH of one that has it (nox: REPROMATRIX_PYTHON=PATH)"
    ], err
    assert not (tmp_path / "res").exists() or not ResultStore(tmp_path / "res").load().results


def test_cells_without_a_pin_to_install_run_without_pip(
    tmp_path: Path, no_pip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_run(tmp_path, no_pip, "--repro", "plain")) == 0, capsys.readouterr().err
    (result,) = ResultStore(tmp_path / "res").load().results
    assert result.repro == "plain"
