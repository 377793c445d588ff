"""Two runs at once on one results file: a results folder whose own file is a link into
another folder, run beside a run on that folder, as real processes."""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from pathlib import Path

import pytest
from clihelpers import CliRunner, cli_argv, write_matrix

from repromatrix.locks import LOCK_NAME
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
            "slow": f"script: {{fx}}/slow_repro.py, gpus: [cpu], params: {{seconds: 600, "
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


def test_two_folders_whose_files_link_into_each_other_never_wait_on_each_other(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """`r/<host>.jsonl -> ../other/x.jsonl` and `other/<host>.jsonl -> ../r/y.jsonl`: a
    run on `r` with --wait held `r` while it waited for `other`, and one on `other` held
    `other` while it waited for `r`: both waited for ever. The folders are now taken in
    one order, so a run holds none while it waits for the first, and both finish."""
    matrix = write_matrix(
        tmp_path / "matrix.yaml", {"p": "script: {fx}/pass_repro.py, gpus: [cpu]"}
    )
    other, r = tmp_path / "other", tmp_path / "r"
    name = ResultStore(other).path.name
    other.mkdir()
    r.mkdir()
    for folder, into in ((r, "other/x.jsonl"), (other, "r/y.jsonl")):
        (folder / name).symlink_to(Path("..", into))
        (tmp_path / into).touch()
    # Another run (this test) holds `other`: each run below waits for it.
    holder = (other / LOCK_NAME).open("a+")
    fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
    argv = ["--matrix", str(matrix), "run", "--no-progress", "--wait", "--results"]
    runs: list[subprocess.Popen[str]] = []
    try:
        for given in ("other", "r"):  # in this order the old locks deadlocked
            runs.append(
                subprocess.Popen(
                    cli_argv(*argv, given),
                    cwd=tmp_path,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
            assert runs[-1].stderr is not None
            line = runs[-1].stderr.readline()  # said as it starts to wait
            # `other` as given to its own run, resolved where `r`'s file leads.
            held = "other" if given == "other" else other
            assert line.endswith(f"waiting for another run to finish with {held}\n"), line
        # Waiting for `other`, the run on `r` holds nothing: `r` is free.
        with (r / LOCK_NAME).open("a+") as probe:
            fcntl.flock(probe.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(probe.fileno(), fcntl.LOCK_UN)
        fcntl.flock(holder.fileno(), fcntl.LOCK_UN)
        for run in runs:
            _, said = run.communicate(timeout=60)
            assert run.returncode == 0, said
    finally:
        holder.close()
        for run in runs:
            if run.poll() is None:
                run.kill()
                run.communicate()
    # Whichever run took `other` first ran the cell into its linked file; the second then
    # found that record in its own folder (each folder holds both files) and had nothing
    # left to run. Which goes first is the scheduler's choice: both orders must end with
    # the cell recorded once and seen from either folder.
    stored = [(tmp_path / into).read_text() for into in ("other/x.jsonl", "r/y.jsonl")]
    assert sum(text.count("\n") for text in stored) == 1, stored
    for folder in (other, r):
        latest = ResultStore(folder).latest_by_key().values()
        assert [(res.repro, res.status.value) for res in latest] == [("p", "passed")]


def test_a_hard_linked_results_file_gets_a_copy_of_its_own_before_a_run_appends(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """`cp -al r snap` (a snapshot, or a backup tool's) gives `r`'s results file a second
    name: a run on `r` appended to the one file under both, so the snapshot changed, and
    a run on `snap` beside it, holding another folder's lock, appended to it at once. The
    run now gives its folder a copy of its own first, and says so."""
    matrix = write_matrix(
        tmp_path / "matrix.yaml", {"p": "script: {fx}/pass_repro.py, gpus: [cpu]"}
    )
    argv = ["--matrix", str(matrix), "run", "--no-progress", "--results", "r"]
    assert run_cli(*argv).returncode == 0
    file = ResultStore(tmp_path / "r").path
    (tmp_path / "snap").mkdir()
    os.link(file, tmp_path / "snap" / file.name)
    again = run_cli(*argv, "--rerun")
    assert again.returncode == 0, again.stderr
    assert "1 passed" in again.stderr, again.stderr
    assert f"{Path('r', file.name)}: was one file under 2 names (hard links" in again.stderr
    assert len(ResultStore(tmp_path / "snap").load().results) == 1  # the snapshot as it was
    assert len(ResultStore(tmp_path / "r").load().results) == 2
    assert os.stat(file).st_nlink == 1
