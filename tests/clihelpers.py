"""Helpers shared by tests: run the CLI as a real process, write fixture matrices, check pids."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_REPROS = ROOT / "tests" / "fixtures" / "repros"

CliRunner = Callable[..., subprocess.CompletedProcess[str]]


def run_upstream_pytest(
    tmp_path: Path, checkout: Path, params: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], dict[str, object]]:
    """repros/upstream_pytest.py run as a cell runs it, on `checkout` (put on PYTHONPATH as
    the library's installed tree): the process and the result record it wrote."""
    out = tmp_path / "r.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "repros" / "upstream_pytest.py"),
            "--out",
            str(out),
            "--params",
            json.dumps({**params, "checkout": str(checkout)}),
        ],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(checkout)},
        capture_output=True,
        text=True,
        check=False,
    )
    result: dict[str, object] = json.loads(out.read_text())
    return done, result


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "repromatrix", *args]


def fixture_copy(folder: Path) -> Path:
    """The fixture repros, copied into `folder`: a matrix's scripts must be inside its
    repository (its folder, or the git work tree holding it), as a user's are."""
    dest = folder / "fixture-repros"
    shutil.copytree(
        FIXTURE_REPROS, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
    )
    return dest


def write_matrix(path: Path, repros: dict[str, str], extra: str = "", timeout: float = 60) -> Path:
    """A matrix whose repros are given as YAML flow bodies; `{fx}` is a copy of the fixture
    repros beside it (see `fixture_copy`).

    Example: `{"hang": "script: {fx}/hang_repro.py, gpus: [cpu], timeout: 2"}`.
    """
    fx = fixture_copy(path.parent)
    lines = ["schema: 1", "defaults:", f"  timeout: {timeout}", "repros:"]
    for name, body in repros.items():
        lines.append(f"  {name}: {{{body.replace('{fx}', str(fx))}}}")
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def never_run_matrix(folder: Path) -> Path:
    """`folder`/m.yaml: one CPU repro whose script fails if it ever runs, for commands that
    must refuse their flags before any cell does."""
    (folder / "r.py").write_text("raise SystemExit('never run')\n")
    path = folder / "m.yaml"
    path.write_text("schema: 1\nrepros:\n  r: {script: r.py, gpus: [cpu]}\n")
    return path


def pids_alive(pids: Sequence[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        # A zombie still answers kill(0); it is dead for our purposes. One reaped since
        # (by init, or by its parent) has no /proc entry, or one whose read says ESRCH.
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    continue
        except (FileNotFoundError, ProcessLookupError):
            continue
        alive.append(pid)
    return alive
