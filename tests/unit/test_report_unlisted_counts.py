"""A repro matrix.yaml does not list is described by its records: all of them."""

from __future__ import annotations

from pathlib import Path

from repromatrix.config import load_matrix
from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.report import build_report


def _rec(label: str, status: Status, run: str, day: int) -> Result:
    return Result(
        key=f"k{label}",
        cell_id=f"upstream_x[cpu,host,lib={label}]",
        repro="upstream_x",
        base="host",
        gpu="cpu",
        pins={"lib": label},
        status=status,
        reason=status.value,
        run_id=run,
        finished=f"2026-01-0{day}T00:00:00+00:00",
    )


def test_an_unlisted_repro_counts_every_record_and_run(tmp_path: Path) -> None:
    """A cell run twice was counted once, and the run of its older record not at all:
    "2 record(s) from 1 run(s)" of three records from two runs."""
    (tmp_path / "r.py").write_text("")
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(
        "schema: 1\n"
        "libraries:\n"
        "  lib: {pypi: lib-project, import: lib, versions: ['1.0']}\n"
        "repros:\n"
        "  r: {script: r.py, gpus: [cpu], libraries: {lib: all}}\n"
    )
    records = [
        _rec("1.0", Status.PASSED, "run-1", 1),
        _rec("1.0", Status.PASSED, "run-2", 2),
        _rec("1.1", Status.REGRESSED, "run-2", 2),
    ]
    data = build_report(records, load_matrix(matrix))
    (unlisted,) = [rr for rr in data.repros if rr.name == "upstream_x"]
    assert unlisted.description.startswith("Not in matrix.yaml: 3 record(s) from 2 run(s);")
