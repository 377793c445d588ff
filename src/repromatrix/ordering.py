"""Order every axis of the matrix: images by release, PyPI versions by PEP 440, commits by
ancestry, and anything else by the order matrix.yaml declares. A commit date is no order:
git keeps when a commit was made, not where it stands, and a branch merged later
interleaves by date with the line it joins (its commits read as fixes that never were).

Pure: commits' positions come from the caller (`gitrepo`; `commit_revs` says of which).
One library's revisions are placed by `revision_order`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from repromatrix.model import SourceKind
from repromatrix.pep440 import pep440
from repromatrix.records import Result
from repromatrix.revision_catalog import build_catalog
from repromatrix.revision_order import RevInfo, declared_order_doubt, place_revisions
from repromatrix.revisions import SEP, Catalog

if TYPE_CHECKING:
    from packaging.version import Version

    from repromatrix.config import Matrix

# NGC tags carry the release as YY.MM ("24.12-py3", "25.01-py3-igpu", "pytorch-24.12").
# Not after a letter: "12.4.1-runtime-ubuntu22.04" (nvidia/cuda) names Ubuntu 22.04, not
# a release of April 2022, and would put CUDA 12.6 on ubuntu20.04 before 12.4 on 22.04.
_NGC_TAG = re.compile(r"(?<![A-Za-z\d.])(\d{2})\.(\d{2})(?![\d])")
_RELEASED = re.compile(r"^(\d{4})-(\d{2})$")


# -- images -------------------------------------------------------------------------------


def ngc_release(ref: str, released: str | None = None) -> tuple[int, int] | None:
    """(year, month) of an image: the declared `released: YYYY-MM`, else YY.MM in its tag."""
    if released:
        m = _RELEASED.match(released)
        if m:
            return int(m.group(1)), int(m.group(2))
    tag = ref.rsplit("/", 1)[-1]
    tag = tag.split("@", 1)[0]
    tag = tag.split(":", 1)[1] if ":" in tag else ""
    m = _NGC_TAG.search(tag)
    if m is None:
        return None
    month = int(m.group(2))
    if not 1 <= month <= 12:
        return None
    return 2000 + int(m.group(1)), month


@dataclass(frozen=True, kw_only=True)
class BaseInfo:
    """What is known about one base for ordering: its ref and optional release date."""

    name: str
    ref: str = ""
    released: str | None = None


def order_bases(bases: Sequence[BaseInfo]) -> tuple[str, ...]:
    """The host first (it has no release), then images by release, oldest first; images
    whose release is unknown follow in the order given."""
    host: list[str] = []
    dated: list[tuple[tuple[int, int], int, str]] = []
    undated: list[str] = []
    for i, b in enumerate(bases):
        rel = ngc_release(b.ref, b.released)
        if rel is not None:
            dated.append((rel, i, b.name))
        elif not b.ref:
            host.append(b.name)
        else:
            undated.append(b.name)
    dated.sort()
    return (*host, *(name for _, _, name in dated), *undated)


# -- library revisions (placed by `revision_order`) -----------------------------------


def build_variant(label: str) -> str | None:
    """ "+cu121" of `2.1.0+cu121`: a build of a release for another CUDA (or platform), no
    successor of the `+cu118` one that PEP 440 sorts before it; None without a local part."""
    version = pep440(label)
    return f"+{version.local}" if version is not None and version.local else None


# -- the whole picture: orders for a report -----------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Orders:
    """The order of every axis a report shows."""

    bases: tuple[str, ...] = ()
    gpus: tuple[str, ...] = ()
    libraries: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Per library, the revisions whose place in its order is a guess (`place_revisions`).
    unordered: Mapping[str, frozenset[str]] = field(default_factory=dict)
    #: Per library, why matrix.yaml's order of it is no order (`declared_order_doubt`).
    doubts: Mapping[str, str] = field(default_factory=dict)
    matrix_file: str = "matrix.yaml"  #: the matrix file's name, as --matrix gave it
    #: Per library, the revisions that are neither a release nor a commit (`RevInfo.neither`).
    neither: Mapping[str, frozenset[str]] = field(default_factory=dict)
    #: Libraries whose commits a mirror in --cache ordered (its `topo` was read).
    mirrored: frozenset[str] = frozenset()
    #: Per library without a mirror, the commits matrix.yaml lists in an order it stands
    #: by (`_listed_commits`): points of a series that ran others of them.
    listed_commits: Mapping[str, frozenset[str]] = field(default_factory=dict)
    #: Bases without a release (the host, images with neither `released:` nor a YY.MM
    #: tag): among dated images their place is a guess (`order_bases` puts them aside).
    undated_bases: frozenset[str] = frozenset()
    #: Bases matrix.yaml declares: among bases that are all undated, their declared order
    #: is the user's word; one it does not declare stands where its records were read.
    declared_bases: frozenset[str] = frozenset()
    #: Each dated base's release (year, month): images of one release are none after
    #: another (pytorch:24.12 and tensorrt:24.12), where the order above puts one first.
    releases: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    def rank(self, axis: str, value: str) -> int:
        """Position of `value` on `axis` ("base", "gpu" or a library name)."""
        at, n = self._positions.get(axis, ({}, 0))
        return at.get(value, n)

    @cached_property
    def _positions(self) -> dict[str, tuple[dict[str, int], int]]:
        """Per axis, each value's position (the first where one is listed twice) and the
        axis' length: made once, where a `tuple.index` per call sorted 2,000 commits in
        4,000,000 steps."""
        out: dict[str, tuple[dict[str, int], int]] = {}
        for axis, seq in {**self.libraries, "base": self.bases, "gpu": self.gpus}.items():
            at: dict[str, int] = {}
            for i, value in enumerate(seq):
                at.setdefault(value, i)
            out[axis] = (at, len(seq))
        return out


def rev_infos(
    results: Iterable[Result], matrix: Matrix | None, catalog: Catalog | None = None
) -> dict[str, list[RevInfo]]:
    """Everything known about each library's revisions, one entry per identity (see
    `revisions.py`): labelled as every output shows it, with its commit, commit date,
    declared position and every spelling it was known by."""
    if catalog is None:
        catalog = build_catalog(results, matrix)
    return {
        lib: [
            RevInfo(
                label=i.label,
                kind=i.kind,
                declared=i.declared,
                commit=i.commit or None,
                committed=i.committed or None,
                aliases=tuple(s for s in i.spellings if s != i.label),
                moved=i.moved,
            )
            for i in catalog.identities(lib)
        ]
        for lib in catalog.libraries
    }


def build_orders(
    results: Iterable[Result],
    matrix: Matrix | None = None,
    *,
    topo: Mapping[str, Mapping[str, int]] | None = None,
    infos: Mapping[str, Sequence[RevInfo]] | None = None,
) -> Orders:
    """Order bases, GPUs and each library's revisions from matrix.yaml and the results.

    `topo` maps library → {rev or sha → topological position} (see `read_topo_order`);
    `infos` is `rev_infos(results, matrix)` when the caller has it already.
    """
    results = list(results)
    base_infos: dict[str, BaseInfo] = {}
    gpus: list[str] = []
    if matrix is not None:
        for b in matrix.bases.values():
            base_infos[b.name] = BaseInfo(name=b.name, ref=b.ref, released=b.released)
        gpus.extend(g for g in matrix.gpus)
    for r in results:
        if r.base not in base_infos:
            base_infos[r.base] = BaseInfo(name=r.base, ref=r.image or "")
        if r.gpu not in gpus:
            gpus.append(r.gpu)
    known = infos if infos is not None else rev_infos(results, matrix)
    file = matrix.path.name if matrix is not None else "matrix.yaml"
    placed = {lib: place_revisions(i, topo=(topo or {}).get(lib)) for lib, i in known.items()}
    doubts = {  # its texts name the file given (--matrix), not always matrix.yaml
        lib: file + why.removeprefix("matrix.yaml")
        for lib, i in known.items()
        if placed[lib][1] and (why := declared_order_doubt(i, (topo or {}).get(lib), lib))
    }
    return Orders(
        bases=order_bases(list(base_infos.values())),
        undated_bases=frozenset(
            b.name for b in base_infos.values() if ngc_release(b.ref, b.released) is None
        ),
        declared_bases=frozenset(matrix.bases) if matrix is not None else frozenset(),
        releases={
            b.name: rel for b in base_infos.values() if (rel := ngc_release(b.ref, b.released))
        },
        gpus=tuple(gpus),
        libraries={lib: labels for lib, (labels, _) in placed.items()},
        unordered={lib: guessed for lib, (_, guessed) in placed.items() if guessed},
        doubts=doubts,
        matrix_file=file,
        neither={lib: frozenset(x.label for x in i if x.neither) for lib, i in known.items()},
        mirrored=frozenset(lib for lib, order in (topo or {}).items() if order),
        listed_commits=_listed_commits(known, placed, topo or {}),
    )


def _listed_commits(
    known: Mapping[str, Sequence[RevInfo]],
    placed: Mapping[str, tuple[tuple[str, ...], frozenset[str]]],
    topo: Mapping[str, Mapping[str, int]],
) -> dict[str, frozenset[str]]:
    """Per library without a mirror (no line to name the commits between two points,
    `report.untested`), the commits matrix.yaml lists whose place is no guess. Without
    them as rows, a repro that ran c0 and c5 of a list c0, c2, c3, c5 read "begins at c5
    (last good c0)" across the two its list has between them, where another repro saw the
    change at c2."""
    out: dict[str, frozenset[str]] = {}
    for lib, (_, guessed) in placed.items():
        if topo.get(lib):
            continue
        listed = {i.label for i in known[lib] if i.declared is not None and not i.version}
        if listed := listed - guessed - {i.label for i in known[lib] if i.neither}:
            out[lib] = frozenset(listed)
    return out


def commit_revs(
    results: Iterable[Result], matrix: Matrix | None, catalog: Catalog | None = None
) -> dict[str, list[str]]:
    """Per library, every spelling of its git revisions (commits, labels, aliases): what to
    ask a mirror for topological positions (`gitrepo.GitRepo.topo_positions`). Labels made for
    display ("v0.5.2 · 9c8e42e7") are no git revision and are not asked about."""
    return {
        lib: [
            x
            for i in infos
            if i.kind is not SourceKind.PYPI
            for x in (i.commit, i.label, *i.aliases)
            if x and SEP not in x
        ]
        for lib, infos in rev_infos(results, matrix, catalog).items()
    }


def listed_between(
    infos: Mapping[str, Sequence[RevInfo]], releases: Mapping[str, Sequence[str]]
) -> dict[str, list[str]]:
    """Per library, the releases a listing saw (`releases`, what bisections stored) that
    lie between its tested or declared versions and are none of them (in any spelling):
    points of the axis that nothing ran. Outside that range they would say nothing."""
    out: dict[str, list[str]] = {}
    for lib, labels in releases.items():
        have = [v for i in infos.get(lib, ()) if (v := i.version) is not None]
        if len(have) < 2:
            continue
        lo, hi = min(have), max(have)
        seen = set(have)
        # Pre-releases count only where tested ones do (pip's rule, and bisect's).
        pre = any(v.is_prerelease for v in have)
        for label in labels:
            v = pep440(label)
            if v is None or (v.is_prerelease and not pre):
                continue
            if lo < v < hi and v not in seen:
                seen.add(v)
                out.setdefault(lib, []).append(label)
    return out


def listed_rows(
    infos: Mapping[str, Sequence[RevInfo]], releases: Mapping[str, Sequence[str]]
) -> dict[str, list[str]]:
    """Per library, the releases that are rows of every repro's axis along it: each one
    matrix.yaml declares, a repro ran or a listing saw (`releases`) between the library's
    oldest and newest of the first two, named as declared or run where it is one of them
    (in any spelling). A release only another repro ran or declared is as much a point of
    this repro's series as one nothing ran: left out, the series said "begins at 1.3 (last
    good 1.0)" where 1.1 and 1.2 lay between, another repro's regression beginning at 1.2."""
    out: dict[str, list[str]] = {}
    for lib in {*infos, *releases}:
        have: dict[Version, str] = {}
        for i in infos.get(lib, ()):
            if (v := i.version) is not None:
                have.setdefault(v, i.label)
        if len(have) < 2:
            continue
        lo, hi = min(have), max(have)
        pre = any(v.is_prerelease for v in have)  # as `listed_between`: pip's rule
        seen: set[Version] = set()
        for label in [*have.values(), *releases.get(lib, ())]:
            v = pep440(label)
            if v is None or (v.is_prerelease and not pre) or not lo < v < hi or v in seen:
                continue
            seen.add(v)
            out.setdefault(lib, []).append(have.get(v, label))
    return out


__all__ = [
    "BaseInfo",
    "Orders",
    "build_orders",
    "build_variant",
    "commit_revs",
    "listed_between",
    "listed_rows",
    "ngc_release",
    "order_bases",
    "rev_infos",
]
