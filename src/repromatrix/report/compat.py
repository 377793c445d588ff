"""The compatibility matrix (pure), in the style of NVIDIA's framework support matrices.

One row per base (an image, with what it ships: CUDA, torch, TensorRT; or the host, with
what its records saw), one column per GPU type, and in each cell one line per repro: its
verdict along the library axis there ("regressed 0.2.2–0.2.3, fixed in 0.2.4"), or the
cell's own verdict for repros that span the bases, each linking to its details.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from repromatrix.entries import Entry
from repromatrix.model import CPU_GPU, HOST_BASE, Status
from repromatrix.points import BASE_AXIS, PointVerdict, unsteady, unsure_name
from repromatrix.ranges import Finding
from repromatrix.report.build import ReportData, series_context, status_name
from repromatrix.report.views import STATUS_LABELS, iter_cells
from repromatrix.splits import Split

if TYPE_CHECKING:
    from repromatrix.config import Matrix

#: Facts of `ships:` shown in this order (others follow, sorted).
SHIPS_ORDER = ("cuda", "torch", "tensorrt", "python", "driver")
_NAMES = {"cuda": "CUDA", "torch": "torch", "tensorrt": "TensorRT", "python": "Python"}


@dataclass(frozen=True, kw_only=True)
class CompatLine:
    repro: str
    #: Symbol name: a status, "flaky" or "none".
    status: str
    text: str
    href: str
    #: What the symbol is read out as, where not its status ("machines disagree").
    label: str = ""
    #: matrix.yaml (given) does not list the repro (a renamed one): badged as on index.html.
    unlisted: bool = False


def _disagree(splits: Sequence[Split | None]) -> str:
    """ "machines disagree" where every flaky point is one whose machines (or "GPUs
    disagree": GPUs) each gave one verdict (`Entry.split`), else "" (flaky it is)."""
    heads = {split.head if split is not None else "" for split in splits}
    return heads.pop() if len(heads) == 1 and "" not in heads else ""


@dataclass(frozen=True, kw_only=True)
class CompatRow:
    base: str
    ref: str
    ships: str
    #: Per GPU column: the lines of its cell (empty: nothing there).
    cells: tuple[tuple[CompatLine, ...], ...]


@dataclass(frozen=True, kw_only=True)
class Compat:
    gpus: tuple[str, ...]
    rows: tuple[CompatRow, ...]
    #: GPU types the matrix expects cells on that have no record yet.
    without_results: tuple[str, ...] = ()
    #: Bases (an image added later) the matrix expects cells on that have no record yet.
    bases_without_results: tuple[str, ...] = ()
    #: A matrix.yaml was given (the page says what it expects only then).
    has_matrix: bool = False


def _span(finding: Finding) -> tuple[str, str]:
    """(symbol, text) of one series along a library axis."""
    pts = finding.series.tested
    bad_unordered = [p.label for p in finding.unordered if p.verdict is PointVerdict.BAD]
    if finding.intervals or bad_unordered:
        parts = []
        for iv in finding.intervals:
            bad = iv.first_bad if iv.first_bad == iv.last_bad else f"{iv.first_bad}–{iv.last_bad}"
            if iv.unsure_inside:  # bad on both sides of them, not seen bad there
                bad += f" (no verdict at {', '.join(p.label for p in iv.unsure_inside)} inside)"
            if iv.uncertain_before:  # it may begin earlier: those points have no verdict
                unknown = ", ".join(map(unsure_name, iv.uncertain_before))
                bad += f" (no verdict before it at {unknown})"
            end = f"fixed in {iv.first_good}" if iv.first_good else "still present"
            if iv.first_good and iv.uncertain_after:  # the fix may be at one of them
                end = f"fixed at or before {iv.first_good}"
            if finding.passed_apart and iv.open_end:  # a pass named below may be its fix
                end += " where the order is known"
            if iv.uncertain_after:
                unknown = ", ".join(map(unsure_name, iv.uncertain_after))
                end += f" (no verdict at {unknown})"
            parts.append(f"{bad}, {end}")
        text = "; then ".join(parts)
        # "fixed in 3.0" read as the library's fix where 2.0 and 3.0 ran on machines that
        # disagree: the sentence's caveats follow, as summary.md has them.
        text += _apart(finding, bad_unordered, bool(text))
        return "regressed", "; ".join(("regressed " + text, *finding.caveats))
    good = sum(1 for p in pts if p.verdict is PointVerdict.GOOD)
    flaky = [p for p in pts if p.flaky]
    if flaky:  # never behind a pass: records disagree there (a regression, one time in a few)
        more = f" and {len(flaky) - 4} more" if len(flaky) > 4 else ""
        passes = f"; passes at {good} of {len(pts)}" if good else ""
        # With their counts, as the index page and summary.md name them.
        return "flaky", f"{unsteady(flaky[:4], finding.series.unordered)}{more}{passes}"
    if good and good == len(pts):
        return "passed", f"passes at all {good} tested"
    if good:
        return "passed", f"passes where tested ({good} of {len(pts)})"
    whys = Counter(p.why for p in pts)
    if len(whys) == 1:
        why = next(iter(whys))
        return ("not_run" if why == "not run here" else "none"), f"no verdict ({why})"
    return "none", "no verdict (" + ", ".join(f"{n} {w}" for w, n in whys.items()) + ")"


def _apart(finding: Finding, bad_unordered: Sequence[str], after: bool) -> str:
    """What follows the intervals of `_span` (`after`: there are some): the points none of
    them names, bad or passing where the order is unknown, and flaky ones."""
    text = ""
    if bad_unordered:  # after the intervals, never before a "then": its place is unknown
        unknown = f"at {', '.join(bad_unordered)} (order unknown)"
        text = f"; also {unknown}" if after else unknown
    if finding.passed_apart:  # beside "still present": one may be its fix
        text += f"; passed at {', '.join(p.label for p in finding.passed_apart)} (order unknown)"
    # "fixed in 1.3" alone hid that 1.4 regressed too, one run in two.
    apart = unsteady(finding.flaky_apart, finding.series.unordered)
    return text + (f"; {apart}" if apart else "")


def _seen(values: Counter[str]) -> str:
    """One value as it is; several as "varies: 2.3.0, 2.1.0, 2.2.0" (most seen first)."""
    named = [v for v, _ in values.most_common(3)]
    if len(values) == 1:
        return named[0]
    more = f" and {len(values) - 3} more" if len(values) > 3 else ""
    return "varies: " + ", ".join(named) + more


def _ships(base: str, matrix: Matrix | None, records: Sequence[Entry]) -> tuple[str, str]:
    """(ref, what it ships) of a base: declared `ships:`, else what its records saw."""
    facts: dict[str, str] = {}
    ref = ""
    if matrix is not None and base in matrix.bases:
        b = matrix.bases[base]
        ref = b.ref
        facts.update({k.lower(): str(v) for k, v in b.ships.items()})
    if not facts:
        # Records share equal provenances (`fastdecode`): each is read once, counted as
        # often as records hold it, in the order first held (most_common's ties keep it).
        held: dict[int, list[Any]] = {}
        for e in records:
            if e.result is not None:
                prov = e.result.provenance
                if (found := held.get(id(prov))) is None:
                    held[id(prov)] = [prov, 1]
                else:
                    found[1] += 1
        seen: dict[str, Counter[str]] = {}
        for prov, times in held.values():
            for k in ("cuda", "torch", "python"):
                v = prov.get(k)
                if isinstance(v, str) and v:
                    if k not in seen:
                        seen[k] = Counter()
                    seen[k][v] += times
        # A fact its records disagree on is no fact of the base: a pinned torch (2.1, 2.2,
        # 2.3 along the axis) or the machines behind "host" read as "torch 2.3.0".
        facts = {k: _seen(c) for k, c in seen.items()}
        if facts:
            facts = {**facts, "as": "recorded"}
    keys = [k for k in SHIPS_ORDER if k in facts]
    keys += sorted(k for k in facts if k not in SHIPS_ORDER and k != "as")
    text = " · ".join(f"{_NAMES.get(k, k)} {facts[k]}" for k in keys)
    if text and "as" in facts:
        text += " (as its records saw it)"
    return ref, text


def build_compat(data: ReportData, matrix: Matrix | None, page: str = "index.html") -> Compat:
    lines: dict[tuple[str, str], list[CompatLine]] = {}
    # Where each cell's details are: asked only of repros along the bases (made then).
    index: dict[int, tuple[int, int]] | None = None
    by_base: dict[str, list[Entry]] = {}
    # Each base, GPU and status recorded, once (100,000 cells hold a few hundred).
    held: set[tuple[str, str, Status]] = set()
    for entry in data.entries:
        by_base.setdefault(entry.base, []).append(entry)
        if (r := entry.result) is not None:
            held.add((entry.base, entry.gpu, r.status))
    for n, rr in enumerate(data.repros):
        grid = rr.grid
        unlisted = not rr.listed and matrix is not None
        many = len({(s.gpu, s.base) for s in grid.series}) < len(grid.series)
        for col, (s, f) in enumerate(zip(grid.series, rr.findings, strict=True)):
            if grid.axis != BASE_AXIS and s.base is not None:
                symbol, text = _span(f)
                if many:
                    extra = series_context(grid, s).removeprefix(s.gpu).removeprefix(" · ")
                    text = f"{extra}: {text}" if extra else text
                split = _disagree([p.split for p in s.tested if p.flaky])
                label = split if symbol == "flaky" else ""
                line = CompatLine(
                    repro=rr.name,
                    status=symbol,
                    text=text,
                    href=f"{page}#r{n}",
                    label=label,
                    unlisted=unlisted,
                )
                lines.setdefault((s.base, s.gpu), []).append(line)
                continue
            for p in s.points:
                e = grid.entries.get((col, p.label))
                if e is None:
                    continue
                if index is None:
                    index = {id(e): (n, i) for n, i, e in iter_cells(data)}
                where = index.get(id(e))
                href = f"{page}#c{where[1]}" if where is not None else f"{page}#r{n}"
                st = "flaky" if e.flaky else status_name(e)
                text = e.flaky_text or STATUS_LABELS.get(st, st)
                lines.setdefault((e.base, e.gpu), []).append(
                    CompatLine(
                        repro=rr.name,
                        status=st,
                        text=text,
                        href=href,
                        label=_disagree([e.split]),
                        unlisted=unlisted,
                    )
                )
    # Columns for GPU types with a record (GPU types first, then the CPU): one that only has
    # "no such GPU on this host" notes is a column of "not run here", as index.html shows
    # those cells; a type the matrix expects without any record is named under the table.
    recorded = {(base, gpu) for base, gpu, _ in held}
    ran = {gpu for _, gpu, status in held if status.is_final}
    noted = {gpu for _, gpu in recorded}
    # Among GPU types, those where something ran first: their columns hold the verdicts.
    ordered = sorted(
        (g for g in data.gpus if g in noted), key=lambda g: (g == CPU_GPU, g not in ran)
    )
    gpus = tuple(ordered)
    idle = tuple(
        g
        for g in sorted(data.gpus, key=lambda g: g == CPU_GPU)
        if g not in gpus and any(g == gpu for _, gpu in lines)
    )
    bases = [b for b in data.orders.bases if b in by_base]
    bases += sorted(b for b in by_base if b not in bases)
    rows = []
    # A base without a record has no row (a row of "no result yet" in every column), but
    # is named under the table as a GPU type is: an image added to matrix.yaml later left
    # the page as if it were never part of the matrix, its neighbours' verdicts read as all.
    lined = {b for b, _ in lines}
    idle_bases = tuple(
        b
        for b in [*data.orders.bases, *sorted(lined)]
        if b in lined and not any((b, g) in recorded for g in gpus)
    )
    for base in bases:
        if not any((base, g) in recorded for g in gpus):
            continue
        ref, ships = _ships(base, matrix, by_base.get(base, []))
        rows.append(
            CompatRow(
                base=base,
                ref=ref if base != HOST_BASE else "",
                ships=ships,
                cells=tuple(tuple(lines.get((base, g), ())) for g in gpus),
            )
        )
    return Compat(
        gpus=gpus,
        rows=tuple(rows),
        without_results=idle,
        bases_without_results=tuple(dict.fromkeys(idle_bases)),
        has_matrix=matrix is not None,
    )


def compat_counts(compat: Compat) -> Mapping[str, int]:
    """How many repro lines of the page end in each symbol (for its header)."""
    return Counter(line.status for row in compat.rows for cell in row.cells for line in cell)
