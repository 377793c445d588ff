"""Which record wins at one position of the matrix (`entries.collect_entries`), and the
verdict counts of the records that ran what matrix.yaml defines there now: the record with
the best evidence, newest among equals, that of the position's current definition first.
Apart from `entries.py`, which gathers the winners; pure.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence

from repromatrix.model import Cell, Status
from repromatrix.records import Result
from repromatrix.splits import Split, SplitUnit
from repromatrix.timestamps import recency


def evidence(result: Result) -> int:
    """How much a record says about its cell: a verdict (passed, regressed) most, then a
    run that measured something, then one that did not (error, timeout, untestable), and
    a "not run here" note least. A record never hides one with more evidence."""
    if result.status.is_verdict:
        return 3
    if result.status is Status.NOT_RUN:
        return 0
    return 2 if any(v is not None for v in result.metrics.values()) else 1


def definition_keys(cell: Cell | None, group: Sequence[Result]) -> frozenset[str]:
    """The keys of the experiment matrix.yaml defines at a position: its cell's own and,
    for records of another key, the key a bisection gives the same experiment (a declared
    commit pinned by its full sha, `Cell.twin_keys`), whose runs are the cell's verdicts
    (a calibrated bisection repeats its ends: their runs were "another definition")."""
    if cell is None:
        return frozenset()
    own = cell.key
    seen: dict[tuple[tuple[str, str], ...], Mapping[str, str]] = {}
    for r in group:
        if r.key != own and r.commits:
            seen.setdefault(tuple(sorted(r.commits.items())), r.commits)
    twins = {k for commits in seen.values() for k in cell.twin_keys(commits)}
    return frozenset((own, *twins))


def _current_keys(group: Sequence[Result], matrix_keys: Collection[str] = ()) -> set[str]:
    """Per spelling of the pins, the key of its newest run: an older key with the same
    spelling ran an older repro script or other params, and is history. Keys of different
    spellings of one revision (a declared `3f1f080f` and bisect's `3f1f080f43`) ran the
    same experiment, so their records are weighed together. The keys matrix.yaml gives the
    position now (`matrix_keys`: its cell's, and bisect's for the same commit by its full
    sha, labelled alike) are their spelling's current keys whenever they have a record,
    however the others are dated (a matrix edit undone; another host's clock)."""
    newest: dict[tuple[tuple[str, str], ...], tuple[bool, bool, str, int, str]] = {}
    defined = set[str]()
    # Equal times: the record read later (an append-only file's later line) is newer.
    for i, r in enumerate(group):
        spelling = tuple(sorted(r.pins.items()))
        ours = r.key in matrix_keys
        if ours:
            defined.add(r.key)
        mark = (ours, r.status.is_final, recency(r.finished), i, r.key)
        if spelling not in newest or mark > newest[spelling]:
            newest[spelling] = mark
    return {mark[4] for mark in newest.values()} | defined


def weigh(
    group: Sequence[Result], matrix_keys: Collection[str] = ()
) -> tuple[Result, list[Result], int, int]:
    """The winner, the others (newest first) and the verdict counts of one position."""
    if len(group) == 1:
        r = group[0]
        return r, [], int(r.status is Status.PASSED), int(r.status is Status.REGRESSED)
    current = _current_keys(group, matrix_keys)
    # Equal times: the record read later wins (`max` keeps the first of equals), as in
    # `latest_by_key`: an append-only file's later line was written later.
    later_first = group[::-1]
    if any(r.key in matrix_keys and evidence(r) > 0 for r in group):
        # What matrix.yaml defines now was run: records of other definitions are history.
        win = max(later_first, key=lambda r: (r.key in current, evidence(r), recency(r.finished)))
    else:
        win = max(later_first, key=lambda r: (evidence(r), r.key in current, recency(r.finished)))
    passed = sum(1 for r in group if r.key in current and r.status is Status.PASSED)
    regressed = sum(1 for r in group if r.key in current and r.status is Status.REGRESSED)
    history = sorted(
        (r for r in later_first if r is not win), key=lambda r: recency(r.finished), reverse=True
    )
    return win, history, passed, regressed


def machines_split(
    group: Sequence[Result], matrix_keys: Collection[str] = (), *, bases: bool = True
) -> Split | None:
    """ "machines disagree: m-1 passed 2, m-2 regressed 1" when the verdicts of a position's
    current records disagree only between machines (or between bases of one machine:
    "bases disagree: ...", or between GPUs of one type on one machine and base: "GPUs
    disagree: ..."), each steady on its own (two verdicts or more, all alike): no
    flakiness of the repro but a difference of the machines, which a reader must be told
    apart. None otherwise (a machine that disagrees with itself or ran it once, or records
    that do not say where they ran). `bases` False: bases are not told apart (a bisection
    weighs its own base's records alone, `bisect_evidence`)."""
    current = _current_keys(group, matrix_keys)
    votes = [r for r in group if r.key in current and r.status.is_verdict]
    units = [u for u in SplitUnit if bases or u is not SplitUnit.BASES]
    for unit in units:
        seen: dict[str, set[Status]] = {}
        counts: dict[str, int] = {}
        if unit is SplitUnit.BASES and not all(map(base_name, votes)):
            continue  # records made before the base was recorded: their GPUs may tell
        for r in votes:
            name = UNIT_NAMES[unit](r)
            if not name:
                return None
            seen.setdefault(name, set()).add(r.status)
            counts[name] = counts.get(name, 0) + 1
        # One run a machine tells a flaky repro from machines that differ no better.
        steady = all(len(s) == 1 and counts[n] > 1 for n, s in seen.items())
        if len(seen) > 1 and steady:
            said = [f"{n} {next(iter(s)).value} {counts[n]}" for n, s in sorted(seen.items())]
            more = f" and {len(said) - 4} more" if len(said) > 4 else ""
            return Split(unit, f"{', '.join(said[:4])}{more}")
    return None


def machine_name(r: Result) -> str:
    """The machine a record ran on, as the report names it ("" when unknown)."""
    # Hostnames are no identity (every lent VM is "vm"), but two differ only between hosts.
    return r.machine.id or (f"host {r.host}" if r.host else "")


def base_name(r: Result) -> str:
    """The base a record ran on, as `run` tells bases apart (`base_fingerprint`: the
    interpreter and its packages or the image, and the `--cell-env` variables, which the
    README asks for where a variable changes results: TF32 on or off), those variables
    named after it; "" when unknown. One machine's two GPU stacks, or its runs with and
    without such a variable, were "flaky" where each gave one verdict every time."""
    if not r.base_fingerprint:
        return ""
    harness = r.provenance.get("harness")
    env = harness.get("cell_env") if isinstance(harness, dict) else None
    if not isinstance(env, dict) or not env:
        return r.base_fingerprint
    variables = " ".join(f"{k}={v}" for k, v in sorted(env.items()))
    return f"{r.base_fingerprint} (--cell-env {variables})"


def gpu_name(r: Result) -> str:
    """The GPU the record ran on, as "GPU-1a2b3c4d of m-…" (its slot's UUID, which the
    harness records); "" when unknown."""
    gpu = r.provenance.get("gpu")
    uuid = gpu.get("uuid") if isinstance(gpu, dict) else None
    machine = machine_name(r)
    if not isinstance(uuid, str) or not uuid or not machine:
        return ""
    return f"{uuid[:12]} of {machine}"


#: What names each record's machine, base or GPU, as a split tells them apart (in
#: `SplitUnit`'s order: machines first, as apart machines have apart GPUs too).
UNIT_NAMES: dict[SplitUnit, Callable[[Result], str]] = {
    SplitUnit.MACHINES: machine_name,
    SplitUnit.BASES: base_name,
    SplitUnit.GPUS: gpu_name,
}
