"""The HTML pages: self-contained files rendered by jinja2 with autoescaping on.

Data never reaches a page unescaped: text goes through autoescaping; per-cell details
travel in one `<script type="application/json">` blob (never executable; `<`, `>` and `&`
escaped as \\u003c/\\u003e/\\u0026 so no `</script>` or `<!--` can end or bend it) that the
page's script reads lazily and inserts with `textContent` only. A Content-Security-Policy
with the hash of our one script keeps the page offline and stops any injected script from
running even if an escaping bug slipped through. Status symbols are inline SVG
(`symbols.py`), so no font is needed to show them.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cache, lru_cache
from importlib import resources
from itertools import islice
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from repromatrix.bounds import MAX_METRICS
from repromatrix.report.axis_charts import no_chart_words
from repromatrix.report.build import STATUS_ORDER, ReportData
from repromatrix.report.charts import ChartLine
from repromatrix.report.compare import CHANGE_GROUPS, Comparison
from repromatrix.report.details import safe_text
from repromatrix.report.escape import safe_url, script_json
from repromatrix.report.metrics import fmt_num
from repromatrix.report.symbols import icon, sprite
from repromatrix.report.unlisted import tallies
from repromatrix.report.views import STATUS_LABELS, build_sections, iter_details
from repromatrix.safetext import printable

#: Above this many cells, sections off screen are laid out only when scrolled to (CSS
#: content-visibility): a smaller page is drawn whole, as screenshots and print expect.
BIG_PAGE_CELLS = 2000

__all__ = ["iter_html", "render_page", "safe_url", "script_json", "write_html", "write_page"]


def detail_runs(details: Iterator[str]) -> Iterator[str]:
    """Cells' details (`views.iter_details`) joined by commas a thousand at a time: a
    template loop step per cell would cost more than the JSON itself."""
    while chunk := list(islice(details, 1000)):
        yield ",".join(chunk)


def _blob_parts(runs: Iterable[str], *, matrix: str) -> Iterator[Markup]:
    """The `{"cells": [...], "matrix": ..., "max_metrics": ...}` document, piece by piece
    (never one string), from runs of cells' details made safe by `script_json_text`, each
    run one or more cells' joined by commas (`detail_runs`). `matrix`: the matrix file's
    name ("": none given)."""
    yield Markup('{"cells":[')
    sep = ""
    for run in runs:
        yield Markup(sep + run)
        sep = ","
    # max_metrics: a record holds at most this many metrics (`bounds`), and nothing in it
    # says how many more its repro wrote; the page says that the limit was reached.
    yield Markup('],"matrix":') + script_json(matrix) + Markup(f',"max_metrics":{MAX_METRICS}}}')


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("repromatrix.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_shown,
    )
    env.filters["num"] = fmt_num
    env.globals["icon"] = icon
    env.globals["safe_url"] = safe_url
    env.globals["chart_points"] = chart_points
    env.globals["no_chart_words"] = no_chart_words
    return env


def _shown(value: Any) -> Any:
    """Every value a template prints: recorded text without controls, zero-width or
    bidirectional marks (shown as "?"); our own Markup as it is."""
    if type(value) is str:
        return printable(value, newlines=True)
    return value


@cache
def _static(name: str) -> str:
    return (resources.files("repromatrix.report") / "static" / name).read_text(encoding="utf-8")


def _csp_hash(code: str) -> str:
    digest = hashlib.sha256(code.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode() + "'"


def _csp(script: str | None) -> str:
    scripts = f"script-src {_csp_hash(script)}" if script else "script-src 'none'"
    return (
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        f"{scripts}; base-uri 'none'; form-action 'none'"
    )


def write_page(path: Path, chunks: Iterable[str]) -> None:
    """Stream a page to `path` (a 100,000-cell page never exists as one string). Text that
    UTF-8 cannot hold (lone surrogates from a record) is replaced, never fatal."""
    with path.open("wb") as f:
        buffer: list[str] = []
        size = 0
        for chunk in chunks:
            buffer.append(chunk)
            size += len(chunk)
            if size > 1 << 20:
                f.write(_utf8("".join(buffer)))
                buffer, size = [], 0
        f.write(_utf8("".join(buffer)))


def _utf8(text: str) -> bytes:
    """`text` in UTF-8, lone surrogates replaced (looked for only when encoding fails)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return safe_text(text).encode("utf-8", "replace")


def chart_points(line: ChartLine) -> Markup:
    """The `<circle>` of every value of a chart line, with its tooltip (made printable and
    escaped here, as the template's `_shown` does: a template step per point cost more
    than the rest of the chart)."""
    tail = f'" r="{escape(line.radius)}" fill="{escape(line.color)}" stroke="none"><title>'
    return Markup(
        "".join(
            f"{_at(p.x, p.y) if p.x and p.y else _circle(p.x, p.y)}{tail}"
            f"{_point_title(p.title)}</title></circle>"
            for p in line.points
        )
    )


def _circle(x: float, y: float) -> str:
    return f'<circle cx="{x:.1f}" cy="{y:.1f}'


#: A page's points stand at few places (a chart's rows by its values: 337 of 95,259) and
#: repeat their titles (series and rows of one name in many charts: 2,666): each is
#: written once. (`_at` is not asked of a 0, as -0.0 == 0.0 writes otherwise.)
_at = lru_cache(maxsize=1 << 12)(_circle)


@lru_cache(maxsize=1 << 12)
def _point_title(title: str) -> Markup:
    return escape(_shown(title))


def write_html(
    path: Path,
    data: ReportData,
    *,
    notes: Sequence[str] = (),
    links: Mapping[str, str] | None = None,
    changes: Comparison | None = None,
    details: Iterable[str] | None = None,
) -> None:
    """The report page; `details`: its cells' details as `detail_runs` gives them (default:
    made here, from `data`)."""
    write_page(path, iter_html(data, notes=notes, links=links, changes=changes, details=details))


def iter_html(
    data: ReportData,
    *,
    notes: Sequence[str] = (),
    links: Mapping[str, str] | None = None,
    changes: Comparison | None = None,
    details: Iterable[str] | None = None,
) -> Iterator[str]:
    sections, gpus = build_sections(data)
    script = _static("report.js")
    statuses = [s for s in STATUS_ORDER if data.counts.get(s)]
    runs = detail_runs(iter_details(data)) if details is None else details
    blob = _blob_parts(runs, matrix=data.orders.matrix_file if data.has_matrix else "")
    # Cells whose machines disagree (each steady) are counted apart, as they are named.
    split = sum(1 for e in data.entries if e.split)
    flaky = sum(1 for e in data.entries if e.flaky) - split
    charted = [
        g
        for g in gpus
        if any(ln.gpu == g for s in sections for c in s.charts if c.chart for ln in c.chart.lines)
    ]
    # Our own static code (package files, not data) goes in as Markup.
    template = _environment().get_template("report.html.j2")
    return template.generate(
        data=data,
        sections=sections,
        gpus=gpus,
        statuses=statuses,
        all_statuses=STATUS_ORDER,
        labels=STATUS_LABELS,
        blob=blob,
        script=Markup(script),
        style=Markup(_static("report.css")),
        sprite=sprite(),
        csp=_csp(script),
        notes=[*data.notes, *notes],
        n_cells=sum(s.cells for s in sections),
        tally=tallies(data.repros, has_matrix=data.has_matrix),
        big=BIG_PAGE_CELLS,
        flaky=flaky,
        split=split,
        charted=charted,
        links=links or {},
        changes=changes,
        groups=CHANGE_GROUPS,
        # What the filters match on: a section's anchor, a GPU's place in the menu.
        repro_keys={s.rr.name: s.anchor for s in sections},
        gpu_keys={g: str(i) for i, g in enumerate(gpus)},
    )


def render_page(template_name: str, **context: Any) -> Iterator[str]:
    """A page without script (compatibility matrix, what changed): same style and symbols."""
    template = _environment().get_template(template_name)
    return template.generate(
        style=Markup(_static("report.css")),
        sprite=sprite(),
        csp=_csp(None),
        labels=STATUS_LABELS,
        **context,
    )
