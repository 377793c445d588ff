"""A release pin spelled otherwise than the files offer it (`1.0.0` for `1.0`), beside a
local build of that release (`1.0+cu121`): the pin installs the release, not the build.
Real wheels, real pip installs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bisect_repo import REPRO, build_wheels

from repromatrix.store import ResultStore

pytestmark = pytest.mark.integration


def _repromatrix(root: Path, wheels: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """`repromatrix COMMAND` over `wheels` alone, matrix.yaml declaring 1.0.0 and 2.0."""
    (root / "repros").mkdir(exist_ok=True)
    (root / "repros" / "scale.py").write_text(REPRO)
    matrix = root / "matrix.yaml"
    matrix.write_text(
        "schema: 1\nlibraries:\n  pkg: {pypi: bisectpkg, import: bisectpkg, "
        'versions: ["1.0.0", "2.0"]}\n'
        "repros:\n  scale: {script: repros/scale.py, gpus: [cpu], libraries: {pkg: all}}\n"
    )
    argv = [sys.executable, "-m", "repromatrix", "--matrix", str(matrix), *command]
    argv += ["--executor=local", "--no-progress", f"--cache={root / 'cache'}"]
    argv += [f"--results={root / 'results'}", f"--find-links={wheels}", "--no-index"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, check=False)


def _installed(root: Path) -> dict[str, tuple[str, str]]:
    """pin → (what pip installed, the requirement it was asked), from the stored records."""
    records = ResultStore(root / "results").load().results
    pins = {r.pins["pkg"]: r.provenance["harness"]["pins"]["pkg"] for r in records}
    return {pin: (p["installed"], p["requirement"]) for pin, p in pins.items()}


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    """1.0 is good, its CUDA build 1.0+cu121 bad (another build, another answer)."""
    return build_wheels(
        tmp_path / "wheels", ["1.0", "1.0+cu121", "1.1", "2.0"], bad={"1.0+cu121", "2.0"}
    )


def test_a_run_of_a_release_spelled_1_0_0_installs_1_0_not_its_local_build(
    tmp_path: Path, wheels: Path
) -> None:
    """`===1.0.0` matched no file (pip compares spellings), and was asked again as
    `==1.0.0`, which pip took as 1.0+cu121: the cell 1.0.0 read 'regressed' and the report
    'begins at or before 1.0.0', while 1.0 passes; exit 0."""
    out = _repromatrix(tmp_path, wheels, "run", "--fail-on=regressed", "--repro=scale")
    installed = _installed(tmp_path)
    assert installed["1.0.0"] == ("1.0", "bisectpkg===1.0"), installed
    assert out.returncode == 1, out.stderr  # 2.0 regressed, 1.0.0 passed
    assert "1 passed, 1 regressed" in out.stderr, out.stderr


def test_a_bisect_end_spelled_1_0_0_runs_1_0_not_its_local_build(
    tmp_path: Path, wheels: Path
) -> None:
    """The good end 1.0.0 ran 1.0+cu121: '--good 1.0.0 (1.0.0) is not good', exit 6."""
    out = _repromatrix(
        tmp_path, wheels, "bisect", "scale", "--library=pkg", "--good=1.0.0", "--bad=2.0"
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "first bad release: pkg 2.0" in out.stdout, out.stdout
    assert _installed(tmp_path)["1.0.0"] == ("1.0", "bisectpkg===1.0")


def test_a_stored_run_of_1_0_0_that_installed_its_local_build_is_run_again(
    tmp_path: Path, wheels: Path
) -> None:
    """A record the old code made: the cell 1.0.0 asked `==1.0.0`, installed 1.0+cu121
    and read regressed. Its key and its files' digest are the pin's (the plain wheel's),
    so every later run reused it ('1 reused') and kept 1.0.0 regressed, exit 1 under
    --fail-on=regressed for a release that passes."""
    first = _repromatrix(tmp_path, wheels, "run", "--repro=scale")
    assert first.returncode == 0, first.stderr
    (stored,) = (tmp_path / "results").glob("*.jsonl")
    lines = []
    for line in stored.read_text().splitlines():
        record = json.loads(line)
        if record["pins"]["pkg"] == "1.0.0":
            record["status"] = "regressed"
            pin = record["provenance"]["harness"]["pins"]["pkg"]
            pin |= {"installed": "1.0+cu121", "requirement": "bisectpkg==1.0.0"}
        lines.append(json.dumps(record))
    stored.write_text("".join(f"{line}\n" for line in lines))
    out = _repromatrix(tmp_path, wheels, "run", "--fail-on=regressed", "--repro=scale")
    assert _installed(tmp_path)["1.0.0"] == ("1.0", "bisectpkg===1.0"), out.stderr
    assert out.stderr.startswith("running 1 cell(s)\n"), out.stderr  # 2.0's record reused
    assert out.returncode == 1, out.stderr  # 2.0 regressed
