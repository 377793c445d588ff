"""JUnit XML: one testcase per cell, so CI systems show regressions as test failures.

regressed → <failure>, error/timeout → <error>, untestable / not run here / no result yet →
<skipped>. Streamed case by case as text, escaped as xml.etree escapes it (markup, quotes,
and line breaks in attributes); characters XML 1.0 cannot hold (control characters from
crash output) are replaced first.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterator
from functools import lru_cache
from typing import BinaryIO, assert_never
from xml.sax.saxutils import quoteattr

from repromatrix.config.schema import MAX_TIMEOUT_S
from repromatrix.entries import Entry
from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.report.build import ReportData, ReproReport
from repromatrix.report.details import MAX_ID_CHARS, clip, whole_id
from repromatrix.report.metrics import NOT_FINITE

#: What XML 1.0 cannot hold; the bidirectional controls that make a CI page show a name
#: in another order than it is; and the invisible ones (zero-width space and joiners, word
#: joiner, byte-order mark) that make `r` and `r\u200b` two suites a CI page shows alike.
#: The other outputs show those as "?" too (`safetext.printable`).
_UNSAFE = re.compile(
    "[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
    "|[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)
_SHOWN_AS_QUESTION_MARK = frozenset(
    "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\ufeff"
)
_MAX_TEXT = 8000
#: A failure's or error's message (what a CI page shows as its headline) holds this much
#: of the reason; its body holds the whole.
_MESSAGE_CHARS = 1000


def _replacement(match: re.Match[str]) -> str:
    return "?" if match.group() in _SHOWN_AS_QUESTION_MARK else "\ufffd"


#: What `_UNSAFE` can match in ASCII text: the controls XML 1.0 has no place for.
_ASCII_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


#: What makes ASCII text within `_MAX_TEXT` other than it is as element text (`_cdata`
#: of `xml_text`): XML 1.0's controls and markup; and as an attribute value (`_attr`):
#: quotes and every control, tabs and line breaks too. One search instead of a few.
_NOT_AS_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f&<>]")
_NOT_AS_ATTR = re.compile('[\x00-\x1f"&<>]')


def _as_text(text: str) -> str:
    """`_cdata(xml_text(text))`, told at once for short ASCII text (nearly always)."""
    if len(text) <= _MAX_TEXT and text.isascii() and _NOT_AS_TEXT.search(text) is None:
        return text
    return _cdata(xml_text(text))


def xml_text(text: str, *, limit: int = _MAX_TEXT) -> str:
    text = text if len(text) <= limit else "[...]\n" + text[-limit:]
    # Nearly always ASCII with nothing to replace, which this simpler pattern finds about
    # five times faster (a failure's body lists every metric: kilobytes a cell).
    if text.isascii() and _ASCII_UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(_replacement, text)


#: No cell runs longer than the longest timeout matrix.yaml takes, with as long again
#: for building its environment.
_MAX_SECONDS = 2 * MAX_TIMEOUT_S


def _seconds(duration: float) -> float:
    """A record's duration as a testcase's time: 0 where it cannot be true. Durations are
    wall-clock time, so a clock stepped back during a cell made one negative and a clock
    set right by years a huge one; CI pages show `time="-5.000"` as it is and some refuse
    the file (a time is digits and a point), and a suite's time is their sum."""
    return duration if 0.0 <= duration <= _MAX_SECONDS else 0.0  # NaN too


def _outcome(e: Entry) -> str:
    """passed, failure, error or skipped: what a CI system should show for the cell."""
    r = e.result
    if r is None:
        return "skipped"
    match r.status:
        case Status.PASSED:
            return "failure" if e.flaky else "passed"  # as `_verdict` writes it
        case Status.REGRESSED:
            return "failure"
        case Status.ERROR | Status.TIMEOUT:
            return "error"
        case Status.UNTESTABLE | Status.NOT_RUN:
            return "skipped"
        case _:
            assert_never(r.status)


def _attr(text: str) -> str:
    """An attribute value, escaped as xml.etree escapes it (markup, quotes, and the line
    breaks and tabs that attribute normalisation would otherwise turn into spaces)."""
    text = _cdata(text)
    if '"' in text:
        text = text.replace('"', "&quot;")
    if "\r" in text:
        text = text.replace("\r", "&#13;")
    if "\n" in text:
        text = text.replace("\n", "&#10;")
    if "\t" in text:
        text = text.replace("\t", "&#09;")
    return text


def _cdata(text: str) -> str:
    """Element text, escaped as xml.etree escapes it."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def _element(tag: str, attrs: str, text: str = "") -> str:
    """`<tag attrs>text</tag>`, or `<tag attrs />` without text (as xml.etree writes it);
    `attrs` is already escaped, `text` (already made XML-safe by `xml_text`) is not."""
    return f"<{tag}{attrs}>{_cdata(text)}</{tag}>" if text else f"<{tag}{attrs} />"


def _name_attr(e: Entry, taken: set[str]) -> str:
    """`_attr(_name(e, taken))`: the name as it is where it is short ASCII that needs no
    escape and no count (nearly always, told by one search)."""
    whole = whole_id(e)
    if (
        len(whole) <= MAX_ID_CHARS
        and whole.isascii()
        and _NOT_AS_ATTR.search(whole) is None
        and whole not in taken
    ):
        taken.add(whole)
        return whole
    return _attr(_name(e, taken, whole))


def _name(e: Entry, taken: set[str], whole: str = "") -> str:
    """The testcase's name: the cell's, and no other testcase's in the file, as CI pages
    merge the testcases of one name into one test. A name cut for length ends with a hash
    of the whole one (the cells' long labels may differ only where it was cut), which
    keeps it the cell's from one report to the next; names that still read alike (`1?`
    and `1\u200b`, both shown as `1?`) are counted. `whole`: `whole_id(e)`, if made."""
    whole = whole or whole_id(e)
    name = xml_text(clip(whole, MAX_ID_CHARS))  # display_id's, made from `whole` once
    if len(whole) > MAX_ID_CHARS:
        digest = hashlib.sha256(whole.encode("utf-8", "surrogatepass")).hexdigest()[:12]
        name += f" [{digest}]"
    unique, count = name, 1
    while unique in taken:
        count += 1
        unique = f"{name} ({count})"
    taken.add(unique)
    return unique


def _case(e: Entry, taken: set[str] | None = None, apart: str = "") -> str:
    """One testcase element as text (formatting and escaping a string per case is several
    times faster than an ElementTree element per case, for the same bytes); `taken`: the
    names of the cases written so far; `apart`: what starts the message of a cell whose
    repro matrix.yaml does not list."""
    r = e.result
    classname = _classname(e.repro)
    name = _name_attr(e, set() if taken is None else taken)
    if r is None:
        return (
            f'<testcase classname="{classname}" name="{name}" time="0">'
            '<skipped message="no result yet" /></testcase>'
        )
    # Jenkins' xunit plugin validates the file against its junit-10.xsd and rejects it
    # whole on an attribute the schema lacks: a testcase holds only name, classname and
    # time, and no <properties>. So where and when it ran is the first line of its
    # system-out, and flakiness is said by the failure's message.
    head = f' classname="{classname}" name="{name}" time="{_seconds(r.duration_s):.3f}"'
    # A pass (most cells) says nothing more: its reason is not escaped for nothing.
    verdict = "" if r.status is Status.PASSED and not e.flaky else _verdict(e, r, apart)
    err = _short_element("system-err", r.stderr_tail) if r.stderr_tail else ""
    return f"<testcase{head}>{verdict}{_out_element(r)}{err}</testcase>"


@lru_cache(maxsize=1 << 12)
def _classname(repro: str) -> str:
    return _short_attr(f"repromatrix.{repro}")


def _out_element(r: Result) -> str:
    """`_element("system-out", "", _out(r))`, its pieces made safe one by one: the line of
    where it ran once per host and machine, the output once per short one (cells repeat
    them). Both escapes replace character by character, so pieces join as the whole."""
    host, machine, finished, stdout = r.host, r.machine.id, r.finished, r.stdout_tail
    if len(host) + len(machine) + len(finished) > 900:  # `_out` may cut the line
        return _element("system-out", "", _out(r))
    where = _where(host, machine) + _as_text(finished)
    if not stdout:
        return f"<system-out>{where}</system-out>"
    if len(stdout) <= 200:
        return f"<system-out>{where}{_cached_text(stdout)}</system-out>"
    return f"<system-out>{where}\n{_cdata(xml_text(stdout))}</system-out>"


@lru_cache(maxsize=1 << 12)
def _where(host: str, machine: str) -> str:
    """`_out`'s first line up to the time, made XML-safe and escaped."""
    machine = f" (machine {machine})" if machine else ""
    return _cdata(xml_text(f"[repromatrix] ran on {host or 'an unnamed host'}{machine}, finished "))


@lru_cache(maxsize=1 << 12)
def _cached_text(stdout: str) -> str:
    """A short output as `_out_element` adds it, made once per text."""
    return "\n" + _cdata(xml_text(stdout))


def _out(r: Result) -> str:
    """A case's system-out: a line of where and when it ran, then the repro's output."""
    machine = f" (machine {r.machine.id})" if r.machine.id else ""
    where = f"[repromatrix] ran on {r.host or 'an unnamed host'}{machine}, finished {r.finished}"
    text = xml_text(where, limit=1000)
    if r.stdout_tail:
        text += "\n" + xml_text(r.stdout_tail)
    return text


def _verdict(e: Entry, r: Result, apart: str = "") -> str:
    """The element that says how the case ended ("" for a pass), its message after
    `apart` (already escaped)."""
    # Both ends, as every other output cuts a reason: a message of its last 1,000
    # characters ("[...] y, z") lost the failed check that a reason names first.
    reason = _short_attr(clip(r.reason, _MESSAGE_CHARS))
    match r.status:
        case Status.PASSED | Status.REGRESSED if e.flaky:
            # Its records of the same definition disagree: a CI gate must not pass over a
            # regression that shows one time in a few, nor call it steady when its newest
            # record is the regression (every other output says flaky, with the counts).
            flaky = _short_attr(e.flaky_text)
            kind = "machines-disagree" if e.split else "flaky"
            return _element("failure", f' message="{apart}{flaky}" type="{kind}"', _body(r))
        case Status.REGRESSED:
            return _element("failure", f' message="{apart}{reason}" type="regressed"', _body(r))
        case Status.ERROR | Status.TIMEOUT:
            kind = r.status.value
            return _element("error", f' message="{apart}{reason}" type="{kind}"', _body(r))
        case Status.UNTESTABLE:
            return _element("skipped", f' message="{apart}untestable: {reason}"')
        case Status.NOT_RUN:
            return _element("skipped", f' message="{apart}not run here: {reason}"')
    return ""


def _short_attr(text: str, limit: int = _MAX_TEXT) -> str:
    """`_attr(xml_text(text, limit=limit))`, made once per short text: cells repeat their
    hosts, reasons, repro names and the times of a run."""
    return _cached_attr(text, limit) if len(text) <= 200 else _attr(xml_text(text, limit=limit))


@lru_cache(maxsize=1 << 14)
def _cached_attr(text: str, limit: int) -> str:
    return _attr(xml_text(text, limit=limit))


def _short_element(tag: str, text: str) -> str:
    """`<tag>text</tag>` of an output tail, made once per short one (cells repeat them)."""
    return _cached_element(tag, text) if len(text) <= 200 else _element(tag, "", xml_text(text))


@lru_cache(maxsize=1 << 12)
def _cached_element(tag: str, text: str) -> str:
    return _element(tag, "", xml_text(text))


def _body(r: Result) -> str:
    """The text of a failure or error: the reason, then every metric (a metric kept as
    null, as the record and results.csv hold it, and "not finite" as the other formats say
    it: NaN, inf, or no finite value at all; as Python prints it, "None" read as a metric
    the repro never measured)."""
    numbers = r.metrics
    if None in numbers.values():
        lines = [f"{k} = {f'null ({NOT_FINITE})' if v is None else v}" for k, v in numbers.items()]
    else:  # nearly always: no test per value
        lines = [f"{k} = {v}" for k, v in numbers.items()]
    if r.reason:
        lines.insert(0, r.reason)
    return xml_text("\n".join(lines))


def _entries(rr: ReproReport) -> Iterator[Entry]:
    for col in range(len(rr.grid.series)):
        for label in rr.grid.rows:
            e = rr.grid.entries.get((col, label))
            if e is not None:
                yield e


def _start_tag(name: str, attrs: dict[str, str]) -> bytes:
    text = " ".join(f"{k}={quoteattr(xml_text(v))}" for k, v in attrs.items())
    return f"<{name} {text}>".encode()


def _counts(counts: Counter[str]) -> dict[str, str]:
    return {
        "tests": str(sum(counts.values())),
        "failures": str(counts["failure"]),
        "errors": str(counts["error"]),
        "skipped": str(counts["skipped"]),
    }


#: A testsuite to write: its name as shown, what starts its cases' messages (a repro
#: matrix.yaml does not list), and its cells in order.
Suite = tuple[str, str, list[Entry]]


def junit_suites(data: ReportData) -> list[Suite]:
    """The testsuites of `data`, one per repro, in the report's order."""
    suites: list[Suite] = []
    for rr in data.repros:
        # A renamed repro's old records (or `bisect --test`'s): its failures read as the
        # matrix's own on a CI page, named as summary.md names them.
        unlisted = not rr.listed and data.has_matrix
        name = f"{rr.name} (not in matrix)" if unlisted else rr.name
        apart = f"not in {data.orders.matrix_file}: " if unlisted else ""  # the file given
        suites.append((name, apart, list(_entries(rr))))
    return suites


def write_junit(data: ReportData, out: BinaryIO) -> None:
    """Stream the document of `data` (see `write_suites`)."""
    write_suites(junit_suites(data), data.title, out)


def write_suites(suites: list[Suite], title: str, out: BinaryIO) -> None:
    """Stream the document: counts first (a cheap pass), then one testcase at a time.

    Building the whole tree for 100,000 cells held several hundred MiB at once.
    """
    counted: list[tuple[Counter[str], float]] = []
    total: Counter[str] = Counter()
    for _, _, entries in suites:
        counts = Counter(map(_outcome, entries))
        time = 0.0
        for e in entries:
            time += _seconds(e.result.duration_s) if e.result is not None else 0.0
        counted.append((counts, time))
        total.update(counts)
    out.write(b"<?xml version='1.0' encoding='utf-8'?>\n")
    # junit-10.xsd has no `skipped` on <testsuites> (each <testsuite> says it).
    totals = {k: v for k, v in _counts(total).items() if k != "skipped"}
    out.write(_start_tag("testsuites", {"name": title, **totals}))
    # One set for the file, not per suite: names start with the repro's, so they differ
    # across suites unless two repros' names read alike (`r?`, `r\u200b`), whose suites
    # and classnames then read alike too.
    taken: set[str] = set()
    for (name, apart, entries), (counts, time) in zip(suites, counted, strict=True):
        attrs = {"name": name, **_counts(counts), "time": f"{time:.3f}"}
        out.write(_start_tag("testsuite", attrs))
        chunk: list[str] = []
        for e in entries:
            chunk.append(_case(e, taken, apart))
            if len(chunk) >= 1000:
                out.write("".join(chunk).encode("utf-8", "xmlcharrefreplace"))
                chunk = []
        out.write("".join(chunk).encode("utf-8", "xmlcharrefreplace"))
        out.write(b"</testsuite>")
    out.write(b"</testsuites>\n")
