"""Two libraries bisected in one repro (`bisect --library la`, then `--library lb` at la's
bad end): each library's records are a line of its own revisions in the report. Real git
(mirrors in --cache, as `bisect` leaves them), records as a bisection writes them, the
real `repromatrix report`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from test_report_untested_commits import _run_report, git

from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.store import ResultStore

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.integration


def _two_bisections(tmp_path: Path, *, lb_err: bool = True) -> tuple[list[str], list[str], str]:
    """la bisected at lb's c9 (first bad la5), then lb at la's c9 (first bad lb6), and
    the report of both: la's commits, lb's, and summary.md. Without `lb_err`, lb's
    bisection recorded no metric."""
    (tmp_path / "cache" / "git").mkdir(parents=True)
    shas: dict[str, list[str]] = {}
    for lib in ("la", "lb"):
        src = tmp_path / lib
        src.mkdir()
        git(src, "init", "-q", "-b", "main")
        for i in range(10):
            git(src, "commit", "-q", "--allow-empty", "-m", f"{lib}{i}")
        shas[lib] = git(src, "rev-list", "--reverse", "HEAD").split()
        mirror = tmp_path / "cache" / "git" / f"{lib}.git"
        git(tmp_path, "clone", "-q", "--bare", str(src), str(mirror))
    a, b = shas["la"], shas["lb"]
    (tmp_path / "r.py").write_text("")
    (tmp_path / "matrix.yaml").write_text(
        "schema: 1\nlibraries:\n"
        f"  la: {{git: {tmp_path / 'la'}, import: la, versions: ['{a[0][:8]}', '{a[9][:8]}']}}\n"
        f"  lb: {{git: {tmp_path / 'lb'}, import: lb, versions: ['{b[9][:8]}']}}\n"
        "repros:\n  r: {script: r.py, gpus: [cpu], libraries: {la: all, lb: all}}\n"
    )
    store = ResultStore(tmp_path / "results")
    good, bad = Status.PASSED, Status.REGRESSED
    runs = [("bisect-la", i, 9, v) for i, v in [(0, good), (9, bad), (4, good), (6, bad), (5, bad)]]
    runs += [
        ("bisect-lb", 9, j, v) for j, v in [(0, good), (9, bad), (5, good), (7, bad), (6, bad)]
    ]
    for n, (run, i, j, status) in enumerate(runs):
        pins = {
            "la": a[i][:8] if i in (0, 9) else a[i][:10],
            "lb": b[j][:8] if j == 9 else b[j][:10],
        }
        store.append(
            Result(
                key=f"k{n}", cell_id=f"r[cpu,host,la={pins['la']},lb={pins['lb']}]", repro="r",
                base="host", gpu="cpu", pins=pins, commits={"la": a[i], "lb": b[j]},
                status=status, run_id=run, finished=f"2026-01-01T00:00:{n:02d}+00:00",
                metrics={"err": 1.0 if status is bad else 0.0}
                if lb_err or run == "bisect-la" else {},
            )
        )  # fmt: skip
    return a, b, _run_report(tmp_path, "--cache", "cache")


def test_each_bisected_library_has_its_own_line(tmp_path: Path) -> None:
    """Laid along la alone, lb's commits were each a series of one point ("present at …
    (the only point tested)", "not reproduced") and where lb's regression begins was
    said nowhere."""
    a, b, summary = _two_bisections(tmp_path)
    sa, sb = [s[:8] for s in a], [s[:8] for s in b]
    along_la = f"| r | cpu · along la · lb={sb[9]} | begins at {sa[5]} (last good {sa[4]}); "
    assert along_la + "still present" in summary, summary
    along_lb = f"| r | cpu · along lb · la={sa[9]} | begins at {sb[6]} (last good {sb[5]}); "
    assert along_lb + "still present" in summary
    assert "only point tested" not in summary, summary
    assert "not reproduced" not in summary
    # la c9 at lb c9 ran in both bisections: one cell, counted once.
    assert "10 records from 2 machines, 9 cells, 1 repro, 1 reproduced." in summary, summary
    # index.html: lb's commits were rows under la's title, its chart "err by la", its rows
    # without their commit in the title; no line said which library it ran along.
    page = (tmp_path / "rep" / "index.html").read_text()
    assert '<th class="ax">la / lb</th>' in page, page
    assert "<code>err</code> by la." in page
    assert "<code>err</code> by lb." in page
    assert f"<small>along la · lb={sb[9]}</small>" in page
    assert f"<small>along lb · la={sa[9]}</small>" in page
    assert f'<th title="commit {b[6]}">{sb[6]} <span class="badge">bisect</span>' in page
    compat = (tmp_path / "rep" / "compat.html").read_text()
    assert f"along lb · la={sa[9]}: regressed {sb[6]}–{sb[9]}, still present" in compat


def test_each_bisected_library_has_its_own_chart(page: Page, tmp_path: Path) -> None:
    """index.html drew one chart "err by la / lb" whose x axis ran la's ten commits, then
    lb's: lb's series began right of la's newest commit, as if lb's commits came after
    it. Each library's series are a chart of their own, along its commits, titled with it."""
    a, b, _ = _two_bisections(tmp_path)
    sa, sb = [s[:8] for s in a], [s[:8] for s in b]
    page.goto((tmp_path / "rep" / "index.html").as_uri())
    figures = page.locator("section.repro figure.chart")
    assert figures.count() == 2
    seen: dict[str, tuple[list[str], list[str]]] = {}
    for i in range(2):
        figure = figures.nth(i)
        caption = figure.locator("figcaption").inner_text()
        ticks: list[str] = figure.locator("text.xt").evaluate_all(
            "ts => ts.map(t => t.childNodes[0].textContent)"
        )
        lines: list[str] = figure.locator("g.line circle title").evaluate_all(
            "ts => ts.map(t => t.textContent)"
        )
        seen[caption.split(" ")[2].rstrip(".")] = (ticks, lines)
        assert figure.bounding_box() is not None  # drawn, not hidden
    assert set(seen) == {"la", "lb"}, seen
    ticks_a, lines_a = seen["la"]
    ticks_b, lines_b = seen["lb"]
    # la's bisection ran la0, la4, la5, la6, la9; lb's lb0, lb5, lb6, lb7, lb9, in order.
    assert ticks_a == [sa[i] for i in (0, 4, 5, 6, 9)], ticks_a
    assert ticks_b == [sb[j] for j in (0, 5, 6, 7, 9)], ticks_b
    # Each point where its own library's revision stands (err is 1 where it regressed).
    assert lines_a == [f"cpu @ {sa[i]}: {v}" for i, v in ((0, 0), (4, 0), (5, 1), (6, 1), (9, 1))]
    assert lines_b == [f"cpu @ {sb[j]}: {v}" for j, v in ((0, 0), (5, 0), (6, 1), (7, 1), (9, 1))]


def test_a_library_whose_cells_recorded_no_key_metric_says_why_it_has_no_chart(
    page: Page, tmp_path: Path
) -> None:
    """lb's bisection recorded no value of err (the key metric la's records chose): the
    page drew la's chart and nothing for lb, without a word, as if its chart had been
    lost. It says, for lb, why there is none."""
    _two_bisections(tmp_path, lb_err=False)
    page.goto((tmp_path / "rep" / "index.html").as_uri())
    figures = page.locator("section.repro figure.chart")
    assert figures.count() == 1
    assert figures.get_attribute("data-axis") == "la"
    none = page.locator("section.repro p.chart-none")
    assert none.count() == 1
    assert none.get_attribute("data-axis") == "lb"
    said = "No chart of err by lb: no cell along lb recorded a value of it."
    assert none.inner_text() == said
