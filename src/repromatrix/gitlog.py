"""Commits as `git log` describes them, and the parser of the one format we ask it for
(pure: `gitrepo` runs git, this reads what it printed)."""

from __future__ import annotations

from dataclasses import dataclass

# Unit and record separators: they never occur in names or subjects.
_US, _RS = "\x1f", "\x1e"
#: The format our log parser reads (`parse_log`).
LOG_FORMAT = _US.join(("%H", "%P", "%an", "%aI", "%cI", "%s")) + _RS


@dataclass(frozen=True, kw_only=True)
class Commit:
    sha: str
    parents: tuple[str, ...]
    author: str
    #: Author and committer dates, ISO 8601.
    authored: str
    committed: str
    subject: str


def parse_log(text: str) -> list[Commit]:
    """Commits of `git log --format=<our format>` output."""
    return [_parse(rec.strip("\n")) for rec in text.split(_RS) if rec.strip()]


def _parse(record: str) -> Commit:
    sha, parents, author, authored, committed, subject = record.split(_US, 5)
    return Commit(
        sha=sha,
        parents=tuple(parents.split()),
        author=author,
        authored=authored,
        committed=committed,
        subject=subject,
    )
