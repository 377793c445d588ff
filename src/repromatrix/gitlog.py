"""Commits as `git log` describes them, and the parser of the one format we ask it for
(pure: `gitrepo` runs git, this reads what it printed)."""

from __future__ import annotations

from collections.abc import Mapping
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
