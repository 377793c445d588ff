"""What every benchmark records: the machine it ran on, and one shared results file."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    """Enough to tell two machines apart; load average because this one may be shared."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "python": platform.python_version(),
        # Set (as some CI shells do), every process it starts compiles repromatrix's
        # modules again: about 0.1 s more per process than a user's installed copy.
        "python_dont_write_bytecode": bool(os.environ.get("PYTHONDONTWRITEBYTECODE")),
    }


def merge_into(out: Path, key: str, result: dict[str, Any]) -> None:
    """Write `result` under `key` of the JSON file, keeping the other benchmarks' entries."""
    existing: dict[str, Any] = {}
    if out.exists():
        try:
            existing = json.loads(out.read_text())
        except json.JSONDecodeError:
            existing = {}
    existing[key] = result
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(existing, indent=2) + "\n")


def scratch() -> Path:
    """Where benchmarks work: inside this repository (the git-ignored .repromatrix/), as
    their matrices name the repository's scripts and a matrix's scripts must be inside the
    repository that holds it."""
    parent = Path(__file__).resolve().parents[1] / ".repromatrix" / "bench"
    parent.mkdir(parents=True, exist_ok=True)
    return parent


def workdir(prefix: str) -> tempfile.TemporaryDirectory[str]:
    """A scratch folder of one benchmark run, removed after it."""
    return tempfile.TemporaryDirectory(prefix=prefix, dir=scratch())
