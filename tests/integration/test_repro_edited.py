"""A repro's code edited while a run goes on (a threshold tweaked during a long matrix):
the cells that started after the edit ran the new code, stored under the key of the code
the run started with, and a later run with the script put back reused them as the old
code's verdicts."""

from __future__ import annotations

import subprocess
import textwrap
import time
from pathlib import Path

from clihelpers import CliRunner, cli_argv

from repromatrix.model import Status
from repromatrix.store import ResultStore

SCRIPT = textwrap.dedent("""\
    import os, time

    STATUS = "passed"

    def run(params):
        sync = params["sync"]
        open(os.path.join(sync, f"started-{params['n']}"), "w").close()
        for _ in range(1200):  # until the test has edited this file
            if os.path.exists(os.path.join(sync, "go")):
                break
            time.sleep(0.05)
        return {"schema": 1, "status": STATUS, "reason": STATUS}
    """)


def _wait_for(path: Path, seconds: float = 60) -> None:
    end = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.05)


def test_a_script_edited_mid_run_stops_the_run_before_a_stale_key_is_stored(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    sync = tmp_path / "sync"
    sync.mkdir()
    (tmp_path / "repros").mkdir()
    script = tmp_path / "repros" / "r.py"
    script.write_text(SCRIPT)
    cells = "".join(
        f"  r{n}: {{script: repros/r.py, gpus: [cpu], isolate: true, "
        f"params: {{n: {n}, sync: '{sync}'}}}}\n"
        for n in (1, 2)
    )
    (tmp_path / "m.yaml").write_text("schema: 1\nrepros:\n" + cells)
    argv = ["--matrix", "m.yaml", "run", "--jobs", "1", "--no-progress", "--results", "res"]
    running = subprocess.Popen(
        cli_argv(*argv), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_for(sync / "started-1")
        script.write_text(SCRIPT.replace('STATUS = "passed"', 'STATUS = "regressed"'))
        (sync / "go").touch()
        _, err = running.communicate(timeout=120)
    finally:
        running.kill()
    assert running.returncode == 2, err
    assert "r.py changed while the run went on" in err, err
    # Nothing stored under the key of the code the run started with: r1 finished after
    # the edit, and r2 (a process of its own) would have run the new code.
    assert not ResultStore(tmp_path / "res").load().results
    again = run_cli(*argv)
    assert again.returncode == 0, again.stderr
    got = ResultStore(tmp_path / "res").load().results
    assert sorted(r.repro for r in got) == ["r1", "r2"]
    assert {r.status for r in got} == {Status.REGRESSED}
