"""Two libraries bisected in one repro (`bisect --library la`, then `--library lb` at la's
bad end): each library's records are a line of its own revisions in the report. Real git
(mirrors in --cache, as `bisect` leaves them), records as a bisection writes them, the
real `repromatrix report`."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_report_untested_commits import _run_report, git

from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.store import ResultStore

pytestmark = pytest.mark.integration


def test_each_bisected_library_has_its_own_line(tmp_path: Path) -> None:
    """la bisected at lb's c9 (first bad la5), then lb at la's c9 (first bad lb6): laid
    along la alone, lb's commits were each a series of one point ("present at … (the
    only point tested)", "not reproduced") and where lb's regression begins was said
    nowhere."""
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
                metrics={"err": 1.0 if status is bad else 0.0},
            )
        )  # fmt: skip
    summary = _run_report(tmp_path, "--cache", "cache")
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
    assert "<code>err</code> by la / lb" in page
    assert f"<small>along la · lb={sb[9]}</small>" in page
    assert f"<small>along lb · la={sa[9]}</small>" in page
    assert f'<th title="commit {b[6]}">{sb[6]} <span class="badge">bisect</span>' in page
    compat = (tmp_path / "rep" / "compat.html").read_text()
    assert f"along lb · la={sa[9]}: regressed {sb[6]}–{sb[9]}, still present" in compat
