"""The HTML report in a real headless Chromium: filters, details, and hostile text.

Skips only outside CI when Chromium or playwright are missing; with CI set, a missing
piece fails the test (convention 7 of DESIGN.md).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from repromatrix.config import load_matrix
from repromatrix.report import write_report
from repromatrix.store import ResultStore

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.integration]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "report"
ARTIFACTS = Path(__file__).resolve().parents[2] / "reports" / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _chromium() -> str:
    for candidate in (os.environ.get("REPROMATRIX_CHROMIUM"), "/usr/bin/chromium"):
        if candidate and Path(candidate).exists():
            return candidate
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    _missing("Chromium is not installed (apt-get install chromium)")
    raise AssertionError("unreachable")


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what}; CI is set, so a missing browser is a failure")
    pytest.skip(what)


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install -e '.[test]')")
    executable = _chromium()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        pg = context.new_page()
        requests: list[str] = []
        pg.on("request", lambda req: requests.append(req.url))
        yield pg
        browser.close()
        external = [u for u in requests if not u.startswith(("file:", "data:", "about:"))]
        assert not external, f"the report made network requests: {external}"


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
