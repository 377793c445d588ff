"""From result records to the positions of the matrix a report shows: an *entry* is one
position (repro, GPU, base, one identity per pinned revision) with the record that wins
there (`winner.py`) and the others, flaky where the current ones disagree. Positions the
matrix expands to without a record are entries too. `grid.py` lays them out. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter

from repromatrix.model import Cell, Status
from repromatrix.points import BASE_AXIS
from repromatrix.records import Result
from repromatrix.revision_catalog import build_catalog
from repromatrix.revisions import Catalog
from repromatrix.splits import Split
from repromatrix.timestamps import recency
from repromatrix.winner import definition_keys, machines_split, weigh

Coord = tuple[str, str, str, tuple[tuple[str, str], ...]]


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One position of the matrix as the report shows it: the winning record, the others."""

    repro: str
    gpu: str
    base: str
    #: Library → revision label (one per identity, see `revisions.py`), in pin order.
    pins: tuple[tuple[str, str], ...]
    #: The record with the best evidence here (see `winner.evidence`); None when nothing was
    #: recorded yet.
    result: Result | None
    #: Every other record at this position, newest first.
    history: tuple[Result, ...] = ()
    #: The current records here disagree: some passed, some regressed.
    flaky: bool = False
    #: Verdicts among the current records here (see `collect_entries`).
    passed: int = 0
    regressed: int = 0
    #: "machines disagree: m-1 passed 2, m-2 regressed 1": a flaky position whose records
    #: disagree only between machines (or bases, or GPUs), each steady
    #: (`winner.machines_split`); None where flaky it is, or not flaky at all.
    split: Split | None = None
    #: matrix.yaml expands to this position (False: e.g. a commit evaluated by bisect).
    expected: bool = False
    cell_id: str = ""
    #: The key of the definition the winning record ran: the cell's own key for a record
    #: of the experiment matrix.yaml defines there now (a bisection's full-sha twin of it
    #: too, `Cell.twin_keys`), else the record's own key ("" without a record).
    definition: str = ""

    @property
    def status(self) -> Status | None:
        return self.result.status if self.result is not None else None

    @property
    def flaky_text(self) -> str:
        """ "flaky: 3 passed, 2 regressed" (empty when not flaky)."""
        if not self.flaky:
            return ""
        if self.split is not None:
            return str(self.split)
        return f"flaky: {self.passed} passed, {self.regressed} regressed"

    @property
    def records(self) -> tuple[Result, ...]:
        return (self.result, *self.history) if self.result is not None else self.history

    @property
    def verdicts(self) -> tuple[Result, ...]:
        """The records a repro's key metric is chosen from: the winner, and where the
        position is flaky its other verdicts too (a pass won there and hid the one
        regression that said which metric failed: a flaky-only series showed another)."""
        if self.result is None:
            return ()
        if not self.flaky:
            return (self.result,)
        return (self.result, *(r for r in self.history if r.status.is_verdict))

    def label(self, axis: str) -> str:
        if axis == BASE_AXIS:
            return self.base
        return dict(self.pins).get(axis, "")


def collect_entries(
    results: Iterable[Result], cells: Sequence[Cell] = (), catalog: Catalog | None = None
) -> list[Entry]:
    """Group records by matrix position, one revision identity being one position; the
    record with the best evidence wins (newest among equals; see `evidence`).

    Records that disagree (passed and regressed) among the current keys of a position make
    it flaky, with their counts. Positions the matrix expands to without any record appear
    with `result=None`.
    """
    results = list(results)
    if catalog is None:
        catalog = build_catalog(results, None, cells)
    members: dict[Coord, list[Result]] = {}
    order: dict[Coord, tuple[tuple[str, str], ...]] = {}
    # Records name few distinct pins: each spelling is labelled and sorted once (and the
    # positions of the same revisions share their tuples).
    # (Records share equal pins and commits, see `fastdecode`: known by identity, and
    # `results` holds them, so an id stays theirs.) Most positions hold one record: a
    # lookup by spelling first (`buckets` before) paid a miss and an insert for each.
    named: dict[tuple[int, int], tuple[tuple[tuple[str, str], ...], ...]] = {}
    for r, (repro, gpu, base, given, commits) in zip(results, map(_SPELLING, results), strict=True):
        ids = (id(given), id(commits))
        pair = named.get(ids)
        if pair is None:
            pins = catalog.pins_of(r)
            pair = named[ids] = (pins, tuple(sorted(pins)))
        c = (repro, gpu, base, pair[1])
        bucket = members.get(c)
        if bucket is None:
            members[c] = [r]
            order[c] = pair[0]
        else:
            bucket.append(r)
    expected: dict[Coord, Cell] = {}
    for x in cells:
        pins = catalog.pins_of_cell(x)
        coord = (x.repro, x.gpu.name, x.base.name, tuple(sorted(pins)))
        expected[coord] = x
        order.setdefault(coord, pins)
    _follow_moved_refs(expected, members, order)
    out: list[Entry] = []
    for c, group in members.items():
        cell = expected.get(c)
        if cell is None and len(group) == 1:
            # `weigh` and `definition_keys` of one record no cell expects: it wins, alone.
            win = group[0]
            status = win.status
            passed, regressed = int(status is _PASSED), int(status is _REGRESSED)
            out.append(
                _entry(
                    c,
                    order[c],
                    win,
                    (),
                    False,
                    passed,
                    regressed,
                    False,
                    win.cell_id,
                    definition=win.key,
                )
            )
            continue
        keys = definition_keys(cell, group)
        win, history, passed, regressed = weigh(group, keys)
        flaky = passed > 0 and regressed > 0
        out.append(
            _entry(
                c,
                order[c],
                win,
                tuple(history),
                flaky,
                passed,
                regressed,
                cell is not None,
                win.cell_id,
                machines_split(group, keys) if flaky else None,
                cell.key if cell is not None and win.key in keys else win.key,
            )
        )
    for c, cell in expected.items():
        if c not in members:
            out.append(_entry(c, order[c], None, (), False, 0, 0, True, cell.id))
    return out


#: What places a record: its repro, GPU, base, pins and commits (one C call a record).
_SPELLING = attrgetter("repro", "gpu", "base", "pins", "commits")
_PASSED, _REGRESSED = Status.PASSED, Status.REGRESSED
_new = object.__new__
_set = object.__setattr__
#: The fields of an Entry, as a dict whose table of keys every entry's shares.
_ENTRY_FIELDS = Entry(repro="", gpu="", base="", pins=(), result=None).__dict__


def _entry(
    c: Coord,
    pins: tuple[tuple[str, str], ...],
    result: Result | None,
    history: tuple[Result, ...],
    flaky: bool,
    passed: int,
    regressed: int,
    expected: bool,
    cell_id: str,
    split: Split | None = None,
    definition: str = "",
) -> Entry:
    """`Entry(...)` at `c` without the frozen dataclass's `object.__setattr__` per field
    (a fifth of `collect_entries`), for 64 bytes more an entry: its dict, a copy of one
    entry's, shares that table of keys (a dict of its own takes 60% more again)."""
    e: Entry = _new(Entry)
    fields = _ENTRY_FIELDS.copy()
    fields["repro"], fields["gpu"], fields["base"], fields["pins"] = (*c[:3], pins)
    fields["result"], fields["history"], fields["flaky"] = result, history, flaky
    fields["passed"], fields["regressed"] = passed, regressed
    fields["expected"], fields["cell_id"] = expected, cell_id
    fields["definition"] = definition
    if split is not None:
        fields["split"] = split
    _set(e, "__dict__", fields)
    return e


def _follow_moved_refs(
    expected: dict[Coord, Cell],
    members: Mapping[Coord, list[Result]],
    order: dict[Coord, tuple[tuple[str, str], ...]],
) -> None:
    """A cell pinned by a name that moves (`{git: main}`) has records at each commit the
    name stood for, labelled by commit, while the cell itself has no commit to match: it
    is the newest of them (same key), not a position with no result yet."""
    missing = {x.key: c for c, x in expected.items() if c not in members}
    if not missing:
        return
    found: dict[str, tuple[str, Coord]] = {}
    for c, group in members.items():
        if c in expected:
            continue
        for r in group:
            if r.key in missing:
                newest = (recency(r.finished), c)
                if r.key not in found or newest[0] > found[r.key][0]:
                    found[r.key] = newest
    # (repro, the name's pins) → where its newest record placed it, and when it ran.
    ran_at: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[str, Coord]] = {}
    for key, (when, c) in found.items():
        cell_coord = missing.pop(key)
        expected[c] = expected.pop(cell_coord)
        del order[cell_coord]
        spelled = (cell_coord[0], cell_coord[3])
        if spelled not in ran_at or when > ran_at[spelled][0]:
            ran_at[spelled] = (when, c)
    # Its twins on other GPUs or bases, with no record yet, run the name where it stands:
    # the newest commit it ran at (as their twin is). Left "main", such a cell was a row of
    # its own among the commits, a point "not run in this series" inside another's range.
    for cell_coord in missing.values():
        if (twin := ran_at.get((cell_coord[0], cell_coord[3]))) is None:
            continue
        at = (*cell_coord[:3], twin[1][3])
        if at in members or at in expected:
            continue
        expected[at] = expected.pop(cell_coord)
        order[at] = order[twin[1]]
        del order[cell_coord]
