"""A repro renamed in matrix.yaml: its old name's records are marked in every format."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest

from repromatrix.config import load_matrix
from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.report import reproduced_table_markdown, write_report


def _rec(repro: str, label: str, status: Status) -> Result:
    return Result(
        key=f"k{repro}{label}",
        cell_id=f"{repro}[cpu,host,lib={label}]",
        repro=repro,
        base="host",
        gpu="cpu",
        pins={"lib": label},
        status=status,
        reason=status.value,
        run_id="run-1",
        finished="2026-01-01T00:00:00+00:00",
    )


def test_a_renamed_repro_s_old_records_say_matrix_yaml_no_longer_lists_it(
    tmp_path: Path,
) -> None:
    """Records under `old_name`, matrix.yaml lists only `new_name`: the README table,
    summary.md and compat.html showed the old name's regression as live and unmarked,
    where index.html badged it "not in matrix"."""
    (tmp_path / "r.py").write_text("")
    matrix_file = tmp_path / "matrix.yaml"
    matrix_file.write_text(
        "schema: 1\n"
        "libraries:\n"
        "  lib: {pypi: lib-project, import: lib, versions: ['1.0', '1.1']}\n"
        "repros:\n"
        "  new_name: {script: r.py, gpus: [cpu], libraries: {lib: all}}\n"
    )
    matrix = load_matrix(matrix_file)
    records = [
        _rec("old_name", "1.0", Status.PASSED),
        _rec("old_name", "1.1", Status.REGRESSED),
        _rec("new_name", "1.0", Status.PASSED),
        _rec("new_name", "1.1", Status.REGRESSED),
    ]
    readme = reproduced_table_markdown(records, matrix)
    assert "| old_name (not in matrix) | cpu | 1.1 " in readme
    assert "| new_name | cpu | 1.1 " in readme
    paths = write_report(results=records, out_dir=tmp_path / "out", matrix=matrix)
    summary = paths["markdown"].read_text()
    assert "| old_name (not in matrix) | cpu | begins at 1.1" in summary
    assert "| old_name (not in matrix) | 1 | 1 | 2 |" in summary  # cells per status
    assert "| new_name | cpu | begins at 1.1" in summary
    compat = paths["compat"].read_text()
    assert '>old_name</a> <span class="badge">not in matrix</span>: regressed 1.1' in compat
    assert ">new_name</a>: regressed 1.1" in compat
    # Without a matrix.yaml nothing says what it lists: no mark.
    assert "not in matrix" not in reproduced_table_markdown(records)
    paths = write_report(results=records, out_dir=tmp_path / "bare")
    assert "not in matrix" not in paths["markdown"].read_text()
    assert "not in matrix" not in paths["compat"].read_text()


def test_junit_names_a_renamed_repro_s_failures_as_not_in_the_matrix(tmp_path: Path) -> None:
    """junit.xml showed old_name's regression as a failing suite of the matrix, unmarked,
    beside new_name's: a CI page read a repro the matrix no longer has as failing."""
    (tmp_path / "r.py").write_text("")
    matrix_file = tmp_path / "matrix.yaml"
    matrix_file.write_text(
        "schema: 1\n"
        "libraries:\n"
        "  lib: {pypi: lib-project, import: lib, versions: ['1.0', '1.1']}\n"
        "repros:\n"
        "  new_name: {script: r.py, gpus: [cpu], libraries: {lib: all}}\n"
    )
    records = [
        _rec("old_name", "1.0", Status.ERROR),
        _rec("old_name", "1.1", Status.REGRESSED),
        _rec("new_name", "1.1", Status.REGRESSED),
    ]
    paths = write_report(results=records, out_dir=tmp_path / "out", matrix=load_matrix(matrix_file))
    junit = ET.parse(paths["junit"]).getroot()
    suites = {s.get("name"): s for s in junit.iter("testsuite")}
    assert set(suites) == {"new_name", "old_name (not in matrix)"}
    old = suites["old_name (not in matrix)"]
    messages = sorted(str(e.get("message")) for e in old.iter() if e.tag in ("failure", "error"))
    assert messages == ["not in matrix.yaml: error", "not in matrix.yaml: regressed"]
    assert [f.get("message") for f in suites["new_name"].iter("failure")] == ["regressed"]
    # Without a matrix.yaml nothing says what it lists: no mark.
    bare = write_report(results=records, out_dir=tmp_path / "bare")
    assert "not in matrix" not in bare["junit"].read_text()


@pytest.mark.parametrize("pyarrow", [True, False])
def test_results_csv_and_parquet_mark_a_renamed_repro_s_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pyarrow: bool
) -> None:
    """results.csv and results.parquet had old_name's regressed row as one of the matrix,
    with nothing to tell it from new_name's: a spreadsheet's count of regressions took in
    a repro the matrix no longer has. `not_in_matrix` says it now, with pyarrow or not."""
    from repromatrix.report import table as report_table

    if not pyarrow:
        monkeypatch.setattr(report_table, "parquet_available", lambda: False)
    (tmp_path / "r.py").write_text("")
    matrix_file = tmp_path / "matrix.yaml"
    matrix_file.write_text(
        "schema: 1\n"
        "libraries:\n"
        "  lib: {pypi: lib-project, import: lib, versions: ['1.0', '1.1']}\n"
        "repros:\n"
        "  new_name: {script: r.py, gpus: [cpu], libraries: {lib: all}}\n"
    )
    records = [_rec("old_name", "1.1", Status.REGRESSED), _rec("new_name", "1.0", Status.PASSED)]
    paths = write_report(results=records, out_dir=tmp_path / "out", matrix=load_matrix(matrix_file))
    tables = [pd.read_csv(paths["csv"])] + ([pd.read_parquet(paths["parquet"])] if pyarrow else [])
    for table in tables:
        assert dict(zip(table["repro"], table["not_in_matrix"], strict=True)) == {
            "old_name": True,
            "new_name": False,
        }
    # Without a matrix.yaml nothing says what it lists: no row is apart.
    bare = write_report(results=records, out_dir=tmp_path / "bare")
    assert not pd.read_csv(bare["csv"])["not_in_matrix"].any()


def test_report_compare_marks_the_verdicts_a_renamed_repro_lost(tmp_path: Path) -> None:
    """changes.md listed old_name's verdicts as lost ("now not tested") beside new_name's
    new regression, with no word that matrix.yaml no longer lists old_name."""
    (tmp_path / "r.py").write_text("")
    matrix_file = tmp_path / "matrix.yaml"
    matrix_file.write_text(
        "schema: 1\n"
        "libraries:\n"
        "  lib: {pypi: lib-project, import: lib, versions: ['1.0', '1.1']}\n"
        "repros:\n"
        "  new_name: {script: r.py, gpus: [cpu], libraries: {lib: all}}\n"
    )
    old = [_rec("old_name", "1.0", Status.PASSED), _rec("old_name", "1.1", Status.REGRESSED)]
    new = [_rec("new_name", "1.0", Status.PASSED), _rec("new_name", "1.1", Status.REGRESSED)]
    paths = write_report(
        results=new, out_dir=tmp_path / "out", matrix=load_matrix(matrix_file), compare=old
    )
    changes = paths["changes_markdown"].read_text()
    assert "| old_name (not in matrix) | cpu | host | lib=1.1 | regressed | not tested |" in changes
    assert "| new_name | cpu | host | lib=1.1 | not tested | regressed |" in changes
    page = paths["changes"].read_text()
    assert '<td>old_name <span class="badge">not in matrix</span></td>' in page
    assert "<td>new_name</td>" in page
