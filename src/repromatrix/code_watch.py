"""Whether a repro's code changed while a run went on.

A cell's key hashes its repro's code as the run found it at the start (`script_digest`).
A script edited mid-run (a threshold tweaked while a long matrix runs) gave the cells that
started after the edit the new code, stored under the old code's key: a later run with the
script put back reused them as the old code's verdicts. The scheduler asks before storing
each record; a changed file stops the run with nothing of it stored under a stale key.

Only Python files are watched (the script, the private helpers beside it, the sibling
modules it imports): data files beside it that the digest also covers may be written by
the repro itself (a reference it saves on its first run), which is no edit of its code.
A `stat` per file and record (inode, size, mtime): no file is read again.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from repromatrix.config.digest import imported_siblings

_Seen = tuple[int, int, int]
_GONE: _Seen = (-1, -1, -1)


def _stat(path: Path) -> _Seen:
    try:
        st = os.stat(path)
    except OSError:
        return _GONE
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _code_files(script: Path) -> list[Path]:
    """The script and the Python files of its folder its digest covers."""
    private = sorted(p for p in script.parent.glob("_*.py") if p.is_file())
    siblings = [p for p in imported_siblings(script) if p.suffix == ".py"]
    return list(dict.fromkeys([script, *private, *siblings]))


class CodeWatch:
    """The code files of `scripts` as a run found them at its start."""

    def __init__(self, scripts: Iterable[Path]) -> None:
        self._seen: dict[Path, list[tuple[Path, _Seen]]] = {}
        for script in dict.fromkeys(scripts):
            try:
                files = _code_files(script)
            except (OSError, SyntaxError, ValueError, RecursionError):
                files = [script]  # as the digest read it: the script at least
            self._seen[script] = [(p, _stat(p)) for p in files]

    def changed(self, script: Path) -> Path | None:
        """The first code file of `script` that is not as the run found it (None: none)."""
        for path, seen in self._seen.get(script, ()):
            if _stat(path) != seen:
                return path
        return None


def edited_line(path: Path, cell_id: str) -> str:
    """What the run says when it stops for `path` having changed before `cell_id`'s record."""
    return (
        f"{path} changed while the run went on: {cell_id} and the cells after it would be "
        "stored under the key of the code the run started with; earlier results are kept: "
        "run again once it is as you want it (its cells then get the new code's keys)"
    )
