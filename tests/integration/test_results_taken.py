"""A results file that another process cuts short, replaces or removes while a run holds
its folder (`: > r/host.jsonl`, `git checkout`, an editor's save, `rm`), as real processes.

The run's lock keeps other runs out, not every process: the run said "2 passed" at exit 0
over a file that held none of the records it had stored, nor those of earlier runs."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from clihelpers import CliRunner, cli_argv, write_matrix

from repromatrix.store import ResultStore

pytestmark = pytest.mark.integration


def _lines(path: Path) -> list[str]:
    return [json.loads(line)["cell_id"] for line in path.read_text().splitlines() if line]


def _change(path: Path, how: str) -> None:
    if how == "truncated":
        with path.open("r+b") as f:
            f.truncate(0)
    elif how == "removed":
        path.unlink()
    else:  # an editor's save: a new file renamed over it
        kept = path.read_bytes() if how == "replaced by a copy" else b""
        new = path.with_name("new.tmp")
        new.write_bytes(kept)
        new.replace(path)


@pytest.mark.parametrize(
    "how", ["truncated", "removed", "replaced by an empty file", "replaced by a copy"]
)
def test_a_results_file_changed_by_another_process_during_a_run_loses_nothing_unsaid(
    tmp_path: Path, run_cli: CliRunner, how: str
) -> None:
    release, started = tmp_path / "release", tmp_path / "started"
    matrix = write_matrix(
        tmp_path / "m.yaml",
        {
            "early": "script: {fx}/pass_repro.py, gpus: [cpu]",
            "fast": "script: {fx}/pass_repro.py, gpus: [cpu], params: {n: 1}",
            "slow": f"script: {{fx}}/slow_repro.py, gpus: [cpu], params: {{seconds: 600, "
            f"release: {release}, started_dir: {started}}}",
        },
    )
    argv = ["--matrix", str(matrix), "run", "--no-progress", "--results", "res"]
    assert run_cli(*argv, "--repro", "early").returncode == 0  # stored before the run
    path = ResultStore(tmp_path / "res").path
    run = subprocess.Popen(
        cli_argv(*argv, "--jobs", "2"),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        # The run's own record of `fast` is stored while `slow` waits.
        while not (started.is_dir() and any(started.iterdir()) and len(_lines(path)) == 2):
            assert time.monotonic() < deadline, run.communicate(timeout=5)
            assert run.poll() is None, run.communicate()
            time.sleep(0.05)
        _change(path, how)
        release.touch()
        _, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert "Traceback" not in err
    aside = path.with_name(path.name + ".replaced")
    if how == "replaced by a copy":  # nothing lost: said, and the run ends well
        assert run.returncode == 0, err
        assert sorted(_lines(path)) == ["early[cpu,host]", "fast[cpu,host]", "slow[cpu,host]"]
        assert "replaced by another file during this run" in err, err
        assert "no record stored before the run was lost" in err, err
        assert not aside.exists()
        return
    assert run.returncode == 3, err  # a result was lost: never exit 0
    # The run's own records are all there again; the one stored before it is not.
    assert sorted(_lines(path)) == ["fast[cpu,host]", "slow[cpu,host]"], err
    errors = [ln for ln in err.splitlines() if ln.startswith("repromatrix: error:")]
    assert len(errors) == 1, err
    (line,) = errors
    assert line.startswith(f"repromatrix: error: {Path('res', path.name)}: "), line
    assert "this run's 1 record it had lost was appended again" in line, line
    assert "let no other process write to it while a run holds its folder" in line, line
    if how == "truncated":
        assert "cut short by another process during this run" in line, line
        assert "records stored before the run may be lost: restore them from a copy" in line
        assert not aside.exists()
    else:  # the file it replaced is still open to the run: what it held is kept aside
        assert "replaced by another file during this run" in line, line
        kept = Path("res", aside.name)
        assert f"the 1 record stored before the run it lacks is kept in {kept}" in line, line
        assert _lines(aside) == ["early[cpu,host]"]
    # The next run reuses what this one stored, and loses nothing more.
    again = run_cli(*argv)
    assert again.returncode == 0, again.stderr
    assert "1 passed, 2 reused" in again.stderr, again.stderr
    assert os.path.getsize(path) > 0
