"""Bytecode of a repro's folder, written whole before its first cell on this host.

A cell's import of the repro's helpers (`_repro.py`, its `_*.py`) wrote their bytecode with
CPython's one write(), which it takes as whole when short: with the cache under the
repository (`.repromatrix/`, the default) a full cache disk is a full repros disk, and the
cut `.pyc` beside the repro failed every later cell of that folder ('EOFError: marshal data
too short'), in every later run. So the cells' interpreter writes it first, whole, by
`worker_bytecode.py --flat`; where it cannot for want of room the run stops (exit 8) as
for any full disk. Under PYTHONDONTWRITEBYTECODE (the user's or a `--cell-env`) nothing is
written there, as the cells would write nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

from repromatrix import proc
from repromatrix.executors.base import full_in

PROGRAM = Path(__file__).with_name("worker_bytecode.py")
#: Ample for a folder of repros (each code file at most 2 MiB, 16 MiB together).
_TIMEOUT_S = 300.0


class ReproBytecode:
    """Each repro folder's bytecode, once per interpreter for the executor's life."""

    def __init__(self) -> None:
        self._done: set[tuple[str, Path]] = set()
        self._lock = threading.Lock()

    def ensure(self, python: str, folder: Path, variables: Mapping[str, str]) -> str | None:
        """None once it is written (or not wanted); else the full disk's words."""
        if variables.get("PYTHONDONTWRITEBYTECODE"):
            return None
        with self._lock:  # once per folder: a cell beside it waits, then imports it whole
            if (python, folder) in self._done:
                return None
            out = proc.run([python, "-I", str(PROGRAM), "--flat", str(folder)], timeout=_TIMEOUT_S)
            words = full_in(out.stderr) if out.returncode != 0 and not out.timed_out else None
            if words is not None:  # tried again by the next cell, once there is room
                return f"{words} (writing the bytecode of {folder}: {out.stderr.strip()[-300:]})"
            self._done.add((python, folder))
        return None
