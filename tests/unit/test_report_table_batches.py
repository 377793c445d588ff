"""results.csv and results.parquet are written a batch of rows at a time (to keep a
100,000-row table out of memory at once): however the rows fall into batches, the files
hold what one batch of every row gives, each column of one type."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from repromatrix.entries import collect_entries
from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.report import table
from repromatrix.report.table import write_tables


def _records() -> list[Result]:
    """Rows whose column types, cleaned text and formulas show only in some batches."""
    out = []
    for i in range(23):
        extra: dict[str, Any] = {}
        if i == 0:
            extra["exit_code"] = 1  # the others have none: float64 for every batch
        if i == 17:
            extra.update(reason="=HYPERLINK(1)", host="bell\x07 \u202e")
        if i >= 19:
            extra.update(image=f"img:{i}", pins={"lib": f"1.{i}", "late": "x"})
            extra["commits"] = {"late": "c" * 40}
        out.append(
            Result(
                key=f"k{i}",
                cell_id=f"r[cpu,host,lib=1.{i}]",
                repro="r",
                base="host",
                gpu="cpu",
                pins=extra.pop("pins", {"lib": f"1.{i}"}),
                status=Status.REGRESSED if i % 5 == 1 else Status.PASSED,
                reason=extra.pop("reason", "ok"),
                metrics={"max_abs": i / 7} if i % 4 else {"max_abs": None},
                thresholds={"max_abs": 0.5},
                duration_s=float(i),
                finished="2026-01-01T00:00:00+00:00",
                **extra,
            )
        )
    return out


def _write(folder: Path) -> tuple[bytes, Any, int]:
    folder.mkdir()
    csv, parquet = folder / "results.csv", folder / "results.parquet"
    write_tables(collect_entries(_records()), csv_path=csv, parquet_path=parquet)
    return csv.read_bytes(), pq.read_table(parquet), pq.ParquetFile(parquet).num_row_groups


@pytest.mark.parametrize("rows", [1, 3, 8])
def test_batches_of_rows_write_what_one_batch_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: int
) -> None:
    whole_csv, whole, groups = _write(tmp_path / "whole")
    assert groups == 1
    monkeypatch.setattr(table, "BATCH_ROWS", rows)
    csv, parquet, groups = _write(tmp_path / "batches")
    assert groups == -(-23 // rows)
    assert csv == whole_csv
    assert parquet.schema == whole.schema
    assert parquet.equals(whole)
    # What only some batches show is in the columns of all of them.
    assert str(parquet.schema.field("exit_code").type) == "double"
    assert b"'=HYPERLINK(1)" in csv
    assert "commit.late" in parquet.column_names


def test_no_rows_write_the_header_and_an_empty_table(tmp_path: Path) -> None:
    csv, parquet = tmp_path / "results.csv", tmp_path / "results.parquet"
    write_tables([], csv_path=csv, parquet_path=parquet)
    assert csv.read_text().startswith('"key","cell_id",')
    assert pq.read_table(parquet).num_rows == 0


def test_writing_the_tables_never_imports_pandas(tmp_path: Path) -> None:
    """The forked child that writes the tables is the report's last process: pyarrow's
    first `pa.array` imported pandas (0.25 s, 40 MiB) only to ask whether a list was a
    pandas Series. In a process of its own, as pandas was not imported before; pandas
    imported after it still works with pyarrow."""
    code = (
        "import sys; from pathlib import Path\n"
        "from test_report_table_batches import _records\n"
        "from repromatrix.entries import collect_entries\n"
        "from repromatrix.report.table import write_tables\n"
        f"out = Path({str(tmp_path)!r})\n"
        "write_tables(collect_entries(_records()), csv_path=out / 'r.csv',"
        " parquet_path=out / 'r.parquet')\n"
        "print('pandas' in sys.modules)\n"
        "import pyarrow.parquet as pq\n"
        "print(len(pq.read_table(out / 'r.parquet').to_pandas()))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "23"]


def test_texts_that_start_a_formula_are_neutralized_in_every_column(tmp_path: Path) -> None:
    """Whether a column may hold a formula is told once, of all its texts: each that starts
    one gets its `'` in the CSV (a library's label too), a formula sign inside a text
    does not, and the Parquet table keeps every text as recorded."""
    import csv

    records = [
        Result(
            key=f"k{i}",
            cell_id=f"r[cpu,host,lib={i}]",
            repro="r",
            base="host",
            gpu="cpu",
            pins={"lib": label},
            status=Status.PASSED,
            reason=reason,
            host=host,
            finished="2026-01-01T00:00:00+00:00",
        )
        for i, (label, reason, host) in enumerate(
            [
                ("-1.0", "ok", "gpu-1"),
                ("1.1", "@sum", "\tindented"),
                ("+2", "fine -no", "=1"),
            ]
        )
    ]
    csv_path, parquet_path = tmp_path / "r.csv", tmp_path / "r.parquet"
    write_tables(collect_entries(records), csv_path=csv_path, parquet_path=parquet_path)
    with csv_path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["lib.lib"] for r in rows] == ["'-1.0", "1.1", "'+2"]
    assert [r["reason"] for r in rows] == ["ok", "'@sum", "fine -no"]
    assert [r["host"] for r in rows] == ["gpu-1", "'\tindented", "'=1"]
    table = pq.read_table(parquet_path)
    assert table.column("lib.lib").to_pylist() == ["-1.0", "1.1", "+2"]
    assert table.column("reason").to_pylist() == ["ok", "@sum", "fine -no"]
