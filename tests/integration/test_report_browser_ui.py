"""The HTML report in Chromium as people use it: long labels, keyboard, Back, small screens.

The `page` fixture (one Chromium page per module) is in tests/chromium_page.py.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.report import write_report
from repromatrix.safetext import printable

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def _record(version: str, status: Status, *, gpu: str = "H100", **extra: Any) -> Result:
    return Result(
        key=f"{gpu}-{version}", cell_id=f"r[{gpu},host,lib={version}]", repro="r", base="host",
        gpu=gpu, pins={"lib": version}, status=status, reason=str(status),
        finished="2026-01-01T00:00:00+00:00", **extra,
    )  # fmt: skip


def _page(tmp_path: Path, records: Sequence[Result], **kwargs: Any) -> str:
    return write_report(results=list(records), out_dir=tmp_path, **kwargs)["html"].as_uri()


def test_a_long_revision_label_is_cut_and_cells_stay_clickable(page: Page, tmp_path: Path) -> None:
    long = "v" + "A" * 900
    records = [
        _record(v, st, gpu=g)
        for v, st in (("1.0", Status.PASSED), (long, Status.REGRESSED))
        for g in ("H100", "H200")
    ]
    page.goto(_page(tmp_path, records))
    assert page.evaluate("document.documentElement.scrollWidth") <= 1400
    header = page.locator("table.grid tbody th", has_text="vAAA")
    assert header.get_attribute("title") == long
    assert header.bounding_box()["width"] < 400  # type: ignore[index]
    for cell in page.locator("table.grid td.c").all():
        cell.scroll_into_view_if_needed()
        box = cell.bounding_box()
        assert box is not None
        hit = page.evaluate(
            "([x, y]) => document.elementFromPoint(x, y).closest('td')?.dataset.i",
            [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2],
        )
        assert hit == cell.get_attribute("data-i")


def test_filters_restored_by_back_are_applied(page: Page, tmp_path: Path) -> None:
    records = [
        _record("1.0", Status.PASSED),
        _record("2.0", Status.REGRESSED),
        _record("1.0", Status.PASSED, gpu="H200"),
    ]
    page.goto(_page(tmp_path, records))
    page.select_option("#f-status", "regressed")
    shown = page.locator("#f-count").inner_text()
    assert page.locator("table.grid tbody tr:visible").count() == 1
    page.locator("header .pages a", has_text="Compatibility matrix").click()
    page.wait_for_load_state()
    page.go_back()
    page.wait_for_load_state()
    page.wait_for_function(
        "() => document.getElementById('f-status').value === 'regressed'", timeout=5000
    )
    # Give a late apply() the time it would take (the page runs it on pageshow).
    page.wait_for_function(
        "(shown) => document.getElementById('f-count').textContent === shown",
        arg=shown,
        timeout=5000,
    )
    assert page.locator("table.grid tbody tr:visible").count() == 1
    assert page.get_attribute("body", "data-fs") == "regressed"


def test_filters_keep_the_changes_that_match_them(page: Page, tmp_path: Path) -> None:
    now = [
        _record("1.0", Status.REGRESSED),
        _record("1.0", Status.REGRESSED, gpu="H200"),
        _record("2.0", Status.PASSED),
    ]
    before = [r.model_copy(update={"status": Status.PASSED}) for r in now]
    page.goto(_page(tmp_path, now, compare=before, compare_label="old"))
    changes = page.locator("#changes tr.change")
    assert changes.count() == 2
    h100 = page.locator("#f-gpu option", has_text="H100").get_attribute("value")
    assert h100 is not None
    page.select_option("#f-gpu", h100)
    shown = page.locator("#changes tr.change:visible")
    assert shown.count() == 1
    assert "H100" in shown.inner_text()
    page.select_option("#f-gpu", "")
    page.select_option("#f-status", "regressed")  # a change is shown whatever its status
    assert page.locator("#changes tr.change:visible").count() == 2
    page.select_option("#f-repro", "r")
    assert page.locator("#changes tr.change:visible").count() == 2


def test_cell_details_open_and_close_from_the_keyboard(page: Page, tmp_path: Path) -> None:
    records = [_record("1.0", Status.PASSED), _record("2.0", Status.REGRESSED)]
    page.goto(_page(tmp_path, records))
    detail = page.locator("section.repro .detail")
    page.keyboard.press("Tab")
    for _ in range(20):  # past the menus and links, to the first cell
        if page.evaluate("document.activeElement.matches('td.c')"):
            break
        page.keyboard.press("Tab")
    first = page.evaluate("document.activeElement.dataset.i")
    page.keyboard.press("Tab")
    second = page.evaluate("document.activeElement.dataset.i")
    assert (first, second) == ("0", "1")
    page.keyboard.press("Enter")
    assert detail.is_visible()
    assert "regressed" in detail.inner_text()
    page.keyboard.press("Escape")
    assert detail.is_hidden()
    assert page.evaluate("document.activeElement.dataset.i") == "1"
    page.keyboard.press("Shift+Tab")
    page.keyboard.press(" ")
    assert "passed" in detail.inner_text()
    detail.get_by_role("button", name="Close").click()
    assert detail.is_hidden()
    assert page.evaluate("document.activeElement.dataset.i") == "0"


def test_a_link_to_a_filtered_out_cell_clears_the_filters(page: Page, tmp_path: Path) -> None:
    other = _record("1.0", Status.PASSED).model_copy(
        update={"repro": "q", "key": "q", "cell_id": "q[H100,host,lib=1.0]"}
    )
    page.goto(_page(tmp_path, [_record("1.0", Status.REGRESSED), other]))
    page.select_option("#f-repro", "q")
    assert page.locator('section.repro[data-repro="r"]').is_hidden()
    cell = page.locator('section.repro[data-repro="r"] td.c').first
    page.evaluate("(i) => { location.hash = '#c' + i; }", cell.get_attribute("data-i"))
    detail = page.locator('section.repro[data-repro="r"] .detail')
    detail.wait_for(state="visible", timeout=5000)
    assert cell.is_visible()
    assert page.input_value("#f-repro") == ""


def test_a_long_unbroken_reason_wraps_inside_the_details(page: Page, tmp_path: Path) -> None:
    record = _record("1.0", Status.REGRESSED).model_copy(update={"reason": "W" * 3000})
    page.goto(_page(tmp_path, [record]))
    page.locator("table.grid td.c").first.click()
    detail = page.locator("section.repro .detail")
    reason = detail.locator("p.reason")
    assert "W" * 100 in reason.inner_text()
    widths = detail.evaluate("d => [d.scrollWidth, d.clientWidth]")
    assert widths[0] <= widths[1], widths


def test_a_phone_wide_page_scrolls_wide_tables_in_their_own_box(page: Page, tmp_path: Path) -> None:
    records = [
        _record(f"{i}.0", st, gpu=g, metrics={"rel_err.x": 0.5 if st is Status.REGRESSED else 1e-3},
                thresholds={"max_rel_err": 0.01})
        for i, st in enumerate([Status.PASSED] * 8 + [Status.REGRESSED] * 8)
        for g in ("H100", "H200")
    ]  # fmt: skip
    url = _page(tmp_path, records)
    page.set_viewport_size({"width": 375, "height": 800})
    try:
        page.goto(url)
        assert page.locator("figure.chart svg.plot").count() == 1
        chart = page.locator("figure.chart svg.plot").bounding_box()
        assert chart is not None
        assert chart["x"] + chart["width"] <= 375
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
    finally:
        page.set_viewport_size({"width": 1400, "height": 1000})


def test_the_page_script_hides_the_characters_the_server_hides(page: Page, tmp_path: Path) -> None:
    """The script's HIDDEN pattern lacked U+061C (Arabic letter mark), which the server's
    `printable` replaces: both now hide the same characters (compared over the Basic
    Multilingual Plane's characters that Python's Unicode version assigns)."""
    script = (resources.files("repromatrix.report") / "static" / "report.js").read_text()
    found = re.search(r"var HIDDEN = /(.+)/(\w*);", script)
    assert found is not None
    page.goto(_page(tmp_path, [_record("1.0", Status.PASSED)]))
    by_script: list[int] = page.evaluate(
        """([source, flags]) => {
             const re = new RegExp(source, flags.replace("g", ""));
             const out = [];
             for (let cp = 0; cp < 0x10000; cp++)
               if ((cp < 0xd800 || cp > 0xdfff) && re.test(String.fromCharCode(cp))) out.push(cp);
             return out;
           }""",
        [found.group(1), found.group(2)],
    )
    assigned = [
        cp
        for cp in range(0x10000)
        if not 0xD800 <= cp <= 0xDFFF and unicodedata.category(chr(cp)) != "Cn"
    ]
    by_server = {cp for cp in assigned if printable(chr(cp), newlines=True) != chr(cp)}
    assert 0x061C in by_server
    assert set(by_script) & set(assigned) == by_server


def test_shared_summary_lines_and_flaky_details_say_their_counts_once(
    page: Page, tmp_path: Path
) -> None:
    flaky = [
        _record("2.0", st).model_copy(update={"finished": f"2026-01-0{i + 1}T00:00:00+00:00"})
        for i, st in enumerate([Status.PASSED, Status.REGRESSED, Status.PASSED])
    ]
    records = [_record(v, Status.PASSED, gpu=g) for v in ("1.0", "2.0") for g in ("H200", "L4")]
    page.goto(_page(tmp_path, [*records, *flaky]))
    findings = page.locator("section.repro ul.findings").inner_text()
    assert "H200, L4 (each): not reproduced (2 of 2 passed)" in findings
    page.locator("table.grid td.c.fl").click()
    text = page.locator("section.repro .detail").inner_text()
    assert "disagree (2 passed, 1 regressed)" in text
    assert text.count("2 passed, 1 regressed") == 2  # the title line and this sentence
    assert "Flaky (flaky:" not in text


def test_the_gpu_filter_hides_the_chart_lines_of_other_gpus(page: Page, tmp_path: Path) -> None:
    records = [
        _record(v, st, gpu=g, metrics={"rel_err.x": 0.5 if st is Status.REGRESSED else 1e-3},
                thresholds={"max_rel_err": 0.01})
        for v, st in (("1.0", Status.PASSED), ("2.0", Status.REGRESSED))
        for g in ("H100", "H200")
    ]  # fmt: skip
    page.goto(_page(tmp_path, records))
    lines = page.locator("figure.chart g.line")
    assert lines.count() == 2
    h100 = page.locator("#f-gpu option", has_text="H100").get_attribute("value")
    assert h100 is not None
    page.select_option("#f-gpu", h100)
    assert page.locator('figure.chart g.line[data-gpu="H100"]').is_visible()
    assert page.locator('figure.chart g.line[data-gpu="H200"]').is_hidden()
    page.select_option("#f-gpu", "")
    assert page.locator('figure.chart g.line[data-gpu="H200"]').is_visible()


def test_details_say_when_a_record_reached_the_metrics_limit(page: Page, tmp_path: Path) -> None:
    many = {f"m.{i}": float(i) for i in range(3000)}
    page.goto(_page(tmp_path, [_record("1.0", Status.PASSED, metrics=many)]))
    page.locator("table.grid td.c").first.click()
    detail = page.locator("section.repro .detail")
    assert detail.locator("table tr").count() == 1 + 1000  # the record holds the first 1,000
    assert "keeps at most 1,000 metrics" in detail.inner_text()


def test_filters_tell_apart_names_that_print_alike(page: Page, tmp_path: Path) -> None:
    """Names are shown with controls and zero-width marks as "?", so `r\\x00`, `r\\x01` and
    `r\\u200b` all read `r?`; the filters matched on that text, and choosing one showed all
    three sections (and every chart line of the three GPUs `g?`). They now match on each
    section's and GPU's place in the menus."""
    names = ["r\x00", "r\x01", "r\u200b"]
    records = [
        Result(
            key=f"k{i}{v}", cell_id=f"c{i}[{v}]", repro=name, base="host", gpu=f"g{name[1:]}",
            pins={"lib": v}, status=st, reason=str(st), finished="2026-01-01T00:00:00+00:00",
            metrics={"rel_err.x": 0.5 if st is Status.REGRESSED else 1e-3},
            thresholds={"max_rel_err": 0.01},
        )
        for i, name in enumerate(names)
        for v, st in (("1.0", Status.PASSED), ("2.0", Status.REGRESSED))
    ]  # fmt: skip
    # The repros' charts and grids, and "what changed" rows (all three are new regressions).
    page.goto(_page(tmp_path, records, compare=[]))
    values = page.eval_on_selector_all("#f-repro option", "os => os.map(o => o.value)")
    assert len(set(values)) == 4  # "all" and one per repro
    for n, value in enumerate(values[1:]):
        page.select_option("#f-repro", value)
        assert page.locator("section.repro:visible").count() == 1
        assert page.locator("table.summary:not(.changes) tbody tr:visible").count() == 1
        assert page.locator("tr.change:visible").count() == 1
        assert page.locator("section.repro:visible h2").inner_text() == printable(names[n])
    page.select_option("#f-repro", values[0])
    gpus = page.eval_on_selector_all("#f-gpu option", "os => os.map(o => o.value)")
    for value in gpus[1:]:
        page.select_option("#f-gpu", value)
        assert page.locator("figure.chart g.line:visible").count() == 1
        assert page.locator("tr.change:visible").count() == 1


def test_long_names_without_spaces_do_not_widen_the_page(page: Page, tmp_path: Path) -> None:
    """A repro and a GPU named with 900 characters and no space (a name is never cut: it
    identifies records) made index.html 13,000 pixels wide: the filter menus are as wide
    as their longest option and the chart legend's items never wrapped."""
    long_repro, long_gpu = "R" * 900, "G" * 900
    records = [
        Result(
            key=f"k{g}{v}", cell_id=f"c[{g},{v}]", repro=long_repro, base="host", gpu=g,
            pins={"lib": v}, status=st, reason=str(st), finished="2026-01-01T00:00:00+00:00",
            metrics={"rel_err.x": 0.5 if st is Status.REGRESSED else 1e-3},
            thresholds={"max_rel_err": 0.01},
        )
        for g in (long_gpu, "H100")
        for v, st in (("1.0", Status.PASSED), ("2.0", Status.REGRESSED))
    ]  # fmt: skip
    url = _page(tmp_path, records)
    page.goto(url)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1400
    page.select_option("#f-repro", long_repro)
    assert page.locator("section.repro:visible").count() == 1
    page.goto(url.replace("index.html", "compat.html"))
    assert page.evaluate("document.documentElement.scrollWidth") <= 1400


def test_cells_whose_machines_disagree_are_filtered_and_told_apart_from_flaky_ones(
    page: Page, tmp_path: Path
) -> None:
    """Their details read "The records of this cell disagree (machines disagree: m-a
    passed 2, m-b regressed 2)", as if flaky; the status filter "flaky" is theirs no more."""
    from repromatrix.records import Machine

    def on(version: str, status: Status, machine: str, day: int) -> Result:
        return _record(version, status, machine=Machine(id=machine)).model_copy(
            update={"finished": f"2026-01-0{day}T00:00:00+00:00"}
        )

    split = [on("2.0", st, m, d) for m, st in (("m-a", Status.PASSED), ("m-b", Status.REGRESSED))
             for d in (1, 2)]  # fmt: skip
    flaky = [on("3.0", Status.PASSED, "m-a", 1), on("3.0", Status.REGRESSED, "m-a", 2)]
    page.goto(_page(tmp_path, [*split, *flaky]))
    page.locator("table.grid td.c.md").click()
    text = page.locator("section.repro .detail").inner_text()
    assert "disagree (machines disagree" not in text, text
    assert text.count("m-a passed 2, m-b regressed 2") == 2, text  # title line, sentence
    assert "each machine gave one verdict every time" in text, text
    opacity = "(sel) => getComputedStyle(document.querySelector(sel)).opacity"
    page.select_option("#f-status", "machines-disagree")
    assert (page.evaluate(opacity, "td.c.md"), page.evaluate(opacity, "td.c.fl:not(.md)")) == (
        "1",
        "0.25",
    )
    page.select_option("#f-status", "flaky")
    assert page.evaluate(opacity, "td.c.md") == "0.25"


def test_cells_whose_bases_disagree_say_each_base_gave_one_verdict(
    page: Page, tmp_path: Path
) -> None:
    """One machine's runs with and without --cell-env NVIDIA_TF32_OVERRIDE=1 (two bases,
    `winner.base_name`): the details read "The records of this cell disagree (bases
    disagree: ...)", the words of a flaky cell."""
    from repromatrix.records import Machine

    def on(status: Status, base: str, day: int) -> Result:
        env = {"cell_env": {"NVIDIA_TF32_OVERRIDE": "1"}} if "+" in base else {}
        return _record("2.0", status, machine=Machine(id="m-a")).model_copy(
            update={
                "finished": f"2026-01-0{day}T00:00:00+00:00",
                "base_fingerprint": base,
                "provenance": {"harness": {"base": base, **env}},
            }
        )

    split = [on(Status.PASSED, "host:aa", d) for d in (1, 2)]
    split += [on(Status.REGRESSED, "host:aa+bb", d) for d in (3, 4)]
    page.goto(_page(tmp_path, split))
    page.locator("table.grid td.c.md").click()
    text = page.locator("section.repro .detail").inner_text()
    assert "each base gave one verdict every time (host:aa passed 2, host:aa+bb " in text, text
    assert "disagree (bases disagree" not in text, text


def test_a_renamed_repros_cells_say_the_repro_is_not_in_the_matrix(
    page: Page, tmp_path: Path
) -> None:
    """The details of a renamed repro's cell said "This cell is not in matrix.yaml (e.g. a
    commit evaluated by bisect)", and each of its grid rows was badged "not in matrix", as
    if its revisions were missing from the matrix; it is the repro that is. A listed
    repro's undeclared revision is still badged and told so, naming the file given."""
    from repromatrix.config import load_matrix

    (tmp_path / "r.py").write_text("")
    matrix = tmp_path / "other.yaml"
    matrix.write_text(
        "schema: 1\ngpus:\n  H100: {compute_capability: '9.0', smi_names: [NVIDIA H100]}\n"
        "libraries:\n  lib: {pypi: lib-project, import: lib, versions: ['1.0']}\n"
        "repros:\n  r: {script: r.py, gpus: [H100], libraries: {lib: all}}\n"
    )
    old = [
        _record(v, Status.REGRESSED).model_copy(
            update={"repro": "old_name", "key": f"old-{v}", "cell_id": f"old_name[H100,{v}]"}
        )
        for v in ("1.0", "1.1")
    ]
    records = [_record("1.0", Status.PASSED), _record("1.1", Status.REGRESSED), *old]
    page.goto(_page(tmp_path / "rep", records, matrix=load_matrix(matrix)))
    listed, renamed = page.locator("section.repro").all()
    assert "old_name" in renamed.locator("h2").inner_text()
    assert renamed.locator("h2 .badge").inner_text() == "not in matrix"
    assert renamed.locator("table.grid tbody th .badge").count() == 0
    badged = listed.locator("table.grid tbody th", has_text="1.1")
    assert badged.locator(".badge").inner_text() == "not in matrix"
    renamed.locator("table.grid td.c").first.click()
    said = renamed.locator(".detail").inner_text()
    assert "Its repro, old_name, is not in other.yaml (renamed since" in said
    assert "This cell is not in" not in said
    listed.locator("table.grid tbody tr", has_text="1.1").locator("td.c").click()
    said = listed.locator(".detail").inner_text()
    assert "This cell is not in other.yaml (e.g. a commit evaluated by bisect)." in said
