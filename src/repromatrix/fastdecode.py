"""The store's shortcut for ordinary lines: a current-schema record whose fields already
have the types `Result` gives them, read without running the validators.

`Result.model_validate_json` costs ~30 µs a line, most of it in the Python validators
(migration, number cleaning) and in building the model; a 100,000-record report spent
seconds there. For a line that `records.Result` would take unchanged — schema 3, every
field of its final type, every metric a finite float or null — `ordinary` parses it with
pydantic's own JSON parser (the one `model_validate_json` uses, so the same lines parse
and fail), checks the types in plain Python and builds the `Result` as
`Result.model_construct` would. Anything else (older schemas to migrate, numbers to
clean, wrong types, unparsable text) returns None, and the store decodes the line with
full validation, which accepts, migrates or reports it exactly as before.

The shortcut is only sound for the `Result` it was written against. `FAST_PATH_FOR` is a
hash of the source of `Result` and what its validation calls; when records.py changes it,
the shortcut turns itself off (every line is fully validated) and a unit test says so,
until someone has checked this module against the new validation and updated the hash.
Records also share what they would otherwise each hold a copy of: their set of given
fields, and equal `Machine`s.
"""

from __future__ import annotations

import hashlib
import inspect
import math
from collections.abc import Callable
from functools import cache
from itertools import product
from typing import Any

from pydantic_core import from_json

from repromatrix import bounds, records
from repromatrix.jsonkeys import distinct_keys, repeated_key
from repromatrix.model import Status
from repromatrix.records import Machine, Result

#: sha256 (first 16 hex digits) of the source this module mirrors (see `source_hash`).
FAST_PATH_FOR = "57e5a3e985342a50"

_STATUS: dict[str, Status] = {s.value: s for s in Status}
_NONE = type(None)
#: Per field: the types a line may give it that full validation keeps as they are.
_TYPES: dict[str, tuple[type, ...]] = {
    "schema_version": (int,),
    "image": (str, _NONE),
    "pins": (dict,),
    "metrics": (dict,),
    "thresholds": (dict,),
    "provenance": (dict,),
    "exit_code": (int, _NONE),
    "duration_s": (float, int),
    "commits": (dict,),
    "machine": (dict, Machine),  # Machine: the default, NO_MACHINE
}
_FIELDS = tuple(Result.model_fields)
#: The types of a plain record's fields, in field order: every combination.
_SIGNATURES = frozenset(product(*(_TYPES.get(name, (str,)) for name in _FIELDS)))
#: Field name → key in a line (only `schema_version` has another: `schema`).
_KEY_OF = {name: f.alias or name for name, f in Result.model_fields.items()}
_KEYS = tuple(_KEY_OF.values())
_FIELD_OF = {key: name for name, key in _KEY_OF.items()}
_ALL_FIELDS: set[str] = set(_FIELDS)
_STR: set[type] = {str}
_NUMBER: set[type] = {float, _NONE}
_fields_sets: dict[frozenset[str], set[str]] = {}
_machines: dict[tuple[str, tuple[tuple[str, str], ...], str], Machine] = {}
_shared: dict[tuple[tuple[str, Any], ...], dict[str, Any]] = {}
_thresholds: dict[tuple[Any, ...], dict[str, Any]] = {}
_provenances: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
_new = object.__new__
_set = object.__setattr__


class _KeyHolder:
    """An object whose first attributes make the keys that records' dicts share."""


def _shared_keys() -> dict[str, None]:
    """A dict of every field of `Result`, in order, whose table of keys copies of it
    share: a copy holds only its values, a third of the size of a dict of its own (55
    MiB less for 100,000 records). Python shares keys between the dicts of one class's
    instances; a class of its own keeps them shared whatever other code does."""
    holder = _KeyHolder()
    for name in _FIELDS:
        setattr(holder, name, None)
    return holder.__dict__


_FIELDS_DICT = _shared_keys()


def source_hash() -> str:
    """What the shortcut depends on: `Result`, `Machine`, `MachineGpu` and the number
    cleaner, as source text."""
    parts = [
        inspect.getsource(obj)
        for obj in (
            records.Result,
            records.Machine,
            records.MachineGpu,
            records.clean_numbers,
            records.finite_or_none,
        )
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


@cache
def enabled() -> bool:
    """Whether records.py is still the one this shortcut was checked against."""
    try:
        return source_hash() == FAST_PATH_FOR
    except (OSError, TypeError):  # no source at hand (e.g. only .pyc): validate fully
        return False


def ordinary(line: bytes) -> Result | None:
    """The record of a stored line, or None when it needs full validation."""
    d = _parsed(line) if enabled() else None
    if d is None:
        return None
    # The record's fields filled in place, in a dict whose keys are shared (see
    # `_shared_keys`): one dict a line, where a dict of the line's values and then a copy
    # of it took 2.5 µs of the ~20 a line cost.
    whole = len(d) == len(_KEYS) and tuple(d) == _KEYS
    fields: dict[str, Any] = _FIELDS_DICT.copy()
    if whole:  # as `Result.record()` writes it: every field, in order
        fields.update(zip(_FIELDS, d.values(), strict=True))
    elif not _fill(fields, d):
        return None
    if tuple(map(type, fields.values())) not in _SIGNATURES:
        return None
    status = _STATUS.get(fields["status"])
    pins, commits = _shared_texts(fields["pins"]), _shared_texts(fields["commits"])
    thresholds = _shared_numbers(fields["thresholds"])
    provenance, raw_machine, metrics = fields["provenance"], fields["machine"], fields["metrics"]
    flat = set(map(type, provenance.values())) <= _STR
    if flat:  # shared by every record with the same one (nested: rarely the same twice)
        provenance = _provenances.setdefault(tuple(provenance.items()), provenance)
    machine = _machine(raw_machine)
    exit_code, duration = fields["exit_code"], _seconds(fields["duration_s"])
    if (
        fields["schema_version"] != records.RESULT_SCHEMA
        or status is None
        or pins is None
        or commits is None
        or thresholds is None
        or not _numbers(metrics)
        or machine is None
        or duration is None
        or (exit_code is not None and not _EXIT_MIN <= exit_code < _EXIT_END)
    ):
        return None
    # A key given twice is refused by full validation, which says which (`jsonkeys`). The
    # keys of a line in field order are counted here, where each field's type is known
    # (texts and numbers hold no objects): the walk of all it holds took 2 µs a line.
    keys = _keys(d, pins, commits, thresholds, metrics, provenance, flat) if whole else None
    if repeated_key(line, d, keys) is not None:
        return None
    # The bounds `Result`'s validators apply, called as they call them (each returns a
    # within-bounds value as it is, at the cost of one check). Stored one by one: a
    # `fields.update(...)` of keywords built a dict of them first (~1.5 µs a line).
    fields["status"], fields["pins"], fields["commits"] = status, pins, commits
    fields["thresholds"], fields["metrics"] = _bounded(thresholds), _bounded(metrics)
    fields["provenance"], fields["duration_s"], fields["machine"] = provenance, duration, machine
    fields["reason"] = _unchanged(fields["reason"], _reasons, bounds.bound_reason)
    fields["stdout_tail"] = _unchanged(fields["stdout_tail"], _tails, _tail)
    fields["stderr_tail"] = _unchanged(fields["stderr_tail"], _tails, _tail)
    # What `Result.model_construct(**fields)` does, without its per-field loop.
    r: Result = _new(Result)
    _set(r, "__dict__", fields)
    _set(r, "__pydantic_fields_set__", _ALL_FIELDS if whole else _fields_set(d))
    _set(r, "__pydantic_extra__", None)
    _set(r, "__pydantic_private__", None)
    return r


#: Short texts that a bound left as they are, per bound (records repeat their reasons and
#: outputs: "ok\n", "within tolerance"), and how many of how many characters it keeps.
_reasons: dict[str, None] = {}
_tails: dict[str, None] = {}
_KEPT, _KEPT_CHARS = 4096, 200


def _unchanged(text: str, seen: dict[str, None], bound: Callable[[str], str]) -> str:
    """`bound(text)`, told by one look-up where a text equal to it was left as it is."""
    if text in seen:
        return text
    out = bound(text)
    if out == text and len(text) <= _KEPT_CHARS and len(seen) < _KEPT:
        seen[text] = None
    return out


#: Tails that `bounds.bound_tail` leaves as they are: printable ASCII, tabs and newlines.
_TAIL_BYTES = bytes(range(0x20, 0x7F)) + b"\t\n"


def _tail(text: str) -> str:
    """`bounds.bound_tail(text)`, without its calls for the tails it leaves as they are
    (nearly all: short printable ASCII)."""
    if (
        len(text) <= bounds.MAX_TAIL_CHARS
        and text.isascii()
        and not text.encode().translate(None, _TAIL_BYTES)
    ):
        return text
    return bounds.bound_tail(text)


def _parsed(line: bytes) -> dict[str, Any] | None:
    """The object a line holds, as pydantic's parser reads it; None for anything else."""
    try:
        d = from_json(line)
    except ValueError:
        return None
    return d if type(d) is dict else None


def _keys(
    d: dict[str, Any],
    pins: dict[str, Any],
    commits: dict[str, Any],
    thresholds: dict[str, Any],
    metrics: dict[str, Any],
    provenance: dict[str, Any],
    flat: bool,
) -> int | None:
    """How many keys the objects of `d` (a line with every field, in order, whose checks
    passed) hold at all levels, as `jsonkeys` counts them; None where that walk fails
    (nested past the recursion limit: `jsonkeys` judges it)."""
    try:
        nested = len(provenance) if flat else distinct_keys(provenance)
        machine = d["machine"]
        return (
            len(d)
            + len(pins)
            + len(commits)
            + len(thresholds)
            + len(metrics)
            + nested
            + (distinct_keys(machine) if type(machine) is dict else 0)
        )
    except RecursionError:
        return None


def _fill(fields: dict[str, Any], d: dict[str, Any]) -> bool:
    """`fields` filled from a line that gives its fields in another order, or not all of
    them (their defaults filled in); False for one full validation must see."""
    if "schema_version" in d or "schema" not in d:
        return False  # the field's name instead of its alias; no schema (refused)
    for name, key in _KEY_OF.items():
        fields[name] = d[key] if key in d else _default(name)
    return True


def _default(name: str) -> Any:
    """A missing field's default, as Result has it (a fresh dict from a default_factory,
    the shared NO_MACHINE); None for required fields, which no signature allows."""
    field = Result.model_fields[name]
    if field.default_factory is not None:
        return field.get_default(call_default_factory=True)
    return None if field.is_required() else field.default


#: `Result.exit_code`'s range: an exit status or a negative signal number.
_EXIT_MIN, _EXIT_END = -(2**31), 2**31


def _seconds(value: float) -> float | None:
    """`duration_s` as `Result._duration` makes it (a finite float), else None."""
    try:
        seconds = float(value)
    except OverflowError:  # a 400-digit integer: full validation says why
        return None
    return seconds if math.isfinite(seconds) else None


def _bounded(value: dict[str, Any]) -> dict[str, Any]:
    """`value` itself (possibly shared) when within `bounds.bound_numbers`'s limits,
    else what it makes of it. Whether it is within depends on its names alone, and
    records repeat the same few names: each set of them is judged once (a check of every
    name took ~1.5 µs of a light record's ~18)."""
    names = tuple(value)
    within = _within.get(names)
    if within is None:
        within = bounds.numbers_within(value)
        if len(_within) < _WITHIN_KEPT:
            _within[names] = within
    return value if within else bounds.bound_numbers(value)


#: The sets of metric names `_bounded` judged, and how many it keeps at most.
_within: dict[tuple[str, ...], bool] = {}
_WITHIN_KEPT = 4096


def _numbers(value: dict[str, Any]) -> bool:
    """Finite floats or nulls only: what the number cleaner leaves as it is. (A sum that
    is not finite has a NaN or infinity in it, or overflowed: full validation decides.)"""
    return set(map(type, value.values())) <= _NUMBER and math.isfinite(
        sum(filter(None, value.values()))
    )


def _shared_texts(value: dict[str, Any]) -> dict[str, Any] | None:
    """`value` if it maps names to strings (pins, commits), as one dict shared by every
    record with the same one; None otherwise."""
    if not set(map(type, value.values())) <= _STR:
        return None
    return _shared.setdefault(tuple(value.items()), value)


def _shared_numbers(value: dict[str, Any]) -> dict[str, Any] | None:
    """`value` if `_numbers` allows it (thresholds), shared as `_shared_texts` shares.
    Thresholds of zero are common (`nan_count: 0`); unshared, every record held its own
    and each report step that works once per distinct set of thresholds worked once per
    record (20,000 such records: seconds in the key metric's choice alone)."""
    if not _numbers(value):
        return None
    key: tuple[Any, ...] = tuple(value.items())
    if 0.0 in value.values():  # -0.0 equals 0.0: each zero's sign joins the key
        key = (key, tuple(math.copysign(1.0, v) for v in value.values() if v == 0.0))
    return _thresholds.setdefault(key, value)


def _fields_set(d: dict[str, Any]) -> set[str]:
    """The fields the line gives, one shared set per combination (pydantic copies it
    before changing it, in `model_copy`)."""
    if len(d) == len(_KEYS) and tuple(d) == _KEYS:
        return _ALL_FIELDS
    given = frozenset(_FIELD_OF[k] for k in d if k in _FIELD_OF)
    found = _fields_sets.get(given)
    if found is None:
        found = _fields_sets[given] = set(given)
    return found


def _machine(raw: Any) -> Machine | None:
    """The record's machine (`NO_MACHINE` when the line has none), one shared instance per
    distinct machine; None when `raw` is not the plain shape (full validation decides)."""
    if isinstance(raw, Machine):  # the default: the line has no machine
        return raw
    mid, driver, gpus = raw.get("id", ""), raw.get("driver", ""), raw.get("gpus", [])
    if type(mid) is not str or type(driver) is not str or type(gpus) is not list:
        return None
    pairs: tuple[tuple[Any, Any], ...] = ()
    if gpus:
        if not all(type(g) is dict for g in gpus):
            return None
        pairs = tuple((g.get("name", ""), g.get("uuid", "")) for g in gpus)
        if not all(type(name) is str and type(uuid) is str for name, uuid in pairs):
            return None
    key = (mid, pairs, driver)
    found = _machines.get(key)
    if found is None:
        found = _machines[key] = Machine.model_validate(raw)
    return found


def pack(results: list[Result]) -> list[Any]:
    """`results` in the form `unpack` rebuilds them from, for a pickle: each record as the
    tuple of its field values (a pickled model would come back with a dict of its own,
    a third more memory than the shared keys of `_shared_keys`), or as itself when its
    fields are not exactly `Result`'s, in order."""
    out: list[Any] = []
    for r in results:
        d = r.__dict__
        if (
            len(d) == len(_FIELDS)
            and tuple(d) == _FIELDS
            and r.__pydantic_extra__ is None
            and r.__pydantic_private__ is None
        ):
            out.append((tuple(d.values()), r.__pydantic_fields_set__))
        else:
            out.append(r)
    return out


def unpack(packed: list[Any]) -> list[Result]:
    """The records `pack` was given; `packed` is emptied on the way (its tuples are
    dropped as their records are made, not all at the end)."""
    out: list[Result] = []
    for i, item in enumerate(packed):
        packed[i] = None
        if type(item) is not tuple:
            out.append(item)
            continue
        values, given = item
        r: Result = _new(Result)
        fields = _FIELDS_DICT.copy()
        fields.update(zip(_FIELDS, values, strict=True))
        _set(r, "__dict__", fields)
        _set(r, "__pydantic_fields_set__", given)
        _set(r, "__pydantic_extra__", None)
        _set(r, "__pydantic_private__", None)
        out.append(r)
    return out
