"""What pip's own log (`--log FILE`, always at debug level) says about the sources it read.

`pip index versions` prints only the versions it kept. Why it kept no others is said in
its debug log alone: a page it could not fetch (an expired token's 401/403, a refused
connection: "Could not fetch URL …"), and each file it skipped ("Skipping link: yanked
for reason: …", "none of the wheel's tags (…) are compatible", "… Requires-Python …").
Its normal output reads the same for "this index refused me" and "this index has no such
project" ("No matching distribution found"), so the log is the one place that tells them
apart. The lines are pip's debug messages, as pip 21.2 (its first `index` command) to 26
word them. Before 22.3, pip said a file's Requires-Python excludes this Python only as
"Link requires a different Python (3.11.7 not in: '<3'): URL", no "Skipping link" line:
that release was dropped unnamed, and the first bad release named past it. A file of the
project that a line names in a wording not read here, of a release pip did not list, is
`unexplained`: the caller counts the listing as incomplete (a range, the line named),
never a release silently lost.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from repromatrix.redact import strip_url_credentials

_FETCH = re.compile(r"Could not fetch URL (\S+): (.*?)(?: for url: \S+)?(?: - skipping)?\s*$")
# The link comes last, after the reason (which may hold ": " itself), then "(from PAGE)".
_SKIP = re.compile(r"Skipping link: (.*): ([a-zA-Z][\w+.-]*://\S+)(?: \(from .*\))?\s*$")
#: A file pip takes ("Found link URL (from PAGE) (requires-python:…), version: 1.2").
_FOUND = re.compile(r"Found link ([a-zA-Z][\w+.-]*://\S+).*, version: \S+\s*$")
#: pip before 22.3 says a file's Requires-Python excludes this Python only in this line
#: (22.3 and later add a "Skipping link: 1.3 Requires-Python <3: URL" line after it).
_REQUIRES = re.compile(r"Link requires a different Python \(.*\): ([a-zA-Z][\w+.-]*://\S+)")
#: Any URL, for a line naming a file of the project in a wording not read here.
_URL = re.compile(r"[a-zA-Z][\w+.-]*://[^\s'\"]+")
#: Why pip skips a file meant for another platform or Python (tags, Requires-Python).
_ELSEWHERE = ("are compatible", "Requires-Python", "Python version is incorrect")
#: Why pip skips a file its settings exclude (only-binary, no-binary).
_BARRED = ("No sources permitted for", "No binaries permitted for")
#: An index's "no such project" page: an answer, not a source that could not be read.
_ABSENT = ("404 ", "410 ")


@dataclass(frozen=True, kw_only=True)
class IndexLog:
    """What pip's log says beyond the versions it printed."""

    #: "URL: reason" for each page pip could not read (the listing may miss releases).
    unreadable: tuple[str, ...] = ()
    #: Versions pip left out as yanked (PEP 592; a pin `===` to one still installs it).
    yanked: frozenset[Version] = frozenset()
    #: Versions it left out as files for another platform or Python.
    elsewhere: frozenset[Version] = frozenset()
    #: The kinds of file ("binary": wheels, "source": sdists) it found of each version,
    #: taken or skipped for pip's only-binary and no-binary (an older pip's `index
    #: versions` ignores them, a newer one says why it skips such a file).
    kinds: tuple[tuple[Version, frozenset[str]], ...] = ()
    #: Each yanked file's version and wheel tags (None: an sdist). pip checks "yanked"
    #: first, so a yanked wheel for this platform beside a Windows wheel reads as both.
    yanked_files: tuple[tuple[Version, frozenset[str] | None], ...] = ()
    #: Each file it skipped as one for another platform or Python, with its wheel tags
    #: (None: an sdist): in an image another Python installs, one for a Linux platform
    #: may install, a Windows or macOS wheel never does.
    elsewhere_files: tuple[tuple[Version, frozenset[str] | None], ...] = ()
    #: The folder of each local file (`file:` URL) it took, by version; None for a file
    #: elsewhere (an index's, a page's), as a find-links folder of pip's settings is
    #: read by `pip index versions` too, which cannot see a wheel's Requires-Python.
    found_in: tuple[tuple[Version, Path | None], ...] = ()
    #: Each file it took: version, folder (as `found_in`) and file name, which ranks it.
    found_files: tuple[tuple[Version, Path | None, str], ...] = ()
    #: Releases pip neither took nor skipped for a reason read here, each with the line
    #: naming one of its files (another pip's wording): the listing may miss them.
    unexplained: tuple[tuple[Version, str], ...] = ()


def read_index_log(text: str, project: str = "") -> IndexLog:
    """The pages pip could not read and the files of `project` it skipped, from its log."""
    wanted = canonicalize_name(project)
    unreadable: dict[str, None] = {}
    skipped: dict[bool, set[Version]] = {True: set(), False: set()}  # yanked or elsewhere
    kinds: dict[Version, set[str]] = {}
    yanked_files: dict[tuple[Version, frozenset[str] | None], None] = {}
    elsewhere_files: dict[tuple[Version, frozenset[str] | None], None] = {}
    found_in: dict[tuple[Version, Path | None], None] = {}
    found_files: dict[tuple[Version, Path | None, str], None] = {}
    explained: set[Version] = set()
    unknown: dict[Version, str] = {}
    for line in text.splitlines():
        found = _FOUND.search(line)
        if found is not None:
            _add_kind(kinds, found.group(1), wanted)
            if (version := _file_version(found.group(1), wanted)) is not None:
                found_in[(version, _folder(found.group(1)))] = None
                name = unquote(urlsplit(found.group(1)).path).rsplit("/", 1)[-1]
                found_files[(version, _folder(found.group(1)), name)] = None
                explained.add(version)
            continue
        fetch = _FETCH.search(line)
        if fetch is not None:
            if not fetch.group(2).strip().startswith(_ABSENT):
                url, reason = (strip_url_credentials(g.strip()) for g in fetch.groups())
                unreadable[f"{url}: {reason}"] = None
            continue
        requires = _REQUIRES.search(line)
        if requires is not None:
            if (version := _file_version(requires.group(1), wanted)) is not None:
                skipped[False].add(version)
                elsewhere_files[(version, _wheel_tags(requires.group(1)))] = None
                explained.add(version)
            continue
        skip = _SKIP.search(line)
        version = _file_version(skip.group(2), wanted) if skip is not None else None
        if skip is None or version is None:
            _note_unknown(unknown, line, wanted)
            continue
        if any(why in skip.group(1) for why in _BARRED):
            _add_kind(kinds, skip.group(2), wanted)  # pip 24+ obeys only-binary here
            explained.add(version)
            continue
        yanked = skip.group(1).startswith("yanked")  # pip checks that first
        if yanked or any(why in skip.group(1) for why in _ELSEWHERE):
            skipped[yanked].add(version)
            explained.add(version)
            # pip checks "yanked" first: each file is in one of the two.
            files = yanked_files if yanked else elsewhere_files
            files[(version, _wheel_tags(skip.group(2)))] = None
        else:
            _note_unknown(unknown, line, wanted)
    return IndexLog(
        unreadable=tuple(unreadable),
        yanked=frozenset(skipped[True]),
        elsewhere=frozenset(skipped[False]),
        kinds=tuple((v, frozenset(k)) for v, k in sorted(kinds.items())),
        yanked_files=tuple(yanked_files),
        elsewhere_files=tuple(elsewhere_files),
        found_in=tuple(found_in),
        found_files=tuple(found_files),
        unexplained=tuple((v, why) for v, why in sorted(unknown.items()) if v not in explained),
    )


def _note_unknown(unknown: dict[Version, str], line: str, wanted: str) -> None:
    """Keep `line` (its timestamp cut, credentials hidden) under the version of the
    first file of project `wanted` it names, if any."""
    for url in _URL.findall(line):
        if (version := _file_version(url.rstrip(":,;)"), wanted)) is not None:
            text = strip_url_credentials(_STAMP.sub("", line).strip())
            unknown.setdefault(version, text[:300])
            return


#: The timestamp pip's --log puts before each line.
_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT[\d:,.]+\s")


def _folder(url: str) -> Path | None:
    """The folder a `file:` URL's file lies in; None for any other URL."""
    parts = urlsplit(url)
    return Path(unquote(parts.path)).parent if parts.scheme == "file" else None


def _wheel_tags(url: str) -> frozenset[str] | None:
    """The tags a wheel's URL names; None for an sdist (or a name that does not parse)."""
    name = unquote(urlsplit(url).path).rsplit("/", 1)[-1]
    try:
        return frozenset(str(t) for t in parse_wheel_filename(name)[3])
    except (InvalidWheelFilename, InvalidVersion):
        return None


def _add_kind(kinds: dict[Version, set[str]], url: str, wanted: str) -> None:
    """Note the kind of file ("binary", "source") `url` is, under its version."""
    if (version := _file_version(url, wanted)) is not None:
        wheel = unquote(urlsplit(url).path).endswith(".whl")
        kinds.setdefault(version, set()).add("binary" if wheel else "source")


def _file_version(url: str, wanted: str) -> Version | None:
    """The version of project `wanted` a distribution file's URL names; None for another
    project or a name that does not parse."""
    name = unquote(urlsplit(url).path).rsplit("/", 1)[-1]
    try:
        if name.endswith(".whl"):
            dist, version, _, _ = parse_wheel_filename(name)
        else:
            dist, version = parse_sdist_filename(name)
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None
    return version if dist == wanted else None


__all__ = ["IndexLog", "read_index_log"]
