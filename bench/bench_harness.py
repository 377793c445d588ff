"""Harness cost and scheduling, measured as a user meets them: whole processes.

    python bench/bench_harness.py --out bench/results.json

1. Overhead: 50 no-op cells through `repromatrix run --jobs 1` (one process: start-up,
   planning, a persistent worker, 50 records) against 50 bare `python sleep.py --out X`
   spawns of the same script, interleaved A/B, median of the pairs. Target ≤ 1.2×. The
   same with `--isolate` (a process per cell) is recorded for comparison.
2. Makespan: cells of uneven durations, listed in three orders (as written, longest last,
   shuffled), at K = 2 and 4 slots (`--jobs K`), after one run taught the store their
   durations. The makespan is the span from the first cell's start to the last cell's
   end (from the records, millisecond stamps), against the lower bound
   max(total / K, longest). Target ≤ 1.1×. The whole process's wall time (start-up,
   planning and workers included) is recorded beside it.
3. `repromatrix --help` against `python -c pass`, interleaved, median. Target ≤ 0.15 s.

Results go under "harness" in the JSON file, with the machine.
"""

from __future__ import annotations

import argparse
import random
import shutil
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
CELLS = 50
DURATIONS = [4.8, 4.2, 3.5, 3.2, 2.9, 2.6, 2.2, 1.9, 1.6, 1.4, 1.3, 1.1, 1.0, 0.8, 0.6, 0.5]
OVERHEAD_TARGET, MAKESPAN_TARGET, HELP_TARGET_S = 1.2, 1.1, 0.15


def _repromatrix(*args: str, cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "repromatrix", *args],
        cwd=cwd,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def _line(i: int, seconds: float) -> str:
    body = f"script: {SLEEP}, gpus: [cpu], params: {{seconds: {seconds}, i: {i}}}"
    return f"  c{i:02d}: {{{body}}}"


def _matrix(path: Path, seconds: list[float]) -> Path:
    lines = ["schema: 1", "defaults: {timeout: 120}", "repros:"]
    for i, s in enumerate(seconds):
        lines.append(_line(i, s))
    path.write_text("\n".join(lines) + "\n")
    return path


def overhead(work: Path, pairs: int) -> dict[str, Any]:
    matrix = _matrix(work / "noop.yaml", [0.0] * CELLS)
    out = work / "x.json"

    def bare() -> float:
        start = time.perf_counter()
        for _ in range(CELLS):
            subprocess.run([sys.executable, str(SLEEP), "--out", str(out)], check=True)
        return time.perf_counter() - start

    def harness(*extra: str) -> float:
        results = work / f"results-{time.monotonic_ns()}"
        return _repromatrix("--matrix", str(matrix), "run", "--jobs", "1", "--no-progress",
                            "--results", str(results), "--cache", str(work / "cache"), *extra,
                            cwd=work)  # fmt: skip

    harness()  # warm the bare environment and the page cache
    samples: dict[str, list[float]] = {"bare": [], "worker": [], "isolate": []}
    for _ in range(pairs):  # interleaved, so load changes hit every variant alike
        samples["bare"].append(bare())
        samples["worker"].append(harness())
        samples["isolate"].append(harness("--isolate"))
    med = {k: statistics.median(v) for k, v in samples.items()}
    return {
        "cells": CELLS,
        "pairs": pairs,
        "median_s": {k: round(v, 3) for k, v in med.items()},
        "samples_s": {k: [round(x, 3) for x in v] for k, v in samples.items()},
        "ratio_worker_vs_bare": round(med["worker"] / med["bare"], 3),
        "ratio_isolate_vs_bare": round(med["isolate"] / med["bare"], 3),
        "target_ratio": OVERHEAD_TARGET,
        "meets_target": med["worker"] / med["bare"] <= OVERHEAD_TARGET,
    }


def makespan(work: Path) -> dict[str, Any]:
    total, longest = sum(DURATIONS), max(DURATIONS)
    shuffled = DURATIONS[:]
    random.Random(7).shuffle(shuffled)
    orders = {"as_written": DURATIONS, "longest_last": sorted(DURATIONS), "shuffled": shuffled}
    results = work / "makespan-results"
    cache = work / "makespan-cache"
    # Teach the store the durations (the scheduler orders by earlier records of each key);
    # each ordered run then starts from a copy of what was learnt.
    learn = _matrix(work / "learn.yaml", DURATIONS)
    _repromatrix("--matrix", str(learn), "run", "--jobs", "4", "--no-progress",
                 "--results", str(results), "--cache", str(cache), cwd=work)  # fmt: skip
    learnt = {r.run_id for r in _records(results)}
    out: dict[str, Any] = {"durations_s": DURATIONS, "by_k": {}}
    for k in (2, 4):
        bound = max(total / k, longest)
        walls: dict[str, float] = {}
        spans: dict[str, float] = {}
        for name, seconds in orders.items():
            # Same cells (same keys: the params carry each cell's index), another order.
            matrix = work / f"order-{name}.yaml"
            lines = ["schema: 1", "defaults: {timeout: 120}", "repros:"]
            index = {s: i for i, s in enumerate(DURATIONS)}
            for s in seconds:
                i = index[s]
                lines.append(_line(i, s))
            matrix.write_text("\n".join(lines) + "\n")
            run_results = work / f"results-{k}-{name}"
            shutil.copytree(results, run_results)
            walls[name] = _repromatrix(
                "--matrix", str(matrix), "run", "--jobs", str(k), "--rerun", "--no-progress",
                "--results", str(run_results), "--cache", str(cache), cwd=work,
            )  # fmt: skip
            spans[name] = _span(run_results, learnt)
        worst = max(spans.values())
        out["by_k"][str(k)] = {
            "lower_bound_s": round(bound, 3),
            "makespan_s": {n: round(w, 3) for n, w in spans.items()},
            "process_wall_s": {n: round(w, 3) for n, w in walls.items()},
            "worst_ratio": round(worst / bound, 3),
            "worst_process_ratio": round(max(walls.values()) / bound, 3),
            "meets_target": worst / bound <= MAKESPAN_TARGET,
        }
    out["target_ratio"] = MAKESPAN_TARGET
    return out


def _records(results: Path) -> list[Any]:
    from repromatrix.store import ResultStore

    return list(ResultStore(results).load().results)


def _span(results: Path, learnt: set[str]) -> float:
    """First cell start to last cell end, from the records of the run (not the learnt)."""
    records = [r for r in _records(results) if r.run_id not in learnt]
    start = min(datetime.fromisoformat(r.started) for r in records)
    end = max(datetime.fromisoformat(r.finished) for r in records)
    return (end - start).total_seconds()


def help_time(rounds: int) -> dict[str, Any]:
    def timed(argv: list[str]) -> float:
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start

    bare, helped = [], []
    for _ in range(rounds):
        bare.append(timed([sys.executable, "-c", "pass"]))
        helped.append(timed([sys.executable, "-m", "repromatrix", "--help"]))
    return {
        "median_s": {
            "python_pass": round(statistics.median(bare), 4),
            "repromatrix_help": round(statistics.median(helped), 4),
        },
        "target_s": HELP_TARGET_S,
        "meets_target": statistics.median(helped) <= HELP_TARGET_S,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    with workdir("bench-harness-") as tmp:
        work = Path(tmp)
        result: dict[str, Any] = {
            "machine": machine(),
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "overhead": overhead(work, args.pairs),
            "makespan": makespan(work),
            "help": help_time(7),
        }
    result["machine_after"] = machine()["load_average"]
    merge_into(args.out, "harness", result)
    o: dict[str, Any] = result["overhead"]
    m: dict[str, Any] = result["makespan"]
    h: dict[str, Any] = result["help"]
    print(
        f"overhead: worker {o['ratio_worker_vs_bare']}x, isolate {o['ratio_isolate_vs_bare']}x "
        f"of bare spawns; makespan worst "
        + ", ".join(f"K={k}: {v['worst_ratio']}x" for k, v in m["by_k"].items())
        + f"; --help {h['median_s']['repromatrix_help']} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
