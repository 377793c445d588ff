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

from collections import Counter
from collections.abc import Mapping, Sequence

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


class Bisector:
    """Runs at the candidates of `shape` (a Dag, or n for a chain) and what to run next.

    `known` may hold verdicts from earlier runs (the result store); they count as if just
    recorded, so an interrupted bisection continues where it stopped. Nodes below
    `old_ends` are all old ends; with `bases` they are the merge bases git bisect tests
    first (`candidates.py`), and one that could only be skipped is set aside, as git does.
    """

    def __init__(
        self,
        shape: int | Dag,
        known: Mapping[int, Verdict | Sequence[Verdict]] | None = None,
        *,
        policy: Policy | None = None,
        age: Sequence[float] = (),
        old_ends: int = 1,
        bases: bool = False,
        ids: Sequence[str] = (),
    ) -> None:
        self.dag = shape if isinstance(shape, Dag) else Dag.chain(shape)
        if self.dag.n < 2:
            raise ValueError(f"bisection needs at least two candidates, got {self.dag.n}")
        self.n = self.dag.n
        if not 1 <= old_ends < self.n:
            raise ValueError(f"{old_ends} old ends of {self.n} candidates")
        self.olds = tuple(range(old_ends))
        self._given = (*self.olds, self.n - 1)
        self._bases = bases
        self.policy = policy or Policy()
        if any(given and len(given) != self.n for given in (age, ids)):
            raise ValueError(f"{len(age)} commit times, {len(ids)} ids: {self.n} candidates")
        #: Commit time (git lists oldest first; default: topology) and sha of each candidate.
        self.age, self.ids = tuple(age) or tuple(range(self.n)), tuple(ids)
        self._tallies: dict[int, Tally] = {}
        self._pending: Counter[int] = Counter()
        self._calibrate = self.policy.calibrate
        self._contradicted: tuple[int, ...] = ()
        self._elsewhere: tuple[int, ...] = ()  # see `Outcome.elsewhere`
        self._posterior: Posterior | None = None
        for index, given in (known or {}).items():
            for verdict in [given] if isinstance(given, Verdict) else given:
                self.record(index, verdict)
        self._known_runs = self.runs  # stored runs are evidence, not this one's budget

    # -- state --------------------------------------------------------------------------

    @property
    def mode(self) -> Mode:
        self._refresh()
        return Mode.CALIBRATED if self._calibrate else Mode.TRUSTING

    @property
    def pending(self) -> frozenset[int]:
        return frozenset(c for c, n in self._pending.items() if n)

    def tally(self, index: int) -> Tally:
        return self._tallies.get(index, Tally())

    def record(self, index: int, verdict: Verdict) -> None:
        if not 0 <= index < self.n:
            raise IndexError(f"candidate {index} out of range 0..{self.n - 1}")
        self._tallies[index] = self.tally(index).plus(verdict)
        if self._pending[index] > 0:
            self._pending[index] -= 1
        self._posterior = None

    def retally(self, index: int, verdicts: Sequence[Verdict]) -> None:
        """Replace every run recorded at `index` (the caller re-judged them)."""
        self._tallies[index] = Tally.of(verdicts)
        self._posterior = None

    @property
    def runs(self) -> int:
        return sum(t.runs for t in self._tallies.values())

    def _refresh(self) -> None:
        """Switch to calibrated mode once trusting verdicts contradict each other."""
        if self._calibrate:
            return
        conflicts = self._conflicts()
        if conflicts:
            self._contradicted = conflicts
            self._calibrate = self.policy.auto_calibrate

    # -- the ends -----------------------------------------------------------------------

    @property
    def _ends(self) -> tuple[int, ...]:
        """The ends whose word counts: a merge base that could only skip is set aside, as git
        does ("must be skipped ... We continue anyway"); stopping there left no answer."""
        skipped = self._only_skipped if self._bases else lambda e: False
        return tuple(e for e in self._given if e not in self.olds or not skipped(e))

    def _claims(self, end: int) -> tuple[int, int]:
        """(runs agreeing with the end's role, runs against it)."""
        t = self.tally(end)
        return (t.old, t.new) if end in self.olds else (t.new, t.old)

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

    def _split(self, *, ends: bool) -> tuple[list[int], list[int]]:
        """(commits whose runs say old, commits whose runs say new)."""
        pairs = [(c, t.consensus) for c, t in self._tallies.items()]
        skip = () if ends else self._ends
        olds = [c for c, v in pairs if v is Consensus.OLD and c not in skip]
        return olds, [c for c, v in pairs if v is Consensus.NEW and c not in skip]

    def _region(self) -> int:
        """The suspects. The ends count as what they were given as: their own runs are
        `_end_problem`'s business, and the new end is new while in flight.

        New commits on different branches (a round of K runs can find several) narrow the
        suspects to their common ancestry. When none is left there, or only commits that
        only ever skipped, one bug reaching both branches through them is no likelier than
        two bugs, one per branch, and git never names a commit it did not see bad: the
        suspects are those of the one new commit with the fewest, as git follows its one
        bad ref ("any of m8, m9")."""
        olds, news = self._split(ends=False)
        olds = [*self.olds[1:], *olds]  # every old end is old, tested or not
        region, self._elsewhere = self.dag.suspects(olds, news), ()
        if len(news) < 2 or (region and not all(map(self._only_skipped, bits(region)))):
            return region
        each = [self.dag.suspects(olds, [n]) for n in news]
        if not region and not all(each):
            return 0  # a new commit below an old one: a contradiction (`_conflicts`)
        region = min(each, key=lambda r: (r.bit_count(), r))
        self._elsewhere = tuple(n for n, r in zip(news, each, strict=True) if not r & region)
        return region

    def _only_skipped(self, c: int) -> bool:
        tally = self._tallies.get(c)
        return not self._pending[c] and tally is not None and tally.consensus is Consensus.SKIP

    def _conflicts(self) -> tuple[int, ...]:
        flaky = [c for c, t in self._tallies.items() if t.consensus is Consensus.FLAKY]
        if flaky:
            return tuple(sorted(flaky))
        return () if self._region() else self.dag.contradictions(*self._split(ends=True))

    def _free(self, region: int) -> list[int]:
        busy = {c for c, n in self._pending.items() if n} | self._tallies.keys()
        return [c for c in bits(region) if c not in busy]

    def _trusting_points(self, room: int, k: int) -> list[int]:
        if room < 1:
            return []
        region = self._region()
        free = self._free(region)
        if len(free) <= room:
            return free
        if k == 1:  # one point a round: the one git bisect itself would test
            pick = self.dag.git_pick(region, self.age, skipped=self._skipped(), ids=self.ids)
            if pick in free:  # else (skipped) the nearest free one, as below
                return [pick]
        # Skipped and in-flight candidates still count: a cut lands on the free candidate
        # whose share of the suspects is nearest the ideal, ties going to the older side.
        size = region.bit_count()
        weight = self.dag.weights(region, free)
        picked: list[int] = []
        for j in range(1, room + 1):
            ideal = size * j / (room + 1)
            best = min(
                (c for c in free if c not in picked),
                key=lambda c: (abs(weight[c] - ideal), weight[c], c),
            )
            picked.append(best)
        return picked

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

    def _skipped(self) -> int:
        """Candidates whose runs all skipped (git's refs/bisect/skip-*), as a bitset."""
        return sum(1 << c for c, t in self._tallies.items() if t.runs and not t.informative)

    def _testable(self) -> int:
        """Candidates a run can still say something about (not only ever skipped)."""
        return self.dag.everything & ~self._skipped()

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
