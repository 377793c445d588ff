"""A cell's result as a persistent worker (`worker_main.py`) writes it, the way
`python SCRIPT --out OUT` (`repros/_repro.main`) would: the JSON file, and the exit code
of the repro protocol that goes with it.

Standard library only, as `worker_main.py`, which runs it from the same folder.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

EXIT_ERROR = 2  # exit codes of the repro protocol
_EXIT = {"passed": 0, "regressed": 1, "untestable": 125}


def write_json(path: str, obj: Any) -> None:
    """As a script's `json.dump` writes it (NaN as a token, which the judge makes null),
    numpy and torch scalars (`np.float32`, 0-d tensors) as the numbers they hold."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, default=_scalar)
    os.replace(tmp, path)


def _scalar(value: Any) -> Any:
    plain = value.item() if callable(getattr(value, "item", None)) else None
    if isinstance(plain, int | float | bool | str):
        return plain
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def exit_of(result: Any) -> int:
    """The exit code `_repro.main` gives `result`, said on stderr as it says it."""
    if isinstance(result, dict):
        status = result.get("status")
        print(f"{result.get('repro')}: {status}", file=sys.stderr)
        return _EXIT.get(str(status), EXIT_ERROR)
    # As `_repro.main` says it: a `run()` that forgot its `return`.
    print(f"error: run() returned {type(result).__name__}, not a result dict", file=sys.stderr)
    return EXIT_ERROR


def untestable(exc: BaseException, module: Any, params: Any) -> dict[str, Any] | None:
    """`raise _repro.Untestable("no GPU")` straight from `run()`, outside `_repro.execute`:
    the result `_repro.main` writes for it (untestable, with its message, made by the
    repro's own `_repro`), or None for any other exception. Recorded as an error before,
    a CPU host showed such cells red, where "cannot be tested here" was meant."""
    helper = sys.modules.get(type(exc).__module__)
    if type(exc).__name__ != "Untestable" or module is None or helper is None:
        return None
    try:
        name = getattr(module, "NAME", None) or module.__name__
        cell = helper.Recorder(str(name), dict(params or {}))
        result: dict[str, Any] = cell.result("untestable", str(exc) or "untestable here")
    except Exception:  # not the _repro this worker knows: an error, as any exception
        return None
    return result
