"""A results folder on a read-only mount, met by `run` as a real process (root only:
mount); CI runs as root and fails here where it cannot."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from clihelpers import CliRunner, write_matrix

pytestmark = pytest.mark.integration


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 160 KiB tmpfs, remounted read-only by the test when it wants."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("the read-only results test mounts a tmpfs and needs root in CI")
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_read_only_results_folder_that_holds_every_record_is_no_error(
    tmp_path: Path, run_cli: CliRunner, small_disk: Path
) -> None:
    """Every cell reused and the GPU cell's 'not run here' note stored already: `run
    --fail-on regressed` on a read-only mount (published results a CI job checks) exited
    8 "cannot append records", though it had nothing to append. A note that is new, or a
    cell to run, still finds it before the first cell (exit 8, nothing run)."""
    matrix = write_matrix(
        tmp_path / "matrix.yaml",
        {"quick": "script: {fx}/pass_repro.py, gpus: [cpu, X9]"},
        extra='gpus:\n  X9: {compute_capability: "9.0", smi_names: ["No Such GPU X9"]}\n',
    )
    results = small_disk / "results"
    argv = ["--matrix", str(matrix), "run", "--results", str(results), "--no-progress"]
    first = run_cli(*argv)
    assert first.returncode == 0, first.stderr
    assert "1 passed, 0 reused, 1 not run here" in first.stderr
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    again = run_cli(*argv, "--fail-on", "regressed")
    assert again.returncode == 0, again.stderr
    assert "1 reused, 1 not run here" in again.stderr
    fresh = run_cli(*argv, "--rerun")
    assert fresh.returncode == 8, fresh.stderr
    assert f"--results {results}: cannot append records" in fresh.stderr
    assert "running" not in fresh.stderr


def test_a_results_file_linked_into_a_read_only_folder_is_named_by_its_target(
    tmp_path: Path, run_cli: CliRunner, small_disk: Path
) -> None:
    """`r/<host>.jsonl` a link to a file on a read-only mount: `run` said "--results r:
    cannot append records to <host>.jsonl (Read-only file system); pass a writable results
    folder" of a folder that was writable. The link and where it leads are said now."""
    matrix = write_matrix(
        tmp_path / "matrix.yaml", {"quick": "script: {fx}/pass_repro.py, gpus: [cpu]"}
    )
    argv = ["--matrix", str(matrix), "run", "--no-progress", "--results"]
    published = small_disk / "published"
    assert run_cli(*argv, str(published)).returncode == 0
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    (linked,) = published.glob("*.jsonl")
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / linked.name).symlink_to(linked)
    out = run_cli(*argv, "r", "--rerun")
    assert out.returncode == 8, out.stderr
    assert (
        f"--results r: cannot append records to {linked.name}, a link to {linked} (Read-only "
        "file system); remove the link (runs then make the file here), or pass a writable "
        "results folder"
    ) in out.stderr, out.stderr
