"""Bisection on histories with merges (pure): the answer is the commit git bisect names,
the first new commit whose parents are all old, whichever branch it is on."""

from __future__ import annotations

import math
import tracemalloc
from collections.abc import Sequence

import pytest

from repromatrix.bisect import Bisector, Mode, OutcomeKind, Policy, Verdict, log_bound, run
from repromatrix.dag import Dag, below, bits


def merged(main: int, fork: int, branch: int, merge: int) -> tuple[Dag, dict[str, int]]:
    """A main line m0..m{main-1}; a branch of `branch` commits forks after m{fork} and is
    merged by m{merge} (a merge commit whose second parent is the branch tip). Node 0 is
    m0, the old end; the last node is the main line's tip, the new end."""
    order: list[str] = [f"m{i}" for i in range(merge)]
    parents: dict[str, list[str]] = {f"m{i}": [f"m{i - 1}"] for i in range(1, main)}
    for j in range(branch):
        order.append(f"b{j}")
        parents[f"b{j}"] = [f"b{j - 1}" if j else f"m{fork}"]
    order += [f"m{i}" for i in range(merge, main)]
    parents[f"m{merge}"].append(f"b{branch - 1}")
    names = {name: i for i, name in enumerate(order)}
    return Dag.from_parents(order, parents), names


class Truth:
    """A deterministic repro: a commit is new exactly when `culprit` is in its ancestry."""

    def __init__(self, dag: Dag, culprit: int) -> None:
        self.dag = dag
        self.culprit = culprit
        self.calls: list[int] = []

    def __call__(self, points: Sequence[int]) -> list[Verdict]:
        self.calls.extend(points)
        return [
            Verdict.NEW if self.dag.is_ancestor(self.culprit, p) else Verdict.OLD for p in points
        ]


def test_a_dag_knows_ancestry_and_a_chain_agrees_with_the_general_case() -> None:
    dag, names = merged(main=10, fork=2, branch=3, merge=6)
    assert not dag.is_chain
    assert dag.is_ancestor(names["b0"], names["m6"])
    assert not dag.is_ancestor(names["b0"], names["m5"])
    assert dag.is_ancestor(names["m2"], names["b2"])
    assert dag.children[names["b2"]] == (names["m6"],)
    chain = Dag.chain(7)
    general = Dag(tuple(() if i == 0 else (i - 1,) for i in range(7)))
    assert chain.is_chain
    assert [chain.ancestors(i) for i in range(7)] == [below(i) for i in range(7)]
    assert [chain.descendants(i) for i in range(7)] == [general.descendants(i) for i in range(7)]
    assert [general.ancestors(i) for i in range(7)] == [below(i) for i in range(7)]
    assert general.weights(0b111000, [2, 3, 4, 6]) == {2: 0, 3: 1, 4: 2, 6: 3}
    assert list(bits(0b101001)) == [0, 3, 5]
    with pytest.raises(ValueError, match="not earlier"):
        Dag(((), (2,), (1,)))


def test_from_parents_drops_commits_outside_the_candidates() -> None:
    # A branch forked before the old end: its root's parent is not a candidate (git takes
    # it as good, as an ancestor of the good end) and is left out.
    dag = Dag.from_parents(["old", "x", "y"], {"x": ["before-old"], "y": ["old", "x"]})
    assert dag.parents == ((), (), (0, 1))


@pytest.mark.parametrize("k", [1, 4])
def test_every_culprit_of_a_merged_history_is_found(k: int) -> None:
    """Bug on the main line with a clean branch merged later, bug on the branch (found in
    the branch, not at the merge), and every other position, K = 1 and 4."""
    dag, names = merged(main=40, fork=20, branch=80, merge=31)
    suspects = dag.n - 1
    for culprit in range(1, dag.n):
        truth = Truth(dag, culprit)
        outcome, trace = run(Bisector(dag), truth, k=k)
        assert outcome.kind is OutcomeKind.FOUND, culprit
        assert outcome.first_new == culprit
        assert outcome.mode is Mode.TRUSTING
        assert len(set(truth.calls)) == len(truth.calls), "nothing runs twice"
        if k == 1:
            # git's own halving needs ceil(log2 N) or one more on a DAG; plus the two ends.
            assert trace.evaluations <= math.ceil(math.log2(suspects)) + 3, culprit
        else:
            assert len(trace.rounds) <= log_bound(suspects, k) + 2, culprit
    # The case: the bug at m25 on the main line is not blamed on the merge.
    outcome, trace = run(Bisector(dag), Truth(dag, names["m25"]), k=1)
    assert outcome.first_new == names["m25"]
    assert trace.evaluations <= 9


def test_the_merge_commit_itself_when_each_branch_alone_is_good() -> None:
    dag, names = merged(main=12, fork=3, branch=6, merge=8)
    truth = Truth(dag, names["m8"])
    outcome, _ = run(Bisector(dag), truth, k=1)
    assert outcome.first_new == names["m8"]
    assert set(dag.parents[names["m8"]]) == {names["m7"], names["b5"]}
    # Both parents were seen old, or are ancestors of a commit seen old.
    old_seen = [p for p in truth.calls if not dag.is_ancestor(names["m8"], p)]
    for parent in dag.parents[names["m8"]]:
        assert any(dag.is_ancestor(parent, o) for o in old_seen)


def test_two_new_commits_on_different_branches_narrow_to_their_common_ancestry() -> None:
    dag, names = merged(main=12, fork=3, branch=6, merge=8)
    b = Bisector(dag, {0: Verdict.OLD, dag.n - 1: Verdict.NEW})
    b.record(names["m6"], Verdict.NEW)
    b.record(names["b4"], Verdict.NEW)
    # Suspects: ancestors of both m6 and b4 (m1..m3), none of them tested yet.
    assert b.progress().left == 2
    outcome, _ = run(b, Truth(dag, names["m2"]), k=2)
    assert outcome.first_new == names["m2"]
    assert outcome.elsewhere == ()  # one change, reached both branches


def test_a_regression_that_arrived_twice_is_not_named_with_confidence() -> None:
    """Non-monotone truth: the same bug introduced on the branch and on the main line
    independently. Trusting verdicts end up contradicting each other; the calibrated
    search then either names one of the two culprits or says it cannot."""
    dag, names = merged(main=30, fork=5, branch=20, merge=25)
    culprits = (names["m15"], names["b10"])

    def evaluate(points: Sequence[int]) -> list[Verdict]:
        return [
            Verdict.NEW if any(dag.is_ancestor(c, p) for c in culprits) else Verdict.OLD
            for p in points
        ]

    outcome, trace = run(Bisector(dag), evaluate, k=4)
    if outcome.kind is OutcomeKind.FOUND:
        assert outcome.first_new in culprits
    else:
        assert outcome.kind is OutcomeKind.INCONCLUSIVE
    assert trace.evaluations < 400


def test_sums_over_ancestors_and_descendants_agree_with_brute_force() -> None:
    dag, _ = merged(main=15, fork=4, branch=7, merge=10)
    # A second merge on top, whose first parent is the branch side (a "merge main into
    # the branch" commit), and an octopus-free orphan root merged in.
    order = [*(f"n{i}" for i in range(dag.n)), "orphan", "late", "octo"]
    parents = {f"n{i}": [f"n{p}" for p in ps] for i, ps in enumerate(dag.parents)}
    parents |= {"late": [f"n{dag.n - 1}"], "octo": ["late", "n12", "orphan"]}
    big = Dag.from_parents(order, parents)
    values = {i: float(i % 5) + 0.5 for i in range(big.n)}
    up = big.over_ancestors(values)
    down = big.over_descendants(values)
    for c in range(big.n):
        assert up[c] == pytest.approx(sum(values[x] for x in bits(big.ancestors(c))))
        assert down[c] == pytest.approx(sum(values[x] for x in bits(big.descendants(c))))


def _two_bugs_below_an_untestable_fork() -> tuple[Dag, dict[str, int]]:
    """m0..m15 with a branch x0..x7 off m8, merged by m16, then m17, m18. Two bugs arrive
    independently, at m9 and at x0; m8 itself is fine but cannot be tested."""
    order = [f"m{i}" for i in range(16)] + [f"x{i}" for i in range(8)] + ["m16", "m17", "m18"]
    parents = {f"m{i}": [f"m{i - 1}"] for i in range(1, 19)}
    parents |= {f"x{i}": [f"x{i - 1}" if i else "m8"] for i in range(8)}
    parents["m16"] = ["m15", "x7"]
    names = {name: i for i, name in enumerate(order)}
    return Dag.from_parents(order, parents), names


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_a_commit_that_never_ran_new_is_never_named_the_culprit(k: int) -> None:
    """New commits on two branches meet at a fork no run could test. Naming the fork would
    assume one bug inherited by both; git names a commit it saw bad ("any of m8, m9"), and
    so must this, at every K."""
    dag, names = _two_bugs_below_an_untestable_fork()
    bugs = (names["m9"], names["x0"])

    def evaluate(points: Sequence[int]) -> list[Verdict]:
        return [
            Verdict.SKIP
            if p == names["m8"]
            else Verdict.NEW
            if any(dag.is_ancestor(b, p) for b in bugs)
            else Verdict.OLD
            for p in points
        ]

    outcome, _ = run(Bisector(dag), evaluate, k=k)
    assert outcome.kind is OutcomeKind.AMBIGUOUS, outcome
    assert names["m8"] in outcome.suspects
    seen_new = [s for s in outcome.suspects if s in bugs]
    assert len(seen_new) == 1
    assert set(outcome.suspects) == {names["m8"], *seen_new}


def _bad_branches(count: int) -> tuple[Dag, dict[str, int], tuple[int, ...]]:
    """m0, m1; `count` branches off m1, each x0 (fine) then x1..x3 (a bug of its own at
    x1); an octopus merge m2 of their tips, then m3."""
    tags = "abcdefghijkl"[:count]
    order = ["m0", "m1"] + [f"{t}{i}" for t in tags for i in range(4)] + ["m2", "m3"]
    parents = {"m1": ["m0"], "m2": [f"{t}3" for t in tags], "m3": ["m2"]}
    parents |= {f"{t}{i}": [f"{t}{i - 1}" if i else "m1"] for t in tags for i in range(4)}
    names = {name: i for i, name in enumerate(order)}
    return Dag.from_parents(order, parents), names, tuple(names[f"{t}1"] for t in tags)


def _stored_branch_bisections(names: dict[str, int], count: int) -> dict[int, Verdict]:
    known = {names["m0"]: Verdict.OLD, names["m3"]: Verdict.NEW}
    for t in "abcdefghijkl"[:count]:
        known |= {names[f"{t}0"]: Verdict.OLD}
        known |= {names[f"{t}{i}"]: Verdict.NEW for i in (1, 2, 3)}
    return known


@pytest.mark.parametrize("k", [1, 4])
def test_bad_branches_each_with_its_own_first_bad_commit_answer_one_as_git_does(k: int) -> None:
    """Twelve branches, a bug on each, their bisections stored: the commits each branch
    has in common (m1) were named at 99.8% though no run had seen them (and m1 is fine).
    Like git, which follows its one bad ref, the answer is a first bad commit of one."""
    dag, names, bugs = _bad_branches(12)
    b = Bisector(dag, _stored_branch_bisections(names, 12))

    def evaluate(points: Sequence[int]) -> list[Verdict]:
        return [
            Verdict.NEW if any(dag.is_ancestor(x, p) for x in bugs) else Verdict.OLD for p in points
        ]

    outcome, trace = run(b, evaluate, k=k)
    assert outcome.kind is OutcomeKind.FOUND
    assert outcome.first_new in bugs
    assert outcome.mode is Mode.TRUSTING
    assert trace.evaluations == 0  # the stored runs already say it
    # The other branches' bad commits are named as another change, none below the answer.
    assert {x for x in bugs if x != outcome.first_new} <= set(outcome.elsewhere)
    assert not any(dag.is_ancestor(outcome.first_new, e) for e in outcome.elsewhere)
    fresh, trace = run(Bisector(dag), evaluate, k=k)
    assert fresh.kind is OutcomeKind.FOUND
    assert fresh.first_new in bugs
    assert trace.evaluations <= 2 + 2 * k * math.ceil(math.log2(dag.n))


def test_a_calibrated_bisection_runs_the_commit_it_favours_before_naming_it() -> None:
    """Calibrated, the model favours the fork point below twelve bad branches (one bug
    inherited by all explains their runs with the fewest wrong ones): it named that
    commit at 99.8% though no run had seen it. It is run first."""
    from repromatrix.bisect_terms import Policy

    dag, names, _ = _bad_branches(12)
    known: dict[int, list[Verdict]] = {
        names["m0"]: [Verdict.OLD] * 5,
        names["m3"]: [Verdict.NEW] * 5,
    }
    for t in "abcdefghijkl":
        known[names[f"{t}0"]] = [Verdict.OLD]
        known |= {names[f"{t}{i}"]: [Verdict.NEW] * 5 for i in (1, 2, 3)}
    b = Bisector(dag, known, policy=Policy(calibrate=5))
    assert b.mode is Mode.CALIBRATED
    assert not b.done
    assert names["m1"] in b.next_points(4)


#: After criss-cross merges, the good end c5 and the bad end c6 of
#: [(), (0,), (0,), (1, 2), (2, 1), (3,), (4,)] have two merge bases, c1 and c2: nodes 0 and
#: 1 (old ends, roots), then `rev-list c6 ^c5`: c4 (parents c2, c1) and c6.
CRISS_CROSS = Dag(((), (), (1, 0), (2,)))


@pytest.mark.parametrize("culprit", [2, 3])
def test_several_merge_bases_are_old_ends_tested_one_after_another(culprit: int) -> None:
    """git bisect tests every merge base first (bisect.c check_merge_bases), one at a time;
    each is old, none a suspect. With one old end, a second root was a suspect."""
    truth = Truth(CRISS_CROSS, culprit)
    outcome, trace = run(Bisector(CRISS_CROSS, old_ends=2), truth, k=1)
    assert trace.rounds[:2] == [(0,), (1,)]
    assert (outcome.kind, outcome.first_new) == (OutcomeKind.FOUND, culprit)
    outcome, trace = run(Bisector(CRISS_CROSS, old_ends=2), Truth(CRISS_CROSS, culprit), k=4)
    assert trace.rounds[0] == (0, 1, 2, 3)
    assert outcome.first_new == culprit


def test_a_bad_merge_base_ends_the_bisection_naming_it() -> None:
    """git: "The merge base c2 is bad. This means the bug has been fixed between c2 and
    [good]": a wrong old end like node 0, confirmed by a second run."""

    def evaluate(points: Sequence[int]) -> list[Verdict]:
        return [Verdict.OLD if p == 0 else Verdict.NEW for p in points]

    outcome, _ = run(Bisector(CRISS_CROSS, old_ends=2), evaluate, k=1)
    assert (outcome.kind, outcome.end) == (OutcomeKind.OLD_END_IS_NEW, 1)


def test_calibrated_several_merge_bases_name_no_merge_base() -> None:
    bisector = Bisector(CRISS_CROSS, old_ends=2, policy=Policy(calibrate=3))
    outcome, trace = run(bisector, Truth(CRISS_CROSS, 3), k=2)
    assert (outcome.kind, outcome.first_new) == (OutcomeKind.FOUND, 3)
    assert sum(p == 1 for r in trace.rounds for p in r) == 3


def test_ancestry_memory_grows_with_the_histories_width_not_its_length_squared() -> None:
    """A table of every commit's ancestors took n²/16 bytes (16 MB here, 625 MB at 100,000
    commits); sets walked when asked and passes that drop a set once its children have
    theirs hold a few of them (measured in bytes allocated, not timed)."""
    parents: list[tuple[int, ...]] = [()]
    while len(parents) < 16_000:  # a side branch of two commits merged every 4 commits
        tip = len(parents) - 1
        parents += [(tip,), (tip + 1,), (tip,), (tip + 3, tip + 2)]
    dag = Dag(tuple(parents))
    culprit = 9_001

    def evaluate(points: Sequence[int]) -> list[Verdict]:
        return [Verdict.NEW if dag.is_ancestor(culprit, p) else Verdict.OLD for p in points]

    tracemalloc.start()
    try:
        outcome, _ = run(Bisector(dag), evaluate, k=1)
        values = dict.fromkeys(range(0, dag.n, 97), 1.0)
        up = dag.over_ancestors(values)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome.first_new == culprit
    assert up[-1] == len(values)
    assert peak < 8 * 2**20, peak
