"""The Arrow types of the results table's columns: those pandas gave them when a DataFrame
stood between the rows and Arrow (the files keep the types they had), and the values of
a column as an array of its type. Also keeps pandas from being imported for nothing."""

from __future__ import annotations

import sys
from typing import Any

_NONE = type(None)


def no_pandas_lookup(pa: Any) -> None:
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


def arrow_array(values: list[Any], types: set[type] | None = None, pool: Any = None) -> Any:
    """An Arrow array of the type pandas would have given the column (the files keep the
    types they had when a DataFrame stood in between): see `arrow_type`. `types`: the
    types of the values, when the caller knows them."""
    kinds = set(map(type, values)) if types is None else set(types)
    ints = (min(values), max(values)) if kinds == {int} else None
    return converted(values, arrow_type(kinds, ints, len(values)), kinds, pool)


def arrow_type(kinds: set[type], ints: tuple[int, int] | None, rows: int) -> Any:
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


def converted(values: list[Any], arrow_type: Any, kinds: set[type], pool: Any = None) -> Any:
    """`values` (of the types `kinds`, or fewer) as an array of `arrow_type`: numbers as
    floats for float64, and in a column of text and other values those as their text."""
    import pyarrow as pa

    if pa.types.is_null(arrow_type):
        return pa.nulls(len(values), memory_pool=pool)
    if pa.types.is_float64(arrow_type) and not kinds <= {float, _NONE}:  # ints: their float
        values = [float(v) if v is not None else None for v in values]
    elif pa.types.is_large_string(arrow_type) and not kinds <= {str, _NONE}:
        values = [v if v is None else str(v) for v in values]
    return pa.array(values, type=arrow_type, memory_pool=pool)


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
