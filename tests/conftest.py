"""Shared fixtures: the repository root, the fixture repros, a CLI runner as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_REPROS = ROOT / "tests" / "fixtures" / "repros"

CliRunner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def repo_root() -> Path:
    return ROOT


@pytest.fixture
def fixture_repros() -> Path:
    return FIXTURE_REPROS


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "repromatrix", *args]


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


def write_matrix(path: Path, repros: dict[str, str], extra: str = "", timeout: float = 60) -> Path:
    """A matrix whose repros are given as YAML flow bodies; `{fx}` is the fixture folder.

    Example: `{"hang": "script: {fx}/hang_repro.py, gpus: [cpu], timeout: 2"}`.
    """
    lines = ["schema: 1", "defaults:", f"  timeout: {timeout}", "repros:"]
    for name, body in repros.items():
        lines.append(f"  {name}: {{{body.replace('{fx}', str(FIXTURE_REPROS))}}}")
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def pids_alive(pids: Sequence[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        # A zombie still answers kill(0); it is dead for our purposes.
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    continue
        except FileNotFoundError:
            continue
        alive.append(pid)
    return alive
