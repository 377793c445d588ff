"""Whether a stored record was made from the files the find-links folders hold now of its
releases: the one check `run`'s reuse (`planning`) and a bisection's evidence
(`bisect_aliases.made_at`) share.

A folder's `1.1` may be rebuilt, or two folders hold two different wheels of it
(`release_digest`); a result made from one says nothing of the other, so it stands for the
release only while the folders hold the files it was made from. A record that names no
files (made from an index, or before records named them) is taken as it was, and so is
one of a release no folder holds now: its run was made from another source (a share not
mounted, the ends of a bisection stored by an earlier run), which is all there is of it
here, and running it again would install nothing. That is why the files are no part of a
cell's base: a base that differed made such records unusable too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from repromatrix.harness_pins import pin_field
from repromatrix.model import Pin, SourceKind
from repromatrix.pep440 import pep440
from repromatrix.records import Result


def made_from_files_now(record: Result, pins: Iterable[Pin], now: Callable[[Pin], str]) -> bool:
    """Whether `record` was made from the files the folders hold now (`now`: a pin's
    `release_digest` there, asked only of a release the record names files of) of each
    PyPI release among `pins`, and installed that release, not a local build of it."""
    pins = tuple(pins)
    return (
        made_from_other_files(record, pins, now) is None
        and ran_a_local_build(record, pins, now) is None
    )


def ran_a_local_build(record: Result, pins: Iterable[Pin], now: Callable[[Pin], str]) -> Pin | None:
    """The first plain release pin among `pins` (`1.0.0`) of which `record` ran a local
    build (`installed` 1.0+cu121) though the folders hold the release itself now (`now`
    names files of it); None where none. Such a record was made before a pin spelled
    otherwise than its files was asked as pip spells it (`===1.0`): its `==1.0.0` took
    the CUDA build, and its verdict, under the pin's key (its files' digest the plain
    wheel's), is that build's. Where the folders hold no plain file of it (local builds
    alone), the local build is what the pin installs, and the record stands."""
    for pin in pins:
        if pin.kind is not SourceKind.PYPI:
            continue
        pinned = pep440(pin.rev)
        got = pep440(pin_field(record.provenance, pin.library, "installed"))
        if pinned and got and pinned.local is None and got.local is not None and now(pin):
            return pin
    return None


def made_from_other_files(
    record: Result, pins: Iterable[Pin], now: Callable[[Pin], str]
) -> tuple[Pin, str, str] | None:
    """The first PyPI release among `pins` that `record` was made from other files of than
    the folders hold now: the pin, the digest of the record's files and of the folders';
    None where each agrees, or either side names none."""
    for pin in pins:
        if pin.kind is not SourceKind.PYPI:
            continue
        made = files_made_from(record, pin.library)
        if made and (held := now(pin)) and held != made:
            return pin, made, held
    return None


def files_made_from(record: Result, library: str) -> str:
    """The digest of the files `library`'s release was installed from when `record` was
    made (`provenance.harness.pins.<library>.files`; "" where it says none)."""
    return pin_field(record.provenance, library, "files")
