"""Points whose place on the axis is unknown (a commit without a mirror or date) beside a
regression whose place is known: every output that says where it begins and ends names
them, and never says "still present" as if a pass among them could not be its fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repromatrix.cli import main
from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.report import build_report
from repromatrix.report.compat import build_compat


def _at(label: str, status: Status, commit: str | None = None) -> Result:
    return Result(
        key=f"k{label}",
        cell_id=f"r[cpu,host,lib={label}]",
        repro="r",
        base="host",
        gpu="cpu",
        pins={"lib": label},
        commits={"lib": commit} if commit else {},
        status=status,
        reason=status.value,
        metrics={"err": 1.0 if status is Status.REGRESSED else 0.0},
        finished="2026-01-01T00:00:00+00:00",
    )


#: 1.0 passed, 2.0 regressed (ordered); two commits with no place: one regressed, one
#: passed (it may be newer than 2.0: the fix).
RECORDS = [
    _at("1.0", Status.PASSED),
    _at("2.0", Status.REGRESSED),
    _at("aaaaaaaa", Status.REGRESSED, "a" * 40),
    _at("cccccccc", Status.PASSED, "c" * 40),
]


def _readme_row(tmp_path: Path, records: list[Result], capsys: pytest.CaptureFixture[str]) -> str:
    store = tmp_path / "results"
    store.mkdir()
    (store / "x.jsonl").write_text("".join(json.dumps(r.record()) + "\n" for r in records))
    readme = tmp_path / "README.md"
    readme.write_text("<!-- reproduced:begin -->\nold\n<!-- reproduced:end -->\n")
    argv = ["--matrix", str(tmp_path / "none.yaml"), "report", "--results", str(store)]
    code = main([*argv, "--out", str(tmp_path / "rep"), "--readme", str(readme)])
    assert code == 0, capsys.readouterr().err
    (row,) = [ln for ln in readme.read_text().splitlines() if ln.startswith("| r |")]
    return row


def test_the_readme_table_names_regressions_and_passes_whose_order_is_unknown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The row said "2.0 (last good 1.0) | — (still present)": nothing of aaaaaaaa, which
    regressed (it may be later, after a fix), nor of cccccccc, which passed (it may be
    the fix)."""
    row = _readme_row(tmp_path, RECORDS, capsys)
    assert "| 2.0 (last good 1.0; order unknown at aaaaaaaa) |" in row
    assert "— (still present where the order is known)" in row
    assert "also regressed at aaaaaaaa (order unknown)" in row
    assert "passed at cccccccc (order unknown)" in row


def test_the_readme_table_names_no_unordered_pass_once_the_regression_is_fixed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    row = _readme_row(tmp_path, [*RECORDS, _at("3.0", Status.PASSED)], capsys)
    assert "| 3.0; also regressed at aaaaaaaa (order unknown) |" in row


def test_the_compat_page_does_not_say_still_present_beside_a_pass_of_unknown_order() -> None:
    (row,) = build_compat(build_report(RECORDS), None).rows
    ((line,),) = row.cells
    assert line.text == (
        "regressed 2.0, still present where the order is known; also at aaaaaaaa "
        "(order unknown); passed at cccccccc (order unknown)"
    )


def test_the_summary_sentence_says_newest_tested_only_of_points_whose_order_is_known() -> None:
    (finding,) = build_report(RECORDS).repros[0].findings
    assert "still present in the newest tested whose order is known (2.0)" in finding.summary
    assert "cccccccc (passed)" in finding.summary


def _on(base: str, image: str | None, status: Status) -> Result:
    return Result(
        key=f"k{base}",
        cell_id=f"r[cpu,{base}]",
        repro="r",
        base=base,
        image=image,
        gpu="cpu",
        status=status,
        reason=status.value,
        finished="2026-01-01T00:00:00+00:00",
    )


def test_the_host_among_dated_images_is_not_told_to_get_a_release() -> None:
    """The host (no image) among NGC images said "order unknown (no release: give the image
    `released: YYYY-MM` in matrix.yaml): host (regressed)", which matrix.yaml cannot do."""
    records = [
        _on("host", None, Status.REGRESSED),
        _on("a", "nvcr.io/nvidia/pytorch:24.10-py3", Status.PASSED),
        _on("b", "nvcr.io/nvidia/pytorch:24.12-py3", Status.REGRESSED),
    ]
    (finding,) = build_report(records).repros[0].findings
    assert finding.summary.endswith(
        "order unknown (the host is no image: it has no release to place it among them): "
        "host (regressed)"
    )
    custom = _on("custom", "me/env:latest", Status.PASSED)
    (finding,) = build_report([*records, custom]).repros[0].findings
    assert (
        "order unknown (no release: give the image `released: YYYY-MM` in matrix.yaml; "
        "the host has none): host (regressed), custom (passed)"
    ) in finding.summary


def test_a_flaky_point_of_unknown_order_is_named_beside_a_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """ "fixed in 3.0" alone hid that aaaaaaaa (which may be newer) regressed one run in two:
    a flaky point whose order is known is named there, one whose order is not was not."""
    flaky = [_at("aaaaaaaa", Status.PASSED, "a" * 40), _at("aaaaaaaa", Status.REGRESSED, "a" * 40)]
    records = [_at("1.0", Status.PASSED), _at("2.0", Status.REGRESSED), _at("3.0", Status.PASSED)]
    records += [flaky[0], flaky[1].model_copy(update={"finished": "2026-01-02T00:00:00+00:00"})]
    said = "flaky at aaaaaaaa (order unknown; 1 passed, 1 regressed)"
    (row,) = build_compat(build_report(records), None).rows
    ((line,),) = row.cells
    assert line.text == f"regressed 2.0, fixed in 3.0; {said}"
    readme = _readme_row(tmp_path, records, capsys)
    assert f"| 2.0 (last good 1.0; order unknown at aaaaaaaa) | 3.0; {said} |" in readme


def test_the_readme_table_names_points_without_a_verdict_inside_an_interval(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """ "0.10 (last good 0.9) | 1.1" read as bad all through, though 1.0rc1 could not test
    (it may have been fixed there and come back): summary.md and compat.html said so."""
    records = [
        _at("0.9", Status.PASSED),
        _at("0.10", Status.REGRESSED),
        _at("1.0rc1", Status.UNTESTABLE),
        _at("1.0.post1", Status.REGRESSED),
        _at("1.1", Status.PASSED),
    ]
    row = _readme_row(tmp_path, records, capsys)
    assert "| 0.10 (last good 0.9) | 1.1; no verdict inside it at 1.0rc1 |" in row


def test_a_series_flaky_only_where_the_order_is_unknown_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its README row and compat line said "flaky at aaaaaaaa (1 passed, 1 regressed)" as
    if aaaaaaaa had a place among the releases that passed."""
    flaky = [_at("aaaaaaaa", Status.PASSED, "a" * 40), _at("aaaaaaaa", Status.REGRESSED, "a" * 40)]
    records = [_at("1.0", Status.PASSED), _at("2.0", Status.PASSED), flaky[0]]
    records.append(flaky[1].model_copy(update={"finished": "2026-01-02T00:00:00+00:00"}))
    said = "flaky at aaaaaaaa (order unknown; 1 passed, 1 regressed)"
    (row,) = build_compat(build_report(records), None).rows
    ((line,),) = row.cells
    assert line.text.startswith(said)
    assert f"| {said} | unknown |" in _readme_row(tmp_path, records, capsys)


def test_a_regression_of_unknown_order_makes_the_begin_a_claim_of_the_known_order_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """aaaaaaaa regressed and may lie between 1.0 and 2.0: the regression may begin there,
    yet summary.md said "begins at 2.0 (last good 1.0)" and the README "2.0 (last good
    1.0)", as sure as if no such point existed."""
    records = [_at("1.0", Status.PASSED), _at("2.0", Status.REGRESSED), _at("3.0", Status.PASSED)]
    records.append(_at("aaaaaaaa", Status.REGRESSED, "a" * 40))
    (finding,) = build_report(records).repros[0].findings
    assert finding.summary.startswith(
        "where the order is known: begins at 2.0 (last good 1.0); ends at 3.0 (last bad 2.0); "
        "order unknown ("
    ), finding.summary
    assert finding.summary.endswith(": aaaaaaaa (regressed)")
    row = _readme_row(tmp_path, records, capsys)
    assert "| 2.0 (last good 1.0; order unknown at aaaaaaaa) |" in row, row
    # A flaky point of unknown order did regress, one run in a few: it too may lie before.
    flaky = [_at("aaaaaaaa", Status.PASSED, "a" * 40), _at("aaaaaaaa", Status.REGRESSED, "a" * 40)]
    flaky[1] = flaky[1].model_copy(update={"finished": "2026-01-02T00:00:00+00:00"})
    (finding,) = build_report([*records[:3], *flaky]).repros[0].findings
    assert finding.summary.startswith("where the order is known: begins at 2.0"), finding.summary
    # Passes of unknown order leave the begin as it was (they may move "last good" only).
    (finding,) = build_report(RECORDS[:2] + RECORDS[3:]).repros[0].findings
    assert finding.summary.startswith("begins at 2.0 (last good 1.0)"), finding.summary


def test_images_of_one_release_are_no_order_unless_matrix_yaml_lists_them() -> None:
    """pytorch:24.12 and tensorrt:24.12 (two images of one month) said "begins at b (last
    good a)": one after the other in the order their records were read, never in time."""
    a = _on("a", "nvcr.io/nvidia/pytorch:24.12-py3", Status.PASSED)
    b = _on("b", "nvcr.io/nvidia/tensorrt:24.12-py3", Status.REGRESSED)
    for records in ([a, b], [b, a]):
        (finding,) = build_report(records).repros[0].findings
        assert finding.summary.startswith(
            "order unknown (a, b are both of 2024-12: neither is after the other): "
        ), finding.summary
        assert "a (passed)" in finding.summary
        assert "b (regressed)" in finding.summary
    # An older image still orders before both; a newer one after.
    old = _on("o", "nvcr.io/nvidia/pytorch:24.10-py3", Status.PASSED)
    new = _on("n", "nvcr.io/nvidia/pytorch:25.01-py3", Status.REGRESSED)
    (finding,) = build_report([old, a, b, new]).repros[0].findings
    assert finding.summary.startswith(
        "where the order is known: begins at n (last good o); still present"
    ), finding.summary


def test_images_of_one_release_keep_the_order_matrix_yaml_lists_them_in(tmp_path: Path) -> None:
    from repromatrix.config import load_matrix

    (tmp_path / "r.py").write_text("")
    (tmp_path / "matrix.yaml").write_text(
        "schema: 1\nimages:\n"
        "  a: {ref: 'me/env:v1', released: '2024-12'}\n"
        "  b: {ref: 'me/env:v2', released: '2024-12'}\n"
        "repros:\n  r: {script: r.py, gpus: [cpu], bases: [a, b]}\n"
    )
    matrix = load_matrix(tmp_path / "matrix.yaml")
    records = [_on("b", "me/env:v2", Status.REGRESSED), _on("a", "me/env:v1", Status.PASSED)]
    (finding,) = build_report(records, matrix).repros[0].findings
    assert finding.summary.startswith("begins at b (last good a)"), finding.summary


def test_index_rows_whose_place_is_unknown_say_so(tmp_path: Path) -> None:
    """The grid listed aaaaaaaa and cccccccc after 2.0 as if newer, with nothing to say
    their place is a guess (the sentence above it said so; the rows did not)."""
    from repromatrix.report import write_report

    write_report(results=RECORDS, out_dir=tmp_path / "rep")
    html = (tmp_path / "rep" / "index.html").read_text()
    for label in ("aaaaaaaa", "cccccccc"):
        assert f'>{label}<br><span class="badge">order unknown</span></th>' in html, label
    assert '>2.0 <span class="badge">' not in html


def test_first_tested_is_said_of_the_known_order_beside_points_of_unknown_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """ "begins at or before 2.0 (first tested)" beside aaaaaaaa, tested too and maybe older
    (its pass may be the last good one): 2.0 is the first tested of the known order only."""
    records = [_at("2.0", Status.REGRESSED), _at("3.0", Status.PASSED)]
    records.append(_at("aaaaaaaa", Status.PASSED, "a" * 40))
    (finding,) = build_report(records).repros[0].findings
    assert finding.summary.startswith(  # aaaaaaaa may lie before 3.0 too: the end is there
        "where the order is known: begins at or before 2.0 (first tested whose order is "
        "known); ends at 3.0"
    ), finding.summary
    assert "| 2.0 (first tested whose order is known) | 3.0 |" in _readme_row(
        tmp_path, records, capsys
    )
    (finding,) = build_report(records[:2]).repros[0].findings
    assert finding.summary.startswith("begins at or before 2.0 (first tested); ends at 3.0")


def test_newest_tested_is_said_of_the_known_order_beside_a_regression_of_unknown_order() -> None:
    records = [_at("2.0", Status.REGRESSED), _at("3.0", Status.REGRESSED)]
    records.append(_at("aaaaaaaa", Status.REGRESSED, "a" * 40))
    (finding,) = build_report(records).repros[0].findings
    assert "; still present in the newest tested whose order is known (3.0);" in finding.summary
