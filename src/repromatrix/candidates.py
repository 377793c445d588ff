"""Bisection candidates: commits between two revisions (git) or declared releases (PyPI).

Thin: git does the ordering (topological, through `gitrepo`), in the same bare mirror the
environments check commits out of. Releases are ordered by PEP 440 from what matrix.yaml
declares, so no index is asked.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from repromatrix.errors import BisectError
from repromatrix.gitrepo import Commit, GitError, GitRepo, Mirrors
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
    #: The declared matrix revision this is, when there is one (PyPI: always).
    revision: Revision | None = None


def commit_candidates(
    mirrors: Mirrors,
    library: Library,
    old: str,
    new: str,
    *,
    first_parent: bool = False,
) -> list[Candidate]:
    """`old`, then every commit on the ancestry path to `new`, in topological order."""
    if library.git is None:
        raise BisectError(
            f"library '{library.name}' has no 'git:' source in matrix.yaml; add its URL "
            "(a --git-mirror then replaces it locally) or bisect declared releases"
        )
    repo = mirrors.repo(library.name, library.git)
    old_sha, new_sha = repo.resolve(old), repo.resolve(new)
    if old_sha is None or new_sha is None:
        mirrors.update(library.name, library.git)  # a newer mirror may know them
    old_sha, new_sha = resolve(repo, old), resolve(repo, new)
    if old_sha == new_sha:
        raise BisectError(
            f"{old} and {new} are the same commit ({old_sha[:SHORT]}); nothing to bisect"
        )
    if not repo.is_ancestor(old_sha, new_sha):
        raise BisectError(
            f"{old} ({old_sha[:SHORT]}) is not an ancestor of {new} ({new_sha[:SHORT]}); "
            "the older revision goes first: --good OLD --bad NEW, or with --find-fix "
            "--bad OLD --good NEW"
        )
    try:
        path = repo.log(old_sha, new_sha, first_parent=first_parent)
        commits = [candidate(repo.commit(old_sha)), *(candidate(c) for c in path)]
    except GitError as exc:
        raise BisectError(f"git log of {library.name} failed: {exc}") from None
    if commits[-1].rev != new_sha:
        # --first-parent from a merge commit's second parent, for instance.
        raise BisectError(f"{new} is not on the first-parent line from {old}; drop --first-parent")
    return commits


def candidate(commit: Commit) -> Candidate:
    return Candidate(
        rev=commit.sha,
        label=commit.sha[:SHORT],
        kind=SourceKind.GIT,
        subject=commit.subject,
        author=commit.author,
        authored=commit.authored,
        committed=commit.committed,
    )


def resolve(repo: GitRepo, rev: str) -> str:
    sha = repo.resolve(rev)
    if sha is None:
        raise BisectError(
            f"revision '{rev}' is not a commit in {repo.path}; check it or the --git-mirror"
        )
    return sha


def release_candidates(library: Library, old: str, new: str) -> list[Candidate]:
    """Declared PyPI versions from `old` to `new` inclusive, ordered by PEP 440."""
    releases: list[tuple[Version, Revision]] = []
    for rv in library.revisions:
        if rv.kind is not SourceKind.PYPI:
            continue
        try:
            releases.append((Version(rv.rev), rv))
        except InvalidVersion:
            continue
    declared = ", ".join(rv.label for _, rv in releases) or "none"
    ends: list[Version] = []
    for given in (old, new):
        match = next((v for v, rv in releases if given in (rv.rev, rv.label)), None)
        if match is None:
            raise BisectError(
                f"'{given}' is not a declared PyPI version of {library.name} "
                f"(declared: {declared}); add it to libraries.{library.name}.versions"
            )
        ends.append(match)
    lo, hi = ends
    if lo >= hi:
        raise BisectError(
            f"{old} is not older than {new}; the older version goes first: --good OLD --bad "
            "NEW, or with --find-fix --bad OLD --good NEW"
        )
    picked = sorted((v, rv) for v, rv in releases if lo <= v <= hi) if releases else []
    return [
        Candidate(rev=rv.rev, label=rv.label, kind=SourceKind.PYPI, revision=rv) for _, rv in picked
    ]
