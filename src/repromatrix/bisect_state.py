"""The runs a bisection has recorded and the suspects they leave (no I/O).

`BisectState` is what `bisect.Bisector` searches with: the runs at each candidate (and those
in flight), which ends count, and the trusting-mode suspects (git's `rev-list NEW --not
OLD`) with the points a round of K runs takes among them. Choosing between trusting and
calibrated, and naming the answer, is `bisect.py`'s.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from repromatrix.bisect_terms import Policy
from repromatrix.dag import Dag, bits
from repromatrix.flaky import Consensus, Posterior, Tally, Verdict


class BisectState:
    """The runs at the candidates of `shape` (a Dag, or n for a chain); see `Bisector`."""

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
        self._changed: tuple[int, ...] = ()  # see `Outcome.changed`
        self._involved: tuple[int, ...] = ()  # those, or old ones above them, said once
        self._posterior: Posterior | None = None
        for index, given in (known or {}).items():
            for verdict in [given] if isinstance(given, Verdict) else given:
                self.record(index, verdict)
        self._known_runs = self.runs  # stored runs are evidence, not this one's budget

    # -- runs ----------------------------------------------------------------------------

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

    def forget(self, index: int) -> None:
        """Take back the stored runs recorded at `index` (another machine's: see
        `bisect_machines`): it is unrun again, and they were no run of this search's."""
        self._known_runs -= self._tallies.pop(index, Tally()).runs
        self._posterior = None

    @property
    def runs(self) -> int:
        return sum(t.runs for t in self._tallies.values())

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
        self._changed = self._involved = ()
        if not region and news:
            news = self._above_old(olds, news)
            region = self.dag.suspects(olds, news)
        if len(news) < 2 or (region and not all(map(self._only_skipped, bits(region)))):
            return region
        each = [self.dag.suspects(olds, [n]) for n in news]
        if not region and not all(each):
            return 0  # a new commit below an old one: a contradiction (`_conflicts`)
        region = min(each, key=lambda r: (r.bit_count(), r))
        self._elsewhere = tuple(n for n, r in zip(news, each, strict=True) if not r & region)
        return region

    def _above_old(self, olds: list[int], news: list[int]) -> list[int]:
        """The new commits no old one is above; those below one go to `_changed`.

        New commits below an old one (a round of K runs tested c15 new, c30 old, c45 new)
        are no flaky repro while each commit's own runs agree: the history changed more
        than once, and git bisect, which would have tested c30 first and never looked below
        it, names a first new commit after the last old one tested. Each of them and the
        oldest old one above it run twice first (`_unconfirmed`): one lie may have made it."""
        below = [n for n in news if any(self.dag.is_ancestor(n, o) for o in olds)]
        self._changed = tuple(sorted(below))
        twice = set(self._given)
        spent = min(2, self.policy.max_runs)  # --max-runs 1: one run is all a commit gets
        twice |= {c for c in self._tallies if self.tally(c).informative >= spent}
        want: list[int] = []
        for n in self._changed:
            above = [o for o in sorted(olds) if self.dag.is_ancestor(n, o)]
            want += [n] if n not in twice else []
            want += [above[0]] if not twice & set(above) else []
        self._involved = tuple(dict.fromkeys(want))
        return [n for n in news if n not in below]

    def _unconfirmed(self) -> list[int]:
        """Commits of `_above_old` whose verdict one run alone says, each to run once more
        before it is trusted (the ends aside: their own runs are `_end_problem`'s)."""
        self._region()
        return list(self._involved)

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

    def _skipped(self) -> int:
        """Candidates whose runs all skipped (git's refs/bisect/skip-*), as a bitset."""
        return sum(1 << c for c, t in self._tallies.items() if t.runs and not t.informative)

    def _testable(self) -> int:
        """Candidates a run can still say something about (not only ever skipped)."""
        return self.dag.everything & ~self._skipped()
