"""Shared fixtures: the repository root, the fixture repros, a CLI runner as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from clihelpers import FIXTURE_REPROS, ROOT, CliRunner, cli_argv

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
