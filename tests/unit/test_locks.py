"""The results folder's and the cache's locks on a file system that has none."""

from __future__ import annotations

import errno
import fcntl
from pathlib import Path
from typing import Any

import pytest

from repromatrix.cli import main


@pytest.mark.parametrize("which", [".repromatrix-run.lock", ".repromatrix-cache.lock"])
def test_a_folder_whose_file_system_has_no_locks_is_said_with_its_fix(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    which: str,
) -> None:
    """flock on an NFS mount without its lock daemon fails with ENOLCK: `run` ended with
    'internal error: OSError: [Errno 37] No locks available (rerun with --debug ... and
    report it)', exit 70, a bug to report where the folder wants another place."""
    (tmp_path / "r.py").write_text("")
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text("schema: 1\nrepros:\n  r: {script: r.py, gpus: [cpu]}\n")
    real = fcntl.flock

    def no_locks(fd: Any, operation: int) -> None:
        if Path(f"/proc/self/fd/{fd}").resolve().name == which:
            raise OSError(errno.ENOLCK, "No locks available")
        real(fd, operation)

    monkeypatch.setattr(fcntl, "flock", no_locks)
    argv = ["--matrix", str(matrix), "run", "--no-progress"]
    argv += ["--results", str(tmp_path / "res"), "--cache", str(tmp_path / "cache")]
    assert main(argv) == 8
    said = capsys.readouterr().err
    flag, folder = ("--results", "res") if which.endswith("run.lock") else ("--cache", "cache")
    start = f"repromatrix: error: {flag} {tmp_path / folder}: cannot lock it ({which}: No locks "
    assert said.startswith(start), said
    assert "internal error" not in said
    assert len(said.splitlines()) == 1
