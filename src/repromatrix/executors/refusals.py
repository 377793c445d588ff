"""Images whose python3 cannot run cells, as a run met them: their cells are noted "not
run here" and the other cells run, but the run must not end with exit 0 (a local run
refuses such an interpreter with exit 4). Kept by the Docker executor, and by the Ray
executor for what its nodes' Docker executors noted, in the same words.
"""

from __future__ import annotations

import threading

from repromatrix.model import Cell, Status
from repromatrix.records import Result

#: The key, in a Ray node's harness of a "not run here" note, that says the note is such
#: a refusal (the driver's run then ends as a local one does).
IMAGE_REFUSED = "image_refused"


class RefusedImages:
    """Image ref → why its python3 cannot run cells, and the cells it cost (by key: a
    cell of several runs, `--repeat`, counts once)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refused: dict[str, tuple[str, set[str]]] = {}

    def add(self, cell: Cell, why: str) -> None:
        with self._lock:
            self._refused.setdefault(cell.base.ref, (why, set()))[1].add(cell.key)

    def note(self, cell: Cell, result: Result) -> None:
        """Add a Ray node's record if it is such a note (`IMAGE_REFUSED` in its harness)."""
        harness = result.provenance.get("harness") or {}
        ray = harness.get("ray") if isinstance(harness, dict) else None
        if result.status is Status.NOT_RUN and isinstance(ray, dict) and ray.get(IMAGE_REFUSED):
            self.add(cell, result.reason or "")

    def line(self) -> str | None:
        """Why the run must not end with exit 0, in one line; None when no image was
        refused."""
        with self._lock:
            refused = [(why, len(keys)) for why, keys in self._refused.values()]
        if not refused:
            return None
        cells = sum(n for _, n in refused)
        more = f" (and {len(refused) - 1} other image(s))" if len(refused) > 1 else ""
        return f"{cells} cell(s) not run{more}: {refused[0][0]}"
