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
import re
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Set
from itertools import chain, groupby
from operator import attrgetter, itemgetter, methodcaller, truth
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from repromatrix.entries import Entry
from repromatrix.records import BASE_COLUMNS, Result
from repromatrix.report.details import MAX_TEXT_CHARS, clip
from repromatrix.report.table_arrow import arrow_type, converted, no_pandas_lookup
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
    largest value of a column of integers alone, its values of rows [start, stop), and
    whether a text of it may start a formula (`_formula_in`: its batches are checked)."""

    name: str
    found: set[type]
    ints: tuple[int, int] | None
    rows: Callable[[int, int], list[Any]]
    risky: bool = False


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
        return _metrics_texts([r.metrics for r in winners[start:stop]])

    # Records share equal thresholds (see `fastdecode`): each is written once.
    written: dict[int, str] = {}

    def thresholds(start: int, stop: int) -> list[Any]:
        return [
            written.get(id(t)) or written.setdefault(id(t), _json(dict(t)))
            for t in _of(winners[start:stop], "thresholds")
        ]

    columns += [  # JSON objects: each starts with "{", never a formula
        _Column("metrics", text, None, metrics),
        _Column("thresholds", text, None, thresholds),
    ]
    columns.append(_whole("flaky", _flaky(winning), texts=False))
    columns.append(_whole("machines_disagree", _disagree(winning), texts=False))
    for name, field in (("passed_records", "passed"), ("regressed_records", "regressed")):
        columns.append(_whole(name, _mapped(attrgetter(field), winning), texts=False))
    columns.append(_whole("older_records", _older(winning), texts=False))
    unlisted = [e.repro in apart for e in winning]  # `apart`: repros matrix.yaml lacks
    columns.append(_whole("not_in_matrix", _mapped(bool, unlisted), texts=False))
    return n, columns


def _flaky(entries: list[Entry]) -> Callable[[int, int], list[Any]]:
    """`e.flaky and not e.split` of each: flaky, not only between machines."""

    def rows(start: int, stop: int) -> list[Any]:
        part = entries[start:stop]
        return [f and not s for f, s in zip(map(_is_flaky, part), map(_split, part), strict=True)]

    return rows


def _disagree(entries: list[Entry]) -> Callable[[int, int], list[Any]]:
    """Whether each one's records disagree only between machines (`e.split` said)."""

    def rows(start: int, stop: int) -> list[Any]:
        return list(map(truth, map(_split, entries[start:stop])))

    return rows


_is_flaky, _split = attrgetter("flaky"), attrgetter("split")


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
    written = values = rows(0, _ALL)
    found = set(map(type, values))
    changed = False
    if texts:
        written, found = _texts(values)
        changed = written is not values
    ints = (min(values), max(values)) if found == {int} else None
    risky = texts and found <= {str, _NONE} and _formula_in(filter(None, written))
    if changed:

        def each(start: int, stop: int) -> list[Any]:
            return [_text(v) for v in rows(start, stop)]

        return _Column(name, found, ints, each, risky)
    return _Column(name, found, ints, rows, risky)


#: A stop past any row.
_ALL = 1 << 62


def _library_columns(winning: list[Entry], winners: list[Result]) -> list[_Column]:
    """`lib.<name>` and `commit.<name>` of every library, in order of name. They are
    sparse (a repro pins few of the libraries): filled where set. Rows share their pins
    and commits (one tuple per revision, see `collect_entries`; one mapping per spelling,
    see `fastdecode`): each row is given the number of its pair (by identity), each pair's
    labels are taken once, and a batch of a column is its values looked up by those
    numbers, not once per row."""
    n = len(winners)
    shapes = zip(map(id, map(_pins, winning)), map(id, map(_commits, winners)), strict=True)
    numbers: dict[tuple[int, int], int] = {}
    # `setdefault` gives a pair seen first the next number (`len` is taken before it);
    # made one at a time (a list of every row's pair held 10 MB more).
    codes = array("i", (numbers.setdefault(shape, len(numbers)) for shape in shapes))
    first = [0] * len(numbers)  # a row of each pair, and how many rows it has
    counts = [0] * len(numbers)
    for i, code in enumerate(codes):
        if not counts[code]:
            first[code] = i
        counts[code] += 1
    libs: dict[str, list[tuple[int, str]]] = {}
    commits: dict[str, list[tuple[int, str]]] = {}
    for code, row in enumerate(first):
        pins, their_commits = winning[row].pins, winners[row].commits
        for lib, label in pins:
            libs.setdefault(lib, []).append((code, label))
            commit = their_commits.get(lib)
            if commit:
                commits.setdefault(lib, []).append((code, commit))
    named: set[str] = set()
    columns = []
    for prefix, sparse in (("lib.", libs), ("commit.", commits)):
        for lib in sorted(sparse):
            pairs, labels = zip(*sparse.pop(lib), strict=True)
            texts, found = _texts(list(labels))
            values: list[Any] = [None] * len(first)
            for code, text in zip(pairs, texts, strict=True):
                values[code] = text
            filled = sum(counts[code] for code in pairs)
            name = _column_name(prefix + lib, named)
            found |= {_NONE} if filled < n else set()
            risky = found <= {str, _NONE} and _formula_in(filter(None, texts))
            columns.append(_Column(name, found, None, _looked_up(values, codes), risky))
    return columns


_pins, _commits = attrgetter("pins"), attrgetter("commits")


def _looked_up(values: list[Any], codes: array[int]) -> Callable[[int, int], list[Any]]:
    """Rows [start, stop) of a column whose row i holds `values[codes[i]]`."""

    def rows(start: int, stop: int) -> list[Any]:
        return list(map(values.__getitem__, codes[start:stop]))

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


#: Metric names (in the order they are written) → the JSON text with a `%r` per value,
#: what picks the values in its order (one value, or a tuple of them), and whether a
#: `None` in the text made is a value's (the names have none): it is then written `null`.
_number_formats: dict[tuple[str, ...], tuple[str, Any, bool]] = {}


def _number_format(names: tuple[Any, ...]) -> tuple[str, Any, bool] | None:
    """`_number_formats[names]`, made on first use; None unless every name is text."""
    found = _number_formats.get(names)
    if found is None:
        if not all(type(name) is str for name in names):
            return None
        ordered = sorted(names)
        text = "{" + ",".join(_json(name).replace("%", "%%") + ":%r" for name in ordered) + "}"
        found = _number_formats[names] = (text, itemgetter(*ordered), "None" not in text)
    return found


def _json_numbers(numbers: Mapping[str, Any]) -> str:
    """`_json(dict(numbers))` for name → finite float or None (the metrics of a record),
    the text made from a format per set of names and each value's repr, as the encoder
    writes a finite float; anything else goes to the encoder."""
    return _metrics_texts([numbers])[0]


def _metrics_texts(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """`_json(dict(row))` of each of `rows` (the metrics of records), told a run of rows
    naming the same metrics in the same order at a time (a repro's records, one after
    another): where a run holds finite floats and None alone, each row is its run's format
    filled with the values' reprs (as the encoder writes a finite float; None as `null`),
    a call or two a row; anything else goes to the encoder."""
    texts: list[str] = []
    for names, same in groupby(rows, tuple):
        run = list(same)
        values = list(chain.from_iterable(map(_values, run)))
        kinds = set(map(type, values))
        found = _number_format(names) if names else None
        numbers = kinds <= {float, _NONE} and math.isfinite(sum(filter(None, values)))
        if found is None or not numbers or (_NONE in kinds and not found[2]):
            texts += (_json(dict(row)) for row in run)
            continue
        text, pick, _ = found
        made = [text % pick(row) for row in run]
        texts += [t.replace("None", "null") for t in made] if _NONE in kinds else made
    return texts


_values = methodcaller("values")


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

    no_pandas_lookup(pa)
    pool = pa.system_memory_pool()
    n, columns = _plan(entries, apart)
    types = [arrow_type(c.found, c.ints, n) for c in columns]
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
            for column, kind in zip(columns, types, strict=True):
                values = column.rows(start, stop)
                written = converted(values, kind, column.found, pool)
                arrays.append(written)
                if column.risky and any(map(_starts_formula, filter(None, values))):
                    written = converted([neutralize(v) for v in values], kind, column.found, pool)
                shown.append(written)
            parquet.write_batch(pa.record_batch(arrays, schema=schema))
            csv.write_batch(pa.record_batch(shown, schema=schema))


_starts_formula = methodcaller("startswith", FORMULA_START)
#: A text's start (after `_formula_in`'s NUL) that may be a formula's.
_FORMULA_AFTER = re.compile("\x00[-=+@\t\r]")


def _formula_in(texts: Iterable[str]) -> bool:
    """Whether any of `texts` may start with `FORMULA_START`: one search of them joined
    by NULs (a NUL within a text only makes it "may": its batches are checked text by
    text). A check of each text of every batch took 0.2 s of 100,000 rows."""
    joined = "\x00".join(texts)
    return _FORMULA_AFTER.search(joined) is not None or joined.startswith(FORMULA_START)
