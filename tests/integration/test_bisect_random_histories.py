"""`repromatrix bisect` on random histories (`random_history.py`) against `git bisect run`
on the same history: at one point a round the very answer git names ("one of" the same
commits where git says "could be any of"), in no more evaluations than git's plus the two
ends; at four a round an answer git's semantics allow (a commit that shows the change and
none of whose parents the search has does), never one that does not.

The seeds are chosen so that, together, they hold every shape the generator makes: merges
into the main line and between branches, back-merges, criss-cross and octopus merges, a
branch merged twice, forks from old commits, a second root commit merged in, commits of one
second and a clock that ran back, tags; a change on the main line and on a branch, two
changes, a fix on a branch in a history that changed twice (--find-fix), --first-parent,
an old end off the new end's history (merge bases first), commits that cannot be tested.
Many more seeds ran while writing it (`random_case(random.Random(seed), 40)`, 0..300)."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from random_history import (
    Built,
    Case,
    Shape,
    bisect_cli,
    build,
    git_bisect_run,
    random_case,
    random_shape,
    write_matrix,
)

from repromatrix.store import ResultStore

pytestmark = pytest.mark.integration

#: seed → what it holds (with `random_case(random.Random(seed), 30)`).
SEEDS = {
    184: "find-fix, --first-parent, fixes on the main line and on a branch, octopus, "
    "criss-cross, back-merge, a branch merged twice, a second root, a clock run back",
    16: "find-fix in a history that changed twice (a branch forked before the bug passes)",
    322: "--first-parent, changes on the main line and on a branch, skips, octopus, "
    "criss-cross, a branch merged into a branch, tags",
    6: "an old end off the new end's history (merge bases first), criss-cross, old forks",
    34: "skips around the change: git says 'could be any of' two commits",
}


def answered(out: str, case: Case) -> str:
    term = "first fixed commit" if case.find_fix else "first bad commit"
    found = re.search(rf"^{term}: ([0-9a-f]{{40}}) ", out, re.M)
    return found[1] if found else ""


def allowed(built: Built, case: Case, sha: str) -> bool:
    """A first new commit in git's sense: new, and no candidate parent of it is (under
    --first-parent, its first parent)."""
    c = built.index(sha)
    candidates = case.shape.ancestors(case.new) - case.shape.ancestors(case.old)
    parents = case.shape.parents[c][:1] if case.first_parent else case.shape.parents[c]
    return case.is_new(c) and not any(p in candidates and case.is_new(p) for p in parents)


@pytest.mark.parametrize("seed", sorted(SEEDS))
def test_a_random_history_bisects_as_git_bisect_run(tmp_path: Path, seed: int) -> None:
    case = random_case(random.Random(seed), 30)
    built = build(tmp_path / "upstream", case)
    git = git_bisect_run(built, case, tmp_path)
    assert git.first or git.any_of, git.said
    for jobs in (1, 4):
        work = tmp_path / f"jobs{jobs}"
        write_matrix(work, built)
        out = bisect_cli(work, case, jobs=jobs)
        said = out.stdout + out.stderr
        assert "Traceback" not in out.stderr, said
        ours = answered(out.stdout, case)
        runs = [r for r in ResultStore(work / "results").load().results if r.status.is_final]
        if git.first:
            assert out.returncode == 0, said
            assert allowed(built, case, ours), said
            if jobs == 1:
                assert ours == git.first, said
                assert len(runs) <= len(git.ran) + 2, (len(runs), len(git.ran), said)
        elif ours:  # other points than git's may leave no skipped commit in between
            assert jobs > 1, said
            assert out.returncode == 0, said
            assert allowed(built, case, ours), said
        else:
            assert out.returncode == 6, said
            if jobs == 1:
                assert f"is one of {len(git.any_of)} " in out.stdout, said
                assert all(sha in out.stdout for sha in git.any_of), said


def test_a_fix_named_on_a_branch_that_never_had_the_bug_is_no_single_answer(
    tmp_path: Path,
) -> None:
    """--find-fix where the bug came at c5 and a branch forked at c2, before it, is merged at
    c12: the branch's commits pass, not for a fix. Four a round, its first commit c20 and
    the merge contradict each other, no commit's runs ever disagree, and c20 was named
    "first fixed commit ... confidence: 99.8%", exit 0, on the word of its parent c2, which
    no run saw (below --bad, taken as bad as git takes it) and which passes: a history that
    changed more than once need not follow git's rule there. Calibrated, it was no single
    answer (exit 6), naming the parent to run; now the two contradicting commits run once
    more, say the same, and the search goes on above the last bad commit tested: the first
    fixed commit it names has a parent a run saw bad."""
    parents: list[tuple[int, ...]] = [(), *((i,) for i in range(19))]
    parents += [(2,), *((20 + j,) for j in range(7))]  # c20..c27, forked at c2
    parents[12] = (11, 27)
    order = [*range(12), *range(20, 28), *range(12, 20)]  # parents first
    at = {c: i for i, c in enumerate(order)}
    shape = Shape(
        parents=tuple(tuple(at[p] for p in parents[c]) for c in order),
        times=tuple(1_700_000_000 + 3600 * i for i in range(len(order))),
        tip=len(order) - 1,
    )
    case = Case(shape=shape, old=at[7], new=at[19], changes=(at[16],), find_fix=True, bugs=(at[5],))
    built = build(tmp_path / "upstream", case)
    fork, first = built.shas[at[2]], built.shas[at[20]]
    git = git_bisect_run(built, case, tmp_path)
    assert git.first == first, git.said  # git's rule: c2 is below --bad, so bad
    write_matrix(tmp_path, built)
    out = bisect_cli(tmp_path, case, jobs=4)
    said = out.stdout + out.stderr
    assert out.returncode == 0, said
    assert "the behaviour changes more than once: good at" in out.stdout, said
    assert f"first fixed commit: {first}" not in out.stdout, said  # not on c2's word
    assert fork[:8] not in out.stdout, said  # c2 never ran, and is named nowhere
    assert "no run saw" not in said, said
    assert "Traceback" not in said


@dataclass(frozen=True, kw_only=True)
class _Reverted(Case):
    """A change reverted by a later commit and brought back by a later one still."""

    reverts: tuple[int, ...] = ()
    again: tuple[int, ...] = ()

    def is_new(self, c: int) -> bool:
        ancestors = self.shape.ancestors(c)
        came = bool(ancestors & set(self.changes)) and not ancestors & set(self.reverts)
        return came or bool(ancestors & set(self.again))


def test_an_answer_whose_parent_ran_bad_is_not_said_to_rest_on_a_parent_no_run_saw(
    tmp_path: Path,
) -> None:
    """The bug came at c27, c28 merged c27 and reverted it, and c29, an octopus merge of
    c23, c27 and c28, brought it back. Three a round, c27 ran bad twice and c28 good twice
    (no flaky repro: the history changed twice), and the answer c29 (exit 6) said "its
    parent ef12efbc no run saw", "a merge commit: none of its 3 parents shows it (...,
    ef12efbcdb (bad), ...)" and "bisect again with --good ef12efbcdbb6 to run it": a commit
    the table showed regressed twice, given as the good end. A parent that ran bad is said
    so, and the way out is to bisect the change it shows (--bad it)."""
    shape = random_shape(random.Random(32), 30)
    case = _Reverted(shape=shape, old=0, new=29, changes=(27,), reverts=(28,), again=(29,))
    assert shape.parents[29] == (23, 27, 28), shape.parents
    assert shape.parents[28] == (25, 27), shape.parents
    built = build(tmp_path / "upstream", case)
    write_matrix(tmp_path, built)
    out = bisect_cli(tmp_path, case, jobs=3)
    said = out.stdout + out.stderr
    assert "Traceback" not in said, said
    c27 = built.shas[27]
    assert answered(out.stdout, case) == built.shas[29], said
    assert out.returncode == 6, said
    assert "no run saw" not in said, said
    assert f"--good {c27[:12]}" not in said, said
    assert "none of its 3 parents shows it" not in said, said
    assert f"--bad {c27[:12]}" in said, said
