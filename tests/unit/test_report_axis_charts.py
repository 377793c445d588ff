"""Two libraries bisected in one repro: a chart per library, each along its own releases
(`report.axis_charts`), even where both libraries have a release of one name."""

from __future__ import annotations

import re
from pathlib import Path

from repromatrix.config import load_matrix
from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.report import build_report, write_report

BAD = Status.REGRESSED


def _record(n: int, run: str, la: str, lb: str, status: Status, *, err: bool = True) -> Result:
    return Result(
        key=f"k{n}", cell_id=f"r[cpu,host,la={la},lb={lb}]", repro="r", base="host", gpu="cpu",
        pins={"la": la, "lb": lb}, status=status, run_id=run,
        finished=f"2026-01-01T00:00:{n:02d}+00:00", metrics={"err": float(n)} if err else {},
    )  # fmt: skip


def test_a_release_name_both_libraries_have_stays_in_its_own_librarys_order() -> None:
    """la's releases 2.0, 3.0, 4.0 (bisected at lb 5.0); lb's 1.0, 2.0, 5.0 (at la 4.0).
    The grid's rows are la's, then lb's not seen there: 2.0 3.0 4.0 1.0 5.0, so lb's 2.0
    stands before its 1.0 there; on lb's chart 1.0 comes first."""
    good, bad = Status.PASSED, Status.REGRESSED
    runs = [("bisect-la", la, "5.0", v) for la, v in (("2.0", good), ("3.0", bad), ("4.0", bad))]
    runs += [("bisect-lb", "4.0", lb, v) for lb, v in (("1.0", good), ("2.0", good), ("5.0", bad))]
    data = build_report([_record(n, *run) for n, run in enumerate(runs)])
    (rr,) = data.repros
    assert rr.chart is None  # no one chart along both
    charts = {c.title: c.chart for c in rr.axis_charts if c.chart is not None}
    assert list(charts) == ["la", "lb"]
    assert [t.label for t in charts["la"].x_ticks] == ["2.0", "3.0", "4.0"]
    assert [t.label for t in charts["lb"].x_ticks] == ["1.0", "2.0", "5.0"]
    # lb's values where lb's releases stand: 3 at 1.0, 4 at 2.0, 5 at 5.0 (the shared
    # cell, la 4.0 at lb 5.0, is the first bisection's record 2: err 2, its newest 5).
    (line,) = charts["lb"].lines
    assert [p.title for p in line.points] == ["cpu @ 1.0: 3", "cpu @ 2.0: 4", "cpu @ 5.0: 5"]


def test_two_libraries_with_no_key_metric_say_so_each(tmp_path: Path) -> None:
    """Records with no metric at all: no chart along la nor lb, and the page said
    nothing of either. It says, per library, that no key metric was recorded."""
    good, bad = Status.PASSED, Status.REGRESSED
    runs = [("bisect-la", la, "5.0", v) for la, v in (("2.0", good), ("4.0", bad))]
    runs += [("bisect-lb", "4.0", lb, v) for lb, v in (("1.0", good), ("5.0", bad))]
    records = [_record(n, *run, err=False) for n, run in enumerate(runs)]
    page = write_report(results=records, out_dir=tmp_path)["html"].read_text()
    assert "<figure" not in page
    for lib in ("la", "lb"):
        said = f'<p class="chart-none" data-axis="{lib}">No chart by {lib}: no key metric recorded.'
        assert said in page, page


def _chart_places(page: str) -> list[str]:
    """Each chart of the page (its opening tag) and each line in place of one, in order."""
    return re.findall(r'<figure class="chart"[^>]*>|<p class="chart-none".*?</p>', page)


def test_one_library_with_no_key_metric_says_why_it_has_no_chart(tmp_path: Path) -> None:
    """Records of one library (la bisected, lb fixed) with no metric at all: no chart, and
    the page said nothing of it (two libraries said it, each). One says it too."""
    runs = [("bisect-la", la, "5.0", v) for la, v in (("2.0", Status.PASSED), ("4.0", BAD))]
    records = [_record(n, *run, err=False) for n, run in enumerate(runs)]
    page = write_report(results=records, out_dir=tmp_path)["html"].read_text()
    said = "No chart by la: no key metric recorded."
    assert _chart_places(page) == [f'<p class="chart-none">{said}</p>']


def test_one_library_whose_key_metric_is_never_a_number_says_so(tmp_path: Path) -> None:
    """Every value of err along la is null (NaN or inf, kept so): no scale to draw, no
    chart, and not a word. The page says why, without claiming err was never recorded."""
    records = [
        _record(n, "bisect-la", la, "5.0", v).model_copy(update={"metrics": {"err": None}})
        for n, (la, v) in enumerate((("2.0", Status.PASSED), ("4.0", BAD)))
    ]
    page = write_report(results=records, out_dir=tmp_path)["html"].read_text()
    said = "No chart of <code>err</code> by la: no cell along la recorded a finite value of it"
    assert _chart_places(page) == [f'<p class="chart-none">{said} (each is NaN or inf).</p>']


def test_a_library_with_no_chart_is_said_in_its_place_among_the_charts(tmp_path: Path) -> None:
    """lb's bisection recorded err; la's, run after it, did not (its record of the shared
    cell, la 4.0 at lb 5.0, is the newest): la has no chart. The line saying so came
    after lb's chart, though la is the grid's first axis ("la / lb"). It comes first."""
    runs = [("bisect-lb", "4.0", lb, v, True) for lb, v in (("1.0", Status.PASSED), ("5.0", BAD))]
    runs += [("bisect-la", la, "5.0", v, False) for la, v in (("2.0", Status.PASSED), ("4.0", BAD))]
    records = [_record(n, *run[:4], err=run[4]) for n, run in enumerate(runs)]
    page = write_report(results=records, out_dir=tmp_path)["html"].read_text()
    assert '<th class="ax">la / lb</th>' in page
    places = _chart_places(page)
    assert [re.findall(r'data-axis="(\w+)"', p)[0] for p in places] == ["la", "lb"], places
    assert places[0] == (
        '<p class="chart-none" data-axis="la">No chart of <code>err</code> by la: no cell '
        "along la recorded a value of it.</p>"
    )


def test_a_cell_with_no_result_yet_says_so_in_place_of_a_chart(tmp_path: Path) -> None:
    """matrix.yaml's repro has run nowhere yet: no chart, and nothing said. The line says
    there is no result, not that the repro records no key metric."""
    (tmp_path / "r.py").write_text("")
    (tmp_path / "matrix.yaml").write_text(
        "schema: 1\nlibraries:\n  la: {pypi: la, import: la, versions: ['1.0', '2.0']}\n"
        "repros:\n  r:\n    script: r.py\n    gpus: [cpu]\n    libraries: {la: all}\n"
    )
    matrix = load_matrix(tmp_path / "matrix.yaml")
    page = write_report(results=[], matrix=matrix, out_dir=tmp_path / "rep")["html"].read_text()
    said = "No chart by la: no cell along la has a result yet."
    assert _chart_places(page) == [f'<p class="chart-none">{said}</p>']
