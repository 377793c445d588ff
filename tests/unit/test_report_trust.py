"""What makes a report trustworthy at a glance: best evidence wins, flaky cells show their
counts, thresholds are matched per metric, commands say why, and no field's content can
break (or bloat) a writer."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from repromatrix.cli import main
from repromatrix.entries import collect_entries
from repromatrix.errors import ExitCode
from repromatrix.model import (
    CPU,
    HOST_BASE,
    Base,
    BaseKind,
    Cell,
    GpuType,
    InstallMode,
    Pin,
    SourceKind,
    Status,
)
from repromatrix.not_run import not_run_lines
from repromatrix.records import Result
from repromatrix.report import build_report, write_report
from repromatrix.report.compare import FLIPPED, LOST, NEW_REGRESSION, compare
from repromatrix.report.details import detail
from repromatrix.report.escape import md_cell
from repromatrix.report.metrics import match_threshold, threshold_for
from repromatrix.report.table import neutralize
from repromatrix.store import ResultStore

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = ROOT / "results" / "published"


def rec(
    status: Status,
    *,
    key: str = "k",
    label: str = "1.0",
    finished: str = "2026-01-01T00:00:00+00:00",
    metrics: dict[str, float | None] | None = None,
    **extra: Any,
) -> Result:
    return Result(
        key=key,
        cell_id=f"r[cpu,host,lib={label}]",
        repro="r",
        base="host",
        gpu="cpu",
        pins={"lib": label},
        status=status,
        reason=extra.pop("reason", status.value),
        finished=finished,
        metrics=metrics or {},
        **extra,
    )


def test_a_record_that_could_not_test_never_hides_one_that_did() -> None:
    verdict = rec(Status.PASSED, finished="2026-01-01T00:00:00+00:00")
    later = [
        rec(Status.NOT_RUN, finished="2026-03-01T00:00:00+00:00", host="cpu-box"),
        rec(Status.UNTESTABLE, key="other", finished="2026-04-01T00:00:00+00:00"),
        rec(Status.TIMEOUT, finished="2026-05-01T00:00:00+00:00"),
    ]
    (e,) = collect_entries([verdict, *later])
    assert e.result is verdict
    assert len(e.history) == 3  # every record stays listed in the details


def test_a_record_with_numbers_beats_a_newer_one_without() -> None:
    """A CPU run without torch must not hide the published untestable record with numbers."""
    published = rec(Status.UNTESTABLE, metrics={"ort.max_abs": 4e-7})
    no_torch = rec(Status.UNTESTABLE, finished="2026-06-01T00:00:00+00:00", reason="no torch")
    (e,) = collect_entries([published, no_torch])
    assert e.result is published


def test_disagreeing_records_are_flaky_with_their_counts() -> None:
    rs = [rec(Status.PASSED, finished=f"2026-01-0{i}T00:00:00+00:00") for i in range(1, 4)] + [
        rec(Status.REGRESSED, finished=f"2026-02-0{i}T00:00:00+00:00") for i in range(1, 3)
    ]
    (e,) = collect_entries(rs)
    assert e.flaky
    assert e.flaky_text == "flaky: 3 passed, 2 regressed"
    assert detail(e)["flaky"] == "flaky: 3 passed, 2 regressed"
    # The same commit spelled two ways (matrix and bisect keys) is one experiment too.
    sha = "c" * 40
    two = [
        rec(Status.PASSED, key="m", label="cccccccc", commits={"lib": sha}),
        rec(Status.REGRESSED, key="b", label="cccccccccc", commits={"lib": sha}),
    ]
    (f,) = collect_entries(two)
    assert f.flaky_text == "flaky: 1 passed, 1 regressed"


def test_an_older_repro_script_is_history_not_flakiness() -> None:
    old = rec(Status.REGRESSED, key="old-script")
    new = rec(Status.PASSED, key="new-script", finished="2026-02-01T00:00:00+00:00")
    (e,) = collect_entries([old, new])
    assert not e.flaky
    assert e.result is new


def test_the_key_matrix_yaml_gives_now_is_current_however_other_keys_are_dated() -> None:
    pin = Pin(
        library="lib", kind=SourceKind.PYPI, source="lib", rev="1.0", label="1.0",
        install=InstallMode.PIP, import_name="lib",
    )  # fmt: skip
    cell = Cell(
        repro="r", script=Path("r.py"), base=Base(name=HOST_BASE, kind=BaseKind.HOST),
        gpu=CPU, pins=(pin,), params={}, timeout_s=1.0, key="now",
    )  # fmt: skip
    # A threshold edited and then undone: the records of the edit ("edited") are newer,
    # or dated ahead by another host's clock; the matrix defines the cell as "now" again.
    now = [
        rec(Status.REGRESSED, key="now", finished="2026-01-01T00:00:00+00:00"),
        rec(Status.PASSED, key="now", finished="2026-01-02T00:00:00+00:00"),
    ]
    edited = rec(Status.PASSED, key="edited", finished="2026-06-01T00:00:00+00:00")
    (e,) = collect_entries([*now, edited], [cell])
    assert e.result is now[1]
    assert e.flaky_text == "flaky: 1 passed, 1 regressed"  # the edit's record is history
    assert edited in e.history
    # Without the matrix, the newest definition stays the current one.
    (plain,) = collect_entries([*now, edited])
    assert plain.result is edited
    assert not plain.flaky


def test_thresholds_are_matched_to_the_metrics_they_bound() -> None:
    thresholds: dict[str, float | None] = {
        "max_rel_err": 0.01,
        "max_mismatch_frac": 1e-3,
        "ort_max_abs_norm": 1e-4,
        "atol": 1e-3,
        "a.b.max_abs": 2.0,
    }
    assert threshold_for("rel_err.s0p125.fused_chunk.dv", thresholds) == 0.01
    assert threshold_for("mla.fa2.big.nan.mismatch_frac", thresholds) == 1e-3
    assert threshold_for("ort.sdpa_vs_ref.max_abs_norm", thresholds) == 1e-4
    assert threshold_for("x.a.b.max_abs", thresholds) == 2.0
    assert match_threshold("mla.fa2.big.nan.max_abs", thresholds) is None  # atol is no bound
    assert threshold_for("latency.rel_err_ms", thresholds) is None
    r = rec(Status.REGRESSED, metrics={"rel_err.s0p125.fused_chunk.dv": 6.0}, thresholds=thresholds)
    (e,) = collect_entries([r])
    d = detail(e)
    assert d["metrics"] == [["rel_err.s0p125.fused_chunk.dv", "6", "0.01", "max_rel_err"]]
    assert "max_rel_err" not in d["thresholds"]
    assert d["thresholds"]["atol"] == "0.001"


def test_formula_cells_are_neutralized_in_the_csv(tmp_path: Path) -> None:
    hostile = rec(
        Status.ERROR,
        reason='=HYPERLINK("http://evil.example","click")',
        host="+cmd|' /C calc'!A0",
        run_id="@SUM(1+1)",
        executor="-2+3",
        started="\t=1",
    )
    paths = write_report(results=[hostile], out_dir=tmp_path)
    with paths["csv"].open(newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["reason"].startswith("'=HYPERLINK")
    assert row["host"] == "'+cmd|' /C calc'!A0"
    assert row["run_id"] == "'@SUM(1+1)"
    assert row["executor"] == "'-2+3"
    assert row["started"] == "'\t=1"
    assert row["status"] == "error"
    assert neutralize("\rx") == "'\rx"
    assert neutralize(-1.5) == -1.5
    # Parquet keeps the text as recorded.
    assert pd.read_parquet(paths["parquet"])["host"][0] == "+cmd|' /C calc'!A0"


def test_a_huge_or_odd_field_neither_breaks_nor_bloats_a_report(tmp_path: Path) -> None:
    huge = "x" * 20_000_000
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(200):
        node["d"] = {}
        node = node["d"]
    odd = rec(
        Status.ERROR,
        reason=huge,
        stdout_tail=huge,
        provenance={"deep": deep, "lone": "\ud800 surrogate", "big": list(range(10_000))},
        host="\udfff",
    )
    paths = write_report(results=[odd], out_dir=tmp_path)
    for path in paths.values():
        assert path.stat().st_size < 2_000_000, path.name
    html = paths["html"].read_text(encoding="utf-8")
    assert "characters cut" in html
    assert "\\ufffd surrogate" in html  # in the JSON blob, escaped
    assert "nested too deep" in html


def test_chart_tooltips_hold_no_control_or_bidirectional_character(tmp_path: Path) -> None:
    """Every text the pages print is made printable, but the chart points' tooltips were
    written past it: a GPU or revision named with NUL, ESC or a right-to-left override
    put them raw into index.html (a NUL makes tools take the page for a binary file; the
    override shows the tooltip in another order than it is)."""
    odd = "g\x00\x1b[31m\u202eevil\u200b"
    records = [
        Result(key=f"k{v}", cell_id=f"r{v}", repro="r", base="host", gpu=odd,
               pins={"lib": f"{v}{odd}"}, status=st, finished="2026-01-01T00:00:00+00:00",
               metrics={"rel_err.x": x}, thresholds={"max_rel_err": 0.01})
        for v, st, x in (("1", Status.PASSED, 1e-3), ("2", Status.REGRESSED, 0.5))
    ]  # fmt: skip
    html = write_report(results=records, out_dir=tmp_path)["html"].read_text(encoding="utf-8")
    assert "<circle" in html
    unsafe = [c for c in set(html) if not (c.isprintable() or c in "\t\n")]
    assert unsafe == []


def test_compare_lists_flips_new_regressions_and_lost_verdicts() -> None:
    old = [
        rec(Status.REGRESSED, label="1"),
        rec(Status.PASSED, label="2"),
        rec(Status.PASSED, label="3"),
        rec(Status.TIMEOUT, label="4"),
    ]
    new = [
        rec(Status.PASSED, label="1"),
        rec(Status.REGRESSED, label="2"),
        rec(Status.TIMEOUT, label="3"),
        rec(Status.REGRESSED, label="4"),
        rec(Status.REGRESSED, label="5"),
    ]
    cmp = compare(old, new, old_label="old/")
    kinds = {(c.pins, c.group, c.kind) for c in cmp.changes}
    assert kinds == {
        ("lib=1", FLIPPED, "fixed"),
        ("lib=2", FLIPPED, "regressed (was passing)"),
        ("lib=3", LOST, "now timeout"),
        ("lib=4", NEW_REGRESSION, "regressed (timeout before)"),
        ("lib=5", NEW_REGRESSION, "regressed (not tested before)"),
    }
    assert cmp.headline.startswith("2 verdict(s) flipped (1 fixed, 1 newly regressed")
    # Passing now under another definition (a threshold raised in matrix.yaml's params):
    # said, since the library did not change.
    (redefined,) = compare([rec(Status.REGRESSED, key="a")], [rec(Status.PASSED, key="b")]).changes
    assert redefined.kind.startswith("fixed (under another cell key: the repro's script")
    # The headline said "1 fixed" of it, for a PR comment to read as a library fix.
    cmp = compare([rec(Status.REGRESSED, key="a")], [rec(Status.PASSED, key="b")])
    assert cmp.headline.startswith(
        "1 verdict(s) flipped (0 fixed, 0 newly regressed, 0 flaky changes, 1 under another "
        "cell key: the experiment changed, not the library)"
    ), cmp.headline
    both = compare(
        [*old, rec(Status.PASSED, key="a", label="6")],
        [*new, rec(Status.REGRESSED, key="b", label="6")],
    )
    assert both.headline.startswith(
        "3 verdict(s) flipped (1 fixed, 1 newly regressed, 0 flaky changes, 1 under another"
    ), both.headline


def test_what_changed_is_listed_along_the_axis_not_by_the_labels_text(tmp_path: Path) -> None:
    """changes.md and changes.html listed the flips of 1.2, 1.9 and 1.10 as 1.10, 1.2, 1.9
    (the labels' text order), where every other output puts them along the axis."""
    labels = ["1.2", "1.9", "1.10"]
    old = [rec(Status.PASSED, key=f"k{x}", label=x) for x in labels]
    new = [rec(Status.REGRESSED, key=f"k{x}", label=x) for x in labels]
    orders = build_report(results=[*old, *new]).orders
    assert [c.pins for c in compare(old, new, orders=orders).changes] == [
        "lib=1.2", "lib=1.9", "lib=1.10"
    ]  # fmt: skip
    (tmp_path / "old").mkdir()
    ResultStore(tmp_path / "old", host="a").append_many(old)
    ResultStore(tmp_path / "new", host="a").append_many(new)
    out = tmp_path / "rep"
    argv = ["report", "--results", str(tmp_path / "new"), "--compare", str(tmp_path / "old")]
    assert main([*argv, "--out", str(out)]) == 0
    md = (out / "changes.md").read_text(encoding="utf-8")
    assert md.index("lib=1.2") < md.index("lib=1.9") < md.index("lib=1.10"), md


def test_report_of_a_missing_results_path_exits_3_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    out = tmp_path / "out"
    code = main(["report", "--results", str(missing), "--out", str(out)])
    assert code == ExitCode.RESULTS
    assert int(ExitCode.RESULTS) == 3
    err = capsys.readouterr().err
    assert f"--results {missing}: no such file or directory" in err
    assert "Traceback" not in err
    assert not out.exists()  # no empty report pretending all is well
    code = main(
        ["report", "--results", str(PUBLISHED), "--compare", str(missing), "--out", str(out)]
    )
    assert code == 3
    assert f"--compare {missing}" in capsys.readouterr().err


def test_report_compare_writes_what_changed(tmp_path: Path) -> None:
    old = tmp_path / "old"
    ResultStore(old, host="a").append_many([rec(Status.PASSED, label="2")])
    new = tmp_path / "new"
    ResultStore(new, host="b").append_many([rec(Status.REGRESSED, label="2")])
    out = tmp_path / "out"
    code = main(
        ["--matrix", str(tmp_path / "none.yaml"), "report", "--results", str(new),
         "--compare", str(old), "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    page = (out / "changes.html").read_text()
    assert "regressed (was passing)" in page
    assert 'href="changes.html"' in (out / "index.html").read_text()
    assert (
        "| r | cpu | host | lib=2 | passed | regressed | regressed (was passing) |"
        in (out / "changes.md").read_text()
    )


def _cell(gpu: GpuType, n: int) -> Cell:
    return Cell(
        repro="fla",
        script=Path("r.py"),
        base=Base(name=HOST_BASE, kind=BaseKind.HOST),
        gpu=gpu,
        pins=(),
        params={"n": n},
        timeout_s=1.0,
        key=f"k{n}",
    )


def test_a_run_says_why_each_cell_is_not_run_here() -> None:
    h100 = GpuType(name="H100", compute_capability="9.0", smi_names=("NVIDIA H100",))
    t4 = GpuType(name="T4", compute_capability="7.5", smi_names=("Tesla T4",))
    why = "no H100 on this host (has no GPU (nvidia-smi not found))"
    items = [(_cell(h100, i), why) for i in range(4)]
    items.append((_cell(t4, 9), "no T4 on this host (has 0: NVIDIA H200)"))
    items.append(
        (_cell(CPU, 10), "base 'ngc' is the image x; the local executor runs only the host")
    )
    assert not_run_lines(items) == [
        "4 cells need an H100; this host has none (it has no GPU (nvidia-smi not found))",
        "1 cell needs a T4; this host has none (it has 0: NVIDIA H200)",
        "1 cell not run here: base 'ngc' is the image x; the local executor runs only the host",
    ]


def test_the_run_summary_prints_the_reasons(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REPROMATRIX_FAKE_GPUS", "")
    code = main(
        ["--matrix", str(ROOT / "matrix.yaml"), "run", "--gpu", "H100", "--repro",
         "fla_fused_chunk_scale", "--executor", "local", "--results", str(tmp_path / "res"),
         "--cache", str(tmp_path / "cache"), "--no-progress"]
    )  # fmt: skip
    assert code == 0
    err = capsys.readouterr().err
    assert "repromatrix: 4 cells need an H100; this host has none (it has no GPU)" in err
    notes = ResultStore(tmp_path / "res").load().results
    assert {r.status for r in notes} == {Status.NOT_RUN}
    assert all(r.reason.startswith("no H100 on this host") for r in notes)


def test_published_details_fill_the_threshold_column(tmp_path: Path) -> None:
    results = ResultStore(PUBLISHED).load().results
    paths = write_report(results=results, out_dir=tmp_path)
    html = paths["html"].read_text()
    blob = json.loads(html.split('id="cells-data">', 1)[1].split("</script>", 1)[0])
    fla = [c for c in blob["cells"] if c["repro"] == "fla_fused_chunk_scale"]
    rows = {m[0]: m for c in fla for m in c.get("metrics", [])}
    assert rows["rel_err.s0p125.fused_chunk.dv"][2:] == ["0.01", "max_rel_err"]


def test_the_readme_table_and_compat_page_name_flaky_points_around_a_boundary(
    tmp_path: Path,
) -> None:
    from repromatrix.report import reproduced_table_markdown

    def at(label: str, *statuses: Status) -> list[Result]:
        return [
            rec(s, key=f"k{label}", label=label, finished=f"2026-01-0{i + 1}T00:00:00+00:00")
            for i, s in enumerate(statuses)
        ]

    records = [
        *at("1.0", Status.PASSED),
        *at("1.1", Status.PASSED, Status.REGRESSED),  # flaky: the break may be here
        *at("1.2", Status.REGRESSED),
        *at("1.3", Status.REGRESSED, Status.PASSED),  # flaky: the fix may be here
        *at("1.4", Status.PASSED),
    ]
    # As flaky, with the counts: "no verdict at 1.1" alone hid that 1.1 regressed too.
    # The compat page said "fixed in 1.4 (no verdict at 1.3 ...)": the fix may be 1.3.
    table = reproduced_table_markdown(records)
    flaky = "(flaky: 1 passed, 1 regressed)"
    assert (
        f"| 1.2 (last good 1.0; no verdict at 1.1 {flaky}) | 1.4 (no verdict at 1.3 {flaky}) |"
        in (table)
    )
    write_report(results=records, out_dir=tmp_path / "rep")
    compat = (tmp_path / "rep" / "compat.html").read_text()
    assert (
        f"regressed 1.2 (no verdict before it at 1.1 {flaky}), fixed at or before 1.4 (no "
        "verdict at "
        f"1.3 {flaky})"
    ) in compat


def test_releases_a_listing_saw_between_two_tested_ones_make_the_boundary_a_range(
    tmp_path: Path,
) -> None:
    from packaging.version import Version

    from repromatrix.kept_releases import save_listing, stored_releases
    from repromatrix.pypi_index import Listing
    from repromatrix.report import build_report

    records = [
        rec(Status.PASSED, key="a", label="1.0"),
        rec(Status.REGRESSED, key="b", label="1.12"),
    ]
    plain = build_report(records)
    assert "begins at 1.12 (last good 1.0)" in plain.repros[0].findings[0].summary
    # What a bisection of the library listed, kept under the cache.
    listing = Listing(versions=frozenset(map(Version, ["1.0", "1.1", "1.11", "1.12", "2.0"])),
                      sources=("folder w",))  # fmt: skip
    save_listing(tmp_path, "lib-project", listing)
    listed = stored_releases(tmp_path, "Lib_Project")
    data = build_report(records, releases={"lib": listed})
    summary = data.repros[0].findings[0].summary
    assert "begins between 1.0 and 1.12" in summary, summary
    assert "1.1 (not run in this series), 1.11 (not run in this series)" in summary
    assert "2.0" not in summary  # outside what was tested: says nothing


def test_report_readme_table_uses_the_releases_a_bisection_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`report --readme` writes the table from the report it built: releases that a
    bisection listed between the tested ends make the boundary unsure there too."""
    from packaging.version import Version

    from repromatrix.cli import main
    from repromatrix.kept_releases import save_listing
    from repromatrix.pypi_index import Listing

    (tmp_path / "r.py").write_text("")
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(
        "schema: 1\n"
        "libraries:\n"
        "  lib: {pypi: lib-project, import: lib, versions: ['1.0', '1.12']}\n"
        "repros:\n"
        "  r: {script: r.py, gpus: [cpu], libraries: {lib: all}}\n"
    )
    store = tmp_path / "results"
    store.mkdir()
    records = [
        rec(Status.PASSED, key="a", label="1.0"),
        rec(Status.REGRESSED, key="b", label="1.12"),
    ]
    (store / "x.jsonl").write_text("".join(json.dumps(r.record()) + "\n" for r in records))
    cache = tmp_path / "cache"
    listing = Listing(versions=frozenset(map(Version, ["1.0", "1.1", "1.12"])), sources=("w",))
    save_listing(cache, "lib-project", listing)
    readme = tmp_path / "README.md"
    readme.write_text("<!-- reproduced:begin -->\nold\n<!-- reproduced:end -->\n")
    argv = ["--matrix", str(matrix), "report", "--results", str(store), "--cache", str(cache)]
    assert main([*argv, "--out", str(tmp_path / "rep"), "--readme", str(readme)]) == 0, (
        capsys.readouterr().err
    )
    assert "| 1.12 (last good 1.0; no verdict at 1.1) |" in readme.read_text()
    summary = (tmp_path / "rep" / "summary.md").read_text()
    assert "between 1.0 and 1.12" in summary


def test_junit_counts_every_failure_it_writes_a_flaky_pass_included(tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    records = [
        rec(Status.REGRESSED, key="a", label="1.0", finished="2026-01-01T00:00:00+00:00"),
        rec(Status.PASSED, key="a", label="1.0", finished="2026-01-02T00:00:00+00:00"),
        rec(Status.PASSED, key="b", label="1.1"),
        rec(Status.REGRESSED, key="c", label="1.2"),
    ]
    paths = write_report(results=records, out_dir=tmp_path)
    root = ET.parse(paths["junit"]).getroot()
    for node in (root, *root.findall("testsuite")):
        assert node.attrib["failures"] == str(len(node.findall(".//failure"))) == "2"
    kinds = sorted(f.attrib["type"] for f in root.iter("failure"))
    assert kinds == ["flaky", "regressed"]


def test_junit_names_show_no_bidirectional_controls(tmp_path: Path) -> None:
    """The other outputs showed `probe??evil?`; junit.xml kept U+202E and U+2066, which CI
    pages display as a name in another order than it is."""
    import xml.etree.ElementTree as ET

    odd = "probe\u202e\u2066evil\u2069"
    changes = {"repro": odd, "host": odd, "cell_id": f"{odd}[cpu,host,lib=1.0]"}
    records = [rec(Status.REGRESSED).model_copy(update=changes)]
    paths = write_report(results=records, out_dir=tmp_path)
    text = paths["junit"].read_text(encoding="utf-8")
    assert not set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069") & set(text)
    root = ET.fromstring(text)
    assert root.find("testsuite").attrib["name"] == "probe??evil?"  # type: ignore[union-attr]
    (case,) = root.iter("testcase")
    assert case.attrib["classname"] == "repromatrix.probe??evil?"
    assert (case.findtext("system-out") or "").startswith("[repromatrix] ran on probe??evil?")


def test_junit_names_that_differ_only_by_an_invisible_character_look_different(
    tmp_path: Path,
) -> None:
    """`r` and `r\u200b` were two testsuites a CI page shows alike (every other output
    shows the zero-width space as "?")."""
    import xml.etree.ElementTree as ET

    plain = rec(Status.PASSED, key="a").model_copy(update={"host": "h"})
    hidden = rec(Status.REGRESSED, key="b").model_copy(
        update={"repro": "r\u200b", "cell_id": "r\u200b[cpu,host,lib=1.0]", "host": "h\ufeff"}
    )
    paths = write_report(results=[plain, hidden], out_dir=tmp_path)
    text = paths["junit"].read_text(encoding="utf-8")
    assert "\u200b" not in text
    assert "\ufeff" not in text
    names = sorted(s.attrib["name"] for s in ET.fromstring(text).iter("testsuite"))
    assert names == ["r", "r?"]
    hosts = sorted(
        (c.findtext("system-out") or "").split(",")[0] for c in ET.fromstring(text).iter("testcase")
    )
    assert hosts == ["[repromatrix] ran on h", "[repromatrix] ran on h?"]


def test_the_compat_page_never_shows_a_series_with_flaky_points_as_passing(
    tmp_path: Path,
) -> None:
    records = [
        rec(Status.PASSED, key="a", label="1.0"),
        rec(Status.PASSED, key="b", label="1.1", finished="2026-01-01T00:00:00+00:00"),
        rec(Status.REGRESSED, key="b", label="1.1", finished="2026-01-02T00:00:00+00:00"),
        rec(Status.PASSED, key="b", label="1.1", finished="2026-01-03T00:00:00+00:00"),
        rec(Status.PASSED, key="c", label="1.2"),
    ]
    write_report(results=records, out_dir=tmp_path)
    compat = (tmp_path / "compat.html").read_text()
    assert "flaky at 1.1 (2 passed, 1 regressed); passes at 2 of 3" in compat
    assert "passes where tested" not in compat


def test_a_regression_seen_only_where_the_order_is_unknown_is_said_so_in_the_tables() -> None:
    """Commits without a mirror or a date have no place on the axis: the README table and
    summary.md said "first bad" empty, "still present" and "err: null at None"."""
    from repromatrix.report import build_report
    from repromatrix.report.markdown import render_markdown, reproduced_table

    def at(label: str, status: Status, commit: str | None, day: int) -> Result:
        return rec(status, key=f"k{label}", label=label,
                   commits={"lib": commit} if commit else {},
                   finished=f"2025-02-0{day}T00:00:00+00:00", metrics={"err": 1.0})  # fmt: skip

    records = [
        at("1.0", Status.PASSED, None, 1),
        at("aaaaaaaa", Status.REGRESSED, "a" * 40, 2),
        at("2.0", Status.PASSED, None, 3),
        at("cccccccc", Status.PASSED, "c" * 40, 4),
    ]
    data = build_report(records)
    table = reproduced_table(data.summary_rows)
    assert "| r | cpu | at aaaaaaaa (order unknown) | unknown | err |" in table
    assert "still present" not in table
    summary = render_markdown(data)
    assert "None" not in summary
    assert "order unknown" in summary
    # Beside a regression whose place is known, compat.html named the unknown one first,
    # then "then": as if it came before.
    from repromatrix.report.compat import build_compat

    data = build_report([*records, at("3.0", Status.REGRESSED, None, 5)])
    (row,) = build_compat(data, None).rows
    (((line,),)) = row.cells
    assert line.text == (
        "regressed 3.0, still present where the order is known; also at aaaaaaaa "
        "(order unknown); passed at cccccccc (order unknown)"
    )


def test_the_report_command_counts_cells_as_summary_md_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Spellings of one release are one cell (1.0 and 1.0.0): the command said 2."""
    store = tmp_path / "results"
    store.mkdir()
    records = [rec(Status.PASSED, key="a", label="1.0"), rec(Status.PASSED, key="b", label="1.0.0")]
    (store / "x.jsonl").write_text("".join(json.dumps(r.record()) + "\n" for r in records))
    argv = ["--matrix", str(tmp_path / "none.yaml"), "report", "--results", str(store)]
    assert main([*argv, "--out", str(tmp_path / "rep")]) == 0
    summary = (tmp_path / "rep" / "summary.md").read_text()
    assert "2 records from 1 machine, 1 cell, 1 repro, 0 reproduced." in summary
    assert "report of 1 cell (2 records)" in capsys.readouterr().err


def test_the_report_command_says_counts_of_one_in_the_singular(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A report of one record said "report of 1 cells (1 records)"."""
    store = tmp_path / "results"
    store.mkdir()
    (store / "x.jsonl").write_text(json.dumps(rec(Status.PASSED, key="a").record()) + "\n")
    argv = ["--matrix", str(tmp_path / "none.yaml"), "report", "--results", str(store)]
    assert main([*argv, "--out", str(tmp_path / "rep")]) == 0
    assert "repromatrix: report of 1 cell (1 record) written to " in capsys.readouterr().err


def test_summary_md_counts_repros_and_those_reproduced_as_the_page_does(
    tmp_path: Path,
) -> None:
    """summary.md said "1 regressions" of a repro that never regressed: it counted repros."""
    store = tmp_path / "results"
    store.mkdir()
    records = [
        rec(Status.PASSED, key="a", label="1.0"),
        rec(Status.REGRESSED, key="b", label="2.0"),
    ]
    (store / "x.jsonl").write_text("".join(json.dumps(r.record()) + "\n" for r in records))
    argv = ["--matrix", str(tmp_path / "none.yaml"), "report", "--results", str(store)]
    assert main([*argv, "--out", str(tmp_path / "rep")]) == 0
    summary = (tmp_path / "rep" / "summary.md").read_text()
    assert "2 cells, 1 repro, 1 reproduced. Generated" in summary
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "1 repro, 1 reproduced</p>" in page


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("![t](https://evil.example/t.png)", "!\\[t\\](https://evil.example/t.png)"),
        ("[click me](https://evil.example/x)", "\\[click me\\](https://evil.example/x)"),
        ("**bold** `code` ~~gone~~", "\\*\\*bold\\*\\* \\`code\\` \\~\\~gone\\~\\~"),
        ("_em_ fla_fused_chunk", "\\_em\\_ fla_fused_chunk"),
        ("a|b <img src=x>", "a\\|b &lt;img src=x&gt;"),
    ],
)
def test_names_in_summary_md_are_text_never_markdown(text: str, shown: str) -> None:
    """A repro, GPU or revision named like a link or an image became one in a PR comment
    (an image from any host: a beacon)."""
    from repromatrix.report.markdown import render_markdown

    assert md_cell(text) == shown
    data = build_report([
        rec(Status.PASSED, key="a", label="0.1"),
        rec(Status.REGRESSED, key="b", label=text, finished="2026-02-01T00:00:00+00:00"),
    ])  # fmt: skip
    assert shown in render_markdown(data)
    assert "| **all** |" in render_markdown(data)  # our own Markdown stays


def test_bidi_and_control_characters_in_names_never_reach_the_outputs(tmp_path: Path) -> None:
    """A right-to-left override in a GPU, host or revision name shows text in another
    order than it is (and ESC/BEL reached the CSV)."""
    odd = "\u202eevil\u2066\x1b[31m\x07"
    records = [
        rec(Status.PASSED, key="a", label=f"1.0{odd}", host=f"h{odd}", image=f"i{odd}"),
        rec(Status.REGRESSED, key="b", label="2.0").model_copy(update={"gpu": f"G{odd}"}),
    ]
    paths = write_report(results=records, out_dir=tmp_path)
    for fmt in ("compat", "markdown", "csv"):
        text = paths[fmt].read_text(encoding="utf-8")
        for ch in ("\u202e", "\u2066", "\x1b", "\x07"):
            assert ch not in text, (fmt, ch)
    html = paths["html"].read_text(encoding="utf-8")
    body = html[: html.index('id="cells-data"')]  # the page; the data blob is read by JS
    assert "\u202e" not in body
    assert "\x1b" not in body


def test_an_interval_whose_failing_check_changes_says_so() -> None:
    """scale() broke at 1.1, was fixed at 1.3 where offset() broke: 'still present' was
    said of one regression that is two bugs."""
    from repromatrix.report import build_report

    def at(label: str, status: Status, failure: str = "") -> Result:
        return rec(status, key=f"k{label}", label=label, fingerprint=failure)

    records = [
        at("1.0", Status.PASSED),
        at("1.1", Status.REGRESSED, "scale_err"),
        at("1.2", Status.REGRESSED, "scale_err"),
        at("1.3", Status.REGRESSED, "offset_err"),
        at("1.4", Status.REGRESSED, "offset_err,scale_err"),  # shares a check: the same
    ]
    summary = build_report(records).repros[0].findings[0].summary
    assert summary == (
        "begins at 1.1 (last good 1.0); still present in the newest tested (1.4); "
        "the failing check changes: scale_err from 1.1, then offset_err from 1.3"
    )
    one = build_report(records[:3]).repros[0].findings[0].summary
    assert "failing check" not in one


def _readme_row(*statuses: Status) -> str:
    from repromatrix.report.markdown import reproduced_table

    records = [rec(s, key=f"k{i}", label=f"1.{i}") for i, s in enumerate(statuses)]
    (row,) = [
        line
        for line in reproduced_table(build_report(records).summary_rows).splitlines()
        if line.startswith("| r ")
    ]
    return row


def test_the_readme_table_says_when_the_last_of_several_intervals_is_still_present() -> None:
    """B P B P B P B: the row said "1.0 (first tested) | 1.1; 3 more interval(s)", as if the
    regression were fixed; it is present at the newest version. Each later interval is
    named by where it begins and ends ("3 more" said nothing of where it came back)."""
    P, R = Status.PASSED, Status.REGRESSED
    row = _readme_row(R, P, R, P, R, P, R)
    assert (
        "1.1; bad again from 1.2, first good 1.3; bad again from 1.4, first good 1.5; "
        "bad again from 1.6, still present at 1.6 (newest verdict) |"
    ) in row
    row = _readme_row(R, P, R, R, P)
    assert "1.1; bad again from 1.2, first good 1.4 |" in row


def test_the_readme_table_names_the_points_without_a_verdict_around_a_later_interval() -> None:
    """P R P E R T P R E: the row said "bad again from 1.4, first good 1.6", as if 1.3
    (an error) were good and 1.5 (a timeout) bad; index.html says "begins between 1.2
    and 1.4" and "ends between 1.4 and 1.6". The first interval named them already."""
    P, R, E, T = Status.PASSED, Status.REGRESSED, Status.ERROR, Status.TIMEOUT
    row = _readme_row(P, R, P, E, R, T, P, R, E)
    assert (
        "| 1.2; bad again from 1.4 (no verdict before it at 1.3), first good 1.6 (no verdict "
        "at 1.5); bad again from 1.7, still present at 1.7 (newest verdict; no verdict at "
        "1.8) |"
    ) in row


def test_a_regression_seen_again_one_run_in_a_few_after_its_fix_is_not_hidden() -> None:
    """P R P and then 1.3 passed once and regressed once: compat.html said "regressed
    1.1, fixed in 1.2" and the README table "first good 1.2", nothing of 1.3; index.html
    says "flaky at 1.3". Both now name it, with its counts."""
    from repromatrix.report.compat import build_compat
    from repromatrix.report.markdown import reproduced_table

    P, R = Status.PASSED, Status.REGRESSED
    records = [rec(s, key=f"k{i}", label=f"1.{i}") for i, s in enumerate((P, R, P, P))]
    records.append(rec(R, key="k3", label="1.3", finished="2026-01-02T00:00:00+00:00"))
    data = build_report(records)
    (row,) = build_compat(data, None).rows
    (((line,),)) = row.cells
    assert line.text == "regressed 1.1, fixed in 1.2; flaky at 1.3 (1 passed, 1 regressed)"
    table = reproduced_table(data.summary_rows)
    assert "| 1.1 (last good 1.0) | 1.2; flaky at 1.3 (1 passed, 1 regressed) |" in table


def test_the_readme_table_does_not_call_a_point_after_an_untested_one_first_tested() -> None:
    row = _readme_row(Status.UNTESTABLE, Status.REGRESSED, Status.PASSED)
    assert "1.1 (first verdict; no verdict at 1.0) | 1.2 |" in row
    assert "first tested" not in row


def test_report_compare_given_twice_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """argparse kept the second --compare and dropped the first in silence."""
    argv = ["report", "--results", str(tmp_path), "--out", str(tmp_path / "rep")]
    assert main([*argv, "--compare", "a", "--compare", "b"]) == ExitCode.USAGE
    assert "--compare: given twice" in capsys.readouterr().err
    assert not (tmp_path / "rep").exists()


def test_an_empty_compare_set_and_a_flood_of_bad_lines_are_said_briefly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ResultStore(tmp_path / "res").append(rec(Status.REGRESSED))
    (tmp_path / "res" / "junk.jsonl").write_text("not json\n" * 500)
    (tmp_path / "old").mkdir()
    argv = ["--matrix", str(tmp_path / "none.yaml"), "report", "--results", str(tmp_path / "res")]
    code = main([*argv, "--out", str(tmp_path / "rep"), "--compare", str(tmp_path / "old")])
    assert code == 3  # the report is written; the lines it left out are no pass
    err = capsys.readouterr().err.splitlines()
    assert sum("unreadable record (" in line for line in err) == 20
    assert any("… and 480 more unreadable record(s) in 1 file(s)" in line for line in err)
    assert any(
        "--compare" in line
        and "no records; every regressed or flaky cell counts as a new regression in "
        "changes.html (a pass is no change)"
        in line
        for line in err
    )
    assert (tmp_path / "rep" / "index.html").read_text().count("junk.jsonl:") == 500


def test_a_report_folder_given_to_compare_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--compare rep`, an earlier report's --out: it warned "no records", counted every
    regression as new and exited 0; it is refused (exit 64), and the new report is not
    written. An empty folder is still a first comparison (a warning)."""
    ResultStore(tmp_path / "res").append(rec(Status.REGRESSED))
    argv = ["--matrix", str(tmp_path / "none.yaml"), "report", "--results", str(tmp_path / "res")]
    assert main([*argv, "--out", str(tmp_path / "rep")]) == 0
    capsys.readouterr()
    code = main([*argv, "--out", str(tmp_path / "rep2"), "--compare", str(tmp_path / "rep")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == ExitCode.USAGE, err
    assert err[-1].startswith(f"repromatrix: error: --compare {tmp_path / 'rep'}: is a report ")
    assert "give the results folder or .jsonl file that report was made from" in err[-1]
    assert not (tmp_path / "rep2" / "index.html").exists()


def test_a_report_without_compare_takes_away_an_earlier_comparison(tmp_path: Path) -> None:
    """changes.html of an earlier `--compare` stayed beside the new report, saying what
    changed between other result sets."""
    ResultStore(tmp_path / "res").append(rec(Status.REGRESSED))
    ResultStore(tmp_path / "old").append(rec(Status.PASSED))
    argv = ["--matrix", str(tmp_path / "none.yaml"), "report", "--results", str(tmp_path / "res")]
    argv += ["--out", str(tmp_path / "rep")]
    assert main([*argv, "--compare", str(tmp_path / "old")]) == 0
    assert (tmp_path / "rep" / "changes.html").exists()
    (tmp_path / "rep" / "mine.txt").write_text("kept")
    assert main(argv) == 0
    names = sorted(p.name for p in (tmp_path / "rep").iterdir())
    assert "changes.html" not in names
    assert "changes.md" not in names
    assert "mine.txt" in names
    assert "index.html" in names


def test_a_report_without_pyarrow_takes_away_an_earlier_reports_parquet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A report written where pyarrow is missing left the results.parquet of an earlier
    report beside its results.csv: a reader of the folder got last week's cells from it,
    and the command exited 0. It goes now; a Parquet file of the user's own stays."""
    from repromatrix.report import table as report_table

    ResultStore(tmp_path / "old").append(rec(Status.PASSED))
    ResultStore(tmp_path / "res").append(rec(Status.REGRESSED, key="k2", label="2.0"))
    argv = ["--matrix", str(tmp_path / "none.yaml"), "report", "--jobs", "1"]
    out = tmp_path / "rep"
    assert main([*argv, "--results", str(tmp_path / "old"), "--out", str(out)]) == 0
    assert list(pd.read_parquet(out / "results.parquet")["status"]) == ["passed"]
    mine = tmp_path / "mine"
    mine.mkdir()
    pd.DataFrame({"cell_id": ["x"], "status": ["ours"]}).to_parquet(mine / "results.parquet")
    monkeypatch.setattr(report_table, "parquet_available", lambda: False)
    assert main([*argv, "--results", str(tmp_path / "res"), "--out", str(out)]) == 0
    assert list(pd.read_csv(out / "results.csv")["status"]) == ["regressed"]
    assert not (out / "results.parquet").exists()
    assert main([*argv, "--results", str(tmp_path / "res"), "--out", str(mine)]) == 0
    assert list(pd.read_parquet(mine / "results.parquet")["status"]) == ["ours"]


def test_a_report_without_pandas_or_pyarrow_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With neither pyarrow nor pandas (carried wheels without pandas, as
    scripts/run-offline.sh runs it) `report` ended "internal error: RuntimeError: writing
    results.csv, junit.xml failed: ModuleNotFoundError: No module named 'pandas' ... report
    it" (exit 70) and wrote no file. A requirement not installed is a missing tool: one line
    naming it and what to install, exit 4, before the records are read."""
    import sys

    from repromatrix.report import table as report_table

    ResultStore(tmp_path / "res").append(rec(Status.PASSED))
    monkeypatch.setattr(report_table, "parquet_available", lambda: False)
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` fails
    argv = ["--matrix", str(tmp_path / "none.yaml"), "report", "--jobs", "1"]
    code = main([*argv, "--results", str(tmp_path / "res"), "--out", str(tmp_path / "rep")])
    err = capsys.readouterr().err
    assert code == ExitCode.MISSING_TOOL, err
    assert err.splitlines() == [
        f"repromatrix: error: report: results.csv is written by pyarrow or, without it, by "
        f"pandas, and {sys.executable} imports neither (pandas: import of pandas halted; None "
        "in sys.modules): pip install pandas, which repromatrix requires (offline: carry its "
        "wheel)"
    ]


def test_a_users_own_changes_md_in_the_report_folder_is_never_deleted(tmp_path: Path) -> None:
    """Only a comparison this tool wrote is stale: a file of the same name that it did not
    write (the user's notes) stays where it is."""
    ResultStore(tmp_path / "res").append(rec(Status.PASSED))
    out = tmp_path / "rep"
    out.mkdir()
    (out / "changes.md").write_text("# Our team's changelog\n\nhand-written\n")
    (out / "changes.html").write_text("<html><body>our dashboard</body></html>\n")
    argv = ["--matrix", str(tmp_path / "none.yaml"), "report", "--results", str(tmp_path / "res")]
    assert main([*argv, "--out", str(out)]) == 0
    assert (out / "changes.md").read_text() == "# Our team's changelog\n\nhand-written\n"
    assert (out / "changes.html").read_text() == "<html><body>our dashboard</body></html>\n"
    assert (out / "index.html").exists()


def test_the_compat_page_shows_not_run_notes_as_index_html_does(tmp_path: Path) -> None:
    """A GPU with only "not run here" records was no column but "no result yet (the matrix
    expects cells there)", while index.html showed those cells; without a matrix too."""
    records = [
        rec(Status.PASSED, key="a").model_copy(update={"gpu": "H100"}),
        rec(Status.NOT_RUN, key="b", reason="no L4 on this host").model_copy(
            update={"gpu": "L4", "cell_id": "r[L4,host,lib=1.0]"}
        ),
    ]
    write_report(results=records, out_dir=tmp_path)
    compat = (tmp_path / "compat.html").read_text()
    assert '<th scope="col">H100</th><th scope="col">L4</th>' in compat
    assert "no verdict (not run here)" in compat
    assert "No result yet" not in compat
    assert "the matrix expects" not in compat


def test_summary_md_says_no_value_for_a_metric_a_record_lacks(tmp_path: Path) -> None:
    bound = {"max_rel_err": 0.01}
    records = [
        rec(Status.REGRESSED, key="a", label="1.0", metrics={"other": 1.0}, thresholds=bound),
        rec(Status.PASSED, key="b", label="2.0", metrics={"rel_err.x": 1e-300}, thresholds=bound),
    ]
    write_report(results=records, out_dir=tmp_path)
    summary = (tmp_path / "summary.md").read_text()
    assert "rel_err.x: no value at 1.0 vs 1e-300 at 2.0" in summary
    assert "null" not in summary


def test_the_chart_never_joins_points_whose_order_is_unknown_to_its_line() -> None:
    """Commits without a place on the axis were drawn after the ordered points and joined
    to them by the line, as if they came next."""
    from repromatrix.report import build_report

    def at(label: str, commit: str | None, value: float) -> Result:
        return rec(Status.PASSED, key=f"k{label}", label=label,
                   commits={"lib": commit} if commit else {}, metrics={"err": value})  # fmt: skip

    records = [at("1.0", None, 1.0), at("2.0", None, 2.0), at("aaaaaaaa", "a" * 40, 3.0)]
    (rr,) = build_report(records).repros
    assert rr.chart is not None
    (line,) = rr.chart.lines
    assert len(line.points) == 3  # every value is drawn...
    assert [seg.count(",") for seg in line.segments] == [2]  # ...but the line joins 1.0, 2.0
    assert "order unknown" in line.points[2].title


def test_every_threshold_the_judge_applied_is_shown_beside_its_metric() -> None:
    """`max_err` bounds `err` and `attn.err.dq` for the judge (they make the fingerprint):
    the report showed both without a threshold, `max_err` among the thresholds that bound
    no metric, and the summary's key metric without '(threshold 0.5)'."""
    from repromatrix.fingerprints import fingerprint_of
    from repromatrix.report.markdown import render_markdown

    metrics: dict[str, float | None] = {"err": 1.0, "attn.err.dq": 0.75, "latency_ms": 3.0}
    thresholds: dict[str, float | None] = {"max_err": 0.5}
    assert fingerprint_of(metrics, thresholds) == "attn.err.dq,err"
    bad = rec(Status.REGRESSED, metrics=metrics, thresholds=thresholds)
    (e,) = collect_entries([bad])
    shown = {row[0]: (row[2], row[3]) for row in detail(e)["metrics"]}
    assert shown["err"] == ("0.5", "max_err")
    assert shown["attn.err.dq"] == ("0.5", "max_err")
    assert shown["latency_ms"] == ("", "")
    assert "max_err" not in detail(e).get("thresholds", {})
    good = rec(
        Status.PASSED,
        key="k0",
        label="0.9",
        metrics={"err": 0.0, "attn.err.dq": 0.0, "latency_ms": 3.0},
        thresholds=thresholds,
    )
    (row,) = build_report([good, bad]).summary_rows
    assert row.threshold == 0.5
    assert "(threshold 0.5)" in render_markdown(build_report([good, bad]))


def test_compat_names_an_image_added_later_that_has_no_result_yet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An image added to matrix.yaml after the last run had no row and no word on
    compat.html (a GPU type added later is named under the table): 24.12 regressed, 25.02
    passed, and nothing said that 25.01, between them, was never run."""
    (tmp_path / "r.py").write_text("")
    images = "".join(
        f'  ngc-{v}: {{ref: "nvcr.io/nvidia/pytorch:{v}-py3", released: "20{v[:2]}-{v[3:]}"}}\n'
        for v in ("24.12", "25.01", "25.02")
    )
    (tmp_path / "matrix.yaml").write_text(
        "schema: 1\nimages:\n" + images + "repros:\n"
        "  r: {script: r.py, gpus: [cpu], bases: [ngc-24.12, ngc-25.01, ngc-25.02]}\n"
    )
    store = tmp_path / "results"
    store.mkdir()
    records = [
        Result(
            key=f"k{base}",
            cell_id=f"r[cpu,{base}]",
            repro="r",
            base=base,
            image=f"nvcr.io/nvidia/pytorch:{base[4:]}-py3",
            gpu="cpu",
            status=status,
            finished="2026-01-01T00:00:00+00:00",
        )
        for base, status in (("ngc-24.12", Status.REGRESSED), ("ngc-25.02", Status.PASSED))
    ]
    (store / "x.jsonl").write_text("".join(json.dumps(r.record()) + "\n" for r in records))
    out = tmp_path / "rep"
    argv = ["--matrix", str(tmp_path / "matrix.yaml"), "report", "--results", str(store)]
    assert main([*argv, "--out", str(out)]) == 0, capsys.readouterr().err
    page = (out / "compat.html").read_text()
    assert "No result yet on base ngc-25.01 (the matrix expects cells there)" in page
    assert "<b>ngc-24.12</b>" in page
    assert "<b>ngc-25.02</b>" in page
    assert "<b>ngc-25.01</b>" not in page  # no row of nothing


def test_a_metric_kept_as_null_is_not_finite_in_every_format(tmp_path: Path) -> None:
    """The judge keeps a NaN or inf output as null: cell details said "—", summary.md "no
    value" (as of a metric the record lacks), a chart point's title "null" and the chart
    legend "the value is NaN" (it may have been inf). Each now says "not finite"."""
    bound = {"max_rel_err": 0.01}
    records = [
        rec(Status.REGRESSED, key="a", label="1.0", metrics={"rel_err.x": None}, thresholds=bound),
        rec(Status.PASSED, key="b", label="2.0", metrics={"rel_err.x": 1e-300}, thresholds=bound),
    ]
    write_report(results=records, out_dir=tmp_path)
    summary = (tmp_path / "summary.md").read_text()
    assert "rel_err.x: not finite at 1.0 vs 1e-300 at 2.0" in summary
    page = (tmp_path / "index.html").read_text()
    assert '["rel_err.x","not finite","0.01","max_rel_err"]' in page  # the cell's details
    assert "1.0: not finite</title>" in page  # the chart's point
    assert "on the top edge: the value is not finite (NaN or inf, kept as null)" in page
    for said in ('"—"', "1.0: null", "the value is NaN"):
        assert said not in page
