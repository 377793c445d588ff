"""Which files a PyPI pin's release is in the `--find-links` folders, as one digest of
their contents.

PyPI never lets a release's file change, so a release's number says what it installs; a
folder does not: it may hold a rebuilt `1.1`, or two folders two different wheels of one
`1.1`. An environment built from one of them, or a run made with it, says nothing of the
other: the digest joins the environment's key (`envs.env_key`) and its record's pins, and
neither `run` nor a bisection takes a stored run of a release made from other files than
its folders offer now (`made_from_files`). A release no folder offers (from an index) has
none (""). The folders are `--find-links`, PIP_FIND_LINKS and pip's configured find-links,
as the installs read them.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from repromatrix.model import Pin, SourceKind
from repromatrix.options import Sources
from repromatrix.pip_settings import pip_config, with_pip_environment

#: (path, size, mtime) → sha256 of the file: a wheel of a few GB is read once a process.
_SEEN: dict[tuple[str, int, int], str] = {}

#: (interpreter, the variables that say where pip's configuration files are) → what
#: `pip config list` said: asked once a process, not once a pin.
_CONFIGS: dict[tuple[str, ...], dict[str, str]] = {}
_CONFIG_PLACES = ("PIP_CONFIG_FILE", "HOME", "XDG_CONFIG_HOME", "XDG_CONFIG_DIRS", "VIRTUAL_ENV")


def pin_digest(pin: Pin, folders: Sequence[Path], python: str = "") -> str:
    """The digest of the files of `pin`'s release in `folders`, those PIP_FIND_LINKS names
    and, given the interpreter whose pip installs (`python`), the find-links of its pip's
    configuration files: pip installs from them too ("" for a git pin, or a release no
    folder offers). Without `python`, `folders` hold those already (an image's build)."""
    if pin.kind is not SourceKind.PYPI:
        return ""
    config = _pip_config(python) if python else {}
    sources = with_pip_environment(Sources(find_links=tuple(folders)), os.environ, config)
    return release_digest(sources.find_links, pin.source, pin.rev)


def _pip_config(python: str) -> dict[str, str]:
    """pip's configured settings as `python`'s pip reads them, else repromatrix's own
    pip's (the cells' interpreter may have no pip), as an image's build takes them."""
    seen = (python, *(os.environ.get(name, "") for name in _CONFIG_PLACES))
    if seen not in _CONFIGS:
        config = pip_config(python, os.environ)
        if not config and python != sys.executable:
            config = pip_config(sys.executable, os.environ)
        _CONFIGS[seen] = config
    return _CONFIGS[seen]


class ReleaseFiles:
    """`pin_digest` of each release, read once: the files the folders hold of it now,
    which a stored run of it must have been made from to stand for it."""

    def __init__(self, folders: Sequence[Path], python: str) -> None:
        self._folders, self._python = tuple(folders), python
        self._digests: dict[tuple[str, str, str], str] = {}

    def __call__(self, pin: Pin) -> str:
        release = (pin.kind.value, pin.source, pin.rev)
        if release not in self._digests:
            self._digests[release] = pin_digest(pin, self._folders, self._python)
        return self._digests[release]


def release_digest(folders: Sequence[Path], project: str, version: str) -> str:
    """The digest of the contents of every wheel and sdist of `project` `version` (PEP 440
    equal: `1.1.0` is `1.1`, `1.1+cu121` is not) in `folders`; one file in two folders
    counts once, so a copied folder offers the same release."""
    try:
        wanted = Version(version)
    except InvalidVersion:
        return ""
    project = canonicalize_name(project)
    contents: set[str] = set()
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue  # a folder that cannot be read is said where releases are listed
        for entry in entries:
            mine = _release_of(entry.name) == (project, wanted) and entry.is_file()
            if mine and (content := _content(Path(entry.path))) is not None:
                contents.add(content)
    if not contents:
        return ""
    return hashlib.sha256(" ".join(sorted(contents)).encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=1 << 16)
def _release_of(name: str) -> tuple[str, Version] | None:
    """The release a file name says it is (None: no wheel or sdist). Kept by name: every
    cell's environment key asks for its release's files, and a scan of a folder of
    thousands of wheels per cell parsed each name again (cells × files)."""
    try:
        if name.endswith(".whl"):
            project, version, _, _ = parse_wheel_filename(name)
            return project, version
        if name.endswith((".tar.gz", ".zip")):
            return parse_sdist_filename(name)
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        pass
    return None


def _content(path: Path) -> str | None:
    try:
        st = path.stat()
        seen = (str(path), st.st_size, st.st_mtime_ns)
        if seen not in _SEEN:
            digest = hashlib.sha256()
            with path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
            _SEEN[seen] = digest.hexdigest()
        return _SEEN[seen]
    except OSError:
        return None  # unreadable: pip's install of it fails and says so
