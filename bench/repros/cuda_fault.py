"""A benchmark repro that breaks its CUDA context: an out-of-bounds index fires a
device-side assert, a sticky error after which every CUDA call of the process fails.

In the GPU benchmark it sits in the middle of 50 cells of one environment: its own record
is an error, its worker must be replaced, and the cells after it must still pass.
"""

from __future__ import annotations

import json
import sys
from typing import Any

NAME = "cuda_fault"
DEFAULT_PARAMS: dict[str, Any] = {"mode": "assert"}


def run(params: dict[str, Any]) -> dict[str, Any]:
    import torch

    status, reason = "error", "the device-side assert did not fire"
    try:
        x = torch.zeros(4, device="cuda")
        index = torch.tensor([1 << 20], device="cuda")
        x[index] += 1  # out of bounds on the device
        torch.cuda.synchronize()
    except RuntimeError as exc:
        status, reason = "error", f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
    return {
        "schema": 1,
        "repro": NAME,
        "status": status,
        "reason": reason,
        "metrics": {},
        "thresholds": {},
        "provenance": {"torch": torch.__version__},
    }


if __name__ == "__main__":
    args = dict(zip(sys.argv[1::2], sys.argv[2::2], strict=False))
    result = run(json.loads(args.get("--params", "{}")))
    with open(args["--out"], "w") as f:
        json.dump(result, f)
    sys.exit(2)
