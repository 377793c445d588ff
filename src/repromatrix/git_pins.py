"""What a git pin's revision stands for: the commit (and its date) a build checks out,
and, for a pin given by a name (a branch, a tag), the commit that name stands for now,
which keys its environment and its records."""

from __future__ import annotations

from collections.abc import Sequence

from repromatrix.errors import EnvironmentBuildError
from repromatrix.gitrepo import GitError, is_commit_id
from repromatrix.mirrors import Mirrors
from repromatrix.model import Pin, SourceKind


def moving_commits(mirrors: Mirrors, pins: Sequence[Pin]) -> dict[str, str]:
    """library → the commit a git pin given by a name (`main`, `v1.2`, `main~3`, a branch
    `cafe1234`; not a commit id) stands for now, read after one fetch per process
    (`Mirrors.resolve`). A result or an environment made at another commit of that name is
    not this one. Names that cannot be resolved are left out: building their environment
    says why."""
    out: dict[str, str] = {}
    for pin in pins:
        # A whole id (40 or 64 hex digits) is no branch anyone names: reading it would
        # clone the library on a host that never builds it (a Docker or Ray driver).
        if pin.kind is not SourceKind.GIT or (is_commit_id(pin.rev) and len(pin.rev) in (40, 64)):
            continue
        try:
            commit = mirrors.resolve(pin.library, pin.source, pin.rev)
        except (GitError, EnvironmentBuildError):
            continue
        # A branch `cafe1234` (git reads names first) is no id: the commit must start so.
        if commit is not None and not (is_commit_id(pin.rev) and commit.startswith(pin.rev)):
            out[pin.library] = commit
    return out


def resolve_pin(mirrors: Mirrors, pin: Pin) -> tuple[str, str]:
    """(full commit, commit date) of a git pin; EnvironmentBuildError when unknown."""
    try:
        commit = mirrors.resolve(pin.library, pin.source, pin.rev)
        if commit is not None:
            return commit, mirrors.repo(pin.library, pin.source).commit(commit).committed
    except GitError as exc:
        raise EnvironmentBuildError(f"git: {exc}") from None
    raise EnvironmentBuildError(
        f"git revision '{pin.rev}' of {pin.library} not found in {pin.source}; "
        "check the revision or the --git-mirror"
    )
