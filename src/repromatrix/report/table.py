"""The results table (CSV, Parquet): one row per cell, its winning record.

Columns: the record's base columns (see `records.BASE_COLUMNS`), `machine`, one
`lib.<name>` column per library (the revision's one label, as every output shows it) and
`commit.<name>` (its full commit, for git pins), then `metrics` and `thresholds` as JSON
objects, `flaky` with the verdict counts behind it, `machines_disagree` (records that
disagree only between machines or GPUs, each steady: such a cell is not `flaky`, as no
other output calls it so; see `winner.machines_split`), `older_records`, `not_in_matrix`
(a repro matrix.yaml, given, does not list: a renamed one's old name, `upstream_pytest`).
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
import sys
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from operator import attrgetter, itemgetter, methodcaller
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from repromatrix.grid import Entry
from repromatrix.records import BASE_COLUMNS, Result
from repromatrix.report.details import MAX_TEXT_CHARS, clip
from repromatrix.safetext import printable

if TYPE_CHECKING:
    import pandas as pd

#: What a spreadsheet may read as a formula at the start of a cell (OWASP, CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


#: Rows written at a time: each batch's columns are made, written to both files and let
#: go before the next. Each batch is a row group of the Parquet file. (A forked child
#: writing 100,000 rows peaked at 235 MiB of its own with 65,536 a batch, 183 with
#: 16,384, 150 with 8,192, 142 with 4,096: smaller row groups for less memory.)
BATCH_ROWS = 4_096


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
_NO: Set[str] = frozenset()  # no repro apart from the matrix (`not_in_matrix`)


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


def table_columns(entries: Sequence[Entry], apart: Set[str] = frozenset()) -> dict[str, list[Any]]:
    """Column name → values, one per cell with a record (see the module docstring)."""
    rows, columns = _plan(entries, apart)
    return {c.name: c.rows(0, rows) for c in columns}


class _Column(NamedTuple):
    """A column of the table: its name, the types of all its values as written (so every
    batch of rows gets the one Arrow type the whole column would have), the smallest and
    largest value of a column of integers alone, and its values of rows [start, stop)."""

    name: str
    found: set[type]
    ints: tuple[int, int] | None
    rows: Callable[[int, int], list[Any]]


def _plan(entries: Sequence[Entry], apart: Set[str] = frozenset()) -> tuple[int, list[_Column]]:
    """How many rows, and the columns in order, each made a batch of rows at a time: the
    caller writes a batch and lets it go before the next is made (whole columns of
    100,000 rows and their Arrow arrays held ~140 MiB at once)."""
    winning = [e for e in entries if e.result is not None]
    winners = [e.result for e in winning if e.result is not None]
    n = len(winners)
    columns: list[_Column] = []
    for name in BASE_COLUMNS:
        # A status as its text (`str` of the enum), read without a call per row.
        get = attrgetter("status._value_" if name == "status" else name)
        columns.append(_whole(name, _mapped(get, winners)))
    columns.append(_whole("machine", _mapped(attrgetter("machine.id"), winners)))
    columns += _library_columns(winning, winners)
    text: set[type] = {str} if n else set()

    def metrics(start: int, stop: int) -> list[Any]:
        return [_json_numbers(r.metrics) for r in winners[start:stop]]

    # Records share equal thresholds (see `fastdecode`): each is written once.
    written: dict[int, str] = {}

    def thresholds(start: int, stop: int) -> list[Any]:
        return [
            written.get(id(t)) or written.setdefault(id(t), _json(dict(t)))
            for t in _of(winners[start:stop], "thresholds")
        ]

    columns += [
        _Column("metrics", text, None, metrics),
        _Column("thresholds", text, None, thresholds),
    ]
    columns.append(_whole("flaky", _mapped(_flaky, winning), texts=False))
    columns.append(_whole("machines_disagree", _mapped(_split, winning), texts=False))
    for name, field in (("passed_records", "passed"), ("regressed_records", "regressed")):
        columns.append(_whole(name, _mapped(attrgetter(field), winning), texts=False))
    columns.append(_whole("older_records", _older(winning), texts=False))
    unlisted = [e.repro in apart for e in winning]  # `apart`: repros matrix.yaml lacks
    columns.append(_whole("not_in_matrix", _mapped(bool, unlisted), texts=False))
    return n, columns


def _flaky(e: Entry) -> bool:
    return e.flaky and not e.split


def _split(e: Entry) -> bool:
    return bool(e.split)


def _older(entries: list[Entry]) -> Callable[[int, int], list[Any]]:
    def rows(start: int, stop: int) -> list[Any]:
        return list(map(len, map(_history, entries[start:stop])))

    return rows


_history = attrgetter("history")


def _mapped(get: Callable[[Any], Any], items: list[Any]) -> Callable[[int, int], list[Any]]:
    def rows(start: int, stop: int) -> list[Any]:
        return list(map(get, items[start:stop]))

    return rows


def _whole(name: str, rows: Callable[[int, int], list[Any]], *, texts: bool = True) -> _Column:
    """A column whose types (and whether any value is written otherwise: `_texts`) are
    told from all its values at once, made again for each batch."""
    values = rows(0, _ALL)
    found = set(map(type, values))
    changed = False
    if texts:
        written, found = _texts(values)
        changed = written is not values
    ints = (min(values), max(values)) if found == {int} else None
    if changed:

        def each(start: int, stop: int) -> list[Any]:
            return [_text(v) for v in rows(start, stop)]

        return _Column(name, found, ints, each)
    return _Column(name, found, ints, rows)


#: A stop past any row.
_ALL = 1 << 62


def _library_columns(winning: list[Entry], winners: list[Result]) -> list[_Column]:
    """`lib.<name>` and `commit.<name>` of every library, in order of name. They are
    sparse (a repro pins few of the libraries): filled where set. Rows share their pins
    and commits (one tuple per revision, see `collect_entries`; one mapping per spelling,
    see `fastdecode`): the rows of each pair are gathered by identity first, and each
    pair's labels are taken once, not once per row."""
    n = len(winners)
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
    columns = []
    for prefix, sparse in (("lib.", libs), ("commit.", commits)):
        for lib in sorted(sparse):
            spans, labels = zip(*sparse.pop(lib), strict=True)
            texts, found = _texts(list(labels))
            filled = sum(map(len, spans))
            name = _column_name(prefix + lib, named)
            found |= {_NONE} if filled < n else set()
            columns.append(
                _Column(name, found, None, _spread(list(zip(spans, texts, strict=True))))
            )
    return columns


def _spread(spans: list[tuple[list[int], Any]]) -> Callable[[int, int], list[Any]]:
    """Rows [start, stop) of a sparse column: each span's value at its rows (ascending),
    None elsewhere."""

    def rows(start: int, stop: int) -> list[Any]:
        dense: list[Any] = [None] * (stop - start)
        for at, value in spans:
            if at[-1] < start or at[0] >= stop:
                continue
            for i in at[bisect_left(at, start) : bisect_left(at, stop)]:
                dense[i - start] = value
        return dense

    return rows


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


def write_tables(
    entries: Sequence[Entry], *, csv_path: Path, parquet_path: Path | None, apart: Set[str] = _NO
) -> None:
    """Write the CSV, and the Parquet file when a path is given (pyarrow needed)."""
    if parquet_path is None:
        import pandas as pd

        # Without pyarrow, pandas writes the CSV.
        csv_frame(pd.DataFrame(table_columns(entries, apart))).to_csv(csv_path, index=False)
        return
    # Arrow arrays straight from the columns feed both files (no DataFrame in between), a
    # batch of rows at a time, each batch's lists and arrays let go once it is written:
    # whole columns of 100,000 rows held ~140 MiB more at once, and in a forked child
    # (`--jobs 2`) each new object lands in a page it shares with the parent, which then
    # is copied. Every buffer, the writers' too, comes from malloc, which gives large ones
    # back when they are freed (Arrow's default pool keeps them: 100,000 rows left it
    # 200 MiB larger; the writers' encoding kept ~15 MiB more in a child).
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    _no_pandas_lookup(pa)
    pool = pa.system_memory_pool()
    n, columns = _plan(entries, apart)
    types = [_arrow_type(c.found, c.ints, n) for c in columns]
    schema = pa.schema([pa.field(c.name, t) for c, t in zip(columns, types, strict=True)])
    # Opened here: Arrow takes a path as UTF-8 text, which a folder name with an undecodable
    # byte (`o\xffut`, kept by Python as a surrogate) is not.
    with (
        parquet_path.open("wb") as pf,
        csv_path.open("wb") as cf,
        pq.ParquetWriter(pf, schema, memory_pool=pool) as parquet,
        pa_csv.CSVWriter(cf, schema, memory_pool=pool) as csv,
    ):
        for start in range(0, n, BATCH_ROWS):
            stop = min(n, start + BATCH_ROWS)
            arrays, shown = [], []  # shown: as the CSV writes them (formulas neutralized)
            for column, arrow_type in zip(columns, types, strict=True):
                values = column.rows(start, stop)
                array = _convert(values, arrow_type, column.found, pool)
                arrays.append(array)
                if column.found <= {str, _NONE} and any(map(_starts_formula, filter(None, values))):
                    array = _convert(
                        [neutralize(v) for v in values], arrow_type, column.found, pool
                    )
                shown.append(array)
            parquet.write_batch(pa.record_batch(arrays, schema=schema))
            csv.write_batch(pa.record_batch(shown, schema=schema))


_starts_formula = methodcaller("startswith", FORMULA_START)


def _no_pandas_lookup(pa: Any) -> None:
    """Answer "no" to pyarrow's one question whether pandas is there (where it is not
    imported yet): `pa.array` asks it of the first list it is given (a pandas Series?)
    by importing pandas, 0.25 s of the forked child, the report's last. pyarrow imports
    it again where it needs it (`to_pandas`); an `import pandas` after this is as ever."""
    if "pandas" not in sys.modules:
        sys.meta_path.insert(0, _NoPandas)
        try:
            pa.array([], type=pa.null())
        finally:
            sys.meta_path.remove(_NoPandas)


class _NoPandas:
    @staticmethod
    def find_spec(name: str, *_: Any) -> None:
        if name == "pandas":
            raise ModuleNotFoundError("pandas is not looked for here", name=name)


def _array(values: list[Any], types: set[type] | None = None, pool: Any = None) -> Any:
    """An Arrow array of the type pandas would have given the column (the files keep the
    types they had when a DataFrame stood in between): see `_arrow_type`. `types`: the
    types of the values, when the caller knows them."""
    kinds = set(map(type, values)) if types is None else set(types)
    ints = (min(values), max(values)) if kinds == {int} else None
    return _convert(values, _arrow_type(kinds, ints, len(values)), kinds, pool)


def _arrow_type(kinds: set[type], ints: tuple[int, int] | None, rows: int) -> Any:
    """The Arrow type of a column of `rows` values of the types `kinds` (`ints`: the
    smallest and largest, for integers alone): text as large strings, integers as int64
    unless a value is missing (then float64, as NaN made them), numbers as float64, flags
    as booleans, and a column of nothing but nulls as nulls."""
    import pyarrow as pa

    missing = _NONE in kinds
    kinds = kinds - {_NONE}
    if not rows:  # no cell has a record: pandas made every column float64
        return pa.float64()
    int64 = ints is not None and _INT64_MIN <= ints[0] <= ints[1] <= _INT64_MAX
    if not kinds:
        arrow_type = pa.null()
    elif kinds == {str}:
        arrow_type = pa.large_string()
    elif kinds == {bool} and not missing:
        arrow_type = pa.bool_()
    elif kinds == {int} and not missing and int64:
        arrow_type = pa.int64()
    elif kinds <= {int, float}:
        arrow_type = pa.float64()
    else:  # mixed: each value as its text
        arrow_type = pa.large_string()
    return arrow_type


def _convert(values: list[Any], arrow_type: Any, kinds: set[type], pool: Any = None) -> Any:
    """`values` (of the types `kinds`, or fewer) as an array of `arrow_type`: numbers as
    floats for float64, and in a column of text and other values those as their text."""
    import pyarrow as pa

    if pa.types.is_null(arrow_type):
        return pa.nulls(len(values), memory_pool=pool)
    if pa.types.is_float64(arrow_type):
        values = [float(v) if v is not None else None for v in values]
    elif pa.types.is_large_string(arrow_type) and not kinds <= {str, _NONE}:
        values = [v if v is None else str(v) for v in values]
    return pa.array(values, type=arrow_type, memory_pool=pool)


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
