"""Bisection over an ordered list of candidates: a pure state machine, no I/O.

The candidates run oldest → newest. Index 0 is the *old* end (behaviour as it used to be)
and index N-1 the *new* end (behaviour as it is now); the answer is the first candidate
showing the new behaviour. Finding a regression, "old" is good and "new" is bad; finding
a fix (`--find-fix`), "old" is bad and "new" is good. The words old/new (as in
`git bisect --term-old/--term-new`) keep one algorithm for both directions.

`Bisector` only keeps verdicts and proposes points; the caller evaluates them, in any
order and any number at a time, and records what came back. With K slots, `next_points(K)`
splits the live interval into K+1 parts (multisection), so the rounds needed are about
log_{K+1}(N); with K = 1 it is classic bisection. A skipped candidate (untestable, broken
build, error) is replaced by its nearest untested neighbour, and when only skipped
candidates remain between the last old and the first new one the answer is that whole
range, as `git bisect` reports "the first bad commit could be any of".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class Verdict(StrEnum):
    OLD = "old"  # behaves as the old end does
    NEW = "new"  # behaves as the new end does
    SKIP = "skip"  # says nothing: untestable, broken build, error, timeout


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


@dataclass(frozen=True, kw_only=True)
class Outcome:
    kind: OutcomeKind
    #: Last candidate known old / first known new (for FOUND and AMBIGUOUS).
    last_old: int | None = None
    first_new: int | None = None
    #: Candidates one of which is the first new one, oldest first (FOUND: just one).
    suspects: tuple[int, ...] = ()
    #: Which end failed (END_SKIPPED): 0 or N-1.
    end: int | None = None

    @property
    def ok(self) -> bool:
        return self.kind in (OutcomeKind.FOUND, OutcomeKind.AMBIGUOUS)


class Bisector:
    """Verdicts on `n` ordered candidates and the points worth evaluating next.

    `known` may hold verdicts from earlier runs (the result store); they are used as if
    they had just been recorded, so an interrupted bisection continues where it stopped.
    """

    def __init__(self, n: int, known: Mapping[int, Verdict] | None = None) -> None:
        if n < 2:
            raise ValueError(f"bisection needs at least two candidates (the two ends), got {n}")
        self.n = n
        self._verdicts: dict[int, Verdict] = {}
        self._pending: set[int] = set()
        for index, verdict in (known or {}).items():
            self.record(index, verdict)

    # -- state --------------------------------------------------------------------------

    @property
    def pending(self) -> frozenset[int]:
        return frozenset(self._pending)

    def record(self, index: int, verdict: Verdict) -> None:
        if not 0 <= index < self.n:
            raise IndexError(f"candidate {index} out of range 0..{self.n - 1}")
        self._verdicts[index] = verdict
        self._pending.discard(index)

    def bounds(self) -> tuple[int, int]:
        """(last old, first new) as far as known, assuming the ends are right.

        The first new is the smallest index known new (the new end when none is); the last
        old is the largest index known old below it (the old end when none is). Verdicts
        that contradict monotonicity (old after the first new) are ignored, as git does.
        """
        first_new = min(
            (i for i, v in self._verdicts.items() if v is Verdict.NEW), default=self.n - 1
        )
        last_old = max(
            (i for i, v in self._verdicts.items() if v is Verdict.OLD and i < first_new),
            default=0,
        )
        return last_old, first_new

    def _end_problem(self) -> Outcome | None:
        old_end = self._verdicts.get(0)
        new_end = self._verdicts.get(self.n - 1)
        if old_end is Verdict.NEW:
            return Outcome(kind=OutcomeKind.OLD_END_IS_NEW, end=0)
        if new_end is Verdict.OLD:
            return Outcome(kind=OutcomeKind.NEW_END_IS_OLD, end=self.n - 1)
        if old_end is Verdict.SKIP:
            return Outcome(kind=OutcomeKind.END_SKIPPED, end=0)
        if new_end is Verdict.SKIP:
            return Outcome(kind=OutcomeKind.END_SKIPPED, end=self.n - 1)
        return None

    def _untested(self, lo: int, hi: int) -> list[int]:
        """Candidates strictly between lo and hi with no verdict and not in flight."""
        return [i for i in range(lo + 1, hi) if i not in self._verdicts and i not in self._pending]

    @property
    def done(self) -> bool:
        if self._end_problem() is not None:
            return True
        if 0 not in self._verdicts or self.n - 1 not in self._verdicts:
            return False
        lo, hi = self.bounds()
        return not self._untested(lo, hi) and not any(lo < i < hi for i in self._pending)

    def result(self) -> Outcome:
        """The answer; call when `done` (before that it raises)."""
        problem = self._end_problem()
        if problem is not None:
            return problem
        if not self.done:
            raise RuntimeError("bisection is not finished: evaluate next_points() first")
        lo, hi = self.bounds()
        suspects = tuple(range(lo + 1, hi + 1))
        kind = OutcomeKind.FOUND if len(suspects) == 1 else OutcomeKind.AMBIGUOUS
        return Outcome(kind=kind, last_old=lo, first_new=hi, suspects=suspects)

    # -- choosing points ------------------------------------------------------------------

    def next_points(self, k: int = 1) -> list[int]:
        """Up to `k` candidates to evaluate next (marked in flight until recorded).

        The ends come first; slots left over in that round test interior points as if the
        ends were right, so no slot idles. Inside, the live interval (last old, first new)
        is split into k+1 equal parts; each cut goes to the nearest untested candidate.
        """
        if k < 1:
            raise ValueError("k must be at least 1")
        if self.done:
            return []
        chosen: list[int] = []
        for end in (0, self.n - 1):
            if end not in self._verdicts and end not in self._pending and len(chosen) < k:
                chosen.append(end)
        self._pending.update(chosen)
        lo, hi = self.bounds()
        room = k - len(chosen)
        if room > 0:
            interior = self._cuts(lo, hi, room)
            chosen.extend(interior)
            self._pending.update(interior)
        return sorted(chosen)

    def _cuts(self, lo: int, hi: int, k: int) -> list[int]:
        free = self._untested(lo, hi)
        if len(free) <= k:
            return free
        # Skipped and in-flight candidates still divide the interval: a cut lands on the
        # ideal position's nearest free neighbour, ties going to the older side.
        span = hi - lo
        picked: list[int] = []
        taken: set[int] = set()
        for j in range(1, k + 1):
            ideal = lo + span * j / (k + 1)
            best = min(
                (i for i in free if i not in taken),
                key=lambda i: (abs(i - ideal), i),
            )
            picked.append(best)
            taken.add(best)
        return sorted(picked)


# -- a driver for the pure algorithm -------------------------------------------------------

#: Evaluates a batch of candidate indices and returns a verdict for each (the I/O lives
#: behind this callable: a fake in tests and the benchmark, Session.run_cells in the CLI).
Evaluator = Callable[[Sequence[int]], Mapping[int, Verdict]]


@dataclass(kw_only=True)
class Trace:
    """What a bisection cost: rounds and evaluations, in order."""

    rounds: list[tuple[int, ...]] = field(default_factory=list)

    @property
    def evaluations(self) -> int:
        return sum(len(r) for r in self.rounds)


#: Told after each round: (round number from 1, the points evaluated in it).
RoundHook = Callable[[int, Sequence[int]], None]


def run(
    bisector: Bisector,
    evaluate: Evaluator,
    *,
    k: int = 1,
    on_round: RoundHook | None = None,
) -> tuple[Outcome, Trace]:
    """Evaluate rounds of `k` points until the bisector is done."""
    trace = Trace()
    while not bisector.done:
        points = bisector.next_points(k)
        if not points:  # pragma: no cover - done guarantees progress; kept as a guard
            break
        got = evaluate(points)
        missing = [p for p in points if p not in got]
        if missing:
            raise ValueError(f"the evaluator returned no verdict for candidates {missing}")
        for p in points:
            bisector.record(p, got[p])
        trace.rounds.append(tuple(points))
        if on_round is not None:
            on_round(len(trace.rounds), points)
    return bisector.result(), trace


def log_bound(n: int, k: int) -> int:
    """ceil(log_{k+1}(n)): rounds multisection needs for n candidates, k points a round."""
    if n <= 1:
        return 0
    rounds, reach = 0, 1
    while reach < n:  # integer loop: math.log's rounding would misjudge exact powers
        reach *= k + 1
        rounds += 1
    return rounds


__all__ = [
    "Bisector",
    "Evaluator",
    "Outcome",
    "OutcomeKind",
    "Trace",
    "Verdict",
    "log_bound",
    "run",
]
