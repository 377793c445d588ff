"""The releases of a PyPI project a bisection saw, kept in the cache (`save_listing`) for
the report and later bisections: the report places them on the axis (a boundary between
two tested releases with untested ones between is a range there too), and says which were
yanked. Apart from `pypi_index`, which asks pip and reads release files: a report reads
what was kept without importing them.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from packaging.utils import canonicalize_name
from packaging.version import Version

from repromatrix.pep440 import pep440


class SeenReleases(Protocol):
    """What a bisection's listing (`pypi_index.Listing`) says that is kept: this module
    asks no more of it, so that the report's side never reaches pip's seams."""

    @property
    def versions(self) -> Collection[Version]: ...
    @property
    def elsewhere(self) -> Collection[Version]: ...
    @property
    def yanked(self) -> Collection[Version]: ...
    @property
    def sources(self) -> Sequence[str]: ...
    @property
    def problems(self) -> Sequence[str]: ...


def save_listing(
    cache: Path, project: str, listing: SeenReleases, ends: tuple[str, str] | None = None
) -> None:
    """Keep the releases a bisection saw under the cache, for the report: it places them
    on the axis, so a boundary between two tested releases with untested ones between is
    a range there too ("begins between 1.0 and 1.12"), never "at 1.12". Releases offered
    only as files this interpreter cannot install, or yanked, are releases too: nobody ran
    them, which is why the report must know them. The yanked ones are kept apart, and
    those between the bisection's `ends` (which it skipped, as pip does): the report
    said such a release "not run" as if the search had passed it by. Best effort."""
    path = cache / "releases" / f"{canonicalize_name(project)}.json"
    offered = {*listing.versions, *listing.elsewhere, *listing.yanked}
    kept = kept_listing(cache, project)
    known = {str(v) for v in offered} | set(kept.releases)
    data: dict[str, object] = {"project": project, "versions": sorted(known)}
    data["sources"] = list(listing.sources)
    # The report reads a boundary along an incomplete listing as the bisection did: a range.
    data["incomplete"] = (
        "; ".join(listing.problems) or "no source offered a release"
        if listing.problems or not listing.sources
        else ""
    )
    # Once yanked, yanked until a listing offers it again (un-yanked).
    before = {v: s for v, s in kept.yanked.items() if pep440(v)}
    before = {v: s for v, s in before.items() if pep440(v) not in listing.versions}
    span = [v for v in map(pep440, ends or ()) if v is not None]
    for v in listing.yanked:
        skipped = len(span) == 2 and min(span) < v < max(span)
        before[str(v)] = before.get(str(v), False) or skipped
    data["yanked"] = sorted(before)
    data["skipped"] = sorted(v for v, s in before.items() if s)
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, path)


@dataclass(frozen=True)
class KeptListing:
    """What the cache keeps of a project's listing (`save_listing`), read once."""

    #: Every release a bisection saw.
    releases: tuple[str, ...]
    #: Those it saw only as yanked files, each with whether a bisection skipped it.
    yanked: Mapping[str, bool]
    #: False for a listing kept before yanked releases were: none known, not none yanked.
    says_yanked: bool
    #: Why the last listing may have missed releases (a source it could not read); "" when
    #: it read every source, or was kept before this was said.
    incomplete: str = ""

    @property
    def yanked_or_unknown(self) -> dict[str, bool | None]:
        """`yanked`, but each release of a listing that does not say them None: the report
        read such a listing as one that has none yanked."""
        return dict(self.yanked) if self.says_yanked else dict.fromkeys(self.releases)


def kept_listing(cache: Path, project: str) -> KeptListing:
    """The releases of `project` a bisection saw and those yanked (see `save_listing`);
    none when none were kept or the file is unreadable."""
    path = cache / "releases" / f"{canonicalize_name(project)}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict):
        return KeptListing(releases=(), yanked={}, says_yanked=False)
    versions, yanked, skipped = [
        [v for v in x if isinstance(v, str)] if isinstance(x, list) else []
        for x in (data.get(k) for k in ("versions", "yanked", "skipped"))
    ]
    return KeptListing(
        releases=tuple(v for v in versions if pep440(v) is not None),
        yanked={v: v in skipped for v in yanked if pep440(v) is not None},
        says_yanked="yanked" in data,
        incomplete=data["incomplete"] if isinstance(data.get("incomplete"), str) else "",
    )


def stored_releases(cache: Path, project: str) -> list[str]:
    """The releases of `project` a bisection saw (see `save_listing`); [] when none or
    unreadable."""
    return list(kept_listing(cache, project).releases)


__all__ = ["KeptListing", "kept_listing", "save_listing", "stored_releases"]
