"""Which stored records are a bisection candidate's evidence: the cells that pin its commit
under another spelling (declared in matrix.yaml, or named by stored records), and whether
a record of such a cell was made at that commit."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from repromatrix.bisect_plan import Setup
from repromatrix.candidates import Candidate
from repromatrix.gitrepo import Mirrors
from repromatrix.model import Cell, Revision, SourceKind, Status
from repromatrix.records import Result
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


def made_at(record: Result, setup: Setup | None, candidate: Candidate) -> bool:
    """Whether a record of a commit's cell was made at that commit: a cell pinned by a
    branch name holds the records of every commit the name stood for."""
    if setup is None or candidate.kind is not SourceKind.GIT:
        return True
    return record.commits.get(setup.library.name, candidate.rev) == candidate.rev


def machines_apart(
    records: Sequence[Result], keys: Collection[str], machine: str, hostname: str
) -> tuple[list[Result], str]:
    """A commit's stored records, and "" or the split they show: records that disagree only
    between machines, each steady over two runs or more (`winner.machines_split`, as the
    report names them), are no flaky repro but machines that differ, and read as one
    commit's runs they made the search calibrate or stop on a "contradiction". Then only
    this machine's records are its evidence (`machine` "": a cluster's slots, none is)."""
    verdicts = {r.status for r in records}
    split = machines_split(records, keys) if verdicts >= {Status.PASSED, Status.REGRESSED} else ""
    if not split.startswith("machines disagree"):
        return list(records), ""
    here = {name for name in (machine, hostname and f"host {hostname}") if name}
    return [r for r in records if machine and machine_name(r) in here], split
