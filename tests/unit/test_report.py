"""Report outputs from the fixture results: HTML structure and safety, Markdown, JUnit,
CSV/Parquet, the summary sentences and the README table."""

from __future__ import annotations

import html as html_lib
import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

from repromatrix.config import Matrix, load_matrix
from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.report import (
    build_report,
    reproduced_table_markdown,
    summary_rows,
    write_report,
)
from repromatrix.report import table as report_table
from repromatrix.report.charts import SeriesValues, build_chart
from repromatrix.report.metrics import choose_key_metric, fmt_num, threshold_for
from repromatrix.report.render import safe_url, script_json
from repromatrix.store import LoadProblem, ResultStore

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "report"
XSS_SCRIPT = "<script>window.__pwned=1</script>"
XSS_IMG = '"><img src=x onerror=window.__pwned=2>'


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load_matrix(FIXTURES / "matrix.yaml")


@pytest.fixture(scope="module")
def results() -> tuple[Result, ...]:
    return ResultStore(FIXTURES / "results.jsonl").load().results


@pytest.fixture(scope="module")
def outputs(
    tmp_path_factory: pytest.TempPathFactory, matrix: Matrix, results: tuple[Result, ...]
) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("report")
    problem = LoadProblem(file="results/x.jsonl", line=3, message="truncated <last> record")
    return write_report(
        results=results, out_dir=out, matrix=matrix, title="T <&>", load_problems=[problem]
    )


def test_writes_every_format(outputs: dict[str, Path]) -> None:
    assert set(outputs) == {"html", "compat", "markdown", "junit", "csv", "parquet"}
    assert {p.name for p in outputs.values()} == {
        "index.html",
        "compat.html",
        "summary.md",
        "junit.xml",
        "results.csv",
        "results.parquet",
    }
    assert all(p.is_file() and p.stat().st_size > 0 for p in outputs.values())


def test_html_is_self_contained(outputs: dict[str, Path]) -> None:
    html = outputs["html"].read_text()
    assert not re.search(r"\bsrc\s*=", html.split('id="cells-data"')[0])
    assert "<link" not in html
    hrefs = re.findall(r'href="([^"]*)"', html)
    # Links leave the page only for upstream issues; the rest are files of the report.
    external = [h for h in hrefs if (not h.startswith("#") and ":" in h) or h.startswith("//")]
    assert external
    assert all(h.startswith("https://github.com/") for h in external)
    local = {h for h in hrefs if not h.startswith("#") and h not in external}
    assert local == {"compat.html", "summary.md", "results.csv"}
    assert re.findall(r'<a href="(https://[^"]*)"', html)
    assert "Content-Security-Policy" in html
    assert "default-src 'none'" in html_lib.unescape(html)


def test_html_sections_symbols_and_states(outputs: dict[str, Path]) -> None:
    html = outputs["html"].read_text()
    for repro in ("flashinfer_mla_oob_nan", "fla_fused_chunk_scale", "trt_sdpa_scale"):
        assert '<section class="repro" id="r' in html
        assert f'data-repro="{repro}"' in html
    # Status symbols are drawn (one SVG sprite, used by reference), not font glyphs.
    for st in ("passed", "regressed", "untestable", "error", "not_run", "none", "flaky"):
        assert f'<symbol id="s-{st}"' in html
        assert f'<use href="#s-{st}"/>' in html
    grid = html.split('<main id="main">', 1)[1]
    for glyph in ("✓", "✗", "⏱"):
        assert glyph not in grid
    assert 'title="no result yet"' in html
    assert 'title="not run here: no L4 on this host"' in html
    assert "begins at or before 0.2.2 (first tested); ends at 0.2.4 (last bad 0.2.3)" in html
    assert '<span class="badge">bisect</span>' in html
    assert "<svg" in html
    assert "stroke-dasharray" in html  # threshold line
    assert "ri rt" in html  # the interval drawn on the grid
    assert "T &lt;&amp;&gt;" in html


def test_html_escapes_data(outputs: dict[str, Path]) -> None:
    html = outputs["html"].read_text()
    assert XSS_SCRIPT not in html
    assert "<img" not in html
    assert "&lt;b&gt;not bold&lt;/b&gt;" in html
    assert 'href="javascript:' not in html
    blob = html.split('<script type="application/json" id="cells-data">', 1)[1]
    blob = blob.split("</script>", 1)[0]
    assert "<" not in blob
    data = json.loads(blob)
    texts = json.dumps(data, ensure_ascii=False)
    assert XSS_SCRIPT in texts
    assert XSS_IMG in texts
    # Exactly our two script elements: the inert JSON blob and our own code.
    assert html.count("<script") == 2


def test_script_json_round_trip() -> None:
    value = {"a": "</script><!-- & \u2028", "n": math.nan, "t": (1, 2)}
    text = str(script_json(value))
    assert "<" not in text
    assert ">" not in text
    assert json.loads(text) == {"a": "</script><!-- & \u2028", "n": "NaN", "t": [1, 2]}


def test_safe_url() -> None:
    assert safe_url("https://github.com/x/y/issues/1") == "https://github.com/x/y/issues/1"
    assert safe_url("javascript:alert(1)") is None
    assert safe_url("data:text/html,x") is None
    assert safe_url("//evil.example") is None
    assert safe_url(None) is None


def test_markdown_summary(outputs: dict[str, Path]) -> None:
    md = outputs["markdown"].read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    summary = [r for r in rows if r.startswith("| flashinfer_mla_oob_nan | h100 |")]
    assert summary == [
        "| flashinfer_mla_oob_nan | h100 | begins at or before 0.2.2 (first tested); ends at "
        "0.2.4 (last bad 0.2.3) | mla.fa2.fp16.page1.max_abs: not finite at 0.2.2 vs 0.0009 at "
        "0.2.4 (threshold 0.01) |"
    ]
    header = next(r for r in rows if r.startswith("| Regression | ✓ passed"))
    total = next(r for r in rows if r.startswith("| **all** |"))
    cols = [c.strip() for c in header.strip("|").split("|")]
    vals = [c.strip() for c in total.strip("|").split("|")]
    counts = dict(zip(cols, vals, strict=True))
    assert counts["✓ passed"] == "10"
    assert counts["✗ regressed"] == "5"
    assert counts["– not run here"] == "3"
    assert counts["– no result yet"] == "1"
    assert counts["total"] == "21"
    assert "truncated &lt;last&gt; record" in md


def test_junit_parses_and_counts(outputs: dict[str, Path]) -> None:
    root = ET.parse(outputs["junit"]).getroot()
    assert root.tag == "testsuites"
    assert root.attrib["tests"] == "21"
    assert root.attrib["failures"] == "6"  # 5 regressed, 1 flaky whose newest record passed
    assert root.attrib["errors"] == "1"
    # 1 untestable, 3 not run, 1 no result yet
    assert sum(int(s.attrib["skipped"]) for s in root.iter("testsuite")) == 5
    cases = root.findall(".//testcase")
    assert len(cases) == 21
    err = next(c for c in cases if c.find("error") is not None)
    error = err.find("error")
    assert error is not None
    assert XSS_SCRIPT in error.attrib["message"]
    out = err.find("system-out")
    assert out is not None
    assert out.text is not None
    assert XSS_IMG in out.text


def test_csv_and_parquet_round_trip(outputs: dict[str, Path]) -> None:
    csv = pd.read_csv(outputs["csv"])
    pq = pd.read_parquet(outputs["parquet"])
    assert len(csv) == len(pq) == 20  # every cell with a record; "no result yet" has none
    assert list(csv.columns) == list(pq.columns)
    assert {"key", "status", "lib.flashinfer", "lib.fla", "metrics", "thresholds"} <= set(
        csv.columns
    )
    row = csv[(csv["lib.flashinfer"] == "0.2.4") & (csv["gpu"] == "h100")].iloc[0]
    assert json.loads(row["metrics"])["mla.fa2.fp16.page1.max_abs"] == 0.0009
    assert row["older_records"] == 1
    assert sorted(csv["key"]) == sorted(pq["key"])
    assert csv["flaky"].sum() == 1
    assert (csv["status"] == "regressed").sum() == 5


def test_parquet_skipped_with_a_note_without_pyarrow(
    tmp_path: Path, results: tuple[Result, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report_table, "parquet_available", lambda: False)
    paths = write_report(results=results, out_dir=tmp_path)
    assert "parquet" not in paths
    assert not (tmp_path / "results.parquet").exists()
    assert "pyarrow is not installed" in paths["html"].read_text()
    # The requirement, not 'repromatrix[parquet]' (not on PyPI); '>' as Markdown escapes it.
    assert "not installed (pip install 'pyarrow&gt;=14')" in paths["markdown"].read_text()


def test_summary_sentences(matrix: Matrix, results: tuple[Result, ...]) -> None:
    rows = {(r.repro, r.gpu): r for r in summary_rows(results, matrix)}
    mla = rows[("flashinfer_mla_oob_nan", "h100")]
    assert mla.sentence == (
        "begins at or before 0.2.2 (first tested); ends at 0.2.4 (last bad 0.2.3)"
    )
    assert (mla.first_bad, mla.first_good, mla.last_bad) == ("0.2.2", "0.2.4", "0.2.3")
    assert mla.key_metric == "mla.fa2.fp16.page1.max_abs"
    assert mla.threshold == 0.01
    flaky = rows[("flashinfer_mla_oob_nan", "h200")]
    assert flaky.flaky == ("0.2.3",)
    assert "0.2.3 (flaky: 1 passed, 1 regressed)" in flaky.sentence
    fla = rows[("fla_fused_chunk_scale", "h100")]
    # Bisect commits 3333333 and 4444444 have no mirror to place them (their dates are no
    # place): said apart; every commit is shown by its short hash (8 digits), however it
    # was spelled.
    # 44444444 regressed: it may lie before 55555555, so the begin is one of the known order.
    assert fla.sentence.startswith(
        "where the order is known: begins at 55555555 (last good 22222222); ends between"
    )
    assert "66666666 (untestable)" in fla.sentence
    assert fla.sentence.endswith("33333333 (passed), 44444444 (regressed)")
    assert fla.key_metric == "fused_chunk.scale0.125.dv.rel_err"
    assert rows[("flashinfer_mla_oob_nan", "l4")].sentence.startswith("no verdict")
    trt = rows[("trt_sdpa_scale", "h100")]
    assert trt.axis == "base"
    assert "ngc2501 (error)" in trt.sentence


def test_declared_versions_are_ordered_by_pep440(
    matrix: Matrix, results: tuple[Result, ...]
) -> None:
    # matrix.yaml lists flashinfer as 0.5.3, 0.2.2, 0.2.4, 0.2.3: PEP 440 wins.
    data = build_report(results, matrix)
    grid = next(rr.grid for rr in data.repros if rr.name == "flashinfer_mla_oob_nan")
    assert grid.rows == ("0.2.2", "0.2.3", "0.2.4", "0.5.3")
    trt = next(rr.grid for rr in data.repros if rr.name == "trt_sdpa_scale")
    assert trt.rows == ("ngc2412", "ngc2501")  # by NGC release, not declared order


def test_reproduced_table(matrix: Matrix, results: tuple[Result, ...]) -> None:
    md = reproduced_table_markdown(results, matrix)
    lines = md.strip().splitlines()
    assert lines[0] == "| regression | GPU | first bad | first good | key metric |"
    assert lines[2] == (
        "| flashinfer_mla_oob_nan | h100 | 0.2.2 (first tested) | 0.2.4 | "
        "mla.fa2.fp16.page1.max_abs: not finite at 0.2.2 vs 0.0009 at 0.2.4 (threshold 0.01) |"
    )
    assert any(
        line.startswith("| fla_fused_chunk_scale | h100 | 55555555 (last good") for line in lines
    )
    assert not any("trt_sdpa_scale" in line for line in lines)  # not reproduced
    assert len(lines) == 5


def test_results_without_matrix(results: tuple[Result, ...], tmp_path: Path) -> None:
    paths = write_report(results=results, out_dir=tmp_path)
    html = paths["html"].read_text()
    assert "no result yet" in html  # the legend still explains it
    data = build_report(results)
    fla = next(rr.grid for rr in data.repros if rr.name == "fla_fused_chunk_scale")
    # Without matrix.yaml, commits are ordered by their commit dates from provenance.
    assert fla.rows == tuple(str(i) * 8 for i in range(1, 8))


def test_empty_results(tmp_path: Path) -> None:
    paths = write_report(results=[], out_dir=tmp_path)
    assert "repromatrix report" in paths["html"].read_text()
    assert ET.parse(paths["junit"]).getroot().attrib["tests"] == "0"
    assert pd.read_csv(paths["csv"]).empty


def _r(
    status: Status, metrics: dict[str, float | None], thresholds: dict[str, float | None]
) -> Result:
    return Result(
        key="k",
        cell_id="c",
        repro="r",
        base="host",
        image=None,
        gpu="g",
        pins={},
        status=status,
        reason="",
        metrics=metrics,
        thresholds=thresholds,
    )


def test_key_metric_prefers_a_metric_with_a_threshold() -> None:
    rs = [
        _r(
            Status.REGRESSED,
            {"a.latency_ms": 1.0, "a.x.max_abs": 5.0, "a.y.max_abs": 0.0},
            {"a.x.max_abs": 1.0, "a.y.max_abs": 1.0},
        ),
        _r(
            Status.PASSED,
            {"a.latency_ms": 2.0, "a.x.max_abs": 0.1, "a.y.max_abs": 0.0},
            {"a.x.max_abs": 1.0, "a.y.max_abs": 1.0},
        ),
    ]
    # Both have thresholds; x agrees with the verdicts, y does not.
    assert choose_key_metric(rs) == "a.x.max_abs"
    assert choose_key_metric(rs, declared="a.latency_ms") == "a.latency_ms"
    assert choose_key_metric(rs, declared="missing") == "a.x.max_abs"
    no_thr = [_r(Status.PASSED, {"z.latency_ms": 1.0, "z.rel_err": 0.1}, {})]
    assert choose_key_metric(no_thr) == "z.rel_err"
    assert choose_key_metric([_r(Status.PASSED, {}, {})]) is None
    assert threshold_for("a.b.max_abs", {"max_abs": 2.0, "b.max_abs": 1.0}) == 1.0
    assert threshold_for("a.b.max_abs", {}) is None


def _series(values: dict[str, float | None], gaps: dict[str, str] | None = None) -> SeriesValues:
    return SeriesValues(label="h100", gpu="h100", color="#1f77b4", values=values, gaps=gaps or {})


def test_chart_log_scale_and_gaps() -> None:
    chart = build_chart(
        metric="m",
        rows=["1", "2", "3", "4", "5"],
        series=[_series({"1": 1e-5, "2": None, "3": 0.5, "4": math.nan}, {"5": "timeout"})],
        threshold=1e-3,
    )
    assert chart is not None
    assert chart.log
    (line,) = chart.lines
    assert len(line.segments) == 2  # the null at "2" breaks the line
    assert len(line.missing) == 2
    assert [g.status for g in line.gaps] == ["timeout"]
    assert chart.threshold_y is not None
    linear = build_chart(
        metric="m", rows=["1", "2"], series=[_series({"1": 1.0, "2": 2.0})], threshold=None
    )
    assert linear is not None
    assert not linear.log
    assert build_chart(metric="m", rows=["1"], series=[_series({"1": None})], threshold=1.0) is None


@pytest.mark.parametrize(
    ("values", "threshold"),
    [
        ({"1": -3.4e38, "2": -3.4e38}, None),  # float32's lowest, a masked logit's minimum
        ({"1": -1e17}, None),  # below -2**53, adding 1 gives the same number
        ({"1": -1e308, "2": 1e308}, None),  # the span is more than a float holds
        ({"1": -1.7e308, "2": 1e308, "3": 1.7e308}, None),  # and three quarters of it
        ({"1": 0.0}, 1e308),  # half the span is, twice it is not
        ({"1": 1e-3, "2": 1.7e308}, None),  # log scale up to 1e309
    ],
)
def test_chart_of_extreme_values_is_drawn(
    values: dict[str, float | None], threshold: float | None
) -> None:
    """A metric whose values were all one number below -2**53 stopped the whole report
    (ZeroDivisionError, exit 70): the axis' top was that number plus 1, which is the number
    itself; one near float64's largest (1.8e308, an overflow's max_abs) did too, on a log
    axis (OverflowError: its top tick is 1e309). Values spanning more than a float holds
    put NaN or infinite coordinates in the SVG."""
    chart = build_chart(
        metric="m", rows=list(values), series=[_series(values)], threshold=threshold
    )
    assert chart is not None
    numbers = [t.pos for t in chart.y_ticks] + [p.y for ln in chart.lines for p in ln.points]
    assert all(chart.top <= y <= chart.top + chart.plot_h for y in numbers), numbers


def test_chart_breaks_at_points_without_a_value() -> None:
    """A timed-out cell between two values is a gap with its status, not a straight line."""
    chart = build_chart(
        metric="m",
        rows=["a", "b", "c", "d"],
        series=[_series({"a": 1.0, "d": 2.0}, {"b": "timeout", "c": "not_run"})],
        threshold=None,
    )
    assert chart is not None
    (line,) = chart.lines
    assert len(line.segments) == 2
    assert all("," in seg and " " not in seg for seg in line.segments)  # one point each
    assert [g.status for g in line.gaps] == ["timeout", "not_run"]
    # A row that is not a point of the series (another GPU's commit) does not break it.
    joined = build_chart(
        metric="m", rows=["a", "b", "c"], series=[_series({"a": 1.0, "c": 2.0})], threshold=None
    )
    assert joined is not None
    assert len(joined.lines[0].segments) == 1


def test_chart_is_wide_and_tall_enough_for_its_labels() -> None:
    rows = ["0.2.2", "v0.5.2 · 9c8e42e7", "x" * 200]
    chart = build_chart(
        metric="m", rows=rows, series=[_series(dict.fromkeys(rows, 1.0))], threshold=None
    )
    assert chart is not None
    last = chart.x_ticks[-1]
    assert last.full == "x" * 200
    assert len(last.label) <= 40
    reach = (len(last.label) * 6.0 + 10) * math.sqrt(0.5)  # 10 px monospace at 45°
    assert chart.width >= last.pos + reach
    assert chart.height >= chart.x_label_y + reach


def test_fmt_num() -> None:
    assert fmt_num(None) == "not finite"  # kept as null: NaN or inf, as every format says
    assert fmt_num(math.nan) == "NaN"
    assert fmt_num(math.inf) == "inf"
    assert fmt_num(0.0009) == "0.0009"
    assert fmt_num(1.5e-7) == "1.5e-07"


def test_large_report_streams_whole_documents(tmp_path: Path) -> None:
    """Across the blob's 1000-cell chunks and the streamed JUnit, nothing is lost or torn."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from bench_report import synthetic_results

    results = synthetic_results(2500)
    paths = write_report(results=results, out_dir=tmp_path)
    html = paths["html"].read_text()
    blob = html.split('<script type="application/json" id="cells-data">', 1)[1]
    data = json.loads(blob.split("</script>", 1)[0])
    assert len(data["cells"]) == len({r.key for r in results})
    # A page this big lays out off-screen sections only when scrolled to; small ones whole.
    assert '<body class="big">' in html
    small = write_report(results=results[:10], out_dir=tmp_path / "small")["html"]
    assert "<body>" in small.read_text()
    root = ET.parse(paths["junit"]).getroot()
    assert int(root.attrib["tests"]) == len(data["cells"])
    assert sum(1 for _ in root.iter("testcase")) == len(data["cells"])


def test_the_summary_shows_the_metric_that_failed_where_the_interval_begins() -> None:
    """scale_err fails from 1.1, offset_err from 1.3: offset_err, chosen over every record,
    was shown where the regression begins ("offset_err: 0 at 1.1 vs 0 at 1.0")."""
    scale = {"1.1": 0.5, "1.2": 0.5}
    offset = {"1.3": 0.7, "1.4": 0.7, "1.5": 0.7}
    rs = []
    for v in ("1.0", "1.1", "1.2", "1.3", "1.4", "1.5"):
        metrics: dict[str, float | None] = {
            "scale_err": scale.get(v, 0.0),
            "offset_err": offset.get(v, 0.0),
        }
        bad = v != "1.0"
        limits: dict[str, float | None] = dict.fromkeys(metrics, 1e-9)
        rs.append(
            _r(Status.REGRESSED if bad else Status.PASSED, metrics, limits).model_copy(
                update={"key": f"k{v}", "cell_id": f"c{v}", "pins": {"lib": v}}
            )
        )
    assert choose_key_metric(rs) == "offset_err"
    (row,) = summary_rows(rs)
    assert row.first_bad == "1.1"
    assert row.key_metric == "scale_err"
    assert (row.bad_value, row.good_value, row.threshold) == (0.5, 0.0, 1e-9)


def test_an_out_folder_whose_name_is_not_utf8_gets_every_file(
    results: tuple[Result, ...], tmp_path: Path
) -> None:
    """Arrow took the Parquet path as UTF-8 text: `--out $'o\\xffut'` was an internal error
    that left an empty folder."""
    import os

    out = tmp_path / os.fsdecode(b"o\xffut")
    paths = write_report(results=results, out_dir=out)
    assert paths["parquet"].stat().st_size > 0
    assert pd.read_csv(paths["csv"]).shape[0] > 0


def test_the_header_counts_repros_and_those_reproduced(tmp_path: Path) -> None:
    """A store where one repro regressed and another only errored read "2 regressions"."""
    bad = _r(Status.REGRESSED, {"m.max_abs": 1.0}, {"m.max_abs": 0.1})
    errored = Result(**{**_r(Status.ERROR, {}, {}).__dict__, "repro": "gone", "key": "k2"})
    html = write_report(results=[bad, errored], out_dir=tmp_path)["html"].read_text()
    assert "· 2 repros, 1 reproduced</p>" in html
    assert "regressions</p>" not in html
