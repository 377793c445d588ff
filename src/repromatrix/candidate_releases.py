"""Releases as bisection candidates: the versions the package sources offer between two
ends (`pypi_index.Listing`), with the versions matrix.yaml declares adding their notes and
extra requirements (see `candidates` for commits and the shape both share). A list that
may miss releases (the index could not be asked) says so, and a boundary between two
adjacent candidates is then only a range.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from repromatrix.candidates import Axis, Candidate
from repromatrix.dag import Dag
from repromatrix.errors import BisectError, UsageError
from repromatrix.model import Library, Revision, SourceKind
from repromatrix.pypi_index import Listing


def declared_releases(library: Library) -> dict[Version, Revision]:
    """The PyPI versions matrix.yaml declares, by version (unparsable ones left out)."""
    out: dict[Version, Revision] = {}
    for rv in library.revisions:
        if rv.kind is not SourceKind.PYPI:
            continue
        try:
            out.setdefault(Version(rv.rev), rv)
        except InvalidVersion:
            continue
    return out


def _end(library: Library, given: str, declared: dict[Version, Revision], flag: str) -> Version:
    for version, rv in declared.items():
        if given in (rv.rev, rv.label):
            return version
    try:
        return Version(given)
    except InvalidVersion:
        known = ", ".join(rv.label for rv in declared.values()) or "none"
        # A file name (`bisectpkg-1.0-py3-none-any.whl`) holds the release it offers.
        example = _file_version(given, library.pypi or library.name) or next(iter(declared), None)
        raise UsageError(
            f"{flag} {given}: not a PEP 440 version nor a declared PyPI version of "
            f"{library.name} (declared: {known}); give a release, e.g. {flag} "
            f"{example or '1.0'}"
        ) from None


def _file_version(name: str, project: str) -> Version | None:
    """The version a wheel or sdist file name of `project` names, None for other text."""
    try:
        if name.endswith(".whl"):
            dist, version, _, _ = parse_wheel_filename(Path(name).name)
        else:
            dist, version = parse_sdist_filename(Path(name).name)
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None
    return version if dist == canonicalize_name(project) else None


def release_ends(
    library: Library, old: str, new: str, flags: tuple[str, str] = ("--good", "--bad")
) -> tuple[Version, Version]:
    """The two ends as releases, older first; UsageError (naming the flag, `flags` being
    the old end's and the new end's) for a word that is no version, the same release
    twice, or the ends swapped. Checked before the sources are listed (pip's time)."""
    declared = declared_releases(library)
    lo, hi = _end(library, old, declared, flags[0]), _end(library, new, declared, flags[1])
    if lo == hi:
        raise UsageError(f"{old} and {new} are the same release; give two different ends")
    if lo > hi:
        raise UsageError(
            f"{old} is not older than {new}; the older version goes first: --good OLD --bad "
            "NEW, or with --find-fix --bad OLD --good NEW"
        )
    return lo, hi


def release_candidates(
    library: Library,
    old: str,
    new: str,
    listing: Listing | None,
    flags: tuple[str, str] = ("--good", "--bad"),
    *,
    pre: bool = False,
    seen: Iterable[Version] = (),
) -> Axis:
    """The releases from `old` to `new` inclusive in PEP 440 order: those the sources
    offer (`listing`), the declared ones, and the two ends (`release_ends`); with `pre`
    (--pre), the pre-releases between them too. `seen` are the releases the sources
    offered to earlier bisections (`stored_releases`): those between the ends no source
    offers now, every source read, are `gone`."""
    declared = declared_releases(library)
    lo, hi = release_ends(library, old, new, flags)
    offered = set(listing.versions) if listing is not None else set()
    # A release offered only as local builds is still a release: `==1.3` installs one.
    public = {Version(v.public) for v in offered}
    for end, given, flag in ((lo, old, flags[0]), (hi, new, flags[1])):
        # `==1.2` installs a build offered here (1.2+cu121) beside a 1.2 for macOS, as
        # PyTorch's index has them: no end refused as "cannot install" (`_one_build`).
        built = not end.local and end in public
        if listing is not None and end in listing.elsewhere and end not in declared and not built:
            raise BisectError(
                f"{flag} {given}: {library.pypi} {given} is offered by "
                f"{', '.join(listing.sources)} only as {_uninstallable(listing, end)}"
            )
        if (
            listing is not None
            and listing.complete
            and end not in offered | public | listing.yanked
            and end not in declared
        ):
            raise BisectError(
                f"{flag} {given}: {library.pypi} {given} is not offered by "
                f"{', '.join(listing.sources)}{_offers(listing)}; "
                "check the version or the --find-links folder / index (a yanked release is "
                "not listed, as pip leaves it out; declare it in matrix.yaml to start there)"
            )
    if listing is not None and listing.complete:
        _one_build(library, ((lo, old, flags[0], hi), (hi, new, flags[1], lo)), listing)
    # Pre-releases the index offers count only when an end is one or --pre asks (pip's
    # rule, PEP 440); declared ones always do: matrix.yaml asked for them.
    pre = pre or lo.is_prerelease or hi.is_prerelease
    # An end given with its local label (`1.2+cu118`): every build offered between the
    # ends is an install of its own, hence a candidate, in PEP 440 order (by label:
    # `1.2+cu121` after it). Left out, "first bad: 1.3" hid a bad 1.2+cu121, and a release
    # between offered as several builds ran as the one `==1.1` took (1.1+cu121), named
    # first bad past 1.1+cu118, which that order puts before it and nobody ran. A release
    # offered as one build alone is that build under its number, as `==1.1` installs it.
    installs = public
    if lo.local or hi.local:
        # By release, however spelled: 1.2.0+cu118 is a build of 1.2 beside 1.2+cu121.
        count = Counter(Version(v.public) for v in offered)
        alone = {
            v for v in offered if v.local and count[Version(v.public)] == 1 and v not in (lo, hi)
        }
        installs = (offered - alone) | {Version(v.public) for v in alone}
    between = {v for v in installs | set(declared) | {lo, hi} if lo <= v <= hi}
    picked = sorted(v for v in between if pre or not v.is_prerelease or v in declared)
    candidates = tuple(_release(v, declared.get(v)) for v in picked)
    taken = set(picked)
    # Without a local end a release is one point, run as the build `==1.2` installs
    # here: its builds for another platform (or yanked) are no release left out.
    builds: tuple[Version, ...] = ()
    if not (lo.local or hi.local):
        taken |= {v for v in offered | _skipped(listing) if Version(v.public) in taken}
        builds = tuple(sorted(v for v in offered if v.local and Version(v.public) in picked))
    elsewhere = tuple(
        sorted(v for v in (listing.elsewhere if listing else ()) if lo < v < hi and v not in taken)
    )
    return Axis(
        candidates=candidates,
        dag=Dag.chain(len(candidates)),
        commits=False,
        complete=listing is not None and listing.complete,
        pre=pre,
        listed_from=listing.sources if listing is not None else (),
        problems=listing.problems if listing is not None else (),
        prereleases=tuple(sorted(between - set(picked))),
        # A declared one is a candidate (pip fails on it: a skip), not a release left out.
        elsewhere=elsewhere,
        excluded_by=listing.excluded_by if listing and set(elsewhere) & listing.barred else "",
        image_python=listing.image_python if listing is not None else "",
        installer=listing.installer if listing is not None else "",
        yanked=tuple(
            sorted(
                v
                for v in (listing.yanked if listing else ())
                if lo < v < hi and v not in between and v not in taken
            )
        ),
        builds=builds,
        # Only from sources that still offer both ends: sources that offer neither (a
        # folder swapped for another) say nothing of what was deleted, and their own
        # way out (give the folder that offers the ends) is the one to take.
        gone=tuple(
            sorted(
                v
                for v in (set(seen) if _offers_both(listing, lo, hi) else ())
                if lo < v < hi
                and v not in between | taken | set(elsewhere) | _skipped(listing)
                and Version(v.public) not in public
            )
        ),
        unoffered=tuple(
            v
            for v in picked
            if v in declared
            and listing is not None
            and listing.complete
            and v not in offered | public | listing.yanked | listing.elsewhere
        ),
    )


def _one_build(
    library: Library, ends: tuple[tuple[Version, str, str, Version], ...], listing: Listing
) -> None:
    """BisectError for an end without a local label whose release the sources offer only
    as local builds, when it names no one install: `===1.0` matches none of them, `==1.0`
    then takes the highest (`1.0+cu121`), so `--good 1.0` ran a build nobody chose, the
    same one as `--bad 1.0+cu121`."""
    for end, given, flag, other in ends:
        if end.local or end in listing.versions:
            continue
        builds = sorted(v for v in listing.versions if v.local and Version(v.public) == end)
        if len(builds) > 1:
            raise BisectError(
                f"{flag} {given}: {library.pypi} {given} is offered by "
                f"{', '.join(listing.sources)} only as the builds "
                f"{', '.join(map(str, builds))}, of which pip would take the highest; "
                f"give the one to run, e.g. {flag} {builds[0]}"
            )
        if builds == [other]:
            raise BisectError(
                f"{flag} {given}: {library.pypi} {given} is offered by "
                f"{', '.join(listing.sources)} only as the build {other}, the other end; "
                "give two different ends"
            )


def _uninstallable(listing: Listing, end: Version) -> str:
    """What the sources offer of `end`, which installs nowhere the cells run, and the
    way out."""
    if listing.image_python:  # the image's python3 (or the Ray nodes') said its tags
        where = "on the nodes" if listing.installer else "in the image"
        who = listing.installer or "the image's python3"
        return (
            f"files {who} (Python "
            f"{listing.image_python}) cannot install (wheels for another platform or Python, "
            f"or a Requires-Python that excludes it); pick an end that installs {where}"
        )
    if listing.image:  # another Python installs there: only the platform bars a wheel
        return (
            "wheels no Linux image of this host installs (for Windows, macOS or another "
            "machine); pick an end that installs in an image"
        )
    return (
        "files this interpreter cannot install (wheels for another platform or Python, or a "
        f"Requires-Python that excludes it{_barred(listing, (end,))}); pick an end that "
        "installs here"
    )


def _barred(listing: Listing, versions: tuple[Version, ...]) -> str:
    """ ", or files pip's settings exclude: PIP_ONLY_BINARY=:all: excludes its sdists" when
    one of `versions` is offered only as such files, "" otherwise."""
    if not listing.excluded_by or not set(versions) & listing.barred:
        return ""
    return f", or files pip's settings exclude: {listing.excluded_by}"


def _skipped(listing: Listing | None) -> frozenset[Version]:
    """The releases the sources offer only as files pip skips here (another platform or
    Python, yanked)."""
    return frozenset() if listing is None else listing.elsewhere | listing.yanked


def _offers(listing: Listing) -> str:
    """What the sources do offer (" (it offers 4 releases, 1.0 to 1.3)"): an end outside
    them is seen at once."""
    found, it = sorted(listing.versions), "it" if len(listing.sources) == 1 else "they"
    if not found:
        return ""
    if len(found) == 1:
        return f" ({it} offer{'s' if it == 'it' else ''} {found[0]} alone)"
    return (
        f" ({it} offer{'s' if it == 'it' else ''} {len(found)} releases, {found[0]} to {found[-1]})"
    )


def _release(version: Version, declared: Revision | None) -> Candidate:
    if declared is not None:
        return Candidate(
            rev=declared.rev, label=declared.label, kind=SourceKind.PYPI, revision=declared
        )
    return Candidate(rev=str(version), label=str(version), kind=SourceKind.PYPI)


def release_revision(candidate: Candidate) -> Revision:
    """The matrix revision a release candidate installs (declared, or made for it)."""
    if candidate.revision is not None:
        return candidate.revision
    return Revision(rev=candidate.rev, kind=SourceKind.PYPI, label=candidate.label)


def _offers_both(listing: Listing | None, lo: Version, hi: Version) -> bool:
    """Whether `listing`, complete, offers both ends (in any form pip may meet them)."""
    if listing is None or not listing.complete:
        return False
    known = {*listing.versions, *listing.yanked, *listing.elsewhere}
    known |= {Version(v.public) for v in known}
    return lo in known and hi in known
