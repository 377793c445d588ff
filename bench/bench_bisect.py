"""Bisection cost against the log bound, on synthetic in-memory histories (no I/O).

    python bench/bench_bisect.py --out bench/results.json

For N candidates (200, 1000, 10000) and K points per round (1, 2, 4), many random
boundary positions are bisected with the pure `Bisector`; the evaluations and rounds are
compared with the ideal ceil(log_{K+1}(N)) rounds (K = 1: ceil(log2 N) evaluations), once
with every candidate testable and once with 5% of them skipped (untestable / broken
builds), where extra evaluations are expected. Results are merged into the JSON file under
the key "bisect", with the machine they were measured on.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import machine, merge_into

from repromatrix.bisect import Bisector, OutcomeKind, Verdict, log_bound, run

SIZES = (200, 1000, 10_000)
POINTS = (1, 2, 4)
TRIALS = 300
SKIP_RATE = 0.05


def one(n: int, k: int, first_new: int, skips: frozenset[int]) -> tuple[int, int, bool]:
    """(evaluations, rounds, exact answer found) for one boundary."""

    def evaluate(points: Sequence[int]) -> list[Verdict]:
        return [
            Verdict.SKIP if p in skips else (Verdict.NEW if p >= first_new else Verdict.OLD)
            for p in points
        ]

    outcome, trace = run(Bisector(n), evaluate, k=k)
    assert first_new in outcome.suspects, (n, k, first_new, outcome)
    return trace.evaluations, len(trace.rounds), outcome.kind is OutcomeKind.FOUND


def case(n: int, k: int, *, trials: int, skip_rate: float, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    evals: list[int] = []
    rounds: list[int] = []
    exact = 0
    t0 = time.perf_counter()
    for _ in range(trials):
        first_new = rng.randrange(1, n)
        interior = range(1, n - 1)
        skips = frozenset(i for i in interior if rng.random() < skip_rate)
        e, r, found = one(n, k, first_new, skips)
        evals.append(e)
        rounds.append(r)
        exact += found
    seconds = time.perf_counter() - t0
    bound = log_bound(n, k)
    return {
        "n": n,
        "k": k,
        "skip_rate": skip_rate,
        "trials": trials,
        # Ideal: ceil(log_{k+1} n) rounds; the two ends cost one round more when k = 1.
        "log_bound_rounds": bound,
        "rounds_mean": round(statistics.fmean(rounds), 3),
        "rounds_max": max(rounds),
        "evaluations_mean": round(statistics.fmean(evals), 3),
        "evaluations_max": max(evals),
        "evaluations_bound_k1": log_bound(n, 1) + 2,
        "within_bound_plus_3": all(r <= bound + 3 for r in rounds),
        "exact_fraction": round(exact / trials, 4),
        "ms_per_bisection": round(1000 * seconds / trials, 3),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench/results.json"))
    ap.add_argument("--trials", type=int, default=TRIALS)
    ap.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    ap.add_argument("--points", type=int, nargs="*", default=list(POINTS))
    args = ap.parse_args()
    runs: list[dict[str, Any]] = []
    print(f"{'N':>6} {'K':>2} {'skip':>5} {'bound':>5} {'rounds':>13} {'evaluations':>15}")
    for skip_rate in (0.0, SKIP_RATE):
        for n in args.sizes:
            for k in args.points:
                seed = n * 100 + k * 10 + int(skip_rate * 100)
                r = case(n, k, trials=args.trials, skip_rate=skip_rate, seed=seed)
                runs.append(r)
                print(
                    f"{n:>6} {k:>2} {skip_rate:>5.2f} {r['log_bound_rounds']:>5} "
                    f"{r['rounds_mean']:>6.2f} (max {r['rounds_max']:>2}) "
                    f"{r['evaluations_mean']:>7.2f} (max {r['evaluations_max']:>3})"
                )
    result = {
        "machine": machine(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "note": "pure Bisector on synthetic histories; rounds include the round(s) that "
        "check the two ends",
        "runs": runs,
    }
    merge_into(args.out, "bisect", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
