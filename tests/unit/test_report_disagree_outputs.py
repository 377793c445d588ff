"""Where machines disagree (`winner.machines_split`), every output says so alike: the
tables a user filters, the index page's counts, the README table and compat.html (which a
colleague may read alone), and a boundary's sentence where the order is known only in part."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from recordfactory import MACHINES_SPLIT, on_machine, report_of

from repromatrix.model import Status
from repromatrix.report import build_report
from repromatrix.report.compat import build_compat

#: m-a passes wherever m-b regresses (both ran 1.0, twice each); 2.0 ran on m-b alone, 3.0
#: on m-a alone: "ends at 3.0" may be the machines' change.
BOUNDARY = [
    on_machine("1.0", Status.PASSED, "m-a"),
    on_machine("1.0", Status.PASSED, "m-a", 2),
    on_machine("1.0", Status.REGRESSED, "m-b", 3),
    on_machine("1.0", Status.REGRESSED, "m-b", 4),
    on_machine("2.0", Status.REGRESSED, "m-b"),
    on_machine("3.0", Status.PASSED, "m-a"),
]
CAVEAT = "2.0 ran on m-b alone and 3.0 on m-a alone, machines that disagree at 1.0"


def test_the_tables_say_machines_disagree_where_every_other_output_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """results.csv and results.parquet had flaky=True at 2.0, where index.html, summary.md
    and junit.xml say the machines disagree: a user filtering the flaky cells got it."""
    import pandas as pd

    flaky = [on_machine("4.0", Status.PASSED, "m-a"), on_machine("4.0", Status.REGRESSED, "m-a", 2)]
    out = report_of(tmp_path, [*MACHINES_SPLIT, *flaky], capsys)
    with (out / "results.csv").open() as f:
        # (pyarrow writes flags "true"; pandas, without pyarrow, "True")
        rows = {r["lib.lib"]: {k: v.lower() for k, v in r.items()} for r in csv.DictReader(f)}
    assert (rows["2.0"]["flaky"], rows["2.0"]["machines_disagree"]) == ("false", "true")
    assert (rows["4.0"]["flaky"], rows["4.0"]["machines_disagree"]) == ("true", "false")
    assert (rows["1.0"]["flaky"], rows["1.0"]["machines_disagree"]) == ("false", "false")
    assert (rows["2.0"]["passed_records"], rows["2.0"]["regressed_records"]) == ("2", "2")
    table = pd.read_parquet(out / "results.parquet").set_index("lib.lib")
    flags = {lib: (bool(r.flaky), bool(r.machines_disagree)) for lib, r in table.iterrows()}
    assert (flags["2.0"], flags["4.0"], flags["1.0"]) == (
        (False, True),
        (True, False),
        (False, False),
    )
    summary = (out / "summary.md").read_text()
    assert "junit.xml fails them, results.csv says `machines_disagree`)" in summary
    # The index page counts 4.0 as flaky and 2.0 apart, as it names them.
    page = (out / "index.html").read_text()
    assert "<td>flaky (records disagree; counted above by their newest verdict)</td>" in page
    counts = page.split('<table class="counts">')[1].split("</table>")[0]
    assert '<td class="n">1</td></tr>\n<tr><td class="c fl md">' in counts, counts
    assert "machines disagree (each machine steady" in counts, counts
    assert 'value="machines-disagree"' in page


#: m-a passes wherever m-b regresses (both ran 1.0, twice each); 2.0 ran on m-b alone, 3.0
#: on m-a alone: "ends at 3.0" may be the machines' change.
BOUNDARY = [
    on_machine("1.0", Status.PASSED, "m-a"),
    on_machine("1.0", Status.PASSED, "m-a", 2),
    on_machine("1.0", Status.REGRESSED, "m-b", 3),
    on_machine("1.0", Status.REGRESSED, "m-b", 4),
    on_machine("2.0", Status.REGRESSED, "m-b"),
    on_machine("3.0", Status.PASSED, "m-a"),
]
CAVEAT = "2.0 ran on m-b alone and 3.0 on m-a alone, machines that disagree at 1.0"


def test_the_readme_table_and_compat_say_a_boundary_may_be_the_machines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """index.html and summary.md add that 2.0 ran on m-b alone and 3.0 on m-a alone; the
    README row said "3.0" as first good and compat.html "fixed in 3.0", nothing more: a
    colleague reading those alone took 3.0 for the library's fix."""
    out = report_of(tmp_path, BOUNDARY, capsys)
    said = f"{CAVEAT}: the change may be theirs"
    assert said in (out / "summary.md").read_text()
    (row,) = [ln for ln in (tmp_path / "README.md").read_text().splitlines() if "| r |" in ln]
    assert f"| 3.0; {said} |" in row, row
    (line,) = [ln for r in build_compat(build_report(BOUNDARY), None).rows for c in r.cells
               for ln in c]  # fmt: skip
    assert line.text.endswith(f"fixed in 3.0; {said}"), line.text
    assert said in (out / "compat.html").read_text()
    # Without the machines that disagree, the row is as it was.
    report_of(tmp_path / "one", [BOUNDARY[0], *BOUNDARY[4:]], capsys)
    readme = (tmp_path / "one" / "README.md").read_text()
    assert "| r | H100 | 2.0 (last good 1.0) | 3.0 |" in readme, readme


def test_an_end_beside_a_regression_of_unknown_order_is_of_the_known_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """aaaaaaaa regressed and may be newer than 3.0, yet with no good point before 2.0 the
    sentence said "begins at or before 2.0 (...); ends at 3.0 (last bad 2.0)" as sure as
    without it (with one, it reads "where the order is known: begins at 2.0 ...")."""
    records = [
        on_machine("2.0", Status.REGRESSED, "m-a"),
        on_machine("3.0", Status.PASSED, "m-a"),
        on_machine("aaaaaaaa", Status.REGRESSED, "m-a", commit="a" * 40),
    ]
    out = report_of(tmp_path, records, capsys)
    said = (
        "where the order is known: begins at or before 2.0 (first tested whose order is "
        "known); ends at 3.0 (last bad 2.0); order unknown ("
    )
    assert said in (out / "summary.md").read_text()
    (finding,) = build_report(records).repros[0].findings
    assert finding.summary.startswith(said), finding.summary
    # Open at both ends, "still present ... whose order is known" says it already.
    still = [records[0], on_machine("3.0", Status.REGRESSED, "m-a"), records[2]]
    (finding,) = build_report(still).repros[0].findings
    assert finding.summary.startswith(
        "begins at or before 2.0 (first tested whose order is known); still present in the "
        "newest tested whose order is known (3.0)"
    ), finding.summary


def test_changes_tell_machines_that_disagree_from_a_flaky_cell_before_and_after() -> None:
    """A cell whose machines disagreed and now pass was "no longer flaky (passed)", one
    that went from flaky to machines that disagree (or back) no change at all, and the
    headline counted "machines disagree now" among its "flaky changes"."""
    from repromatrix.report.compare import compare

    split = MACHINES_SPLIT[2:]  # at 2.0 m-a passed twice, m-b regressed twice
    passed = [on_machine("2.0", Status.PASSED, m, d) for m in ("m-a", "m-b") for d in (5, 6)]
    flaky = [*split, on_machine("2.0", Status.PASSED, "m-b", 7)]  # m-b disagrees with itself
    (change,) = compare(split, passed).changes
    assert change.kind == "machines no longer disagree (passed)", change.kind
    (change,) = compare(split, flaky).changes
    assert change.kind == "became flaky", change.kind
    cmp = compare(flaky[2:], split)  # m-a passed once, m-b regressed twice, passed once
    (change,) = cmp.changes
    assert change.kind == "machines disagree now", change.kind
    assert "(0 fixed, 0 newly regressed, 0 flaky changes, 1 of machines that disagree)" in (
        cmp.headline
    ), cmp.headline


def test_a_boundary_between_gpus_that_disagree_is_said_to_be_theirs_maybe() -> None:
    """GPU-1111bbbb of m-a regresses where GPU-0000aaaa passes (both ran 1.0, twice); 2.0
    ran on the one alone, 3.0 on the other: "ends at 3.0 (last bad 2.0)" said nothing of
    it, as it does of two machines."""
    a, b = "GPU-0000aaaa", "GPU-1111bbbb"
    records = [
        on_machine("1.0", Status.PASSED, "m-a", 1, gpu=a),
        on_machine("1.0", Status.PASSED, "m-a", 2, gpu=a),
        on_machine("1.0", Status.REGRESSED, "m-a", 3, gpu=b),
        on_machine("1.0", Status.REGRESSED, "m-a", 4, gpu=b),
        on_machine("2.0", Status.REGRESSED, "m-a", 5, gpu=b),
        on_machine("3.0", Status.PASSED, "m-a", 6, gpu=a),
    ]
    (finding,) = build_report(records).repros[0].findings
    assert finding.summary.endswith(
        f"; 2.0 ran on {b} of m-a alone and 3.0 on {a} of m-a alone, GPUs that disagree at "
        "1.0: the change may be theirs"
    ), finding.summary
    # Machines that disagree say nothing of two GPUs of one machine: 2.0 and 3.0 ran on m-b.
    machines = [*BOUNDARY[:4], on_machine("2.0", Status.REGRESSED, "m-b", 5, gpu=b)]
    machines.append(on_machine("3.0", Status.PASSED, "m-b", 6, gpu=a))
    (finding,) = build_report(machines).repros[0].findings
    assert "the change may be theirs" not in finding.summary, finding.summary


def test_an_end_beside_a_pass_of_unknown_order_is_of_the_known_order() -> None:
    """cccccccc passed and may lie between 2.0 and 3.0, the fix then at or before it, yet
    the sentence said "ends at 3.0 (last bad 2.0)" as sure as without it."""
    records = [
        on_machine("1.0", Status.PASSED, "m-a"),
        on_machine("2.0", Status.REGRESSED, "m-a"),
        on_machine("3.0", Status.PASSED, "m-a"),
        on_machine("cccccccc", Status.PASSED, "m-a", commit="c" * 40),
    ]
    (finding,) = build_report(records).repros[0].findings
    assert finding.summary.startswith(
        "where the order is known: begins at 2.0 (last good 1.0); ends at 3.0 (last bad 2.0)"
    ), finding.summary
    # Without an end, "still present ... whose order is known" says it already.
    (finding,) = build_report(records[:2] + records[3:]).repros[0].findings
    assert finding.summary.startswith("begins at 2.0 (last good 1.0); still present in the")


def test_compat_names_the_symbol_of_machines_that_disagree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """compat.html's line "machines disagree at 2.0 (...)" had the flaky symbol, read out as
    "flaky" and explained by the legend as "flaky" alone."""
    flaky = [on_machine("2.0", Status.PASSED, "m-a"), on_machine("2.0", Status.REGRESSED, "m-a", 2)]
    flaky = [r.model_copy(update={"gpu": "H200", "cell_id": "r[H200,host,lib=2.0]"}) for r in flaky]
    page = (report_of(tmp_path, [*MACHINES_SPLIT, *flaky], capsys) / "compat.html").read_text()
    lines = page.split('<ul class="verdicts">')[1:]
    split, = [ln for ln in lines if "machines disagree at 2.0" in ln]  # fmt: skip
    assert 'aria-label="machines disagree"' in split, split
    (other,) = [ln for ln in lines if "flaky at 2.0" in ln]
    assert 'aria-label="flaky"' in other, other
    assert "flaky, or machines that disagree (the line says which)" in page
