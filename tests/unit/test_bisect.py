"""The pure bisection algorithm on chains (releases, --first-parent), trusting mode, driven
by fake evaluators (no I/O). DAGs: test_bisect_dag.py; flaky repros: test_bisect_flaky.py."""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Sequence
from pathlib import Path

import pytest

from repromatrix.bisect import Bisector, Mode, OutcomeKind, Policy, Verdict, log_bound, run


def boundary(first_new: int, skips: Collection[int] = ()) -> _Fake:
    return _Fake(first_new, set(skips))


class _Fake:
    """Candidates from `first_new` on are new; those in `skips` say nothing."""

    def __init__(self, first_new: int, skips: set[int]) -> None:
        self.first_new = first_new
        self.skips = skips
        self.calls: list[int] = []

    def __call__(self, points: Sequence[int]) -> list[Verdict]:
        self.calls.extend(points)
        return [self.verdict(p) for p in points]

    def verdict(self, p: int) -> Verdict:
        if p in self.skips:
            return Verdict.SKIP
        return Verdict.NEW if p >= self.first_new else Verdict.OLD


@pytest.mark.parametrize("n", [2, 3, 4, 7, 8, 9, 100, 200, 257])
def test_classic_bisection_finds_every_boundary_within_log2(n: int) -> None:
    for first_new in range(1, n):
        fake = boundary(first_new)
        outcome, trace = run(Bisector(n), fake, k=1)
        assert outcome.kind is OutcomeKind.FOUND
        assert outcome.suspects == (first_new,)
        assert outcome.first_new == first_new
        assert outcome.last_old == first_new - 1
        # Two ends plus ceil(log2) halvings of the N-1 possible answers.
        assert trace.evaluations <= math.ceil(math.log2(n)) + 2
        assert all(len(r) == 1 for r in trace.rounds)
        assert len(set(fake.calls)) == len(fake.calls), "nothing is evaluated twice"


@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("n", [5, 50, 200, 1000])
def test_multisection_rounds_follow_log_k_plus_1(n: int, k: int) -> None:
    rng = random.Random(n * 10 + k)
    for first_new in {1, n - 1, n // 2, *rng.sample(range(1, n), min(n - 1, 40))}:
        outcome, trace = run(Bisector(n), boundary(first_new), k=k)
        assert outcome.suspects == (first_new,)
        assert all(len(r) <= k for r in trace.rounds)
        assert len(trace.rounds) <= log_bound(n, k) + 2


def test_multisection_splits_the_interval_into_k_plus_1_parts() -> None:
    b = Bisector(101, {0: Verdict.OLD, 100: Verdict.NEW})
    assert b.next_points(3) == [25, 50, 75]
    for p, v in {25: Verdict.OLD, 50: Verdict.NEW, 75: Verdict.NEW}.items():
        b.record(p, v)
    assert b.progress().left == 24  # 26..50 are suspects, 50 known new
    assert b.next_points(4) == [30, 35, 40, 45]


def test_first_round_tests_both_ends_and_fills_spare_slots() -> None:
    b = Bisector(100)
    points = b.next_points(3)
    assert points[0] == 0
    assert points[-1] == 99
    assert len(points) == 3
    assert Bisector(100).next_points(1) == [0]


def test_a_skip_steps_away_to_an_untested_commit() -> None:
    """Where: git bisect's `skip_away` (tests/integration/test_bisect_merges.py checks the
    very commits against git's on a real history)."""
    b = Bisector(101, {0: Verdict.OLD, 100: Verdict.NEW})
    (point,) = b.next_points(1)
    assert point == 50
    skipped: set[int] = set()
    for _ in range(20):
        b.record(point, Verdict.SKIP)
        skipped.add(point)
        (point,) = b.next_points(1)
        assert point not in skipped, (point, skipped)
        assert 0 < point < 100


def test_skips_next_to_the_boundary_give_an_ambiguous_range() -> None:
    n, first_new = 64, 30
    outcome, _ = run(Bisector(n), boundary(first_new, skips={28, 29}), k=1)
    assert outcome.kind is OutcomeKind.AMBIGUOUS
    assert outcome.suspects == (28, 29, 30)
    assert outcome.last_old == 27
    assert outcome.first_new == 30
    # A skip on the far side of the boundary does not blur it.
    outcome, _ = run(Bisector(n), boundary(first_new, skips={31, 32}), k=2)
    assert outcome.kind is OutcomeKind.FOUND
    assert outcome.suspects == (30,)


def test_all_interior_skipped_names_every_candidate() -> None:
    n = 9
    outcome, trace = run(Bisector(n), boundary(5, skips=set(range(1, n - 1))), k=1)
    assert outcome.kind is OutcomeKind.AMBIGUOUS
    assert outcome.suspects == tuple(range(1, n))
    assert trace.evaluations == n


@pytest.mark.parametrize(
    ("verdicts", "kind", "end"),
    [
        ({0: [Verdict.NEW, Verdict.NEW], 9: Verdict.NEW}, OutcomeKind.OLD_END_IS_NEW, 0),
        ({9: [Verdict.OLD, Verdict.OLD], 0: Verdict.OLD}, OutcomeKind.NEW_END_IS_OLD, 9),
        ({0: Verdict.SKIP}, OutcomeKind.END_SKIPPED, 0),
        ({0: Verdict.OLD, 9: Verdict.SKIP}, OutcomeKind.END_SKIPPED, 9),
    ],
)
def test_wrong_or_untestable_ends_stop_at_once(
    verdicts: dict[int, Verdict | list[Verdict]], kind: OutcomeKind, end: int
) -> None:
    b = Bisector(10)
    for i, given in verdicts.items():
        for v in given if isinstance(given, list) else [given]:
            b.record(i, v)
    assert b.done
    assert b.next_points(4) == []
    outcome = b.result()
    assert outcome.kind is kind
    assert outcome.end == end
    assert not outcome.ok


def test_a_wrong_end_is_confirmed_by_a_second_run_and_nothing_else() -> None:
    # The "good" end is bad: one more run of it (a flaky repro lies once in a while), then
    # a stop; nothing inside is evaluated after the contrary verdict. The other end runs
    # first, once: a regression is judged against its failure (another bug's is none).
    fake = boundary(0)
    outcome, trace = run(Bisector(50), fake, k=1)
    assert outcome.kind is OutcomeKind.OLD_END_IS_NEW
    assert fake.calls == [0, 49, 0]
    fake = boundary(50)  # nothing is new: the "bad" end is good
    outcome, trace = run(Bisector(50), fake, k=2)
    assert outcome.kind is OutcomeKind.NEW_END_IS_OLD
    assert trace.rounds == [(0, 49), (49,)]
    assert outcome.repeats == 1


def test_an_end_that_contradicts_itself_calibrates() -> None:
    # The good end said "new" once, then "old": a flaky repro, not a wrong end.
    b = Bisector(50, {0: [Verdict.NEW, Verdict.OLD], 49: Verdict.NEW})
    assert b.mode is Mode.CALIBRATED
    assert not b.done
    points = b.next_points(10)
    # Topping both ends up to five runs takes at most half the round; the rest searches.
    assert points.count(0) + points.count(49) == 5
    assert points.count(0) == 3
    assert len(points) == 10


def test_n1_is_refused_and_n2_needs_only_the_ends() -> None:
    with pytest.raises(ValueError, match="at least two"):
        Bisector(1)
    outcome, trace = run(Bisector(2), boundary(1), k=1)
    assert outcome.kind is OutcomeKind.FOUND
    assert outcome.suspects == (1,)
    assert trace.evaluations == 2
    outcome, trace = run(Bisector(2), boundary(1), k=4)
    assert len(trace.rounds) == 1


def test_known_verdicts_resume_without_reevaluating() -> None:
    n, first_new = 200, 137
    full = boundary(first_new)
    run(Bisector(n), full, k=1)
    done_before = full.calls[:4]  # interrupted after four evaluations
    resumed = boundary(first_new)
    known = {p: resumed.verdict(p) for p in done_before}
    outcome, trace = run(Bisector(n, known), resumed, k=1)
    assert outcome.suspects == (first_new,)
    assert not set(resumed.calls) & set(done_before)
    assert trace.evaluations == len(full.calls) - 4


def test_everything_known_needs_no_evaluation() -> None:
    n = 20
    b = Bisector(n, {i: Verdict.NEW if i >= 7 else Verdict.OLD for i in range(n)})
    assert b.done
    assert b.result().suspects == (7,)


def test_contradicting_verdicts_are_not_ignored() -> None:
    # "new" at 4 but "old" at 6: one of them is wrong, or the history changed twice. Both
    # run again first; 4 now says "old": a flaky repro, so the ends are calibrated.
    b = Bisector(10, {0: Verdict.OLD, 9: Verdict.NEW, 4: Verdict.NEW, 6: Verdict.OLD})
    assert b.progress().mode is Mode.TRUSTING
    assert b.next_points(2) == [4, 6]
    b.record(4, Verdict.OLD)
    b.record(6, Verdict.OLD)
    assert b.mode is Mode.CALIBRATED
    assert not b.done
    outcome, _ = run(b, boundary(5), k=2)
    assert outcome.kind is OutcomeKind.FOUND
    assert outcome.contradicted == (4,)  # the commit whose runs disagree
    assert outcome.confidence is not None
    assert outcome.confidence >= 0.99


def _twice_changed(c: int) -> Verdict:
    """A deterministic repro: new at 10..20, old again at 21..40, new from 41 on."""
    return Verdict.NEW if 10 <= c <= 20 or c >= 41 else Verdict.OLD


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_a_history_that_changed_more_than_once_is_bisected_as_git_does(k: int) -> None:
    # Two points of one round contradict (c15 new below c30 old): each runs once more,
    # says the same, and the search goes on trusting above the last old commit tested, where
    # it calibrated before (28 runs at K = 2, 32 at K = 4, where git bisect run takes 6).
    b = Bisector(60)
    outcome, trace = run(b, lambda points: [_twice_changed(p) for p in points], k=k)
    assert outcome.kind is OutcomeKind.FOUND
    assert outcome.mode is Mode.TRUSTING
    assert outcome.contradicted == ()
    first = outcome.first_new
    assert first is not None
    assert _twice_changed(first) is Verdict.NEW
    assert _twice_changed(first - 1) is Verdict.OLD
    assert outcome.runs <= {1: 8, 2: 12, 3: 10, 4: 14}[k]
    assert len(trace.rounds) <= {1: 8, 2: 7, 3: 4, 4: 4}[k]
    if k in (2, 4):  # these rounds met a new commit below an old one
        assert outcome.changed
        assert all(_twice_changed(c) is Verdict.NEW for c in outcome.changed)


def test_max_runs_1_runs_no_contradicting_commit_twice() -> None:
    # --max-runs 1 --jobs 4 over a history that changed twice: c20 and c39 ran twice.
    b = Bisector(60, policy=Policy(max_runs=1))
    outcome, trace = run(b, lambda points: [_twice_changed(p) for p in points], k=4)
    ran = [p for points in trace.rounds for p in points]
    assert len(ran) == len(set(ran))
    assert outcome.kind is OutcomeKind.FOUND


def test_pending_points_are_not_proposed_twice() -> None:
    b = Bisector(100, {0: Verdict.OLD, 99: Verdict.NEW})
    first = b.next_points(2)
    second = b.next_points(2)
    assert not set(first) & set(second)
    assert b.pending == frozenset(first + second)


def test_bad_arguments() -> None:
    b = Bisector(5)
    with pytest.raises(ValueError, match="k must be"):
        b.next_points(0)
    with pytest.raises(IndexError):
        b.record(5, Verdict.OLD)
    with pytest.raises(RuntimeError, match="not finished"):
        b.result()
    with pytest.raises(ValueError, match="0 verdicts for 1 runs"):
        run(Bisector(5), lambda points: [], k=1)


@pytest.mark.parametrize(
    ("n", "k", "expected"), [(1, 1, 0), (2, 1, 1), (8, 1, 3), (9, 1, 4), (16, 3, 2), (17, 3, 3)]
)
def test_log_bound(n: int, k: int, expected: int) -> None:
    assert log_bound(n, k) == expected


class _Before:
    """The multisection as it was before merges and flaky repros were handled (commit
    546a9c7), kept as the reference: on a chain with a stable repro the search must cost
    exactly what it cost then, round for round."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.verdicts: dict[int, Verdict] = {}

    def bounds(self) -> tuple[int, int]:
        new = [i for i, v in self.verdicts.items() if v is Verdict.NEW]
        first_new = min(new, default=self.n - 1)
        old = [i for i, v in self.verdicts.items() if v is Verdict.OLD and i < first_new]
        return max(old, default=0), first_new

    def next_points(self, k: int) -> list[int]:
        chosen = [e for e in (0, self.n - 1) if e not in self.verdicts][:k]
        lo, hi = self.bounds()
        free = [i for i in range(lo + 1, hi) if i not in self.verdicts and i not in chosen]
        room = k - len(chosen)
        if len(free) <= room:
            return sorted(chosen + free)
        for j in range(1, room + 1):
            ideal = lo + (hi - lo) * j / (room + 1)
            chosen.append(
                min((i for i in free if i not in chosen), key=lambda i: (abs(i - ideal), i))
            )
        return sorted(chosen)

    def rounds(self, fake: _Fake, k: int) -> list[tuple[int, ...]]:
        out: list[tuple[int, ...]] = []
        while True:
            lo, hi = self.bounds()
            ends = 0 in self.verdicts and self.n - 1 in self.verdicts
            if ends and not any(lo < i < hi and i not in self.verdicts for i in range(self.n)):
                return out
            points = self.next_points(k)
            self.verdicts.update(zip(points, fake(points), strict=True))
            out.append(tuple(points))


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("n", [2, 3, 10, 101, 1000])
def test_a_stable_repro_costs_exactly_what_it_cost_before(n: int, k: int) -> None:
    rng = random.Random(n + k)
    for first_new in {1, n - 1, *rng.sample(range(1, n), min(n - 1, 25))}:
        skips = {i for i in range(1, n - 1) if rng.random() < 0.05}
        _, trace = run(Bisector(n), boundary(first_new, skips), k=k)
        before = _Before(n).rounds(boundary(first_new, skips), k)
        assert trace.rounds == before, (n, k, first_new, skips)


@pytest.mark.parametrize("n", [2, 3, 10, 101, 1000])
def test_one_point_a_round_follows_git_and_costs_the_same_in_all(n: int) -> None:
    """K = 1 takes the commit git bisect takes (bisect.c: the first commit at about half,
    oldest first, roots excluded), which breaks some ties the other way than the old
    nearest-to-half rule: per boundary one evaluation more or less, over all boundaries
    exactly the same."""
    ours = before = 0
    for first_new in range(1, n):
        outcome, trace = run(Bisector(n), boundary(first_new), k=1)
        assert outcome.first_new == first_new
        old = sum(len(r) for r in _Before(n).rounds(boundary(first_new), 1))
        assert abs(trace.evaluations - old) <= 1
        ours, before = ours + trace.evaluations, before + old
    assert ours == before


def test_the_fla_find_fix_bisect_costs_five_rounds_of_four() -> None:
    """results/published/bisect-fla-find-fix.md: 1821 candidates from 7336d0cf to v0.5.2
    (topological order), K = 4, the fix at candidate 374; the GPU run evaluated 20 on the
    real history. Replayed on a linear history of that length, the same 5 rounds of 4 take
    19 of those 20 (one probe moves where fla's 41 merges change the weights)."""
    published = Path(__file__).resolve().parents[2] / "results/published/bisect-fla-find-fix.md"
    rows = [ln for ln in published.read_text().splitlines() if ln[:2] == "| " and ln[2].isdigit()]
    evaluated = {int(ln.split("|")[1]) for ln in rows}
    outcome, trace = run(Bisector(1821), boundary(374), k=4)
    assert outcome.kind is OutcomeKind.FOUND
    assert outcome.first_new == 374
    assert [len(r) for r in trace.rounds] == [4, 4, 4, 4, 4]
    assert len(evaluated) == 20
    assert len({p for r in trace.rounds for p in r} & evaluated) == 19
    assert outcome.confidence is None  # trusting: the report says it is not measured
    assert outcome.repeats == 0


@pytest.mark.parametrize("calibrate", [0, 3])
def test_a_merge_base_that_can_only_skip_is_set_aside_as_git_bisect_does(calibrate: int) -> None:
    """Old ends that are merge bases (`bases`): one whose run skips is set aside, run once
    (git: "must be skipped ... We continue anyway"), and the search goes on; it stopped
    with END_SKIPPED. An old end given as such still stops the search when it skips."""

    def truth(points: Sequence[int]) -> list[Verdict]:
        return [Verdict.SKIP if p == 0 else Verdict.NEW if p >= 5 else Verdict.OLD for p in points]

    policy = Policy(calibrate=calibrate)
    outcome, trace = run(Bisector(10, policy=policy, bases=True), truth, k=2)
    assert (outcome.kind, outcome.first_new) == (OutcomeKind.FOUND, 5)
    assert sum(r.count(0) for r in trace.rounds) == 1
    given, _ = run(Bisector(10, policy=policy), truth, k=2)
    assert (given.kind, given.end) == (OutcomeKind.END_SKIPPED, 0)
