"""How sure a bisection is when one run of a repro is not proof (pure, no I/O).

A flaky repro says "new" at a commit that is old with some rate `a` (a false "regressed" on
a good commit when looking for a regression) and "old" at a commit that is new with some
rate `b`. Neither rate is known, so neither is guessed: both are integrated out over a grid
with a prior (below), which makes every confidence this module gives already account for
how little the runs so far say about the rates.

The unknown is the culprit X: the first new commit (git bisect's "first bad commit"). If X
is the culprit, a commit c is new exactly when X is c or one of its ancestors. Given the
runs at every commit (`Tally`), the posterior of X is

    P(X | runs) ∝ M_b(old runs at X's descendants, new runs there)
                × M_a(new runs elsewhere, old runs elsewhere)

where M_r(false, true) = Σ_g prior_g · r_g^false · (1 - r_g)^true (the two rates have
independent priors, so the double sum factorises). The runs at the old end, which no
candidate precedes, count toward `a` alone and those at the new end toward `b` alone:
repeating the two ends is exactly the calibration of the two rates.

This is the Bayesian form of noisy binary search (Horstein; Waeber, Frazier and Henderson,
"Bisection search with noisy responses", 2013); git-bayesect applies it to `git bisect`.
Here it is combined with multisection: the K points of a round are the K inner
(K+1)-quantiles of the posterior mass, and two quantiles landing on one commit make a
repeat of that commit.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property

from repromatrix.dag import Dag, bits

#: The rates considered and their prior weight. Rates above 1/2 are left out: a repro
#: wrong more often than right is not a repro of this regression. Mass near zero
#: reflects that most repros are stable; the rest spreads over what flaky tests show.
RATE_GRID: tuple[tuple[float, float], ...] = (
    (0.001, 0.20),
    (0.01, 0.10),
    (0.03, 0.08),
    (0.06, 0.08),
    (0.10, 0.08),
    (0.15, 0.08),
    (0.20, 0.08),
    (0.25, 0.08),
    (0.30, 0.07),
    (0.35, 0.06),
    (0.40, 0.05),
    (0.45, 0.04),
)
_LOG_PRIOR = tuple((math.log(r), math.log1p(-r), math.log(w)) for r, w in RATE_GRID)


class Verdict(StrEnum):
    OLD = "old"  # behaves as the old end does
    NEW = "new"  # behaves as the new end does
    SKIP = "skip"  # says nothing: untestable, broken build, error, timeout, other failure


class Consensus(StrEnum):
    """What the runs at one commit say together."""

    OLD = "old"
    NEW = "new"
    #: Its runs disagree (some old, some new).
    FLAKY = "flaky"
    #: No run said old or new.
    SKIP = "skip"


@dataclass(frozen=True, kw_only=True)
class Tally:
    """The runs at one commit, counted."""

    old: int = 0
    new: int = 0
    skip: int = 0

    @classmethod
    def of(cls, verdicts: Sequence[Verdict]) -> Tally:
        return cls(
            old=sum(v is Verdict.OLD for v in verdicts),
            new=sum(v is Verdict.NEW for v in verdicts),
            skip=sum(v is Verdict.SKIP for v in verdicts),
        )

    def plus(self, verdict: Verdict) -> Tally:
        return Tally(
            old=self.old + (verdict is Verdict.OLD),
            new=self.new + (verdict is Verdict.NEW),
            skip=self.skip + (verdict is Verdict.SKIP),
        )

    @property
    def runs(self) -> int:
        return self.old + self.new + self.skip

    @property
    def informative(self) -> int:
        return self.old + self.new

    @property
    def consensus(self) -> Consensus:
        if self.old and self.new:
            return Consensus.FLAKY
        if self.new:
            return Consensus.NEW
        if self.old:
            return Consensus.OLD
        return Consensus.SKIP


def log_marginal(false: float, true: float) -> float:
    """log Σ_g prior_g · r_g^false · (1 - r_g)^true (counts may be fractional sums)."""
    terms = [w + false * lr + true * l1r for lr, l1r, w in _LOG_PRIOR]
    top = max(terms)
    return top + math.log(sum(math.exp(t - top) for t in terms))


def rate_mean(false: float, true: float) -> float:
    """Posterior mean of a rate after `false` wrong runs among `false + true`."""
    terms = [w + false * lr + true * l1r for lr, l1r, w in _LOG_PRIOR]
    top = max(terms)
    weights = [math.exp(t - top) for t in terms]
    return sum(r * wt for (r, _), wt in zip(RATE_GRID, weights, strict=True)) / sum(weights)


def p_wrong_end(agree: int, against: int) -> float:
    """P(an end is not what it was given as | its own runs), the rates integrated out."""
    if not against:
        return 0.0
    right = log_marginal(against, agree)
    wrong = log_marginal(agree, against)
    return 1 / (1 + math.exp(right - wrong))


@dataclass(frozen=True, kw_only=True)
class Posterior:
    """P(X is the culprit) for each candidate X (node 0, the old end, never is)."""

    dag: Dag
    probability: tuple[float, ...]
    #: Posterior means of the two rates under the most likely culprit.
    false_new: float
    false_old: float

    @cached_property
    def mass(self) -> list[float]:
        """For each commit c: P(c is new) = P(the culprit is c or one of its ancestors)."""
        return self.dag.over_ancestors({x: p for x, p in enumerate(self.probability) if p > 1e-300})

    def best(self) -> int:
        return max(range(1, self.dag.n), key=lambda x: (self.probability[x], -x))

    def group(self, testable: int) -> tuple[list[int], float]:
        """The best guess and the candidates no testable commit can tell apart from it
        (those whose testable descendants are the same: only skips lie between), with
        their total probability."""
        dag, best = self.dag, self.best()
        sig = dag.desc[best] & testable
        near = dag.anc[best] | dag.desc[best]
        group = [y for y in bits(near & ~1) if dag.desc[y] & testable == sig]
        return group, sum(self.probability[y] for y in group)


def quantile_points(
    mass: Mapping[int, float], room: int, *, runs: Mapping[int, int], left: Mapping[int, int]
) -> list[int]:
    """`room` runs at the commits whose P(new) is nearest the inner (room+1)-quantiles;
    two quantiles landing on one commit make a repeat of it. Ties go to the commit with
    fewer runs, then the older one; `left` caps the runs each commit may still get."""
    picked: list[int] = []
    extra: Counter[int] = Counter()
    for j in range(1, room + 1):
        target = j / (room + 1)
        usable = [c for c in mass if extra[c] < left.get(c, 0)]
        if not usable:
            break
        c = min(usable, key=lambda c: (abs(mass[c] - target), runs.get(c, 0) + extra[c], c))
        picked.append(c)
        extra[c] += 1
    return picked


def posterior(dag: Dag, tallies: Mapping[int, Tally], *, prior: Sequence[float] = ()) -> Posterior:
    """The posterior of the culprit given every run so far (see the module docstring)."""
    new_at = {c: float(t.new) for c, t in tallies.items() if t.new}
    old_at = {c: float(t.old) for c, t in tallies.items() if t.old}
    total_new, total_old = sum(new_at.values()), sum(old_at.values())
    # For culprit X, the commits that are new are X's descendants: sum their runs.
    new_below = dag.over_descendants(new_at)
    old_below = dag.over_descendants(old_at)
    logs = [-math.inf] * dag.n
    for x in range(1, dag.n):
        if prior and prior[x] <= 0:
            continue
        a, b = new_below[x], old_below[x]
        logs[x] = log_marginal(b, a) + log_marginal(total_new - a, total_old - b)
        if prior:
            logs[x] += math.log(prior[x])
    top = max(logs)
    weights = [math.exp(v - top) if v > -math.inf else 0.0 for v in logs]
    norm = sum(weights)
    probability = tuple(w / norm for w in weights)
    best = max(range(1, dag.n), key=lambda x: (probability[x], -x))
    a, b = new_below[best], old_below[best]
    return Posterior(
        dag=dag,
        probability=probability,
        false_new=rate_mean(total_new - a, total_old - b),
        false_old=rate_mean(b, a),
    )


__all__ = [
    "RATE_GRID",
    "Consensus",
    "Posterior",
    "Tally",
    "Verdict",
    "log_marginal",
    "p_wrong_end",
    "posterior",
    "quantile_points",
    "rate_mean",
]
