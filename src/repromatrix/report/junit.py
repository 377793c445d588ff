"""JUnit XML: one testcase per cell, so CI systems show regressions as test failures.

regressed → <failure>, error/timeout → <error>, untestable / not run here / no result yet →
<skipped>. Written with xml.etree (which escapes markup); characters XML 1.0 cannot hold
(control characters from crash output) are replaced first.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from typing import BinaryIO, assert_never
from xml.sax.saxutils import quoteattr

from repromatrix.grid import Entry
from repromatrix.model import Status
from repromatrix.report.build import ReportData, ReproReport
from repromatrix.report.details import display_id

_INVALID_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_MAX_TEXT = 8000


def xml_text(text: str, *, limit: int = _MAX_TEXT) -> str:
    text = text if len(text) <= limit else "[...]\n" + text[-limit:]
    return _INVALID_XML.sub("\ufffd", text)


def _outcome(e: Entry) -> str:
    """passed, failure, error or skipped: what a CI system should show for the cell."""
    r = e.result
    if r is None:
        return "skipped"
    match r.status:
        case Status.PASSED:
            return "passed"
        case Status.REGRESSED:
            return "failure"
        case Status.ERROR | Status.TIMEOUT:
            return "error"
        case Status.UNTESTABLE | Status.NOT_RUN:
            return "skipped"
        case _:
            assert_never(r.status)


def _case(e: Entry) -> ET.Element:
    """One testcase element, built on its own so the document can be streamed."""
    r = e.result
    case = ET.Element(
        "testcase",
        {
            "classname": xml_text(f"repromatrix.{e.repro}"),
            "name": xml_text(display_id(e)),
            "time": f"{r.duration_s:.3f}" if r is not None else "0",
        },
    )
    if r is None:
        ET.SubElement(case, "skipped", {"message": "no result yet"})
        return case
    reason = xml_text(r.reason, limit=1000)
    # Where and when it ran, and flakiness, ride in the testcase's attributes rather than a
    # <properties> block per case: one element less per cell keeps 100,000 cells fast.
    case.set("host", xml_text(r.host))
    if r.machine.id:
        case.set("machine", xml_text(r.machine.id))
    case.set("finished", xml_text(r.finished))
    if e.flaky:
        case.set("flaky", "true")
        case.set("verdicts", f"{e.passed} passed, {e.regressed} regressed")
    body = "\n".join(x for x in (r.reason, *(f"{k} = {v}" for k, v in r.metrics.items())) if x)
    match r.status:
        case Status.PASSED:
            pass
        case Status.REGRESSED:
            el = ET.SubElement(case, "failure", {"message": reason, "type": "regressed"})
            el.text = xml_text(body)
        case Status.ERROR | Status.TIMEOUT:
            el = ET.SubElement(case, "error", {"message": reason, "type": r.status.value})
            el.text = xml_text(body)
        case Status.UNTESTABLE:
            ET.SubElement(case, "skipped", {"message": f"untestable: {reason}"})
        case Status.NOT_RUN:
            ET.SubElement(case, "skipped", {"message": f"not run here: {reason}"})
    if r.stdout_tail:
        ET.SubElement(case, "system-out").text = xml_text(r.stdout_tail)
    if r.stderr_tail:
        ET.SubElement(case, "system-err").text = xml_text(r.stderr_tail)
    return case


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


def write_junit(data: ReportData, out: BinaryIO) -> None:
    """Stream the document: counts first (a cheap pass), then one testcase at a time.

    Building the whole tree for 100,000 cells held several hundred MiB at once.
    """
    suites: list[tuple[ReproReport, Counter[str], float]] = []
    total: Counter[str] = Counter()
    for rr in data.repros:
        counts: Counter[str] = Counter()
        time = 0.0
        for e in _entries(rr):
            counts[_outcome(e)] += 1
            time += e.result.duration_s if e.result is not None else 0.0
        suites.append((rr, counts, time))
        total.update(counts)
    out.write(b"<?xml version='1.0' encoding='utf-8'?>\n")
    out.write(_start_tag("testsuites", {"name": data.title, **_counts(total)}))
    for rr, counts, time in suites:
        attrs = {"name": rr.name, **_counts(counts), "time": f"{time:.3f}"}
        out.write(_start_tag("testsuite", attrs))
        for e in _entries(rr):
            out.write(ET.tostring(_case(e), encoding="utf-8"))
        out.write(b"</testsuite>")
    out.write(b"</testsuites>\n")
