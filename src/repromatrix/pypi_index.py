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

import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

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


__all__ = [
    "Listing",
    "index_versions",
    "parse_pip_index",
]
