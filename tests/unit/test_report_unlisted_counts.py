"""A repro matrix.yaml does not list is described by its records: all of them."""

from __future__ import annotations

from pathlib import Path

from repromatrix.config import load_matrix
from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.report import build_report, write_report


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


def _one_repro_matrix(tmp_path: Path) -> Path:
    """matrix.yaml of one repro `r` over library `lib` 1.0 (its script empty)."""
    (tmp_path / "r.py").write_text("")
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(
        "schema: 1\n"
        "libraries:\n"
        "  lib: {pypi: lib-project, import: lib, versions: ['1.0']}\n"
        "repros:\n"
        "  r: {script: r.py, gpus: [cpu], libraries: {lib: all}}\n"
    )
    return matrix


def test_an_unlisted_repro_counts_every_record_and_run(tmp_path: Path) -> None:
    """A cell run twice was counted once, and the run of its older record not at all:
    "2 record(s) from 1 run(s)" of three records from two runs."""
    matrix = _one_repro_matrix(tmp_path)
    records = [
        _rec("1.0", Status.PASSED, "run-1", 1),
        _rec("1.0", Status.PASSED, "run-2", 2),
        _rec("1.1", Status.REGRESSED, "run-2", 2),
    ]
    data = build_report(records, load_matrix(matrix))
    (unlisted,) = [rr for rr in data.repros if rr.name == "upstream_x"]
    assert unlisted.description.startswith("Not in matrix.yaml: 3 record(s) from 2 run(s);")


def test_the_header_counts_the_matrix_and_a_repro_it_does_not_list_apart(tmp_path: Path) -> None:
    """Records of a renamed repro's old name made the header of a matrix of one repro,
    run under its new name by none, read "2 repros, 1 reproduced": the matrix's regression
    seemed reproduced. The old name's cells and verdict are counted apart now."""
    matrix = _one_repro_matrix(tmp_path)
    records = [
        _rec("1.0", Status.PASSED, "run-1", 1),
        _rec("1.1", Status.REGRESSED, "run-1", 1),
        _rec("1.2", Status.REGRESSED, "run-1", 1),
    ]
    paths = write_report(results=records, out_dir=tmp_path / "rep", matrix=load_matrix(matrix))
    summary = paths["markdown"].read_text()
    assert (
        "3 records from 1 machine, 1 cell, 1 repro, 0 reproduced; 1 more repro not in "
        "matrix.yaml (3 cells), 1 reproduced. Generated"
    ) in summary
    html = paths["html"].read_text()
    assert (
        "· 1 cell · 1 repro, 0 reproduced · 1 more repro not in matrix.yaml (3 cells), "
        "1 reproduced</p>"
    ) in html
    # Without a matrix every repro is the report's own: no count apart.
    alone = write_report(results=records, out_dir=tmp_path / "alone")
    assert "3 cells, 1 repro, 1 reproduced. Generated" in alone["markdown"].read_text()
    assert "not in matrix.yaml" not in alone["html"].read_text().split("</header>")[0]


class _CountedReads(dict[str, object]):
    """A provenance that counts the reads of its fields."""

    reads = 0

    def get(self, *args: object) -> object:
        _CountedReads.reads += 1
        return super().get(*args)  # type: ignore[call-overload]


def test_records_sharing_a_provenance_are_read_once_and_told_as_before() -> None:
    """Loaded records share their provenance (one dict per distinct flat one): 100,000
    records were read one by one, 0.18 s of the build; each shared one is read once, and
    the first passing record that names the source still gives the commit shown."""
    from repromatrix.report.unlisted import describe_unlisted

    harness = {"pins": {"lib": {"source": "https://github.com/o/lib.git"}}}
    shared = _CountedReads(harness=harness, params={"test": "tests/t.py::test_a"})
    records = []
    for i in range(500):
        r = _rec(f"1.{i}", Status.REGRESSED if i % 3 else Status.PASSED, "bisect-1", 1 + i % 9)
        records.append(r.model_copy(update={"provenance": shared, "commits": {"lib": f"{i:040x}"}}))
    records.append(_rec("2.0", Status.PASSED, "run-2", 1))  # no source: never the one shown
    _CountedReads.reads = 0
    described = describe_unlisted("upstream_x", records)
    assert _CountedReads.reads <= 3
    # Passing ones: every third (i = 0, 3, ...); of those finished first (day 1: i % 9 == 0),
    # the first in order: i = 0.
    assert described.link == f"https://github.com/o/lib/blob/{0:040x}/tests/t.py"
    assert "lib's own test tests/t.py::test_a, run as the verdict by repromatrix bisect" in (
        described.description
    )


def test_an_unlisted_repros_source_is_its_earliest_record_by_real_time() -> None:
    """The source link came from the record whose `finished` text sorted first:
    06:00+00:00 before 10:00+05:00, though 10:00+05:00 is 05:00 UTC, an hour earlier.
    The earliest record by real time (as `timestamps` orders records) gives it now."""
    from repromatrix.report.unlisted import describe_unlisted

    def sourced(label: str, finished: str, source: str) -> Result:
        pins = {"lib": {"source": source}}
        return _rec(label, Status.PASSED, "run-1", 1).model_copy(
            update={"finished": finished, "provenance": {"harness": {"pins": pins}}}
        )

    records = [
        sourced("1.0", "2026-01-01T06:00:00+00:00", "https://example.org/later.git"),
        sourced("1.1", "2026-01-01T10:00:00+05:00", "https://example.org/earlier.git"),
    ]
    for order in (records, records[::-1]):
        assert describe_unlisted("upstream_x", order).link == "https://example.org/earlier.git"
