"""Two libraries bisected in one repro: a chart per library, each along its own releases
(`report.axis_charts`), even where both libraries have a release of one name."""

from __future__ import annotations

from pathlib import Path

from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.report import build_report, write_report


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
    charts = {c.title: c.chart for c in rr.axis_charts}
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
