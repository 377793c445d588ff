"""`nox -s matrix` stopped by SIGTERM sent to nox alone (a CI runner cancelling its job,
`kill <pid of nox>`): the run under it must stop too, not go on unattended."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clihelpers import pids_alive
from test_nox_front_door import _project, base_with_nox  # noqa: F401 -- a fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HANG = """\
import os, sys, time
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "started.tmp"), "w") as f:
    f.write(str(os.getpid()))
os.replace(os.path.join(here, "started.tmp"), os.path.join(here, "started"))
time.sleep(600)
"""


def _runs_under(folder: Path) -> list[int]:
    """Processes whose command line names `folder` (the run, its workers, its cells)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                argv = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if str(folder) in argv and pids_alive([int(entry.name)]):
                found.append(int(entry.name))
    return found


@pytest.mark.usefixtures("base_with_nox")
def test_sigterm_to_nox_alone_stops_the_run_under_it(tmp_path: Path) -> None:
    """SIGTERM to nox ended nox at once (exit -15) and left `repromatrix run`, its workers
    and the cell running, holding the results folder (the next run: exit 9) and writing to
    a pipe nobody read. The noxfile now passes the signal on to the command it runs and
    waits for it to stop as it does for Ctrl-C (finished cells kept, exit 130)."""
    proj = _project(tmp_path)
    (proj / "fixture" / "hang.py").write_text(HANG)
    (proj / "m.yaml").write_text(
        "schema: 1\nrepros:\n  hang: {script: fixture/hang.py, gpus: [cpu], timeout: 600}\n"
    )
    base = getattr(sys, "_base_executable", sys.executable)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "REPROMATRIX_PYTHON")}
    log = (tmp_path / "nox.log").open("wb")
    nox = subprocess.Popen(
        [base, "-m", "nox", "-f", str(proj / "noxfile.py"), "-s", "matrix", "--",
         "--matrix", "m.yaml", "--results", "res", "--cache", "cache", "--no-progress",
         "--executor", "local", "--python", base],
        cwd=proj, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    started = proj / "fixture" / "started"
    deadline = time.monotonic() + 900  # nox builds its venv first
    while not started.exists() and nox.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    try:
        assert started.exists(), (tmp_path / "nox.log").read_text()[-3000:]
        cell = int(started.read_text())
        os.kill(nox.pid, signal.SIGTERM)
        nox.wait(timeout=120)
        gone = time.monotonic() + 30
        while (pids_alive([cell]) or _runs_under(proj)) and time.monotonic() < gone:
            time.sleep(0.2)
        out = (tmp_path / "nox.log").read_text()[-3000:]
        assert not pids_alive([cell]), out
        assert _runs_under(proj) == [], out
        assert "repromatrix: interrupted" in out, out
    finally:
        for pid in _runs_under(proj):  # what the old noxfile left behind
            os.kill(pid, signal.SIGKILL)
        if nox.poll() is None:
            nox.kill()
        log.close()
