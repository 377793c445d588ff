"""What a bisection runs over: the commits between its ends (`candidates`), or the releases
the sources offer between them (`candidate_releases`), with a refusal naming the flag of an
end the sources do not know."""

from __future__ import annotations

import dataclasses

from repromatrix.bisect_plan import BisectRequest, Setup, declared_release, source_of
from repromatrix.candidate_releases import release_candidates, release_ends
from repromatrix.candidates import Axis, commit_candidates
from repromatrix.errors import BisectError, EnvironmentBuildError, UsageError
from repromatrix.gitrepo import GitError
from repromatrix.kept_releases import save_listing, stored_releases
from repromatrix.mirrors import Mirrors
from repromatrix.model import HOST_BASE, Library, Revision, SourceKind
from repromatrix.pep440 import pep440
from repromatrix.release_listing import list_releases
from repromatrix.revisions import is_hex
from repromatrix.session import Session


def axis_of(request: BisectRequest, setup: Setup, mirrors: Mirrors, session: Session) -> Axis:
    """The candidates: commits from the mirror, or the releases the sources offer."""
    lib = setup.library
    _one_reading(request, setup, mirrors)
    if source_of(request, setup) == "pypi":
        if request.test:
            raise UsageError(
                "--test runs the library's own tests from a checkout: use --source git"
            )
        if request.first_parent:
            raise UsageError("--first-parent applies to commits, not releases")
        if setup.also_old:  # releases have one order: the newest old end says it all
            flag = "--bad" if setup.find_fix else "--good"
            raise UsageError(f"{flag} given several times: releases take one, the newest")
        if lib.pypi is None:
            raise UsageError(
                f"--source pypi: library '{lib.name}' has no 'pypi:' name in "
                f"{setup.matrix.path.name}"
            )
        # Ends that are no release are refused before pip lists anything.
        flags = ("--bad", "--good") if setup.find_fix else ("--good", "--bad")
        release_ends(lib, setup.old, setup.new, flags)
        # A host cell installs with this interpreter: its wheel tags decide what a folder
        # offers (under Ray, a node's interpreter does, as it says them). In an image, the
        # image's python3 does: its own, where it says them (else every wheel for a Linux
        # platform counts there).
        image = setup.base != HOST_BASE
        lib_gpu = setup.matrix.gpus[setup.gpu]  # under Ray, a node of it asks its engine
        node = None if image else session.node_target(lib_gpu)
        listing = list_releases(
            lib.pypi,
            session.config.sources,
            python=session.interpreter.executable,
            env=session.env,
            wheel_tags=not image and node is None,
            image=(
                session.image_target(setup.matrix.bases[setup.base].ref, lib_gpu) if image else node
            ),
            installer="" if image or node is None else "the Ray nodes' interpreter",
        )
        # What the sources offered before (a release whose file was deleted since): read
        # before this listing joins it.
        seen = [pep440(v) for v in stored_releases(session.config.cache, lib.pypi)]
        save_listing(session.config.cache, lib.pypi, listing, (setup.old, setup.new))
        return release_candidates(
            lib,
            setup.old,
            setup.new,
            listing,
            flags,
            pre=request.pre,
            seen=[v for v in seen if v is not None],
        )
    if request.pre:  # "use --source pypi" for a library without releases: another refusal
        fix = "use --source pypi" if lib.pypi else f"'{lib.name}' has no 'pypi:': drop --pre"
        raise UsageError(f"--pre applies to releases, not commits: {fix}")
    if lib.git is None:
        raise BisectError(
            f"library '{lib.name}' has no 'git:' source in {setup.matrix.path.name}; add its "
            "URL (a --git-mirror then replaces it locally) or bisect declared releases"
        )
    try:
        axis = commit_candidates(
            mirrors,
            lib,
            setup.old,
            setup.new,
            first_parent=request.first_parent,
            also_old=setup.also_old,
        )
    except BisectError as exc:
        # Which flag gave the revision git does not know (an error names the flag).
        old_flag, new_flag = ("--bad", "--good") if setup.find_fix else ("--good", "--bad")
        for flag, given in (
            (old_flag, setup.old),
            *((old_flag, o) for o in setup.also_old),
            (new_flag, setup.new),
        ):
            if str(exc).startswith(f"revision '{given}' "):
                exc = BisectError(f"{flag} {given}: {exc}")
                break
        # `auto` takes PyPI only when both ends are declared releases: an undeclared one
        # (1.4, in the folder) sent the search to git, whose error named no way out.
        versions = pep440(setup.old) and pep440(setup.new)
        if request.source != "auto" or lib.pypi is None or not versions:
            raise exc from None
        raise BisectError(
            f"{exc}; {setup.old} and {setup.new} look like releases of {lib.pypi}: pass "
            f"--source pypi to bisect releases (auto takes them only when "
            f"{setup.matrix.path.name} declares both)"
        ) from None
    return _declared_names(axis, lib, mirrors)


def _declared_names(axis: Axis, lib: Library, mirrors: Mirrors) -> Axis:
    """The axis with each commit matrix.yaml declares given its revision, so the table and
    the Markdown show it as the report does (`v1.0 · 1a2b3c4d`), not by its hash alone."""
    declared = [rv for rv in lib.revisions if rv.kind is SourceKind.GIT]
    if not declared or lib.git is None:
        return axis
    shas = mirrors.repo(lib.name, lib.git).resolve_many([rv.rev for rv in declared])
    named: dict[str, Revision] = {}
    for rv in declared:  # the first declared name of a commit, as matrix.yaml lists them
        if sha := shas.get(rv.rev):
            named.setdefault(sha, rv)
    return dataclasses.replace(
        axis,
        candidates=tuple(
            dataclasses.replace(c, revision=named[c.rev]) if c.rev in named else c
            for c in axis.candidates
        ),
    )


def _one_reading(request: BisectRequest, setup: Setup, mirrors: Mirrors) -> None:
    """UsageError for an end that names both a release matrix.yaml declares and a commit of
    the library's repository (`--good 6956717`, a short id of digits alone, beside a
    declared release `6956717`): `--source auto` read it as the release where the other end
    was one too, and as the commit otherwise; either may be the one meant."""
    lib = setup.library
    if request.source != "auto" or lib.git is None:  # --source says which
        return
    old_flag, new_flag = ("--bad", "--good") if setup.find_fix else ("--good", "--bad")
    ends = [(old_flag, setup.old), *((old_flag, o) for o in setup.also_old), (new_flag, setup.new)]
    for flag, end in ends:
        release = declared_release(lib, end)
        if release is None or not 4 <= len(end) < 40 or not is_hex(end.lower()):
            continue  # no release, or no short id: one reading (a clone only where two may be)
        try:
            mirrors.resolve(lib.name, lib.git, end)  # fetched as an end is, once
            named = mirrors.repo(lib.name, lib.git).commits_named(end)
        except (GitError, EnvironmentBuildError):
            return  # unreachable: the search says so, or bisects the releases
        if not named:
            continue
        commit = (
            f"the commit {named[0][:12]}: for the commit give its full id ({named[0]})"
            if len(named) == 1
            else f"{len(named)} commits ({', '.join(c[:12] for c in named[:3])}): for a "
            "commit give the full id of the one meant"
        )
        raise UsageError(
            f"{flag} {end} names both the release {release.rev} of {lib.pypi or lib.name} "
            f"that {setup.matrix.path.name} declares and {commit}, for the release "
            "--source pypi (or, to bisect commits from it, its tag)"
        )
