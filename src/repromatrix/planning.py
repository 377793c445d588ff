"""Decide what runs where (pure): reuse, not runnable here, or run — how many times, in
which order.

A cell is *reused* when the store already holds enough final records of its key made on
the same base (same interpreter and packages, or same image): results merged in from other
hosts (results/published/) are shown by reports but never stand in for a run on this one.
With `repeat` N a cell needs N such records: a resumed `--repeat 5` run makes only the
missing ones, and `--rerun` makes N fresh ones.

Cells to run are ordered longest expected first (LPT), which keeps the makespan close to
its lower bound max(total / slots, longest) whatever order matrix.yaml lists them in.
Expected durations come from earlier records of the same key, else of the same
environment, else the cell's timeout: a cell never seen before is assumed long and starts
early.
"""

from __future__ import annotations

import bisect
import itertools
import statistics
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from repromatrix.executors.base import Executor
from repromatrix.executors.build_words import stored_own_build
from repromatrix.host import HostInfo
from repromatrix.made_from_files import made_from_files_now
from repromatrix.model import Cell, Pin, Status
from repromatrix.records import Result
from repromatrix.timestamps import newest, recency

#: Records per key: the store's whole history (`ResultStore.history`), any order.
History = Mapping[str, Sequence[Result]]


@dataclass(frozen=True, kw_only=True)
class Planned:
    """One run of one cell."""

    cell: Cell
    executor: Executor
    #: GPU type name, or "cpu".
    pool: str
    #: Which run of the cell this is within the run (0, 1, ... when repeated).
    attempt: int = 0
    #: Expected wall time in seconds (for ordering; never a limit).
    expected_s: float = 0.0
    #: The store already holds a final record of this cell made on this base: its
    #: environment's compile caches are warm, so repeats of it may run side by side.
    warm: bool = False


@dataclass(frozen=True, kw_only=True)
class Plan:
    to_run: tuple[Planned, ...]
    reused: tuple[tuple[Cell, Result], ...]
    not_run: tuple[tuple[Cell, str], ...]
    #: Per key of a cell this host runs or reuses, the stored records that count here
    #: (made on its base and machine; a bisection's of its commit too, under the key it
    #: gives the cell, `Cell.twin_keys`): what `--fail-on` weighs beside the new ones.
    evidence: Mapping[str, tuple[Result, ...]] = field(default_factory=dict)
    #: Per key, how many of the runs it wants stored records stand for: all of them when
    #: it is reused, some when `repeat` tops it up (the run's line counts them reused).
    stored_runs: Mapping[str, int] = field(default_factory=dict)
    #: Per key, how many of those stored records are errors or timeouts (the run's line
    #: says --retry-errors runs them again), a cell topped up by `repeat` included.
    stored_failed: Mapping[str, int] = field(default_factory=dict)

    def reused_runs(self) -> int:
        """How many of the runs wanted stored records stand for (not run again)."""
        return sum(self.stored_runs.values())

    def reused_failed_runs(self) -> int:
        """How many of those are errors or timeouts."""
        return sum(self.stored_failed.values())


#: What `--retry-errors` runs again: records that could not test the cell.
_FAILED = frozenset({Status.ERROR, Status.TIMEOUT})


def env_group(cell: Cell) -> tuple[object, ...] | None:
    """Cells with the same base and pins share an environment and its compile caches;
    cells without pins compile nothing of a library and share nothing worth guarding."""
    if not cell.pins:
        return None
    return (cell.base.name, tuple((p.library, p.kind.value, p.rev) for p in cell.pins))


def plan(
    cells: Sequence[Cell],
    *,
    host: HostInfo,
    choose: Callable[[Cell], Executor | str],
    history: History,
    rerun: bool = False,
    retry_errors: bool = False,
    repeat: int | Mapping[str, int] = 1,
    files: Callable[[Pin], str] | None = None,
    wait_for_gpus: bool = False,
) -> Plan:
    """Split cells into reused, not runnable here, and to run (longest expected first).

    `choose` returns the executor for a cell, or a one-line reason none can run it here.
    `repeat` is the number of final records each cell should have (per key when a mapping;
    keys it does not name need 1). Cells listed twice count once. `files`: the digest of
    the files the folders hold of a PyPI pin's release now (`release_digest`): a record
    made from others (a rebuilt `1.1`) is not made here (`made_from_files_now`).
    `wait_for_gpus`: cells of a GPU type the host lacks are planned too (a cluster, where a
    node of the type may join while the run goes on; the scheduler notes them if none does).
    """
    to_run: list[Planned] = []
    reused: list[tuple[Cell, Result]] = []
    not_run: list[tuple[Cell, str]] = []
    evidence: dict[str, tuple[Result, ...]] = {}
    stored_runs: dict[str, int] = {}
    stored_failed: dict[str, int] = {}
    env_durations = _env_durations(cells, history)
    seen: set[str] = set()
    for cell in cells:
        if cell.key in seen:
            continue
        seen.add(cell.key)
        if cell.needs_gpu and not wait_for_gpus and not host.gpus_of_type(cell.gpu):
            not_run.append((cell, host.lacks(cell.gpu)))
            continue
        choice = choose(cell)
        if isinstance(choice, str):
            not_run.append((cell, choice))
            continue
        wanted = repeat.get(cell.key, 1) if isinstance(repeat, Mapping) else repeat
        if wanted <= 0:
            continue
        made = _made_here(
            history.get(cell.key, ()),
            choice.base_fingerprint(cell),
            machine=host.machine.id,
            hostname=host.hostname,
            timeout_s=cell.timeout_s,
            pins=cell.pins,
            files=files,
        )
        here = [r for r in made if r.status not in _FAILED] if retry_errors else made
        # The runs `bisect` made of this commit under the key it gives it (`twin_keys`) are
        # weighed too, as the report weighs them, though never reused for a run of it.
        twins = twin_runs(
            cell, history.get(cell.key, ()), history, choice, host, retry_errors, files
        )
        evidence[cell.key] = (*here, *twins)
        need = wanted if rerun else wanted - len(here)
        last_made = newest(made)
        if retry_errors and last_made is not None and last_made.status in _FAILED:
            # Its newest record here is the error: older passes made enough records, yet
            # the run's line names it ("--retry-errors runs them again") and `--fail-on
            # error` weighs it; --retry-errors ran nothing and then passed it unseen.
            need = max(need, 1)
        if need < wanted:
            stored_runs[cell.key] = stands = wanted - max(need, 0)
            # The newest records stand for those runs (of equal times, the later stored).
            standing = sorted(here, key=lambda r: recency(r.finished))[-stands:]
            if failed := sum(r.status in _FAILED for r in standing):
                stored_failed[cell.key] = failed
        if need <= 0:
            last = newest(here)
            assert last is not None  # need <= 0 < wanted: a record is here
            reused.append((cell, last))
            continue
        expected = _expected(cell, history.get(cell.key, ()), env_durations)
        to_run.extend(
            Planned(
                cell=cell,
                executor=choice,
                pool=cell.gpu.name,
                attempt=i,
                expected_s=expected,
                warm=bool(here),
            )
            for i in range(need)
        )
    to_run.sort(key=lambda p: -p.expected_s)  # stable: equal estimates keep their order
    return Plan(
        to_run=tuple(to_run),
        reused=tuple(reused),
        not_run=tuple(not_run),
        evidence=evidence,
        stored_runs=stored_runs,
        stored_failed=stored_failed,
    )


def _twins(cell: Cell, records: Sequence[Result], history: History) -> list[Cell]:
    """The cells `bisect` makes of the commits `records` of this cell were made at: the
    same experiment, its git pin by the full commit under a key of its own (`Cell.twins`)."""
    commits = {tuple(sorted(r.commits.items())): r.commits for r in records}
    twins = {twin.key: twin for made_at in commits.values() for twin in cell.twins(made_at)}
    return [twin for key, twin in sorted(twins.items()) if key in history]


def twin_runs(
    cell: Cell,
    records: Sequence[Result],
    history: History,
    choice: Executor,
    host: HostInfo,
    retry_errors: bool = False,
    files: Callable[[Pin], str] | None = None,
) -> list[Result]:
    """The stored runs of `cell`'s twins (`_twins`) of the commits `records` name that
    count here (made on its base and this machine)."""
    runs = [
        r
        for twin in _twins(cell, records, history)
        for r in _made_here(
            history.get(twin.key, ()),
            choice.base_fingerprint(twin),
            machine=host.machine.id,
            hostname=host.hostname,
            timeout_s=cell.timeout_s,
            pins=twin.pins,
            files=files,
        )
    ]
    return [r for r in runs if r.status not in _FAILED] if retry_errors else runs


def evidence_after(
    the_plan: Plan,
    results: Sequence[Result],
    history: History,
    host: HostInfo,
    retry_errors: bool = False,
    files: Callable[[Pin], str] | None = None,
) -> dict[str, tuple[Result, ...]]:
    """`Plan.evidence` with the twins of the commits this run's `results` were made at: a
    cell pinned by a name (`good`, a tag) that had no record named no commit to plan
    with, and the bisection's runs of it that passed and regressed went unweighed, so
    `run --fail-on flaky` ended 0 where the report, and the same run again, said flaky."""
    evidence = dict(the_plan.evidence)
    made: dict[str, list[Result]] = {}
    for r in results:
        made.setdefault(r.key, []).append(r)
    planned = {p.cell.key: p for p in the_plan.to_run}
    for key, new in made.items():
        if (p := planned.get(key)) is None:
            continue
        known = {r.key for r in evidence.get(key, ())}
        twins = twin_runs(p.cell, new, history, p.executor, host, retry_errors, files)
        if extra := [r for r in twins if r.key not in known]:
            evidence[key] = (*evidence.get(key, ()), *extra)
    return evidence


def _made_here(
    records: Sequence[Result],
    fingerprint: str,
    *,
    machine: str = "",
    hostname: str = "",
    timeout_s: float | None = None,
    pins: Sequence[Pin] = (),
    files: Callable[[Pin], str] | None = None,
) -> list[Result]:
    """Final records made on this base and this machine. Records merged in from another
    machine with the same Python and packages (two hosts of one image share a base
    fingerprint) never stand in for a run here; `machine` is "" when the slots are a
    cluster's, and a record that names no machine (older records) is taken as made here
    unless it names another host. A timeout shorter than the cell's timeout now says
    nothing of it (the timeout is not in the key: a finished run is the same whatever it
    was). Nor is a record of its `pins` made from other files than the folders hold of
    a release now (`files`: their digest)."""
    out = []
    for r in records:
        if not r.status.is_final or r.base_fingerprint not in ("", fingerprint):
            continue
        named = r.machine.id or r.host
        if machine and named and named not in (machine, hostname):
            continue
        if r.status is Status.TIMEOUT and timeout_s and r.duration_s < 0.9 * timeout_s:
            continue
        if files is not None and not made_from_files_now(r, pins, files):
            continue
        if stored_own_build(r) is not None:
            # An error stored before builds that failed for the machine's own want (its
            # index out of reach) were noted: no verdict on the pins, built again.
            continue
        out.append(r)
    return out


def _timed(records: Sequence[Result]) -> list[float]:
    return [r.duration_s for r in records if r.status.is_final and r.duration_s > 0]


def _env_durations(cells: Sequence[Cell], history: History) -> dict[object, float]:
    """Median duration of the recorded cells of each environment."""
    times: dict[object, list[float]] = {}
    for cell in cells:
        times.setdefault(env_group(cell) or cell.key, []).extend(_timed(history.get(cell.key, ())))
    return {group: statistics.median(ts) for group, ts in times.items() if ts}


def _expected(cell: Cell, records: Sequence[Result], env: Mapping[object, float]) -> float:
    own = _timed(records)
    if own:
        return statistics.median(own)
    return env.get(env_group(cell) or cell.key, cell.timeout_s)


def worker_env(cell: Cell) -> object:
    """The environment a cell's worker serves (cells without pins share the bare one)."""
    return env_group(cell) or ("bare", cell.base.name)


class Pending:
    """The cells of one pool not taken yet, in plan order, indexed by worker environment.

    A slot asks for the first cell of its own worker's environment that may start, else
    the first in plan order that may. Scanning the whole list on every take made a run of
    3,200 cells spend 24 s choosing: here the first question looks only at that
    environment's cells, and the second starts at the first cell not taken and skips
    taken ones, which are dropped once they outnumber the cells left.

    A cell put back (its slot is gone: a Ray node left) is taken before all of them.
    """

    def __init__(self, items: Sequence[Planned]) -> None:
        #: Cells put back, the longest expected first: taken before any other.
        self._front: list[Planned] = []
        self._fill(items)

    def _fill(self, items: Sequence[Planned]) -> None:
        self._items: list[Planned | None] = list(items)
        self._left = len(self._items)
        self._head = 0  # no cell before it is left
        self._by_env: dict[object, list[int]] = {}
        for i, item in enumerate(items):
            self._by_env.setdefault(worker_env(item.cell), []).append(i)

    def __len__(self) -> int:
        return self._left + len(self._front)

    def __iter__(self) -> Iterator[Planned]:
        rest = (item for item in self._items[self._head :] if item is not None)
        return itertools.chain(list(self._front), rest)

    def put_back(self, item: Planned) -> None:
        """A cell taken earlier that must start again (its slot is gone, with the node it
        was on): it goes before every cell not taken yet, the longest expected first, so
        it is not starved behind the whole queue."""
        at = bisect.bisect_right(self._front, -item.expected_s, key=lambda p: -p.expected_s)
        self._front.insert(at, item)

    def take(
        self,
        env: object,
        may_start: Callable[[Planned], bool],
        others: Collection[object] = (),
    ) -> Planned | None:
        """The first cell put back that may start, else the first of `env` that may,
        else the first that may of an environment not in `others` (those other slots'
        workers serve: theirs to take, without a worker start), else the first that may;
        None if none."""
        for i, back in enumerate(self._front):
            if may_start(back):
                return self._front.pop(i)
        for i in self._by_env.get(env, ()):
            item = self._items[i]
            if item is not None and may_start(item):
                return self._pop(i)
        # The first of `others`' cells that may start is the fallback: past it, theirs
        # are not asked about again.
        served = {e for e in others if e != env and e in self._by_env}
        first: int | None = None
        for i in range(self._head, len(self._items)):
            item = self._items[i]
            if item is None:
                continue
            theirs = bool(served) and worker_env(item.cell) in served
            if theirs and first is not None:
                continue
            if may_start(item):
                if not theirs:
                    return self._pop(i)
                first = i
        return None if first is None else self._pop(first)

    def _pop(self, i: int) -> Planned:
        item = self._items[i]
        assert item is not None
        self._items[i] = None
        self._left -= 1
        env = worker_env(item.cell)
        self._by_env[env].remove(i)
        if not self._by_env[env]:
            del self._by_env[env]
        while self._head < len(self._items) and self._items[self._head] is None:
            self._head += 1
        taken = len(self._items) - self._head - self._left
        if taken > 64 and taken > self._left:
            self._fill([x for x in self._items[self._head :] if x is not None])
        return item
