"""What changed between two result sets (pure): `repromatrix report --compare OLD_DIR`.

Both sets are laid out on one revision catalog (so a commit has the same label on both
sides) and compared cell by cell, each cell by its best evidence (see `grid.evidence`):

- a verdict that flipped: passed ↔ regressed (fixed, or a new regression of a cell that
  passed), a cell that became or stopped being flaky, or one flaky on both sides whose
  runs turned from mostly one verdict to mostly the other;
- a new regression: regressed (or flaky) now, with no verdict before (not tested, or it
  could not);
- a verdict lost: a verdict before, none now (e.g. a timeout on the new machine).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from repromatrix.entries import Coord, Entry, collect_entries
from repromatrix.model import Cell
from repromatrix.records import Result
from repromatrix.revision_catalog import build_catalog
from repromatrix.revisions import Catalog
from repromatrix.splits import SplitUnit
from repromatrix.winner import UNIT_NAMES, machine_name

if TYPE_CHECKING:
    from repromatrix.config import Matrix
    from repromatrix.ordering import Orders

FLIPPED = "flipped"
NEW_REGRESSION = "new regression"
LOST = "verdict lost"
#: The sections of "what changed": group, heading, what to say when it is empty.
CHANGE_GROUPS = (
    (FLIPPED, "Verdicts that flipped", "No verdict flipped."),
    (NEW_REGRESSION, "New regressions", "No new regression."),
    (LOST, "Verdicts lost", "No verdict was lost."),
)


@dataclass(frozen=True, kw_only=True)
class Change:
    repro: str
    gpu: str
    base: str
    #: "fla=3f1f080f" ... (revision labels as every output shows them).
    pins: str
    before: str
    after: str
    #: FLIPPED, NEW_REGRESSION or LOST.
    group: str
    #: "fixed", "regressed (was passing)", "became flaky", ...
    kind: str
    #: The winning records of both sides have other cell keys: the experiment changed
    #: (script, params, pin spelling), not (only) the library.
    redefined: bool = False
    #: matrix.yaml (given) does not list the repro (a renamed one): marked as elsewhere.
    unlisted: bool = False
    #: The verdicts of both sides came from disjoint machines (old results of one host,
    #: new ones of another): the machines changed, perhaps not the library.
    moved: bool = False
    #: What disagrees, each side steady, where the change is to or from such a split
    #: ("machines disagree now", "bases no longer disagree (passed)"): no flaky change.
    split: SplitUnit | None = None
    #: A verdict lost with its cell: matrix.yaml (given) does not list the cell (a repro
    #: renamed or removed, a GPU, base or revision dropped), so nothing was to run it.
    dropped: bool = False


@dataclass(frozen=True, kw_only=True)
class Comparison:
    old_label: str
    old_records: int
    new_records: int
    changes: tuple[Change, ...]
    #: The matrix file as --matrix named it, for the headline's cells it does not list.
    matrix_file: str = "matrix.yaml"

    def of(self, group: str) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.group == group)

    @property
    def headline(self) -> str:
        flips = self.of(FLIPPED)
        # A flip under another cell key is no fix nor regression of the library (a
        # threshold raised in matrix.yaml "fixed" it): counted apart.
        same = [c for c in flips if not c.redefined and not c.moved]
        moved = sum(1 for c in flips if c.moved and not c.redefined)
        fixed = sum(1 for c in same if c.kind.startswith("fixed"))
        broke = sum(1 for c in same if c.kind.startswith("regressed"))
        # "machines disagree now" is no flaky change: counted apart, as changes.md names it.
        units = [c.split for c in same if c.split is not None]
        split = len(units)
        # Named by what disagrees ("bases" of one machine, fbfa663), as each row names it.
        said = units[0].value if len(set(units)) == 1 else "machines, bases or GPUs"
        other = len(flips) - len(same) - moved
        if moved:
            apart = f", {moved} on other machines than before: the machines changed, perhaps "
            apart += "not the library"
        else:
            apart = ""
        if other:
            apart += f", {other} under another cell key: the experiment changed, not the library"
        lost = self.of(LOST)
        # A cell the matrix dropped loses its verdict by the user's choice: counted apart.
        dropped = sum(1 for c in lost if c.dropped)
        gone = f" ({dropped} of cells {self.matrix_file} does not list)" if dropped else ""
        return (
            f"{len(flips)} verdict(s) flipped ({fixed} fixed, {broke} newly regressed, "
            f"{len(same) - fixed - broke - split} flaky changes"
            f"{f', {split} of {said} that disagree' if split else ''}{apart}); "
            f"{len(self.of(NEW_REGRESSION))} new regression(s) without a verdict before; "
            f"{len(lost)} verdict(s) lost{gone}"
        )


def _coord(e: Entry) -> Coord:
    return (e.repro, e.gpu, e.base, tuple(sorted(e.pins)))


def _along(orders: Orders | None) -> Callable[[Coord], tuple[object, ...]]:
    """The sort key of a cell's coordinates along the report's axes (`orders`), its
    labels' text where an axis does not place them."""

    if orders is None:
        return lambda coord: coord
    at = {lib: {x: i for i, x in enumerate(labels)} for lib, labels in orders.libraries.items()}
    gpus = {g: i for i, g in enumerate(orders.gpus)}
    bases = {b: i for i, b in enumerate(orders.bases)}

    def place(order: dict[str, int], label: str) -> tuple[int, str]:
        return (order.get(label, len(order)), label)

    def key(coord: Coord) -> tuple[object, ...]:
        repro, gpu, base, pins = coord
        placed = tuple((lib, place(at.get(lib, {}), label)) for lib, label in pins)
        return (repro, place(gpus, gpu), place(bases, base), placed)

    return key


def verdict(e: Entry | None) -> str | None:
    """passed, regressed or flaky; None when the cell has no verdict (or no record)."""
    if e is None or e.result is None:
        return None
    if e.flaky:
        return "flaky"
    return e.result.status.value if e.result.status.is_verdict else None


def _state(e: Entry | None) -> str:
    if e is None or e.result is None:
        return "not tested"
    if e.flaky:
        return e.flaky_text
    return e.result.status.value.replace("_", " ")


def _named(e: Entry | None, v: str) -> str:
    """`v` as the change names it: "machines disagree" of a flaky cell whose machines each
    gave one verdict (no flaky repro: see `winner.machines_split`)."""
    return e.split.head if e is not None and e.split is not None and v == "flaky" else v


def _redefined(before: Entry | None, after: Entry | None) -> bool:
    b = before.definition if before is not None else ""
    a = after.definition if after is not None else ""
    return bool(a and b) and a != b


def _moved(before: Entry | None, after: Entry | None) -> str:
    """ "m-b before, m-a now" where the verdicts of the two sides ran on disjoint machines
    (each side's all known), else "": a flip of one cell (one release, one base) between
    them may be theirs, as `machine_bounds` says of a boundary between such machines."""
    sides = [
        {machine_name(r) for r in e.records if r.status.is_verdict} if e is not None else set()
        for e in (before, after)
    ]
    if not all(sides) or "" in sides[0] | sides[1] or sides[0] & sides[1]:
        return ""
    return f"{', '.join(sorted(sides[0]))} before, {', '.join(sorted(sides[1]))} now"


def _split_unit(before: Entry | None, after: Entry | None) -> SplitUnit | None:
    """What disagrees where the change is to or from a split, as `_kind` names it: "X
    disagree now" (the new side's), "X no longer disagree" (the old side's, unless the new
    is flaky: "became flaky"); None for any other change."""
    if after is not None and verdict(after) == "flaky":
        return after.split.unit if after.split is not None else None
    if before is not None and verdict(before) == "flaky" and before.split is not None:
        return before.split.unit
    return None


def _lean(e: Entry) -> str:
    """Which verdict most of a flaky cell's runs gave: "passing", "regressed" or "" (even)."""
    if e.passed == e.regressed:
        return ""
    return "passing" if e.passed > e.regressed else "regressed"


def _lean_flipped(before: Entry | None, after: Entry | None) -> str:
    """ "flaky, now mostly regressed (was mostly passing)" where a cell flaky on both sides
    (a flaky repro, not machines that each agree) turned from mostly one verdict to mostly
    the other: 5 passed 1 regressed, then 1 passed 5 regressed, was no change at all."""
    if before is None or after is None:
        return ""
    if any(verdict(e) != "flaky" or e.split is not None for e in (before, after)):
        return ""
    was, now = _lean(before), _lean(after)
    if not was or not now or was == now:
        return ""
    return f"flaky, now mostly {now} (was mostly {was})"


def _sides(e: Entry, unit: SplitUnit) -> dict[str, str]:
    """Each side of a split cell (machine, base or GPU) and its one verdict; the winner's
    definition's records alone, each side being steady in any of them."""
    key = e.result.key if e.result is not None else ""
    name = UNIT_NAMES[unit]
    return {name(r): r.status.value for r in e.records if r.status.is_verdict and r.key == key}


def _split_turned(before: Entry | None, after: Entry | None) -> str:
    """ "machines disagree, turned: m-a regressed (was passed), m-b passed (was regressed)"
    where the same sides of a split cell each gave the other verdict now: both sides said
    "machines disagree" and the change, a regression on m-a, went unsaid."""
    if before is None or after is None or before.split is None or after.split is None:
        return ""
    if before.split.unit is not after.split.unit:
        return ""
    unit = after.split.unit
    was, now = _sides(before, unit), _sides(after, unit)
    turned = sorted(n for n in was.keys() & now.keys() if was[n] != now[n])
    if not turned:
        return ""
    said = [f"{n} {now[n]} (was {was[n]})" for n in turned]
    more = f" and {len(said) - 4} more" if len(said) > 4 else ""
    return f"{after.split.head}, turned: {', '.join(said[:4])}{more}"


def _narrowed(before: Entry | None, after: Entry | None) -> str:
    """A split cell against runs of some of its sides alone, all of one verdict: "machines
    disagreed; only m-a ran now: regressed (was passed)" ("machines no longer disagree
    (regressed)" was said of m-b, which did not run, and hid m-a's regression), or the
    other way "machines disagree now; m-a passed (was regressed)" where a side turned."""
    if before is None or after is None or before.flaky == after.flaky:
        return ""
    split, steady = (before, after) if before.flaky else (after, before)
    if split.split is None:
        return ""
    unit = split.split.unit
    sides, alone = _sides(split, unit), _sides(steady, unit)
    if "" in alone or not alone or not alone.keys() < sides.keys():
        return ""
    was, now = (sides, alone) if split is before else (alone, sides)
    turned = [n for n in sorted(alone) if was[n] != now[n]]

    def side(n: str) -> str:
        return now[n] + (f" (was {was[n]})" if n in turned else "")

    if split is after:  # "machines disagree now" where no side turned: a new one disagrees
        said = ", ".join(f"{n} {side(n)}" for n in turned)
        return f"{unit.value} disagree now; {said}" if turned else ""
    one = len(alone) == 1
    said = ", ".join(side(n) if one else f"{n} {side(n)}" for n in sorted(alone))
    return f"{unit.value} disagreed; only {', '.join(sorted(alone))} ran now: {said}"


def _once(before: Entry | None, after: Entry | None) -> str:
    """A change between a flaky repro's cell and one verdict, its side's only run, said so:
    a single run cannot show a cell flaky, and "no longer flaky (passed)" of a 5-to-1 cell
    that then ran once told a fix nobody had seen."""
    if before is None or after is None:
        return ""
    for flaky, steady, word in ((before, after, "now"), (after, before, "before")):
        alone = not steady.flaky and steady.passed + steady.regressed == 1
        if flaky.flaky and flaky.split is None and alone:
            one = verdict(steady)
            if word == "now":
                return f"ran once now ({one}): one run cannot show whether it is still flaky"
            return f"flaky now; ran once before ({one}): one run could not show it"
    return ""


def _kind(before: str, after: str) -> str:
    if before == "regressed" and after == "passed":
        return "fixed"
    if before == "passed" and after == "regressed":
        return "regressed (was passing)"
    if after == "flaky":
        return "became flaky"
    if after.endswith(" disagree"):
        return f"{after} now"
    if before.endswith(" disagree"):  # "machines no longer disagree (passed)"
        return f"{before.removesuffix(' disagree')} no longer disagree ({after})"
    return f"no longer flaky ({after})"


def compare(
    old: Sequence[Result],
    new: Sequence[Result],
    *,
    matrix: Matrix | None = None,
    cells: Sequence[Cell] = (),
    old_label: str = "",
    catalog: Catalog | None = None,
    orders: Orders | None = None,
) -> Comparison:
    """Cell by cell, what changed from `old` to `new`; `catalog` is
    `build_catalog([*old, *new], matrix, cells)` when the caller has it already; `orders`
    (the report's) puts each repro's changes along its axes, not in the labels' text order
    (1.10 before 1.9, commits by their ids)."""
    if catalog is None:
        catalog = build_catalog([*old, *new], matrix, cells)
    # Weighed as the report weighs them: the key matrix.yaml gives a position now is its
    # current definition (without the cells, a newer-dated record of another definition
    # won here while index.html showed the matrix's own, and the two pages disagreed).
    file = orders.matrix_file if orders is not None else "matrix.yaml"
    before = {_coord(e): e for e in collect_entries(old, cells, catalog)}
    after = {_coord(e): e for e in collect_entries(new, cells, catalog)}
    changes: list[Change] = []
    for coord in sorted({*before, *after}, key=_along(orders)):
        b, a = before.get(coord), after.get(coord)
        # With the matrix's cells, every cell it expands to has an entry on both sides.
        dropped = a is None and matrix is not None
        # Flaky and machines that disagree (each steady) are told apart: one to the other
        # is a change, as every output names them.
        vb, va = verdict(b), verdict(a)
        leaned = _lean_flipped(b, a) or _split_turned(b, a)
        if vb == va and _named(b, vb or "") == _named(a, va or "") and not leaned:
            continue
        if leaned:
            group, kind = FLIPPED, leaned
        elif vb is not None and va is not None:
            said = _narrowed(b, a) or _once(b, a)
            group, kind = FLIPPED, said or _kind(_named(b, vb), _named(a, va))
        elif va in ("regressed", "flaky"):
            # A flaky cell regressed too (one time in a few): junit.xml and --fail-on
            # regressed fail it, so it is new here as much as a steady regression.
            group, kind = NEW_REGRESSION, f"{_named(a, va)} ({_state(b)} before)"
        elif vb is not None:
            group, kind = LOST, f"now {_state(a)}"
            if dropped:
                kind += f": {file} does not list the cell"
        else:
            continue  # a new pass without a verdict before: not a change
        redefined = _redefined(b, a)
        if redefined:  # not the library: the experiment itself changed in between
            kind += " (under another cell key: the repro's script, params or pin spelling differ)"
        # A flaky cell's runs that turned the other way on other machines may be theirs too.
        flip = group == FLIPPED and (kind in ("fixed", "regressed (was passing)") or leaned)
        names = _moved(b, a) if flip else ""
        if names:  # the same release, another machine
            kind += f" (on other machines: {names}: the change may be theirs)"
        entry = a or b
        assert entry is not None
        changes.append(
            Change(
                repro=coord[0],
                gpu=coord[1],
                base=coord[2],
                pins=", ".join(f"{lib}={label}" for lib, label in entry.pins),
                before=_state(b),
                after=_state(a),
                group=group,
                kind=kind,
                redefined=redefined,
                moved=bool(names),
                split=_split_unit(b, a),
                unlisted=matrix is not None and coord[0] not in matrix.repros,
                dropped=group == LOST and dropped,
            )
        )
    return Comparison(
        old_label=old_label,
        old_records=len(old),
        new_records=len(new),
        changes=tuple(changes),
        matrix_file=file,
    )
