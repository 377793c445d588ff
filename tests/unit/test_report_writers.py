"""The report's writers format text themselves for speed: each must write what the library
it replaced wrote (xml.etree for JUnit), whatever the records hold."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any
from xml.sax.saxutils import escape

import pandas as pd
import pyarrow as pa
import pytest

from repromatrix.config.schema import MAX_TIMEOUT_S
from repromatrix.entries import Entry, collect_entries
from repromatrix.model import Status
from repromatrix.records import Machine, Result
from repromatrix.report.blob import DetailsWriter
from repromatrix.report.details import clip, detail, display_id
from repromatrix.report.escape import script_json_text
from repromatrix.report.junit import _case, xml_text
from repromatrix.report.table import _json_numbers, _metrics_texts
from repromatrix.report.table_arrow import arrow_array

#: Text that markup, attribute normalisation or XML 1.0 could trip on.
ODD = "a<b>&c\"d'e\tf\ng\rh\x01i\x1bj\ud800k\ufffel é ✓ \U0001f600 ]]> &amp;"


def rec(status: Status, **extra: Any) -> Result:
    fields: dict[str, Any] = {
        "key": "k",
        "cell_id": "r[cpu,host,lib=1.0]",
        "repro": "r",
        "base": "host",
        "gpu": "cpu",
        "pins": {"lib": "1.0"},
        "reason": status.value,
        "finished": "2026-01-01T00:00:00+00:00",
        **extra,
    }
    return Result(status=status, **fields)


def _plausible(seconds: float) -> float:
    """A duration no cell can have (a wall clock stepped back, or set right by years) is
    a time of 0."""
    return seconds if 0 <= seconds <= 2 * MAX_TIMEOUT_S else 0.0


def _et_case(e: Entry) -> bytes:
    """The testcase as the ElementTree writer (before it was replaced) wrote it."""
    r = e.result
    case = ET.Element(
        "testcase",
        {
            "classname": xml_text(f"repromatrix.{e.repro}"),
            "name": xml_text(display_id(e)),
            "time": f"{_plausible(r.duration_s):.3f}" if r is not None else "0",
        },
    )
    if r is None:
        ET.SubElement(case, "skipped", {"message": "no result yet"})
        return bytes(ET.tostring(case, encoding="utf-8"))
    reason = xml_text(clip(r.reason, 1000))  # both ends, as every output cuts a reason
    metrics = (f"{k} = {'null (not finite)' if v is None else v}" for k, v in r.metrics.items())
    body = "\n".join(x for x in (r.reason, *metrics) if x)
    if r.status in (Status.PASSED, Status.REGRESSED) and e.flaky:  # whatever ran last
        message = f"flaky: {e.passed} passed, {e.regressed} regressed"
        ET.SubElement(case, "failure", {"message": message, "type": "flaky"}).text = xml_text(body)
    elif r.status is Status.REGRESSED:
        ET.SubElement(case, "failure", {"message": reason, "type": "regressed"}).text = xml_text(
            body
        )
    elif r.status in (Status.ERROR, Status.TIMEOUT):
        ET.SubElement(case, "error", {"message": reason, "type": r.status.value}).text = xml_text(
            body
        )
    elif r.status is Status.UNTESTABLE:
        ET.SubElement(case, "skipped", {"message": f"untestable: {reason}"})
    elif r.status is Status.NOT_RUN:
        ET.SubElement(case, "skipped", {"message": f"not run here: {reason}"})
    machine = f" (machine {r.machine.id})" if r.machine.id else ""
    where = f"[repromatrix] ran on {r.host or 'an unnamed host'}{machine}, finished {r.finished}"
    out = xml_text(where, limit=1000)
    ET.SubElement(case, "system-out").text = (
        f"{out}\n{xml_text(r.stdout_tail)}" if r.stdout_tail else out
    )
    if r.stderr_tail:
        ET.SubElement(case, "system-err").text = xml_text(r.stderr_tail)
    return bytes(ET.tostring(case, encoding="utf-8"))


def _nested(depth: int) -> Any:
    return {"d": _nested(depth - 1)} if depth else "bottom"


def _entries() -> list[Entry]:
    out: list[Entry] = []
    for status in Status:
        for extra in (
            {},
            {"reason": "", "metrics": {}},
            {"reason": ODD, "host": ODD, "finished": ODD, "stdout_tail": ODD, "stderr_tail": ODD},
            {"metrics": {ODD: 1.5, "m": None, "n": 1e-300}, "duration_s": 12345.6789},
            # Every value a float that is not zero: the rows are one %-format.
            {
                "metrics": {
                    "a%s.max_abs": 3.25,
                    "b%%.rel_err": -1e-7,
                    ODD: 123456.789,
                    "t": 5e-324,
                },
                "thresholds": {"max_abs": 0.01, "max_rel_err": 0.5, "%d": 1.0},
            },
            {"metrics": {"z": 0.0, "y": 2.5}},
            {
                "metrics": {"nan": None, "b.nan": 2.5, "c": None},
                "thresholds": {"nan": 1.0, "max_nan": 0.5},
            },
            {"metrics": {"z": -0.0, "n": None}},
            {"metrics": {"-0": 1.0, "y": 2.0}},
            {"metrics": {"z": -0.0, "y": 2.5}},
            {"metrics": {"c": 1e308, "d": 1e308, "e": 1e16}},
            {"machine": Machine(id=ODD), "reason": "x" * 5000, "stdout_tail": "y" * 20000},
            {
                "provenance": {
                    "deep": _nested(20),
                    "nan": float("nan"),
                    "inf": [float("-inf"), 1.5, 2, True, None],
                    "k" * 300: "v" * 3000,
                    "many": list(range(250)),
                    "wide": {str(i): i for i in range(210)},
                    "odd": ODD,
                    "tuple": (1, "a"),
                },
                "commits": {"lib": "a" * 40, ODD: ODD},
                "image": ODD,
                "exit_code": -11,
                "duration_s": 1e308,  # the largest a record may hold (inf is refused)
                "cell_id": "c" * 600,
                "key": ODD,
            },
            {"provenance": {"flat": "text", "n": "1"}, "duration_s": 3, "exit_code": 0},
            {"run_id": "", "host": "", "executor": "", "started": "", "finished": ""},
        ):
            r = rec(status, **{"key": f"k{len(out)}", "repro": f"r{ODD}", **extra})
            out.extend(collect_entries([r]))
    flaky = collect_entries(
        [rec(Status.PASSED, key="f"), rec(Status.REGRESSED, key="f", finished="2027")]
    )
    flaky += collect_entries(
        [rec(Status.REGRESSED, key="g"), rec(Status.PASSED, key="g", finished="2027")]
    )
    assert all(e.flaky for e in flaky)
    empty = Entry(repro=ODD, gpu="cpu", base="host", pins=(("lib", ODD),), result=None)
    return [*out, *flaky, empty]


@pytest.mark.parametrize("entry", _entries())
def test_junit_cases_are_what_elementtree_wrote(entry: Entry) -> None:
    assert _case(entry).encode("utf-8", "xmlcharrefreplace") == _et_case(entry)
    ET.fromstring(_case(entry))  # well-formed XML


#: Texts one character off the plain ones `junit` writes as they are.
ONE_OFF = ["plain", *(f"a{c}b" for c in '"&<>\t\n\r\x01\x0b\x1f\x7f\x85é\u200b\ud800'), "p" * 600]


def test_junit_names_and_texts_told_plain_at_once_are_those_escaped() -> None:
    """A testcase's name, and its time finished, are written as they are where one search
    says they need no escape: each is what the escapes give, counted apart from a name
    taken before (the same repro twice) as the full way counts it."""
    from repromatrix.report.junit import _as_text, _attr, _cdata, _name, _name_attr

    entries = [
        Entry(repro=text, gpu="cpu", base="host", pins=(("lib", "1"),), result=None)
        for text in [*ONE_OFF, *ONE_OFF]
    ]
    fast: set[str] = set()
    full: set[str] = set()
    for e in entries:
        assert _name_attr(e, fast) == _attr(_name(e, full))
    assert fast == full
    for text in ONE_OFF:
        assert _as_text(text) == _cdata(xml_text(text))


def test_a_junit_message_keeps_the_start_of_a_long_reason() -> None:
    """A failure's message (a CI page's headline for it) kept the last 1,000 characters of
    a longer reason: "[...] …, max_abs.k47 0.2 > 0.01" lost the check it names first."""
    checks = "; ".join(f"max_abs.k{i} 0.2 > 0.01" for i in range(60))
    r = rec(Status.REGRESSED, reason=f"wrong output: {checks}")
    (e,) = collect_entries([r])
    failure = ET.fromstring(_case(e)).find("failure")
    assert failure is not None
    message = failure.get("message", "")
    assert message.startswith("wrong output: max_abs.k0 0.2 > 0.01; max_abs.k1 ")
    assert message.endswith("max_abs.k59 0.2 > 0.01")
    assert "characters cut here" in message
    assert len(message) < 1100
    assert (failure.text or "").startswith(r.reason)  # the body holds the whole


def _via_pandas(values: list[Any]) -> pa.Array:
    """The column as it came out when a pandas DataFrame stood between the rows and Arrow."""
    return pa.Table.from_pandas(pd.DataFrame({"c": values}), preserve_index=False).column(0)


@pytest.mark.parametrize(
    "values",
    [
        ["a", "b"],
        ["a", None],
        [None, None],
        [1, 2],
        [1, None],
        [1.5, 2],
        [1.5, None, 3],
        [0, 7],
        [True, False],
        [],
    ],
)
def test_table_columns_have_the_types_pandas_gave_them(values: list[Any]) -> None:
    ours, theirs = arrow_array(values), _via_pandas(values)
    assert ours.type == theirs.type
    assert ours.to_pylist() == theirs.to_pylist()


def test_an_exit_code_beyond_int64_does_not_break_the_table() -> None:
    assert arrow_array([10**30, 1]).to_pylist() == [1e30, 1.0]


@pytest.mark.parametrize(
    "numbers",
    [
        {"b": 1.5, "a": 2e-300, "c": -0.0},
        {"only": 0.1},
        {"x": None, "y": 3.0},
        {'q"uote:0': 1.0, "%s": 2.0, "é": 3.0, "a:0": 4.0},
        {"nan": float("nan")},
        {"inf": float("inf"), "n": None},
        {"int": 1, "f": 1.0},
        {"big": 1e308, "bigger": 1e308},
        {},
    ],
)
def test_metrics_json_is_what_the_json_module_writes(numbers: dict[str, Any]) -> None:
    expected = json.dumps(numbers, sort_keys=True, separators=(",", ":"), allow_nan=True)
    assert _json_numbers(numbers) == expected
    assert _json_numbers(numbers) == expected  # and again, from the cached format


def test_metrics_json_of_runs_of_rows_is_what_the_json_module_writes() -> None:
    """The metrics column is made a run of rows naming the same metrics at a time, a
    metric's values at once: each row's text is still the json module's, whatever the
    run holds (a NaN, an int, a null) and wherever the names change or reorder."""
    rows: list[dict[str, Any]] = [
        {"b": 1.5, "a": 0.1},
        {"b": -0.0, "a": 2e-300},
        {"a": 1.0, "b": 2.0},  # the same names in another order: a run of its own
        {"x": None, "y": 3.0},
        {"x": 1.0, "y": None},
        {"x": float("nan"), "y": 1.0},  # its run goes row by row
        {"x": 1.0, "y": 2.0},
        {"int": 1, "f": 1.0},
        {},
        {},
        {"big": 1e308, "bigger": 1e308},
        {"big": 1e308, "bigger": -1e308},
        {'q"uote%s': 1e16, "é": 5e-324},
    ]
    expected = [json.dumps(r, sort_keys=True, separators=(",", ":"), allow_nan=True) for r in rows]
    assert _metrics_texts(rows) == expected
    assert _metrics_texts(rows[::-1]) == expected[::-1]


def _published_entries() -> list[Entry]:
    from pathlib import Path

    from repromatrix.store import ResultStore

    root = Path(__file__).resolve().parents[2] / "results" / "published"
    return collect_entries(ResultStore(root).load().results)


@pytest.mark.parametrize("entries", [_entries(), _published_entries()], ids=["odd", "published"])
def test_details_text_is_the_json_of_the_details(entries: list[Entry]) -> None:
    writer = DetailsWriter()
    for e in [*entries, *entries]:  # the second time from what was kept
        assert writer.cell(e) == script_json_text(detail(e))


def test_details_of_records_with_their_own_provenance_share_one_layout(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nested provenance is each record's own as loaded (`fastdecode` shares flat ones
    only): a layout was made and kept for every such record, its metrics' rows made again
    each time, and the provenance's text kept by the record's id of it, never asked for
    again (20,000 records shaped like a GPU host's: 140 MB in each process making
    details). The caches now keep at most `_CACHED_CHARS` characters, the same text."""
    from repromatrix.report import blob
    from repromatrix.store import ResultStore

    monkeypatch.setattr(blob, "_CACHED_CHARS", 20_000, raising=False)
    with (tmp_path / "h.jsonl").open("w") as f:
        for i in range(300):
            r = rec(
                Status.PASSED,
                key=f"k{i}",
                cell_id=f"r[cpu,host,lib={i}]",
                pins={"lib": str(i)},
                metrics={f"op.m{j}.rel_err": j * 1e-4 for j in range(40)},
                thresholds={"max_rel_err": 0.01, "atol": 0.0},
                provenance={"python": "3.12", "env": {"path": f"/cache/envs/{i}" * 40}},
            )
            f.write(json.dumps(r.record()) + "\n")
    entries = collect_entries(ResultStore(tmp_path).load().results)
    writer = DetailsWriter()
    for e in [*entries, *entries]:
        assert writer.cell(e) == script_json_text(detail(e))
    kept = sum(len(t) for t, *_ in writer._layouts.values())
    kept += sum(len(t) for _, t in writer._objects.values())
    assert len(writer._layouts) == 1
    assert kept <= 2 * 20_000


@pytest.mark.parametrize(
    "text",
    [
        *(f"a{chr(c)}b" for c in range(128)),
        "plain\ttext\r\nwith lines",
        "bidi \u202e here",
        "lone \ud800 surrogate",
        "\ufffe\uffff not characters",
        "astral \U0001f600 ok",
        "x" * 9000 + "\x01",
    ],
)
def test_xml_text_replaces_what_xml_cannot_hold(text: str) -> None:
    """Its shortcut for ASCII text gives what the full pattern gives."""
    from repromatrix.report import junit

    cut = text if len(text) <= 8000 else "[...]\n" + text[-8000:]
    assert xml_text(text) == junit._UNSAFE.sub(junit._replacement, cut)
    ET.fromstring(f"<a>{escape(xml_text(text))}</a>")


def test_library_columns_are_printable_and_apart(tmp_path: Any) -> None:
    """A library named with a lone surrogate (a JSON `\\ud800` escape in a hand-made
    record) stopped the whole report (Arrow cannot encode the column name); names with
    controls reached the CSV header as they were. Two names that print alike keep two
    columns."""
    import csv

    from repromatrix.report.table import write_tables

    records = [
        rec(Status.PASSED, key="k1", pins={"a\ud800": "1.0"}, commits={"a\ud800": "c" * 40}),
        rec(Status.PASSED, key="k2", pins={"a\udfff": "2.0"}, cell_id="r2"),
        rec(Status.PASSED, key="k3", pins={"x\x1b[31m\x00": "3.0"}, cell_id="r3"),
    ]
    csv_path, parquet_path = tmp_path / "r.csv", tmp_path / "r.parquet"
    write_tables(collect_entries(records), csv_path=csv_path, parquet_path=parquet_path)
    with csv_path.open(encoding="utf-8", newline="") as f:
        header = next(csv.reader(f))
    names = pd.read_parquet(parquet_path).columns.tolist()
    assert names == header
    libs = [n for n in header if n.startswith(("lib.", "commit."))]
    assert libs == ["lib.a?", "lib.a? (2)", "lib.x?", "commit.a?"]
    assert all(n.isprintable() for n in header)
