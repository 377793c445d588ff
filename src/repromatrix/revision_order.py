"""Order one library's revisions: commits by ancestry, releases by PEP 440, and points
that compare to neither by the order matrix.yaml declares (see `ordering` for the axes
as a whole). A commit date is no order: git keeps when a commit was made, not where it
stands.

Pure: commits' positions come from the caller (`gitrepo`; `ordering.commit_revs` says of
which).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

from packaging.version import Version

from repromatrix.model import SourceKind
from repromatrix.pep440 import pep440
from repromatrix.revisions import is_hex
from repromatrix.timestamps import instant


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
    #: The tag that named this commit when it ran, and names another now (`RevIdentity`).
    moved: str = ""

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


def _topo_pos(info: RevInfo, topo: Mapping[str, int]) -> int | None:
    """By the commit where known: its name is where it points now (`main` of c9, force-pushed)."""
    if commit := info.commit:
        if commit in topo or len(commit) in (40, 64):
            # A full sha is a key where the line holds it (`GitRepo.history` keys each by
            # its own): one a shorter key is a prefix of is another commit, off the line,
            # and a scan of every key for each of 2,000 such commits was most of a report.
            return topo.get(commit)
        # An abbreviation: the one full sha of the line extending it, never two.
        near = {pos for sha, pos in topo.items() if len(sha) >= 40 and sha.startswith(commit)}
        return near.pop() if len(near) == 1 else None
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
    # While every point placed has a place on the mirror's line, in that order (a bisection's
    # commits between the listed ones), a commit's place is a binary search of those places,
    # the one `_insertion_point` finds: its scan compared 2,000 commits of a 10,000-commit
    # line with every point placed before them (2,000,000 comparisons, a third of a report).
    placed = [at.get(i.label) for i in order]
    keys = [-1 if k is None else k for k in placed]  # read only while `on_line`
    on_line = None not in placed and all(a <= b for a, b in pairwise(keys))
    for info in sorted(undeclared, key=rank):
        here = at.get(info.label)
        if on_line and keys and here is not None:
            pos: int | None = bisect_right(keys, here)
        else:
            pos = _insertion_point(order, info, at)
        if pos is None:
            stragglers.append(info)
        else:
            order.insert(pos, info)
            keys.insert(pos, -1 if here is None else here)
            on_line = on_line and here is not None
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
