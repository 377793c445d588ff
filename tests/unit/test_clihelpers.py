"""The tests' own process helpers: they must not fail on a race the tests cannot steer."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from typing import Any

import clihelpers
import pytest


def test_a_process_reaped_while_its_stat_is_read_is_not_alive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`pids_alive` read /proc/PID/stat after kill(PID, 0) found the process: one reaped
    in between (a daemon init reaps as the run kills it) made the read fail with ESRCH, and
    test_a_daemon_that_left_the_cells_group_ends_with_the_cell[worker] failed with
    ProcessLookupError (1 of 8 runs beside 3 busy loops) instead of seeing it gone."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert clihelpers.pids_alive([child.pid]) == [child.pid]

        class Reaped(io.StringIO):
            def read(self, size: int | None = -1) -> str:
                raise ProcessLookupError(3, "No such process")

        real = open

        def reaped_between(path: Any, *args: Any, **kwargs: Any) -> Any:
            if str(path) == f"/proc/{child.pid}/stat":
                return Reaped()
            return real(path, *args, **kwargs)

        monkeypatch.setattr(clihelpers, "open", reaped_between, raising=False)
        assert clihelpers.pids_alive([child.pid, os.getpid()]) == [os.getpid()]
    finally:
        child.kill()
        child.wait()
