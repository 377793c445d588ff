"""JUnit XML: one testcase per cell, so CI systems show regressions as test failures.

regressed → <failure>, error/timeout → <error>, untestable / not run here / no result yet →
<skipped>. Written with xml.etree (which escapes markup); characters XML 1.0 cannot hold
(control characters from crash output) are replaced first.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter

from repromatrix.model import Status
from repromatrix.ranges import Entry
from repromatrix.report.build import ReportData

_INVALID_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_MAX_TEXT = 8000


def xml_text(text: str, *, limit: int = _MAX_TEXT) -> str:
    text = _INVALID_XML.sub("\ufffd", text)
    return text if len(text) <= limit else "[...]\n" + text[-limit:]


def _case(parent: ET.Element, e: Entry) -> str:
    """Add one testcase; return its outcome: passed, failure, error or skipped."""
    r = e.result
    case = ET.SubElement(
        parent,
        "testcase",
        {
            "classname": xml_text(f"repromatrix.{e.repro}"),
            "name": xml_text(e.cell_id or e.repro),
            "time": f"{r.duration_s:.3f}" if r is not None else "0",
        },
    )
    if r is None:
        ET.SubElement(case, "skipped", {"message": "no result yet"})
        return "skipped"
    reason = xml_text(r.reason, limit=1000)
    # Where and when it ran, and flakiness, ride in the testcase's attributes rather than a
    # <properties> block per case: one element less per cell keeps 100,000 cells fast.
    case.set("host", xml_text(r.host))
    case.set("finished", xml_text(r.finished))
    if e.flaky:
        case.set("flaky", "true")
    body = "\n".join(x for x in (r.reason, *(f"{k} = {v}" for k, v in r.metrics.items())) if x)
    outcome = "passed"
    match r.status:
        case Status.PASSED:
            pass
        case Status.REGRESSED:
            el = ET.SubElement(case, "failure", {"message": reason, "type": "regressed"})
            el.text = xml_text(body)
            outcome = "failure"
        case Status.ERROR | Status.TIMEOUT:
            el = ET.SubElement(case, "error", {"message": reason, "type": r.status.value})
            el.text = xml_text(body)
            outcome = "error"
        case Status.UNTESTABLE:
            ET.SubElement(case, "skipped", {"message": f"untestable: {reason}"})
            outcome = "skipped"
        case Status.NOT_RUN:
            ET.SubElement(case, "skipped", {"message": f"not run here: {reason}"})
            outcome = "skipped"
    if r.stdout_tail:
        ET.SubElement(case, "system-out").text = xml_text(r.stdout_tail)
    if r.stderr_tail:
        ET.SubElement(case, "system-err").text = xml_text(r.stderr_tail)
    return outcome


def render_junit(data: ReportData) -> bytes:
    root = ET.Element("testsuites", {"name": xml_text(data.title)})
    total: Counter[str] = Counter()
    for rr in data.repros:
        suite = ET.SubElement(root, "testsuite", {"name": xml_text(rr.name)})
        counts: Counter[str] = Counter()
        time = 0.0
        for col in range(len(rr.grid.series)):
            for label in rr.grid.rows:
                e = rr.grid.entries.get((col, label))
                if e is None:
                    continue
                counts[_case(suite, e)] += 1
                time += e.result.duration_s if e.result is not None else 0.0
        _set_counts(suite, counts)
        suite.set("time", f"{time:.3f}")
        total.update(counts)
    _set_counts(root, total)
    out: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return out


def _set_counts(el: ET.Element, counts: Counter[str]) -> None:
    el.set("tests", str(sum(counts.values())))
    el.set("failures", str(counts["failure"]))
    el.set("errors", str(counts["error"]))
    el.set("skipped", str(counts["skipped"]))
