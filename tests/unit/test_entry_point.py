"""The `repromatrix` command's entry point (`repromatrix.__main__.run`): what a Ctrl-C does
before `cli.main` is there to handle it."""

from __future__ import annotations

import subprocess
import sys

#: A process whose `repromatrix.cli` is still being imported when Ctrl-C arrives: taking
#: `main` from it raises KeyboardInterrupt, as the signal would at that point.
INTERRUPTED_WHILE_IMPORTING = """\
import sys, types

class Importing(types.ModuleType):
    def __getattr__(self, name):
        raise KeyboardInterrupt

sys.modules["repromatrix.cli"] = Importing("repromatrix.cli")
from repromatrix.__main__ import run
run()
"""


def test_ctrl_c_while_the_command_starts_ends_interrupted_130_without_a_traceback() -> None:
    """Ctrl-C in the command's first milliseconds (importing repromatrix's modules, before
    `main` installs its own handling) must end as every other Ctrl-C does: one line,
    `interrupted`, exit 130 (the README's Reliability table promises it)."""
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_WHILE_IMPORTING],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 130, done.stderr
    assert done.stderr == "repromatrix: interrupted\n"
    assert done.stdout == ""
