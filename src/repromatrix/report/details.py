"""What a cell's details show (pure): every record of the cell, its numbers and thresholds.

Reports never fail on a field's content and never grow with it: long text is cut for
display (the store keeps it whole), deep or odd provenance is flattened, NaN/inf become
strings, and lone surrogates (which no UTF-8 file can hold) become U+FFFD.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from repromatrix.entries import Entry
from repromatrix.records import Result
from repromatrix.report.metrics import fmt_against, fmt_bound, fmt_num, match_threshold

#: Output tails longer than this are cut from the front (the end says how it ended).
MAX_TAIL_CHARS = 8000
#: Reasons and other one-line texts are cut in the middle beyond this.
MAX_TEXT_CHARS = 2000
#: Provenance deeper than this is shown as a placeholder.
MAX_DEPTH = 12
#: Provenance objects and lists show at most this many items.
MAX_ITEMS = 200


_SURROGATE = re.compile("[\ud800-\udfff]")


def safe_text(text: str) -> str:
    """`text` with lone surrogates (JSON can carry them, UTF-8 cannot) replaced."""
    return text if text.isascii() else _SURROGATE.sub("\ufffd", text)


def clip(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """One display string: at most `limit` characters, both ends kept (pip and pytest put
    the cause last), with how much was cut."""
    if len(text) <= limit and text.isascii():  # nearly always: nothing to do
        return text
    text = safe_text(text)
    if len(text) <= limit:
        return text
    head = limit // 3
    tail = limit - head
    cut = len(text) - limit
    return (
        f"{text[:head]} […{cut:,} characters cut here; the results file has them…] {text[-tail:]}"
    )


def tail(text: str) -> str:
    text = safe_text(text)
    if len(text) <= MAX_TAIL_CHARS:
        return text
    return "[... cut for the report ...]\n" + text[-MAX_TAIL_CHARS:]


def displayable(value: Any, depth: int = 0) -> Any:
    """A JSON-ready copy of provenance for display: finite numbers, cut strings, bounded
    depth and size. JSON has no NaN/inf: they become strings."""
    # Plain strings and small dicts first, tested by exact type: nearly all provenance.
    kind = type(value)
    if kind is str:
        return value if len(value) <= MAX_TEXT_CHARS and value.isascii() else clip(value)
    if kind is dict and depth < MAX_DEPTH and len(value) <= MAX_ITEMS:
        return {
            (k if type(k) is str and len(k) <= 200 and k.isascii() else clip(str(k), 200)): (
                displayable(v, depth + 1)
            )
            for k, v in value.items()
        }
    return _displayable(value, depth)


def _displayable(value: Any, depth: int) -> Any:
    """`displayable` of anything."""
    if isinstance(value, float) and not math.isfinite(value):
        return fmt_num(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str) or not isinstance(value, Mapping | list | tuple):
        return clip(str(value))
    if depth >= MAX_DEPTH:
        return "[nested too deep for the report]"
    if isinstance(value, Mapping):
        items = list(value.items())
        out = {clip(str(k), 200): displayable(v, depth + 1) for k, v in items[:MAX_ITEMS]}
        if len(items) > MAX_ITEMS:
            out["…"] = f"{len(items) - MAX_ITEMS} more entries cut for the report"
        return out
    shown = [displayable(v, depth + 1) for v in value[:MAX_ITEMS]]
    if len(value) > MAX_ITEMS:
        shown.append(f"… {len(value) - MAX_ITEMS} more items cut for the report")
    return shown


def metric_rows(r: Result) -> tuple[list[list[str]], dict[str, str]]:
    """[name, value, threshold, threshold key] per metric, and the thresholds that bound no
    metric (tolerances such as atol/rtol, or bounds of metrics the run did not reach)."""
    used: set[str] = set()
    rows = []
    for name, value in r.metrics.items():
        found = match_threshold(name, r.thresholds)
        if found is not None:
            used.add(found[0])
        rows.append(
            [
                clip(name, 300),
                fmt_against(value, found[1]) if found is not None else fmt_num(value),
                fmt_bound(found[1]) if found is not None else "",
                clip(found[0], 300) if found is not None and found[0] != name else "",
            ]
        )
    other = {clip(k, 300): fmt_bound(v) for k, v in r.thresholds.items() if k not in used}
    return rows, other


def _short(*texts: str) -> bool:
    """None of `texts` is longer than 100 characters or other than ASCII: none needs
    `clip` (one test for the many short fields of a record)."""
    return max(map(len, texts)) <= 100 and "".join(texts).isascii()


def result_detail(r: Result) -> dict[str, Any]:
    metrics, other = metric_rows(r)
    host, machine, run_id, executor = r.host, r.machine.id, r.run_id, r.executor
    started, finished, key, cell_id = r.started, r.finished, r.key, r.cell_id
    if not _short(host, machine, run_id, executor, started, finished, key, cell_id):
        host, machine, run_id = clip(host, 200), clip(machine, 200), clip(run_id, 200)
        executor, started, finished = clip(executor, 100), clip(started, 100), clip(finished, 100)
        key, cell_id = clip(key, 200), clip(cell_id, 500)
    return {
        "status": r.status.value,
        "reason": clip(r.reason),
        "metrics": metrics,
        "thresholds": other,
        "provenance": displayable(dict(r.provenance)),
        "stdout": tail(r.stdout_tail),
        "stderr": tail(r.stderr_tail),
        "host": host,
        "machine": machine,
        "started": started,
        "finished": finished,
        "run_id": run_id,
        "executor": executor,
        "exit_code": r.exit_code,
        "duration_s": round(r.duration_s, 3) if math.isfinite(r.duration_s) else None,
        "image": clip(r.image, 500) if r.image else None,
        "key": key,
        "cell_id": cell_id,
        "commits": {clip(k, 200): clip(v, 100) for k, v in r.commits.items()},
    }


def older(r: Result) -> dict[str, Any]:
    return {
        "status": r.status.value,
        "reason": clip(r.reason, 500),
        "host": clip(r.host, 200),
        "machine": clip(r.machine.id, 200),
        "finished": clip(r.finished, 100),
        "run_id": clip(r.run_id, 200),
        "executor": clip(r.executor, 100),
        "key": clip(r.key, 200),
    }


#: A cell's name is cut in the middle beyond this many characters.
MAX_ID_CHARS = 500


def whole_id(e: Entry) -> str:
    """The cell as the report names it, revisions by their one label, however long."""
    return f"{e.repro}[{e.gpu},{e.base}{_pins_text(e.pins)}]"


@lru_cache(maxsize=1 << 14)
def _pins_text(pins: tuple[tuple[str, str], ...]) -> str:
    """`,lib=label` of each pin: made once per set of revisions (the pages and junit.xml
    name each of 100,000 cells, whose entries share a few thousand pins)."""
    return "".join(f",{lib}={label}" for lib, label in pins)


def display_id(e: Entry) -> str:
    """`whole_id`, cut for display."""
    return clip(whole_id(e), MAX_ID_CHARS)


def detail(e: Entry) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": display_id(e),
        "repro": clip(e.repro, 300),
        "gpu": clip(e.gpu, 200),
        "base": clip(e.base, 200),
        "pins": {clip(k, 200): clip(v, 200) for k, v in e.pins},
        "flaky": e.flaky_text,
        "expected": e.expected,
    }
    if e.result is None:
        out.update(status="none", reason="no result yet")
    else:
        out.update(result_detail(e.result))
    if e.history:
        out["history"] = [older(h) for h in e.history]
    # Empty fields are left out: the page treats a missing field as empty, and 100,000
    # cells of `"stdout":""` add up. (Like `v not in ("", None, False, {}, [])`: 0 and
    # 0.0 equal False and go too.)
    return {k: v for k, v in out.items() if v}
