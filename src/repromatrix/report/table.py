"""The results table (CSV, Parquet): one row per cell, its winning record.

Columns: the record's base columns (see `records.BASE_COLUMNS`), `machine`, one
`lib.<name>` column per library (the revision's one label, as every output shows it) and
`commit.<name>` (its full commit, for git pins), then `metrics` and `thresholds` as JSON
objects, `flaky` with the verdict counts behind it, and `older_records`.
Metrics stay in one JSON column rather than `metric.<name>` columns (as `store.to_frame`
has them) because every repro names its own metrics: a published table of many repros
would be hundreds of mostly empty columns, slow to write and hard to read. Load with
`json.loads` per row, or use `store.to_frame` on the JSONL results for wide columns.

The CSV is meant for spreadsheets, so text cells starting with `=`, `+`, `-`, `@`, a tab
or a carriage return get a leading `'` (OWASP's advice against CSV formula injection); the
Parquet file keeps the text as recorded. Long text is cut for display in both.
"""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repromatrix.grid import Entry
from repromatrix.records import BASE_COLUMNS
from repromatrix.report.details import MAX_TEXT_CHARS, clip

if TYPE_CHECKING:
    import pandas as pd

#: What a spreadsheet may read as a formula at the start of a cell (OWASP, CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralize(value: Any) -> Any:
    """A text cell a spreadsheet will show as text, never evaluate."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _json(value: Any) -> str:
    # NaN/inf are written as the NaN/Infinity tokens Python's json module reads back.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=True)


def _text(value: Any) -> Any:
    if isinstance(value, str):
        return clip(value, MAX_TEXT_CHARS)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def results_frame(entries: Sequence[Entry]) -> pd.DataFrame:
    import pandas as pd

    winners = [e for e in entries if e.result is not None]
    columns: dict[str, list[Any]] = {c: [] for c in (*BASE_COLUMNS, "machine")}
    libs: dict[str, list[Any]] = {}
    commits: dict[str, list[Any]] = {}
    n = len(winners)
    for i, e in enumerate(winners):
        r = e.result
        assert r is not None
        for c in BASE_COLUMNS:
            columns[c].append(_text(getattr(r, c)))
        columns["status"][-1] = r.status.value
        columns["machine"].append(_text(r.machine.id))
        for lib, label in e.pins:
            col = libs.get(lib)
            if col is None:
                col = libs[lib] = [None] * n
            col[i] = _text(label)
            commit = r.commits.get(lib)
            if commit:
                col = commits.get(lib)
                if col is None:
                    col = commits[lib] = [None] * n
                col[i] = _text(commit)
    columns.update({f"lib.{lib}": libs[lib] for lib in sorted(libs)})
    columns.update({f"commit.{lib}": commits[lib] for lib in sorted(commits)})
    columns["metrics"] = [_json(dict(e.result.metrics)) for e in winners if e.result]
    columns["thresholds"] = [_json(dict(e.result.thresholds)) for e in winners if e.result]
    columns["flaky"] = [e.flaky for e in winners]
    columns["passed_records"] = [e.passed for e in winners]
    columns["regressed_records"] = [e.regressed for e in winners]
    columns["older_records"] = [len(e.history) for e in winners]
    return pd.DataFrame(columns)


def csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with every text cell that could start a formula neutralized."""
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    out = frame
    for col in frame.columns:
        # Text is `object` or (pandas 3) `str`; numbers and flags are never formulas.
        if is_numeric_dtype(frame[col].dtype) or is_bool_dtype(frame[col].dtype):
            continue
        values = frame[col]
        try:
            risky = values.str.startswith(FORMULA_START, na=False)
        except AttributeError:  # no text in this column at all
            continue
        if risky.any():
            if out is frame:
                out = frame.copy()
            out[col] = values.map(neutralize)
    return out


def parquet_available() -> bool:
    return importlib.util.find_spec("pyarrow") is not None


def write_tables(entries: Sequence[Entry], *, csv_path: Path, parquet_path: Path | None) -> None:
    """Write the CSV, and the Parquet file when a path is given (pyarrow needed)."""
    frame = results_frame(entries)
    for_csv = csv_frame(frame)
    if parquet_path is None:
        for_csv.to_csv(csv_path, index=False)
        return
    # With pyarrow at hand, Arrow tables feed both files; its CSV writer is several times
    # faster than pandas' on 100,000 rows.
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    csv_table = table if for_csv is frame else pa.Table.from_pandas(for_csv, preserve_index=False)
    pa_csv.write_csv(csv_table, csv_path)
    pq.write_table(table, parquet_path)
