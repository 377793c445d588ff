"""What each merge of a first-parent line brings in (`gitlog.brought_in`, through
`GitRepo.history`) is exactly `git rev-list --reverse --topo-order m ^m^1`, in its order,
on random real histories with criss-cross and octopus merges, from one git walk of the
region where a report ran one `rev-list` per merge (8 s for 200 merges). Real git."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest

from repromatrix.gitlog import Line, merged_span
from repromatrix.gitrepo import GitRepo


def git(repo: Path, *args: str, stdin: str | None = None) -> str:
    out = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, input=stdin,
        env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
             "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin", "HOME": str(repo)},
    )  # fmt: skip
    return out.stdout.strip()


def random_history(path: Path, seed: int, *, skewed: bool, steps: int = 70) -> list[str]:
    """A bare repository whose main has commits, merges of 1-3 branches at once (octopus),
    criss-cross merges, merges of a commit main holds already, branches made from old
    commits (`skewed`: committer times out of order); main's first-parent line, oldest
    first."""
    rnd = random.Random(seed)
    stream: list[str] = []
    heads: dict[str, int] = {}
    made = 0

    def commit(branch: str, parents: list[int]) -> int:
        nonlocal made
        made += 1
        when = 1_600_000_000 + (rnd.randrange(100_000) if skewed else made * 60)
        stream.append(f"commit refs/heads/{branch}\nmark :{made}\n")
        stream.append(f"committer t <t@t> {when} +0000\ndata <<.\nc{made}\n.\n")
        stream.extend(f"{'from' if i == 0 else 'merge'} :{p}\n" for i, p in enumerate(parents))
        stream.append("\n")
        heads[branch] = made
        return made

    commit("main", [])
    for step in range(steps):
        op = rnd.random()
        if op < 0.3 or len(heads) == 1:  # a branch from any commit made so far
            commit(f"b{step}", [rnd.randrange(1, made + 1)])
        elif op < 0.55:  # a commit on a branch (main's first-parent line too)
            branch = rnd.choice(sorted(heads))
            commit(branch, [heads[branch]])
        elif op < 0.65:  # criss-cross: each of two branches merges the other's head
            a, b = rnd.sample(sorted(heads), 2)
            old_a, old_b = heads[a], heads[b]
            if old_a != old_b:
                commit(a, [old_a, old_b])
                commit(b, [old_b, old_a])
        else:  # main (mostly) merges one to three others (an octopus), maybe an old commit
            into = "main" if rnd.random() < 0.8 else rnd.choice(sorted(heads))
            others = {heads[b] for b in heads if b != into} | {rnd.randrange(1, made + 1)}
            merged = rnd.sample(sorted(others - {heads[into]}), min(len(others) - 1, 3))
            commit(into, [heads[into], *merged[: rnd.randint(1, 3)]])
    src = path / "src"
    git(path, "init", "-q", "-b", "main", str(src))
    git(src, "fast-import", "--quiet", stdin="".join(stream))
    git(path, "clone", "-q", "--bare", str(src), str(path / "lib.git"))
    return git(src, "rev-list", "--first-parent", "--reverse", "main").split()


def merges_ran(mirror: Path, line: list[str], seed: int) -> list[str]:
    """All of `line`, or (2 seeds in 3) a random half of it, as a report's cells ran."""
    rnd = random.Random(seed)
    ran = sorted(rnd.sample(range(len(line)), max(2, len(line) // 2))) if seed % 3 else None
    return [line[i] for i in ran] if ran else line


def merges(mirror: Path, sha: str) -> bool:
    return len(git(mirror, "rev-parse", f"{sha}^@").split()) > 1


def assert_as_git_says(mirror: Path, line: list[str], given: list[str], got: Line) -> None:
    assert got.commits == tuple(line[line.index(given[0]) : line.index(given[-1]) + 1])
    merged = [m for m in got.commits[1:] if m in given and merges(mirror, m)]
    assert merged, "a history with merges"
    assert set(got.branches) == set(merged)
    for m in merged:
        said = git(mirror, "rev-list", "--reverse", "--topo-order", m, f"^{m}^1").split()
        assert got.branches[m] == tuple(said[:-1]), m


@pytest.mark.parametrize("seed", range(12))
def test_each_merge_brings_in_what_git_says_in_its_order(tmp_path: Path, seed: int) -> None:
    line = random_history(tmp_path, seed, skewed=False)
    mirror = tmp_path / "lib.git"
    if seed % 2:  # git's other topological walk (generation numbers)
        git(mirror, "commit-graph", "write", "--reachable")
    given = merges_ran(mirror, line, seed)
    _, got = GitRepo(mirror).history(given)
    assert_as_git_says(mirror, line, given, got)


@pytest.mark.parametrize("seed", range(8))
def test_committer_times_out_of_order_bring_in_no_commit_of_the_line(
    tmp_path: Path, seed: int
) -> None:
    """Without generation numbers (no commit-graph: a mirror `git clone` made), git's own
    `rev-list m ^m^1` stops early on committer times out of order and listed commits m^1
    holds: "no verdict at <a commit before the merge> (the branch merged at m)". The walk
    of the line reads no times: what git says once a commit-graph makes it exact."""
    line = random_history(tmp_path, seed, skewed=True)
    mirror = tmp_path / "lib.git"
    given = merges_ran(mirror, line, seed)
    _, got = GitRepo(mirror).history(given)
    git(mirror, "commit-graph", "write", "--reachable")
    assert_as_git_says(mirror, line, given, got)


def test_the_walk_spans_the_merges_that_ran_not_every_commit_that_did() -> None:
    """c1 and c9 ran years apart, and the merge m5 between them: git walks from m5 down to
    c4, not all of c9 ^c1 (tens of thousands of commits on a large library)."""
    line = ["c1", "c2", "c3", "c4", "m5", "c6", "m7", "c8", "c9"]
    assert merged_span(line, {"m5"}) == ("m5", "^c4")
    assert merged_span(line, {"m7", "m5"}) == ("m7", "^c4")
    assert merged_span(line, {"c1"}) == ()  # the line's first brings in nothing it shows
    assert merged_span(line, set()) == ()
