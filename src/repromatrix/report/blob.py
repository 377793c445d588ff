"""Each cell's details as the page's data blob holds them, written as text directly.

`DetailsWriter.cell(e)` is `escape.script_json_text(details.detail(e))`, the same text (a
test compares them on odd records), made several times faster for a 100,000-cell page:
nothing is built twice (no dict to encode afterwards), and what cells repeat (statuses,
reasons, hosts, threshold matches, pins, provenance shared by records) is escaped once
per page. `details.detail` stays the readable definition of what a cell shows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from json.encoder import encode_basestring_ascii as _js
from typing import Any

from repromatrix.entries import Entry
from repromatrix.records import Result
from repromatrix.report.details import clip, detail, display_id, displayable, tail
from repromatrix.report.escape import script_json_text
from repromatrix.report.escape import script_json_text as _encode
from repromatrix.report.metrics import fmt_against, fmt_bound, fmt_num, match_threshold

#: Entries per cache at most (a page's distinct statuses, hosts, pins... are far fewer).
_CACHED = 1 << 14
#: Characters of text the cache of records' objects, and that of layouts, hold at most
#: each. Nested provenance is rarely shared by two records: its text, kept by the record's id
#: of it, is never asked for again, and 16,384 records shaped like a GPU host's kept
#: 30 MB of it (and a layout each that held it too, 110 MB) in each process making details.
_CACHED_CHARS = 1 << 22


#: The keys of `details.result_detail`, in order, as they start a field of the JSON.
_RESULT_KEYS = tuple(
    f',"{key}":'
    for key in [
        "status",
        "reason",
        "metrics",
        "thresholds",
        "provenance",
        "stdout",
        "stderr",
        "host",
        "machine",
        "started",
        "finished",
        "run_id",
        "executor",
        "exit_code",
        "duration_s",
        "image",
        "key",
        "cell_id",
        "commits",
    ]
)
#: The shortest limit of a text field: a text within it is never cut.
_SHORTEST = 100
#: No limit (tails are cut by `details.tail`).
_ANY = 1 << 62

#: The threshold of each metric of a layout, in its order (None: none bounds it), or None
#: where none bounds any (`_metric_layout`).
_Bounds = tuple[float | None, ...] | None


def _fits(text: str, limit: int) -> bool:
    """`clip(text, limit) is text`: short and ASCII (nearly always)."""
    return len(text) <= limit and text.isascii()


class DetailsWriter:
    """Writes the details of one page's cells; its caches live as long as the page."""

    def __init__(self) -> None:
        self._text: dict[str, str] = {}
        self._numbers: dict[float | None, str] = {}
        self._against: dict[tuple[float | None, float], str] = {}
        #: What records share (see `_result`) → its %-format, and the thresholds and
        #: commits it was made of (kept: their ids stay their own).
        self._layouts: dict[tuple[Any, ...], tuple[str, _Bounds, Any, Any]] = {}
        self._objects: dict[tuple[int, Any], tuple[Any, str]] = {}
        self._room = {"objects": _CACHED_CHARS, "layouts": _CACHED_CHARS}  # see `_keep`

    def cell(self, e: Entry) -> str:
        """The JSON text of `details.detail(e)`, made safe for a script element."""
        try:
            text = self._cell(e)
        except (TypeError, ValueError, AttributeError):  # anything odd: the plain way
            return script_json_text(detail(e))
        return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")

    # -- pieces -------------------------------------------------------------------------

    def _str(self, text: str, limit: int = 2000) -> str:
        """The JSON string of `clip(text, limit)`, escaped once per distinct short text."""
        found = self._text.get(text)
        if found is None:
            if not _fits(text, _SHORTEST):  # the text depends on the limit: not cached
                return _js(text if _fits(text, limit) else clip(text, limit))
            found = _js(text)
            if len(self._text) < _CACHED:
                self._text[text] = found
        return found

    def _num(self, value: float | None) -> str:
        """The JSON string of `fmt_num(value)`."""
        found = self._numbers.get(value)
        if found is None:
            found = _js(fmt_num(value))
            if len(self._numbers) < _CACHED:
                self._numbers[value] = found
        return found

    def _num_against(self, value: float | None, bound: float | None) -> str:
        """The JSON string of `fmt_against(value, bound)` (`fmt_num(value)` where no
        threshold bounds the metric: `bound` None)."""
        if bound is None:
            return self._num(value)
        found = self._against.get((value, bound))
        if found is None:
            found = _js(fmt_against(value, bound))
            if len(self._against) < _CACHED:
                self._against[value, bound] = found
        return found

    def _shared(self, obj: Any, make: Any) -> str:
        """`make(obj)` once per object (records share pins, commits and provenance)."""
        key = (id(obj), make)
        found = self._objects.get(key)
        if found is not None and found[0] is obj:
            return found[1]
        text: str = make(obj)
        if len(self._objects) < _CACHED and self._keep("objects", text):
            self._objects[key] = (obj, text)
        return text

    def _keep(self, cache: str, text: str) -> bool:
        """Whether `text` may be kept in `cache` ("objects", "layouts"): each holds at most
        `_CACHED_CHARS` characters (a budget of both was spent on provenance kept for
        nothing before the layouts, which records share, were made)."""
        self._room[cache] -= len(text)
        return self._room[cache] >= 0

    def _cell(self, e: Entry) -> str:
        parts = ['{"id":', _js(display_id(e))]
        for key, text, limit in (
            ("repro", e.repro, 300),
            ("gpu", e.gpu, 200),
            ("base", e.base, 200),
        ):
            if text:
                parts += [f',"{key}":', self._str(text, limit)]
        pins = self._shared(e.pins, self._pins)
        if pins:
            parts += [',"pins":', pins]
        if e.flaky:
            parts += [',"flaky":', _js(e.flaky_text)]
        if e.expected:
            parts.append(',"expected":true')
        if e.result is None:
            parts.append(',"status":"none","reason":"no result yet"')
        else:
            self._result(e.result, parts)
        if e.history:
            parts += [',"history":[', ",".join(map(self._older, e.history)), "]"]
        parts.append("}")
        return "".join(parts)

    def _pins(self, pins: tuple[tuple[str, str], ...]) -> str:
        shown = {clip(k, 200): clip(v, 200) for k, v in pins}
        return _encode(shown) if shown else ""

    def _result(self, r: Result, parts: list[str]) -> None:
        """The fields of `details.result_detail(r)` that are not empty, in its order.

        Records repeat all but a few fields (a run's status, reason, host, metric names and
        thresholds): those are escaped once per distinct combination (`_layout`) into a
        %-format with a slot for each field of the record's own (metric values, provenance,
        tails, times, keys). Provenance is a slot: a nested one is each record's own (see
        `fastdecode.ordinary`), and a layout holding it was made anew for every
        such record (half of their details' time, the metrics' rows made again)."""
        metrics, stdout, stderr, started = r.metrics, r.stdout_tail, r.stderr_tail, r.started
        finished, key, cell_id = r.finished, r.key, r.cell_id
        duration = round(r.duration_s, 3) if math.isfinite(r.duration_s) else None
        thresholds, provenance, commits = r.thresholds, r.provenance, r.commits
        shown = self._shared(provenance, _provenance) if provenance else ""
        shape = (
            r.status,
            r.reason,
            tuple(metrics),
            id(thresholds),
            shown != "",
            id(commits),
            r.host,
            r.machine.id,
            r.run_id,
            r.executor,
            r.exit_code,
            r.image,
            # Which of the record's own fields are there (an empty one is left out).
            (stdout != "", stderr != "", started != "", finished != "", bool(duration)),
            (key != "", cell_id != ""),
        )
        found = self._layouts.get(shape)
        if found is None or found[2] is not thresholds or found[3] is not commits:
            found = (*self._layout(r, duration, shown != ""), thresholds, commits)
            # The objects are kept: their ids stay theirs.
            if len(self._layouts) < _CACHED and self._keep("layouts", found[0]):
                self._layouts[shape] = found
        bounds = found[1]
        own = (
            list(map(self._num, metrics.values()))
            if bounds is None
            else list(map(self._num_against, metrics.values(), bounds))
        )
        if shown:
            own.append(shown)
        if stdout:
            own.append(self._str(tail(stdout), _ANY))
        if stderr:
            own.append(self._str(tail(stderr), _ANY))
        if started:
            own.append(self._str(started, 100))
        if finished:
            own.append(_js(finished if _fits(finished, 100) else clip(finished, 100)))
        if duration:
            own.append(_number(duration))
        if key:
            own.append(_js(key if _fits(key, 200) else clip(key, 200)))
        if cell_id:
            own.append(_js(cell_id if _fits(cell_id, 500) else clip(cell_id, 500)))
        parts.append(found[0] % tuple(own))

    def _layout(self, r: Result, duration: float | None, provenance: bool) -> tuple[str, _Bounds]:
        """`_result`'s fields as a %-format: those records share written out (`%` doubled),
        a `%s` for each of the record's own, in the order `_result` fills them; and the
        threshold of each metric (`_metric_layout`)."""
        rows, other, bounds = _metric_layout(tuple(r.metrics), r.thresholds)  # a format already
        string, slot = self._str, "%s"
        fields = (
            string(r.status).replace("%", "%%"),  # a StrEnum: its own text
            string(r.reason).replace("%", "%%") if r.reason else "",
            f"[{rows}]" if rows else "",
            other.replace("%", "%%"),
            slot if provenance else "",
            slot if r.stdout_tail else "",
            slot if r.stderr_tail else "",
            string(r.host, 200).replace("%", "%%") if r.host else "",
            string(r.machine.id, 200).replace("%", "%%") if r.machine.id else "",
            slot if r.started else "",
            slot if r.finished else "",
            string(r.run_id, 200).replace("%", "%%") if r.run_id else "",
            string(r.executor, 100).replace("%", "%%") if r.executor else "",
            _number(r.exit_code).replace("%", "%%") if r.exit_code else "",
            slot if duration else "",
            string(r.image, 500).replace("%", "%%") if r.image else "",
            slot if r.key else "",
            slot if r.cell_id else "",
            self._shared(r.commits, _commits).replace("%", "%%") if r.commits else "",
        )
        text = "".join(name + t for name, t in zip(_RESULT_KEYS, fields, strict=True) if t)
        return text, bounds

    def _older(self, h: Result) -> str:
        """`details.older(h)`: every field, empty or not."""
        return (
            f'{{"status":{self._str(h.status)},"reason":{self._str(h.reason, 500)},'
            f'"host":{self._str(h.host, 200)},"machine":{self._str(h.machine.id, 200)},'
            f'"finished":{self._str(h.finished, 100)},"run_id":{self._str(h.run_id, 200)},'
            f'"executor":{self._str(h.executor, 100)},"key":{self._str(h.key, 200)}}}'
        )


def _metric_layout(
    names: tuple[str, ...], thresholds: Mapping[str, float | None]
) -> tuple[str, str, _Bounds]:
    """The rows of metrics of these names as a %-format, a `%s` for each value in turn
    (`["name",%s,"threshold","key"]`, comma-separated: one formatting a record); the
    thresholds that bound none of them, as JSON ("" when none); and the threshold of each
    metric, whose value is shown on its own side of it (None: none bounds any)."""
    used: set[str] = set()
    layout = []
    bounds: list[float | None] = []
    for name in names:
        found = match_threshold(name, thresholds)
        if found is not None:
            used.add(found[0])
        bounds.append(found[1] if found is not None else None)
        bound = _js(fmt_bound(found[1])) if found is not None else '""'
        key = _js(clip(found[0], 300)) if found is not None and found[0] != name else '""'
        head, tail = f"[{_js(clip(name, 300))},", f",{bound},{key}]"
        layout.append(head.replace("%", "%%") + "%s" + tail.replace("%", "%%"))
    other = {clip(k, 300): fmt_bound(v) for k, v in thresholds.items() if k not in used}
    shown = tuple(bounds) if any(b is not None for b in bounds) else None
    return ",".join(layout), _encode(other) if other else "", shown


def _number(value: float) -> str:
    """A number as the JSON encoder writes it (its repr, for ints and finite floats)."""
    return repr(value) if type(value) is int or type(value) is float else _encode(value)


def _provenance(provenance: Mapping[str, Any]) -> str:
    shown = displayable(dict(provenance))
    return _encode(shown) if shown else ""


def _commits(commits: Mapping[str, str]) -> str:
    shown = {clip(k, 200): clip(v, 100) for k, v in commits.items()}
    return _encode(shown) if shown else ""
