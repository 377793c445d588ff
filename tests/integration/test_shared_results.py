"""Two runs at once on one results file: a results folder whose own file is a link into
another folder, run beside a run on that folder, as real processes."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from clihelpers import CliRunner, cli_argv, write_matrix

from repromatrix.store import ResultStore

pytestmark = pytest.mark.integration


def test_a_run_through_a_linked_results_file_waits_for_the_run_of_its_folder(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """`r/<host>.jsonl` a link to `other/<host>.jsonl`: a run on `r` while a run on
    `other` worked took its own folder's lock only, ran every cell the other was running
    and appended to the same file beside it (and a run's repair step rewrites that file).
    It now holds the linked file's folder too: exit 9 naming the link, or --wait."""
    release, started = tmp_path / "release", tmp_path / "started"
    matrix = write_matrix(
        tmp_path / "matrix.yaml",
        {
            "slow": f"script: {{fx}}/slow_repro.py, gpus: [cpu], params: {{seconds: 30, "
            f"release: {release}, started_dir: {started}}}"
        },
    )
    other, linked = tmp_path / "other", tmp_path / "r"
    linked.mkdir()
    name = ResultStore(other).path.name
    (linked / name).symlink_to(Path("..", "other", name))
    argv = ["--matrix", str(matrix), "run", "--no-progress", "--results"]
    first = subprocess.Popen(
        cli_argv(*argv, "other"),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (started.is_dir() and any(started.iterdir())):
            assert time.monotonic() < deadline
            assert first.poll() is None
            time.sleep(0.1)
        busy = run_cli(*argv, "r")
        assert busy.returncode == 9, busy.stderr
        assert f"--results r: its {name} is a link into {other}" in busy.stderr, busy.stderr
        assert "which another repromatrix run is using (pid" in busy.stderr
        waiting = subprocess.Popen(
            cli_argv(*argv, "r", "--wait"),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert waiting.stderr is not None
        line = waiting.stderr.readline()  # said before it blocks on the lock
        assert f"waiting for another run to finish with {other}" in line, line
        release.touch()
        _, first_said = first.communicate(timeout=60)
        assert first.returncode == 0, first_said
        _, said = waiting.communicate(timeout=60)
        assert waiting.returncode == 0, said
        assert "1 reused" in said, said  # the first run's record, not a second run of it
    finally:
        release.touch()
        first.communicate(timeout=60)
    assert len(ResultStore(other).load().results) == 1
