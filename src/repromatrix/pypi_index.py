"""Which releases of a PyPI project the package sources offer (`Listing`), what the
index says through pip (`index_versions`), and the releases a bisection saw, kept in the
cache (`save_listing`). `release_listing` joins the sources into one listing.

Bisecting releases means bisecting what the index offers, not what matrix.yaml happens to
list. Two sources, as `pip install` would see them:

- `--find-links` folders, and those pip's own settings add (PIP_FIND_LINKS, `find-links`
  in its configuration files): read by `release_files` as pip reads them, and by pip
  too when one holds an HTML page (whose links pip follows). A find-links entry that is
  not a folder (an HTML page, a URL) is left to pip.
- the configured index (unless `--no-index`): `pip index versions --pre`, run by the
  interpreter the environments are built with and with the same pip arguments, so the
  index URL, credentials and yanked releases (PEP 592: pip leaves them out) are exactly
  pip's. An index that cannot be reached, or refuses access (401/403: an expired token),
  is reported, not fatal: the caller then knows its list may be incomplete. pip's output
  says "No matching distribution found" for both that and a project the index does not
  have; its log (`pip_log`) tells them apart.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from repromatrix import proc
from repromatrix.pip_log import IndexLog, read_index_log
from repromatrix.release_files import BOTH_FORMATS
from repromatrix.safetext import pip_failure

_AVAILABLE = re.compile(r"^Available versions:\s*(.*)$", re.MULTILINE)


@dataclass(frozen=True, kw_only=True)
class Listing:
    """Releases offered, where from, and which sources could not be read."""

    versions: frozenset[Version]
    #: Where the versions came from ("folder wheels/", "index").
    sources: tuple[str, ...]
    #: One line per source that could not be read (the list may be incomplete).
    problems: tuple[str, ...] = ()
    #: Releases a source offers only as files the target interpreter cannot install
    #: (another platform or Python): no candidate, but the change may have come in one.
    elsewhere: frozenset[Version] = frozenset()
    #: Releases the index offers only as yanked files (PEP 592): pip leaves them out of
    #: its list, as the candidates do, but the change may have come in one.
    yanked: frozenset[Version] = frozenset()
    #: Those of `elsewhere` offered only as files pip's settings exclude (an sdist under
    #: only-binary, a wheel under no-binary), and the setting ("PIP_ONLY_BINARY=:all:
    #: excludes its sdists"): no candidate, nor a release another interpreter installs.
    barred: frozenset[Version] = frozenset()
    excluded_by: str = ""
    #: Each yanked file's version and wheel tags (None: an sdist), as `IndexLog` has them.
    yanked_files: tuple[tuple[Version, frozenset[str] | None], ...] = ()
    #: Each file pip skipped as one for another platform or Python: version and wheel
    #: tags (None: an sdist), as `IndexLog` has them (an image may install it).
    elsewhere_files: tuple[tuple[Version, frozenset[str] | None], ...] = ()
    #: What an image installs (`release_listing.list_releases` without wheel tags), where
    #: `elsewhere` holds wheels for no Linux platform of this host: not this interpreter's.
    image: bool = False
    #: The version of the image's python3 whose wheel tags and Requires-Python decided
    #: (`image`), "" when the image did not say them (then only the platform bars one).
    image_python: str = ""
    #: Who that Python is, for people ("": the image's python3; under Ray, the host base's
    #: releases are judged by the nodes' interpreter).
    installer: str = ""
    #: Each file pip took: version, folder (None: not a local file) and name.
    found_files: tuple[tuple[Version, Path | None, str], ...] = ()

    @property
    def complete(self) -> bool:
        """Every configured source answered (so no release between two others is unseen)."""
        return bool(self.sources) and not self.problems


def parse_pip_index(output: str) -> set[Version] | None:
    """Versions from `pip index versions` output; None when it has no such line."""
    match = _AVAILABLE.search(output)
    if match is None:
        return None
    found: set[Version] = set()
    for text in match.group(1).split(","):
        try:
            found.add(Version(text.strip()))
        except InvalidVersion:
            continue
    return found


def index_versions(
    python: str,
    project: str,
    pip_args: Sequence[str],
    *,
    name: str = "index",
    formats: frozenset[str] = BOTH_FORMATS,
    judged: Sequence[Path] = (),
    env: Mapping[str, str] | None = None,
) -> Listing:
    """What the configured index offers (pip's view). It counts among the sources read
    (as `name`) only when every page pip asked for answered: a page refused (an expired
    token's 401/403) or unreachable is a problem line, and the list may miss releases.
    A version whose every file `formats` (`pip_formats`) excludes is barred, as `pip
    install` bars it: an older pip's `index versions` lists it, a newer one skips it
    (its log says why), and either was a release lost or run as an error. A version pip
    found only in folders `judged` (find-links folders of pip's settings, read already by
    `folder_listing`, which reads a wheel's Requires-Python where pip cannot) is left out:
    pip listed a release that does not install here, and it ran as an error, a skip.
    pip runs with `env` (default this process's), the variables the installs see: run
    with this process's own, a PIP_INDEX_URL or PIP_NO_INDEX given in `env` was not
    what pip listed from."""
    with tempfile.TemporaryDirectory(prefix="repromatrix-pip-") as tmp:
        log = Path(tmp) / "pip.log"
        argv = [
            python,
            "-m",
            "pip",
            "index",
            "versions",
            project,
            "--pre",
            "--disable-pip-version-check",
            "--no-input",
            # Fail fast on an offline host instead of pip's five retries per request.
            "--retries",
            "1",
            "--timeout",
            "20",
            # Its debug log is the only place that says which pages it could not read.
            "--log",
            str(log),
            *pip_args,
        ]
        out = proc.run(argv, env=env, timeout=300)
        try:
            said = read_index_log(log.read_text(encoding="utf-8", errors="replace"), project)
        except OSError:
            said = IndexLog()
    found = parse_pip_index(out.stdout) if out.returncode == 0 else None
    # Offered only as files pip's settings bar: pip 23 lists them, pip 26 skips them
    # (saying why in its log alone); either way no install here.
    barred = {v for v, kinds in said.kinds if not kinds & formats}
    if found is not None:
        found -= barred | _only_in(said, judged)
    said = replace(said, elsewhere=said.elsewhere | barred)
    # A file pip passed over in words not read here (another pip's): its release may lie
    # between two candidates, so the list counts as incomplete, the line named.
    unsure = tuple(
        f"pip index versions {project} passed over a file of {v} for a reason not read here ({why})"
        for v, why in said.unexplained
        if found is None or v not in found
    )
    if (unread := said.unreadable) or unsure:
        problems = (
            *(f"pip index versions {project} could not read {u}" for u in unread),
            *unsure,
        )
        return Listing(
            versions=frozenset(found or ()),
            sources=(),
            problems=problems,
            elsewhere=said.elsewhere - (found or set()),
            yanked=said.yanked - (found or set()),
            barred=frozenset(barred),
            yanked_files=said.yanked_files,
            elsewhere_files=said.elsewhere_files,
        )
    if found is None and _none_offered(out.stderr):
        found = set()  # every source answered, and none offers the project
    if found is None:
        why = pip_failure(out.stderr + "\n" + out.stdout, code=out.returncode)
        if 'unknown command "index"' in out.stderr:
            # pip before 21.2: the index and pages in folders cannot be listed with it.
            why += f" (the pip of {python} is older than 21.2: upgrade it, pip install -U pip)"
        return Listing(
            versions=frozenset(),
            sources=(),
            problems=(f"pip index versions {project} failed: {why}",),
        )
    return Listing(
        versions=frozenset(found),
        sources=(name,),
        elsewhere=said.elsewhere - found,
        yanked=said.yanked - found,
        barred=frozenset(barred),
        yanked_files=said.yanked_files,
        elsewhere_files=said.elsewhere_files,
        found_files=said.found_files,
    )


def _none_offered(stderr: str) -> bool:
    """pip read its sources and found no release ("No matching distribution found"), as
    opposed to sources it could not reach (whose warnings come first)."""
    if "No matching distribution found" not in stderr:
        return False
    unreachable = ("Retrying", "Could not fetch", "Failed to establish", "ConnectionError",
                   "timed out", "Name or service not known", "Network is unreachable")  # fmt: skip
    return not any(word in stderr for word in unreachable)


def _only_in(said: IndexLog, folders: Sequence[Path]) -> set[Version]:
    """The versions pip found only as files in `folders`."""
    inside = {f.absolute() for f in folders}
    seen: dict[Version, bool] = {}
    for version, folder in said.found_in:
        here = folder is not None and folder.absolute() in inside
        seen[version] = seen.get(version, True) and here
    return {v for v, only in seen.items() if only}


def save_listing(
    cache: Path, project: str, listing: Listing, ends: tuple[str, str] | None = None
) -> None:
    """Keep the releases a bisection saw under the cache, for the report: it places them
    on the axis, so a boundary between two tested releases with untested ones between is
    a range there too ("begins between 1.0 and 1.12"), never "at 1.12". Releases offered
    only as files this interpreter cannot install, or yanked, are releases too: nobody ran
    them, which is why the report must know them. The yanked ones are kept apart, and
    those between the bisection's `ends` (which it skipped, as pip does): the report
    said such a release "not run" as if the search had passed it by. Best effort."""
    path = cache / "releases" / f"{canonicalize_name(project)}.json"
    offered = listing.versions | listing.elsewhere | listing.yanked
    kept = kept_listing(cache, project)
    known = {str(v) for v in offered} | set(kept.releases)
    data: dict[str, object] = {"project": project, "versions": sorted(known)}
    data["sources"] = list(listing.sources)
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
    )


def stored_releases(cache: Path, project: str) -> list[str]:
    """The releases of `project` a bisection saw (see `save_listing`); [] when none or
    unreadable."""
    return list(kept_listing(cache, project).releases)


@functools.lru_cache(maxsize=1 << 16)
def pep440(text: str) -> Version | None:
    """`text` as a PEP 440 version, None when it is not one. Each spelling is parsed once
    (a Version is immutable): a report asked it of every record's labels, again and again
    (85,000 parses for 250 versions of 100,000 records)."""
    try:
        return Version(text)
    except InvalidVersion:
        return None


__all__ = [
    "KeptListing",
    "Listing",
    "index_versions",
    "kept_listing",
    "parse_pip_index",
    "pep440",
    "save_listing",
    "stored_releases",
]
