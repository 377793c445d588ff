"""Persistent workers on a GPU: the harness against the repro's own run() in one process.

    python bench/bench_gpu.py --find-links DIR [--no-index] --out gpu.json

On a host with an NVIDIA GPU of a type in matrix.yaml and flashinfer 0.5.3 in DIR:

1. warm-up: one decode cell builds the environment and JIT-compiles its kernels (timed,
   not compared);
2. A: `repromatrix run` of 50 decode cells of that environment (seeds 1000..1049) with a
   `cuda_fault` cell (a device-side assert, a sticky CUDA error) in the middle — the whole
   process, wall time;
3. B: the same 50 `run(params)` calls in one process of the same environment, each
   timed (the first call pays torch's import and CUDA's start-up, as the harness's worker
   does).

Target: A ≤ 1.3 × sum(B). The fault's record must be an error, its worker replaced, and
every decode cell (those after it included) must pass. Results as JSON (with the GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import scratch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DECODE = ROOT / "repros" / "flashinfer_decode_tensor_cores.py"
FAULT = HERE / "repros" / "cuda_fault.py"
SEEDED = HERE / "repros" / "cuda_seeded.py"
SEEDED_CELLS = ("seeded_1", "seeded_2", "seeded_3")
SEEDS = range(1000, 1050)
TARGET = 1.3

MATRIX_HEAD = """\
schema: 1
defaults: {timeout: 900}
gpus:
  A100: {compute_capability: "8.0", smi_names: ["NVIDIA A100-SXM4-80GB"]}
  H100: {compute_capability: "9.0", smi_names: ["NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe"]}
  H200: {compute_capability: "9.0", smi_names: ["NVIDIA H200", "NVIDIA H200 NVL"]}
libraries:
  flashinfer:
    pypi: flashinfer-python
    import: flashinfer
    versions:
      - pypi: "0.5.3"
        requires: ["apache-tvm-ffi==0.1.3", "nvidia-cudnn-frontend==1.16.0", "tqdm"]
repros:
"""


def _cell(name: str, script: Path, params: str) -> str:
    return (
        f"  {name}: {{script: {script}, gpus: [A100, H100, H200], "
        f"libraries: {{flashinfer: all}}, params: {params}}}\n"
    )


def write_matrix(path: Path) -> Path:
    text = MATRIX_HEAD + _cell("warm", DECODE, "{seed: 7}")
    for n, seed in enumerate(SEEDS):
        if n == len(SEEDS) // 2:
            text += _cell("fault", FAULT, "{mode: assert}")
        text += _cell(f"decode_{seed}", DECODE, f"{{seed: {seed}}}")
    for n, name in enumerate(SEEDED_CELLS, 1):
        text += f"  {name}: {{script: {SEEDED}, gpus: [A100, H100, H200], params: {{n: {n}}}}}\n"
    path.write_text(text)
    return path


def harness(
    work: Path, matrix: Path, repros: list[str], source: list[str], results: str = "results"
) -> float:
    argv = [sys.executable, "-m", "repromatrix", "--matrix", str(matrix), "run",
            "--executor", "local", "--no-progress", "--results", str(work / results),
            "--cache", str(work / "cache"), *source]  # fmt: skip
    for name in repros:
        argv += ["--repro", name]
    start = time.perf_counter()
    subprocess.run(argv, cwd=work, check=True)
    return time.perf_counter() - start


IN_PROCESS = r"""
import importlib.util, json, sys, time
spec = importlib.util.spec_from_file_location("decode", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules["decode"] = module
spec.loader.exec_module(module)
times, statuses = [], []
for seed in json.loads(sys.argv[2]):
    start = time.perf_counter()
    result = module.run({"seed": seed})
    times.append(time.perf_counter() - start)
    statuses.append(result["status"])
print(json.dumps({"times": times, "statuses": statuses}))
"""


def in_process(work: Path, env_key: str, gpu_uuid: str) -> dict[str, Any]:
    """B: the 50 run() calls in one process of the environment the harness built."""
    from repromatrix.executors.cellenv import cache_variables

    root = work / "cache" / "envs" / env_key
    env = dict(os.environ)
    env.update(cache_variables(home=str(root / "home"), cache=str(root / "cache")))
    env["PYTHONPATH"] = os.pathsep.join([str(root / "site"), env.get("PYTHONPATH", "")])
    env["CUDA_VISIBLE_DEVICES"] = gpu_uuid
    out = subprocess.run(
        [sys.executable, "-c", IN_PROCESS, str(DECODE), json.dumps(list(SEEDS))],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    data: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return data


def generators(work: Path, matrix: Path) -> dict[str, Any]:
    """Three cells of `cuda_seeded` in one worker, and the same three under --isolate (a
    process each): every record must hold the same draws, GPU and CPU, as a process of
    the script's own draws after its import seeded torch."""
    from repromatrix.store import ResultStore

    harness(work, matrix, list(SEEDED_CELLS), [], results="seeded-worker")
    harness(work, matrix, list(SEEDED_CELLS), ["--isolate"], results="seeded-isolate")
    draws: dict[str, list[dict[str, float | None]]] = {}
    pids: dict[str, list[str]] = {}
    for mode in ("worker", "isolate"):
        records = ResultStore(work / f"seeded-{mode}").load().results
        ran = sorted((r for r in records if r.status.value != "not_run"), key=lambda r: r.repro)
        draws[mode] = [dict(r.metrics) for r in ran]
        pids[mode] = [str(r.provenance["harness"].get("worker", {}).get("pid")) for r in ran]
    every = draws["worker"] + draws["isolate"]
    return {
        "cells": {mode: len(d) for mode, d in draws.items()},
        "draws": draws,
        # One pid for the worker's three: the check means something only in one process.
        "worker_pids": pids,
        "all_equal": len(every) == 2 * len(SEEDED_CELLS) and all(d == every[0] for d in every),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--find-links", default="")
    parser.add_argument("--no-index", action="store_true")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    source = (["--find-links", args.find_links] if args.find_links else []) + (
        ["--no-index"] if args.no_index else []
    )
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-gpu-", dir=scratch()))
    work.mkdir(parents=True, exist_ok=True)
    matrix = write_matrix(work / "matrix.yaml")
    warm_s = harness(work, matrix, ["warm"], source)
    names = [f"decode_{s}" for s in SEEDS] + ["fault"]
    a_wall = harness(work, matrix, names, source)

    from repromatrix.store import ResultStore

    records = [
        r
        for r in ResultStore(work / "results").load().results
        if r.repro != "warm" and r.status.value != "not_run"  # other GPU types' notes
    ]
    decode = [r for r in records if r.repro.startswith("decode_")]
    fault = next(r for r in records if r.repro == "fault")
    env_key = str(decode[0].provenance["harness"]["env"])
    gpu_uuid = str(decode[0].provenance["harness"]["gpu"]["uuid"])
    b = in_process(work, env_key, gpu_uuid)
    b_sum = sum(b["times"])
    seeded = generators(work, matrix)
    after = [r for r in decode if r.started > fault.finished]
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "gpu": decode[0].provenance.get("gpu"),
        "driver": decode[0].provenance.get("driver"),
        "torch": decode[0].provenance.get("torch"),
        "cells": len(decode),
        "warmup_s": round(warm_s, 2),
        "harness_wall_s": round(a_wall, 2),
        "in_process_run_sum_s": round(b_sum, 2),
        "in_process_first_call_s": round(b["times"][0], 2),
        "in_process_median_call_s": round(sorted(b["times"])[len(b["times"]) // 2], 3),
        "ratio": round(a_wall / b_sum, 3),
        "target_ratio": TARGET,
        "meets_target": a_wall / b_sum <= TARGET,
        "decode_statuses": sorted({r.status.value for r in decode}),
        "in_process_statuses": sorted(set(b["statuses"])),
        "fault": {
            "status": fault.status.value,
            "reason": fault.reason[:300],
            "worker": fault.provenance["harness"].get("worker"),
        },
        "cells_after_the_fault": len(after),
        "cells_after_the_fault_passed": sum(r.status.value == "passed" for r in after),
        "generators_per_cell": seeded,
        # Why each worker that ended did (null for a worker still reusable): the fault's
        # alone is due; any other is a check that retired a worker the cell left clean.
        "workers_retired": {
            r.repro: r.provenance["harness"].get("worker", {}).get("retired")
            for r in records
            if r.provenance["harness"].get("worker", {}).get("retired")
        },
        "workers_seen": sorted(
            {str(r.provenance["harness"].get("worker", {}).get("pid")) for r in records}
        ),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
