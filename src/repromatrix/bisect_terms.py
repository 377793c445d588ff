"""The words of a bisection: what it may spend (`Policy`), how it trusts the repro
(`Mode`), how it ends (`Outcome`, `OutcomeKind`, `Progress`), what it cost (`Trace`), and
`run`, the loop that drives a search with an evaluator (the I/O behind a callable)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from repromatrix.flaky import Verdict


class OutcomeKind(StrEnum):
    #: One candidate is the first new one.
    FOUND = "found"
    #: The first new candidate is one of several (skipped ones stand in between).
    AMBIGUOUS = "ambiguous"
    #: The old end already shows the new behaviour (e.g. the "good" commit is bad).
    OLD_END_IS_NEW = "old_end_is_new"
    #: The new end still shows the old behaviour (e.g. the "bad" commit is good).
    NEW_END_IS_OLD = "new_end_is_old"
    #: An end could not be evaluated: without it nothing brackets the change.
    END_SKIPPED = "end_skipped"
    #: An end says old and new about equally often: the repro cannot tell them apart there.
    END_FLAKY = "end_flaky"
    #: Runs ran out (`Policy.max_runs`, `max_evaluations`) before the asked confidence.
    INCONCLUSIVE = "inconclusive"


class Mode(StrEnum):
    TRUSTING = "trusting"
    CALIBRATED = "calibrated"


@dataclass(frozen=True, kw_only=True)
class Policy:
    #: The answer's probability at which a calibrated search stops (1 - chance of error).
    confidence: float = 0.99
    #: Runs of each end before the search (0: calibrate only when verdicts contradict).
    calibrate: int = 0
    #: Runs of each end once verdicts contradict each other.
    auto_calibrate: int = 5
    #: Most runs of one commit (syzkaller runs each commit 10 times; near the boundary a
    #: repro wrong one time in five needs more to reach 99%).
    max_runs: int = 20
    #: Most runs in all (default: `budget`).
    max_evaluations: int | None = None

    def budget(self, n: int) -> int:
        """Most runs in all for `n` candidates: `max_evaluations`, else half of `max_runs`
        per halving (raising it, as "inconclusive" advises, raises both)."""
        if self.max_evaluations is not None:
            return self.max_evaluations
        per_step = max(1, self.max_runs // 2)
        return max(3 * self.max_runs, per_step * (math.ceil(math.log2(n)) + 2))

    def __post_init__(self) -> None:
        if not 0.5 < self.confidence < 1:
            raise ValueError("confidence must be between 0.5 and 1")
        if self.calibrate < 0 or self.auto_calibrate < 1 or self.max_runs < 1:
            raise ValueError("calibrate >= 0, auto_calibrate >= 1 and max_runs >= 1")


@dataclass(frozen=True, kw_only=True)
class Outcome:
    kind: OutcomeKind
    #: Parent of the first new candidate known old / the first new (FOUND, AMBIGUOUS).
    last_old: int | None = None
    first_new: int | None = None
    #: Candidates one of which is the first new one, oldest first (FOUND: just one).
    suspects: tuple[int, ...] = ()
    #: Which end failed (end problems): 0 or N-1.
    end: int | None = None
    mode: Mode = Mode.TRUSTING
    #: P(the answer is right) in calibrated mode; None when trusting (not measured).
    confidence: float | None = None
    #: The confidence the calibrated search was asked to reach (`Policy.confidence`).
    asked: float | None = None
    #: P(the answer is right) with the plausible rates weighed alike (calibrated): how likely
    #: a best guess is, where `confidence` is the least that any of them gives it.
    likely: float | None = None
    #: Runs behind the answer (stored ones included) and how many were repeats.
    runs: int = 0
    repeats: int = 0
    #: Estimated rates of false "new" (at old commits) and false "old" (calibrated only).
    false_new: float | None = None
    false_old: float | None = None
    #: Candidates whose verdicts contradicted each other (what made it calibrate).
    contradicted: tuple[int, ...] = ()
    #: New candidates the answer is not below: another change, on another branch (the
    #: search followed one bad commit, as git follows its one bad ref).
    elsewhere: tuple[int, ...] = ()
    #: New candidates below an old one, each said twice (trusting): the history changed
    #: more than once, and the answer is a first new one after the last old one tested.
    changed: tuple[int, ...] = ()

    @property
    def ok(self) -> bool:
        return self.kind in (OutcomeKind.FOUND, OutcomeKind.AMBIGUOUS)


@dataclass(frozen=True, kw_only=True)
class Progress:
    mode: Mode
    #: Candidates still suspected (trusting) or outside the best guess (calibrated).
    left: int
    best: int | None = None
    #: How sure the best guess is: the least any plausible pair of false rates gives it
    #: (`confidence`, what an answer states), and its probability, the pairs weighed alike.
    confidence: float | None = None
    likely: float | None = None
    #: The oldest of the best guess's group and its size: commits only skips part from
    #: `best`, whose probability is the group's (calibrated).
    first: int | None = None
    size: int = 1


@dataclass(kw_only=True)
class Trace:
    """What a bisection cost: rounds and runs, in order."""

    rounds: list[tuple[int, ...]] = field(default_factory=list)

    @property
    def evaluations(self) -> int:
        return sum(len(r) for r in self.rounds)


def log_bound(n: int, k: int) -> int:
    """ceil(log_{k+1}(n)): rounds multisection needs for n candidates, k points a round."""
    if n <= 1:
        return 0
    rounds, reach = 0, 1
    while reach < n:  # integer loop: math.log's rounding would misjudge exact powers
        reach *= k + 1
        rounds += 1
    return rounds


# -- a driver for the search --------------------------------------------------------------


class Search(Protocol):
    """What `run` drives (`bisect.Bisector`)."""

    @property
    def done(self) -> bool: ...

    def next_points(self, k: int = 1) -> list[int]: ...

    def record(self, index: int, verdict: Verdict) -> None: ...

    def result(self) -> Outcome: ...


#: Runs a batch of candidate indices (an index listed twice runs twice) and returns one
#: verdict per entry, in order (the I/O lives behind this callable: a fake in tests and the
#: benchmark, Session.run_cells in the CLI).
Evaluator = Callable[[Sequence[int]], Sequence[Verdict]]


#: Told after each round: (round number from 1, the points evaluated in it).
RoundHook = Callable[[int, Sequence[int]], None]


def run(
    bisector: Search,
    evaluate: Evaluator,
    *,
    k: int | Callable[[], int] = 1,
    on_round: RoundHook | None = None,
) -> tuple[Outcome, Trace]:
    """Evaluate rounds of `k` runs until the bisector is done (`k` a function: asked
    before each round, as a Ray cluster's slots go with its nodes)."""
    trace = Trace()
    while not bisector.done:
        points = bisector.next_points(k() if callable(k) else k)
        if not points:  # pragma: no cover - done guarantees progress; kept as a guard
            break
        got = list(evaluate(points))
        if len(got) != len(points):
            raise ValueError(f"the evaluator returned {len(got)} verdicts for {len(points)} runs")
        for p, verdict in zip(points, got, strict=True):
            bisector.record(p, verdict)
        trace.rounds.append(tuple(points))
        if on_round is not None:
            on_round(len(trace.rounds), points)
    return bisector.result(), trace


__all__ = [
    "Evaluator",
    "Mode",
    "Outcome",
    "OutcomeKind",
    "Policy",
    "Progress",
    "RoundHook",
    "Search",
    "Trace",
    "log_bound",
    "run",
]
