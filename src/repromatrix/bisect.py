"""Bisection over a history of candidates: a pure state machine, no I/O.

Candidates are the nodes of a `Dag` in topological order (a chain for releases or
`--first-parent`); node 0 is the *old* end, node n-1 the *new* end, and the answer is the
culprit: the first new commit in git bisect's sense, new with every parent old. Finding a
regression "old" is good and "new" bad; with `--find-fix` the reverse (git's --term-old).

`Bisector` keeps the runs at each candidate and proposes the next ones; the caller runs
them, any number at a time, and records what came back. Two modes:

- **trusting** (default): one run per commit, as `git bisect`. The suspects are the commits
  every new commit has as ancestor and no old commit has (git's `rev-list NEW --not OLD`);
  a round of K runs takes the commits whose ancestor counts among them are nearest the K
  inner (K+1)-quantiles (K = 1: git's `best_bisection`), so a chain takes log_{K+1}(N)
  rounds and a merged branch is halved, not linearised.
- **calibrated**: when asked (`Policy.calibrate`) or once verdicts contradict each other,
  the ends are repeated and the search follows the culprit's posterior (`flaky.py`): the K
  runs of a round are its mass quantiles (repeats and new points share slots), and it
  stops at `Policy.confidence`.

Skips (untestable, broken build, error, a different failure) say nothing, and K = 1 then
steps away as git does; when only they separate old from new the answer is the group.
"""

from __future__ import annotations

from repromatrix.bisect_state import BisectState
from repromatrix.bisect_terms import (
    Evaluator,
    Mode,
    Outcome,
    OutcomeKind,
    Policy,
    Progress,
    RoundHook,
    Trace,
    log_bound,
    run,
)
from repromatrix.dag import Dag, bits
from repromatrix.flaky import (
    Consensus,
    Posterior,
    Tally,
    Verdict,
    p_wrong_end,
    posterior,
    quantile_points,
)


class Bisector(BisectState):
    """Runs at the candidates of `shape` (a Dag, or n for a chain) and what to run next.

    `known` may hold verdicts from earlier runs (the result store); they count as if just
    recorded, so an interrupted bisection continues where it stopped. Nodes below
    `old_ends` are all old ends; with `bases` they are the merge bases git bisect tests
    first (`candidates.py`), and one that could only be skipped is set aside, as git does.
    """

    # -- mode ---------------------------------------------------------------------------

    @property
    def mode(self) -> Mode:
        self._refresh()
        return Mode.CALIBRATED if self._calibrate else Mode.TRUSTING

    def _refresh(self) -> None:
        """Switch to calibrated mode once trusting verdicts contradict each other."""
        if self._calibrate:
            return
        conflicts = self._conflicts()
        if conflicts:
            self._contradicted = conflicts
            self._calibrate = self.policy.auto_calibrate

    # -- the ends -----------------------------------------------------------------------

    def _end_problem(self) -> Outcome | None:
        for end in self._ends:
            t = self.tally(end)
            if t.runs and not t.informative and not self._pending[end]:
                return self._outcome(OutcomeKind.END_SKIPPED, end=end)
        for end in self._ends:
            agree, against = self._claims(end)
            wrong = OutcomeKind.OLD_END_IS_NEW if end in self.olds else OutcomeKind.NEW_END_IS_OLD
            spent = self.tally(end).runs >= self.policy.max_runs
            if self._pending[end]:
                continue
            if not self._calibrate:
                # Trusting: one contrary run is confirmed by a second before stopping.
                if against and not agree and (against >= 2 or spent):
                    return self._outcome(wrong, end=end)
                continue
            if agree + against < self._calibrate and not spent:
                continue
            p_wrong = p_wrong_end(agree, against)
            if p_wrong >= self.policy.confidence:
                return self._outcome(wrong, end=end)
            if p_wrong >= 0.5 and self.tally(end).runs >= self.policy.max_runs:
                return self._outcome(OutcomeKind.END_FLAKY, end=end)
        return None

    def _end_runs_wanted(self) -> list[int]:
        """Runs the ends need before anything else is worth running."""
        need: dict[int, int] = {}
        for end in self._ends:
            t, pend = self.tally(end), self._pending[end]
            agree, against = self._claims(end)
            room = max(0, self.policy.max_runs - t.runs - pend)
            if not self._calibrate:
                if t.runs + pend == 0:
                    need[end] = 1
                elif against == 1 and not agree and not pend:
                    need[end] = min(1, room)  # one contrary run: confirm before stopping
                continue
            want = max(0, self._calibrate - agree - against - pend)
            if not want and not pend and p_wrong_end(agree, against) >= 0.5:
                want = 1  # leaning towards wrong but not sure: look again
            need[end] = min(want, room)
        # Alternate the ends, so a round too small for both calibrations starts both.
        order: list[int] = []
        while any(need.values()):
            for end in self._ends:
                if need.get(end):
                    order.append(end)
                    need[end] -= 1
        return order

    def _ends_settled(self) -> bool:
        """Both ends have said what they are (no run of theirs is still wanted or out)."""
        return not self._end_runs_wanted() and not any(self._pending[e] for e in self._ends)

    # -- trusting mode ------------------------------------------------------------------

    def _trusting_result(self) -> Outcome | None:
        region = self._region()
        if any(n and region >> c & 1 for c, n in self._pending.items()):
            return None
        if any(c not in self._tallies for c in bits(region)):  # stops at the first free one
            return None
        suspects = tuple(bits(region))
        kind = OutcomeKind.FOUND if len(suspects) == 1 else OutcomeKind.AMBIGUOUS
        return self._outcome(kind, suspects=suspects)

    # -- calibrated mode ----------------------------------------------------------------

    def _post(self) -> Posterior:
        if self._posterior is None:
            prior = [float(c >= len(self.olds)) for c in range(self.n)] if self.olds[1:] else []
            self._posterior = posterior(self.dag, self._tallies, prior=prior)
        return self._posterior

    def _group(self, post: Posterior) -> tuple[list[int], float]:
        group, mass = post.group(self._testable())
        return [c for c in group if c >= len(self.olds)], mass

    def _informative(self, post: Posterior) -> list[tuple[int, float]]:
        """(candidate, P(it is new)) for those worth another run."""
        floor = (1 - self.policy.confidence) / 1000
        testable = self._testable()
        mass = post.mass
        return [
            (c, mass[c])
            for c in range(len(self.olds), self.n - 1)
            if testable >> c & 1
            and floor < mass[c] < 1 - floor
            and self.tally(c).runs + self._pending[c] < self.policy.max_runs
        ]

    def _unrun_suspects(self) -> list[int]:
        """The culprits about to be named that never ran: the model can favour a commit
        no run has seen (a fork point below bad branches), and none is named unseen."""
        group, mass = self._group(self._post())
        if mass < self.policy.confidence:
            return []
        return [c for c in group if not self.tally(c).runs and not self._pending[c]]

    def _calibrated_points(self, room: int) -> list[int]:
        first = self._unrun_suspects()[:room]
        mass = {c: m for c, m in self._informative(self._post()) if c not in first}
        left = {c: self.policy.max_runs - self.tally(c).runs - self._pending[c] for c in mass}
        runs = {c: self.tally(c).runs for c in mass}
        return first + quantile_points(mass, room - len(first), runs=runs, left=left)

    def _calibrated_result(self) -> Outcome | None:
        if not self._ends_settled() or any(self._pending.values()):
            return None
        post = self._post()
        group, mass = self._group(post)
        spent = self.runs - self._known_runs >= self.policy.budget(self.n)
        unseen = self._unrun_suspects()
        if mass >= self.policy.confidence and not unseen:
            kind = OutcomeKind.FOUND if len(group) == 1 else OutcomeKind.AMBIGUOUS
            return self._outcome(kind, suspects=tuple(group), post=post, confidence=mass)
        if unseen and not spent:
            return None  # run them first (`_calibrated_points`)
        if spent or not self._informative(post):
            return self._outcome(
                OutcomeKind.INCONCLUSIVE, suspects=tuple(group), post=post, confidence=mass
            )
        return None

    # -- answers ------------------------------------------------------------------------

    def _outcome(
        self,
        kind: OutcomeKind,
        *,
        suspects: tuple[int, ...] = (),
        end: int | None = None,
        post: Posterior | None = None,
        confidence: float | None = None,
    ) -> Outcome:
        first_new = suspects[-1] if suspects else None
        last_old = None
        if suspects:
            parents = self.dag.parents[suspects[0]]
            last_old = max(parents) if parents else None
        return Outcome(
            kind=kind,
            last_old=last_old,
            first_new=first_new if kind is not OutcomeKind.INCONCLUSIVE else None,
            suspects=suspects,
            end=end,
            mode=Mode.CALIBRATED if self._calibrate else Mode.TRUSTING,
            confidence=confidence,
            likely=post.likely(suspects) if post else None,
            runs=self.runs,
            repeats=self.runs - len(self._tallies),
            false_new=post.false_new if post else None,
            false_old=post.false_old if post else None,
            contradicted=self._contradicted,
            elsewhere=self._elsewhere if kind in (OutcomeKind.FOUND, OutcomeKind.AMBIGUOUS) else (),
        )

    @property
    def done(self) -> bool:
        return self._answer() is not None

    def _answer(self) -> Outcome | None:
        self._refresh()
        problem = self._end_problem()
        if problem is not None:
            return problem
        if self._end_runs_wanted() or any(self._pending[e] for e in self._ends):
            return None
        if self._calibrate:
            return self._calibrated_result()
        return self._trusting_result()

    def result(self) -> Outcome:
        """The answer; call when `done` (before that it raises)."""
        answer = self._answer()
        if answer is None:
            raise RuntimeError("bisection is not finished: evaluate next_points() first")
        return answer

    def progress(self) -> Progress:
        """Where the search stands (for the line printed after each round)."""
        if self.mode is Mode.TRUSTING:
            return Progress(mode=Mode.TRUSTING, left=max(self._region().bit_count() - 1, 0))
        group, sure = self._group(post := self._post())
        left = self.n - len(self.olds) - len(group)
        best, likely = group[-1], post.likely(group)
        return Progress(mode=Mode.CALIBRATED, left=left, best=best, confidence=sure, likely=likely)

    # -- choosing points ----------------------------------------------------------------

    def next_points(self, k: int = 1) -> list[int]:
        """Up to `k` runs to make next, as candidate indices (one index twice: two runs).

        The ends come first (twice for an end that contradicted its role once); slots
        left over test inner points as if the ends were right, so no slot idles. While
        calibrating, the ends' repeats (after their first run) take at most half of a
        round, the rest goes to the search. Every returned run is in flight until recorded.
        """
        if k < 1:
            raise ValueError("k must be at least 1")
        if self.done:
            return []
        wanted = self._end_runs_wanted()
        unrun = sum(1 for e in self._ends if not self.tally(e).runs + self._pending[e])
        share = min(k, max(unrun, k // 2, 1)) if self._calibrate else k
        first = wanted[:share]
        self._pending.update(first)
        if not self._calibrate and any(self.tally(e).runs for e in first):
            return sorted(first)  # confirming a contrary end: nothing else is worth it
        room = k - len(first)
        inner = self._calibrated_points(room) if self._calibrate else self._trusting_points(room, k)
        self._pending.update(inner)
        more = wanted[share : share + k - len(first) - len(inner)]  # nothing else to run
        self._pending.update(more)
        return sorted(first + inner + more)


__all__ = [
    "Bisector", "Consensus", "Dag", "Evaluator", "Mode", "Outcome", "OutcomeKind", "Policy",
    "Progress", "RoundHook", "Tally", "Trace", "Verdict", "log_bound", "run",
]  # fmt: skip
