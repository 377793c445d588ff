"""A benchmark repro: a module with `run(params)` that sleeps `seconds` and passes.

With seconds 0 it is the no-op cell of the harness-overhead benchmark; with several
durations, the cells of the makespan benchmark.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

NAME = "sleep"
DEFAULT_PARAMS: dict[str, Any] = {"seconds": 0.0, "i": 0}


def run(params: dict[str, Any]) -> dict[str, Any]:
    p = {**DEFAULT_PARAMS, **params}
    time.sleep(float(p["seconds"]))
    return {
        "schema": 1,
        "repro": NAME,
        "status": "passed",
        "reason": f"slept {p['seconds']} s",
        "metrics": {"seconds": float(p["seconds"])},
        "thresholds": {},
        "provenance": {},
    }


if __name__ == "__main__":
    args = dict(zip(sys.argv[1::2], sys.argv[2::2], strict=False))
    result = run(json.loads(args.get("--params", "{}")))
    with open(args["--out"], "w") as f:
        json.dump(result, f)
