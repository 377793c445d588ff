"""`repromatrix bisect` on histories with merges, against real `git bisect run` on the same
history: the same first bad commit, in no more evaluations than git's plus the two ends
(git takes the ends on trust; we check them)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from history_repo import (
    Flags,
    GitBisect,
    History,
    build,
    build_dag,
    fixed_beside_a_branch,
    git_bisect_run,
    write_matrix,
)

from repromatrix.bisect import Bisector, OutcomeKind, Verdict, run
from repromatrix.candidates import commit_candidates
from repromatrix.config import load_matrix
from repromatrix.mirrors import Mirrors
from repromatrix.records import Result
from repromatrix.store import ResultStore

pytestmark = pytest.mark.integration

#: The issue's shape: 40 main-line commits; an 80-commit branch forks after m20 and is
#: merged by m31 ("merged after m30").
MAIN, BRANCH, FORK, MERGE = 40, 80, 20, 31


def bisect(root: Path, matrix: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "repromatrix", "--matrix", str(matrix), "bisect", "pkg_check"]
    given = {a.split("=", 1)[0] for a in args}  # a flag given twice is refused (exit 64)
    defaults = ["--library=bisectpkg", "--good=good", "--bad=bad", "--executor=local"]
    argv += [a for a in defaults if a.split("=", 1)[0] not in given]
    argv += ["--no-progress", f"--cache={root / 'cache'}", f"--results={root / 'results'}"]
    return subprocess.run(
        [*argv, *args],
        cwd=root,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def evaluations(root: Path) -> list[Result]:
    return [r for r in ResultStore(root / "results").load().results if r.status.is_final]


def scenario(
    tmp_path: Path, main_flags: Callable[[int], Flags], side_flags: Callable[[int], Flags]
) -> tuple[History, Path, GitBisect]:
    # `importable`: each commit on PYTHONPATH, not pip-installed (~0.5 s of CPU an
    # evaluation): these tests are of which commits the search runs and what it names,
    # the same through either install; pip's own are test_bisect_git's.
    history = build(
        tmp_path / "upstream",
        main=MAIN,
        main_flags=main_flags,
        branch=BRANCH,
        fork=FORK,
        merge=MERGE,
        side_flags=side_flags,
        importable=True,
    )
    matrix = write_matrix(tmp_path, history)
    reference = git_bisect_run(history, tmp_path, sys.executable)
    return history, matrix, reference


def check_like_git(tmp_path: Path, history: History, matrix: Path, git: GitBisect) -> str:
    out = bisect(tmp_path, matrix, "--jobs=1")
    assert out.returncode == 0, out.stderr
    assert f"first bad commit: {git.first_bad}" in out.stdout, out.stdout
    ours = evaluations(tmp_path)
    print(f"repromatrix {len(ours)} evaluations, git bisect run {git.evaluations} + 2 ends")
    assert len(ours) <= git.evaluations + 2, (len(ours), git.evaluations, out.stdout)
    assert "(1 merge: branches are followed, not linearised)" in out.stdout
    return history.name(git.first_bad)


def test_a_bug_on_the_main_line_is_not_blamed_on_a_clean_merged_branch(tmp_path: Path) -> None:
    history, matrix, git = scenario(tmp_path, lambda i: {"SCALE_BUG_MAIN": i >= 25}, lambda j: {})
    assert check_like_git(tmp_path, history, matrix, git) == "m25"


def test_a_bug_on_a_merged_branch_is_found_on_the_branch(tmp_path: Path) -> None:
    history, matrix, git = scenario(tmp_path, lambda i: {}, lambda j: {"SCALE_BUG_SIDE": j >= 47})
    assert check_like_git(tmp_path, history, matrix, git) == "b47"


def test_two_good_branches_whose_merge_is_bad_name_the_merge(tmp_path: Path) -> None:
    history, matrix, git = scenario(
        tmp_path, lambda i: {"MERGE_A": i >= 22}, lambda j: {"MERGE_B": j >= 30}
    )
    assert check_like_git(tmp_path, history, matrix, git) == f"m{MERGE}"
    out = bisect(tmp_path, matrix)  # everything is stored now: the same answer, explained
    assert "a merge commit: neither parent shows it" in out.stdout


def test_four_points_a_round_on_a_merged_history(tmp_path: Path) -> None:
    history, matrix, git = scenario(tmp_path, lambda i: {}, lambda j: {"SCALE_BUG_SIDE": j >= 12})
    out = bisect(tmp_path, matrix, "--jobs=4")
    assert out.returncode == 0, out.stderr
    assert f"first bad commit: {history.sha('b12')}" in out.stdout
    assert git.first_bad == history.sha("b12")
    rounds = [ln for ln in out.stdout.splitlines() if ln.startswith("round ")]
    assert len(rounds) <= 5, out.stdout  # log5(120) ~ 3, plus the round of the ends


def test_every_culprit_costs_what_git_bisect_run_costs_plus_the_two_ends(tmp_path: Path) -> None:
    """The pure search on the history as commit_candidates reads it, against real `git
    bisect run` (its check: is the culprit an ancestor of HEAD) for all 119 culprits."""
    history = build(
        tmp_path / "upstream",
        main=MAIN,
        main_flags=lambda i: {},
        branch=BRANCH,
        fork=FORK,
        merge=MERGE,
    )
    costs_like_git(tmp_path, history)


def test_commits_of_one_second_cost_what_git_bisect_run_costs(tmp_path: Path) -> None:
    """Commits a script makes share their commit time: git then lists its candidates in
    the order its revision walk meets them, not by time (nor by topological order), and
    a search that took another order picked other commits than git, and ran more."""
    shape = [(), *((i,) for i in range(9)), (8,), (9, 10), (11,), (12,), (10, 12)]
    costs_like_git(tmp_path, build_dag(tmp_path / "upstream", [*shape, (12,)], step=0))


def test_a_commit_dated_with_an_offset_python_cannot_read_costs_what_git_bisect_run_costs(
    tmp_path: Path,
) -> None:
    """git reads any four-digit offset (`+2500`: fsck's badTimezone, kept by old imports),
    which Python's datetime refuses: one such commit made every candidate's time unknown,
    and a K = 1 search of merges made within one second then took the topological order
    for git's, and ran other commits than git (c1 the culprit: 5 runs where git ran 2)."""
    shape = [(), (0,), (0,), (2, 1), (3,), (3,), (4, 5), (6,)]
    times = [1_700_007_200 + t for t in (0, 3600, 3600, 7200, 7260, 7260, 10860, 14460)]
    history = build_dag(tmp_path / "upstream", shape, times=times, zones={3: "+2500"})
    lib = load_matrix(write_matrix(tmp_path, history)).libraries["bisectpkg"]
    axis = commit_candidates(Mirrors(tmp_path / "git"), lib, "good", "bad")
    assert axis.candidates[3].committed.endswith("+25:00")
    assert axis.ages == tuple(float(t) for t in times)
    costs_like_git(tmp_path, history)


def costs_like_git(tmp_path: Path, history: History) -> None:
    """For every culprit: our K = 1 search names it in git's runs plus the two ends."""
    lib = load_matrix(write_matrix(tmp_path, history)).libraries["bisectpkg"]
    axis = commit_candidates(Mirrors(tmp_path / "git"), lib, "good", "bad")
    shas = [c.rev for c in axis.candidates]
    # git's own answer to "is the culprit an ancestor of HEAD", asked once per culprit (the
    # culprit and `rev-list --ancestry-path culprit..bad`) rather than by `git merge-base`
    # at every step; `--no-checkout` leaves the tree alone (git picks the same commits)
    # and names the commit in BISECT_HEAD, which the shell reads: no process per step
    # but the check's own (the culprits' ~3,600 git processes cost 50 s of CI's 2 cores).
    check = tmp_path / "check.sh"
    check.write_text(
        f'#!/bin/sh\necho . >> "{tmp_path}/runs"\n'
        f'read head < "{history.path / ".git" / "BISECT_HEAD"}"\n'
        'case " $NEW " in *" $head "*) exit 1;; esac\nexit 0\n'
    )
    check.chmod(0o755)
    git = ["git", "-C", str(history.path)]
    for culprit in range(1, axis.dag.n):
        (tmp_path / "runs").write_text("")
        after = subprocess.run(
            [*git, "rev-list", "--ancestry-path", f"{shas[culprit]}..bad"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        env = {**os.environ, "NEW": " ".join([shas[culprit], *after])}
        # `bisect start` clears the last culprit's bisection itself (bisect_clean_state):
        # no `bisect reset` between them, a shell script of git's costing ~20 ms of CPU.
        subprocess.run(
            [*git, "bisect", "start", "--no-checkout", "bad", "good"],
            env=env,
            check=True,
            capture_output=True,
        )
        out = subprocess.run(
            [*git, "bisect", "run", str(check)], env=env, check=True, capture_output=True, text=True
        ).stdout
        assert f"{shas[culprit]} is the first bad commit" in out
        git_runs = len((tmp_path / "runs").read_text().split())

        def truth(points: Sequence[int], culprit: int = culprit) -> list[Verdict]:
            return [
                Verdict.NEW if axis.dag.is_ancestor(culprit, p) else Verdict.OLD for p in points
            ]

        outcome, trace = run(Bisector(axis.dag, age=axis.ages), truth, k=1)
        assert outcome.first_new == culprit
        assert trace.evaluations <= git_runs + 2, history.name(shas[culprit])


@pytest.mark.parametrize("jobs", [1, 4])
def test_a_good_end_on_another_branch_is_bisected_from_the_merge_base(
    tmp_path: Path, jobs: int
) -> None:
    """`git bisect start m29 b10` tests the merge base m20 first, then bisects what m29
    reaches that b10 does not; a bad merge base means the change came on the good end's
    branch (git: "The merge base ... is bad"). Both were refused with exit 6."""
    history, matrix, _ = scenario(tmp_path, lambda i: {"SCALE_BUG_MAIN": i >= 25}, lambda j: {})
    ends = (f"--good={history.sha('b10')}", f"--bad={history.sha(f'm{MERGE - 2}')}")
    out = bisect(tmp_path, matrix, f"--jobs={jobs}", *ends)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"first bad commit: {history.sha('m25')}" in out.stdout, out.stdout
    assert f"from their merge base {history.sha(f'm{FORK}')[:8]}" in out.stdout, out.stdout
    ran = {history.name(r.commits["bisectpkg"]) for r in evaluations(tmp_path)}
    assert f"m{FORK}" in ran, ran
    assert not any(name.startswith("b") for name in ran), ran
    early = tmp_path / "early"
    history, matrix, _ = scenario(early, lambda i: {"SCALE_BUG_MAIN": i >= 10}, lambda j: {})
    ends = (f"--good={history.sha('b10')}", f"--bad={history.sha(f'm{MERGE - 2}')}")
    out = bisect(early, matrix, f"--jobs={jobs}", *ends)
    assert out.returncode == 6, out.stdout + out.stderr
    assert f"the merge base {history.sha(f'm{FORK}')[:8]} of --good" in out.stderr, out.stderr


@pytest.mark.parametrize("culprit", ["m25", "m10"])
def test_a_skipped_merge_base_is_set_aside_as_git_bisect_does(tmp_path: Path, culprit: str) -> None:
    """`git bisect start m29 b10` whose merge base m20 cannot be tested: git warns ("the
    merge base between m29 and [b10] must be skipped. So we cannot be sure the first bad
    commit is between m20 and m29. We continue anyway.") and bisects on. repromatrix
    stopped there (exit 6, "could not be evaluated"). Now it goes on to git's answer, and
    says the culprit may lie below the merge base: with m10 bad, so is m20, and m21 is
    named as git names it."""
    history = build(
        tmp_path / "upstream",
        main=MAIN,
        main_flags=lambda i: {"SCALE_BUG_MAIN": i >= int(culprit[1:])},
        branch=BRANCH,
        fork=FORK,
        merge=MERGE,
        importable=True,
    )
    base = history.sha(f"m{FORK}")
    matrix = write_matrix(tmp_path, history, params=f"{{untestable_at: [{base[:10]}]}}")
    good, bad = history.sha("b10"), history.sha(f"m{MERGE - 2}")
    work = tmp_path / "git"
    work.mkdir()
    below = culprit if culprit != "m10" else f"m{FORK + 1}"  # git's answer
    git = git_bisect_from(history, good, bad, history.sha(culprit), work, skip=base)
    assert "must be skipped" in git, git
    assert f"is between {base} and" in git, git
    assert f"{history.sha(below)} is the first bad commit" in git, git
    out = bisect(tmp_path, matrix, "--jobs=1", f"--good={good}", f"--bad={bad}")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"first bad commit: {history.sha(below)}" in out.stdout, out.stdout
    said = " ".join(out.stdout.split())
    assert f"the merge base {base[:8]}" in said, said
    assert "could not be tested" in said, said
    assert "may lie below it" in said, said
    assert "Traceback" not in out.stderr


#: Criss-cross merges: c3 merges (c1, c2), c4 merges (c2, c1); the good end c5 (on c3) and
#: the bad end c6 (on c4) have two merge bases, c1 and c2.
CRISS_CROSS = [(), (0,), (0,), (1, 2), (2, 1), (3,), (4,)]


def git_bisect_from(
    history: History, good: str, bad: str, culprit: str, work: Path, *start: str, skip: str = ""
) -> str:
    """`git bisect run` from `good` to `bad`, a commit bad when `culprit` is in its
    history and untestable (exit 125) when it is in `skip` (shas, space-separated): its
    output, with every commit it ran appended ("ran: sha ...")."""
    check = work / "check.sh"
    check.write_text(
        f'#!/bin/sh\ngit rev-parse HEAD >> "{work}/runs"\n'
        'case " $SKIP " in *" $(git rev-parse HEAD) "*) exit 125;; esac\n'
        'git merge-base --is-ancestor "$CULPRIT" HEAD && exit 1\nexit 0\n'
    )
    check.chmod(0o755)
    (work / "runs").write_text("")
    env = {**os.environ, "CULPRIT": culprit, "SKIP": skip}
    git = ["git", "-C", str(history.path)]
    subprocess.run(
        [*git, "bisect", "start", *start, bad, good], env=env, check=True, capture_output=True
    )
    said = ""
    # `git bisect run` stops ("bisect run success") once it has checked out a second merge
    # base to test (bisect.c's BISECT_INTERNAL_SUCCESS_MERGE_BASE); run it again from
    # there, as one does by hand, until it names the answer.
    done_when = ("is the first bad commit", "is bad", "We cannot bisect more")
    while not any(words in said for words in done_when):
        done = subprocess.run(
            [*git, "bisect", "run", str(check)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        said += done.stdout + done.stderr
        assert said.count("running") < 10, said
    subprocess.run([*git, "bisect", "reset"], env=env, check=True, capture_output=True)
    return said + "\nran: " + " ".join((work / "runs").read_text().split())


@pytest.mark.parametrize("culprit", ["c4", "c6", "c1", "c2"])
@pytest.mark.parametrize("k", [1, 4])
def test_several_merge_bases_are_all_tested_first_as_git_bisect_does(
    tmp_path: Path, culprit: str, k: int
) -> None:
    """`git bisect start c6 c5` after criss-cross merges tests both merge bases first
    (bisect.c check_merge_bases), then bisects `rev-list c6 ^c5`; a bad merge base ends it
    ("The merge base c1 is bad"). It was refused, exit 6 ("2 merge bases")."""
    history = build_dag(tmp_path / "upstream", CRISS_CROSS)
    lib = load_matrix(write_matrix(tmp_path, history)).libraries["bisectpkg"]
    good, bad = history.sha("c5"), history.sha("c6")
    axis = commit_candidates(Mirrors(tmp_path / "git"), lib, good, bad)
    names = [history.name(c.rev) for c in axis.candidates]
    assert (axis.old_ends, sorted(names[:2]), names[2:]) == (2, ["c1", "c2"], ["c4", "c6"])
    git = git_bisect_from(history, good, bad, history.sha(culprit), tmp_path)
    git_ran = {history.name(sha) for sha in git.split("ran: ")[-1].split()}
    assert {"c1", "c2"} & git_ran, git

    ancestor = ["git", "-C", str(history.path), "merge-base", "--is-ancestor"]

    def truth(points: Sequence[int]) -> list[Verdict]:
        return [
            Verdict.NEW
            if subprocess.run(
                [*ancestor, history.sha(culprit), axis.candidates[p].rev], check=False
            ).returncode
            == 0
            else Verdict.OLD
            for p in points
        ]

    bisector = Bisector(axis.dag, age=axis.ages, old_ends=axis.old_ends)
    outcome, trace = run(bisector, truth, k=k)
    ran = {names[p] for r in trace.rounds for p in r}
    if culprit in ("c1", "c2"):
        assert f"The merge base {history.sha(culprit)} is bad" in git, git
        assert (outcome.kind, names[outcome.end or 0]) == (OutcomeKind.OLD_END_IS_NEW, culprit)
        return
    assert f"{history.sha(culprit)} is the first bad commit" in git, git
    assert git_ran >= {"c1", "c2"}, git
    assert (outcome.kind, names[outcome.first_new or 0]) == (OutcomeKind.FOUND, culprit)
    assert ran >= {"c1", "c2"}, ran


@pytest.mark.parametrize("culprit", ["m21", "m25", f"m{MERGE}", "m39"])
def test_first_parent_from_a_good_end_on_a_merged_branch_is_git_bisect_first_parent(
    tmp_path: Path, culprit: str
) -> None:
    """`git bisect start --first-parent m39 b10` (b10 merged by m31) bisects the
    first-parent commits of m39 that b10 does not reach: m21..m39, below b10. It was
    refused ("drop --first-parent")."""
    history = build(
        tmp_path / "upstream",
        main=MAIN,
        main_flags=lambda i: {},
        branch=BRANCH,
        fork=FORK,
        merge=MERGE,
        importable=True,
    )
    lib = load_matrix(write_matrix(tmp_path, history)).libraries["bisectpkg"]
    good, bad = history.sha("b10"), history.sha(f"m{MAIN - 1}")
    axis = commit_candidates(Mirrors(tmp_path / "git"), lib, good, bad, first_parent=True)
    names = [history.name(c.rev) for c in axis.candidates]
    assert names == ["b10", *(f"m{i}" for i in range(FORK + 1, MAIN))], names
    assert axis.off_line
    assert axis.dag.is_chain
    git = git_bisect_from(history, good, bad, history.sha(culprit), tmp_path, "--first-parent")
    assert f"{history.sha(culprit)} is the first bad commit" in git, git
    index = names.index(culprit)

    def truth(points: Sequence[int]) -> list[Verdict]:
        return [Verdict.NEW if p >= index else Verdict.OLD for p in points]

    outcome, _ = run(Bisector(axis.dag, age=axis.ages), truth, k=1)
    assert outcome.first_new == index


@pytest.mark.parametrize("jobs", [1, 4])
def test_two_bugs_on_two_branches_answer_one_first_bad_commit(tmp_path: Path, jobs: int) -> None:
    """A bug on the main line at m25 and another on the branch at b47, each line bisected
    first: bad commits on both branches with no suspect in common. They were taken as
    contradicting each other: calibrated, repeated, and out of runs or naming a commit
    no run had seen. Each is a first bad commit; one is named, the other said apart."""
    history, matrix, _ = scenario(
        tmp_path, lambda i: {"SCALE_BUG_MAIN": i >= 25}, lambda j: {"SCALE_BUG_SIDE": j >= 47}
    )
    main_line = bisect(tmp_path, matrix, f"--jobs={jobs}", "--first-parent")
    assert f"first bad commit: {history.sha('m25')}" in main_line.stdout, main_line.stdout
    branch = bisect(tmp_path, matrix, f"--jobs={jobs}", f"--bad={history.sha(f'b{BRANCH - 1}')}")
    assert f"first bad commit: {history.sha('b47')}" in branch.stdout, branch.stdout
    out = bisect(tmp_path, matrix, f"--jobs={jobs}")
    assert out.returncode == 0, out.stdout + out.stderr
    first = out.stdout.split("first bad commit: ", 1)[1].split()[0]
    assert history.name(first) in ("m25", "b47"), out.stdout
    assert "confidence: not measured" in out.stdout  # no contradiction, no calibration
    assert "also bad, not below it" in out.stdout
    assert len(evaluations(tmp_path)) <= 3 * (2 + jobs * 10), out.stdout


def test_first_parent_answer_next_to_a_merged_good_end_names_the_fork_point_last_good(
    tmp_path: Path,
) -> None:
    """`git bisect start --first-parent m39 b10` (b10 merged by m31) searches m21..m39; with
    m21 bad, the last good commit of that line is its first parent m20, the fork point,
    which b10 reaches (so git takes it as good) and which was never a candidate. The answer
    stood next to b10, the node below the line, as if b10 were the last good commit."""
    history = build(
        tmp_path / "upstream",
        main=MAIN,
        main_flags=lambda i: {"SCALE_BUG_MAIN": i >= FORK + 1},
        branch=BRANCH,
        fork=FORK,
        merge=MERGE,
        importable=True,
    )
    matrix = write_matrix(tmp_path, history)
    good, bad, first = history.sha("b10"), history.sha(f"m{MAIN - 1}"), history.sha(f"m{FORK + 1}")
    git = git_bisect_from(history, good, bad, first, tmp_path, "--first-parent")
    assert f"{first} is the first bad commit" in git, git
    out = bisect(tmp_path, matrix, "--jobs=1", "--first-parent", f"--good={good}", f"--bad={bad}")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"first bad commit: {first}" in out.stdout, out.stdout
    fork = history.sha(f"m{FORK}")
    last = next(ln for ln in out.stdout.splitlines() if "last good" in ln)
    assert f"last good commit on the first-parent line: {fork[:8]}" in last, out.stdout
    assert good[:8] in last, last  # the good end that reaches it


#: A history a script made (random merges, an octopus among them), where the merge c3 of
#: c1 and c0 brings the bug, and c1, c6 and c7 cannot be tested.
SKIPPED_AWAY = [
    *[(), (0,), (1,), (1, 0), (3, 0, 2), (1,), (4,), (6,), (6,), (7,), (7,), (10,)],
    *[(10,), (11,), (10,), (3, 14), (13,), (11, 7), (15,), (16,), (16,)],
]


def test_after_a_skip_the_search_goes_where_git_bisect_goes(tmp_path: Path) -> None:
    """Once a commit is skipped, git bisect sorts its candidates by how evenly they split
    (ties by sha) and steps away from a skipped best one pseudo-randomly (bisect.c
    `skip_away`). repromatrix took the nearest good split instead: here it ran c2 (good,
    which clears the skipped c1) and named c3 the first bad commit, where `git bisect
    run` runs c3, then c1, and says it could be c1 or c3."""
    history = build_dag(tmp_path / "upstream", SKIPPED_AWAY)
    lib = load_matrix(write_matrix(tmp_path, history)).libraries["bisectpkg"]
    axis = commit_candidates(Mirrors(tmp_path / "git"), lib, "good", "bad")
    names = [history.name(c.rev) for c in axis.candidates]
    skips = {"c1", "c6", "c7"}
    work = tmp_path / "work"
    work.mkdir()
    culprit = history.sha("c3")
    skip = " ".join(history.sha(s) for s in skips)
    git = git_bisect_from(history, "good", "bad", culprit, work, skip=skip)
    listed = git.split("could be any of:")[1].split("We cannot")[0].split()
    assert sorted(history.name(s) for s in listed) == ["c1", "c3"], git
    ancestor = ["git", "-C", str(history.path), "merge-base", "--is-ancestor", culprit]

    def truth(points: Sequence[int]) -> list[Verdict]:
        return [
            Verdict.SKIP
            if names[p] in skips
            else Verdict.NEW
            if subprocess.run([*ancestor, axis.candidates[p].rev], check=False).returncode == 0
            else Verdict.OLD
            for p in points
        ]

    ids = [c.rev for c in axis.candidates]
    outcome, trace = run(Bisector(axis.dag, age=axis.ages, ids=ids), truth, k=1)
    ran = [names[p] for r in trace.rounds for p in r]
    assert outcome.kind is OutcomeKind.AMBIGUOUS, (outcome, ran)
    assert sorted(names[s] for s in outcome.suspects) == ["c1", "c3"]
    git_ran = [history.name(sha) for sha in git.split("ran: ")[-1].split()]
    assert ran == [names[0], names[-1], *git_ran], (ran, git_ran)


def test_skips_on_a_line_step_away_to_the_commits_git_bisect_skip_names(tmp_path: Path) -> None:
    """101 commits, the middle one skipped, then each commit git moves to: git's next
    commit is far from the skipped one (here c91, then c39), not its neighbour (c49)."""
    history = build_dag(tmp_path / "upstream", [(), *((i,) for i in range(100))])
    git = ["git", "-C", str(history.path), "bisect"]
    said = subprocess.run(
        [*git, "start", "bad", "good"], capture_output=True, text=True, check=True
    ).stdout
    ids = [history.sha(f"c{i}") for i in range(101)]
    bisector = Bisector(101, {0: Verdict.OLD, 100: Verdict.NEW}, ids=ids)
    seen = []
    for _ in range(4):
        (point,) = bisector.next_points(1)
        assert f"[{ids[point]}]" in said.splitlines()[-1], (point, said)
        seen.append(point)
        bisector.record(point, Verdict.SKIP)
        said = subprocess.run([*git, "skip"], capture_output=True, text=True, check=True).stdout
    assert seen[:3] == [50, 91, 39], seen


#: A script's history (one second for all, merges of two and three): bugs come in at c8
#: and at c14; c6 and c10 cannot be tested.
TWO_BUGS_SKIPPED = [
    *[(), (0,), (1,), (0,), (2,), (2,), (2, 0), (3,), (7,), (8,), (4, 2, 7), (7,)],
    *[(3, 2, 6), (1, 3), (10, 6), (8, 14)],
]


def test_a_bisect_with_skips_names_what_git_bisect_run_names(tmp_path: Path) -> None:
    """Two bugs, two skipped commits: `git bisect run` follows c14's side and ends with
    "could be any of c6, c10, c14" (exit non-zero). repromatrix, stepping to the nearest
    split after a skip, followed c8's side and answered "first bad commit: c8", exit 0."""

    def below(a: int, i: int) -> bool:
        return i == a or any(below(a, p) for p in TWO_BUGS_SKIPPED[i])

    history = build_dag(
        tmp_path / "upstream",
        TWO_BUGS_SKIPPED,
        step=0,
        bad=lambda i: below(8, i) or below(14, i),
    )
    skips = [history.sha(f"c{i}")[:10] for i in (6, 10)]
    matrix = write_matrix(tmp_path, history, params=f"{{untestable_at: [{', '.join(skips)}]}}")
    out = bisect(tmp_path, matrix, "--jobs=1")
    assert out.returncode == 6, out.stdout + out.stderr
    assert "first bad commit is one of 3" in out.stdout, out.stdout
    for name in ("c6", "c10", "c14"):
        assert history.sha(name) in out.stdout, out.stdout
    assert "Traceback" not in out.stderr


def test_a_skipped_merge_base_under_a_one_of_answer_does_not_read_as_one_commit(
    tmp_path: Path,
) -> None:
    """The merge base m20 of b10 and m29 and the commit m24 below the culprit m25 cannot be
    tested: git says m24 or m25. The doubt line ended "this is the first bad commit
    above it", under a list of two."""
    history = build(
        tmp_path / "upstream",
        main=MAIN,
        main_flags=lambda i: {"SCALE_BUG_MAIN": i >= 25},
        branch=BRANCH,
        fork=FORK,
        merge=MERGE,
        importable=True,
    )
    skipped = [history.sha(f"m{FORK}")[:10], history.sha("m24")[:10]]
    matrix = write_matrix(tmp_path, history, params=f"{{untestable_at: [{', '.join(skipped)}]}}")
    good, bad = history.sha("b10"), history.sha(f"m{MERGE - 2}")
    out = bisect(tmp_path, matrix, "--jobs=1", f"--good={good}", f"--bad={bad}")
    assert out.returncode == 6, out.stdout + out.stderr
    assert "first bad commit is one of 2" in out.stdout, out.stdout
    said = " ".join(out.stdout.split())
    assert "may lie below it; above it, the first bad commit is one of those." in said, said
    assert "this is the first bad commit above it" not in said, said


#: A main line c0..c8 and a branch c9..c14 forked at c6, merged by c15; c16 the tip.
FORKED_AT_C6 = [
    *[(), (0,), (1,), (2,), (3,), (4,), (5,), (6,), (7,)],
    *[(6,), (9,), (10,), (11,), (12,), (13,), (8, 14), (15,)],
]


@pytest.mark.parametrize("find_fix", [False, True])
def test_a_shallow_clone_never_names_the_commit_its_history_is_cut_at(
    tmp_path: Path, find_fix: bool
) -> None:
    """The library's source is a shallow clone (`git clone --depth 6`): the branch is cut
    at c11, whose parents c10 and c9 (where the change came) the clone does not hold.
    c11 has no parent there, so it was named "first bad commit", exit 0, as git bisect in
    that clone names it; the whole history's answer is c9."""
    history = build_dag(
        tmp_path / "upstream",
        FORKED_AT_C6,
        bad=lambda i: (i in (9, 10, 11, 12, 13, 14, 15, 16)) != find_fix,
        importable=True,
    )
    shallow = tmp_path / "shallow"
    subprocess.run(
        ["git", "clone", "-q", "--depth=6", f"file://{history.path}", str(shallow)], check=True
    )
    history = History(path=shallow, shas=history.shas, install=history.install)
    matrix = write_matrix(tmp_path, history)
    old, new = history.sha("c7"), history.sha("c16")
    ends = [f"--bad={old}", f"--good={new}", "--find-fix"] if find_fix else [f"--good={old}"]
    out = bisect(tmp_path, matrix, "--jobs=1", *ends, *([] if find_fix else [f"--bad={new}"]))
    said = " ".join(out.stdout.split())
    assert out.returncode == 6, out.stdout + out.stderr
    assert "first bad commit:" not in said, said
    assert "first fixed commit:" not in said, said
    assert f"{history.sha('c11')[:8]} ({'good' if find_fix else 'bad'}) is the" in said, said
    assert "this shallow clone of bisectpkg" in said, said
    assert "git fetch --unshallow" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    if not find_fix:  # an end the clone cuts off: said so, not "check it"
        out = bisect(tmp_path, matrix, f"--good={history.sha('c2')}", f"--bad={new}")
        assert out.returncode == 6, out.stdout + out.stderr
        assert "a shallow clone" in out.stderr, out.stderr
        assert "--unshallow" in out.stderr, out.stderr


def test_a_fix_named_on_a_branch_forked_before_the_bug_runs_the_fork_point(
    tmp_path: Path,
) -> None:
    """--find-fix from m3 (scale broke there) to the tip: a branch forked at m1, before m3,
    and merged by m12 passes throughout, having never had the bug; m13 fixed it. Its first
    commit b0 was named "first fixed commit" at exit 0, as `git bisect run` names it (m1 is
    below the old end, so git takes it as broken without a run), and calibrated at 99.8%,
    with only a note naming m1. Now m1 runs once the answer lands on b0: it passes, so the
    branch never had the bug, its commits leave the search, and m13 is named, the note
    saying why b0 is not."""
    history = fixed_beside_a_branch(tmp_path / "upstream")
    matrix = write_matrix(tmp_path, history)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(history.path), str(clone)], check=True)
    check = tmp_path / "broken.py"  # exit 0 (the old term, "broken") while scale is wrong
    check.write_text(
        "import os, sys\nsys.path.insert(0, os.getcwd())\n"
        "import bisectpkg\nsys.exit(0 if bisectpkg.scale(3.0) != 6.0 else 1)\n"
    )
    git = ["git", "-C", str(clone), "bisect"]
    m3, tip = history.sha("m3"), history.sha("m15")
    start = ["start", "--term-old=broken", "--term-new=fixed", tip, m3]
    subprocess.run([*git, *start], check=True, capture_output=True)
    said = subprocess.run(
        [*git, "run", sys.executable, str(check)], capture_output=True, text=True, check=False
    )
    assert f"{history.sha('b0')} is the first fixed commit" in said.stdout, said.stdout

    m1, m13, b0 = history.sha("m1"), history.sha("m13"), history.sha("b0")
    for calibrate in ("0", "3"):
        out = bisect(
            tmp_path, matrix, "--find-fix", f"--bad={m3}", "--good=bad", "--jobs=1",
            f"--calibrate={calibrate}",
        )  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"first fixed commit: {m13}" in out.stdout, out.stdout
        note = next((ln for ln in out.stdout.splitlines() if f"{b0[:8]} was no fix" in ln), "")
        assert f"its parent {m1[:8]}, below --bad {m3}" in note, out.stdout
        assert "ran good" in note, note
        assert "never had the regression" in note, note
        assert "note: its parent" not in out.stdout, out.stdout
        assert re.search(r"\), \d+ stored run\(s\) reused", out.stderr), out.stderr
    # The ways out it names: m1 is good (the branch never had the bug), and the first-parent
    # line holds the fix.
    out = bisect(tmp_path, matrix, "--find-fix", f"--bad={m1}", "--good=bad", "--jobs=1")
    assert out.returncode == 6, out.stdout + out.stderr
    assert f"--bad {m1} ({m1[:8]}) is not bad" in out.stdout, out.stdout
    out = bisect(tmp_path, matrix, "--find-fix", f"--bad={m3}", "--good=bad", "--first-parent")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"first fixed commit: {history.sha('m13')}" in out.stdout, out.stdout
    assert "note: its parent" not in out.stdout, out.stdout


def test_a_fix_on_a_branch_forked_after_the_bug_stands_on_its_fork_points_run(
    tmp_path: Path,
) -> None:
    """--find-fix from c3 (scale broke at c1) to the tip c12: a branch forked at c2, below
    c3 but after the bug, fixed it at its first commit c8 and merged at c11. `git bisect
    run` names c8 taking c2 as broken without a run; c2 now runs once the answer lands on
    c8, says broken, and c8 stands, the note saying so: one run more than git's and the two
    ends, none where the answer's parents are in the search."""
    shape = [(), (0,), (1,), (2,), (3,), (4,), (5,), (6,), (2,), (8,), (7,), (10, 9), (11,)]
    broken = {1, 2, 3, 4, 5, 6, 7, 10}
    history = build_dag(tmp_path / "upstream", shape, bad=lambda i: i in broken, importable=True)
    matrix = write_matrix(tmp_path, history)
    c2, c3, c8 = history.sha("c2"), history.sha("c3"), history.sha("c8")
    git = git_bisect_from(history, history.sha("c3"), history.sha("c12"), c8, tmp_path)
    out = bisect(tmp_path, matrix, "--find-fix", f"--bad={c3}", "--good=bad", "--jobs=1")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"first fixed commit: {c8}" in out.stdout, out.stdout
    note = next((ln for ln in out.stdout.splitlines() if ln.startswith("note: its parent")), "")
    assert f"its parent {c2[:8]} lies below --bad {c3}, outside the search: it ran bad" in note
    assert "bisect with --bad" not in note, note
    runs = [r for r in ResultStore(tmp_path / "results").load().results if r.status.is_final]
    assert len(runs) == len(git.split("ran: ")[-1].split()) + 3, (git, out.stdout)


def test_a_fix_by_merging_a_branch_that_never_had_the_bug_says_so(tmp_path: Path) -> None:
    """--find-fix from c6 on a branch (c5, c6: scale broke at c5, forked at c1) to c8, past
    the merge c7 of the main line c2..c4, which never had the bug. git names c2 (c1 taken
    as broken); c1 runs good, so c2..c4 leave the search, and the answer is c7, the merge.
    But its line said "neither parent shows it (c4 (bad, as an ancestor), c6 (bad))" and a
    note "its parent c4 lies below --bad c6 ... (run, it said neither: c4) ... if it is
    good, c7 fixed nothing": c4 is no ancestor of c6, it was run twice for that note, and
    it passed both times. The merge is now said to bring in the branch left out, c4 good,
    and c4 is not run."""
    shape = [(), (0,), (1,), (2,), (3,), (1,), (5,), (4, 6), (7,)]
    history = build_dag(tmp_path / "upstream", shape, bad=lambda i: i in (5, 6), importable=True)
    matrix = write_matrix(tmp_path, history)
    c4, c6, c7 = history.sha("c4"), history.sha("c6"), history.sha("c7")
    out = bisect(tmp_path, matrix, "--find-fix", f"--bad={c6}", "--good=bad", "--jobs=1")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"first fixed commit: {c7}" in out.stdout, out.stdout
    assert f"{history.sha('c2')[:8]} was no fix" in out.stdout, out.stdout
    assert "as an ancestor" not in out.stdout, out.stdout
    assert "said neither" not in out.stdout, out.stdout
    assert "fixed nothing" not in out.stdout, out.stdout
    assert (
        f"  a merge commit: it brought {c4[:10]} (good), of a branch that never had the "
        f"regression (see the note), into {c6[:10]} (bad)\n"
    ) in out.stdout, out.stdout
    runs = {r.pins["bisectpkg"] for r in ResultStore(tmp_path / "results").load().results}
    assert not any(c4.startswith(pin) for pin in runs), runs


def test_a_branch_forked_at_the_bad_ends_parent_is_named_no_fix_again_not_the_bad_end(
    tmp_path: Path,
) -> None:
    """--find-fix from c2 (scale broke there) to the tip c10: a clean branch c3..c7 forked
    at c1, c2's own parent, and c9 fixed the bug. The first bisection names c9 and says c3
    was no fix (c1 ran good). The same command again left the branch out on c1's stored
    runs, and its note said "<c2> was no fix: its parent <c1>, below --bad <c2> (git bisect
    ... names <c2>)": the --bad end itself, a child of c1 too, named as the commit git
    names, and its confidence line counted 6 runs where the first counted 9 (the branch's
    left out). The note names c3 both times, and both count the same runs."""
    shape = [(), (0,), (1,), (1,), (3,), (4,), (5,), (6,), (2,), (8,), (9, 7)]
    history = build_dag(tmp_path / "upstream", shape, bad=lambda i: i in (2, 8), importable=True)
    matrix = write_matrix(tmp_path, history)
    c2, c3, c9 = history.sha("c2"), history.sha("c3"), history.sha("c9")
    said: list[str] = []
    for _ in range(2):
        out = bisect(tmp_path, matrix, "--find-fix", f"--bad={c2}", "--good=bad", "--jobs=1")
        said.append(next(ln for ln in out.stdout.splitlines() if ln.startswith("confidence:")))
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"first fixed commit: {c9}" in out.stdout, out.stdout
        assert f"note: {c3[:8]} was no fix: its parent {history.sha('c1')[:8]}" in out.stdout
        assert f"{c2[:8]} was no fix" not in out.stdout, out.stdout
        assert f"and names {c2[:8]}" not in out.stdout, out.stdout
    assert said[0] == said[1], said
    assert said[0].startswith("confidence: not measured: 9 run(s), 1 of them repeats"), said


def test_a_parent_below_the_bad_end_that_ran_fixed_is_said_so_where_no_branch_is_left_out(
    tmp_path: Path,
) -> None:
    """--find-fix from c3, the merge of c1 and c2 that broke scale, to c5: c4, merging c3
    into c2 again (criss-cross), fixed it. git names c4 (c2 below --bad taken as broken);
    c2 ran fixed twice, but no branch could leave the search (c4 leads from c3), and the
    answer said "a merge commit: neither parent shows it (<c2> (bad, as an ancestor), <c3>
    (bad)); the combination of the merged branches does" and "note: its parent <c2> lies
    below --bad ... (run, it said neither: <c2>) ... bisect with --bad <c2> to run it", exit
    0: a commit that ran good twice, called bad and unrun, given as the --bad to try. Both
    now say it ran good: it never had the regression, and c4 brought it back in."""
    shape = [(), (0,), (0,), (1, 2), (2, 3), (4,)]
    history = build_dag(tmp_path / "upstream", shape, bad=lambda i: i == 3, importable=True)
    matrix = write_matrix(tmp_path, history)
    c2, c3, c4 = history.sha("c2"), history.sha("c3"), history.sha("c4")
    out = bisect(tmp_path, matrix, "--find-fix", f"--bad={c3}", "--good=bad", "--jobs=1")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"first fixed commit: {c4}" in out.stdout, out.stdout
    assert f"{c2[:8]} 2 passed" in out.stdout, out.stdout
    assert "as an ancestor" not in out.stdout, out.stdout
    assert "said neither" not in out.stdout, out.stdout
    assert f"--bad {c2[:12]}" not in out.stdout, out.stdout
    assert (
        f"  a merge commit: it brought {c2[:10]} (good), of a branch that never had the "
        f"regression (see the note), into {c3[:10]} (bad)\n"
    ) in out.stdout, out.stdout
    assert (
        f"note: its parent {c2[:8]} lies below --bad {c3}, outside the search: it ran good (2 "
        f"run(s)), not bad as git bisect takes it without a run: it never had the regression, "
        f"which began between it and --bad {c3}; {c4[:8]} merged it back into that line"
    ) in out.stdout, out.stdout


def test_a_fork_point_below_the_bad_end_that_cannot_be_tested_runs_once(tmp_path: Path) -> None:
    """--find-fix from c2 to c10: a clean branch c3..c7 forked at c1, which cannot be tested
    (exit 125), and git names c3 (c1 below --bad, taken as broken). c1 ran 3 times, each
    untestable (8 runs where git's 3, the two ends and README's one run of the fork point
    make 6), and the note's way out was "bisect with --bad <c1> to run it", a commit that
    ran and could not test. It runs once; the way out is to make it testable first."""
    shape = [(), (0,), (1,), (1,), (3,), (4,), (5,), (6,), (2,), (8,), (9, 7)]
    history = build_dag(tmp_path / "upstream", shape, bad=lambda i: i in (2, 8), importable=True)
    c1, c2, c3 = history.sha("c1"), history.sha("c2"), history.sha("c3")
    matrix = write_matrix(tmp_path, history, params=f"{{untestable_at: ['{c1[:10]}']}}")
    out = bisect(tmp_path, matrix, "--find-fix", f"--bad={c2}", "--good=bad", "--jobs=1")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"first fixed commit: {c3}" in out.stdout, out.stdout
    assert f"{c1[:8]} untestable" in out.stdout, out.stdout
    runs = [r for r in ResultStore(tmp_path / "results").load().results if r.status.is_final]
    assert len(runs) == 6, out.stdout
    assert f"make it testable and bisect with --bad {c1[:12]} (if it is good" in out.stdout
    assert "to run it" not in out.stdout, out.stdout
