"""A benchmark repro that seeds torch at import and draws from the GPU's generator in
`run()`: a process of its own draws the same numbers in every cell, so every cell of it
in a persistent worker must too, from the GPU's generator as from the CPU's (the harness
seeds 0 before each cell, and torch's seeding reaches the GPU generators).

In the GPU benchmark three cells of it run in one worker and three under --isolate; the
six records' draws must be equal.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import torch

NAME = "cuda_seeded"
DEFAULT_PARAMS: dict[str, Any] = {"n": 0}

torch.manual_seed(1234)  # lazily seeds the GPU generators too: CUDA is not started here


def run(params: dict[str, Any]) -> dict[str, Any]:
    gpu = torch.rand(3, device="cuda").tolist()
    cpu = torch.rand(3).tolist()
    metrics = {f"gpu_{i}": v for i, v in enumerate(gpu)}
    metrics.update({f"cpu_{i}": v for i, v in enumerate(cpu)})
    return {
        "schema": 1,
        "repro": NAME,
        "status": "passed",
        "reason": f"cell {params.get('n')}: drew {gpu[0]:.6f} on the GPU",
        "metrics": metrics,
        "thresholds": {},
        "provenance": {"torch": torch.__version__},
    }


if __name__ == "__main__":
    args = dict(zip(sys.argv[1::2], sys.argv[2::2], strict=False))
    result = run(json.loads(args.get("--params", "{}")))
    with open(args["--out"], "w") as f:
        json.dump(result, f)
