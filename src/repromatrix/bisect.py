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

import math

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
    own_rate_evidence,
    p_wrong_end,
    posterior,
    quantile_points,
)

#: A commit next to the answer (`Bisector._doubts`) weighed against the rate its side
#: shares (a log Bayes factor, `own_rate_evidence`): at most OWN_RATE_EXPLAINED the shared
#: rate explains its runs; from OWN_RATE on they have a rate of their own, and they alone
#: must say its side; in between, it and its side's ends run again while they may. On 240
#: seeded bisections whose commits next to the culprit are wrong 30% of the time (stable
#: ends, --calibrate 5), 18 answers were wrong at 99% before, 1 after (an old commit that
#: said "new" 7 times in 10); a uniform 20% false "new" or "old" (160) kept 0 wrong and
#: its 1 inconclusive. With 1 in place of 3, 4 of 80 of those were inconclusive; with 5,
#: 2 of 20 near answers wrong. A stable repro has no disagreeing runs: nothing changes.
OWN_RATE = math.log(20)
OWN_RATE_EXPLAINED = math.log(3)
#: Commits this near the answer (in candidate order) may share its flakiness: a boundary
#: commit is weighed against its side's commits further away, and its side's ends.
NEIGHBOURS = 5


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
        if conflicts and not self._ends_swapped():
            self._contradicted = conflicts
            self._calibrate = self.policy.auto_calibrate

    def _ends_swapped(self) -> bool:
        """Whether the verdicts contradict each other only as those of a history that
        changed once the other way do: an end's every run says the other side, and with
        the sides swapped some commit is a suspect. The ends were given the wrong way round
        (stored runs of a bisect, read by a --find-fix): trusting, a second run of that end
        says so; taken for a flaky repro, the stable end ran 7 times to say the same."""
        claims = [self._claims(end) for end in self._ends]
        if not any(against and not agree for agree, against in claims):
            return False
        olds, news = self._split(ends=True)
        return bool(self.dag.suspects(news, olds))

    # -- the ends -----------------------------------------------------------------------

    def _end_problem(self) -> Outcome | None:
        for end in self._ends:
            t = self.tally(end)
            # Calibrated, an end runs N times anyway: a run that errored (a repro that
            # errors now and then) is one of them, and only N that said nothing stop it.
            said_nothing = t.runs >= min(self._calibrate or 1, self.policy.max_runs)
            if t.runs and not t.informative and not self._pending[end] and said_nothing:
                return self._outcome(OutcomeKind.END_SKIPPED, end=end)
        for end in self._ends:
            agree, against = self._claims(end)
            wrong = OutcomeKind.OLD_END_IS_NEW if end in self.olds else OutcomeKind.NEW_END_IS_OLD
            spent = self.tally(end).runs >= self.policy.max_runs
            if self._pending[end]:
                continue
            if not self._calibrate:
                # Trusting: one contrary run is confirmed by a second before stopping, and
                # the other ends have run: a regression is judged against the bad end's
                # failure (another bug's is no verdict), unknown until it ran.
                if against and not agree and (against >= 2 or spent) and self._others_ran(end):
                    return self._outcome(wrong, end=end)
                continue
            if (agree + against < self._calibrate and not spent) or not self._others_ran(end):
                continue
            p_wrong = p_wrong_end(agree, against)
            if p_wrong >= self.policy.confidence:
                return self._outcome(wrong, end=end)
            if p_wrong >= 0.5 and self.tally(end).runs >= self.policy.max_runs:
                return self._outcome(OutcomeKind.END_FLAKY, end=end)
        return None

    def _others_ran(self, end: int) -> bool:
        """Every end but `end` has run (or may run no more)."""
        return all(self.tally(e).runs or self.policy.max_runs < 1 for e in self._ends if e != end)

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
        # An end that ran none goes before another's second run: one slot a round ran
        # --good twice (calibrated: 7 times, "not good"), judged against no --bad failure.
        fresh = [e for e in self._ends if need.get(e) and not self.tally(e).runs + self._pending[e]]
        order, need = fresh, {e: n - (e in fresh) for e, n in need.items()}
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
        if self._unconfirmed():  # a history that changed more than once, or one lie
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
        tallies, pending, most, mass = self._tallies, self._pending, self.policy.max_runs, post.mass
        # No bitset shifted per candidate, no Tally made for each: a pass over the history
        # in one round of a 30,000-commit search cost more than its posterior.
        return [
            (c, m)
            for c in range(len(self.olds), self.n - 1)
            if floor < (m := mass[c]) < 1 - floor
            and ((t := tallies.get(c)) is None or t.informative or not t.runs)
            and (t.runs if t else 0) + pending[c] < most
        ]

    def _unrun_suspects(self) -> list[int]:
        """The culprits about to be named that never ran: the model can favour a commit
        no run has seen (a fork point below bad branches), and none is named unseen."""
        group, mass = self._group(self._post())
        if mass < self.policy.confidence:
            return []
        return [c for c in group if not self.tally(c).runs and not self._pending[c]]

    def _skipped_suspects(self) -> list[int]:
        """The commits of a "one of" answer about to be given whose runs only said nothing,
        fewer times than stop the search at an end: calibrated, a run that errored is one
        of a repro that errors now and then, and another run may decide the answer."""
        group, mass = self._group(self._post())
        if mass < self.policy.confidence or len(group) < 2:
            return []
        limit = min(self._calibrate, self.policy.max_runs)
        return [c for c in group if self._only_skipped(c) and self.tally(c).runs < limit]

    def _doubts(self) -> tuple[dict[int, float], list[int]]:
        """The commits near the answer about to be named (`NEIGHBOURS`) whose own runs disagree
        more than the shared rates explain, each with P(it is not on the side the answer
        puts it) from its own runs alone; and the runs that would tell whether they do.

        Rates calibrated at stable ends read a neighbour's unlucky runs (8 "old", 5 "new"
        at a new commit next to the culprit, where the repro races with the change) as its
        side, and named the neighbour at 99%. Such a commit is weighed against its side's
        commits further from the answer (near ones may share its flakiness) and its side's
        ends: explained (`OWN_RATE_EXPLAINED`), its doubt is dropped; not explained
        (`OWN_RATE`), its own runs must say its side; in between, it and those ends run
        again until one of the two holds, and its own runs must say its side while
        neither does (runs spent: no answer gets surer by spending less)."""
        group, mass = self._group(self._post())
        if mass < self.policy.confidence or not group:
            return {}, []
        new_side = self.dag.descendants(group[-1])
        doubts: dict[int, float] = {}
        more: list[int] = []
        edge = (*self.dag.parents[group[0]], group[-1])
        near = {c for c in self._tallies if min(abs(c - e) for e in edge) <= NEIGHBOURS}
        for x in sorted(near):
            t, new = self.tally(x), bool(new_side >> x & 1)
            if not t.old or not t.new:
                continue
            side = [c for c in self._tallies if bool(new_side >> c & 1) is new]
            rest = [c for c in side if c not in near or (c in self._given and c != x)]
            false = sum(self.tally(c).old if new else self.tally(c).new for c in rest)
            true = sum(self.tally(c).informative for c in rest) - false
            own = (t.old, t.new) if new else (t.new, t.old)
            evidence = own_rate_evidence(own, (false, true))
            if evidence <= OWN_RATE_EXPLAINED:
                continue
            ends = [e for e in self._ends if bool(new_side >> e & 1) is new]
            ask = [x, *ends] if evidence < OWN_RATE else [x]
            ask = [c for c in ask if self.tally(c).runs + self._pending[c] < self.policy.max_runs]
            # In between with no runs left, the doubt stays: read at the shared rate, a
            # lower --max-runs stated 99.95% where one more run was wanted at a higher one.
            doubts[x] = p_wrong_end(own[1], own[0])
            more += ask
        if math.prod(1 - p for p in doubts.values()) >= self.policy.confidence:
            more = []
        return doubts, list(dict.fromkeys(more))

    def _calibrated_points(self, room: int) -> list[int]:
        unseen = [*self._unrun_suspects(), *self._skipped_suspects()]
        first = [*unseen, *(c for c in self._doubts()[1] if c not in unseen)][:room]
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
        held, more = False, list[int]()
        if mass >= self.policy.confidence and not unseen:
            doubts, more = self._doubts()
            mass = min(mass, math.prod(1 - p for p in doubts.values()))
            if mass >= self.policy.confidence and (spent or not self._skipped_suspects()):
                kind = OutcomeKind.FOUND if len(group) == 1 else OutcomeKind.AMBIGUOUS
                return self._outcome(kind, suspects=tuple(group), post=post, confidence=mass)
            if mass >= self.policy.confidence:
                return None  # run the group's skipped commits again first
            held = True  # the boundary's own runs hold it back (`_doubts`)
        if (unseen or more) and not spent:
            return None  # run them first (`_calibrated_points`)
        if spent or held or not self._informative(post):
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
            asked=self.policy.confidence if self._calibrate else None,
            likely=post.likely(suspects) if post else None,
            runs=self.runs,
            repeats=self.runs - len(self._tallies),
            false_new=post.false_new if post else None,
            false_old=post.false_old if post else None,
            contradicted=self._contradicted,
            elsewhere=self._elsewhere if kind in (OutcomeKind.FOUND, OutcomeKind.AMBIGUOUS) else (),
            changed=self._changed
            if kind in (OutcomeKind.FOUND, OutcomeKind.AMBIGUOUS) and not self._calibrate
            else (),
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
        return Progress(
            mode=Mode.CALIBRATED,
            left=left,
            best=best,
            confidence=sure,
            likely=likely,
            first=group[0],
            size=len(group),
        )

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
        if not self._calibrate:  # verdicts below an old one: each said once more first
            again = [c for c in self._unconfirmed() if not self._pending[c]][: k - len(first)]
            self._pending.update(again)
            first += again
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
