"""A release offered as another file than the one an earlier bisection installed: two
`--find-links` folders holding different wheels of one version (a rebuilt `1.1`, a local
folder of builds beside a mirror's). What pip installs from the folder given now decides,
never an environment or a stored run made from the other file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bisect_repo import REPRO, build_wheels, write_wheel

pytestmark = pytest.mark.integration


def _bisect(
    root: Path,
    folder: Path,
    results: str,
    *,
    given: str = "find-links",
    extra: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """Bisect 1.0..1.2 over `folder`, given as --find-links, PIP_FIND_LINKS or pip.conf's
    find-links (pip's own settings)."""
    matrix = root / "matrix.yaml"
    if not matrix.exists():
        (root / "repros").mkdir()
        (root / "repros" / "scale.py").write_text(REPRO)
        matrix.write_text(
            "schema: 1\nlibraries:\n  pkg: {pypi: bisectpkg, import: bisectpkg, "
            'versions: ["1.0", "1.2"]}\n'
            "repros:\n  scale: {script: repros/scale.py, gpus: [cpu], libraries: {pkg: all}}\n"
        )
    argv = [sys.executable, "-m", "repromatrix", "--matrix", str(matrix), "bisect", "scale"]
    argv += ["--library=pkg", "--good=1.0", "--bad=1.2", "--executor=local", "--jobs=1"]
    argv += ["--no-progress", "--no-index", f"--cache={root / 'cache'}"]
    argv += [f"--results={root / results}", *extra]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    if given == "PIP_FIND_LINKS":
        env["PIP_FIND_LINKS"] = str(folder)
    elif given == "pip.conf":
        (root / "pip.conf").write_text(f"[global]\nfind-links = {folder}\n")
        env["PIP_CONFIG_FILE"] = str(root / "pip.conf")
    else:
        argv.append(f"--find-links={folder}")
    return subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, check=False)


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """`rebuilt` offers a 1.1 that regressed; `fixed` a 1.1 of the same name that did not."""
    rebuilt = build_wheels(tmp_path / "rebuilt", ["1.0", "1.1", "1.2"], bad={"1.1", "1.2"})
    fixed = build_wheels(tmp_path / "fixed", ["1.0", "1.1"], bad=set())
    for end in ("1.0", "1.2"):  # the same files as `rebuilt`'s (a zip holds its time)
        name = f"bisectpkg-{end}-py3-none-any.whl"
        shutil.copy2(rebuilt / name, fixed / name)
    return rebuilt, fixed


@pytest.mark.parametrize("given", ["find-links", "PIP_FIND_LINKS", "pip.conf"])
def test_an_environment_built_from_another_file_of_the_release_is_not_reused(
    tmp_path: Path, folders: tuple[Path, Path], given: str
) -> None:
    """The second bisection, its own results, reused the cache's environment of 1.1 built
    from the first folder's wheel, ran it, and said "first bad release: pkg 1.1" (exit 0)
    of a folder whose 1.1 passes; so did folders given as pip's own setting (pip.conf's
    find-links counted in no environment's key)."""
    rebuilt, fixed = folders
    first = _bisect(tmp_path, rebuilt, "results-rebuilt", given=given)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "first bad release: pkg 1.1\n" in first.stdout, first.stdout
    again = _bisect(tmp_path, fixed, "results-fixed", given=given)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "first bad release: pkg 1.2\n" in again.stdout, again.stdout


@pytest.mark.parametrize("given", ["find-links", "pip.conf"])
def test_a_stored_run_of_another_file_of_the_release_is_no_evidence(
    tmp_path: Path, folders: tuple[Path, Path], given: str
) -> None:
    """The second bisection, over the folder whose 1.1 passes, took the stored runs of the
    first folder's 1.1 as its own and said "first bad release: pkg 1.1" after 0 runs (so
    did a folder given in pip.conf: its records named no files). Its ends are the same
    files in both folders: their runs stand."""
    rebuilt, fixed = folders
    first = _bisect(tmp_path, rebuilt, "results", given=given)
    assert "first bad release: pkg 1.1\n" in first.stdout, first.stdout
    again = _bisect(tmp_path, fixed, "results", given=given)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "first bad release: pkg 1.2\n" in again.stdout, again.stdout
    assert "repromatrix: 1 evaluation(s)" in again.stderr, again.stderr
    # The first folder again: its runs of 1.1 are evidence again, none runs.
    back = _bisect(tmp_path, rebuilt, "results", given=given)
    assert "first bad release: pkg 1.1\n" in back.stdout, back.stdout
    assert "repromatrix: 0 evaluation(s)" in back.stderr, back.stderr


def _helper_wheel(folder: Path, *, bad: bool) -> None:
    """helperpkg 1.0, a second library the repro imports: `bad` makes every cell regress."""
    folder.mkdir(parents=True, exist_ok=True)
    write_wheel(folder, "helperpkg", "1.0", f"BAD = {bad}\n")


def test_a_stored_run_made_with_another_file_of_a_co_pinned_release_is_no_evidence(
    tmp_path: Path,
) -> None:
    """The cell pins a second PyPI library at 1.0, whose wheel was rebuilt between two
    bisections (now making every cell regress). The second bisection checked only the
    bisected library's files, took every stored run as its own and said "first bad
    release: pkg 1.2" after 0 runs, of a folder where its good end regresses too."""
    first_folder = build_wheels(tmp_path / "first", ["1.0", "1.1", "1.2"], bad={"1.2"})
    _helper_wheel(first_folder, bad=False)
    second_folder = tmp_path / "second"
    shutil.copytree(first_folder, second_folder)
    _helper_wheel(second_folder, bad=True)
    (tmp_path / "repros").mkdir()
    helper_check = "import helperpkg\nif helperpkg.BAD:\n    finish('regressed', 'helper')\n"
    script = REPRO.replace("x = float(", helper_check + "x = float(", 1)
    assert script != REPRO
    (tmp_path / "repros" / "scale.py").write_text(script)
    (tmp_path / "matrix.yaml").write_text(
        "schema: 1\nlibraries:\n  pkg: {pypi: bisectpkg, import: bisectpkg, "
        'versions: ["1.0", "1.2"]}\n'
        '  helper: {pypi: helperpkg, import: helperpkg, versions: ["1.0"]}\n'
        "repros:\n  scale: {script: repros/scale.py, gpus: [cpu], "
        "libraries: {pkg: all, helper: all}}\n"
    )
    with_helper = ("--with", "helper=1.0")
    first = _bisect(tmp_path, first_folder, "results", extra=with_helper)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "first bad release: pkg 1.2\n" in first.stdout, first.stdout
    again = _bisect(tmp_path, second_folder, "results", extra=with_helper)
    assert "first bad release: pkg 1.2\n" not in again.stdout, again.stdout + again.stderr
    assert "repromatrix: 0 evaluation(s)" not in again.stderr, again.stderr
    # Run again with the rebuilt helper, the good end regresses: said, never a culprit.
    assert again.returncode != 0, again.stdout + again.stderr
    assert "--good 1.0 (1.0) is not good" in again.stdout, again.stdout + again.stderr
    # The first folder again: the runs made from its files are evidence again.
    back = _bisect(tmp_path, first_folder, "results", extra=with_helper)
    assert "first bad release: pkg 1.2\n" in back.stdout, back.stdout + back.stderr
    assert "repromatrix: 0 evaluation(s)" in back.stderr, back.stderr
