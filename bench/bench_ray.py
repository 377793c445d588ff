"""Per-cell cost of `--executor ray` against the local executor, on no-op cells.

    python bench/bench_ray.py --out bench/results.json

A local Ray cluster (a head and one `repromatrix ray-node`) on this machine. For each
executor, whole `repromatrix run` processes of 50 no-op cells (`--jobs 1`, `--rerun`, warm
caches), interleaved. The per-cell cost is the span from the first cell's start to the
last cell's end (the records' millisecond stamps) over 50: what a run pays once (start-up,
connecting to the cluster) is left out, as the whole-process times beside it show.
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


def _matrix(path: Path, cells: int) -> Path:
    lines = ["schema: 1", "repros:"]
    for i in range(cells):
        lines.append(f"  c{i:02d}: {{script: {SLEEP}, gpus: [cpu], params: {{i: {i}}}}}")
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
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    ray_cli = str(Path(sys.executable).parent / "ray")
    token = secrets.token_hex(6)
    env = {**os.environ, "REPROMATRIX_BENCH_RAY": token}
    env.pop("RAY_ADDRESS", None)
    address = f"127.0.0.1:{_port()}"
    with workdir("bench-ray-") as tmp:
        work = Path(tmp)
        one, fifty = _matrix(work / "one.yaml", 1), _matrix(work / "fifty.yaml", 50)
        subprocess.run(
            [ray_cli, "start", "--head", f"--port={address.rsplit(':', 1)[1]}", "--num-cpus=0",
             "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats"],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        try:
            subprocess.run(
                [sys.executable, "-m", "repromatrix", "--matrix", str(one), "ray-node",
                 "--address", address, "--cache", str(work / "node")],
                env=env, check=True, capture_output=True,
            )  # fmt: skip

            def run(matrix: Path, *extra: str) -> tuple[float, float]:
                """(whole process, first cell start to last cell end) in seconds."""
                results = work / f"results-{time.monotonic_ns()}"
                start = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-m", "repromatrix", "--matrix", str(matrix), "run",
                     "--jobs", "1", "--rerun", "--no-progress", "--results",
                     str(results), "--cache", str(work / "cache"), *extra],
                    env=env, check=True, capture_output=True, cwd=work,
                )  # fmt: skip
                return time.perf_counter() - start, _span(results)

            ray = ("--executor", "ray", "--ray-address", address)
            run(one), run(one, *ray)  # warm environments, the node's worker, page cache
            variants: tuple[tuple[str, tuple[str, ...]], ...] = (
                ("local", ()),
                ("ray", ray),
                ("local_isolate", ("--isolate",)),
            )
            samples: dict[str, list[float]] = {k: [] for k, _ in variants}
            walls: dict[str, list[float]] = {k: [] for k, _ in variants}
            for _ in range(args.rounds):
                for name, extra in variants:
                    wall, span = run(fifty, *extra)
                    walls[name].append(wall)
                    samples[name].append(span)
        finally:
            from repromatrix import proc

            proc.sweep("REPROMATRIX_BENCH_RAY", token)
    med = {k: statistics.median(v) for k, v in samples.items()}
    local_cell, ray_cell = med["local"] / 50, med["ray"] / 50
    result: dict[str, Any] = {
        "machine": machine(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cluster": "local: a head and one ray-node, 50 no-op CPU cells, --jobs 1",
        "rounds": args.rounds,
        "span_samples_s": {k: [round(x, 3) for x in v] for k, v in samples.items()},
        "process_wall_median_s": {k: round(statistics.median(v), 3) for k, v in walls.items()},
        "per_cell_ms": {k: round(v / 50 * 1000, 1) for k, v in med.items()},
        "ratio_vs_local_isolate": round(ray_cell / (med["local_isolate"] / 50), 3),
        "ratio": round(ray_cell / local_cell, 3),
        "target_ratio": TARGET,
        "meets_target": ray_cell / local_cell <= TARGET,
    }
    merge_into(args.out, "ray", result)
    print(
        f"per cell (ms): {result['per_cell_ms']}; ray/local {result['ratio']}x, "
        f"ray/local --isolate {result['ratio_vs_local_isolate']}x; whole processes: "
        f"{result['process_wall_median_s']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
