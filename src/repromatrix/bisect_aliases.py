"""Which stored records are a bisection candidate's evidence: the cells that pin its commit
under another spelling (declared in matrix.yaml, or named by stored records), and whether
a record of such a cell was made at that commit; each candidate's own cell, built only for
the candidates the store may hold records of and those the search runs."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import overload

from repromatrix.bisect_plan import Setup
from repromatrix.candidates import Candidate
from repromatrix.expand import expand
from repromatrix.made_from_files import made_from_files_now
from repromatrix.mirrors import Mirrors
from repromatrix.model import Cell, Pin, Revision, SourceKind, Status
from repromatrix.records import Result
from repromatrix.splits import Split, SplitUnit
from repromatrix.winner import machine_name, machines_split


def aliases_of(
    setup: Setup,
    candidates: Sequence[Candidate],
    mirrors: Mirrors | None,
    history: Mapping[str, Sequence[Result]] | None = None,
) -> dict[int, tuple[Cell, ...]]:
    """Matrix cells that pin the same commit under its declared name, or under a name
    that stored records of the same repro, GPU and base resolved to it.

    A matrix run of `fla=7336d0cf` pins rev '7336d0cf', a bisection pins the full sha: two
    keys for one commit. Reading both lets a bisection start from what the matrix knows,
    also when matrix.yaml declared the commit as `v0.5.2` or `main` back then (the report
    counts those records as the commit's; bisect ran it again).
    """
    lib = setup.library
    if mirrors is None or lib.git is None:
        return {}
    index = {c.rev: i for i, c in enumerate(candidates)}
    out: dict[int, tuple[Cell, ...]] = {}
    declared = [rv for rv in lib.revisions if rv.kind is SourceKind.GIT]
    if declared:
        repo = mirrors.repo(lib.name, lib.git)
        shas = repo.resolve_many([rv.rev for rv in declared])
        for rv in declared:
            i = index.get(shas.get(rv.rev, ""))
            if i is not None:
                out[i] = (*out.get(i, ()), setup.cell(lib.pin(rv)))
    where = (setup.repro.name, setup.gpu, setup.base)
    for key, records in (history or {}).items():
        # Records of one key share repro, GPU, base and spellings (the key hashes them).
        spelling = records[0].pins.get(lib.name) if records else None
        hits = {i for r in records if (i := index.get(r.commits.get(lib.name, ""))) is not None}
        if (
            not hits
            or spelling is None
            or (records[0].repro, records[0].gpu, records[0].base) != where
        ):
            continue
        # The same experiment only: a cell of this spelling now has the record's key (same
        # script, params and other pins); else the records are history. `_stored` takes
        # each record for the commit it was made at (a branch moves).
        cell = setup.cell(lib.pin(Revision(rev=spelling, kind=SourceKind.GIT, label=spelling)))
        if cell.key != key:
            continue
        for i in hits:
            if all(a.key != key for a in out.get(i, ())):
                out[i] = (*out.get(i, ()), cell)
    return out


def declared_twins(setup: Setup, mirrors: Mirrors | None) -> dict[str, tuple[str, ...]]:
    """Per key of a matrix cell of this repro and GPU that pins the bisected library by a
    declared name, the keys of its twins: the same experiment pinned by the commit the name
    stands for now (`Cell.twin_keys`), as a bisection pins it and the report counts its
    runs as the cell's (`calibration`: a flaky end of an earlier bisection is the cell's)."""
    lib = setup.library
    if mirrors is None or lib.git is None:
        return {}
    cells = [
        (c, p)
        for c in expand(setup.matrix)
        if c.repro == setup.repro.name
        and c.gpu.name == setup.gpu
        and (p := c.pin(lib.name)) is not None
        and p.kind is SourceKind.GIT
    ]
    if not cells:
        return {}
    shas = mirrors.repo(lib.name, lib.git).resolve_many(sorted({p.rev for _, p in cells}))
    return {
        c.key: tuple(sorted(c.twin_keys({lib.name: shas[p.rev]})))
        for c, p in cells
        if shas.get(p.rev)
    }


def made_at(
    record: Result,
    setup: Setup | None,
    candidate: Candidate,
    cell: Cell | None = None,
    files: Callable[[Pin], str] | None = None,
) -> bool:
    """Whether a record of a commit's cell was made at that commit: a cell pinned by a
    branch name holds the records of every commit the name stood for. A record of a
    release is one of the files the folders hold of it now, and so is each other PyPI
    release the cell pins (`files`, a pin's `release_digest`; `made_from_files_now`, as
    `run`'s reuse takes them: a run made with a rebuilt `1.1` of any of them is not)."""
    if setup is None:
        return True
    if files is not None:
        pins = (*(cell.pins if cell is not None else ()), setup.pin(candidate))
        if not made_from_files_now(record, pins, files):
            return False
    if candidate.kind is not SourceKind.GIT:
        return True
    return record.commits.get(setup.library.name, candidate.rev) == candidate.rev


def machines_apart(
    records: Sequence[Result], keys: Collection[str], machine: str, hostname: str
) -> tuple[list[Result], Split | None]:
    """A commit's stored records, and the split they show (None: none): records that disagree only
    between machines, each steady over two runs or more (`winner.machines_split`, as the
    report names them), are no flaky repro but machines that differ, and read as one
    commit's runs they made the search calibrate or stop on a "contradiction". Then only
    this machine's records are its evidence (`machine` "": a cluster's slots, none is)."""
    verdicts = {r.status for r in records}
    both = verdicts >= {Status.PASSED, Status.REGRESSED}
    split = machines_split(records, keys, bases=False) if both else None
    if split is None:
        return list(records), None
    if split.unit is SplitUnit.GPUS:
        # Two GPUs of one type on one machine, each steady: no flaky repro, and no GPU is
        # this search's (a run takes any slot): none of them is the commit's evidence.
        return [], split
    here = {name for name in (machine, hostname and f"host {hostname}") if name}
    return [r for r in records if machine and machine_name(r) in here], split


class LazyCells(Sequence[Cell]):
    """Each candidate's cell (`Setup.cell` of its pin), built the first time it is asked
    for. A cell and its key cost a third of a millisecond: built for every candidate, a
    bisection of 30,000 commits whose runs were all stored spent 11 s before its first
    round on cells it never looked at."""

    def __init__(self, setup: Setup, candidates: Sequence[Candidate]) -> None:
        self._setup, self._candidates = setup, candidates
        self._built: dict[int, Cell] = {}

    @property
    def built(self) -> int:
        """How many cells were built so far."""
        return len(self._built)

    def __len__(self) -> int:
        return len(self._candidates)

    @overload
    def __getitem__(self, index: int) -> Cell: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Cell]: ...
    def __getitem__(self, index: int | slice) -> Cell | Sequence[Cell]:
        if isinstance(index, slice):
            return [self[i] for i in range(len(self))[index]]
        i = range(len(self))[index]  # IndexError as a list's
        if i not in self._built:
            self._built[i] = self._setup.cell(self._setup.pin(self._candidates[i]))
        return self._built[i]

    def __iter__(self) -> Iterator[Cell]:
        return (self[i] for i in range(len(self)))


def may_hold(
    setup: Setup,
    candidates: Sequence[Candidate],
    history: Mapping[str, Sequence[Result]],
    aliases: Mapping[int, tuple[Cell, ...]],
) -> Sequence[int]:
    """The candidates the store may hold evidence of (a superset of what `_stored` takes):
    those whose commit a record of this repro, GPU and base was made at, and those with
    aliases. A record of a candidate's own cell made at another commit is not its evidence
    (`made_at`), so no other candidate needs its cell built; every candidate when some such
    record does not say its commit (or the candidates are releases)."""
    everyone = range(len(candidates))
    if not candidates or candidates[0].kind is not SourceKind.GIT:
        return everyone
    lib = setup.library.name
    index = {c.rev: i for i, c in enumerate(candidates)}
    where = (setup.repro.name, setup.gpu, setup.base)
    hits = set(aliases)
    for records in history.values():
        for r in records:
            if (r.repro, r.gpu, r.base) != where:
                continue
            sha = r.commits.get(lib)
            if sha is None:
                return everyone
            if (i := index.get(sha)) is not None:
                hits.add(i)
    return sorted(hits)
