"""Names and places of git repositories, pure (the file system only), out of the git seam:
whether two sources name the same repository, submodule URLs relative to their
superproject's, and what to say of a name that stands for several refs or a short id too."""

from __future__ import annotations

import os


def same_place(recorded: str, source: str) -> bool:
    """Whether `recorded` (as git clone wrote it: a local path made absolute, not tidied)
    and `source` name the same repository."""
    if recorded == source:
        return True
    local = [os.path.realpath(x) for x in (recorded, source) if x and os.path.exists(x)]
    return len(local) == 2 and local[0] == local[1]


def relative_local(source: str) -> bool:
    """Whether `source` is a local path relative to the working folder, as git reads it: no
    scheme, not absolute, and no colon before its first slash (`host:path` is ssh)."""
    if "://" in source or os.path.isabs(source):
        return False
    head, colon, _ = source.partition(":")
    return not colon or "/" in head


def join_url(base: str, relative: str) -> str:
    """Resolve a submodule URL like ../cutlass.git against its superproject's URL."""
    parts = base.rstrip("/").split("/")
    for piece in relative.split("/"):
        if piece == "..":
            parts.pop()
        elif piece not in (".", ""):
            parts.append(piece)
    return "/".join(parts)


def ambiguity(rev: str, library: str, refs: list[tuple[str, str]]) -> str:
    """One line for a `rev` git found ambiguous, naming each (ref, sha) it may stand for,
    first the one git takes (a tag before a branch), as git's own "refname 'x' is
    ambiguous" does not."""
    both = " and ".join(f"{ref} ({sha[:10]})" for ref, sha in refs)
    used = refs[0][0] if refs else "git's choice"
    return (
        f"'{rev}' of {library} is ambiguous: {both}; using {used}, as git does: give the "
        "full name to choose"
    )


def shadowed(
    rev: str, library: str, refs: list[tuple[str, str]], commit: str, ids: list[str]
) -> str:
    """One line for a short id `rev` that a ref's name shadows: git reads the ref first
    (`commit`, "refname is ambiguous"), while a clone that had the commit and not yet the
    ref read the id, so one spelling named two commits, before and after a fetch."""
    others = ", ".join(f"the commit {sha[:10]}" for sha in ids[:3])
    ref = refs[0][0] if refs else rev
    return (
        f"revision '{rev}' of {library} names two commits: {ref} ({commit[:10]}), which git "
        f"reads first, and {others}, whose id begins so; give '{ref}' or more of the "
        "commit's digits"
    )
