"""What a report says about where a regression begins and ends, for result stores whose
records differ in the ways real stores do (older matrix.yaml files, other hosts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repromatrix.config import load_matrix
from repromatrix.expand import expand
from repromatrix.model import (
    CPU,
    HOST_BASE,
    Base,
    BaseKind,
    Cell,
    InstallMode,
    Pin,
    SourceKind,
    Status,
)
from repromatrix.points import Point, Series
from repromatrix.ranges import find_intervals
from repromatrix.records import Result
from repromatrix.report import build_report
from repromatrix.report.compare import FLIPPED, NEW_REGRESSION, compare
from repromatrix.report.compat import build_compat
from repromatrix.report.machines import machines


def rec(status: Status, pins: dict[str, str], **extra: Any) -> Result:
    """A record of repro `r` on the CPU of the host, keyed by its pins."""
    fields: dict[str, Any] = {
        "key": "k-" + "-".join(f"{lib}{label}" for lib, label in pins.items()),
        "cell_id": f"r[{pins}]",
        "repro": "r",
        "base": "host",
        "gpu": "cpu",
        "pins": pins,
        "status": status,
        "finished": "2026-01-01T00:00:00+00:00",
    }
    return Result(**{**fields, **extra})


def sentences(results: list[Result]) -> dict[str, str]:
    (rr,) = build_report(results).repros
    return {row.context: row.sentence for row in rr.rows}


def test_a_record_without_the_axis_library_is_no_point_of_its_axis() -> None:
    """A record of an older matrix.yaml that did not pin fla yet sorted after every fla
    revision, as if it were the newest: its pass read as the regression's end."""
    results = [
        rec(Status.PASSED, {"torch": "2.1"}),
        rec(Status.PASSED, {"torch": "2.1", "fla": "0.1"}),
        rec(Status.REGRESSED, {"torch": "2.1", "fla": "0.2"}),
        rec(Status.REGRESSED, {"torch": "2.1", "fla": "0.3"}),
    ]
    assert sentences(results) == {
        "cpu": "begins at 0.2 (last good 0.1); still present in the newest tested (0.3)",
        "cpu · fla=(not pinned)": "not reproduced (1 of 1 passed)",
    }


def test_pins_listed_in_another_order_are_one_series() -> None:
    """Libraries reordered in matrix.yaml between runs: the same fixed pins, listed in
    another order, split one series in two, each with a wrong boundary."""
    results = [
        rec(Status.PASSED, {"torch": "2.1", "cuda": "12", "fla": "0.1"}),
        rec(Status.REGRESSED, {"cuda": "12", "torch": "2.1", "fla": "0.2"}),
        rec(Status.REGRESSED, {"fla": "0.3", "torch": "2.1", "cuda": "12"}),
    ]
    assert sentences(results) == {
        "cpu": "begins at 0.2 (last good 0.1); still present in the newest tested (0.3)"
    }
    images = [
        rec(Status.PASSED, {"torch": "2.1", "cuda": "12"}, base="a", image="x/pt:24.01-py3"),
        rec(Status.REGRESSED, {"cuda": "12", "torch": "2.1"}, base="b", image="x/pt:24.02-py3"),
    ]
    assert sentences(images) == {
        "cpu": "begins at b (last good a); still present in the newest tested (b)"
    }


def test_changes_weigh_records_as_the_report_does() -> None:
    """A threshold edited and undone: the edit's record is newer, but matrix.yaml defines
    the cell by its first key again, and index.html shows that key's pass; changes.html
    called the cell newly regressed."""
    pin = Pin(
        library="lib", kind=SourceKind.PYPI, source="lib", rev="1.0", label="1.0",
        install=InstallMode.PIP, import_name="lib",
    )  # fmt: skip
    cell = Cell(
        repro="r", script=Path("r.py"), base=Base(name=HOST_BASE, kind=BaseKind.HOST),
        gpu=CPU, pins=(pin,), params={}, timeout_s=1.0, key="now",
    )  # fmt: skip
    old = [rec(Status.PASSED, {"lib": "1.0"}, key="now")]
    new = [
        rec(Status.PASSED, {"lib": "1.0"}, key="now", finished="2026-01-02T00:00:00+00:00"),
        rec(Status.REGRESSED, {"lib": "1.0"}, key="edited", finished="2028-01-01T00:00:00+00:00"),
    ]
    shown = [e for e in build_report(new, cells=[cell]).entries if e.result is not None]
    assert [e.result.status for e in shown if e.result is not None] == [Status.PASSED]
    cmp = compare(old, new, cells=[cell])
    assert cmp.changes == ()


def test_points_without_a_verdict_inside_an_interval_are_named() -> None:
    """Bad at 0.2 and 0.4, an error at 0.3: 0.3 may have been good (fixed and broken
    again), so "begins at 0.2; ends at 0.5" must not read as bad all through."""
    results = [
        rec(Status.PASSED, {"fla": "0.1"}),
        rec(Status.REGRESSED, {"fla": "0.2"}),
        rec(Status.ERROR, {"fla": "0.3"}),
        rec(Status.REGRESSED, {"fla": "0.4"}),
        rec(Status.PASSED, {"fla": "0.5"}),
    ]
    assert sentences(results) == {
        "cpu": "begins at 0.2 (last good 0.1); ends at 0.5 (last bad 0.4); "
        "no verdict inside it at 0.3 (error)"
    }
    data = build_report(results)
    (row,) = build_compat(data, None).rows
    (((line,),)) = row.cells
    assert line.text == "regressed 0.2–0.4 (no verdict at 0.3 inside), fixed in 0.5"
    # A point only another GPU's series ran (a bisection there) was never this one's.
    other = [rec(Status.PASSED, {"fla": v}, gpu="h100") for v in ("0.1", "0.3", "0.5")]
    mixed = sentences([*(r for r in results if r.pins["fla"] != "0.3"), *other])
    assert mixed["cpu"] == "begins at 0.2 (last good 0.1); ends at 0.5 (last bad 0.4)"


MATRIX = """\
schema: 1
gpus:
  h100: {compute_capability: "9.0", smi_names: ["NVIDIA H100 80GB HBM3"]}
libraries:
  torch: {pypi: torch, import: torch, versions: ["2.1", "2.2", "2.3"]}
  fla:
    git: https://github.com/fla-org/flash-linear-attention
    import: fla
    versions: [{git: "1111111111111111111111111111111111111111", label: "1111111"}]
repros:
  r:
    script: r.py
    gpus: [h100]
    libraries: {torch: all, fla: all}
"""


def test_a_bisection_of_another_library_keeps_the_axis_matrix_yaml_spans(
    tmp_path: Path,
) -> None:
    """matrix.yaml spans torch; a bisection of fla at torch 2.3 stored more fla commits
    than torch versions, and the report turned sideways: one series per torch version,
    the torch regression's begin said nowhere."""
    (tmp_path / "r.py").write_text("")
    (tmp_path / "matrix.yaml").write_text(MATRIX)
    matrix = load_matrix(tmp_path / "matrix.yaml")
    fla = "1111111111111111111111111111111111111111"
    results = [
        rec(s, {"torch": t, "fla": "1111111"}, gpu="h100", commits={"fla": fla})
        for t, s in (("2.1", Status.PASSED), ("2.2", Status.REGRESSED), ("2.3", Status.REGRESSED))
    ]
    results += [
        rec(Status.REGRESSED, {"torch": "2.3", "fla": c * 10}, gpu="h100", commits={"fla": c * 40})
        for c in "abcd"
    ]
    (rr,) = build_report(results, matrix).repros
    assert rr.axis == "torch"
    assert rr.rows[0].sentence == (
        "begins at 2.2 (last good 2.1); still present in the newest tested (2.3)"
    )


def test_the_gpu_menu_offers_only_gpu_types_the_report_has_cells_of(tmp_path: Path) -> None:
    """Every report's GPU menu offered "cpu" (every matrix knows it) where no cell ran on
    a CPU: a choice that showed nothing."""
    (tmp_path / "r.py").write_text("")
    (tmp_path / "matrix.yaml").write_text(MATRIX)
    matrix = load_matrix(tmp_path / "matrix.yaml")
    assert "cpu" in matrix.gpus
    results = [rec(Status.PASSED, {"torch": "2.1", "fla": "1111111"}, gpu="h100")]
    assert build_report(results, matrix).gpus == ("h100",)
    assert build_report(results).gpus == ("h100",)


def test_the_machines_table_dates_in_time_order_whatever_the_offset() -> None:
    """A host that wrote local time: 11:00+05:00 is 06:00 UTC, before 10:00 UTC."""
    results = [
        rec(Status.PASSED, {"fla": "0.1"}, run_id="run", finished="2026-01-01T10:00:00+00:00"),
        rec(Status.PASSED, {"fla": "0.2"}, run_id="run", finished="2026-01-01T11:00:00+05:00"),
    ]
    (m,) = machines(results)
    assert (m.first, m.last) == ("2026-01-01T11:00:00+05:00", "2026-01-01T10:00:00+00:00")


def test_a_flaky_point_is_named_even_when_a_longer_label_ends_like_it() -> None:
    """11.1 is named before the interval as "11.1 (flaky: …)", which holds "1.1 (flaky":
    the flaky 1.1 was taken as named and left out."""
    f = find_intervals(
        Series(
            repro="r",
            gpu="cpu",
            axis="lib",
            base="host",
            points=(
                Point(label="1.0", status=Status.PASSED),
                Point(label="1.1", status=Status.PASSED, flaky=True, passed=1, regressed=1),
                Point(label="1.2", status=Status.PASSED),
                Point(label="11.1", status=Status.PASSED, flaky=True, passed=2, regressed=1),
                Point(label="12.0", status=Status.REGRESSED),
            ),
        )
    )
    assert f.summary.endswith("; flaky at 1.1 (1 passed, 1 regressed)")


def test_a_cell_flaky_now_without_a_verdict_before_is_a_new_regression() -> None:
    """An error before, now a pass and a regression: junit.xml fails the cell, and
    changes.html said nothing had changed."""
    old = [rec(Status.ERROR, {"lib": "1.0"})]
    new = [
        rec(Status.PASSED, {"lib": "1.0"}),
        rec(Status.REGRESSED, {"lib": "1.0"}, finished="2026-01-03T00:00:00+00:00"),
    ]
    (change,) = compare(old, new).changes
    assert (change.group, change.kind) == (NEW_REGRESSION, "flaky (error before)")
    assert change.after == "flaky: 1 passed, 1 regressed"
    # A new pass without a verdict before is no change.
    assert compare(old, [rec(Status.PASSED, {"lib": "1.0"})]).changes == ()


def test_an_image_without_a_release_among_dated_ones_is_no_boundary() -> None:
    """Images are ordered by release; one with neither `released:` nor a YY.MM tag went
    after every dated one, and the sentence called it the newest tested."""
    images = {"a": "x/pt:24.01-py3", "b": "x/pt:24.03-py3", "custom": "me/env:cuda12"}
    status = {"a": Status.PASSED, "b": Status.REGRESSED, "custom": Status.PASSED}
    results = [
        rec(status[base], {"torch": "2.1"}, base=base, image=ref, key=base)
        for base, ref in images.items()
    ]
    assert sentences(results) == {
        "cpu": "begins at b (last good a); still present in the newest tested whose order "
        "is known (b); order unknown (no release: give the image `released: YYYY-MM` in "
        "matrix.yaml): custom (passed)"
    }


UNDATED = """\
schema: 1
images:
  cu124: {ref: "nvidia/cuda:12.4.1-runtime-ubuntu22.04"}
  cu126: {ref: "nvidia/cuda:12.6.0-runtime-ubuntu20.04"}
libraries:
  torch: {pypi: torch, import: torch, versions: ["2.1"]}
repros:
  r: {script: r.py, gpus: [cpu], bases: [cu124, cu126], libraries: {torch: all}}
"""


def test_images_all_without_a_release_stand_where_matrix_yaml_puts_them(
    tmp_path: Path,
) -> None:
    """CUDA images have no release; without matrix.yaml their order was the order their
    records were read in, and the report said "begins at cu124 (last good cu126)", which
    nothing showed. matrix.yaml's order is the user's word; the records' is none."""
    status = {"cu126": Status.PASSED, "cu124": Status.REGRESSED}
    results = [
        rec(s, {"torch": "2.1"}, base=base, image=f"nvidia/cuda:{base}", key=base)
        for base, s in status.items()
    ]
    assert sentences(results) == {
        "cpu": "order unknown (no release: give the image `released: YYYY-MM` in "
        "matrix.yaml): cu126 (passed), cu124 (regressed)"
    }
    (tmp_path / "r.py").write_text("")
    (tmp_path / "matrix.yaml").write_text(UNDATED)
    (rr,) = build_report(results, load_matrix(tmp_path / "matrix.yaml")).repros
    assert [row.sentence for row in rr.rows] == [
        "begins at or before cu124 (first tested); ends at cu126 (last bad cu124)"
    ]


def test_the_only_point_placed_is_not_called_the_only_one_tested() -> None:
    """Bisect commits without a date were tested too, and are named after it."""
    results = [rec(Status.REGRESSED, {"fla": "0.1"})]
    results += [
        rec(Status.REGRESSED, {"fla": c * 10}, commits={"fla": c * 40}, key=c) for c in "ab"
    ]
    text = sentences(results)["cpu"]
    assert text.startswith("present at 0.1 (the only point whose order is known); ")
    assert "order unknown" in text


def test_the_compat_page_says_what_the_records_disagree_on_varies() -> None:
    """torch is the axis: cells ran 2.1, 2.2 and 2.3 on the host, and compat.html said the
    host ships "torch 2.3.0" (the value most records saw)."""
    results = [
        rec(s, {"torch": v}, provenance={"torch": f"{v}.0", "cuda": "12.4"})
        for v, s in (("2.1", Status.PASSED), ("2.2", Status.REGRESSED), ("2.3", Status.REGRESSED))
    ]
    results.append(
        rec(
            Status.REGRESSED,
            {"torch": "2.3"},
            key="again",
            gpu="h100",
            provenance={"torch": "2.3.0", "cuda": "12.4"},
        )
    )
    (row,) = build_compat(build_report(results), None).rows  # one base, two GPUs
    assert row.ships == "CUDA 12.4 · torch varies: 2.3.0, 2.1.0, 2.2.0 (as its records saw it)"


class _CountedGets(dict[str, Any]):
    """A provenance that counts how often it is read."""

    gets = 0

    def get(self, *args: Any) -> Any:
        type(self).gets += 1
        return super().get(*args)


def test_the_compat_page_reads_a_provenance_records_share_once() -> None:
    """Records share equal provenances (the store's load makes them one object): the
    compat page read each record's three facts anyway, 0.3 s of 100,000 records."""
    shared = [
        _CountedGets({"torch": f"2.{n}.0", "cuda": "12.4", "python": "3.12"}) for n in (2, 1, 3)
    ]
    results = [
        rec(Status.PASSED, {"torch": f"2.{n}", "fla": f"{j}.{i}"}).model_copy(
            update={"provenance": shared[n % 3]}
        )
        for j, n in enumerate((0, 0, 1, 1, 2, 2, 2))
        for i in range(50)
    ]
    report = build_report(results)
    _CountedGets.gets = 0
    (row,) = build_compat(report, None).rows
    # Seen by 150, 100 and 100 records (2.2 as often as 2.1, and first).
    assert row.ships == (
        "CUDA 12.4 · torch varies: 2.3.0, 2.2.0, 2.1.0 · Python 3.12 (as its records saw it)"
    )
    assert _CountedGets.gets <= 3 * len(shared)


def test_a_value_next_to_its_threshold_is_not_rounded_onto_it() -> None:
    """0.0100004 regressed and 0.0099996 passed against max_rel_err 0.01: summary.md said
    "rel_err.a: 0.01 at 1.1 vs 0.01 at 1.0 (threshold 0.01)", as if the verdicts were
    arbitrary; the details pane showed 0.01 beside 0.01 too."""
    from repromatrix.report.markdown import key_metric_text
    from repromatrix.report.metrics import fmt_num

    t = {"max_rel_err": 0.01}
    results = [
        rec(Status.PASSED, {"lib": "1.0"}, metrics={"rel_err.a": 0.0099996}, thresholds=t),
        rec(Status.REGRESSED, {"lib": "1.1"}, metrics={"rel_err.a": 0.0100004}, thresholds=t),
    ]
    (row,) = build_report(results).summary_rows
    assert key_metric_text(row) == (
        "rel_err.a: 0.0100004 at 1.1 vs 0.0099996 at 1.0 (threshold 0.01)"
    )
    # Four significant digits otherwise, as before.
    assert [fmt_num(v) for v in (6.039123, 401412.0, 2.612e-07, 0.1 + 0.2, 0.01)] == [
        "6.039", "4.014e+05", "2.612e-07", "0.3", "0.01",
    ]  # fmt: skip


def test_a_value_is_never_shown_on_the_wrong_side_of_its_threshold(tmp_path: Path) -> None:
    """1.23456 regressed and 1.23454 passed against a threshold of 1.23455: summary.md said
    "err: 1.235 at 1.1 vs 1.235 at 1.0 (threshold 1.235)" and the details pane showed 1.235
    beside 1.235 for both verdicts. A threshold is shown as it was given, and a value with
    the digits that keep it on its own side of it (1.235 is above 1.23455, as 1.23456 is)."""
    import json

    from repromatrix.report import write_report
    from repromatrix.report.details import metric_rows
    from repromatrix.report.markdown import key_metric_text

    t = {"err": 1.23455}
    good = rec(Status.PASSED, {"lib": "1.0"}, metrics={"err": 1.23454}, thresholds=t)
    bad = rec(Status.REGRESSED, {"lib": "1.1"}, metrics={"err": 1.23456}, thresholds=t)
    (row,) = build_report([good, bad]).summary_rows
    assert key_metric_text(row) == "err: 1.235 at 1.1 vs 1.2345 at 1.0 (threshold 1.23455)"
    assert metric_rows(bad)[0] == [["err", "1.235", "1.23455", ""]]
    assert metric_rows(good)[0] == [["err", "1.2345", "1.23455", ""]]
    # A value rounded off the threshold on its own side keeps four digits: 1.234 < 1.23455.
    low = rec(Status.PASSED, {"lib": "0.9"}, metrics={"err": 1.2341}, thresholds=t)
    assert metric_rows(low)[0] == [["err", "1.234", "1.23455", ""]]
    # The page's details (built apart from metric_rows, for speed) say the same.
    html = write_report(results=[good, bad, low], out_dir=tmp_path)["html"].read_text()
    blob = json.loads(html.split('id="cells-data">', 1)[1].split("</script>", 1)[0])
    shown = sorted(m[1:3] for c in blob["cells"] for m in c.get("metrics", []))
    assert shown == [["1.234", "1.23455"], ["1.2345", "1.23455"], ["1.235", "1.23455"]]
    # So do the chart's points, beside its threshold line's label.
    assert "threshold 1.23455" in html
    assert ">cpu @ 1.0: 1.2345</title>" in html
    assert ">cpu @ 1.1: 1.235</title>" in html


def test_summary_md_names_the_first_unreadable_records_and_counts_the_rest() -> None:
    """A results file of 5,000 damaged lines made summary.md list all 5,000 (800 KB), past
    what a PR comment or a CI step summary takes, where standard error names the first
    20 and index.html lists them all; summary.md now does as standard error does."""
    from repromatrix.load_problems import LoadProblem
    from repromatrix.report.markdown import render_markdown

    problems = [
        LoadProblem(file=f"r/{'ab'[i % 2]}.jsonl", line=i, message="not JSON", left_out=True)
        for i in range(1, 5001)
    ]
    record = Result(
        key="k", cell_id="r[cpu,host,lib=1.0]", repro="r", base="host", gpu="cpu",
        pins={"lib": "1.0"}, status=Status.PASSED, finished="2026-01-01T00:00:00+00:00",
    )  # fmt: skip
    summary = render_markdown(build_report([record], load_problems=problems))
    assert "- r/b.jsonl:1: not JSON" in summary
    assert "- r/a.jsonl:20: not JSON" in summary
    assert "r/b.jsonl:21:" not in summary
    assert summary.endswith(
        "- … and 4,980 more unreadable record(s) in 2 file(s); index.html lists them all\n"
    )
    assert len(summary) < 10_000


def test_changes_md_shows_the_first_rows_of_each_group_and_counts_the_rest(tmp_path: Path) -> None:
    """A compare where 2,000 verdicts were lost and 500 flipped made changes.md 180 KB,
    past what a PR comment takes (65,536 characters: refused whole); each group now shows
    its first rows and counts the rest, which changes.html lists."""
    from repromatrix.report import write_report

    def rec(i: int, status: Status, day: int) -> Result:
        return Result(
            key=f"k{i}", cell_id=f"r[cpu,host,lib=1.{i}]", repro="r", base="host", gpu="cpu",
            pins={"lib": f"1.{i}"}, status=status, finished=f"2026-01-0{day}T00:00:00+00:00",
        )  # fmt: skip

    old = [rec(i, Status.PASSED, 1) for i in range(3000)]
    new = [rec(i, Status.REGRESSED if i % 2 else Status.PASSED, 2) for i in range(0, 3000, 3)]
    paths = write_report(results=new, out_dir=tmp_path, compare=old, compare_label="old")
    changes = paths["changes_markdown"].read_text()
    assert "### Verdicts that flipped (500)" in changes
    assert "… and 450 more; changes.html lists them all." in changes
    assert "### Verdicts lost (2000)" in changes
    assert "… and 1,950 more; changes.html lists them all." in changes
    assert len(changes) < 20_000
    assert paths["changes"].read_text().count("<tr") > 2500  # the page has every change


def test_a_flaky_cell_whose_runs_turned_mostly_regressed_is_a_flaky_change() -> None:
    """5 passed 1 regressed, then 1 passed 5 regressed: flaky on both sides, and
    changes.html said "0 flaky changes" and listed nothing, a cell now failing most runs."""

    def runs(passed: int, regressed: int, day: int) -> list[Result]:
        return [
            rec(status, {"lib": "1.0"}, finished=f"2026-01-{day:02d}T00:00:{i:02d}+00:00")
            for i, status in enumerate([Status.PASSED] * passed + [Status.REGRESSED] * regressed)
        ]

    cmp = compare(runs(5, 1, 1), runs(1, 5, 2))
    (change,) = cmp.changes
    assert change.group == FLIPPED
    assert change.kind == "flaky, now mostly regressed (was mostly passing)"
    assert (change.before, change.after) == (
        "flaky: 5 passed, 1 regressed",
        "flaky: 1 passed, 5 regressed",
    )
    assert "1 verdict(s) flipped (0 fixed, 0 newly regressed, 1 flaky changes" in cmp.headline
    (back,) = compare(runs(1, 5, 1), runs(5, 1, 2)).changes
    assert back.kind == "flaky, now mostly passing (was mostly regressed)"
    # Runs that lean the same way, or evenly on either side, are no change.
    assert compare(runs(5, 1, 1), runs(4, 2, 2)).changes == ()
    assert compare(runs(3, 3, 1), runs(1, 5, 2)).changes == ()


def test_a_flaky_cell_against_one_run_is_not_said_to_have_changed_its_flakiness() -> None:
    """5 passed 1 regressed, then one run that passed: "no longer flaky (passed)", a fix
    of the flakiness that one run cannot show (nor, the other way, "became flaky")."""
    flaky = [
        rec(status, {"lib": "1.0"}, finished=f"2026-01-01T00:00:{i:02d}+00:00")
        for i, status in enumerate([Status.PASSED] * 5 + [Status.REGRESSED])
    ]
    once = [rec(Status.PASSED, {"lib": "1.0"}, finished="2026-01-02T00:00:00+00:00")]
    (change,) = compare(flaky, once).changes
    assert change.kind == "ran once now (passed): one run cannot show whether it is still flaky"
    (change,) = compare(once, flaky).changes
    assert change.kind == "flaky now; ran once before (passed): one run could not show it"
    # Two steady runs or more are still said as before.
    twice = [*once, rec(Status.PASSED, {"lib": "1.0"}, finished="2026-01-02T00:00:01+00:00")]
    assert compare(flaky, twice).changes[0].kind == "no longer flaky (passed)"
    assert compare(twice, flaky).changes[0].kind == "became flaky"


def test_a_flaky_cell_that_turned_on_other_machines_says_the_change_may_be_theirs() -> None:
    """Mostly passing on one host's records, mostly regressed on another's: the page said
    "flaky, now mostly regressed" with no word of the machines, as a fix between them has."""

    def runs(passed: int, regressed: int, machine: str) -> list[Result]:
        return [
            rec(status, {"lib": "1.0"}, machine={"id": machine}, finished=f"2026-01-01T00:{i:02d}Z")
            for i, status in enumerate([Status.PASSED] * passed + [Status.REGRESSED] * regressed)
        ]

    cmp = compare(runs(5, 1, "m-a"), runs(1, 5, "m-b"))
    (change,) = cmp.changes
    assert change.kind == (
        "flaky, now mostly regressed (was mostly passing) (on other machines: m-a before, m-b "
        "now: the change may be theirs)"
    )
    assert "(0 fixed, 0 newly regressed, 0 flaky changes, 1 on other machines" in cmp.headline


def test_a_verdict_lost_with_its_cell_from_the_matrix_is_counted_apart(tmp_path: Path) -> None:
    """A cell matrix.yaml no longer lists (its revision dropped, its repro renamed) has no
    record now: "1 verdict(s) lost ... now not tested", a coverage gap to chase where the
    user chose it."""
    (tmp_path / "r.py").write_text("")
    (tmp_path / "matrix.yaml").write_text(
        "schema: 1\nrepros:\n  r: {script: r.py, gpus: [cpu]}\n  s: {script: r.py, gpus: [cpu]}\n"
    )
    matrix = load_matrix(tmp_path / "matrix.yaml")
    cells = expand(matrix)
    old = [
        rec(Status.PASSED, {"lib": "1.0"}),
        rec(Status.PASSED, {}, repro="gone", key="g"),
        rec(Status.PASSED, {}, repro="s", key="s"),
    ]
    cmp = compare(old, [], matrix=matrix, cells=cells)
    assert [(c.repro, c.kind, c.dropped) for c in cmp.changes] == [
        ("gone", "now not tested: matrix.yaml does not list the cell", True),
        ("r", "now not tested: matrix.yaml does not list the cell", True),
        ("s", "now not tested", False),  # listed, and not run now: a verdict lost
    ]
    assert cmp.headline.endswith("3 verdict(s) lost (2 of cells matrix.yaml does not list)")
    # Without the matrix nothing says which cells it lists.
    assert compare(old, []).headline.endswith("; 3 verdict(s) lost")


def test_machines_that_disagree_the_other_way_now_are_a_change() -> None:
    """m-a passed and m-b regressed, each every time; then m-a regressed and m-b passed:
    "machines disagree" on both sides, and changes.html said "0 verdict(s) flipped"."""

    def runs(a: Status, b: Status, day: int) -> list[Result]:
        return [
            rec(status, {"lib": "1.0"}, machine={"id": m}, finished=f"2026-01-{day:02d}T00:{i}Z")
            for m, status in (("m-a", a), ("m-b", b))
            for i in range(3)
        ]

    cmp = compare(
        runs(Status.PASSED, Status.REGRESSED, 1), runs(Status.REGRESSED, Status.PASSED, 2)
    )
    (change,) = cmp.changes
    assert change.kind == (
        "machines disagree, turned: m-a regressed (was passed), m-b passed (was regressed)"
    )
    assert "1 verdict(s) flipped (0 fixed, 0 newly regressed, 0 flaky changes, 1 of machines" in (
        cmp.headline
    )
    same = runs(Status.PASSED, Status.REGRESSED, 2)
    assert compare(runs(Status.PASSED, Status.REGRESSED, 1), same).changes == ()


def test_machines_that_disagreed_against_one_of_them_alone_say_which_ran() -> None:
    """m-a passed and m-b regressed, then m-a alone ran and regressed: "machines no longer
    disagree (regressed)", said of m-b that did not run, hid m-a's regression."""

    def runs(day: int, **by: Status) -> list[Result]:
        return [
            rec(status, {"lib": "1.0"}, machine={"id": m}, finished=f"2026-01-{day:02d}T00:{i}Z")
            for m, status in by.items()
            for i in range(3)
        ]

    split = runs(1, a=Status.PASSED, b=Status.REGRESSED)
    (change,) = compare(split, runs(2, a=Status.REGRESSED)).changes
    assert change.kind == "machines disagreed; only a ran now: regressed (was passed)"
    (change,) = compare(split, runs(2, a=Status.PASSED)).changes
    assert change.kind == "machines disagreed; only a ran now: passed"
    # The other way: m-a regressed alone before, and passes now that m-b disagrees.
    (change,) = compare(
        runs(1, a=Status.REGRESSED), runs(2, a=Status.PASSED, b=Status.REGRESSED)
    ).changes
    assert change.kind == "machines disagree now; a passed (was regressed)"
    (change,) = compare(
        runs(1, a=Status.PASSED), runs(2, a=Status.PASSED, b=Status.REGRESSED)
    ).changes
    assert change.kind == "machines disagree now"
    # Both machines ran, each steady and agreeing now: as before.
    (change,) = compare(split, runs(2, a=Status.PASSED, b=Status.PASSED)).changes
    assert change.kind == "machines no longer disagree (passed)"
