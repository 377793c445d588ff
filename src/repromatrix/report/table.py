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
from collections.abc import Iterator, Mapping, Sequence
from operator import attrgetter, itemgetter, methodcaller
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repromatrix.grid import Entry
from repromatrix.records import BASE_COLUMNS, Result
from repromatrix.report.details import MAX_TEXT_CHARS, clip
from repromatrix.safetext import printable

if TYPE_CHECKING:
    import pandas as pd

#: What a spreadsheet may read as a formula at the start of a cell (OWASP, CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralize(value: Any) -> Any:
    """A text cell a spreadsheet will show as text, never evaluate."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


#: NaN/inf are written as the NaN/Infinity tokens Python's json module reads back. (The
#: encoder of `json.dumps(value, sort_keys=True, separators=(",", ":"))`, made once.)
_json = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=True).encode


def _text(value: Any) -> Any:
    if isinstance(value, str):  # controls (ESC, BEL), bidi and zero-width marks as "?"
        return printable(clip(value, MAX_TEXT_CHARS), newlines=True)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


_NONE = type(None)


def _texts(values: list[Any]) -> tuple[list[Any], set[type]]:
    """`_text` of every value, and the types of the result; the column as it is when no
    value needs it (short ASCII text, finite numbers: nearly always), told by a few
    whole-column checks."""
    kinds = set(map(type, values))
    if kinds <= {str, _NONE}:
        strings = [v for v in values if v is not None] if _NONE in kinds else values
        joined = "".join(strings)
        if not strings or (
            max(map(len, strings)) <= MAX_TEXT_CHARS and joined.isascii() and joined.isprintable()
        ):
            return values, kinds
    elif kinds <= {int, bool, _NONE} or (kinds <= {int, float} and math.isfinite(sum(values))):
        return values, kinds
    values = [_text(v) for v in values]
    return values, set(map(type, values))


def table_columns(entries: Sequence[Entry]) -> dict[str, list[Any]]:
    """Column name → values, one per cell with a record (see the module docstring)."""
    return {name: values for name, values, _ in _columns(entries)}


def _columns(entries: Sequence[Entry]) -> Iterator[tuple[str, list[Any], set[type]]]:
    """(name, values, their types) of each column in order, one at a time: the caller
    turns a column into an array and lets its list go before the next is made."""
    winning = [e for e in entries if e.result is not None]
    winners = [e.result for e in winning if e.result is not None]
    n = len(winners)
    for name in BASE_COLUMNS:
        values = list(map(attrgetter(name), winners))
        yield (name, *_texts([str(s) for s in values] if name == "status" else values))
    yield ("machine", *_texts([r.machine.id for r in winners]))
    # Library columns are sparse (a repro pins few of the libraries): filled where set.
    # Rows share their pins and commits (one tuple per revision, see `collect_entries`;
    # one mapping per spelling, see `fastdecode`): the rows of each pair are gathered by
    # identity first, and each pair's labels are taken once, not once per row.
    shapes: dict[tuple[int, int], list[int]] = {}
    pairs: dict[tuple[int, int], tuple[tuple[tuple[str, str], ...], Mapping[str, str]]] = {}
    for i, (r, e) in enumerate(zip(winners, winning, strict=True)):
        shape = (id(e.pins), id(r.commits))
        rows = shapes.get(shape)
        if rows is None:
            rows = shapes[shape] = []
            pairs[shape] = (e.pins, r.commits)
        rows.append(i)
    libs: dict[str, list[tuple[list[int], str]]] = {}
    commits: dict[str, list[tuple[list[int], str]]] = {}
    for shape, rows in shapes.items():
        pins, their_commits = pairs[shape]
        for lib, label in pins:
            libs.setdefault(lib, []).append((rows, label))
            commit = their_commits.get(lib)
            if commit:
                commits.setdefault(lib, []).append((rows, commit))
    named: set[str] = set()
    for prefix, sparse in (("lib.", libs), ("commit.", commits)):
        for lib in sorted(sparse):
            spans, labels = zip(*sparse.pop(lib), strict=True)
            texts, found = _texts(list(labels))
            dense: list[Any] = [None] * n
            filled = 0
            for rows, value in zip(spans, texts, strict=True):
                for i in rows:
                    dense[i] = value
                filled += len(rows)
            name = _column_name(prefix + lib, named)
            yield name, dense, found | ({_NONE} if filled < n else set())
    text: set[type] = {str} if n else set()
    yield "metrics", [_json_numbers(m) for m in _of(winners, "metrics")], text
    # Records share equal thresholds (see `fastdecode`): each is written once.
    written: dict[int, str] = {}
    thresholds = [
        written.get(id(t)) or written.setdefault(id(t), _json(dict(t)))
        for t in _of(winners, "thresholds")
    ]
    yield "thresholds", thresholds, text
    for name, values in (
        ("flaky", [e.flaky for e in winning]),
        ("passed_records", [e.passed for e in winning]),
        ("regressed_records", [e.regressed for e in winning]),
        ("older_records", [len(e.history) for e in winning]),
    ):
        yield name, values, set(map(type, values))


def _column_name(name: str, named: set[str]) -> str:
    """A library's column name as its values are written (printable: Arrow cannot encode
    a lone surrogate, and a CSV header is no place for escape sequences), kept apart
    from another that prints alike (`a\\ud800`, `a\\udfff`) by a count: one column
    each, never one lost to the other."""
    shown = printable(name)
    unique, count = shown, 1
    while unique in named:
        count += 1
        unique = f"{shown} ({count})"
    named.add(unique)
    return unique


def _of(records: list[Result], field: str) -> Iterator[Any]:
    return map(attrgetter(field), records)


#: Metric names (in the order they are written) → the JSON text with a `%s` per value.
_number_formats: dict[tuple[str, ...], tuple[str, Any]] = {}


def _json_numbers(numbers: Mapping[str, Any]) -> str:
    """`_json(dict(numbers))` for name → finite float or None (the metrics of a record),
    the text made from a format per set of names and each value's repr, as the encoder
    writes a finite float; anything else goes to the encoder."""
    values = numbers.values()
    kinds = set(map(type, values))
    if not (kinds <= {float, _NONE} and math.isfinite(sum(filter(None, values)))):
        return _json(dict(numbers))
    names = tuple(numbers)
    found = _number_formats.get(names)
    if found is None:
        if not names or not all(type(name) is str for name in names):
            return _json(dict(numbers))
        ordered = sorted(names)
        text = "{" + ",".join(_json(name).replace("%", "%%") + ":%s" for name in ordered) + "}"
        found = _number_formats[names] = (text, itemgetter(*ordered))
    text, pick = found
    picked = pick(numbers) if len(names) > 1 else (pick(numbers),)
    if _NONE in kinds:
        return text % tuple("null" if v is None else repr(v) for v in picked)
    return text % tuple(map(float.__repr__, picked))


def results_frame(entries: Sequence[Entry]) -> pd.DataFrame:
    """The table as a pandas DataFrame."""
    import pandas as pd

    return pd.DataFrame(table_columns(entries))


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
    if parquet_path is None:
        # Without pyarrow, pandas writes the CSV.
        csv_frame(results_frame(entries)).to_csv(csv_path, index=False)
        return
    # Arrow arrays straight from the columns feed both files (no DataFrame in between),
    # each column's list let go once it is an array. Their buffers come from malloc,
    # which gives large ones back when they are freed (Arrow's default pool keeps them:
    # 100,000 rows left it 200 MiB larger).
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    pool = pa.system_memory_pool()
    arrays = {}
    neutral = {}  # columns with a text a spreadsheet would run, as the CSV writes them
    for name, values, found in _columns(entries):
        arrays[name] = _array(values, found, pool)
        if found <= {str, _NONE} and any(map(_starts_formula, filter(None, values))):
            neutral[name] = _array([neutralize(v) for v in values], found, pool)
    table = pa.table(arrays)
    # Opened here: Arrow takes a path as UTF-8 text, which a folder name with an undecodable
    # byte (`o\xffut`, kept by Python as a surrogate) is not.
    with parquet_path.open("wb") as f:
        pq.write_table(table, f)
    for name, array in neutral.items():
        table = table.set_column(table.column_names.index(name), name, array)
    with csv_path.open("wb") as f:
        pa_csv.write_csv(table, f)


_starts_formula = methodcaller("startswith", FORMULA_START)


def _array(values: list[Any], types: set[type] | None = None, pool: Any = None) -> Any:
    """An Arrow array of the type pandas would have given the column (the files keep the
    types they had when a DataFrame stood in between): text as large strings, integers
    as int64 unless a value is missing (then float64, as NaN made them), numbers as
    float64, flags as booleans, and a column of nothing but nulls as nulls. `types`: the
    types of the values, when the caller knows them."""
    import pyarrow as pa

    kinds = set(map(type, values)) if types is None else set(types)
    missing = _NONE in kinds
    kinds.discard(_NONE)
    if not values:  # no cell has a record: pandas made every column float64
        arrow_type = pa.float64()
    elif not kinds:
        return pa.nulls(len(values), memory_pool=pool)
    elif kinds == {str}:
        arrow_type = pa.large_string()
    elif kinds == {bool} and not missing:
        arrow_type = pa.bool_()
    elif kinds == {int} and not missing and _INT64_MIN <= min(values) <= max(values) <= _INT64_MAX:
        arrow_type = pa.int64()
    elif kinds <= {int, float}:
        arrow_type = pa.float64()
        values = [float(v) if v is not None else None for v in values]
    else:
        arrow_type = pa.large_string()
        values = [v if v is None else str(v) for v in values]
    return pa.array(values, type=arrow_type, memory_pool=pool)


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
