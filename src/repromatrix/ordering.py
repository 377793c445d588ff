"""Order every axis of the matrix: images by release, PyPI versions by PEP 440, commits by
ancestry, and anything else by the order matrix.yaml declares. A commit date is no order:
git keeps when a commit was made, not where it stands, and a branch merged later
interleaves by date with the line it joins (its commits read as fixes that never were).

Pure: commits' positions come from the caller (`gitrepo`; `commit_revs` says of which).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING

from packaging.version import Version

from repromatrix.model import SourceKind
from repromatrix.pypi_index import pep440
from repromatrix.records import Result
from repromatrix.revision_catalog import build_catalog
from repromatrix.revisions import SEP, Catalog, is_hex
from repromatrix.timestamps import instant

if TYPE_CHECKING:
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


# -- library revisions --------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RevInfo:
    """One point on a library axis, with whatever can order it."""

    label: str
    kind: SourceKind | None = None
    #: Position in matrix.yaml's declaration (None: not declared, e.g. a bisect commit).
    declared: int | None = None
    #: Full commit sha for git revisions, when known.
    commit: str | None = None
    #: Commit date (ISO 8601), when known.
    committed: str | None = None
    #: Other spellings of the same point (the rev behind a label).
    aliases: tuple[str, ...] = ()

    @property
    def version(self) -> Version | None:
        if self.kind is SourceKind.GIT:
            return None
        return pep440(self.label)

    @property
    def neither(self) -> bool:
        """Neither a release nor a commit ("1.1|x" of an edited record): nothing orders it."""
        git = self.kind is SourceKind.GIT or self.commit or is_hex(self.label)
        return not git and self.version is None


def build_variant(label: str) -> str | None:
    """ "+cu121" of `2.1.0+cu121`: a build of a release for another CUDA (or platform), no
    successor of the `+cu118` one that PEP 440 sorts before it; None without a local part."""
    version = pep440(label)
    return f"+{version.local}" if version is not None and version.local else None


def _topo_pos(info: RevInfo, topo: Mapping[str, int]) -> int | None:
    """By the commit where known: its name is where it points now (`main` of c9, force-pushed)."""
    if commit := info.commit:
        near = (
            pos for sha, pos in topo.items() if sha.startswith(commit) or commit.startswith(sha)
        )
        return topo[commit] if commit in topo else next(near, None)
    for name in (info.label, *info.aliases):
        if name and name in topo:
            return topo[name]
    return None


def _compare(a: RevInfo, b: RevInfo, at: Mapping[str, int | None]) -> int | None:
    """-1/0/1 when a and b can be compared by a shared key, else None. Keys in order of
    trust: ancestry (`at`: each label's `_topo_pos`), PEP 440 (both releases); never dates."""
    ta, tb = at.get(a.label), at.get(b.label)
    if ta is not None and tb is not None:
        return (ta > tb) - (ta < tb)
    va, vb = a.version, b.version
    if va is not None and vb is not None:
        return (va > vb) - (va < vb)
    return None


def order_revisions(
    infos: Sequence[RevInfo], *, topo: Mapping[str, int] | None = None
) -> tuple[str, ...]:
    """Labels of one library's revisions, oldest first (see `place_revisions`)."""
    return place_revisions(infos, topo=topo)[0]


def place_revisions(
    infos: Sequence[RevInfo], *, topo: Mapping[str, int] | None = None
) -> tuple[tuple[str, ...], frozenset[str]]:
    """Labels of one library's revisions, oldest first, and those whose place is a guess
    (they compare to no other point: no ancestry, version or declared place).

    - Declared points (matrix.yaml) form the backbone. When every declared point shares one
      key (all PEP 440 versions; all commits in `topo`) they are sorted by it; otherwise
      (a mixed axis like 0.2.3, three commits, 0.2.4; commits without a mirror) they keep
      the declared order, which is the user's statement of the truth.
    - Undeclared points (bisect commits, results from another matrix) are placed after the
      last backbone point they compare as newer than, by the best key both share; a point
      that compares to nothing goes to the end, in label order.
    """
    topo = topo or {}
    seen: dict[str, RevInfo] = {}
    for info in infos:
        seen.setdefault(info.label, info)
    # A name listed once that moved (`main` run before and after a push) gives one place to
    # several commits: which was where, the list cannot say ("ends at main (last bad main)").
    places = Counter(i.declared for i in seen.values())
    once = [i for i in seen.values() if i.declared is not None and places[i.declared] == 1]
    declared = sorted(once, key=lambda i: i.declared or 0)
    undeclared = [i for i in seen.values() if i.declared is None or places[i.declared] > 1]
    # A commit the mirror leaves out of its line (`GitRepo.history`: one of a merged branch)
    # has no place on it, by its date or by matrix.yaml's list (a branch's s2, bad, listed
    # before main's m4 read "ends at m4", which never had it).
    tied = {i.label for i in seen.values() if topo and i.commit and _topo_pos(i, topo) is None}
    undeclared = [i for i in undeclared if i.label not in tied]
    declared = [i for i in declared if i.label not in tied]
    if declared and declared_order_doubt(declared, topo):
        # The list is no statement of history: its points go by what orders them alone.
        undeclared += declared
        declared = []
    if declared:
        backbone = _sorted_if_uniform(declared, topo) or list(declared)
    else:
        backbone = _sorted_if_uniform(undeclared, topo) or []
        if backbone:
            undeclared = []
        else:
            # No declaration and no single key: seed with the largest group sharing one.
            groups = [
                [i for i in undeclared if _topo_pos(i, topo) is not None],
                [i for i in undeclared if i.version is not None],
            ]
            seed = max(groups, key=len)
            backbone = _sorted_if_uniform(seed, topo) or []
            used = {i.label for i in backbone}
            undeclared = [i for i in undeclared if i.label not in used]
    order = list(backbone)

    # Place the rest: best-keyed first so that later ones can compare against them too.
    def rank(i: RevInfo) -> tuple[int, str]:
        if _topo_pos(i, topo) is not None:
            return (0, i.label)
        if i.version is not None:
            return (1, i.label)
        return (2, i.label)

    stragglers: list[RevInfo] = []
    at = {i.label: _topo_pos(i, topo) for i in seen.values()}  # once: 2,000 bisect commits
    for info in sorted(undeclared, key=rank):  # asked it 4,000,000 times (31 s)
        pos = _insertion_point(order, info, at)
        if pos is None:
            stragglers.append(info)
        else:
            order.insert(pos, info)
    stragglers += (i for i in seen.values() if i.label in tied)
    order.extend(sorted(stragglers, key=lambda i: i.label))
    guessed = frozenset(i.label for i in stragglers) if len(order) > 1 else frozenset()
    return tuple(i.label for i in order), guessed


def declared_order_doubt(
    infos: Sequence[RevInfo], topo: Mapping[str, int] | None = None, library: str = "the library"
) -> str:
    """Why matrix.yaml's order of a library's revisions (`infos`, their `declared` places)
    cannot be oldest first: two releases listed against PEP 440, two commits against the
    mirror's ancestry, or every commit newer by its date than the next ("" when nothing
    says so). One date out of order proves nothing (a merged branch's commit is dated
    before the line it joins); a whole list dated backwards is a list newest first."""
    topo = topo or {}
    listed = sorted((i for i in infos if i.declared is not None), key=lambda i: i.declared or 0)
    # Builds for another CUDA (+cu118, +cu121) are variants, none after another.
    versions = [(i.label, Version(v.public)) for i in listed if (v := i.version) is not None]
    for (a, va), (b, vb) in pairwise(versions):
        if vb < va:
            return f"matrix.yaml lists {library}'s {a} before {b}, not oldest first"
    placed = [(i.label, p) for i in listed if (p := _topo_pos(i, topo)) is not None]
    for (a, pa), (b, pb) in pairwise(placed):
        if pb < pa:
            return f"matrix.yaml lists {library}'s {a} before {b}, its ancestor"
    dated = [(i.label, instant(i.committed)) for i in listed if i.committed]
    pairs = list(pairwise(dated))
    if pairs and all(b[1] < a[1] for a, b in pairs):
        return (
            f"matrix.yaml lists {library}'s commits newest first by their dates "
            f"({dated[0][0]} of {dated[0][1][:10]} before {dated[-1][0]} of {dated[-1][1][:10]})"
        )
    return ""


def _sorted_if_uniform(infos: Sequence[RevInfo], topo: Mapping[str, int]) -> list[RevInfo] | None:
    if not infos:
        return None
    if all(_topo_pos(i, topo) is not None for i in infos):
        return sorted(infos, key=lambda i: _topo_pos(i, topo) or 0)
    versions = [i.version for i in infos]
    if all(v is not None for v in versions):
        return sorted(infos, key=lambda i: i.version or Version("0"))
    return None


def _insertion_point(
    order: Sequence[RevInfo], info: RevInfo, at: Mapping[str, int | None]
) -> int | None:
    """Index to insert `info` at: after the last point older than it, before the first newer
    one; None when it compares to no point at all, or not to its neighbours there.

    A neighbour it does not compare to makes the place a guess: a commit newer than the
    commit c1 of the axis 0.2.3, c1, 0.2.4 (no date to compare with a release) may be
    newer than 0.2.4 too, and put before it a report said the regression began there."""
    after: int | None = None
    before: int | None = None
    for idx, other in enumerate(order):
        c = _compare(info, other, at)
        if c is None:
            continue
        if c >= 0:
            after = idx
        elif before is None:
            before = idx
    if after is not None:
        nxt = after + 1
        return nxt if nxt == len(order) or nxt == before else None
    if before is not None:
        return before if before == 0 else None
    return None


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
        by_axis = {"base": self.bases, "gpu": self.gpus}
        seq = by_axis[axis] if axis in by_axis else self.libraries.get(axis, ())
        try:
            return seq.index(value)
        except ValueError:
            return len(seq)


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
    )


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
