"""The results table (CSV, Parquet): one row per cell's newest record.

Columns: the record's base columns (see `records.BASE_COLUMNS`), one `lib.<name>` column per
library, then `metrics` and `thresholds` as JSON objects, `flaky` and `older_records`.
Metrics stay in one JSON column rather than `metric.<name>` columns (as `store.to_frame`
has them) because every repro names its own metrics: a published table of many repros
would be hundreds of mostly empty columns, slow to write and hard to read. Load with
`json.loads` per row, or use `store.to_frame` on the JSONL results for wide columns.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repromatrix.grid import Entry
from repromatrix.records import BASE_COLUMNS

if TYPE_CHECKING:
    import pandas as pd


def _json(value: Any) -> str:
    # NaN/inf become null-free strings via allow_nan=True's tokens → keep them readable.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=True)


def results_frame(entries: Sequence[Entry]) -> pd.DataFrame:
    import pandas as pd

    winners = [e for e in entries if e.result is not None]
    columns: dict[str, list[Any]] = {c: [] for c in BASE_COLUMNS}
    libs: dict[str, list[Any]] = {}
    n = len(winners)
    for i, e in enumerate(winners):
        r = e.result
        assert r is not None
        for c in BASE_COLUMNS:
            columns[c].append(getattr(r, c))
        columns["status"][-1] = r.status.value
        for lib, label in r.pins.items():
            col = libs.get(lib)
            if col is None:
                col = libs[lib] = [None] * n
            col[i] = label
    columns.update({f"lib.{lib}": libs[lib] for lib in sorted(libs)})
    columns["metrics"] = [_json(dict(e.result.metrics)) for e in winners if e.result]
    columns["thresholds"] = [_json(dict(e.result.thresholds)) for e in winners if e.result]
    columns["flaky"] = [e.flaky for e in winners]
    columns["older_records"] = [len(e.history) for e in winners]
    return pd.DataFrame(columns)


def parquet_available() -> bool:
    return importlib.util.find_spec("pyarrow") is not None


def write_tables(entries: Sequence[Entry], *, csv_path: Path, parquet_path: Path | None) -> None:
    """Write the CSV, and the Parquet file when a path is given (pyarrow needed)."""
    frame = results_frame(entries)
    if parquet_path is None:
        frame.to_csv(csv_path, index=False)
        return
    # With pyarrow at hand, one Arrow table feeds both files; its CSV writer is several
    # times faster than pandas' on 100,000 rows.
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    pa_csv.write_csv(table, csv_path)
    pq.write_table(table, parquet_path)
