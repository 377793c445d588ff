"""The HTML report: one self-contained file, rendered by jinja2 with autoescaping on.

Data never reaches the page unescaped: text goes through autoescaping; per-cell details
travel in one `<script type="application/json">` blob (never executable; `<`, `>` and `&`
escaped as \\u003c/\\u003e/\\u0026 so no `</script>` or `<!--` can end or bend it) that the
page's script reads lazily and inserts with `textContent` only. A Content-Security-Policy
with the hash of our one script keeps the page offline and stops any injected script from
running even if an escaping bug slipped through.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from markupsafe import Markup

from repromatrix.grid import Entry, Grid
from repromatrix.model import STATUS_TEXT, Status
from repromatrix.ordering import RevInfo
from repromatrix.ranges import BASE_AXIS, Finding
from repromatrix.records import Result
from repromatrix.report.build import (
    STATUS_ORDER,
    ReportData,
    ReproReport,
    axis_title,
    series_context,
    status_name,
)
from repromatrix.report.metrics import fmt_num, threshold_for

#: Tails longer than this are cut (from the front) in the report; the store keeps them whole.
MAX_TAIL_CHARS = 8000

STATUS_LABELS: Mapping[str, str] = {k: label for k, (_, label) in STATUS_TEXT.items()}
STATUS_SYMBOLS: Mapping[str, str] = {k: sym for k, (sym, _) in STATUS_TEXT.items()}


def safe_url(url: str | None) -> str | None:
    """Only plain http(s) links become hrefs (never `javascript:` or `data:`)."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    if parts.scheme in ("http", "https") and parts.netloc:
        return url.strip()
    return None


def script_json(value: Any) -> Markup:
    """JSON for a `<script type="application/json">` element.

    This is the one place that marks data as safe, because it escapes it itself: with
    `<`, `>` and `&` written as JSON unicode escapes, the text cannot contain `</script`,
    `<!--` or any tag, and JSON.parse reads the same strings back.
    """
    try:
        text = json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    except (ValueError, TypeError):
        # Rare: NaN/inf or odd types somewhere (provenance): clean the whole value once.
        text = json.dumps(_finite(value), ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    # ensure_ascii already wrote U+2028/U+2029 (and all non-ASCII) as escapes, and keeps
    # the text one byte per character, which matters for a 100,000-cell blob.
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


def _blob_parts(details: list[Markup], *, matrix: bool) -> Iterator[Markup]:
    """The `{"cells": [...], "matrix": ...}` document, piece by piece (never one string)."""
    yield Markup('{"cells":[')
    step = 1000  # a template loop step per cell would cost more than the JSON itself
    for start in range(0, len(details), step):
        chunk = Markup(",").join(details[start : start + step])
        yield Markup(",") + chunk if start else chunk
    yield Markup('],"matrix":') + script_json(matrix) + Markup("}")


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf: write them as strings (provenance may hold any float)."""
    if isinstance(value, float) and not math.isfinite(value):
        return fmt_num(value)
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _tail(text: str) -> str:
    if len(text) <= MAX_TAIL_CHARS:
        return text
    return "[... cut for the report ...]\n" + text[-MAX_TAIL_CHARS:]


@dataclass(frozen=True, kw_only=True)
class CellView:
    idx: int
    cls: str
    sym: str
    title: str


@dataclass(frozen=True, kw_only=True)
class RowView:
    label: str
    title: str
    badge: str
    #: Space-separated "<gpu index>:<status>" tokens for the status filter.
    tokens: str
    #: Blank positions (this column has no such point) have idx -1.
    cells: tuple[CellView, ...]


@dataclass(frozen=True, kw_only=True)
class ColumnView:
    gpu_idx: int
    gpu: str
    sub: str
    sentence: str


@dataclass(frozen=True, kw_only=True)
class SummaryItem:
    gpu_idx: int
    context: str
    sentence: str
    reproduced: bool


@dataclass(frozen=True, kw_only=True)
class SectionView:
    anchor: str
    rr: ReproReport
    issue_href: str | None
    axis_title: str
    columns: tuple[ColumnView, ...]
    rows: tuple[RowView, ...]
    items: tuple[SummaryItem, ...]
    statuses: str
    reproduced: bool


def _result_detail(r: Result) -> dict[str, Any]:
    names = list(r.metrics)
    metrics = [
        [
            name,
            fmt_num(r.metrics[name]),
            fmt_num(t) if (t := threshold_for(name, r.thresholds)) is not None else "",
        ]
        for name in names
    ]
    unused = {k: fmt_num(v) for k, v in r.thresholds.items() if k not in r.metrics}
    return {
        "status": r.status.value,
        "reason": r.reason,
        "metrics": metrics,
        "thresholds": unused,
        "provenance": dict(r.provenance),
        "stdout": _tail(r.stdout_tail),
        "stderr": _tail(r.stderr_tail),
        "host": r.host,
        "started": r.started,
        "finished": r.finished,
        "run_id": r.run_id,
        "executor": r.executor,
        "exit_code": r.exit_code,
        "duration_s": round(r.duration_s, 3),
        "image": r.image,
        "key": r.key,
    }


def _older(r: Result) -> dict[str, Any]:
    return {
        "status": r.status.value,
        "reason": r.reason,
        "host": r.host,
        "finished": r.finished,
        "run_id": r.run_id,
        "executor": r.executor,
        "key": r.key,
    }


def _detail(e: Entry) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": e.cell_id,
        "repro": e.repro,
        "gpu": e.gpu,
        "base": e.base,
        "pins": dict(e.pins),
        "flaky": e.flaky,
        "expected": e.expected,
    }
    if e.result is None:
        out.update(status="none", reason="no result yet")
    else:
        out.update(_result_detail(e.result))
    if e.history:
        out["history"] = [_older(h) for h in e.history]
    # Empty fields are left out: the page treats a missing field as empty, and 100,000
    # cells of `"stdout":""` add up.
    return {k: v for k, v in out.items() if v not in ("", None, False, {}, [])}


def _rev_title(info: RevInfo | None) -> str:
    if info is None:
        return ""
    parts = []
    if info.commit:
        parts.append(f"commit {info.commit}")
    if info.committed:
        parts.append(f"committed {info.committed}")
    return ", ".join(parts)


def _range_classes(grid: Grid, findings: Sequence[Finding]) -> dict[tuple[int, str], str]:
    """CSS classes that draw each bad interval on the grid: a bar down its cells with a
    cap at both ends, and a pale bar over the points without a verdict at its edges."""
    index = {label: i for i, label in enumerate(grid.rows)}
    out: dict[tuple[int, str], list[str]] = {}
    for col, f in enumerate(findings):
        for iv in f.intervals:
            lo, hi = index[iv.first_bad], index[iv.last_bad]
            for i in range(lo, hi + 1):
                cls = out.setdefault((col, grid.rows[i]), [])
                cls.append("ri")
                if i == lo:
                    cls.append("rt")
                if i == hi:
                    cls.append("rb")
            for p in (*iv.uncertain_before, *iv.uncertain_after):
                out.setdefault((col, p.label), []).append("ru")
    return {k: " ".join(v) for k, v in out.items()}


def _cell_title(e: Entry) -> str:
    if e.result is None:
        return "no result yet"
    r = e.result
    if r.status is Status.NOT_RUN:
        return f"not run here: {r.reason}" if r.reason else "not run here"
    text = f"{STATUS_LABELS[r.status.value]}"
    if e.flaky:
        text += " (flaky: records of this cell disagree)"
    return text


def build_sections(
    data: ReportData,
) -> tuple[list[SectionView], list[Markup], list[str]]:
    """Views of every repro section, the per-cell details blob, and the GPU list."""
    gpus: list[str] = list(data.orders.gpus)
    # Each cell's details are serialized (and escaped) as soon as they are built: 100,000
    # short strings weigh a fraction of 100,000 nested dicts, and the page streams them.
    details: list[Markup] = []
    sections: list[SectionView] = []
    for n, rr in enumerate(data.repros):
        grid = rr.grid
        for s in grid.series:
            if s.gpu not in gpus:
                gpus.append(s.gpu)
        ranges = _range_classes(grid, rr.findings)
        columns = tuple(
            ColumnView(
                gpu_idx=gpus.index(s.gpu),
                gpu=s.gpu,
                sub=series_context(grid, s).removeprefix(s.gpu).removeprefix(" · "),
                sentence=f.summary,
            )
            for s, f in zip(grid.series, rr.findings, strict=True)
        )
        revs: Mapping[str, RevInfo] = (
            data.revisions.get(grid.axis, {}) if grid.axis != BASE_AXIS else {}
        )
        rows: list[RowView] = []
        for label in grid.rows:
            cells: list[CellView] = []
            tokens: set[str] = set()
            badge = ""
            for col, column in enumerate(columns):
                e = grid.entries.get((col, label))
                if e is None:
                    cells.append(CellView(idx=-1, cls=f"x g{column.gpu_idx}", sym="", title=""))
                    continue
                st = status_name(e)
                tokens.add(f"{column.gpu_idx}:{st}")
                if e.result is not None and e.result.run_id.startswith("bisect-"):
                    badge = "bisect"
                elif not e.expected and not badge and e.result is not None and data.has_matrix:
                    badge = "not in matrix"
                cls = f"c s-{st} g{column.gpu_idx}"
                if e.flaky:
                    cls += " fl"
                if (col, label) in ranges:
                    cls += " " + ranges[(col, label)]
                title = _cell_title(e) if st in ("none", "not_run") or e.flaky else ""
                details.append(script_json(_detail(e)))
                cells.append(
                    CellView(
                        idx=len(details) - 1,
                        cls=cls,
                        sym=STATUS_SYMBOLS[st] + ("~" if e.flaky else ""),
                        title=title,
                    )
                )
            rows.append(
                RowView(
                    label=label,
                    title=_rev_title(revs.get(label)),
                    badge=badge,
                    tokens=" ".join(sorted(tokens)),
                    cells=tuple(cells),
                )
            )
        items = tuple(
            SummaryItem(
                gpu_idx=gpus.index(row.gpu),
                context=row.context,
                sentence=row.sentence,
                reproduced=row.reproduced,
            )
            for row in rr.rows
        )
        statuses = " ".join(sorted({tok for row in rows for tok in row.tokens.split()}))
        sections.append(
            SectionView(
                anchor=f"r{n}",
                rr=rr,
                issue_href=safe_url(rr.issue),
                axis_title=axis_title(grid.axis),
                columns=columns,
                rows=tuple(rows),
                items=items,
                statuses=statuses,
                reproduced=any(f.reproduced for f in rr.findings),
            )
        )
    return sections, details, gpus


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("repromatrix.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = fmt_num
    return env


@cache
def _static(name: str) -> str:
    return (resources.files("repromatrix.report") / "static" / name).read_text(encoding="utf-8")


def _csp_hash(code: str) -> str:
    digest = hashlib.sha256(code.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode() + "'"


def write_html(path: Path, data: ReportData, *, notes: Sequence[str] = ()) -> None:
    """Stream the page to `path` (a 100,000-cell page never exists as one string)."""
    with path.open("w", encoding="utf-8") as f:
        buffer: list[str] = []
        size = 0
        for chunk in iter_html(data, notes=notes):
            buffer.append(chunk)
            size += len(chunk)
            if size > 1 << 20:
                f.write("".join(buffer))
                buffer, size = [], 0
        f.write("".join(buffer))


def iter_html(data: ReportData, *, notes: Sequence[str] = ()) -> Iterator[str]:
    sections, details, gpus = build_sections(data)
    script = _static("report.js")
    style = _static("report.css")
    csp = (
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        f"script-src {_csp_hash(script)}; base-uri 'none'; form-action 'none'"
    )
    statuses = [s for s in STATUS_ORDER if data.counts.get(s)]
    n_cells = len(details)
    blob = _blob_parts(details, matrix=data.has_matrix)
    # Our own static code (package files, not data) goes in as Markup.
    template = _environment().get_template("report.html.j2")
    return template.generate(
        data=data,
        sections=sections,
        gpus=gpus,
        statuses=statuses,
        all_statuses=STATUS_ORDER,
        labels=STATUS_LABELS,
        symbols=STATUS_SYMBOLS,
        blob=blob,
        script=Markup(script),
        style=Markup(style),
        csp=csp,
        notes=[*data.notes, *notes],
        n_cells=n_cells,
    )
