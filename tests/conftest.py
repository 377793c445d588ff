"""Shared fixtures: the repository root, the fixture repros, a CLI runner as a real process,
real wheels of a tiny package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from clihelpers import FIXTURE_REPROS, ROOT, CliRunner, cli_argv
from tinywheels import build_tinylib

#: `page`: one headless Chromium page per test module (browser tests).
pytest_plugins = ["chromium_page"]

# Repro scripts are standalone modules (no package): tests import them by file name.
sys.path.insert(0, str(ROOT / "repros"))


@pytest.fixture
def repo_root() -> Path:
    return ROOT


@pytest.fixture
def fixture_repros() -> Path:
    return FIXTURE_REPROS


@pytest.fixture
def run_cli(tmp_path: Path) -> CliRunner:
    """Run `python -m repromatrix ARGS` as a real subprocess in tmp_path."""

    def run(
        *args: str, env: dict[str, str] | None = None, timeout: float = 300, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        full_env = dict(os.environ)
        full_env.update(env or {})
        return subprocess.run(
            cli_argv(*args),
            cwd=cwd or tmp_path,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


@pytest.fixture(scope="session")
def tinylib_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real wheels of a tiny package (1.0 good, 2.0 bad: tinylib.VALUE is the version),
    built with the real pip once a session; tests take a copy (`wheelhouse`)."""
    house = tmp_path_factory.mktemp("tinylib") / "wheelhouse"
    for version in ("1.0", "2.0"):
        build_tinylib(house, version, version)
    return house


@pytest.fixture
def wheelhouse(tmp_path: Path, tinylib_wheels: Path) -> Path:
    """Real wheels of a tiny package (1.0 good, 2.0 bad) in tmp_path/wheelhouse: this
    test's own copy of `tinylib_wheels`, which it may add to, move or name by its path."""
    return Path(shutil.copytree(tinylib_wheels, tmp_path / "wheelhouse"))
