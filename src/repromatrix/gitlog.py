"""Bisection candidates: commits between two revisions (git) or declared releases (PyPI).

Thin: git does the ordering (`rev-list --topo-order --reverse --ancestry-path`), in the
bare clone EnvCache keeps under `<cache>/git/<lib>.git` (cloned once from the library's
`git:` URL or its `--git-mirror`, so offline when that is local); the environments of the
cells check out of the same clone with `git archive`. Releases are ordered by PEP 440
from what matrix.yaml declares, so no index is asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

from repromatrix import proc
from repromatrix.envs import EnvCache
from repromatrix.errors import BisectError
from repromatrix.model import Library, Revision, SourceKind

#: Label length of a commit: short enough to read, long enough to stay unique in big repos.
SHORT = 10

# Unit and record separators: they never occur in names or subjects.
_US, _RS = "\x1f", "\x1e"
_FORMAT = _US.join(("%H", "%an", "%aI", "%cI", "%s")) + _RS


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
    envs: EnvCache,
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
    repo = envs.mirror(library.name, library.git)
    try:
        old_sha, new_sha = resolve(repo, old), resolve(repo, new)
    except BisectError:
        envs.update_mirror(library.name, library.git)  # a newer mirror may know them
        old_sha, new_sha = resolve(repo, old), resolve(repo, new)
    if old_sha == new_sha:
        raise BisectError(
            f"{old} and {new} are the same commit ({old_sha[:SHORT]}); nothing to bisect"
        )
    ancestor = proc.run(
        ["git", "--git-dir", str(repo), "merge-base", "--is-ancestor", old_sha, new_sha],
        timeout=600,
    )
    if ancestor.returncode != 0:
        raise BisectError(
            f"{old} ({old_sha[:SHORT]}) is not an ancestor of {new} ({new_sha[:SHORT]}); "
            "the older revision goes first: --good OLD --bad NEW, or with --find-fix "
            "--bad OLD --good NEW"
        )
    argv = [
        "git",
        "--git-dir",
        str(repo),
        "log",
        "--topo-order",
        "--reverse",
        "--ancestry-path",
        *(["--first-parent"] if first_parent else []),
        f"--format={_FORMAT}",
        f"{old_sha}..{new_sha}",
    ]
    out = proc.run(argv, timeout=600, check=True)
    first = proc.run(
        ["git", "--git-dir", str(repo), "log", "-1", f"--format={_FORMAT}", old_sha],
        timeout=600,
        check=True,
    )
    commits = [_parse(first.stdout.strip(_RS + "\n")), *parse_log(out.stdout)]
    if commits[-1].rev != new_sha:
        # --first-parent from a merge commit's second parent, for instance.
        raise BisectError(f"{new} is not on the first-parent line from {old}; drop --first-parent")
    return commits


def parse_log(text: str) -> list[Candidate]:
    return [_parse(rec.strip("\n")) for rec in text.split(_RS) if rec.strip()]


def _parse(record: str) -> Candidate:
    sha, author, authored, committed, subject = record.split(_US, 4)
    return Candidate(
        rev=sha,
        label=sha[:SHORT],
        kind=SourceKind.GIT,
        subject=subject,
        author=author,
        authored=authored,
        committed=committed,
    )


def resolve(repo: Path, rev: str) -> str:
    out = proc.run(
        ["git", "--git-dir", str(repo), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        timeout=600,
    )
    if out.returncode != 0:
        raise BisectError(
            f"revision '{rev}' is not a commit in {repo}; check it or the --git-mirror"
        )
    return out.stdout.strip()


def resolve_many(repo: Path, revs: Sequence[str]) -> dict[str, str]:
    """rev → full sha for those revisions the clone knows (one git call)."""
    if not revs:
        return {}
    out = proc.run(
        ["git", "--git-dir", str(repo), "cat-file", "--batch-check=%(objecttype) %(objectname)"],
        timeout=600,
        input_text="".join(f"{r}^{{commit}}\n" for r in revs),
    )
    found: dict[str, str] = {}
    for rev, line in zip(revs, out.stdout.splitlines(), strict=False):
        parts = line.split()
        if len(parts) == 2 and parts[0] == "commit":
            found[rev] = parts[1]
    return found


def show_file(repo: Path, rev: str, path: str) -> bytes:
    """A file's content at `rev` (for upstream tests added later than the commits tested)."""
    out = proc.run(["git", "--git-dir", str(repo), "show", f"{rev}:{path}"], timeout=600)
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise BisectError(f"cannot read {path} at {rev}: {last}")
    return out.stdout.encode()


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
