"""`run`'s reuse of a release offered by a find-links folder: a stored result stands for the
release only while the folders hold the files it was made from (a rebuilt `1.1` runs
again); a release no folder holds now (the result stored from another source) is taken as
it was. Real wheels, real pip installs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from bisect_repo import REPRO, build_wheels

pytestmark = pytest.mark.integration


def _run(
    root: Path, folder: Path, *, given: str = "find-links"
) -> subprocess.CompletedProcess[str]:
    """`run` of the one cell of bisectpkg 1.1, `folder` given as `given` says: the
    --find-links option, PIP_FIND_LINKS, or pip's configuration file (find-links).
    `--fail-on regressed`: its exit says which result stands for the cell, reused too."""
    matrix = root / "matrix.yaml"
    if not matrix.exists():
        (root / "repros").mkdir()
        (root / "repros" / "scale.py").write_text(REPRO)
        matrix.write_text(
            "schema: 1\nlibraries:\n  pkg: {pypi: bisectpkg, import: bisectpkg, "
            'versions: ["1.1"]}\n'
            "repros:\n  scale: {script: repros/scale.py, gpus: [cpu], libraries: {pkg: all}}\n"
        )
    argv = [sys.executable, "-m", "repromatrix", "--matrix", str(matrix), "run"]
    argv += ["--executor=local", "--no-progress", f"--cache={root / 'cache'}"]
    argv += [f"--results={root / 'results'}", "--fail-on=regressed"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_NO_INDEX"] = "1"
    if given == "find-links":
        argv.append(f"--find-links={folder}")
    elif given == "PIP_FIND_LINKS":
        env["PIP_FIND_LINKS"] = str(folder)
    else:
        conf = root / "pip.conf"
        conf.write_text(f"[global]\nfind-links = {folder}\n")
        env["PIP_CONFIG_FILE"] = str(conf)
    return subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, check=False)


@pytest.mark.parametrize("given", ["find-links", "PIP_FIND_LINKS", "pip.conf"])
def test_a_release_rebuilt_in_its_folder_runs_again(tmp_path: Path, given: str) -> None:
    """1.1's wheel rebuilt with a fix under the same version: the next run reused the
    stored result of the old wheel ("1 reused") and showed its regression as 1.1's now;
    with pip.conf's find-links the record said no files at all, so every file was 1.1."""
    wheels = build_wheels(tmp_path / "wheels", ["1.1"], bad={"1.1"})
    first = _run(tmp_path, wheels, given=given)
    assert "1 regressed, 0 reused" in first.stderr, first.stdout + first.stderr
    assert first.returncode == 1, first.stderr
    build_wheels(wheels, ["1.1"], bad=set())  # the same name, a fixed build
    again = _run(tmp_path, wheels, given=given)
    assert "1 passed, 0 reused" in again.stderr, again.stdout + again.stderr
    assert again.returncode == 0, again.stderr
    # The rebuilt wheel's result stands for it now.
    last = _run(tmp_path, wheels, given=given)
    assert "1 reused" in last.stderr, last.stderr
    assert last.returncode == 0, last.stderr


def test_a_run_reuses_the_result_of_the_files_its_folder_holds(tmp_path: Path) -> None:
    """Two folders with different wheels of one 1.1: each run reuses the result made of
    its own folder's file, never the other's."""
    rebuilt = build_wheels(tmp_path / "rebuilt", ["1.1"], bad={"1.1"})
    fixed = build_wheels(tmp_path / "fixed", ["1.1"], bad=set())
    outs = [_run(tmp_path, folder) for folder in (rebuilt, fixed, rebuilt, fixed)]
    assert "1 regressed, 0 reused" in outs[0].stderr, outs[0].stderr
    assert "1 passed, 0 reused" in outs[1].stderr, outs[1].stderr
    assert "1 reused" in outs[2].stderr, outs[2].stderr
    assert outs[2].returncode == 1, outs[2].stderr  # its own regression, not the pass
    assert "1 reused" in outs[3].stderr, outs[3].stderr
    assert outs[3].returncode == 0, outs[3].stderr


def test_a_result_of_a_release_no_folder_holds_now_is_reused(tmp_path: Path) -> None:
    """A result stored from a folder that no longer offers the release (another source,
    a share not mounted) still stands for it: it is reused, never installed again from
    a folder that cannot (which failed as an error record)."""
    wheels = build_wheels(tmp_path / "wheels", ["1.1"], bad={"1.1"})
    first = _run(tmp_path, wheels)
    assert "1 regressed, 0 reused" in first.stderr, first.stderr
    other = tmp_path / "other"
    other.mkdir()
    again = _run(tmp_path, other)
    assert "1 reused" in again.stderr, again.stdout + again.stderr
    assert again.returncode == 1, again.stderr  # the stored regression stands
