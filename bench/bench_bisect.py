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
and rounds against the stable repro's. Flaky only around the culprit (`near_culprit_runs`): both
ends stable, the commits within 1 or 3 of the culprit wrong 30% of the time either way (a
test that races with the change), --calibrate 5, K = 1 and 4, 20 seeds per case; wrong
answers, wrong answers stated at >= 99%, inconclusive ones. Merges (`dag_runs`): the
issue's history, an 80-commit branch forked after m20 and merged by m31 into a 40-commit
main line, every culprit. `fla`: the published find-fix bisect replayed on an equivalent
linear history of 1821 candidates. Results are merged into the JSON file under the key
"bisect", with the machine they were measured on. `--jobs N` runs the cases in N processes
(the counts are the same; each case's ms are its own process's wall time).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
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


@dataclass
class _Tally:
    """What seeded bisections of one case answered, and what they cost."""

    wrong: int = 0
    wrong_at_99: int = 0
    inconclusive: int = 0
    unanswered: int = 0
    calibrated: int = 0
    evals: list[int] = field(default_factory=list)
    rounds: list[int] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def add(self, outcome: Any, trace: Any, first_new: int) -> None:
        if outcome.kind is not OutcomeKind.FOUND:
            self.unanswered += 1
            self.inconclusive += outcome.kind is OutcomeKind.INCONCLUSIVE
        elif outcome.first_new != first_new:
            self.wrong += 1
            self.wrong_at_99 += outcome.confidence is not None and outcome.confidence >= 0.99
        self.calibrated += outcome.mode is Mode.CALIBRATED
        if outcome.confidence is not None:
            self.confidences.append(outcome.confidence)
        self.evals.append(trace.evaluations)
        self.rounds.append(len(trace.rounds))

    def fields(self, trials: int, *, near: bool) -> dict[str, Any]:
        """The entry's figures; `near` adds those of the near-culprit case."""
        extra = {"wrong_answers_at_99": self.wrong_at_99, "inconclusive": self.inconclusive}
        return {
            "wrong_answers": self.wrong,
            **(extra if near else {}),
            "not_answered": self.unanswered,
            "ended_calibrated": self.calibrated,
            "confidence_min": round(min(self.confidences), 4) if self.confidences else None,
            "evaluations_mean": round(statistics.fmean(self.evals), 2),
            "evaluations_max": max(self.evals),
            "rounds_mean": round(statistics.fmean(self.rounds), 2),
            "ms_per_bisection": round(1000 * (time.perf_counter() - self.started) / trials, 1),
        }


def flaky_case(
    n: int, k: int, *, false_new: float, false_old: float, calibrate: int, trials: int
) -> dict[str, Any]:
    """Seeded bisections of a repro that lies at the given rates."""
    tally = _Tally()
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
        tally.add(outcome, trace, first_new)
    return {
        "n": n,
        "k": k,
        "false_new": false_new,
        "false_old": false_old,
        "calibrate": calibrate,
        "trials": trials,
        **tally.fields(trials, near=False),
    }


def flaky_runs(trials: int, pool: Executor) -> Callable[[], list[dict[str, Any]]]:
    """Submits every case to `pool`; the returned function waits for them and prints."""
    futures: list[tuple[Future[dict[str, Any]], Future[dict[str, Any]]]] = []
    for n in FLAKY_SIZES:
        for k in (1, 4):
            stable = pool.submit(
                flaky_case, n, k, false_new=0, false_old=0, calibrate=0, trials=trials
            )
            for false_new, false_old in ((0.0, 0.0), (RATE, 0.0), (0.0, RATE)):
                for calibrate in (0, 5):
                    r = pool.submit(
                        flaky_case,
                        n,
                        k,
                        false_new=false_new,
                        false_old=false_old,
                        calibrate=calibrate,
                        trials=trials,
                    )
                    futures.append((stable, r))

    def collect() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        print(
            f"\n{'N':>6} {'K':>2} {'false new/old':>13} {'calib':>5} {'wrong':>5} "
            f"{'none':>4} {'evals':>13} {'rounds':>6} {'x stable':>8}"
        )
        for stable_future, future in futures:
            stable, r = stable_future.result(), future.result()
            r["evaluations_vs_stable"] = round(
                r["evaluations_mean"] / stable["evaluations_mean"], 2
            )
            out.append(r)
            print(
                f"{r['n']:>6} {r['k']:>2} {r['false_new']:>6.1f}/{r['false_old']:<6.1f} "
                f"{r['calibrate']:>5} {r['wrong_answers']:>5} {r['not_answered']:>4} "
                f"{r['evaluations_mean']:>6.1f} (max {r['evaluations_max']:>2}) "
                f"{r['rounds_mean']:>6.1f} {r['evaluations_vs_stable']:>8.2f}"
            )
        return out

    return collect


NEAR_WIDTHS = (1, 3)
NEAR_RATE = 0.3
NEAR_CALIBRATE = 5


def near_culprit_case(n: int, k: int, *, width: int, trials: int) -> dict[str, Any]:
    """Seeded bisections of a repro stable but for the commits within `width` of the culprit
    (ends excluded), wrong NEAR_RATE of the time either way there; as
    tests/unit/test_bisect_flaky.py's NearCulprit."""
    tally = _Tally()
    for seed in range(trials):
        rng = random.Random(n * 1000 + k * 100 + width * 10 + seed)
        first_new = rng.randrange(1, n)
        near = frozenset(c for c in range(1, n - 1) if abs(c - first_new) <= width)

        def evaluate(
            points: Sequence[int],
            first_new: int = first_new,
            near: frozenset[int] = near,
            rng: random.Random = rng,
        ) -> list[Verdict]:
            out = []
            for p in points:
                lie = p in near and rng.random() < NEAR_RATE
                out.append(Verdict.NEW if (p >= first_new) != lie else Verdict.OLD)
            return out

        policy = Policy(calibrate=NEAR_CALIBRATE)
        outcome, trace = run(Bisector(n, policy=policy), evaluate, k=k)
        tally.add(outcome, trace, first_new)
    return {
        "n": n,
        "k": k,
        "width": width,
        "rate": NEAR_RATE,
        "calibrate": NEAR_CALIBRATE,
        "trials": trials,
        **tally.fields(trials, near=True),
    }


def near_culprit_runs(trials: int, pool: Executor) -> Callable[[], list[dict[str, Any]]]:
    """Submits every case to `pool`; the returned function waits for them and prints."""
    futures = [
        pool.submit(near_culprit_case, n, k, width=width, trials=trials)
        for n in FLAKY_SIZES
        for k in (1, 4)
        for width in NEAR_WIDTHS
    ]

    def collect() -> list[dict[str, Any]]:
        print(
            f"\n{'N':>6} {'K':>2} {'width':>5} {'wrong':>5} {'>=99%':>5} {'incon':>5} "
            f"{'none':>4} {'evals':>13} {'rounds':>6}"
        )
        out = [f.result() for f in futures]
        for r in out:
            print(
                f"{r['n']:>6} {r['k']:>2} {r['width']:>5} {r['wrong_answers']:>5} "
                f"{r['wrong_answers_at_99']:>5} {r['inconclusive']:>5} "
                f"{r['not_answered']:>4} {r['evaluations_mean']:>6.1f} "
                f"(max {r['evaluations_max']:>2}) {r['rounds_mean']:>6.1f}"
            )
        return out

    return collect


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
    ap.add_argument("--jobs", type=int, default=1, help="cases run in this many processes at once")
    args = ap.parse_args()
    with ProcessPoolExecutor(args.jobs) as pool:
        # Everything is submitted first, so the pool is never idle waiting for a print.
        submitted = []
        for skip_rate in (0.0, SKIP_RATE):
            for n in args.sizes:
                for k in args.points:
                    seed = n * 100 + k * 10 + int(skip_rate * 100)
                    submitted.append(
                        pool.submit(case, n, k, trials=args.trials, skip_rate=skip_rate, seed=seed)
                    )
        flaky = flaky_runs(args.flaky_trials, pool)
        near = near_culprit_runs(args.flaky_trials, pool)
        runs: list[dict[str, Any]] = []
        print(f"{'N':>6} {'K':>2} {'skip':>5} {'bound':>5} {'rounds':>13} {'evaluations':>15}")
        for future in submitted:
            r = future.result()
            runs.append(r)
            print(
                f"{r['n']:>6} {r['k']:>2} {r['skip_rate']:>5.2f} {r['log_bound_rounds']:>5} "
                f"{r['rounds_mean']:>6.2f} (max {r['rounds_max']:>2}) "
                f"{r['evaluations_mean']:>7.2f} (max {r['evaluations_max']:>3})"
            )
        result = {
            "machine": machine(),
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "jobs": args.jobs,
            "note": "pure Bisector on synthetic histories; every figure of this entry was "
            "measured in this one run, at `when`; rounds include the round(s) that check "
            "the two ends; ms_per_bisection is wall time in one of `jobs` processes, on a "
            "machine that may be shared (see load_average): counts are exact, ms are noisy",
            "runs": runs,
            "flaky_note": "20% false verdicts; calibrate 0 = trusting (the default), 5 = "
            "--calibrate 5; wrong_answers = a FOUND naming another commit; not_answered = "
            "inconclusive or an end judged wrong; evaluations_vs_stable = mean evaluations "
            "over the trusting stable repro's",
            "flaky_runs": flaky(),
            "near_culprit_note": "ends stable; commits within `width` of the culprit (ends "
            "excluded) wrong 30% of the time either way; --calibrate 5; wrong_answers_at_99 "
            "= wrong answers whose confidence is >= 99%; inconclusive = ended inconclusive; "
            "not_answered = any outcome but FOUND",
            "near_culprit_runs": near(),
            "dag_runs": dag_runs(),
            "fla_find_fix_replay": fla(),
        }
    merge_into(args.out, "bisect", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
