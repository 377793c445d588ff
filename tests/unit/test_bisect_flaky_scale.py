"""A calibrated search's own planning on long histories (pure): the posterior is weighed
per class of candidates that share their runs below, and the best guess's group is walked
out from it, both the same as over every commit, at a cost that does not grow with the
history per round (counted, not timed: a round of a 30,000-commit search took 4 s)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence

import pytest

from repromatrix.bisect import Bisector, OutcomeKind, Policy, Verdict, run
from repromatrix.dag import Dag
from repromatrix.flaky import _LOG_PRIOR, PLAUSIBLE, Posterior, Tally, _logsumexp, posterior


def flaky(first_new: int, false_new: float, seed: int) -> Callable[[Sequence[int]], list[Verdict]]:
    """Candidates from `first_new` on are new; "new" is said wrongly at old ones with rate
    `false_new` (seeded)."""
    rng = random.Random(seed)

    def judge(points: Sequence[int]) -> list[Verdict]:
        return [
            Verdict.NEW if p >= first_new or rng.random() < false_new else Verdict.OLD
            for p in points
        ]

    return judge


def random_dag(rng: random.Random, n: int) -> Dag:
    """A history with merges: each commit's parents are one or two earlier commits."""
    parents: list[tuple[int, ...]] = [()]
    for i in range(1, n):
        first = i - 1 if rng.random() < 0.7 else rng.randrange(i)
        more = (rng.randrange(i),) if rng.random() < 0.2 else ()
        parents.append(tuple(dict.fromkeys((first, *more))))
    return Dag(tuple(parents))


def tallies(rng: random.Random, n: int, runs: int) -> dict[int, Tally]:
    out = {0: Tally(old=5), n - 1: Tally(new=5)}
    for c in rng.sample(range(1, n - 1), runs):
        out[c] = Tally(old=rng.randint(0, 3), new=rng.randint(0, 3), skip=rng.randint(0, 1))
    return out


def every_candidate(dag: Dag, t: dict[int, Tally], prior: list[float]) -> list[float]:
    """The posterior as it was computed, one likelihood per candidate for each pair."""
    new_below = dag.over_descendants({c: float(x.new) for c, x in t.items()})
    old_below = dag.over_descendants({c: float(x.old) for c, x in t.items()})
    tn, to = sum(x.new for x in t.values()), sum(x.old for x in t.values())
    allowed = [x for x in range(1, dag.n) if not prior or prior[x] > 0]
    base = [-math.inf] * dag.n
    for x in allowed:
        base[x] = math.log(prior[x]) if prior else 0.0
    a = [[base[x] + (tn - new_below[x]) * lr + (to - old_below[x]) * l1r for x in range(dag.n)]
         for lr, l1r, _ in _LOG_PRIOR]  # fmt: skip
    b = [
        [old_below[x] * lr + new_below[x] * l1r for x in range(dag.n)] for lr, l1r, _ in _LOG_PRIOR
    ]
    pairs = [
        (wa + wb + total, i, j, total)
        for i, (_, _, wa) in enumerate(_LOG_PRIOR)
        for j, (_, _, wb) in enumerate(_LOG_PRIOR)
        for total in [_logsumexp([u + v for u, v in zip(a[i], b[j], strict=True)])]
    ]
    top = max(w for w, *_ in pairs)
    kept = [(i, j, total) for w, i, j, total in pairs if w - top >= PLAUSIBLE]
    p = [0.0] * dag.n
    for i, j, total in kept:
        for x in allowed:
            p[x] += math.exp(a[i][x] + b[j][x] - total) / len(kept)
    return p


def group_over_every_commit(dag: Dag, best: int, testable: int) -> list[int]:
    """`Posterior.group`'s members as they were found: a pass over every commit."""
    sig = dag.descendants(best) & testable
    near = (dag.ancestors(best) | dag.descendants(best)) & ~1
    return sorted(
        y for y, below in dag.reach(testable, down=True) if near >> y & 1 and below == sig
    )


@pytest.mark.parametrize("seed", range(12))
def test_the_posterior_per_class_is_the_posterior_per_candidate(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.choice([40, 150, 400])
    dag = random_dag(rng, n) if seed % 3 else Dag.chain(n)
    t = tallies(rng, n, rng.randint(1, 25))
    prior = [float(c >= 2) for c in range(n)] if seed % 4 == 1 else []
    post = posterior(dag, t, prior=prior)
    assert post.probability == pytest.approx(every_candidate(dag, t, prior), rel=1e-9, abs=1e-300)
    # The classes: at most one per candidate, on a line one per stretch between runs.
    assert len(post.sides[0][0]) <= (len(t) + 2 if dag.is_chain else n)
    skipped = {c for c, x in t.items() if x.runs and not x.informative}
    testable = dag.everything & ~sum(1 << c for c in skipped)
    group, sure = post.group(testable)
    assert group == group_over_every_commit(dag, post.best(), testable)
    assert sure == pytest.approx(min([post.likely(group)] + [
        sum(
            math.exp(post.sides[0][i][post.classes[x]] + post.sides[1][j][post.classes[x]] - tot)
            for x in group
            if post.classes[x] >= 0
        )
        for i, j, tot in post.pairs
    ]), rel=1e-9)  # fmt: skip


def test_a_calibrated_search_of_30000_commits_plans_without_passes_over_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 20% flaky repro, --calibrate 5, four points a round on a line of 30,000 commits:
    its rounds took 2.7 s of planning each (175 s in all at one a round), where its runs
    took a tenth of a second: the posterior summed 144 pairs of rates over every commit,
    and the best guess's group was a pass over the whole history, six times a round. Now
    no such pass is made, the posterior has a class per stretch between runs, and the
    answer, its runs and its confidence are those of before."""
    passes: list[int] = []
    reach = Dag.reach

    def counted(
        self: Dag, within: int, *, down: bool = False, last: int | None = None
    ) -> Iterator[tuple[int, int]]:
        passes.append(self.n)
        return reach(self, within, down=down, last=last)

    monkeypatch.setattr(Dag, "reach", counted)
    classes: list[int] = []
    bisector = Bisector(30_000, policy=Policy(calibrate=5))
    post = Bisector._post

    def noted(self: Bisector) -> Posterior:
        p = post(self)
        classes.append(len(p.sides[0][0]))
        return p

    monkeypatch.setattr(Bisector, "_post", noted)
    outcome, trace = run(bisector, flaky(17_100, 0.2, seed=1), k=4)
    assert outcome.kind is OutcomeKind.FOUND
    assert outcome.first_new == 17_100
    assert trace.evaluations == 68
    assert outcome.confidence is not None
    assert outcome.confidence >= 0.99
    assert passes == []
    assert classes
    assert max(classes) <= 2 * 68 + 2
