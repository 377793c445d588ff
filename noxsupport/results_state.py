"""What a run recorded, told from what it did not."""

from __future__ import annotations

import contextlib
import os


def records_state(results: str) -> dict[str, tuple[int, int]]:
    """Size and modification time of each results file (`*.jsonl`) under `results`: what
    tells a run that recorded something from one that stopped before it."""
    state = {}
    for root, _dirs, files in os.walk(results):
        for name in files:
            if name.endswith(".jsonl"):
                path = os.path.join(root, name)
                with contextlib.suppress(OSError):
                    st = os.stat(path)
                    state[path] = (st.st_size, st.st_mtime_ns)
    return state
