"""One commit, one revision of a library's axis: a tag and its commit listed apart are
refused before a run.

`versions: [{git: v1}, {git: 7bba5e89}]` with v1 at 7bba5e89 made two cells of one
experiment: the commit ran twice, and reports showed it as two revisions. Two spellings of
a commit id are refused when matrix.yaml is read (`config.values.same_commit`); a tag needs
the repository, so it is resolved here, once, through the run's mirrors. A branch (or
`main~3`) is left out: it moves, and standing at a tagged commit today does not make it
that tag's revision tomorrow. A revision that cannot be resolved is left to the
environment build, which says why.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from repromatrix.config import Matrix
from repromatrix.config.yamlsrc import load_located
from repromatrix.errors import ConfigError, EnvironmentBuildError
from repromatrix.gitrepo import GitError, GitRepo, is_commit_id
from repromatrix.mirrors import Mirrors
from repromatrix.model import Cell, Library, SourceKind
from repromatrix.safetext import excerpt


def check_one_commit_each(matrix: Matrix, cells: Sequence[Cell], mirrors: Mirrors) -> None:
    """ConfigError (file:line) when a tag of a git library the cells pin names the same
    commit as another revision of its axis."""
    pinned = {p.library for c in cells for p in c.pins if p.kind is SourceKind.GIT}
    for name in sorted(pinned):
        library = matrix.libraries[name]
        gits = [r for r in library.revisions if r.kind is SourceKind.GIT]
        # Commit ids alone were compared when matrix.yaml was read.
        if library.git is None or all(is_commit_id(r.rev) for r in gits) or len(gits) < 2:
            continue
        _check_library(matrix, library, mirrors)


def _check_library(matrix: Matrix, library: Library, mirrors: Mirrors) -> None:
    assert library.git is not None
    seen: dict[str, str] = {}  # commit → the revision that named it first
    for i, rev in enumerate(library.revisions):
        if rev.kind is not SourceKind.GIT:
            continue
        try:
            commit = mirrors.resolve(library.name, library.git, rev.rev)
            # A branch spelled in hex digits (`cafe1234`) is no id: it moves as `main` does.
            fixed = commit is not None and is_commit_id(rev.rev) and commit.startswith(rev.rev)
            tag = fixed or _is_tag(mirrors, library, rev.rev)
        except (GitError, EnvironmentBuildError):
            return  # unreachable or unclonable: the environment build says so
        if commit is None or not tag:
            continue
        first = seen.setdefault(commit, rev.rev)
        if first == rev.rev:
            continue
        where = load_located(matrix.path, display=str(matrix.path)).mark(
            ("libraries", library.name, "versions", i)
        )
        named = f"tag '{excerpt(first, 60)}'" if not is_commit_id(first) else f"'{first}'"
        raise ConfigError(
            f"{where}: library '{library.name}' lists '{excerpt(rev.rev, 60)}', the same "
            f"commit as {named} ({commit[:12]}); remove one"
        )


def _is_tag(mirrors: Mirrors, library: Library, rev: str) -> bool:
    assert library.git is not None
    return rev in tag_commits(mirrors.repo(library.name, library.git), [rev])


def tag_commits(repo: GitRepo, names: Iterable[str]) -> dict[str, str]:
    """name → the commit of the tag `refs/tags/<name>`, for those of `names` that are tags
    of `repo` (one git call); what a tag is resolved as here and in reports alike."""
    refs = {name: f"refs/tags/{name}" for name in names}
    found = repo.resolve_many(list(refs.values()))
    return {name: found[ref] for name, ref in refs.items() if ref in found}
