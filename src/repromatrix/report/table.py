"""The results table (CSV, Parquet): one row per cell's newest record, via store.to_frame."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from repromatrix.ranges import Entry
from repromatrix.store import to_frame

if TYPE_CHECKING:
    import pandas as pd


def results_frame(entries: Sequence[Entry]) -> pd.DataFrame:
    """The winning record of every cell that has one, plus `flaky` and `older_records`."""
    with_result = [e for e in entries if e.result is not None]
    frame = to_frame(e.result for e in with_result if e.result is not None)
    if len(frame) == len(with_result):
        frame["flaky"] = [e.flaky for e in with_result]
        frame["older_records"] = [len(e.history) for e in with_result]
    return frame


def parquet_available() -> bool:
    return importlib.util.find_spec("pyarrow") is not None


def write_tables(
    entries: Sequence[Entry], *, csv_path: Path, parquet_path: Path | None
) -> list[str]:
    """Write the CSV (always) and the Parquet file (when pyarrow is importable); return
    notes about what was skipped."""
    frame = results_frame(entries)
    frame.to_csv(csv_path, index=False)
    if parquet_path is None:
        return []
    if not parquet_available():
        return [
            "results.parquet was not written: pyarrow is not installed "
            "(pip install 'repromatrix[parquet]')"
        ]
    frame.to_parquet(parquet_path, index=False)
    return []
