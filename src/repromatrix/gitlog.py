"""Commits as `git log` describes them, the parser of the one format we ask it for, and
what each merge of a first-parent line brings in, read from the graph `git rev-list
--parents` printed (pure: `gitrepo` runs git, this reads what it printed)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

#: The fields of a commit, each ended by a NUL, the one byte a commit's text cannot hold
#: (a subject may hold any other: one with the ASCII record separator, \x1e, which once
#: parted the records, stopped a bisection with "internal error: ValueError").
#: `%ct` is the commit time as git orders commits by it (seconds since the epoch): `%cI`
#: holds it too, but Python reads no offset of a day or more (`+2500`, which git keeps from
#: old imports, fsck's badTimezone) nor a year past 9999.
_FIELDS = ("%H", "%P", "%an", "%aI", "%cI", "%ct", "%s")
#: What `git log` is given for the format our parser reads (`parse_log`); `-z` ends each
#: commit with a NUL too, so every field is followed by one.
LOG_ARGS = ("-z", "--format=" + "%x00".join(_FIELDS))


@dataclass(frozen=True, kw_only=True)
class Commit:
    sha: str
    parents: tuple[str, ...]
    author: str
    #: Author and committer dates, ISO 8601.
    authored: str
    committed: str
    #: Committer time, seconds since the epoch (what git's revision walk sorts by); None
    #: where the commit holds no date git can read (it prints nothing then).
    commit_time: int | None
    subject: str


def parse_log(text: str) -> list[Commit]:
    """Commits of `git log LOG_ARGS` output."""
    fields = text.split("\0")
    n = len(_FIELDS)
    return [_parse(fields[i : i + n]) for i in range(0, len(fields) - n + 1, n)]


def _parse(fields: list[str]) -> Commit:
    sha, parents, author, authored, committed, commit_time, subject = fields
    return Commit(
        sha=sha,
        parents=tuple(parents.split()),
        author=author,
        authored=authored,
        committed=committed,
        commit_time=int(commit_time) if commit_time.isdigit() else None,
        subject=subject,
    )


@dataclass(frozen=True, kw_only=True)
class Line:
    """A first-parent line (`GitRepo.history`): its commits, oldest first, and those of them
    that are merges (each brings in commits of its own branch, which the line skips)."""

    commits: tuple[str, ...] = ()
    merges: frozenset[str] = frozenset()
    #: Per merge of the line that a report's cells ran, the commits it brings in (oldest
    #: first), which the line skips: the change may be any of them, not the merge.
    branches: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Per merge of `branches`, the parents it merges (all but its first): where each ran
    #: as the line did before the merge, the merge itself is where the change is.
    tips: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: The parents of each commit of `branches`: which of them comes after which.
    parents: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def line_of(
    commits: tuple[str, ...],
    merges: frozenset[str],
    parents: str,
    tips: Mapping[str, tuple[str, ...]],
) -> Line:
    """The `Line` of `commits`, the branches of its merges `tips` read in what `git rev-list
    --parents` printed of their `merged_span` (none where it printed nothing)."""
    kept = brought_in(commits, parents, tips) if parents else {}
    graph = {c[0]: tuple(c[1:]) for c in map(str.split, parents.splitlines()) if c}
    below = {c: graph.get(c, ()) for branch in kept.values() for c in branch}
    return Line(commits=commits, merges=merges, branches=kept, tips=tips, parents=below)


def merged_span(line: Sequence[str], merges: Collection[str]) -> tuple[str, ...]:
    """What `git rev-list --parents` is given for `brought_in`: the newest of `merges` and,
    negated, the commit before the oldest (the line's first never is one), so a merge
    between two ran commits years apart walks its own commits, not all the years'; none
    without merges."""
    at = [i for i, sha in enumerate(line) if sha in merges and i]
    return (line[at[-1]], f"^{line[at[0] - 1]}") if at else ()


def brought_in(
    line: Sequence[str], parents: str, merges: Collection[str]
) -> dict[str, tuple[str, ...]]:
    """Per merge of `merges` (each a commit of the first-parent `line`, oldest first, after
    its first), the commits it brings in, as `git rev-list --reverse --topo-order m ^m^1`
    lists them, m left out. `parents`: what `git rev-list --parents` printed of their
    `merged_span`. One walk of the line, oldest to newest: each of its commits claims
    those its other parents reach that none before it did (they are the ancestors of
    `m^1`), where a `rev-list` per merge cost a report of 200 merges 8 s. It reads no
    commit times: on times out of order, git's own `m ^m^1` (without a commit-graph)
    stops early and lists commits `m^1` holds."""
    graph = {c[0]: c[1:] for c in map(str.split, parents.splitlines()) if c}
    claimed: set[str] = set()  # the ancestors (in `graph`) of the line's commit walked last
    found: dict[str, tuple[str, ...]] = {}
    for sha in line[1:]:
        brought: set[str] = set()
        stack = list(graph.get(sha, ())[1:])
        while stack:
            c = stack.pop()
            if c not in brought and c not in claimed and c in graph:
                brought.add(c)
                stack.extend(graph[c])
        claimed |= brought
        claimed.add(sha)
        if sha in merges:
            found[sha] = _topo_order(sha, brought, graph)
    return found


def _topo_order(tip: str, below: set[str], graph: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    """`below` (commits `tip` reaches) oldest first, as git's `--topo-order` sorts `tip` and
    them (commit.c's sort_in_topological_order: a stack from the one tip, each parent in
    its turn pushed once the last of its children is out), then reversed, `tip` left out."""
    indegree = dict.fromkeys(below, 1)
    for c in (tip, *below):
        for p in graph[c]:
            if p in indegree:
                indegree[p] += 1
    stack, out = [tip], []
    while stack:
        c = stack.pop()
        for p in graph[c]:
            if indegree.get(p, 0) > 1:
                indegree[p] -= 1
                if indegree[p] == 1:
                    stack.append(p)
        out.append(c)
    return tuple(reversed(out[1:]))
