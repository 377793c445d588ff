"""The browser fixture (a pytest plugin, see conftest.py): one headless Chromium page per
test module.

Skips only outside CI when Chromium or playwright are missing; with CI set, a missing
piece fails the test (convention 7 of DESIGN.md).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

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
