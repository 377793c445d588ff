"""Path flags behind a folder the user may not search (`chmod 000`): each is one line naming
the folder and its fix, with the flag's exit code, never an internal error (Python's
`Path.exists()` raises PermissionError for such a path, where it answers False for one
that is not there)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from clihelpers import cli_argv, never_run_matrix


def _unprivileged(argv: list[str]) -> list[str]:
    """`argv` run as this user without the capabilities that let root read past a mode."""
    if os.geteuid() != 0:
        return argv
    capsh = shutil.which("capsh")
    if capsh is None:
        pytest.skip("root reads past file modes, and capsh (libcap2-bin) is missing to drop that")
    drop = "--drop=cap_dac_override,cap_dac_read_search"
    return [capsh, drop, "--", "-c", 'exec "$0" "$@"', *argv]


BISECT = ["bisect", "r", "--library", "x", "--good", "1", "--bad", "2"]


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0)
    try:
        yield folder
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize(
    ("argv", "flag", "code"),
    [
        (["run", "--no-progress", "--results", "{locked}/res"], "--results", 8),
        (["run", "--no-progress", "--cache", "{locked}/cache"], "--cache", 10),
        (["report", "--out", "{locked}/rep"], "--out", 10),
        (["report", "--readme", "{locked}/R.md"], "--readme", 10),
        (["report", "--results", "{locked}/res"], "--results", 3),
        (["report", "--compare", "{locked}/old"], "--compare", 3),
        (["clean", "--cache", "{locked}/cache"], "--cache", 10),
        ([*BISECT, "--markdown", "{locked}/b.md"], "--markdown", 10),
    ],
    ids=[
        "run-results", "run-cache", "out", "readme", "report-results", "compare", "clean",
        "markdown",
    ],
)  # fmt: skip
def test_a_path_flag_behind_a_folder_one_may_not_search_is_refused_by_name(
    tmp_path: Path, locked: Path, argv: list[str], flag: str, code: int
) -> None:
    matrix = never_run_matrix(tmp_path)
    (tmp_path / "res").mkdir()
    given = [a.replace("{locked}", str(locked)) for a in argv]
    command = cli_argv("--matrix", str(matrix), *given)
    if given[0] == "report" and "--out" not in given:
        command += ["--out", str(tmp_path / "rep")]
    if given[0] == "report" and "--results" not in given:
        command += ["--results", str(tmp_path / "res")]
    done = subprocess.run(
        _unprivileged(command),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # It was exit 70: "internal error: PermissionError: [Errno 13] Permission denied".
    assert done.returncode == code, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"repromatrix: error: {flag} {locked}/"), line
    assert f"cannot look inside {locked} (Permission denied)" in line
    assert "chmod u+rx" in line


@pytest.mark.parametrize("folder", ["envs", "workers", "runs"])
def test_a_cache_folder_one_may_not_write_stops_the_run_without_a_record(
    tmp_path: Path, folder: str
) -> None:
    """`envs/` or `workers/` of the cache that this user may not write: every cell was an
    `error` record ("harness failed: PermissionError"), exit 0, and the next run, the
    folder fixed, reused it; now the run stops as on a read-only cache (exit 8), no record.
    `runs/` stopped it so, but as "internal error in slot cpu0: PermissionError ... report
    this"."""
    (tmp_path / "r.py").write_text("raise SystemExit('never run')\n")
    matrix = tmp_path / "m.yaml"
    matrix.write_text("schema: 1\nrepros:\n  r: {script: r.py, gpus: [cpu], needs: []}\n")
    cache = tmp_path / "cache"
    (cache / folder).mkdir(parents=True)
    (cache / ".repromatrix-cache.lock").touch()
    argv = cli_argv("--matrix", str(matrix), "run", "--no-progress", "--results",
                    str(tmp_path / "res"), "--cache", str(cache))  # fmt: skip
    (cache / folder).chmod(0)
    try:
        done = subprocess.run(
            _unprivileged(argv), cwd=tmp_path, capture_output=True, text=True, timeout=300,
            check=False,
        )  # fmt: skip
    finally:
        (cache / folder).chmod(0o755)
    assert done.returncode == 8, done.stderr
    assert "Permission denied" in done.stderr
    assert "internal error" not in done.stderr
    assert f"{cache / folder}" in done.stderr.splitlines()[-1]
    assert "make it writable, or name another --cache" in done.stderr
    stored = list((tmp_path / "res").glob("*.jsonl"))
    assert all(f.read_text() == "" for f in stored), [f.read_text()[:300] for f in stored]
