"""Bisection cost against the log bound, on synthetic in-memory histories (no I/O).

    python bench/bench_bisect.py --out bench/results.json

For N candidates (200, 1000, 10000) and K points per round (1, 2, 4), many random
boundary positions are bisected with the pure `Bisector`; the evaluations and rounds are
compared with the ideal ceil(log_{K+1}(N)) rounds (K = 1: ceil(log2 N) evaluations), once
with every candidate testable and once with 5% of them skipped (untestable / broken
builds), where extra evaluations are expected.

Flaky repros (`flaky_runs`): a repro wrong 20% of the time, on old commits ("false new":
a false "regressed" on good commits when hunting a regression) or on new ones, bisected
20 times per case (seeded), trusting (the default: one run per commit until verdicts
contradict) and calibrated (--calibrate 5); wrong answers, answers not given, evaluations
and rounds against the stable repro's. Merges (`dag_runs`): the issue's history, an
80-commit branch forked after m20 and merged by m31 into a 40-commit main line, every
culprit. `fla`: the published find-fix bisect replayed on an equivalent linear history of
1821 candidates. Results are merged into the JSON file under the key "bisect", with the
machine they were measured on.
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

from repromatrix.bisect import Bisector, Mode, OutcomeKind, Policy, Verdict, log_bound, run
from repromatrix.dag import Dag

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


FLAKY_SIZES = (200, 1000)
FLAKY_TRIALS = 20
RATE = 0.2


def flaky_case(
    n: int, k: int, *, false_new: float, false_old: float, calibrate: int, trials: int
) -> dict[str, Any]:
    """Seeded bisections of a repro that lies at the given rates."""
    wrong = unanswered = calibrated = 0
    evals: list[int] = []
    rounds: list[int] = []
    confidences: list[float] = []
    t0 = time.perf_counter()
    for seed in range(trials):
        rng = random.Random(n * 1000 + k * 100 + seed)
        first_new = rng.randrange(1, n)

        def evaluate(
            points: Sequence[int], first_new: int = first_new, rng: random.Random = rng
        ) -> list[Verdict]:
            out = []
            for p in points:
                new = p >= first_new
                lie = rng.random() < (false_old if new else false_new)
                out.append(Verdict.NEW if new != lie else Verdict.OLD)
            return out

        outcome, trace = run(Bisector(n, policy=Policy(calibrate=calibrate)), evaluate, k=k)
        if outcome.kind is not OutcomeKind.FOUND:
            unanswered += 1
        elif outcome.first_new != first_new:
            wrong += 1
        calibrated += outcome.mode is Mode.CALIBRATED
        if outcome.confidence is not None:
            confidences.append(outcome.confidence)
        evals.append(trace.evaluations)
        rounds.append(len(trace.rounds))
    return {
        "n": n,
        "k": k,
        "false_new": false_new,
        "false_old": false_old,
        "calibrate": calibrate,
        "trials": trials,
        "wrong_answers": wrong,
        "not_answered": unanswered,
        "ended_calibrated": calibrated,
        "confidence_min": round(min(confidences), 4) if confidences else None,
        "evaluations_mean": round(statistics.fmean(evals), 2),
        "evaluations_max": max(evals),
        "rounds_mean": round(statistics.fmean(rounds), 2),
        "ms_per_bisection": round(1000 * (time.perf_counter() - t0) / trials, 1),
    }


def flaky_runs(trials: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    print(
        f"\n{'N':>6} {'K':>2} {'false new/old':>13} {'calib':>5} {'wrong':>5} "
        f"{'none':>4} {'evals':>13} {'rounds':>6} {'x stable':>8}"
    )
    for n in FLAKY_SIZES:
        for k in (1, 4):
            stable = flaky_case(n, k, false_new=0, false_old=0, calibrate=0, trials=trials)
            for false_new, false_old in ((0.0, 0.0), (RATE, 0.0), (0.0, RATE)):
                for calibrate in (0, 5):
                    r = flaky_case(
                        n,
                        k,
                        false_new=false_new,
                        false_old=false_old,
                        calibrate=calibrate,
                        trials=trials,
                    )
                    r["evaluations_vs_stable"] = round(
                        r["evaluations_mean"] / stable["evaluations_mean"], 2
                    )
                    out.append(r)
                    print(
                        f"{n:>6} {k:>2} {false_new:>6.1f}/{false_old:<6.1f} {calibrate:>5} "
                        f"{r['wrong_answers']:>5} {r['not_answered']:>4} "
                        f"{r['evaluations_mean']:>6.1f} (max {r['evaluations_max']:>2}) "
                        f"{r['rounds_mean']:>6.1f} {r['evaluations_vs_stable']:>8.2f}"
                    )
    return out


def merged_history() -> Dag:
    """The issue's history: m0..m39, a branch b0..b79 forked after m20, merged by m31."""
    order = [f"m{i}" for i in range(31)] + [f"b{j}" for j in range(80)]
    order += [f"m{i}" for i in range(31, 40)]
    parents = {f"m{i}": [f"m{i - 1}"] for i in range(1, 40)}
    parents |= {f"b{j}": [f"b{j - 1}" if j else "m20"] for j in range(80)}
    parents["m31"].append("b79")
    return Dag.from_parents(order, parents)


def dag_runs() -> list[dict[str, Any]]:
    dag = merged_history()
    out = []
    for k in (1, 4):
        evals, rounds, exact = [], [], 0
        for culprit in range(1, dag.n):

            def evaluate(points: Sequence[int], culprit: int = culprit) -> list[Verdict]:
                return [Verdict.NEW if dag.is_ancestor(culprit, p) else Verdict.OLD for p in points]

            outcome, trace = run(Bisector(dag), evaluate, k=k)
            exact += outcome.first_new == culprit
            evals.append(trace.evaluations)
            rounds.append(len(trace.rounds))
        out.append(
            {
                "history": "40 main-line commits, 80-commit branch forked after m20, merged by m31",
                "candidates": dag.n,
                "k": k,
                "culprits": dag.n - 1,
                "exact_fraction": round(exact / (dag.n - 1), 4),
                "evaluations_mean": round(statistics.fmean(evals), 2),
                "evaluations_max": max(evals),
                "rounds_max": max(rounds),
                # Ideal halving plus the ends; no DAG bisection always reaches it (git bisect
                # run needs up to 8 here: tests/integration/test_bisect_merges.py).
                "log2_bound_plus_ends": log_bound(dag.n - 1, 1) + 2,
            }
        )
        print(f"merged history K={k}: {out[-1]}")
    return out


def fla() -> dict[str, Any]:
    """The published find-fix bisect (1821 candidates, fix at 374, K = 4) replayed."""

    def evaluate(points: Sequence[int]) -> list[Verdict]:
        return [Verdict.NEW if p >= 374 else Verdict.OLD for p in points]

    outcome, trace = run(Bisector(1821), evaluate, k=4)
    result = {
        "candidates": 1821,
        "k": 4,
        "first_new": outcome.first_new,
        "rounds": [list(r) for r in trace.rounds],
        "evaluations": trace.evaluations,
    }
    print(f"fla find-fix replay: {len(trace.rounds)} rounds, {trace.evaluations} evaluations")
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench/results.json"))
    ap.add_argument("--trials", type=int, default=TRIALS)
    ap.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    ap.add_argument("--points", type=int, nargs="*", default=list(POINTS))
    ap.add_argument("--flaky-trials", type=int, default=FLAKY_TRIALS)
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
        "flaky_note": "20% false verdicts; calibrate 0 = trusting (the default), 5 = "
        "--calibrate 5; wrong_answers = a FOUND naming another commit; not_answered = "
        "inconclusive or an end judged wrong; evaluations_vs_stable = mean evaluations over "
        "the trusting stable repro's",
        "flaky_runs": flaky_runs(args.flaky_trials),
        "dag_runs": dag_runs(),
        "fla_find_fix_replay": fla(),
    }
    merge_into(args.out, "bisect", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
