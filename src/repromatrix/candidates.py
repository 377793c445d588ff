"""Bisection candidates: the commits between two revisions (git), with the shape of their
history (`dag.Dag`); the releases between two versions (PyPI) are `candidate_releases`'.

Commits are what `git bisect` itself considers: every commit the new end reaches that the
old end does not (`git rev-list NEW ^OLD`), in topological order with their parents, so
branches forked before the old end and merged after it are candidates too and merges are
followed, never linearised. `--first-parent` keeps only the first-parent line (a chain).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from packaging.version import Version

from repromatrix.dag import Dag
from repromatrix.errors import BisectError, EnvironmentBuildError
from repromatrix.gitlog import Commit
from repromatrix.gitrepo import GitError, GitRepo
from repromatrix.mirrors import Mirrors
from repromatrix.model import Library, Revision, SourceKind

#: Label length of a commit: short enough to read, long enough to stay unique in big repos.
SHORT = 10


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """One point of the bisection axis."""

    #: Full sha (git) or version (PyPI): what the pin installs.
    rev: str
    #: Short sha or version: what the cell and the table show.
    label: str
    kind: SourceKind
    subject: str = ""
    author: str = ""
    #: Author date and committer date, ISO 8601 (git only).
    authored: str = ""
    committed: str = ""
    #: Committer time in seconds since the epoch (git only): the order git bisect lists
    #: its candidates in.
    commit_time: int | None = None
    #: The declared matrix revision this is, when there is one.
    revision: Revision | None = None
    #: Full shas of its parents (git only).
    parents: tuple[str, ...] = ()

    @property
    def is_merge(self) -> bool:
        return len(self.parents) > 1


@dataclass(frozen=True, kw_only=True)
class ForkCheck:
    """A --find-fix answer's parent below the --bad end, run (`bisect_forks.py`)."""

    sha: str
    #: What its runs said: the old term, the new term, or "" (flaky, or no verdict).
    word: str
    runs: int
    fresh: int
    #: The first commit named before, and its branch's commits left out (the parent
    #: said the new term: the branch never had the regression).
    named: str = ""
    dropped: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Axis:
    """What a bisection runs over: candidates (old end first, new end last) and their DAG."""

    candidates: tuple[Candidate, ...]
    dag: Dag
    commits: bool
    #: Releases: every release the sources offer between the ends is a candidate.
    complete: bool = True
    #: Releases: where the list came from, and sources that could not be read.
    listed_from: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    #: Commits of the first-parent line only (`--first-parent`): a merge stands for its
    #: whole merged branch, which is not searched.
    first_parent: bool = False
    #: Releases: pre-releases the sources offer between the ends, left out (pip's rule).
    prereleases: tuple[Version, ...] = ()
    #: Releases: pre-releases count (an end is one, or --pre).
    pre: bool = False
    #: Releases between the ends offered only for other platforms or Pythons (or only as
    #: files pip's settings exclude: `excluded_by` then names the setting).
    elsewhere: tuple[Version, ...] = ()
    excluded_by: str = ""
    #: Releases in an image: the version of its python3 that decided (`Listing`'s).
    image_python: str = ""
    installer: str = ""  # who that Python is ("": the image's python3; `Listing`'s)
    #: Releases between the ends the index offers only as yanked files (PEP 592).
    yanked: tuple[Version, ...] = ()
    #: Releases: candidates matrix.yaml declares that no source offers (the list being
    #: complete): pip cannot install them, whatever is retried.
    unoffered: tuple[Version, ...] = ()
    #: Releases between the ends the sources offered to an earlier bisection (the cache's
    #: list of them) and offer no more (a file deleted): no candidate, but one may be it.
    gone: tuple[Version, ...] = ()
    #: Releases: the local builds the sources offer of candidates run as one build (no
    #: end given with its label): `==1.2` installs one of 1.2+cpu and 1.2+cu130 alone.
    builds: tuple[Version, ...] = ()
    #: Commits: the old end as given, when it is no ancestor of the new end. Nodes
    #: 0..old_ends-1 are then their merge bases (several after criss-cross merges), which
    #: git bisect tests first, one after another, and the candidates are every commit the
    #: new end reaches that the given old end does not ("" when node 0 is that end).
    parted_from: str = ""
    old_ends: int = 1
    #: `--first-parent` with an old end the new end holds off its first-parent line (on a
    #: merged branch): the candidates are the first-parent commits of the new end that the
    #: old end does not reach (`git bisect --first-parent`), below node 0, the old end.
    off_line: bool = False
    #: With `off_line`, the old ends (as written) that reach the line's last old commit,
    #: the first parent of its first candidate: where the line leaves their history.
    left: tuple[str, ...] = ()
    #: Commits: candidates a shallow clone holds without their parents (its history is cut
    #: there, so they look like roots): a bad one may have come from a commit below it.
    cut: tuple[int, ...] = ()
    #: Several old ends given (`--good A --good B`): nodes 0..old_ends-1, as written.
    olds_given: tuple[str, ...] = ()
    #: --find-fix: the parents below the --bad end that the answers landed on, run.
    forks: tuple[ForkCheck, ...] = ()

    @property
    def merges(self) -> int:
        return sum(1 for c in self.candidates if c.is_merge)

    @property
    def ages(self) -> tuple[float, ...]:
        """Commit times: git bisect lists its candidates oldest first (() for releases).

        git's own numbers (`%ct`), not the ISO dates: one commit whose date Python cannot
        read (an offset of +2500, a year past 9999) made every commit's time unknown, and a
        K = 1 bisection then ran other commits than git's, more of them."""
        times = [c.commit_time for c in self.candidates]
        known = [float(t) for t in times if t is not None]
        return tuple(known) if len(known) == len(times) else ()


def commit_candidates(
    mirrors: Mirrors,
    library: Library,
    old: str,
    new: str,
    *,
    first_parent: bool = False,
    also_old: Sequence[str] = (),
) -> Axis:
    """`old`, then every commit `new` reaches that `old` does not, parents first; with
    `also_old` (several good revisions, as git bisect takes them), `old` and each of them,
    then every commit `new` reaches that none of them does."""
    if library.git is None:
        raise BisectError(
            f"library '{library.name}' has no 'git:' source; add its URL "
            "(a --git-mirror then replaces it locally) or bisect declared releases"
        )
    try:
        repo = mirrors.repo(library.name, library.git)
    except EnvironmentBuildError as exc:  # no history, no bisection: exit 6, not 7
        raise BisectError(str(exc)) from None
    # Names are read as the source has them now (see `Mirrors.resolve`).
    found = {rev: mirrors.resolve(library.name, library.git, rev) for rev in (old, new, *also_old)}
    cut = repo.shallow()
    old_sha, new_sha = resolve(repo, old, found[old]), resolve(repo, new, found[new])
    if also_old:
        more = [resolve(repo, rev, found[rev]) for rev in also_old]
        olds = _fewest(repo, (old, *also_old), (old_sha, *more))
        if len(olds) > 1:
            given = dict(zip((old, *also_old), (old_sha, *more), strict=True))
            return several_old(repo, library, given, olds, new, new_sha, first_parent)
        # One commit, however named (`A`, `A~0`), or one that reaches all the others: the
        # very bisection of that end alone (`rev-list NEW ^A ^A~1` is `rev-list NEW ^A`),
        # its merge bases tested first or its first-parent line left as with one end.
        (old_sha, old), *_ = olds.items()
    if old_sha == new_sha:
        raise BisectError(
            f"{old} and {new} are the same commit ({old_sha[:SHORT]}); nothing to bisect"
        )
    parted_from = ""
    if not repo.is_ancestor(old_sha, new_sha):
        if repo.is_ancestor(new_sha, old_sha):
            raise BisectError(
                f"{old} ({old_sha[:SHORT]}) is not an ancestor of {new} ({new_sha[:SHORT]}); "
                "the older revision goes first: --good OLD --bad NEW, or with --find-fix "
                "--bad OLD --good NEW"
            )
        # Branches that part: as git bisect, test their merge bases first (bisect.c
        # `check_merge_bases`, the bad end first, so in git's order), one after another;
        # below them, every commit `new` reaches that `old` does not.
        bases = repo.merge_bases(new_sha, old_sha)
        if not bases:
            raise BisectError(
                f"{old} ({old_sha[:SHORT]}) and {new} ({new_sha[:SHORT]}) have no common "
                f"history{shallow_note(library, cut)}; pass as the older end a commit of "
                f"{new}'s own history"
            )
        parted_from = old_sha
    else:
        bases = [old_sha]
    try:
        path = repo.log(old_sha, new_sha, first_parent=first_parent, ancestry_path=False)
        commits = [*(candidate(repo.commit(b)) for b in bases), *(candidate(c) for c in path)]
    except GitError as exc:
        raise BisectError(f"git log of {library.name} failed: {exc}") from None
    if first_parent:
        # `rev-list --first-parent NEW ^OLD`, as git bisect --first-parent: OLD's whole
        # history is old, so the line stops at the first commit OLD reaches, which need
        # not be OLD (on a merged branch) nor their merge base: it hangs below the old ends.
        off = not parted_from and bool(path) and path[0].parents[:1] != (old_sha,)
        return Axis(
            candidates=tuple(commits),
            dag=ancestry(commits, len(bases), first_parent=True),
            commits=True,
            first_parent=True,
            off_line=off,
            left=(old,) if off else (),
            parted_from=parted_from,
            old_ends=len(bases),
            cut=_cut(commits, cut),
            olds_given=(old,) if also_old else (),
        )
    return Axis(
        candidates=tuple(commits),
        dag=ancestry(commits, len(bases), first_parent=False),
        commits=True,
        parted_from=parted_from,
        old_ends=len(bases),
        cut=_cut(commits, cut),
        olds_given=(old,) if also_old else (),
    )


def _fewest(repo: GitRepo, given: Sequence[str], shas: Sequence[str]) -> dict[str, str]:
    """The old ends that say something (full sha → the first name given for it): one commit
    named twice is one end, and one that another of them reaches is dropped."""
    kept: dict[str, str] = {}
    for rev, sha in zip(given, shas, strict=True):
        kept.setdefault(sha, rev)
    return {
        s: r for s, r in kept.items() if not any(o != s and repo.is_ancestor(s, o) for o in kept)
    }


def several_old(
    repo: GitRepo,
    library: Library,
    given: Mapping[str, str],
    kept: Mapping[str, str],
    new: str,
    new_sha: str,
    first_parent: bool,
) -> Axis:
    """Several old ends (`git bisect start NEW OLD1 OLD2`): those no other one reaches, as
    nodes 0.., each tested as an end, then every commit `new` reaches that none of them
    does. One that `new` does not hold is refused with its merge base to give instead
    (git tests it first; with one old end, so does this: `commit_candidates`). `given`:
    each end as written → its full sha; `kept`: those that say something (`_fewest`). One
    off `new`'s history whose merge bases with it another end in that history reaches
    says nothing either (`rev-list NEW ^A ^B` is `rev-list NEW ^A`): git tests no base of
    it first, and it is dropped, never refused."""
    inside = [s for s in kept if s != new_sha and repo.is_ancestor(s, new_sha)]
    kept = dict(kept)
    for rev, sha in given.items():
        if sha == new_sha:
            raise BisectError(f"{rev} and {new} are the same commit ({sha[:SHORT]}); drop {rev}")
        if repo.is_ancestor(new_sha, sha):
            raise BisectError(
                f"{rev} ({sha[:SHORT]}) is not an ancestor of {new} ({new_sha[:SHORT]}): each "
                f"old end goes below the new one; drop {rev} or swap the ends (--find-fix)"
            )
        if not repo.is_ancestor(sha, new_sha):
            bases = repo.merge_bases(new_sha, sha)
            if bases and all(any(repo.is_ancestor(b, o) for o in inside) for b in bases):
                kept.pop(sha, None)
                continue
            instead = f"their merge base {bases[0][:SHORT]}" if len(bases) == 1 else "each of"
            instead += (
                ""
                if len(bases) == 1
                else f" their merge bases {', '.join(b[:SHORT] for b in bases)}"
            )
            raise BisectError(
                f"{rev} ({sha[:SHORT]}) is not in {new}'s history; with several old ends each "
                f"must be (git bisect tests {instead} first): give that instead of {rev}, "
                f"or bisect from {rev} alone"
                if bases
                else f"{rev} ({sha[:SHORT]}) and {new} have no common history; drop {rev}"
            )
    olds = list(kept)
    try:
        # What `new` reaches that none of them does: `rev-list NEW ^A ^B`, one log each.
        logs = [repo.log(o, new_sha, first_parent=first_parent, ancestry_path=False) for o in olds]
        unreached = set.intersection(*({c.sha for c in log} for log in logs))
        path = [c for c in logs[0] if c.sha in unreached]
        commits = [*(candidate(repo.commit(o)) for o in olds), *(candidate(c) for c in path)]
    except GitError as exc:
        raise BisectError(f"git log of {library.name} failed: {exc}") from None
    k = len(olds)
    # `--first-parent`: the line stops where it meets their history, on one of them or
    # below (a commit of the line that an end off it reaches, as with one old end).
    stop = path[0].parents[0] if first_parent and path and path[0].parents else ""
    left = (
        ()
        if not stop or stop in kept
        else tuple(r for o, r in kept.items() if repo.is_ancestor(stop, o))
    )
    return Axis(
        candidates=tuple(commits),
        dag=ancestry(commits, k, first_parent=first_parent),
        commits=True,
        first_parent=first_parent,
        off_line=bool(left),
        left=left,
        old_ends=k,
        olds_given=tuple(kept[o] for o in olds),
        cut=_cut(commits, repo.shallow()),
    )


def ancestry(commits: list[Candidate], old_ends: int, *, first_parent: bool) -> Dag:
    """The candidates' ancestry: the old ends first, then, with `first_parent`, one line
    hanging below all of them (`rev-list --first-parent NEW ^OLD...`, as git bisect
    --first-parent); else each commit's own parents among the candidates (`bisect_forks`
    builds it anew when a fork's commits leave the search)."""
    if first_parent:
        line = (tuple(range(old_ends)), *((i,) for i in range(old_ends, len(commits) - 1)))
        return Dag(((),) * old_ends + line)
    return Dag.from_parents([c.rev for c in commits], {c.rev: c.parents for c in commits})


def _cut(commits: Sequence[Candidate], shallow: frozenset[str]) -> tuple[int, ...]:
    return tuple(i for i, c in enumerate(commits) if c.rev in shallow)


def shallow_note(library: Library, shallow: frozenset[str]) -> str:
    """What a shallow clone of the library leaves out ("" for a whole history)."""
    if not shallow:
        return ""
    return (
        f" in this shallow clone of {library.name}, whose history is cut below "
        f"{len(shallow)} commit(s) (fetch it whole: git fetch --unshallow where it comes "
        f"from, or pass --git-mirror {library.name}=PATH of a full clone)"
    )


def candidate(commit: Commit) -> Candidate:
    return Candidate(
        rev=commit.sha,
        label=commit.sha[:SHORT],
        kind=SourceKind.GIT,
        subject=commit.subject,
        author=commit.author,
        authored=commit.authored,
        committed=commit.committed,
        commit_time=commit.commit_time,
        parents=commit.parents,
    )


def resolve(repo: GitRepo, rev: str, sha: str | None = None) -> str:
    """`rev`'s full sha (`sha`, when the caller resolved it already); BisectError if none."""
    sha = sha or repo.resolve(rev)
    if sha is None and len(named := repo.commits_named(rev)) > 1:
        # git's "short object ID is ambiguous": the id is right, only too short now.
        listed = ", ".join(
            f"{c.sha[:SHORT]} '{c.subject}' ({c.committed[:10]})"
            for c in map(repo.commit, named[:5])
        )
        more = f" and {len(named) - 5} more" if len(named) > 5 else ""
        raise BisectError(
            f"revision '{rev}' is a short id of {len(named)} commits in {repo.path}: "
            f"{listed}{more}; give more of its digits"
        )
    if sha is None and "@{" in rev:
        # `@{u}`, `main@{1}`, `@{yesterday}`: git reads them from a working copy's branch
        # settings and reflog, which a cached bare clone has none of ("not a commit ...;
        # check it" sent users to check a rev that is right where they typed it).
        raise BisectError(
            f"revision '{rev}' is read from a working copy's branch settings or reflog, which "
            f"the clone in {repo.path} does not keep; give the commit it names in your "
            f"checkout (git rev-parse '{rev}' there)"
        )
    # `origin/main`, as a checkout names its remote's branch: the clone holds the
    # source's own branches, where it is `main`.
    own = re.fullmatch(r"(?:refs/)?(?:remotes/)?[^/~^:]+/([^~^:]+)([~^].*)?", rev)
    if sha is None and own and repo.resolve(f"refs/heads/{own[1]}") is not None:
        raise BisectError(
            f"revision '{rev}' is not a commit in {repo.path}, which holds the source's own "
            f"branches, not a checkout's remote-tracking ones: for the source's branch, give "
            f"'{own[1]}{own[2] or ''}'"
        )
    if sha is None and own:  # `origin/feature` with no `feature` in the source itself
        raise BisectError(
            f"revision '{rev}' is not a commit in {repo.path}, which holds the source's own "
            "branches and tags: if it is a checkout's remote-tracking branch, give the commit "
            f"it names (git rev-parse '{rev}' there); else check it or the --git-mirror"
        )
    if sha is None:
        shallow = repo.shallow()
        cut = (
            f" (a shallow clone: its history is cut below {len(shallow)} commit(s); fetch it "
            "whole: git fetch --unshallow where it comes from)"
            if shallow
            else ""
        )
        raise BisectError(
            f"revision '{rev}' is not a commit in {repo.path}{cut}; check it or the --git-mirror"
        )
    return sha


def labels(candidates: Sequence[Candidate], indices: Sequence[int]) -> str:
    return ", ".join(candidates[i].label for i in indices)


__all__ = [
    "SHORT",
    "Axis",
    "Candidate",
    "candidate",
    "commit_candidates",
    "labels",
    "resolve",
]
