"""The shape of a bisection's candidates: a DAG in topological order, as bitsets (pure).

Node 0 is the old end; nodes 1..n-1 are the commits `git rev-list NEW ^OLD` lists (every
commit the new end reaches that the old end does not), parents before children, so the
new end is node n-1. A release axis or `--first-parent` is the special case of a chain.

A node's ancestors (and descendants), itself included, are a Python int used as a
bitset: `ancestors(c) & R` and `int.bit_count` answer "how many suspects would remain if c
is bad" in C speed, which is the quantity git's own bisection halves (bisect.c,
`count_distance`/`best_bisection`). No table of every node's set is held (n²/2 bits:
56 MB for 30,000 commits, 625 MB for 100,000): a set is walked when asked and the last
`KEPT` are kept, and the passes over every node (`reach`) keep a set only until its
children have theirs, so memory grows with the history's width (branches open at once),
not with its length squared.
"""

from __future__ import annotations

import heapq
import struct
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

#: How many ancestor (and descendant) sets a Dag keeps: the commits a search ran, and more.
KEPT = 512
ONE = ord("1")


def bits(mask: int) -> Iterator[int]:
    """The indices of the set bits of `mask`, lowest first."""
    # str.find scans in C: a 10,000-bit mask is walked in microseconds, not one big-int
    # operation per bit.
    text = bin(mask)[:1:-1]  # lowest bit first, without the "0b"
    i = text.find("1")
    while i >= 0:
        yield i
        i = text.find("1", i + 1)


def below(i: int) -> int:
    """Bits 0..i inclusive."""
    return (1 << (i + 1)) - 1


def skipped_pick(
    nodes: Sequence[int], weight: Mapping[int, int], skipped: int, ids: Sequence[str]
) -> int:
    """git bisect's next commit once a commit was skipped (bisect.c: `FIND_BISECTION_ALL`,
    `best_bisection_sorted`, `managed_skipped`, `skip_away`): every candidate sorted by
    how evenly it splits them, ties by sha (not by age: the halfway shortcut is off too);
    the best, unless skipped, else one of the untested ones a pseudo-random way down the
    list, never the bad end (the list's last). Taking another neighbour (the nearest good
    split) led two-bug and non-monotone histories, where the path decides which bad commit
    is found, to another answer than the one `git bisect run` names."""
    nr = len(nodes)
    key = {c: ids[c] if ids else f"{c:012d}" for c in nodes}
    order = sorted(nodes, key=lambda c: (-min(weight[c], nr - weight[c]), key[c]))
    if not skipped >> order[0] & 1:
        return order[0]
    free = [c for c in order if not skipped >> c & 1]
    if not free:
        return order[0]
    bad = max(nodes, key=lambda c: weight[c])  # the region's top: it reaches all of it
    index = _skip_away_index(len(free))
    if index >= len(free):
        return free[0]
    if free[index] != bad:
        return free[index]
    return free[index - 1] if index else free[0]


def _skip_away_index(count: int) -> int:
    """bisect.c `skip_away`'s index: its "man 3 rand" generator seeded by `count`,
    scaled by an integer square root computed in C floats (emulated, so that the index
    is git's to the last unit)."""
    prn = ((count * 1103515245 + 12345) % 2**32 // 65536) % 32768
    return (count * prn // 32768) * _sqrti(prn) // _sqrti(32768)


def _sqrti(val: int) -> int:
    """bisect.c `sqrti`: Newton's iteration in single precision, truncated."""
    if not val:
        return 0

    def f32(x: float) -> float:
        return float(struct.unpack("f", struct.pack("f", x))[0])

    x = f32(val)
    while True:
        y = f32(f32(x + f32(f32(val) / x)) / 2)
        d = f32(y - x) if y > x else f32(x - y)
        x = y
        if d < 0.5:
            return int(x)


@dataclass(frozen=True)
class Dag:
    """Nodes 0..n-1 in topological order; `parents[i]` are indices smaller than i.

    Parents outside the candidates (ancestors of the old end) are left out: git bisect
    takes every ancestor of a good commit as good, and so do we.
    """

    parents: tuple[tuple[int, ...], ...]
    #: Every node but node 0 has a single parent, its predecessor (releases, first-parent).
    is_chain: bool = field(init=False)
    #: The ancestor and descendant sets `ancestors` and `descendants` keep (oldest first).
    _anc: dict[int, int] = field(init=False, repr=False, compare=False, default_factory=dict)
    _desc: dict[int, int] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        chain = not self.parents or not self.parents[0]
        for i, ps in enumerate(self.parents):
            for p in ps:
                if not 0 <= p < i:
                    raise ValueError(f"node {i}: parents {ps} are not earlier nodes")
            chain = chain and (i == 0 or ps == (i - 1,))
        object.__setattr__(self, "is_chain", chain)

    @classmethod
    def chain(cls, n: int) -> Dag:
        return cls(tuple(() if i == 0 else (i - 1,) for i in range(n)))

    @classmethod
    def from_parents(cls, order: Sequence[str], parents: Mapping[str, Sequence[str]]) -> Dag:
        """From ids in topological order and each id's parents (unknown ids are dropped)."""
        index = {node: i for i, node in enumerate(order)}
        return cls(
            tuple(
                tuple(dict.fromkeys(index[p] for p in parents.get(node, ()) if p in index))
                for node in order
            )
        )

    @property
    def n(self) -> int:
        return len(self.parents)

    @property
    def everything(self) -> int:
        return below(self.n - 1)

    def ancestors(self, c: int) -> int:
        """Ancestors of `c`, itself included (kept for the last `KEPT` nodes asked)."""
        if self.is_chain:
            return below(c)
        return self._reach(c, self.parents, self._anc)

    def descendants(self, c: int) -> int:
        """Descendants of `c`, itself included (kept as `ancestors` are)."""
        if self.is_chain:
            return self.everything & ~below(c - 1) if c else self.everything
        return self._reach(c, self.children, self._desc)

    def _reach(self, c: int, links: Sequence[Sequence[int]], kept: dict[int, int]) -> int:
        if c in kept:
            kept[c] = kept.pop(c)  # the newest asked: last out
            return kept[c]
        seen = bytearray(b"0") * self.n  # a walk, not a table: n bytes, once
        seen[c] = ONE
        todo = [c]
        while todo:
            for p in links[todo.pop()]:
                if seen[p] != ONE:
                    seen[p] = ONE
                    todo.append(p)
        mask = int(seen[::-1].decode(), 2)
        if len(kept) >= KEPT:
            del kept[next(iter(kept))]
        kept[c] = mask
        return mask

    def reach(
        self, within: int, *, down: bool = False, last: int | None = None
    ) -> Iterator[tuple[int, int]]:
        """(c, the ancestors-or-self of c that `within` holds) for every node c in
        topological order, up to node `last` (with `down`: descendants, newest first, down
        to `last`). Each set is kept only until the last child (parent) that needs it has
        its own: the memory of the history's width, not of its length."""
        links, users = (self.children, self.parents) if down else (self.parents, self.children)
        left = [len(u) for u in users]
        live: dict[int, int] = {}
        # Nodes beyond `within`'s lowest (highest, down) node reach none of it: skipped.
        if down:
            order = range(min(within.bit_length(), self.n) - 1, (last or 0) - 1, -1)
        else:
            order = range((within & -within).bit_length() - 1 if within else self.n, self.n)
            order = order[: None if last is None else max(0, last + 1 - order.start)]
        for c in order:
            mask = within & (1 << c)
            for p in links[c]:
                mask |= live.get(p, 0)
                left[p] -= 1
                if not left[p]:
                    live.pop(p, None)
            if left[c]:
                live[c] = mask
            yield c, mask

    @cached_property
    def children(self) -> tuple[tuple[int, ...], ...]:
        kids: list[list[int]] = [[] for _ in range(self.n)]
        for i, ps in enumerate(self.parents):
            for p in ps:
                kids[p].append(i)
        return tuple(tuple(k) for k in kids)

    def is_ancestor(self, a: int, b: int) -> bool:
        """Whether `a` is an ancestor of `b` or `b` itself."""
        return bool(self.ancestors(b) >> a & 1)

    # -- git bisect's candidate set ------------------------------------------------------

    def suspects(self, old: Iterable[int], new: Iterable[int]) -> int:
        """The nodes every `new` node has as ancestor and no `old` node (nor node 0) has:
        where the first new commit can be (git: `rev-list NEW... --not OLD...`)."""
        region, gone = self.everything & ~1, self.ancestors(0)
        for c in old:
            gone |= self.ancestors(c)
        for c in new:
            region &= self.ancestors(c)
        return region & ~gone

    def contradictions(self, old: Sequence[int], new: Sequence[int]) -> tuple[int, ...]:
        """Why no node is a suspect: new nodes that are ancestors of old ones, with those
        old ones; else (new nodes on branches with no suspect in common) the new ones."""
        involved = {n for n in new for o in old if self.is_ancestor(n, o)}
        involved |= {o for o in old for n in involved if self.is_ancestor(n, o)}
        return tuple(sorted(involved or new))

    def git_pick(
        self, region: int, age: Sequence[float], *, skipped: int = 0, ids: Sequence[str] = ()
    ) -> int:
        """The commit `git bisect` tests next when `region` holds its candidates (git's
        `rev-list BAD --not GOOD...`): bisect.c `do_find_bisection`, whose list runs
        oldest first (`walk_order`; `age`: each node's commit time). Merges whose reach is
        about half the candidates come first, then single-parent commits as their weights
        fill in, then the best split (`best_bisection`); candidate roots (weight 1) are
        never taken as "halfway". Following git's choice makes a K = 1 bisection cost what
        `git bisect` costs on the same history, commit for commit.

        Once any commit was skipped (`skipped`, anywhere), git picks another way
        (`skipped_pick`); `ids` (each node's full sha) break its ties as git does."""
        nodes = self.walk_order(region, age)
        nr = len(nodes)
        weight = self.weights(region, nodes)
        if skipped:
            return skipped_pick(nodes, weight, skipped, ids)
        inside = {c: sum(1 for p in self.parents[c] if region >> p & 1) for c in nodes}

        def halfway(c: int) -> bool:  # approx_halfway()
            diff = abs(2 * weight[c] - nr)
            return diff <= 1 or diff < nr // 1024

        for c in nodes:
            if inside[c] >= 2 and halfway(c):
                return c
        known = {c for c in nodes if inside[c] != 1}
        waiting = [c for c in nodes if inside[c] == 1]
        while waiting:  # one pass per generation whose parent's weight is known
            still = []
            for c in waiting:
                if any(p in known for p in self.parents[c] if region >> p & 1):
                    known.add(c)
                    if halfway(c):
                        return c
                else:
                    still.append(c)
            if len(still) == len(waiting):  # pragma: no cover - parents precede children
                break
            waiting = still
        best = max(range(nr), key=lambda i: (min(weight[nodes[i]], nr - weight[nodes[i]]), -i))
        return nodes[best]

    def walk_order(self, region: int, age: Sequence[float]) -> list[int]:
        """`region` in the order git bisect lists it: the reverse of its revision walk
        (revision.c `limit_list`), which pops the newest commit of a queue kept by commit
        time, equal times first in, first out, and queues each parent the first time a
        child reaches it. Sorting by commit time is that order only while every commit is
        newer than its parents and no two share a second: commits made within one second
        (a script, a rebase) or under a skewed clock made a K = 1 bisection of a merged
        history pick other commits than git's, and run more of them."""
        inside = set(bits(region))
        heads = [c for c in bits(region) if not any(k in inside for k in self.children[c])]
        heads.sort(key=lambda c: -age[c])
        queue = [(-age[c], i, c) for i, c in enumerate(heads)]
        seen, popped = set(heads), []
        while queue:
            c = heapq.heappop(queue)[2]
            popped.append(c)
            for p in self.parents[c]:
                if p in inside and p not in seen:
                    seen.add(p)
                    heapq.heappush(queue, (-age[p], len(seen), p))
        return popped[::-1]

    # -- sums over ancestors / descendants (the posterior's two workhorses) -------------

    def over_ancestors(self, values: Mapping[int, float]) -> list[float]:
        """For each node c: the sum of `values[x]` over x ancestor-or-self of c.

        A commit's ancestors are its first parent's plus itself plus, at a merge, what the
        merged side brings (its ancestors less its first parent's): one addition per
        commit and one per commit a merge brings in, instead of n²/2 on a history of
        merged branches. A first parent's ancestors are held only until its merges had them.
        """
        out = [0.0] * self.n
        merges = Counter(ps[0] for ps in self.parents if len(ps) > 1)
        held: dict[int, int] = {}
        for c, mask in self.reach(self.everything) if merges else ((c, 0) for c in range(self.n)):
            ps = self.parents[c]
            total = values.get(c, 0.0) + (out[ps[0]] if ps else 0.0)
            if len(ps) > 1:
                brought = mask & ~held[ps[0]] & ~(1 << c)
                merges[ps[0]] -= 1
                if not merges[ps[0]]:
                    del held[ps[0]]
                total += sum(values.get(x, 0.0) for x in bits(brought))
            if merges[c]:
                held[c] = mask
            out[c] = total
        return out

    def over_descendants(self, values: Mapping[int, float]) -> list[float]:
        """For each node x: the sum of `values[c]` over c descendant-or-self of x."""
        out = [0.0] * self.n
        if self.is_chain:
            total = 0.0
            for i in range(self.n - 1, -1, -1):
                total += values.get(i, 0.0)
                out[i] = total
            return out
        for c, v in values.items():
            if v:
                for x in bits(self.ancestors(c)):
                    out[x] += v
        return out

    def weights(self, region: int, nodes: Sequence[int]) -> dict[int, int]:
        """For each of `nodes`: how many nodes of `region` it has as ancestors-or-self."""
        if self.is_chain and region:
            lo = (region & -region).bit_length() - 1  # a chain's region is an interval
            hi = region.bit_length() - 1
            return {c: (c if c <= hi else hi) - lo + 1 if c >= lo else 0 for c in nodes}
        wanted = set(nodes)
        if not wanted:
            return {}
        out = {}
        for c, mask in self.reach(region, last=max(wanted)):
            if c in wanted:
                out[c] = mask.bit_count()
        return out


__all__ = ["Dag", "below", "bits"]
