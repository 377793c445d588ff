"""Per-cell cost of `--executor ray` against the local executor, on no-op cells.

    python bench/bench_ray.py --out bench/results.json

A local Ray cluster (a head and one `repromatrix ray-node`) on this machine. For each
executor, whole `repromatrix run` processes of 50 no-op cells (`--jobs 1`, `--rerun`, warm
caches), interleaved. The per-cell cost is the span from the first cell's start to the
last cell's end (the records' millisecond stamps) over 50: what a run pays once (start-up,
connecting to the cluster) is left out, as the whole-process times beside it show.

Two kinds of cells: `cpu` cells, and cells of a GPU type (one fake H100, given to the node
and to the local host through REPROMATRIX_FAKE_GPUS: the cells do not touch it). Under Ray
each slot is an actor holding its CPU or its share of a GPU, and the slot keeps its next
cells submitted to it while one runs. The ratio is the median over rounds of ray / local
within a round (the runs of a round are side by side).
Target: Ray ≤ 1.2× local.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from _common import machine, merge_into, workdir

HERE = Path(__file__).resolve().parent
SLEEP = HERE / "repros" / "sleep.py"
TARGET = 1.2


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: One fake H100 (nvidia-smi CSV): the node's, and the local host's for the local runs.
FAKE_H100 = "0, {smi}, GPU-{host}-0, 9.0"
SMI = "NVIDIA H100 80GB HBM3"


def _matrix(path: Path, cells: int, gpu: str = "cpu") -> Path:
    lines = ["schema: 1", "gpus:", f'  H100: {{compute_capability: "9.0", smi_names: ["{SMI}"]}}']
    lines.append("repros:")
    for i in range(cells):
        lines.append(f"  c{i:02d}: {{script: {SLEEP}, gpus: [{gpu}], params: {{i: {i}}}}}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _span(results: Path) -> float:
    from repromatrix.store import ResultStore

    records = ResultStore(results).load().results
    start = min(datetime.fromisoformat(r.started) for r in records)
    end = max(datetime.fromisoformat(r.finished) for r in records)
    return (end - start).total_seconds()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    ray_cli = str(Path(sys.executable).parent / "ray")
    token = secrets.token_hex(6)
    env = {**os.environ, "REPROMATRIX_BENCH_RAY": token}
    env.pop("RAY_ADDRESS", None)
    address = f"127.0.0.1:{_port()}"
    with workdir("bench-ray-") as tmp:
        work = Path(tmp)
        one, fifty = _matrix(work / "one.yaml", 1), _matrix(work / "fifty.yaml", 50)
        gpu_one = _matrix(work / "gpu-one.yaml", 1, "H100")
        gpu_fifty = _matrix(work / "gpu-fifty.yaml", 50, "H100")
        subprocess.run(
            [ray_cli, "start", "--head", f"--port={address.rsplit(':', 1)[1]}", "--num-cpus=0",
             "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats"],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        try:
            subprocess.run(
                [sys.executable, "-m", "repromatrix", "--matrix", str(gpu_one), "ray-node",
                 "--address", address, "--cache", str(work / "node")],
                env={**env, "REPROMATRIX_FAKE_GPUS": FAKE_H100.format(smi=SMI, host="node")},
                check=True, capture_output=True,
            )  # fmt: skip

            local_env = {**env, "REPROMATRIX_FAKE_GPUS": FAKE_H100.format(smi=SMI, host="local")}

            def run(matrix: Path, *extra: str) -> tuple[float, float]:
                """(whole process, first cell start to last cell end) in seconds."""
                results = work / f"results-{time.monotonic_ns()}"
                start = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-m", "repromatrix", "--matrix", str(matrix), "run",
                     "--jobs", "1", "--rerun", "--no-progress", "--results",
                     str(results), "--cache", str(work / "cache"), *extra],
                    env=local_env, check=True, capture_output=True, cwd=work,
                )  # fmt: skip
                return time.perf_counter() - start, _span(results)

            ray = ("--executor", "ray", "--ray-address", address)
            for warm in (one, gpu_one):  # environments, the node's worker, page cache
                run(warm), run(warm, *ray)
            variants: tuple[tuple[str, Path, tuple[str, ...]], ...] = (
                ("local", fifty, ()),
                ("ray", fifty, ray),
                ("local_isolate", fifty, ("--isolate",)),
                ("local_gpu", gpu_fifty, ()),
                ("ray_gpu", gpu_fifty, ray),
            )
            samples: dict[str, list[float]] = {k: [] for k, _, _ in variants}
            walls: dict[str, list[float]] = {k: [] for k, _, _ in variants}
            for _ in range(args.rounds):
                for name, matrix, extra in variants:
                    wall, span = run(matrix, *extra)
                    walls[name].append(wall)
                    samples[name].append(span)
        finally:
            from repromatrix import proctable

            proctable.sweep("REPROMATRIX_BENCH_RAY", token)
    med = {k: statistics.median(v) for k, v in samples.items()}
    local_cell, ray_cell = med["local"] / 50, med["ray"] / 50
    # Each round's runs are side by side: the ratio of a round is what drift on a shared
    # VM (seen: the local per-cell time doubling between rounds) leaves alone.
    paired = {
        kind: [r / b for r, b in zip(samples[ray], samples[base], strict=True)]
        for kind, ray, base in (("cpu", "ray", "local"), ("gpu", "ray_gpu", "local_gpu"))
    }
    cpu_ratio, gpu_ratio = (statistics.median(paired[k]) for k in ("cpu", "gpu"))
    result: dict[str, Any] = {
        "machine": machine(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cluster": "local: a head and one ray-node (one fake H100), 50 no-op cells, --jobs 1",
        "rounds": args.rounds,
        "span_samples_s": {k: [round(x, 3) for x in v] for k, v in samples.items()},
        "process_wall_median_s": {k: round(statistics.median(v), 3) for k, v in walls.items()},
        "per_cell_ms": {k: round(v / 50 * 1000, 1) for k, v in med.items()},
        "ratio_vs_local_isolate": round(ray_cell / (med["local_isolate"] / 50), 3),
        "ratio_of_medians": round(ray_cell / local_cell, 3),
        "ratio_of_medians_gpu_cells": round(med["ray_gpu"] / med["local_gpu"], 3),
        "paired_ratios": {k: [round(x, 3) for x in v] for k, v in paired.items()},
        "ratio": round(cpu_ratio, 3),
        "ratio_gpu_cells": round(gpu_ratio, 3),
        "ratio_is": "the median over rounds of ray / local in the same round",
        "target_ratio": TARGET,
        "meets_target": max(cpu_ratio, gpu_ratio) <= TARGET,
    }
    merge_into(args.out, "ray", result)
    print(
        f"per cell (ms): {result['per_cell_ms']}; ray/local {result['ratio']}x (CPU cells), "
        f"{result['ratio_gpu_cells']}x (GPU cells), "
        f"ray/local --isolate {result['ratio_vs_local_isolate']}x; whole processes: "
        f"{result['process_wall_median_s']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
