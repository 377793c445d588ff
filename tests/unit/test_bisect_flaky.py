"""Flaky repros (pure): contradictions are re-tested, calibration learns how often the repro
lies, and a calibrated answer states a probability that holds up over seeded trials."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import pytest

from repromatrix.bisect import Bisector, Mode, OutcomeKind, Policy, Verdict, run
from repromatrix.dag import Dag
from repromatrix.flaky import Consensus, Tally, log_marginal, p_wrong_end, posterior

N = 200


class Flaky:
    """Candidates from `first_new` on are new; the repro says "new" wrongly at old ones
    with rate `false_new` and "old" wrongly at new ones with rate `false_old` (seeded)."""

    def __init__(
        self, first_new: int, *, false_new: float = 0.0, false_old: float = 0.0, seed: int = 0
    ) -> None:
        self.first_new = first_new
        self.false_new = false_new
        self.false_old = false_old
        self.rng = random.Random(seed)
        self.calls: list[int] = []

    def __call__(self, points: Sequence[int]) -> list[Verdict]:
        self.calls.extend(points)
        out = []
        for p in points:
            if p >= self.first_new:
                lie = self.rng.random() < self.false_old
                out.append(Verdict.OLD if lie else Verdict.NEW)
            else:
                lie = self.rng.random() < self.false_new
                out.append(Verdict.NEW if lie else Verdict.OLD)
        return out


def bisect_many(
    k: int, *, false_new: float, false_old: float, calibrate: int, trials: int = 20
) -> tuple[int, list[int], list[float | None]]:
    """(wrong answers, evaluations, confidences of the answers) over `trials` seeded
    bisections; an inconclusive one states its confidence as None."""
    wrong, evaluations, confidences = 0, [], []
    for seed in range(trials):
        first_new = random.Random(1000 + seed).randrange(1, N)
        fake = Flaky(first_new, false_new=false_new, false_old=false_old, seed=seed)
        outcome, trace = run(Bisector(N, policy=Policy(calibrate=calibrate)), fake, k=k)
        if outcome.kind is OutcomeKind.FOUND and outcome.first_new != first_new:
            wrong += 1
        evaluations.append(trace.evaluations)
        confidences.append(outcome.confidence if outcome.ok else None)
    return wrong, evaluations, confidences


@pytest.mark.parametrize("k", [1, 4])
@pytest.mark.parametrize(("false_new", "false_old"), [(0.2, 0.0), (0.0, 0.2)])
def test_a_20_percent_flaky_repro_is_right_19_times_in_20(
    k: int, false_new: float, false_old: float
) -> None:
    wrong, evaluations, confidences = bisect_many(
        k, false_new=false_new, false_old=false_old, calibrate=5
    )
    assert wrong <= 1
    # Every answer at 99%; one of 20 may be inconclusive (k = 4, a 20% false "new": the
    # old end said "old" 20 times in 20, where m132 next to the answer said "new" 4 times
    # in 20, more than that rate explains: its own runs say its side at 98%).
    assert all(c is None or c >= 0.99 for c in confidences), confidences
    assert sum(c is None for c in confidences) <= 1, confidences
    # The price of certainty: a few times what a stable repro costs (log2 200 + 2 = 10).
    assert sum(evaluations) / len(evaluations) < 6 * (math.log2(N) + 2)


@pytest.mark.parametrize("k", [1, 4])
def test_calibrating_a_stable_repro_costs_the_calibration_and_little_more(k: int) -> None:
    wrong, evaluations, confidences = bisect_many(k, false_new=0, false_old=0, calibrate=5)
    assert wrong == 0
    assert all(c is not None and c >= 0.99 for c in confidences)
    assert max(evaluations) <= 10 + 3 * (math.ceil(math.log2(N)) + 1)


def test_a_calibrated_answer_is_not_stated_sure_when_one_rate_could_explain_the_other() -> None:
    """Runs a repro wrong 30% of the time on both sides left (seeded; the culprit was 15).
    With the rates integrated out under a prior favouring stable repros, m20 read as the
    culprit at 99.0% (false "old" verdicts "estimated" at 3%), and the search stopped
    there; under the true rates m20 is 77% likely. Four old runs at m19 explain as false
    "old" verdicts as well as the two "new" ones at m15 and m17 do as false "new" ones."""
    seen = {0: (3, 2), 12: (1, 0), 14: (1, 0), 15: (1, 1), 17: (1, 1), 19: (4, 0), 20: (0, 6)}
    known = {c: [Verdict.OLD] * old + [Verdict.NEW] * new for c, (old, new) in seen.items()}
    b = Bisector(25, {**known, 24: [Verdict.NEW] * 5}, policy=Policy(calibrate=5))
    assert not b.done
    progress = b.progress()
    assert progress.best == 20
    assert progress.confidence is not None
    assert progress.confidence < 0.9
    assert progress.likely is not None
    assert progress.likely >= progress.confidence  # the round line says both
    assert b.next_points(1)  # the search goes on


def test_a_repro_wrong_30_percent_of_the_time_on_both_sides_is_never_surely_wrong() -> None:
    """Seeded bisections of a repro wrong 30% of the time either way: every commit named
    at 99% is the culprit (two of these twenty were not; raising --max-runs buys answers)."""
    for seed in range(40, 60):
        first_new = random.Random(1000 + seed).randrange(1, 25)
        fake = Flaky(first_new, false_new=0.3, false_old=0.3, seed=seed)
        outcome, _ = run(Bisector(25, policy=Policy(calibrate=5)), fake, k=1)
        if outcome.kind is OutcomeKind.FOUND:
            assert outcome.first_new == first_new, (seed, outcome)


class NearCulprit(Flaky):
    """Stable but for the commits within `width` of the culprit (ends excluded), where the
    repro is wrong `rate` of the time either way: a test that races with the change."""

    def __init__(self, first_new: int, n: int, *, width: int, rate: float, seed: int) -> None:
        super().__init__(first_new, seed=seed)
        self.near = {c for c in range(1, n - 1) if abs(c - first_new) <= width}
        self.rate = rate

    def __call__(self, points: Sequence[int]) -> list[Verdict]:
        out = []
        for p in points:
            lie = p in self.near and self.rng.random() < self.rate
            out.append(Verdict.NEW if (p >= self.first_new) != lie else Verdict.OLD)
        return out


@pytest.mark.parametrize("width", [1, 3])
def test_flakiness_only_next_to_the_culprit_never_names_a_wrong_commit_at_99_percent(
    width: int,
) -> None:
    """Stable ends calibrate both rates near zero, and commits next to the culprit wrong 30%
    of the time either way (each seeded run below). The shared rates made a neighbour's
    unlucky runs (8 "old" and 5 "new" at a new commit) read as its side: 2 of these 40
    named a neighbour at 99% or more. An answer now holds only once the boundary commits'
    own runs, which the shared rates do not explain, say which side they are on."""
    n = 100
    for seed in range(20):
        first_new = random.Random(n * 1000 + 400 + seed).randrange(1, n)
        fake = NearCulprit(first_new, n, width=width, rate=0.3, seed=seed)
        outcome, _ = run(Bisector(n, policy=Policy(calibrate=5)), fake, k=4)
        if outcome.kind is OutcomeKind.FOUND:
            assert outcome.first_new == first_new, (seed, first_new, outcome)


def test_trusting_mode_turns_calibrated_at_the_first_contradiction() -> None:
    # K = 4 tests four points a round: a false "new" left of a true "old" contradicts it.
    caught = 0
    for seed in range(20):
        first_new = random.Random(seed).randrange(1, N)
        fake = Flaky(first_new, false_new=0.2, seed=seed)
        outcome, _ = run(Bisector(N), fake, k=4)
        if outcome.mode is Mode.CALIBRATED:
            caught += 1
            assert outcome.contradicted
            assert outcome.confidence is not None
            if outcome.kind is OutcomeKind.FOUND:
                assert outcome.first_new == first_new
        else:
            assert outcome.confidence is None  # the report says "not measured"
    assert caught >= 10


def test_stored_runs_that_disagree_are_evidence_not_gospel() -> None:
    # An earlier bisection stored one run per commit, and a later one a second run of 120
    # that disagrees: the search does not trust either and repeats around them.
    known: dict[int, list[Verdict]] = {
        0: [Verdict.OLD],
        N - 1: [Verdict.NEW],
        120: [Verdict.NEW, Verdict.OLD],
        60: [Verdict.OLD],
    }
    b = Bisector(N, known)
    assert b.mode is Mode.CALIBRATED
    assert b.tally(120).consensus is Consensus.FLAKY
    outcome, trace = run(b, Flaky(121, false_new=0.2, seed=3), k=2)
    assert outcome.kind is OutcomeKind.FOUND
    assert outcome.first_new == 121
    assert 120 in {p for r in trace.rounds for p in r}


def test_a_repro_that_cannot_tell_stops_inconclusive_within_its_budget() -> None:
    policy = Policy(calibrate=3, max_runs=4, max_evaluations=60)
    fake = Flaky(90, false_new=0.45, false_old=0.45, seed=1)
    outcome, trace = run(Bisector(N, policy=policy), fake, k=4)
    assert outcome.kind in (OutcomeKind.INCONCLUSIVE, OutcomeKind.END_FLAKY)
    assert outcome.confidence is None or outcome.confidence < 0.99
    assert trace.evaluations <= 60 + 4


def test_an_end_that_lies_half_the_time_is_flaky_not_wrong() -> None:
    b = Bisector(N, policy=Policy(calibrate=4, max_runs=6))
    for _ in range(3):
        b.record(0, Verdict.OLD)
        b.record(0, Verdict.NEW)
    for _ in range(6):
        b.record(N - 1, Verdict.NEW)
    assert b.done
    assert b.result().kind is OutcomeKind.END_FLAKY
    assert b.result().end == 0


def test_a_repro_that_says_heads_or_tails_never_calls_an_end_wrong() -> None:
    """A repro whose verdict is a coin toss at every commit: no bisection may name a commit
    or tell the user an end is not what it was given as ("pick an older --good"); with
    five contrary runs of five read as 99.7% sure, 6 of these 20 bisections did."""
    for seed in range(20):
        coin = Flaky(20, false_new=0.5, false_old=0.5, seed=seed)
        outcome, _ = run(Bisector(40, policy=Policy(calibrate=5)), coin, k=4)
        assert outcome.kind in (OutcomeKind.INCONCLUSIVE, OutcomeKind.END_FLAKY), (seed, outcome)
        if outcome.kind is OutcomeKind.INCONCLUSIVE:  # how likely its guess is, and its floor
            assert outcome.likely is not None
            assert outcome.confidence is not None
            assert outcome.likely >= outcome.confidence


def test_a_calibrated_end_that_is_wrong_is_said_so_once_a_coin_could_hardly_have_said_it() -> None:
    b = Bisector(N, policy=Policy(calibrate=5))
    for _ in range(5):
        b.record(0, Verdict.NEW)
        b.record(N - 1, Verdict.NEW)
    assert not b.done  # five tosses of a coin all "new": one time in 32
    assert 0 in b.next_points(4)
    b.record(0, Verdict.NEW)
    b.record(0, Verdict.NEW)  # seven: one in 128
    assert b.done
    assert b.result().kind is OutcomeKind.OLD_END_IS_NEW


def test_a_calibrated_end_is_judged_only_once_the_other_end_ran() -> None:
    """`bisect --good m20 --bad bad --calibrate 5 --jobs 1`, m20 failing another check
    (offset_err) with the followed one (scale_err) within its limit: one slot ran --good 7
    times before --bad once, each run judged against no --bad failure (so bad), and it
    stopped with "--good ... is not good: ... regressed (7 of 7 runs)" (exit 6), where
    trusting it was good for the original and the answer m33 (exit 0)."""
    b = Bisector(N, policy=Policy(calibrate=5))
    assert b.next_points(1) == [0]
    b.record(0, Verdict.NEW)
    assert b.next_points(1) == [N - 1]  # the other end before the contrary one's second
    b.record(N - 1, Verdict.NEW)
    alone = Bisector(N, policy=Policy(calibrate=5))
    for _ in range(7):
        alone.record(0, Verdict.NEW)
    assert not alone.done  # seven contrary runs, but against an end that never ran
    assert alone.next_points(1) == [N - 1]


def test_calibration_shares_the_first_rounds_with_search_points() -> None:
    b = Bisector(N, policy=Policy(calibrate=2))
    first = b.next_points(6)
    assert (first.count(0), first.count(N - 1)) == (2, 1)  # half the slots at most
    assert len(first) == 6  # three slots search meanwhile
    second = b.next_points(6)
    assert second.count(N - 1) == 1
    alone = Bisector(N, policy=Policy(calibrate=2))
    assert alone.next_points(1) == [0]  # one slot: the ends first


def test_the_posterior_follows_the_runs() -> None:
    dag = Dag.chain(10)
    clean = {0: Tally(old=3), 9: Tally(new=3), 4: Tally(old=2), 5: Tally(new=2)}
    post = posterior(dag, clean)
    assert post.best() == 5
    # Ten runs that never disagreed cannot rule out a repro wrong a fifth of the time.
    assert 0.7 < post.probability[5] < 0.9
    assert post.sure([5]) < post.probability[5]
    assert post.mass[4] < 0.15
    assert post.mass[5] > 0.85
    # One disagreeing run at 5 costs confidence but not the answer.
    shaky = posterior(dag, {**clean, 5: Tally(new=2, old=1)})
    assert shaky.best() == 5
    assert shaky.probability[5] < post.probability[5]
    assert 0 < shaky.false_old < 0.5
    # Rates integrate out: more wrong runs are less likely than fewer.
    assert log_marginal(3, 7) < log_marginal(1, 9)
    # An end is read at the rate that explains its runs best, up to a coin's.
    assert p_wrong_end(agree=9, against=1) < 0.05
    assert p_wrong_end(agree=1, against=9) > 0.95
    assert p_wrong_end(agree=3, against=3) == pytest.approx(0.5)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 7])
def test_no_round_asks_for_more_runs_than_slots(k: int) -> None:
    for calibrate in (0, 3):
        b = Bisector(N, policy=Policy(calibrate=calibrate))
        fake = Flaky(77, false_new=0.2, seed=k)
        while not b.done:
            points = b.next_points(k)
            assert 1 <= len(points) <= k
            for p, v in zip(points, fake(points), strict=True):
                b.record(p, v)


def test_raising_max_runs_raises_what_the_whole_bisection_may_spend() -> None:
    """An inconclusive answer says "raise --max-runs"; the whole bisection's budget did
    not depend on it, so a second try with a higher --max-runs ran nothing more."""
    spent = []
    for max_runs in (10, 20, 40):
        truth = Flaky(N // 2, false_new=0.45, false_old=0.45, seed=3)
        outcome, trace = run(Bisector(N, policy=Policy(calibrate=3, max_runs=max_runs)), truth, k=4)
        assert outcome.kind is OutcomeKind.INCONCLUSIVE
        spent.append(trace.evaluations)
    assert spent[0] < spent[1] < spent[2]


def test_a_calibrated_end_whose_run_errored_runs_again_before_it_stops_the_search() -> None:
    """A repro that errors now and then (exit 3: a skip) at the --bad end's first run
    stopped a `--calibrate 5` bisection at once, "could not be evaluated" (exit 6), one
    time in four at a 15% error rate, though calibration runs each end 5 times anyway.
    The end runs again; only a calibration that said nothing at all stops the search."""
    b = Bisector(N, policy=Policy(calibrate=3))
    b.record(0, Verdict.OLD)
    b.record(N - 1, Verdict.SKIP)
    assert not b.done
    assert N - 1 in b.next_points(4)
    b.record(N - 1, Verdict.NEW)
    assert not b.done
    # An end that never says anything in its calibration's runs stops it, as before.
    never = Bisector(N, policy=Policy(calibrate=3))
    for _ in range(3):
        never.record(0, Verdict.OLD)
    for _ in range(2):
        never.record(N - 1, Verdict.SKIP)
        assert not never.done
        assert never.next_points(1) == [N - 1]
    never.record(N - 1, Verdict.SKIP)
    assert never.done
    assert (never.result().kind, never.result().end) == (OutcomeKind.END_SKIPPED, N - 1)
    # Trusting, an end that cannot be tested stops it at once, as `git bisect run` does.
    trusting = Bisector(N)
    trusting.record(0, Verdict.OLD)
    trusting.record(N - 1, Verdict.SKIP)
    assert trusting.done


def test_a_lower_max_runs_never_states_an_answer_surer() -> None:
    """m15, next to the answer, said "new" 7 times and "old" 3 times where its side's end
    never lied: more disagreement than the shared rate explains, less than proves a rate
    of its own. With --max-runs 14 it and the end ran again; with --max-runs 10, its runs
    spent, it was read at the shared rate and m15 named at 99.95%. Its own runs must say
    its side, or the answer is inconclusive, as README states."""
    old, new = Verdict.OLD, Verdict.NEW
    known = {
        0: [old] * 10,
        10: [old] * 4,
        12: [old] * 4,
        14: [old] * 8,
        15: [new] * 7 + [old] * 3,
        16: [new] * 8,
        20: [new] * 4,
        29: [new] * 10,
    }
    more = Bisector(30, known, policy=Policy(calibrate=5, max_runs=14))
    assert not more.done
    assert 15 in more.next_points(4)
    spent = Bisector(30, known, policy=Policy(calibrate=5, max_runs=10))
    assert spent.done
    outcome = spent.result()
    assert outcome.kind is OutcomeKind.INCONCLUSIVE, outcome
    assert outcome.confidence is not None
    assert outcome.confidence <= 1 - p_wrong_end(agree=7, against=3) + 1e-9


class Errors(Flaky):
    """Stable, but the first `errors[c]` runs of commit c error (a skip)."""

    def __init__(self, first_new: int, errors: dict[int, int]) -> None:
        super().__init__(first_new)
        self.errors = errors

    def __call__(self, points: Sequence[int]) -> list[Verdict]:
        out = []
        for p, verdict in zip(points, super().__call__(points), strict=True):
            out.append(Verdict.SKIP if self.errors.get(p, 0) > 0 else verdict)
            self.errors[p] = self.errors.get(p, 0) - 1
        return out


@pytest.mark.parametrize("k", [1, 4])
def test_a_calibrated_commit_whose_only_run_errored_runs_again_before_one_of_is_said(
    k: int,
) -> None:
    """The culprit and its parent each errored once (a repro that errors now and then):
    calibrated, neither ran again, and the answer was "one of 9, 10, 11" (exit 6), where
    one more run of each names 10. A commit that never says anything in as many runs as
    stop the search at an end is still skipped, as git skips it."""
    outcome, _ = run(Bisector(20, policy=Policy(calibrate=3)), Errors(10, {9: 1, 10: 1}), k=k)
    assert (outcome.kind, outcome.first_new) == (OutcomeKind.FOUND, 10), outcome
    assert outcome.confidence is not None
    assert outcome.confidence >= 0.99
    never = Errors(10, {9: 1, 10: 99})
    outcome, _ = run(Bisector(20, policy=Policy(calibrate=3)), never, k=k)
    assert (outcome.kind, outcome.suspects) == (OutcomeKind.AMBIGUOUS, (10, 11)), outcome
    assert never.calls.count(10) == 3
