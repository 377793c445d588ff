"""Every release of a PyPI project the package sources offer one interpreter or image
(`list_releases`): each find-links folder as `release_files` reads it (pip itself where it
reads more there, a page), then the index through pip (`pypi_index.index_versions`), one
file of a release deciding (`_outranked`), yanked files judged last (`_settled`). With an
image, another Python installs: its own wheel tags and version decide where the image's
python3 said them (pip told to list for them), else what pip skipped here for its tags or
Requires-Python counts there, but a wheel for no Linux platform (Windows, macOS) installs
in no image.
"""

from __future__ import annotations

import contextlib
import os
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from packaging.version import Version

from repromatrix.options import Sources
from repromatrix.pip_settings import (
    excluded_by,
    install_indexes,
    pip_config,
    with_pip_environment,
)
from repromatrix.pypi_index import Listing, index_versions
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


def list_releases(
    project: str,
    sources: Sources,
    *,
    python: str,
    env: Mapping[str, str] | None = None,
    wheel_tags: bool = True,
    image: Target | None = None,
    installer: str = "",
) -> Listing:
    """Every version of `project` the find-links folders and the index offer (pip's own
    variables in `env`, default this process's, included); with `wheel_tags`, a file
    counts only if `python` can install it (else another Python installs, in a Linux
    image: the one of `image`'s tags and version, which decide as this interpreter's do;
    not known, all count but wheels for no Linux platform, a Windows or macOS one);
    `installer` names that other Python for people ("": the image's python3)."""
    given = set(sources.find_links)
    env = os.environ if env is None else env
    config = pip_config(python, env)
    sources = with_pip_environment(sources, env, config)
    # In an image another pip installs, with its own settings: every file counts there.
    formats = pip_formats(python, project, env) if wheel_tags else BOTH_FORMATS
    folders = [p for p in dict.fromkeys(sources.find_links) if p.is_dir()]
    supported = interpreter_target(python) if wheel_tags and folders else None
    judge = _Judge(target=image if not wheel_tags else supported, formats=formats,
                   image=not wheel_tags)  # fmt: skip
    got = _from_folders(python, project, sources.find_links, given, judge, env, folders)
    # Pages or URLs given to --find-links on an offline host: only pip reads those.
    pip_links = [
        arg
        for link in dict.fromkeys(sources.find_links)
        if not link.is_dir()
        for arg in ("--find-links", str(link))
    ]
    if not sources.no_index or pip_links or "--find-links" in sources.pip_args:
        args = [*pip_links, *(["--no-index"] if sources.no_index else []), *sources.pip_args]
        args += _listed_for(judge)
        index = index_versions(
            python,
            project,
            args,
            name="find-links pages" if sources.no_index else "index",
            formats=formats,
            judged=folders,
            env=install_indexes(env, config),
        )
        # pip takes one file of a release: a folder's that outranks the index's ones,
        # whose Requires-Python excludes this Python, fails the install (in `elsewhere`).
        index = _outranked(index, folders, project, judge, set(got.elsewhere))
        got = _joined(got, _in_images(index, judge))
    got = _spelled(got, folders, project, judge)
    listing = _settled(got, project, python, judge, excluded_by(formats, env, config))
    return replace(listing, installer=installer) if installer else listing


@dataclass(frozen=True, kw_only=True)
class _Judge:
    """Who installs: `target` (this interpreter's tags and Python; None: not known, or an
    image's), the file kinds pip's settings let it take, and whether it is an image."""

    target: Target | None
    formats: frozenset[str]
    image: bool = False


def _listed_for(judge: _Judge) -> list[str]:
    """pip's options that make it list what an image's python3 installs (`judge.target`,
    its version and platforms), as that pip would: a release whose files' Requires-Python
    or tags exclude it is skipped, with the reason in pip's log. [] for this interpreter
    or an image whose python3 did not say."""
    if not judge.image or judge.target is None:
        return []
    platforms = dict.fromkeys(t.rsplit("-", 1)[-1] for t in judge.target.order)
    args = ["--python-version", str(judge.target.python)]
    return args + [a for p in platforms if p != "any" for a in ("--platform", p)]


def _joined(one: Listing, other: Listing) -> Listing:
    """Two sources' listings as one (the versions, files and lines of both)."""
    return Listing(
        versions=one.versions | other.versions,
        sources=(*one.sources, *other.sources),
        problems=(*one.problems, *other.problems),
        elsewhere=one.elsewhere | other.elsewhere,
        yanked=one.yanked | other.yanked,
        barred=one.barred | other.barred,
        yanked_files=(*one.yanked_files, *other.yanked_files),
        elsewhere_files=(*one.elsewhere_files, *other.elsewhere_files),
        found_files=(*one.found_files, *other.found_files),
    )


def _from_folders(
    python: str,
    project: str,
    links: Sequence[Path],
    given: set[Path],
    judge: _Judge,
    env: Mapping[str, str],
    folders: Sequence[Path],
) -> Listing:
    """What the find-links folders among `links` offer (`_folder`), each named as a source
    if `given` (--find-links) or it counted (a PIP_FIND_LINKS folder that offers some)."""
    got = Listing(versions=frozenset(), sources=())
    for link in dict.fromkeys(links):  # a folder given twice is one source
        if not link.is_dir():
            continue
        try:
            one = _folder(python, project, link, judge, env, folders)
        except OSError as exc:
            why = f"cannot read --find-links {link}: {exc.strerror or exc}"
            got = replace(got, problems=(*got.problems, why))
            continue
        named = (f"folder {link}",) if link in given or one.versions else ()
        got = _joined(got, replace(one, sources=named))
    return got


def _spelled(got: Listing, folders: Sequence[Path], project: str, judge: _Judge) -> Listing:
    """`got` with each release spelled as the name of the file pip takes of it spells it:
    `pkg-1.2-py3-none-any.whl` and `pkg-1.2.0.tar.gz` are one release (PEP 440), of which
    `==1.2` takes the wheel, but a candidate is installed as `===1.2.0`, which compares
    spellings: the one the listing happened to keep took the sdist (a build that failed,
    the answer "one of") or another file than pip's. Of tied files, the index's first,
    then the folder file whose URL sorts first (`folder_listing`)."""
    inside = {f.absolute() for f in folders}
    files = [
        ((0, ""), name)
        for _, folder, name in got.found_files
        if not (folder and folder.absolute() in inside)
    ]
    for folder in folders:
        with contextlib.suppress(OSError):  # said when the folder was read
            files += [((1, _url(e)), e.name) for e in folder.iterdir() if e.is_file()]
    best: dict[Version, tuple[Key, tuple[int, str], Version]] = {}
    for order, name in files:
        found = file_key(name, project, judge.target, judge.formats, image=judge.image)
        if found is None:
            continue
        version, key = found
        held = best.get(version)
        if held is None or key > held[0] or (key == held[0] and order < held[1]):
            best[version] = (key, order, version)
    return replace(got, versions=frozenset(best[v][2] if v in best else v for v in got.versions))


def _url(path: Path) -> str:
    """The `file:` URL path pip sorts a folder's files by."""
    return urllib.request.pathname2url(os.path.normpath(os.path.abspath(path)))


def _in_images(got: Listing, judge: _Judge) -> Listing:
    """`got` (what pip listed here) as an image sees it, where another Python installs: a
    release pip skipped here for its wheel tags or Requires-Python is one there if a file
    of it is for Linux (or an sdist, `any_linux`), as a folder's are (`folder_listing`'s
    image); one offered only as Windows or macOS wheels installs in no image. Where the
    image's python3 said its tags (`judge.target`), pip listed for it (`_listed_for`)."""
    if not judge.image or judge.target is not None:
        return got
    tagged = {v for v, _ in got.elsewhere_files}
    linux = {v for v, wheel in got.elsewhere_files if any_linux(wheel)}
    there = got.elsewhere & ((got.elsewhere - tagged) | linux)
    return replace(got, versions=got.versions | there, elsewhere=got.elsewhere - there)


def _settled(got: Listing, project: str, python: str, judge: _Judge, barring: str) -> Listing:
    """The listing of every source (`got`), its yanked releases judged (`yanked_here`), a
    source that offers no release of `project` a problem; `barring` names the setting
    that bars files here (`excluded_by`)."""
    versions, yanked = got.versions, got.yanked - got.versions
    problems = got.problems
    if got.sources and not (problems or versions or got.elsewhere or yanked):
        # Sources that know nothing of the project (the wrong folder) say nothing of what
        # lies between ends run before from elsewhere (stored runs): no complete list.
        read = ", ".join(got.sources)
        problems = (
            f"{read} {'offer' if len(got.sources) > 1 else 'offers'} no release of {project}",
        )
    files = got.yanked_files
    fits = (
        {v for v, wheel in files if v in yanked and any_linux(wheel)}
        if judge.image and judge.target is None
        else yanked_here(python, files, set(yanked), judge.target, judge.formats)
    )
    # Yanked only as files none of which installs here (a Windows wheel; in an image, one
    # no Linux image installs): declared, it installs nothing either, so it is a release
    # for another platform, not "declare it".
    elsewhere = got.elsewhere | ({v for v, _ in files if v in yanked} - fits)
    barred = got.barred - versions
    return Listing(
        versions=versions,
        sources=got.sources,
        problems=problems,
        elsewhere=elsewhere - versions - fits,
        yanked=yanked - (elsewhere - fits),
        barred=barred,
        excluded_by=barring if barred else "",
        image=judge.image,
        image_python=str(judge.target.python) if judge.image and judge.target else "",
    )


def _outranked(
    got: Listing,
    folders: Sequence[Path],
    project: str,
    judge: _Judge,
    among: set[Version],
) -> Listing:
    """`got` (the index's listing) without those of `among` (offered by the folders only as
    a file pip takes that does not install here) it offers only as files the folders'
    outranks: pip takes the folder's (`file_key`) and tries no other. The index's file
    wins a tie."""
    target, formats = judge.target, judge.formats
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


def _folder(
    python: str,
    project: str,
    link: Path,
    judge: _Judge,
    env: Mapping[str, str],
    folders: Sequence[Path] = (),
) -> Listing:
    """What one find-links folder offers (`folder_listing`, the files of all `folders`
    competing for the one pip takes of a release), pip itself asked where it reads more
    there (`pip_reads_more`); OSError when it cannot be read."""
    formats = judge.formats
    offered, other, bars = folder_listing(
        link, project, judge.target, formats, folders, image=judge.image
    )
    if not pip_reads_more(link, project):
        return Listing(versions=frozenset(offered), sources=(), elsewhere=frozenset(other),
                       barred=frozenset(bars))  # fmt: skip
    # A page there, or a .tgz sdist: pip reads them.
    got = index_versions(
        python,
        project,
        ["--no-index", "--find-links", str(link), *_listed_for(judge)],
        formats=formats,
        env=env,
    )
    got = _in_images(got, judge)
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
        elsewhere_files=got.elsewhere_files,
    )


__all__ = ["list_releases"]
