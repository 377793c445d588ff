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

The prior over the rates favours stable repros, which suits choosing what to run but not
stating how sure an answer is: with the rates integrated out that way, a repro wrong 30%
of the time on both sides got one "99%" answer in ten wrong, one rate explaining the runs
the other caused. So each candidate's probability is the mean of its posteriors under the
pairs of rates the runs leave plausible (`PLAUSIBLE`), and an answer is stated as sure as
the least favourable of those pairs makes it (`Posterior.sure`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property

from repromatrix.dag import Dag

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


def own_rate_evidence(own: tuple[float, float], rest: tuple[float, float]) -> float:
    """log Bayes factor for one commit's runs (false, true) having a false rate of their
    own over sharing the rate of the other commits on its side (`rest`, likewise counted):
    large when a commit next to the culprit is flaky where the rest are not, which the
    shared rates of `posterior` cannot see."""
    both = (own[0] + rest[0], own[1] + rest[1])
    return log_marginal(*own) + log_marginal(*rest) - log_marginal(*both)


#: The rates an end's runs are read at: those of the grid and a coin's, which tells nothing.
_END_RATES = (*(r for r, _ in RATE_GRID), 0.5)


def p_wrong_end(agree: int, against: int) -> float:
    """P(an end is not what it was given as | its own runs), each reading of it taken at the
    false rate that explains its runs best, up to a coin's: only runs that a repro wrong
    half the time would hardly produce make an end wrong. (With the rates integrated out
    under their prior, which favours stable repros, five contrary runs read as 99.7% wrong,
    and a repro wrong 45-50% of the time told one bisection in six its good end was bad.)"""
    if not against:
        return 0.0
    right = max(r**against * (1 - r) ** agree for r in _END_RATES)
    wrong = max(r**agree * (1 - r) ** against for r in _END_RATES)
    return wrong / (wrong + right)


@dataclass(frozen=True, kw_only=True)
class Posterior:
    """P(X is the culprit) for each candidate X (node 0, the old end, never is)."""

    dag: Dag
    probability: tuple[float, ...]
    #: Posterior means of the two rates under the most likely culprit.
    false_new: float
    false_old: float
    #: log P(runs | X, rate) per class of candidates X (`classes`), for each rate of false
    #: "new" and of false "old" (`RATE_GRID` order): their sum is log P(runs | X, pair of
    #: rates).
    sides: tuple[tuple[list[float], ...], tuple[list[float], ...]] = ((), ())
    #: Each candidate's class: those of one class have one prior and the same runs below
    #: them, so the same likelihood (-1: a candidate that cannot be the culprit).
    classes: tuple[int, ...] = ()
    #: The pairs of rates the runs leave plausible (`PLAUSIBLE`): (index of the rate of
    #: false "new", of false "old", log P(runs | pair) summed over the candidates).
    pairs: tuple[tuple[int, int, float], ...] = ()

    #: `group` of each set of testable commits asked (a round asks several times).
    _groups: dict[int, tuple[list[int], float]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @cached_property
    def mass(self) -> list[float]:
        """For each commit c: P(c is new) = P(the culprit is c or one of its ancestors)."""
        return self.dag.over_ancestors({x: p for x, p in enumerate(self.probability) if p > 1e-300})

    def best(self) -> int:
        return max(range(1, self.dag.n), key=lambda x: (self.probability[x], -x))

    def likely(self, members: Sequence[int]) -> float:
        """P(the culprit is one of `members`), the plausible pairs of rates weighed alike."""
        return sum(self.probability[x] for x in members)

    def sure(self, members: Sequence[int]) -> float:
        """P(the culprit is one of `members`) under the least favourable plausible pair of
        rates: what the answer can be said to be at least, whichever of them is true."""
        worst = self.likely(members)
        side_a, side_b = self.sides
        size = Counter(self.classes[x] for x in members)
        size.pop(-1, None)
        for i, j, total in self.pairs:
            a, b = side_a[i], side_b[j]
            sure = sum(n * math.exp(a[c] + b[c] - total) for c, n in size.items())
            worst = min(worst, sure)
        return worst

    def group(self, testable: int) -> tuple[list[int], float]:
        """The best guess and the candidates no testable commit can tell apart from it
        (those whose testable descendants are the same: only skips lie between), with
        their total probability (`sure`)."""
        if testable not in self._groups:
            group = self._apart(testable)
            self._groups[testable] = (group, self.sure(group))
        group, sure = self._groups[testable]
        return list(group), sure

    def _apart(self, testable: int) -> list[int]:
        """`group`'s members, oldest first: walked out from the best guess, up through
        parents, then down through children, as far as the testable descendants stay its.
        (A commit between the best guess and a member has them too, and one whose have
        another is followed by no member beyond it, so no other commit can be one.) A
        pass over every commit did this, six times a round, each a bitset of the whole
        history per commit: a round of a 30,000-commit search took seconds."""
        dag, best = self.dag, self.best()
        sig = dag.descendants(best) & testable
        members = {best}
        for links in (dag.parents, dag.children):  # its ancestors, then its descendants
            todo = [best]
            while todo:
                for z in links[todo.pop()]:
                    if z and z not in members and dag.descendants(z) & testable == sig:
                        members.add(z)
                        todo.append(z)
        return sorted(members)


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


#: How much less likely than the likeliest pair of rates a pair may be and still be
#: weighed (a likelihood-ratio region). Integrating the rates out with their prior alone,
#: as before, stated 99% for answers that a repro wrong 30-35% of the time on both sides
#: got wrong one time in ten, or in two: the prior's weight on stable repros let one rate
#: explain runs the other caused. A tenth still let 2 of 20 such answers be wrong; a
#: hundredth let none be (in 200 bisects), for about 18% more runs of a calibrated stable
#: repro (a thousandth: 30%). Trusting mode, the default, never weighs rates.
PLAUSIBLE = math.log(0.01)


def _logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    if top == -math.inf:
        return top
    return top + math.log(sum(math.exp(v - top) for v in values))


def posterior(dag: Dag, tallies: Mapping[int, Tally], *, prior: Sequence[float] = ()) -> Posterior:
    """The posterior of the culprit given every run so far (see the module docstring).

    Each candidate's probability is the mean over the plausible pairs of rates of its
    posterior under that pair (so the search resolves the doubt of each), and an answer
    is as sure as the least favourable of them makes it (`Posterior.sure`).

    A candidate's likelihood depends only on its prior and the runs below it, so the
    candidates that share those (on a line, every commit between two that ran) form one
    class, weighed once with its size: the pairs of rates cost what the classes number,
    a few per commit that ran, not what the history does. Each of the 144 pairs summed
    every candidate, 30,000 of them a round in a calibrated search of such a history: 4 s
    of planning a run, where the repro took a tenth of one."""
    new_at = {c: float(t.new) for c, t in tallies.items() if t.new}
    old_at = {c: float(t.old) for c, t in tallies.items() if t.old}
    total_new, total_old = sum(new_at.values()), sum(old_at.values())
    # For culprit X, the commits that are new are X's descendants: sum their runs.
    new_below = dag.over_descendants(new_at)
    old_below = dag.over_descendants(old_at)
    allowed = [x for x in range(1, dag.n) if not prior or prior[x] > 0]
    index: dict[tuple[float, float, float], int] = {}
    of = [-1] * dag.n  # each candidate's class (-1: none, never the culprit)
    for x in allowed:
        key = (math.log(prior[x]) if prior else 0.0, new_below[x], old_below[x])
        of[x] = index.setdefault(key, len(index))
    keys = list(index)
    size = Counter(of[x] for x in allowed)
    log_size = [math.log(size[c]) for c in range(len(keys))]
    # log P(runs | X, a) for each rate a of false "new", and likewise for rates b of false
    # "old", per class of X.
    side_a = tuple(
        [base + (total_new - a) * lr + (total_old - b) * l1r for base, a, b in keys]
        for lr, l1r, _ in _LOG_PRIOR
    )
    side_b = tuple([b * lr + a * l1r for _, a, b in keys] for lr, l1r, _ in _LOG_PRIOR)
    weighed = [
        (wa + wb + total, i, j, total)
        for i, (a_logs, (_, _, wa)) in enumerate(zip(side_a, _LOG_PRIOR, strict=True))
        for j, (b_logs, (_, _, wb)) in enumerate(zip(side_b, _LOG_PRIOR, strict=True))
        for total in [
            _logsumexp([u + v + n for u, v, n in zip(a_logs, b_logs, log_size, strict=True)])
        ]
    ]
    top = max(w for w, *_ in weighed)
    kept = tuple((i, j, total) for w, i, j, total in weighed if w - top >= PLAUSIBLE)
    each = [0.0] * len(keys)
    for i, j, total in kept:
        a_logs, b_logs = side_a[i], side_b[j]
        for c in range(len(keys)):
            each[c] += math.exp(a_logs[c] + b_logs[c] - total) / len(kept)
    probability = tuple(each[c] if c >= 0 else 0.0 for c in of)
    # The rates integrated out with their prior: what each rate likely is.
    bayes = [
        base + log_marginal(b, a) + log_marginal(total_new - a, total_old - b)
        for base, a, b in keys
    ]
    best = max(range(1, dag.n), key=lambda x: (bayes[of[x]] if of[x] >= 0 else -math.inf, -x))
    a, b = new_below[best], old_below[best]
    return Posterior(
        dag=dag,
        probability=probability,
        false_new=rate_mean(total_new - a, total_old - b),
        false_old=rate_mean(b, a),
        sides=(side_a, side_b),
        classes=tuple(of),
        pairs=kept,
    )


__all__ = [
    "RATE_GRID",
    "Consensus",
    "Posterior",
    "Tally",
    "Verdict",
    "log_marginal",
    "own_rate_evidence",
    "p_wrong_end",
    "posterior",
    "quantile_points",
    "rate_mean",
]
