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


def test_a_link_to_a_venvs_python_made_outside_it_is_said_to_run_without_the_venv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--python ~/bin/gpu-python`, a link to /opt/torch/.venv/bin/python3: Python finds
    its venv by the path it was started by, so the link ran the base interpreter, and the
    refusal said only 'cannot import torch' of an interpreter whose target has it."""
    base = getattr(sys, "_base_executable", sys.executable)
    venv = tmp_path / "stack"
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site,) = venv.glob("lib/python3*/site-packages")
    (site / "standin_gpu_stack_xyz.py").write_text("")
    link = tmp_path / "bin" / "gpu-python"
    link.parent.mkdir()
    link.symlink_to(venv / "bin" / "python")
    (tmp_path / "r.py").write_text("raise SystemExit(0)\n")
    (tmp_path / "m.yaml").write_text(
        "schema: 1\nrepros:\n  r: {script: r.py, gpus: [cpu], needs: [standin_gpu_stack_xyz]}\n"
    )
    argv = ["--matrix", str(tmp_path / "m.yaml"), "run", "--no-progress", "--python", str(link),
            "--results", str(tmp_path / "res"), "--cache", str(tmp_path / "cache")]  # fmt: skip
    assert main(argv) == 4
    err = capsys.readouterr().err
    assert (
        f"{link} cannot import standin_gpu_stack_xyz, which 1 cell(s) need (e.g. r[cpu,host]) "
        f"(a link to {venv / 'bin' / 'python'}, whose venv {venv} is seen only when started "
        "by that path); run them with"
    ) in err, err
    argv[argv.index(str(link))] = str(venv / "bin" / "python")
    assert main(argv) == 0, capsys.readouterr().err  # by its own path: the venv's module
