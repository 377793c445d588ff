"""One identity per revision (pure): however a pin was spelled, one commit is one point.

Matrix runs pin the declared spelling (`3f1f080f`, `v0.5.2`), bisect runs the full sha with
a 10-character label (`3f1f080f43`); both record the full commit their environment resolved
(`Result.commits`, older records in `provenance.harness.pins`). A `Catalog` gathers what
matrix.yaml, the cells and the records say and gives every (library, spelling, commit) one
`RevIdentity`, shown everywhere by one label: the tag or declared name plus the short hash
(`v0.5.2 · 9c8e42e7`), the short hash alone for a commit named only by its hash
(`3f1f080f`), the version for a PyPI release (`0.2.4`). How the catalog is gathered from
them is `revision_catalog`'s.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from repromatrix.model import Cell, SourceKind
from repromatrix.records import Result, full_commit

#: Shortest hash shown; longer only where two commits of a library would share it.
SHORT = 8
_HEX = re.compile(r"^[0-9a-f]{4,64}$")
#: Separates a name from its short hash in labels.
SEP = " · "


def is_hex(text: str) -> bool:
    return bool(_HEX.match(text))


@dataclass(frozen=True, kw_only=True)
class RevIdentity:
    """One point of a library's axis, with every spelling it was known by."""

    library: str
    #: What every output shows.
    label: str
    kind: SourceKind | None = None
    #: The full commit, for git revisions whose commit is known.
    commit: str = ""
    #: A tag or declared name that is more than the hash ("v0.5.2"); "" when none.
    name: str = ""
    #: Position in matrix.yaml's list of the library (None: not declared there).
    declared: int | None = None
    #: Commit date (ISO 8601), when a record knew it.
    committed: str = ""
    #: Every spelling seen: labels, revs, the commit.
    spellings: tuple[str, ...] = ()
    #: The tag of the cells that named this commit when it ran and names another now
    #: ("v1.0"); "" when none.
    moved: str = ""


class Catalog:
    """Spelling → identity, per library. Build with `revision_catalog.build_catalog`."""

    def __init__(
        self,
        identities: Mapping[str, Sequence[RevIdentity]],
        current: Mapping[tuple[str, str], str] | None = None,
    ) -> None:
        #: (library, a cell's rev) → the commit the mirror names by it now (a tag).
        self._current = dict(current or {})
        self._by_lib: dict[str, tuple[RevIdentity, ...]] = {
            lib: tuple(ids) for lib, ids in identities.items()
        }
        self._by_commit: dict[tuple[str, str], RevIdentity] = {}
        self._by_spelling: dict[tuple[str, str], RevIdentity | None] = {}
        for lib, ids in self._by_lib.items():
            for ident in ids:
                if ident.commit:
                    self._by_commit[(lib, ident.commit)] = ident
                for s in ident.spellings:
                    key = (lib, s)
                    # A spelling of several commits (a branch run on two days) is ambiguous:
                    # only a record's own commit can tell which one it was.
                    prev = self._by_spelling.get(key, ident)
                    self._by_spelling[key] = ident if prev is ident else None

    def identities(self, library: str) -> tuple[RevIdentity, ...]:
        return self._by_lib.get(library, ())

    @property
    def libraries(self) -> tuple[str, ...]:
        return tuple(self._by_lib)

    def resolve(self, library: str, spelling: str, commit: str | None = None) -> RevIdentity:
        """The identity of a pin spelled `spelling` (resolved to `commit` when known)."""
        if commit:
            found = self._by_commit.get((library, commit))
            if found is not None:
                return found
        found = self._by_spelling.get((library, spelling))
        if found is not None:
            return found
        # Not seen while building (a caller's own spelling): stands for itself.
        return RevIdentity(library=library, label=spelling, spellings=(spelling,))

    def label(self, library: str, spelling: str, commit: str | None = None) -> str:
        return self.resolve(library, spelling, commit).label

    def pins_of(self, result: Result) -> tuple[tuple[str, str], ...]:
        """The record's pins as (library, label), in its pin order."""
        commits = result.commits
        return tuple(
            (lib, self.label(lib, spelling, commits.get(lib)))
            for lib, spelling in result.pins.items()
        )

    def pins_of_cell(self, cell: Cell) -> tuple[tuple[str, str], ...]:
        """A cell's pins as (library, label): a tag by the commit it names now, where the
        records saw it name another (moved after the run), or "v1.0" stood for neither,
        a point with no commit that ended the count of the untested commits around it."""
        return tuple(
            (
                p.library,
                self.label(
                    p.library,
                    p.label,
                    full_commit(p.rev) or self._current.get((p.library, p.label)),
                ),
            )
            for p in cell.pins
        )


def commit_label(commit: str, name: str = "", width: int = SHORT) -> str:
    """How a commit is shown: its name (a tag, a declared label) and short hash, or the
    short hash alone when the name is only an abbreviation of the hash."""
    short = commit[:width]
    if name and is_hex(name) and name.startswith(commit):
        # A record's short hash (`70b24f3`) under a longer one: one hash, not a name.
        return name[:width]
    if name and not commit.startswith(name):
        return f"{name}{SEP}{short}"
    return short


def short_width(hashes: Sequence[str]) -> int:
    """The shortest width (at least `SHORT`) at which these hashes stay distinct."""
    width = SHORT
    while width < 64 and len({h[:width] for h in hashes}) < len(set(hashes)):
        width += 1
    return width
