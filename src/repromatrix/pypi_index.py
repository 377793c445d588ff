"""Which releases of a PyPI project the package sources offer (the one place that asks).

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
import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from packaging.utils import (
    canonicalize_name,
)
from packaging.version import InvalidVersion, Version

from repromatrix import proc
from repromatrix.options import Sources
from repromatrix.pip_log import IndexLog, read_index_log
from repromatrix.pip_settings import excluded_by, pip_config, with_pip_environment
from repromatrix.release_files import (
    BOTH_FORMATS,
    Key,
    Target,
    any_linux,
    best_keys,
    file_key,
    folder_listing,
    interpreter_target,
    pip_formats,
    pip_reads_more,
    yanked_here,
)
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


def list_releases(
    project: str,
    sources: Sources,
    *,
    python: str,
    env: Mapping[str, str] | None = None,
    wheel_tags: bool = True,
) -> Listing:
    """Every version of `project` the find-links folders and the index offer (pip's own
    variables in `env`, default this process's, included); with `wheel_tags`, a file
    counts only if `python` can install it (else another Python installs: all count)."""
    given = set(sources.find_links)
    env = os.environ if env is None else env
    config = pip_config(python, env)
    sources = with_pip_environment(sources, env, config)
    # In an image another pip installs, with its own settings: every file counts there.
    formats = pip_formats(python, project, env) if wheel_tags else BOTH_FORMATS
    versions: set[Version] = set()
    elsewhere: set[Version] = set()
    yanked: set[Version] = set()
    barred: set[Version] = set()
    yanked_files: list[tuple[Version, frozenset[str] | None]] = []
    read: list[str] = []
    problems: list[str] = []
    pip_links: list[str] = []
    folders = [p for p in dict.fromkeys(sources.find_links) if p.is_dir()]
    supported = interpreter_target(python) if wheel_tags and folders else None
    for link in dict.fromkeys(sources.find_links):  # a folder given twice is one source
        if link.is_dir():
            try:
                got = _folder(python, project, link, (supported, formats), env, folders)
            except OSError as exc:
                problems.append(f"cannot read --find-links {link}: {exc.strerror or exc}")
                continue
            versions |= got.versions
            elsewhere |= got.elsewhere
            barred |= got.barred
            yanked |= got.yanked
            yanked_files += got.yanked_files
            problems += got.problems
            if link in given or got.versions:  # a PIP_FIND_LINKS folder is named if it counted
                read.append(f"folder {link}")
        else:
            pip_links += ["--find-links", str(link)]
    # Pages or URLs given to --find-links on an offline host: only pip reads those.
    if not sources.no_index or pip_links or "--find-links" in sources.pip_args:
        args = [*pip_links, *(["--no-index"] if sources.no_index else []), *sources.pip_args]
        # pip takes one file of a release: a folder's that outranks the index's ones,
        # whose Requires-Python excludes this Python, fails the install (in `elsewhere`).
        got = _outranked(
            index_versions(
                python,
                project,
                args,
                name="find-links pages" if sources.no_index else "index",
                formats=formats,
                judged=folders,
                env=env,
            ),
            folders,
            project,
            (supported, formats),
            elsewhere,
        )
        versions |= got.versions
        read += got.sources
        problems += got.problems
        elsewhere |= got.elsewhere
        yanked |= got.yanked
        yanked_files += got.yanked_files
        barred |= got.barred
    if not wheel_tags:
        # In an image another Python installs: files pip skipped for this one's tags or
        # Requires-Python may install there, as a folder's wheels all count there.
        versions |= elsewhere
        elsewhere = set()
    if read and not (problems or versions or elsewhere or yanked):
        # Sources that know nothing of the project (the wrong folder) say nothing of what
        # lies between ends run before from elsewhere (stored runs): no complete list.
        problems.append(
            f"{', '.join(read)} {'offer' if len(read) > 1 else 'offers'} no release of {project}"
        )
    among = yanked - versions
    fits = (
        yanked_here(python, yanked_files, among, supported, formats)
        if wheel_tags
        else {v for v, wheel in yanked_files if v in among and any_linux(wheel)}
    )
    # Yanked only as files none of which installs here (a Windows wheel; in an image, one
    # no Linux image installs): declared, it installs nothing either, so it is a release
    # for another platform, not "declare it".
    elsewhere |= {v for v, _ in yanked_files if v in among} - fits
    return Listing(
        versions=frozenset(versions),
        sources=tuple(read),
        problems=tuple(problems),
        elsewhere=frozenset(elsewhere - versions - fits),
        yanked=frozenset(yanked - versions - (elsewhere - fits)),
        barred=frozenset(barred - versions),
        excluded_by=excluded_by(formats, env, config) if barred - versions else "",
    )


def _outranked(
    got: Listing,
    folders: Sequence[Path],
    project: str,
    judge: tuple[Target | None, frozenset[str]],
    among: set[Version],
) -> Listing:
    """`got` (the index's listing) without those of `among` (offered by the folders only as
    a file pip takes that does not install here) it offers only as files the folders'
    outranks: pip takes the folder's (`file_key`) and tries no other. The index's file
    wins a tie."""
    target, formats = judge
    if target is None:
        return got
    inside = {f.absolute() for f in folders}
    offered: dict[Version, Key] = {}
    for version, folder, name in got.found_files:
        key = file_key(name, project, target, formats)
        if key is None or key[0] != version or (folder and folder.absolute() in inside):
            continue
        offered[version] = max(offered.get(version, key[1]), key[1])
    local = best_keys(folders, project, target, formats)
    lost = {
        v for v in got.versions & among if v in offered and v in local and local[v] > offered[v]
    }
    return replace(got, versions=got.versions - lost)


def _only_in(said: IndexLog, folders: Sequence[Path]) -> set[Version]:
    """The versions pip found only as files in `folders`."""
    inside = {f.absolute() for f in folders}
    seen: dict[Version, bool] = {}
    for version, folder in said.found_in:
        here = folder is not None and folder.absolute() in inside
        seen[version] = seen.get(version, True) and here
    return {v for v, only in seen.items() if only}


def _folder(
    python: str,
    project: str,
    link: Path,
    judge: tuple[Target | None, frozenset[str]],
    env: Mapping[str, str],
    folders: Sequence[Path] = (),
) -> Listing:
    """What one find-links folder offers (`folder_listing`, the files of all `folders`
    competing for the one pip takes of a release), pip itself asked where it reads more
    there (`pip_reads_more`); OSError when it cannot be read."""
    supported, formats = judge
    offered, other, bars = folder_listing(link, project, supported, formats, folders)
    if not pip_reads_more(link, project):
        return Listing(versions=frozenset(offered), sources=(), elsewhere=frozenset(other),
                       barred=frozenset(bars))  # fmt: skip
    # A page there, or a .tgz sdist: pip reads them.
    got = index_versions(
        python, project, ["--no-index", "--find-links", str(link)], formats=formats, env=env
    )
    offered |= got.versions - other  # not those Requires-Python excludes
    other |= got.elsewhere - offered
    return Listing(
        versions=frozenset(offered),
        sources=(),
        elsewhere=frozenset(other),
        yanked=got.yanked,  # a page's `data-yanked` links, skipped by pip too
        barred=frozenset(bars | got.barred),
        problems=got.problems,
        yanked_files=got.yanked_files,
    )


def save_listing(cache: Path, project: str, listing: Listing) -> None:
    """Keep the releases a bisection saw under the cache, for the report: it places them
    on the axis, so a boundary between two tested releases with untested ones between is
    a range there too ("begins between 1.0 and 1.12"), never "at 1.12". Releases offered
    only as files this interpreter cannot install, or yanked, are releases too: nobody ran
    them, which is why the report must know them. Best effort."""
    path = cache / "releases" / f"{canonicalize_name(project)}.json"
    offered = listing.versions | listing.elsewhere | listing.yanked
    known = {str(v) for v in offered} | set(stored_releases(cache, project))
    data = {"project": project, "versions": sorted(known), "sources": list(listing.sources)}
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, path)


def stored_releases(cache: Path, project: str) -> list[str]:
    """The releases of `project` a bisection saw (see `save_listing`); [] when none or
    unreadable."""
    path = cache / "releases" / f"{canonicalize_name(project)}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        versions = data["versions"] if isinstance(data, dict) else []
    except (OSError, ValueError, KeyError):
        return []
    out = []
    for text in versions if isinstance(versions, list) else []:
        if isinstance(text, str) and pep440(text) is not None:
            out.append(text)
    return out


def pep440(text: str) -> Version | None:
    """`text` as a PEP 440 version, None when it is not one."""
    try:
        return Version(text)
    except InvalidVersion:
        return None


__all__ = [
    "Listing",
    "index_versions",
    "list_releases",
    "parse_pip_index",
    "pep440",
    "save_listing",
    "stored_releases",
]
