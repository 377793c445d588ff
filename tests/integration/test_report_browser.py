"""The HTML report in a real headless Chromium: filters, details, and hostile text.

The `page` fixture (one Chromium page per module) is in tests/chromium_page.py.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from repromatrix.config import load_matrix
from repromatrix.expand import expand
from repromatrix.model import Status
from repromatrix.records import Machine, Result
from repromatrix.report import write_report
from repromatrix.store import ResultStore

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.integration]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "report"
ARTIFACTS = Path(__file__).resolve().parents[2] / "reports" / "test-artifacts"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    matrix = load_matrix(FIXTURES / "matrix.yaml")
    results = ResultStore(FIXTURES / "results.jsonl").load().results
    out = tmp_path_factory.mktemp("report")
    return write_report(results=results, out_dir=out, matrix=matrix, title="fixture report")["html"]


def _visible_rows(page: Page, repro: str) -> int:
    n: Any = page.evaluate(
        """(repro) => [...document.querySelectorAll(
             `section.repro[data-repro="${repro}"] table.grid tbody tr`)]
             .filter(tr => !tr.hidden && !tr.closest('section').hidden).length""",
        repro,
    )
    return int(n)


def test_filters_details_and_hostile_text(page: Page, report: Path) -> None:  # noqa: PLR0915 -- one browser session, checked step by step
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(report.as_uri())
    assert page.title() == "fixture report"
    sections = page.locator("section.repro")
    assert sections.count() == 3
    assert _visible_rows(page, "flashinfer_mla_oob_nan") == 4

    # Repro filter: other sections and summary rows hide.
    page.select_option("#f-repro", "fla_fused_chunk_scale")
    assert page.locator("section.repro:visible").count() == 1
    assert page.locator("table.summary tbody tr:visible").count() == 1
    assert _visible_rows(page, "fla_fused_chunk_scale") == 7
    # Status filter: only rows with a regressed cell stay.
    page.select_option("#f-status", "regressed")
    assert _visible_rows(page, "fla_fused_chunk_scale") == 2
    page.select_option("#f-status", "untestable")
    assert _visible_rows(page, "fla_fused_chunk_scale") == 1
    page.select_option("#f-repro", "")
    page.select_option("#f-status", "")
    assert page.locator("section.repro:visible").count() == 3

    # GPU filter: l4 columns show only for l4; sections without l4 cells hide.
    l4 = page.locator("#f-gpu option", has_text="l4").get_attribute("value")
    assert l4 is not None
    page.select_option("#f-gpu", l4)
    mla = page.locator('section.repro[data-repro="flashinfer_mla_oob_nan"]')
    assert mla.locator("thead th:visible").count() == 2  # axis header + l4
    assert page.locator("section.repro:visible").count() == 1
    page.select_option("#f-status", "none")
    assert _visible_rows(page, "flashinfer_mla_oob_nan") == 1
    page.select_option("#f-status", "")
    page.select_option("#f-gpu", "")

    # Details: a not-run cell says why; hostile text is shown as text and never runs.
    not_run = mla.locator("td.s-not_run").first
    assert not_run.get_attribute("title") == "not run here: no L4 on this host"
    not_run.click()
    assert "not run here: no L4 on this host" in mla.locator(".detail").inner_text()
    trt = page.locator('section.repro[data-repro="trt_sdpa_scale"]')
    trt.locator("td.s-error").click()
    detail = trt.locator(".detail")
    detail.wait_for(state="visible")
    text = detail.inner_text()
    assert "<script>window.__pwned=1</script>" in text
    assert '"><img src=x onerror=window.__pwned=2>' in text
    assert detail.locator("img").count() == 0
    assert page.locator("script:not([id])").count() == 1
    time.sleep(0.2)  # give an injected onerror a chance to fire if it existed
    assert page.evaluate("typeof window.__pwned") == "undefined"

    # Older records of a key from another host stay visible in the details.
    mla.locator("td.c").nth(2 * 3).click()  # h100 column is first; row 0.2.4 is third
    assert "gpu-old" in mla.locator(".detail").inner_text()

    # The dangerous issue link of the fixture is shown as text, not as a link.
    assert page.locator('a[href^="javascript:"]').count() == 0
    assert not errors, errors

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    page.emulate_media(media="print")
    assert not page.locator("nav.controls").is_visible()
    page.emulate_media(media="screen")


# -- the published results, as a new user opens them ------------------------------------

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = ROOT / "results" / "published"
#: The screenshot the README shows (refreshed by hand: cp reports/test-artifacts/published.png).
SCREENSHOT = ARTIFACTS / "published.png"


def _write_published(
    out: Path, extra: Sequence[Result] = (), compare: Sequence[Result] | None = None
) -> Path:
    matrix = load_matrix(ROOT / "matrix.yaml")
    results = [*ResultStore(PUBLISHED).load().results, *extra]
    paths = write_report(
        results=results,
        out_dir=out,
        matrix=matrix,
        cells=expand(matrix),
        title="repromatrix: published results",
        compare=compare,
        compare_label="older results",
    )
    return paths["html"]


def _second_host_note() -> Result:
    """A CPU-only machine's "not run here" note for a published H200 verdict, newer."""
    (verdict,) = [
        r
        for r in ResultStore(PUBLISHED).load().results
        if r.cell_id == "fla_fused_chunk_scale[H200,host,fla=85992884]"
    ]
    return verdict.model_copy(
        update={
            "status": Status.NOT_RUN,
            "reason": "no H200 on this host (has no GPU (nvidia-smi not found))",
            "metrics": {},
            "finished": "2027-01-01T00:00:00+00:00",
            "run_id": "20270101T000000Z-laptop-0001",
            "host": "vm",
            "machine": Machine(id="m-laptop0000"),
        }
    )


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_published(tmp_path_factory.mktemp("published"), extra=[_second_host_note()])


def _js(page: Page, script: str, arg: Any = None) -> Any:
    return page.evaluate(script, arg)


def test_published_report_names_each_commit_once(page: Page, published: Path) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(published.as_uri())
    fla = page.locator('section.repro[data-repro="fla_fused_chunk_scale"]')
    rows: list[str] = fla.locator("table.grid tbody th").evaluate_all(
        "ths => ths.map(th => th.childNodes[0].textContent.trim())"
    )
    commits: list[str] = fla.locator("table.grid tbody th").evaluate_all(
        "ths => ths.map(th => th.getAttribute('title') || '')"
    )
    assert "v0.5.2 · 9c8e42e7" in rows
    assert len(rows) == len(set(rows))
    assert all(c.startswith("commit ") for c in commits)
    assert len(commits) == len(set(commits)), "two rows for one commit"
    for label in ("3f1f080f43", "85992884bf", "7336d0cf15", "9c8e42e762"):
        assert label not in rows
    for sec in page.locator("section.repro figure.chart svg.plot").all():
        ticks: list[str] = sec.locator("text.xt").evaluate_all(
            "ts => ts.map(t => t.childNodes[0].textContent)"
        )
        assert len(ticks) == len(set(ticks)), ticks
    summary = page.locator("#summary").inner_text()
    assert "3f1f080f43" not in summary
    assert "last bad 3f1f080f)" in summary
    # The H100 and H200 matrix runs, the nox-made record, the H200 and H100 bisect reruns,
    # the extra host.
    assert "records from 6 machines" in page.locator("header .meta").inner_text()
    machines = page.locator("table.machines").inner_text()
    assert "NVIDIA H200" in machines
    assert "NVIDIA H100 80GB HBM3" in machines
    assert "\tvm\t" not in machines
    assert not errors, errors


def test_every_status_symbol_is_drawn(page: Page, published: Path) -> None:
    page.goto(published.as_uri())
    sizes: list[list[float]] = _js(
        page,
        """() => [...document.querySelectorAll('svg.i, g.gap, g.nan')]
             .filter(el => el.closest('[hidden]') === null)
             .map(el => { const u = el.querySelector('use');
                          const r = el.getBoundingClientRect();
                          const b = u.getBBox();
                          return [r.width, r.height, b.width, b.height]; })""",
    )
    assert len(sizes) > 100
    assert all(w > 0 and h > 0 and bw > 0 and bh > 0 for w, h, bw, bh in sizes), sizes
    statuses: list[str] = _js(
        page, "() => [...document.querySelectorAll('svg.i use')].map(u => u.getAttribute('href'))"
    )
    for st in ("passed", "regressed", "untestable", "timeout", "not_run", "none"):
        assert f"#s-{st}" in statuses
    # Text glyphs that fonts may lack are nowhere on the page.
    assert "⏱" not in page.locator("body").inner_text()


def test_chart_text_stays_inside_its_chart(page: Page, published: Path) -> None:
    page.goto(published.as_uri())
    overflow: list[str] = _js(
        page,
        """() => {
          const out = [];
          for (const svg of document.querySelectorAll('figure.chart svg.plot')) {
            const box = svg.getBoundingClientRect();
            for (const t of svg.querySelectorAll('text')) {
              const r = t.getBoundingClientRect();
              if (r.left < box.left - 0.5 || r.right > box.right + 0.5 ||
                  r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5)
                out.push(t.textContent + ' ' + JSON.stringify([r, box]));
            }
          }
          return out;
        }""",
    )
    assert overflow == []


def test_one_colour_per_gpu_type_across_charts(page: Page, published: Path) -> None:
    page.goto(published.as_uri())
    lines: list[list[str]] = _js(
        page,
        """() => [...document.querySelectorAll('figure.chart g.line')]
             .map(g => [g.dataset.gpu, getComputedStyle(g.querySelector('circle, use')).fill
                        || g.getAttribute('stroke')])""",
    )
    strokes: list[list[str]] = _js(
        page,
        """() => [...document.querySelectorAll('figure.chart g.line')]
             .map(g => [g.dataset.gpu, g.getAttribute('stroke')])""",
    )
    assert {gpu for gpu, _ in strokes} >= {"H100", "H200"}
    colours: dict[str, set[str]] = {}
    for gpu, colour in strokes:
        colours.setdefault(gpu, set()).add(colour)
    assert all(len(c) == 1 for c in colours.values()), colours
    assert len({next(iter(c)) for c in colours.values()}) == len(colours)
    assert lines
    # One legend for the page, not one per chart.
    assert page.locator("#chart-legend").count() == 1
    assert page.locator("figure.chart .lgd").count() == 0


def test_timeouts_break_the_line_with_a_marker(page: Page, published: Path) -> None:
    page.goto(published.as_uri())
    mla = page.locator('section.repro[data-repro="flashinfer_mla_oob_nan"] svg.plot')
    h100 = mla.locator('g.line[data-gpu="H100"]')
    assert h100.locator('g.gap[data-status="timeout"]').count() == 2
    assert h100.locator("polyline").count() == 2  # 0.2.2 alone, then 0.2.4 → 0.5.3


def test_a_not_run_note_from_another_host_does_not_hide_a_published_verdict(
    page: Page, published: Path
) -> None:
    page.goto(published.as_uri())
    fla = page.locator('section.repro[data-repro="fla_fused_chunk_scale"]')
    row = fla.locator("table.grid tbody tr", has=page.locator("th", has_text="85992884"))
    cells = row.locator("td.c")
    h200 = cells.nth(cells.count() - 1)
    assert "s-passed" in (h200.get_attribute("class") or "")
    h200.click()
    detail = fla.locator(".detail").inner_text()
    assert "passed" in detail
    assert "m-laptop0000" in detail  # the note is listed, not hidden
    trt = page.locator('section.repro[data-repro="trt_sdpa_scale"] td.c[title="untestable"]').first
    trt.click()
    assert (
        "ort.sdpa_vs_ref.max_abs"
        in page.locator('section.repro[data-repro="trt_sdpa_scale"] .detail').inner_text()
    )


def test_details_list_thresholds_per_metric(page: Page, published: Path) -> None:
    page.goto(published.as_uri())
    fla = page.locator('section.repro[data-repro="fla_fused_chunk_scale"]')
    fla.locator("td.s-regressed").first.click()
    row = fla.locator(
        ".detail tr", has=page.locator("td", has_text="rel_err.s0p125.fused_chunk.dv")
    )
    assert row.locator("td").nth(2).inner_text() == "0.01 (max_rel_err)"


def test_compatibility_page_links_to_details(page: Page, published: Path) -> None:
    page.goto((published.parent / "compat.html").as_uri())
    headers = page.locator("table.compat thead th").all_inner_texts()
    # L4 and A100 only have "not on this host" notes: columns after those that ran, as
    # index.html shows those cells; the GPUs without any record are named under the table.
    assert headers == ["Base", "H100", "H200", "L4", "A100", "cpu"]
    assert "No result yet on RTX3090, RTX4090 (the matrix" in page.locator("body").inner_text()
    host = page.locator("table.compat tbody tr", has=page.locator("th", has_text="host"))
    assert "fla_fused_chunk_scale: regressed 7336d0cf–3f1f080f, fixed in 85992884" in (
        host.inner_text()
    )
    ngc = page.locator("table.compat tbody tr", has=page.locator("th", has_text="ngc-24.12"))
    assert "TensorRT 10.7.0.23" in ngc.inner_text()
    link = host.locator("a", has_text="trt_sdpa_scale").first
    link.click()
    page.wait_for_selector("section.repro .detail:not([hidden])")
    assert page.url.split("#")[0].endswith("index.html")


def test_compare_page_lists_a_flipped_verdict(page: Page, tmp_path: Path) -> None:
    current = ResultStore(PUBLISHED).load().results
    older = [
        r.model_copy(update={"status": Status.REGRESSED, "reason": "was broken"})
        if r.cell_id == "flashinfer_decode_tensor_cores[H200,host,flashinfer=0.5.3]"
        else r
        for r in current
    ]
    html = _write_published(tmp_path, compare=older)
    page.goto(html.as_uri())
    page.locator("header .pages a", has_text="What changed").click()
    flipped = page.locator('section[data-group="flipped"] tr.change')
    assert flipped.count() == 1
    text = flipped.inner_text()
    assert "flashinfer_decode_tensor_cores" in text
    assert "fixed" in text
    assert "regressed" in text
    assert "passed" in text
    assert "1 verdict(s) flipped (1 fixed" in page.locator("#headline").inner_text()
    # The report itself says what changed too, above its grids.
    page.go_back()
    on_index = page.locator('#changes section[data-group="flipped"] tr.change')
    assert on_index.count() == 1
    assert "fixed" in on_index.inner_text()


def test_published_screenshot(page: Page, tmp_path: Path) -> None:
    """The full page as a new user sees it (README shows reports/published/report.png)."""
    page.goto(_write_published(tmp_path).as_uri())
    assert "records from 5 machines" in page.locator("header .meta").inner_text()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 10_000


def test_details_show_hidden_marks_in_names_as_question_marks(page: Page, tmp_path: Path) -> None:
    """A right-to-left override in a host name or provenance showed the text reversed."""
    record = Result(
        key="k", cell_id="r[cpu,host]", repro="r", base="host", gpu="cpu", pins={},
        status=Status.PASSED, reason="ok", host="h\u202eevil\u200b\u061c",
        provenance={"note": "x\u2066y"}, finished="2026-01-01T00:00:00+00:00",
    )  # fmt: skip
    html = write_report(results=[record], out_dir=tmp_path)["html"]
    page.goto(html.as_uri())
    page.locator("table.grid td.c.s-passed").first.click()
    detail = page.locator("section.repro .detail")
    detail.wait_for(state="visible")
    text = detail.inner_text()
    assert "h?evil??" in text
    assert "x?y" in text
    for mark in ("\u202e", "\u200b", "\u2066", "\u061c"):
        assert mark not in text
