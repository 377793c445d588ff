"""How the `revisions.Catalog` is gathered (pure): what matrix.yaml declares, the cells pin
and the records name, each (library, spelling, commit) seen once and joined to the one
commit it names, then given one `RevIdentity` and label (see `revisions`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from packaging.utils import canonicalize_version

from repromatrix.gitpaths import same_place
from repromatrix.harness_pins import harness_pins
from repromatrix.model import Cell, SourceKind
from repromatrix.pep440 import pep440
from repromatrix.records import Result, full_commit
from repromatrix.revisions import Catalog, RevIdentity, commit_label, is_hex, short_width

if TYPE_CHECKING:
    from repromatrix.config import Matrix


def _same(spelling: str, kind: SourceKind | None) -> str:
    """One key for what pip installs as one release (`1.0`, `1.0.0`, `v1.0`: one point);
    other spellings stay themselves (git tags `v1.0` and `1.0` may differ)."""
    version = pep440(spelling) if kind is not SourceKind.GIT else None  # parsed once
    return canonicalize_version(version) if version is not None else spelling


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(kw_only=True)
class _Facts:
    """What is known about one commit, or one spelling without a commit."""

    kind: SourceKind | None = None
    commit: str = ""
    names: dict[str, int | None] = field(default_factory=dict)  # name → declared index
    declared: int | None = None
    committed: str = ""
    spellings: dict[str, None] = field(default_factory=dict)

    def declare(self, index: int | None) -> None:
        if index is not None and (self.declared is None or index < self.declared):
            self.declared = index


_NEVER = ((), None, None)
#: A provenance `build_catalog` has not read yet (no record's pins are this object).
_UNREAD: Mapping[str, Any] = MappingProxyType({})
#: One `_Builder.seen` call's arguments: library, spellings, commit, kind, declared index, date.
_Call = tuple[str, tuple[str, ...], str | None, SourceKind | None, int | None, str | None]


class _Builder:
    def __init__(self) -> None:
        # library → commit → facts; library → (kind, spelling) → facts (no commit known)
        self.commits: dict[str, dict[str, _Facts]] = {}
        self.loose: dict[str, dict[tuple[SourceKind | None, str], _Facts]] = {}
        # library → spelling → commits it was seen resolved to
        self.resolved: dict[str, dict[str, set[str]]] = {}
        # Calls of `seen` with a commit already made; per call without one, the library's
        # `version` (its count of changes to `loose` entries known before) after it was last
        # made (`seen_once`).
        self.calls: set[_Call] = set()
        self.applied: dict[_Call, int] = {}
        self.version: dict[str, int] = {}
        # Records (pins, commits) that changed nothing, and their libraries' versions then.
        self.idle: dict[tuple[int, int], tuple[tuple[int | None, ...], object, object]] = {}
        # (library, a cell's rev) → the commit given for it (`report_command`'s tags).
        self.current: dict[tuple[str, str], str] = {}

    def commit(self, lib: str, commit: str) -> _Facts:
        known = self.commits.setdefault(lib, {})
        if commit not in known:
            known[commit] = _Facts(kind=SourceKind.GIT, commit=commit)
            known[commit].spellings[commit] = None
        return known[commit]

    def seen(
        self,
        lib: str,
        spellings: Sequence[str],
        commit: str | None,
        *,
        kind: SourceKind | None = None,
        declared: int | None = None,
        committed: str | None = None,
    ) -> None:
        spellings = [s for s in spellings if s]
        if commit:
            facts = self.commit(lib, commit)
            for s in spellings:
                facts.spellings[s] = None
                self.resolved.setdefault(lib, {}).setdefault(s, set()).add(commit)
                if not commit.startswith(s):
                    facts.names.setdefault(s, declared)
            facts.declare(declared)
            if committed and not facts.committed:
                facts.committed = committed
            return
        if not spellings:
            return
        # Spellings of one revision without a known commit share one entry (a label and
        # the rev behind it), registered under each of them.
        loose = self.loose.setdefault(lib, {})
        keys = [(kind, _same(s, kind)) for s in spellings]
        known = [f for k in keys if (f := loose.get(k)) is not None]
        facts = known[0] if known else _Facts(kind=kind)
        changed = not known
        for s, k in zip(spellings, keys, strict=True):
            if s not in facts.spellings:
                facts.spellings[s] = None
                changed = True
            if loose.get(k) is not facts:
                loose[k] = facts
                changed = True
        before = facts.declared
        facts.declare(declared)
        # A revision first seen (no key of it known) touched no other call's keys or facts:
        # repeating those still changes nothing, so `version` stays (most calls are so).
        if known and (changed or facts.declared != before):
            self.version[lib] = self.version.get(lib, 0) + 1

    def seen_once(self, call: _Call) -> None:
        """`seen(*call)`, skipped when repeating it would change nothing: 100,000 records
        name a few hundred revisions. A call with a commit changes nothing the second
        time; one without changes nothing when no such call changed anything since it
        was last made (`version`)."""
        lib, spellings, commit, kind, declared, committed = call
        if commit:
            if call in self.calls:
                return
            self.calls.add(call)
        elif self.applied.get(call, -1) == self.version.get(lib, 0):
            return
        self.seen(lib, spellings, commit, kind=kind, declared=declared, committed=committed)
        if not commit:
            self.applied[call] = self.version.get(lib, 0)

    def build(self) -> Catalog:
        out: dict[str, list[RevIdentity]] = {}
        for lib in sorted({*self.commits, *self.loose}):
            commits = self.commits.get(lib, {})
            by_commit = dict(commits)
            loose: list[_Facts] = []
            unique = {id(f): (kind, f) for (kind, _), f in self.loose.get(lib, {}).items()}
            for kind, facts in unique.values():
                target = self._commit_of(lib, facts, kind, by_commit)
                if target is None:
                    loose.append(facts)
                    continue
                for s in facts.spellings:
                    target.spellings[s] = None
                    if not target.commit.startswith(s) and facts.declared is not None:
                        target.names.setdefault(s, facts.declared)
                target.declare(facts.declared)
            width = short_width([*by_commit, *(s for f in loose for s in f.spellings if is_hex(s))])
            now = {n: c for (x, n), c in self.current.items() if x == lib}
            ids = [_identity(lib, f, width, now) for f in by_commit.values()]
            ids += [_loose_identity(lib, f, width) for f in loose]
            out[lib] = _unique_labels(ids)
        return Catalog(out, self.current)

    def _commit_of(
        self, lib: str, facts: _Facts, kind: SourceKind | None, by_commit: Mapping[str, _Facts]
    ) -> _Facts | None:
        """The commit a spelling without one stands for, when exactly one fits."""
        if kind is SourceKind.PYPI:
            return None
        found: set[str] = set()
        for s in facts.spellings:
            found |= self.resolved.get(lib, {}).get(s, set())
        if not found:
            for s in facts.spellings:
                if is_hex(s):
                    found |= {c for c in by_commit if c.startswith(s)}
        return by_commit[next(iter(found))] if len(found) == 1 else None


def _identity(
    lib: str, facts: _Facts, width: int, now: Mapping[str, str] | None = None
) -> RevIdentity:
    """`now`: the commit each tag of the cells names now (`Catalog`'s `current`)."""
    moved = [n for n in facts.names if n in (now or {}) and (now or {})[n] != facts.commit]
    names = sorted(
        ((n, i) for n, i in facts.names.items() if n not in moved),
        key=lambda kv: (
            kv[1] is None,
            kv[1] if kv[1] is not None else 0,
            pep440(kv[0]) is None,
            kv[0],
        ),
    )
    # Declared names first, then names that records used: those that read as a version
    # (a release tag, "v0.5.2", stays on its commit) before others (a branch, "feat",
    # moves on), then by name.
    name = names[0][0] if names else ""
    label = commit_label(facts.commit, name, width)
    was = ""
    if not name and moved:
        # A tag moved since this commit ran under it: "v1.0 · c4" read as the tag's
        # revision, which is another commit now. Its label says where this run was made.
        name = min(moved, key=lambda n: (facts.names[n] is None, facts.names[n] or 0, n))
        label = f"{name} (moved; this run at {facts.commit[:width]})"
        was = name
    return RevIdentity(
        library=lib,
        label=label,
        kind=SourceKind.GIT,
        commit=facts.commit,
        name=name,
        declared=facts.declared,
        committed=facts.committed,
        spellings=tuple(facts.spellings),
        moved=was,
    )


def _loose_identity(lib: str, facts: _Facts, width: int) -> RevIdentity:
    spelling = next(iter(facts.spellings))
    hashed = facts.kind is not SourceKind.PYPI and is_hex(spelling) and pep440(spelling) is None
    return RevIdentity(
        library=lib,
        label=spelling[:width] if hashed else spelling,
        kind=facts.kind,
        name="" if hashed else spelling,
        declared=facts.declared,
        spellings=tuple(facts.spellings),
    )


def _unique_labels(ids: list[RevIdentity]) -> list[RevIdentity]:
    """Two identities never share a label: a clash (a release and a git tag both called
    0.2.4) is told apart by kind."""
    seen: dict[str, int] = {}
    for ident in ids:
        seen[ident.label] = seen.get(ident.label, 0) + 1
    return [
        replace(ident, label=f"{ident.label} ({_kind_name(ident)})")
        if seen[ident.label] > 1
        else ident
        for ident in ids
    ]


def _kind_name(ident: RevIdentity) -> str:
    return ident.kind.value if ident.kind is not None else "other"


def _kind(value: Any) -> SourceKind | None:
    if isinstance(value, SourceKind):
        return value
    try:
        return SourceKind(value) if isinstance(value, str) else None
    except ValueError:
        return None


def build_catalog(
    results: Iterable[Result], matrix: Matrix | None = None, cells: Iterable[Cell] = ()
) -> Catalog:
    """Every revision matrix.yaml declares, the cells pin and the records name, resolved to
    one identity each (see the module docstring)."""
    b = _Builder()
    declared: dict[tuple[str, str], tuple[int, SourceKind]] = {}
    if matrix is not None:
        for library in matrix.libraries.values():
            for i, rv in enumerate(library.revisions):
                for s in (rv.label, rv.rev):
                    declared.setdefault((library.name, s), (i, rv.kind))
    sources = {} if matrix is None else {n: lib.git for n, lib in matrix.libraries.items()}
    _see_records(b, results, declared, sources)
    for cell in cells:
        for p in cell.pins:
            index = declared.get((p.library, p.label), (None, None))[0]
            commit = full_commit(p.rev) if p.kind is SourceKind.GIT else None
            if commit and p.label != p.rev:  # a tag given as its commit now
                b.current[(p.library, p.label)] = commit
            b.seen(p.library, [p.label, p.rev], commit, kind=p.kind, declared=index)
    if matrix is not None:
        for library in matrix.libraries.values():
            for i, rv in enumerate(library.revisions):
                commit = full_commit(rv.rev) if rv.kind is SourceKind.GIT else None
                b.seen(library.name, [rv.label, rv.rev], commit, kind=rv.kind, declared=i)
    return b.build()


def _see_records(
    b: _Builder,
    results: Iterable[Result],
    declared: Mapping[tuple[str, str], tuple[int, SourceKind]],
    sources: Mapping[str, str | None],
) -> None:
    """`_see_record` of each record, but for those known idle (its first test, made here
    without its call: most records are)."""
    memo: dict[tuple[Any, ...], _Call] = {}
    # Records share equal provenances (`fastdecode`): each is read once (the records hold
    # them, so an id stays theirs).
    read: dict[int, Mapping[str, Any] | None] = {}
    idle, versions = b.idle, b.version
    for r in results:
        if read.get(id(r.provenance), _UNREAD) is None:
            was = idle.get((id(r.pins), id(r.commits)))
            if was is not None and was[0] == tuple(map(versions.get, r.pins)):
                continue
        _see_record(b, r, declared, memo, sources, read)


def _see_record(
    b: _Builder,
    r: Result,
    declared: Mapping[tuple[str, str], tuple[int, SourceKind]],
    memo: dict[tuple[Any, ...], _Call],
    sources: Mapping[str, str | None] | None = None,
    read: dict[int, Mapping[str, Any] | None] | None = None,
) -> None:
    """`b` told what record `r` says of its pins; `sources`: each library's `git:` in
    matrix.yaml, whose names a record of another source's (`provenance.harness.pins`) does
    not give: upstream's tag v1.0 named c4 in a fork's report beside the fork's own v1.0."""
    provenance = r.provenance
    if read is None:
        pins = harness_pins(provenance)
    elif (pins := read.get(id(provenance), _UNREAD)) is _UNREAD:
        pins = read[id(provenance)] = harness_pins(provenance)
    commits = r.commits
    # Without provenance of its pins, a record's calls depend on its pins and commits
    # alone: one that changed nothing changes nothing again until `loose` changes.
    # (Records share equal pins and commits, see `fastdecode`: known by identity.)
    idle = (id(r.pins), id(commits)) if pins is None else None
    versions = tuple(map(b.version.get, r.pins))
    if idle is not None and b.idle.get(idle, _NEVER)[0] == versions:
        return
    for lib, spelling in r.pins.items():
        entry = pins.get(lib) if pins is not None else None
        prov: Mapping[str, Any] = entry if isinstance(entry, Mapping) else {}
        # What the call depends on (`_call` is a function of these alone).
        raw: tuple[Any, ...] = (lib, spelling, commits.get(lib))
        if prov:
            raw += (prov.get("commit"), prov.get("kind"), prov.get("rev"), prov.get("committed"))
            raw += (prov.get("source"),)
        own = (sources or {}).get(lib)
        try:
            call = memo.get(raw)
        except TypeError:  # a list or dict in the provenance: no memo key
            b.seen_once(_call(lib, spelling, commits.get(lib), prov, declared, own))
            continue
        if call is None:
            call = memo[raw] = _call(lib, spelling, commits.get(lib), prov, declared, own)
            b.seen_once(call)
        elif not call[2]:
            # Made before; only a call without a commit may need repeating (`seen_once`).
            b.seen_once(call)
    if idle is not None and tuple(map(b.version.get, r.pins)) == versions:
        b.idle[idle] = (versions, r.pins, commits)  # held: their ids stay theirs


def _call(
    lib: str,
    spelling: str,
    recorded: str | None,
    prov: Mapping[str, Any],
    declared: Mapping[tuple[str, str], tuple[int, SourceKind]],
    source: str | None = None,
) -> _Call:
    """The `seen` call for one pin of a record; `source`: the library's `git:` in
    matrix.yaml. A commit of a record from another repository (a fork's upstream) is one
    point of this one's, but its names are that repository's: none names it here."""
    commit = recorded or full_commit(prov.get("commit")) or full_commit(spelling)
    index, dkind = declared.get((lib, spelling), (None, None))
    kind = _kind(prov.get("kind")) or dkind or _guess_kind(spelling, commit)
    rev = _str(prov.get("rev"))
    spellings = tuple(s for s in (spelling, rev) if s)
    if commit and kind is SourceKind.GIT and _elsewhere(_str(prov.get("source")), source):
        spellings, index = tuple(s for s in spellings if commit.startswith(s)), None
    return (
        lib,
        spellings,
        commit if kind is not SourceKind.PYPI else None,
        kind,
        index,
        _str(prov.get("committed")),
    )


def _elsewhere(recorded: str | None, source: str | None) -> bool:
    """Whether a record's pin came from another repository than matrix.yaml's `git:`
    (`https://host/x` and `https://host/x.git/` are one)."""
    if not recorded or not source or same_place(recorded, source):
        return False
    return recorded.rstrip("/").removesuffix(".git") != source.rstrip("/").removesuffix(".git")


def _guess_kind(spelling: str, commit: str | None) -> SourceKind | None:
    if commit:
        return SourceKind.GIT
    if is_hex(spelling) and len(spelling) >= 7 and pep440(spelling) is None:
        return SourceKind.GIT
    return SourceKind.PYPI if pep440(spelling) is not None else None
