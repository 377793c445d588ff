"""Which releases of a project a `--find-links` folder offers to one interpreter.

pip reads only the files of such a folder, and from their names alone (an HTML page there,
or an archive in a format packaging does not parse, is left to pip: `pip_reads_more`): a
wheel whose tags the interpreter lacks, or a wheel or sdist whose Requires-Python excludes
it, is no release there (pip would skip the one and fail to install the other). File names
are parsed by
packaging itself (`parse_wheel_filename`, `parse_sdist_filename`); names that do not parse
or belong to another project are ignored, as pip ignores them. `pypi_index` asks this
module for each folder and the index for the rest.
It also ranks the files of a release as pip does (`file_key`: pip takes one of them),
and says which yanked files may install here or in an image (`yanked_here`, `any_linux`).
"""

from __future__ import annotations

import lzma
import os
import platform
import re
import tarfile
import urllib.request
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from repromatrix import proc
from repromatrix.errors import MissingToolError


def folder_versions(
    folder: Path, project: str, supported: frozenset[str] | None = None
) -> set[Version]:
    """Versions of `project` among the wheel and sdist file names in `folder`; with
    `supported` (the target interpreter's tags, `interpreter_tags`), only wheels it can
    install count, as pip counts them (a `win_amd64` or `py2` wheel is no release here)."""
    return folder_listing(folder, project, supported)[0]


@dataclass(frozen=True)
class Target:
    """The interpreter environments are built with: its wheel tags and its version."""

    tags: frozenset[str]
    python: Version
    #: `tags` best first, as pip ranks them (empty: unknown): of a release's wheels pip
    #: takes the one whose tag comes first, and only that one.
    order: tuple[str, ...] = ()


#: The file kinds pip takes of a project when its settings exclude none (FormatControl's).
BOTH_FORMATS = frozenset({"binary", "source"})


def folder_listing(
    folder: Path,
    project: str,
    supported: frozenset[str] | Target | None = None,
    formats: frozenset[str] = BOTH_FORMATS,
    alongside: Sequence[Path] = (),
    *,
    image: bool = False,
) -> tuple[set[Version], set[Version], set[Version]]:
    """(`folder_versions`, the versions offered there only as wheels `supported` excludes,
    those of them offered only as files `formats` excludes). Given a `Target`, a wheel or
    sdist whose Requires-Python excludes its Python is too: pip takes it from a folder (a
    file name does not say) and the install then fails, so it was bisected as an error, a
    skip, where it is no release for this interpreter. `formats` is what pip's settings
    let it take of `project` (`pip_formats`): an sdist under only-binary, a wheel under
    no-binary, is no release here either ("No matching distribution found"). The files of
    the other find-links folders `alongside` compete for the one file pip takes of a
    release (`_pip_pick`), as pip reads them all together. With `image` (no `supported`:
    another Python installs, in a Linux image), a wheel for no Linux platform (Windows,
    macOS) is no release there either (`any_linux`)."""
    target, tags = (
        (supported, supported.tags) if isinstance(supported, Target) else (None, supported)
    )
    wanted = canonicalize_name(project)
    found: set[Version] = set()
    other: set[Version] = set()
    barred: set[Version] = set()
    files: dict[Version, list[tuple[Key, str, Path]]] = {}
    mine: set[Version] = set()
    for where in (folder, *(f for f in alongside if f != folder)):
        try:
            entries = list(where.iterdir())
        except OSError:
            if where == folder:
                raise
            continue  # reported when that folder's own turn comes
        for entry in entries:
            parsed = _parse(entry) if entry.is_file() else None  # pip reads only files there
            if parsed is None or parsed[0] != wanted:
                continue  # not a distribution file of the project pip would take either
            _, version, wheel_tags, build = parsed
            here = where == folder
            if ("binary" if wheel_tags is not None else "source") not in formats:
                barred.update([version] if here else [])
                continue
            if wheel_tags is not None and not _may_install(wheel_tags, tags, image=image):
                other.update([version] if here else [])
                continue
            # pip's order of a release's files: its best-ranked wheel over any sdist, the
            # higher build tag first, then (a tie) the file whose URL sorts first.
            url = urllib.request.pathname2url(os.path.normpath(os.path.abspath(entry)))
            files.setdefault(version, []).append((_key(wheel_tags, build, target), url, entry))
            mine.update([version] if here else [])
    for version in mine:
        # pip takes one file of a release and tries no other: a wheel or sdist whose
        # Requires-Python excludes this Python fails the install ("requires a different
        # Python"), though a file beside it (an sdist, a tied wheel) would install.
        pick = _pip_pick(files[version])
        runs_on = _runs_on if pick.name.endswith(".whl") else _sdist_runs_on
        admits = target is None or runs_on(pick, target)
        (found if admits else other).add(version)
    return found, (other | barred) - found, barred - found


def _may_install(wheel_tags: frozenset[str], tags: frozenset[str] | None, *, image: bool) -> bool:
    """Whether a wheel may install for the interpreter of `tags` (None: unknown, any
    counts; with `image`, one that installs in some Linux image, `any_linux`)."""
    if image and tags is None:
        return any_linux(wheel_tags)
    return tags is None or bool(wheel_tags & tags)


#: An sdist's rank: below every wheel that installs (pip's `-len(supported tags)`).
_SDIST_RANK = 1 << 30

#: How pip orders the files of one release it may take: the greater first.
Key = tuple[int, tuple[int, str] | tuple[()]]


def _key(
    wheel_tags: frozenset[str] | None, build: tuple[int, str] | tuple[()], target: Target | None
) -> Key:
    """pip's order of a file (wheel tags, None for an sdist; build tag): its best wheel
    tag's place, then the higher build tag."""
    return (-(_rank(wheel_tags, target) if wheel_tags is not None else _SDIST_RANK), build)


def best_keys(
    folders: Sequence[Path], project: str, target: Target, formats: frozenset[str] = BOTH_FORMATS
) -> dict[Version, Key]:
    """For each release of `project` the files in `folders` offer, the `Key` of the one
    pip takes of it there (`file_key`)."""
    best: dict[Version, Key] = {}
    for folder in folders:
        try:
            entries = list(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            if (key := file_key(entry.name, project, target, formats)) is not None:
                version, rank = key
                best[version] = max(best.get(version, rank), rank)
    return best


def file_key(
    name: str,
    project: str,
    target: Target | None,
    formats: frozenset[str] = BOTH_FORMATS,
    *,
    image: bool = False,
) -> tuple[Version, Key] | None:
    """(version, as the name spells it, and `Key`) of file `name` of `project`
    that pip may take for `target` (its tags, `formats`; None: any wheel, or with `image`
    any a Linux image installs); None for any other."""
    parsed = _parse(Path(name))
    if parsed is None or parsed[0] != canonicalize_name(project):
        return None
    _, version, wheel_tags, build = parsed
    if ("binary" if wheel_tags is not None else "source") not in formats:
        return None
    tags = target.tags if target is not None else None
    if wheel_tags is not None and not _may_install(wheel_tags, tags, image=image):
        return None
    return version, _key(wheel_tags, build, target)


def _pip_pick(
    files: Sequence[tuple[Key, str, Path]],
) -> Path:
    """The file pip installs of one release: the highest (rank, build tag), and of those
    tied the one whose file URL sorts first (pip sorts folder files by URL, descending,
    and takes the last of its best: `reversed(applicable_candidates)`)."""
    best = max(key for key, _, _ in files)
    return min((url, path) for key, url, path in files if key == best)[1]


def _rank(wheel_tags: frozenset[str], target: Target | None) -> int:
    """Where pip ranks a wheel for `target`: the place of its best tag in `target.order`
    (0 for every wheel when the order is unknown)."""
    if target is None or not target.order:
        return 0
    places = [i for i, tag in enumerate(target.order) if tag in wheel_tags]
    return min(places, default=len(target.order))


def _parse(
    entry: Path,
) -> tuple[str, Version, frozenset[str] | None, tuple[int, str] | tuple[()]] | None:
    """(project, version, wheel tags: None for an sdist, build tag) of a wheel or sdist
    file name packaging parses; None for any other name."""
    name = entry.name
    try:
        if name.endswith(".whl"):
            dist, version, build, wheel_tags = parse_wheel_filename(name)
            return dist, version, frozenset(str(t) for t in wheel_tags), build
        if name.endswith((".tar.gz", ".zip")):
            dist, version = parse_sdist_filename(name)
            return dist, version, None, ()
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        pass
    return None


#: Archives pip may take from a folder that packaging's sdist parser does not read
#: (`.tar.gz` and `.zip` only): an older pip takes these too (23.2 does; 26.3 no longer).
_OTHER_ARCHIVES = (".tgz", ".tar", ".tar.bz2", ".tbz", ".tar.xz", ".txz", ".tlz", ".tar.lz",
                   ".tar.lzma")  # fmt: skip


def pip_reads_more(folder: Path, project: str) -> bool:
    """Whether `folder` holds what pip reads beyond the file names `folder_listing` parses:
    an HTML page (pip takes every file it links to, wherever it lies) or an archive of
    `project` in a format only some pip versions take. Then pip itself is asked."""
    wanted = canonicalize_name(project) + "-"
    for entry in folder.iterdir():
        name = entry.name.lower()
        if name.endswith((".html", ".htm")) and entry.is_file():
            return True
        for ext in _OTHER_ARCHIVES:
            if name.endswith(ext) and canonicalize_name(name[: -len(ext)]).startswith(wanted):
                return True
        if name.endswith((".tar.gz", ".zip")) and _dashed_version(entry.name, wanted[:-1]):
            return True
    return False


def _dashed_version(name: str, wanted: str) -> bool:
    """Whether sdist file `name` is one of project `wanted` whose version holds a dash
    (`pkg-1.1-1.tar.gz`): packaging's parser splits it at its last dash (a project
    `pkg-1.1`, version 1), while an older pip (23) takes what follows the first dash after
    the project's name as its version (1.1-1, that is 1.1.post1) and offers it."""
    stem = name[: -len(".tar.gz")] if name.lower().endswith(".tar.gz") else name[: -len(".zip")]
    try:
        if parse_sdist_filename(name)[0] == wanted:
            return False  # read by `folder_listing` already
    except (InvalidSdistFilename, InvalidVersion):
        pass
    for i, char in enumerate(stem):
        if char == "-" and canonicalize_name(stem[:i]) == wanted:
            try:
                Version(stem[i + 1 :])
            except InvalidVersion:
                return False
            return "-" in stem[i + 1 :]
    return False


_FORMATS = (
    "import sys\nfrom pip._internal.commands import create_command\n"
    "from pip._vendor.packaging.utils import canonicalize_name\n"
    "options, _ = create_command('install').parse_args([])\n"
    "print(' '.join(options.format_control.get_allowed_formats(canonicalize_name(sys.argv[1]))))"
)


def pip_formats(python: str, project: str, env: Mapping[str, str]) -> frozenset[str]:
    """The file kinds ("binary", "source") `python`'s pip installs of `project`, as its
    settings decide (only-binary, no-binary: PIP_ONLY_BINARY, PIP_NO_BINARY, pip.conf, in
    pip's order); both when pip cannot say. pip's own parser, as no other reads them
    alike (`:all:`, `:none:`, each option clearing names from the other)."""
    try:
        out = proc.run([python, "-c", _FORMATS, project], env=env, timeout=60)
    except (OSError, MissingToolError):
        return BOTH_FORMATS
    found = frozenset(out.stdout.split()) & BOTH_FORMATS if out.returncode == 0 else None
    return found or BOTH_FORMATS


def interpreter_tags(python: str) -> frozenset[str] | None:
    """The wheel tags `python` installs (pip's own list), None when it cannot say."""
    target = interpreter_target(python)
    return None if target is None else target.tags


def interpreter_target(python: str) -> Target | None:
    """`python`'s wheel tags (pip's own list) and version, None when it cannot say."""
    # sys.version_info, as pip judges Requires-Python by it: `platform.python_version()`
    # of a CPython built from a git branch is '3.11.7+', no PEP 440 version, which lost
    # the interpreter's tags with it (every wheel a candidate here).
    code = (
        "import sys\nfrom pip._vendor.packaging import tags\n"
        "print('.'.join(map(str, sys.version_info[:3])))\n"
        "print('\\n'.join(str(t) for t in tags.sys_tags()))"
    )
    try:
        out = proc.run([python, "-c", code], timeout=60)
        version, *lines = [ln.strip() for ln in out.stdout.splitlines() if ln.strip()]
        found = Target(tags=frozenset(lines), python=Version(version), order=tuple(lines))
    except (OSError, MissingToolError, ValueError, InvalidVersion):
        return None
    return found if out.returncode == 0 and found.tags else None


def any_linux(wheel: frozenset[str] | None, machine: str | None = None) -> bool:
    """Whether some Linux image may install a file with these wheel tags (None: an
    sdist): one whose platform is `any` or Linux's for `machine` (default this host's:
    the engine runs images of its own, so an `aarch64` wheel installs in no image of an
    x86_64 host). An image's Python and tags are not known here, so any interpreter
    counts."""
    if wheel is None:
        return True
    arch = (platform.machine() if machine is None else machine).lower()
    platforms = {tag.rsplit("-", 1)[-1] for tag in wheel}
    return any(
        p == "any"
        or (p.startswith(("linux", "manylinux", "musllinux")) and (not arch or p.endswith(arch)))
        for p in platforms
    )


def yanked_here(
    python: str,
    files: Sequence[tuple[Version, frozenset[str] | None]],
    among: set[Version],
    target: Target | None,
    formats: frozenset[str],
) -> set[Version]:
    """Those of `among` (yanked) with a yanked file that installs here: pip installs it
    when pinned, so declaring it is the way to run it. pip checks "yanked" before a
    wheel's tags, so only its name says where it fits; one whose every yanked file is for
    another platform or Python is "not installable here", whose way out names another
    interpreter or image (declaring it ran pip into "No matching distribution")."""
    if not among:
        return set()
    target = target or interpreter_target(python)
    tags = target.tags if target is not None else None
    return {
        v
        for v, wheel in files
        if v in among
        and ("binary" if wheel is not None else "source") in formats
        and (wheel is None or tags is None or bool(wheel & tags))
    }


#: What reading a damaged archive raises. Besides a zip or tar that is none, one whose
#: directory is whole but whose member's bytes are not (a download cut or overwritten in
#: place) raises its decompressor's own error, no OSError: zlib.error, LZMAError (and
#: NotImplementedError, a RuntimeError, for a method zipfile does not know). Each such
#: file is left to pip, whose install fails (a skip); uncaught, it ended the bisection
#: before anything ran ("internal error", exit 70).
_UNREADABLE = (OSError, EOFError, ValueError, RuntimeError, zipfile.BadZipFile,
               tarfile.TarError, zlib.error, lzma.LZMAError)  # fmt: skip


def _runs_on(wheel: Path, target: Target) -> bool:
    """Whether the wheel's Requires-Python (its METADATA) admits `target`'s Python; a
    wheel that cannot be read or says nothing readable is left to pip, as before."""
    try:
        with zipfile.ZipFile(wheel) as z:
            meta = (n for n in z.namelist() if n.count("/") == 1 and n.endswith("info/METADATA"))
            name = next(meta, None)
            if name is None:
                return True
            with z.open(name) as f:
                head = f.read(1 << 16).decode("utf-8", "replace")
    except _UNREADABLE:
        return True
    return _admits(head, target)


#: An sdist read for its PKG-INFO at most this big: a larger one is left to pip (a
#: gzipped tar is read from its start, and hatchling writes PKG-INFO last).
_SDIST_READ = 64 << 20


def _sdist_runs_on(sdist: Path, target: Target) -> bool:
    """As `_runs_on`, for an sdist: the Requires-Python of its top-level PKG-INFO."""
    top = re.compile(r"^[^/]+/PKG-INFO$")
    try:
        if sdist.stat().st_size > _SDIST_READ:
            return True
        if sdist.name.endswith(".zip"):
            with zipfile.ZipFile(sdist) as z:
                name = next((n for n in z.namelist() if top.match(n)), None)
                head = z.read(name)[: 1 << 16] if name is not None else b""
        else:
            # gzip's own reader: tarfile's stream mode ("r|gz") reads the gzip header
            # itself, and raised TypeError on one cut short (an internal error, exit 70)
            # and "invalid compressed data" on one with an extra field (BGZF).
            with tarfile.open(sdist, "r:gz") as t:
                info = next((m for m in t if m.isfile() and top.match(m.name)), None)
                f = t.extractfile(info) if info is not None else None
                head = f.read(1 << 16) if f is not None else b""
    except _UNREADABLE:
        return True
    return _admits(head.decode("utf-8", "replace"), target)


def _admits(head: str, target: Target) -> bool:
    """Whether core metadata's Requires-Python admits `target`'s Python (yes when absent
    or unreadable: pip decides)."""
    for line in head.split("\n\n", 1)[0].splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() == "requires-python":
            try:
                return SpecifierSet(value.strip()).contains(target.python, prereleases=True)
            except InvalidSpecifier:
                return True
    return True
