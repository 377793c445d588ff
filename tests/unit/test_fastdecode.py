"""The store's shortcut for ordinary lines gives exactly what full validation gives, and
leaves everything else (migration, cleaning, rejection) to it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from repromatrix import fastdecode
from repromatrix.fastdecode import ordinary
from repromatrix.model import Status
from repromatrix.records import NO_MACHINE, Machine, MachineGpu, Result
from repromatrix.store import ResultStore, decode


def _record(**changes: Any) -> dict[str, Any]:
    r = Result(
        key="k1",
        cell_id="r[H100,host,lib=1.0]",
        repro="r",
        base="host",
        gpu="H100",
        pins={"lib": "1.0", "torch": "2.6.0"},
        status=Status.REGRESSED,
        reason="max_abs 3.2 > 0.01",
        metrics={"a.max_abs": 3.2, "a.nans": None},
        thresholds={"a.max_abs": 0.01},
        provenance={"python": "3.12", "harness": {"pins": {"lib": {"kind": "pypi"}}}},
        exit_code=1,
        duration_s=1.5,
        finished="2026-01-01T00:00:00+00:00",
        host="vm",
        commits={"lib": "a" * 40},
        machine=Machine(id="m-1", gpus=(MachineGpu(name="NVIDIA H100", uuid="GPU-1"),), driver="5"),
    ).record()
    for key, value in changes.items():
        if value is _DROP:
            record_without = {k: v for k, v in r.items() if k != key}
            r = record_without
        else:
            r[key] = value
    return r


_DROP = object()

#: Lines the shortcut may take (or leave): each must come out as full validation has it.
LINES: list[str] = [
    json.dumps(_record()),
    json.dumps(_record(machine=_DROP, commits=_DROP, image=_DROP, exit_code=_DROP)),
    json.dumps(_record(reason=_DROP, stdout_tail=_DROP, metrics=_DROP, duration_s=_DROP)),
    json.dumps(_record(duration_s=3)),
    json.dumps(_record(duration_s=1e300, exit_code=-(2**31))),
    json.dumps(_record(image="nvcr.io/nvidia/pytorch:25.01-py3")),
    json.dumps(_record(extra_field={"x": [1, 2]})),
    json.dumps(_record(machine={"id": "m-2", "gpus": [], "driver": "", "extra": 1})),
    json.dumps(_record(machine={})),
    json.dumps(_record(provenance={"deep": [[[{"a": None}]]], "n": 10**40, "f": -0.0})),
    json.dumps(_record(reason="é ✓ \u2028 \ud83d\ude00")),
    # Taken, and bounded as `Result`'s validators bound them.
    json.dumps(_record(reason="x " * 5000)),
    json.dumps(_record(reason="\x1b[31mred\x1b[0m \x1b]52;c;Zm9v\x07")),
    json.dumps(_record(stdout_tail="a\x1b]8;;http://x\x07b\r\n" * 3000, stderr_tail="\x00")),
    json.dumps(_record(metrics={f"m{i}": 1.0 for i in range(1200)})),
    json.dumps(_record(thresholds={"n" * 300: 1.0, "\x1b[2J": 2.0})),
    # Lines full validation must see: migrated, cleaned or refused.
    json.dumps(_record(schema=2, commits=_DROP, machine=_DROP)),
    json.dumps(_record(schema=1, commits=_DROP, machine=_DROP)),
    json.dumps(_record(schema=_DROP)),
    json.dumps(_record(schema=_DROP, schema_version=3)),
    json.dumps(_record(schema_version=3)),
    json.dumps(_record(schema=3.0)),
    json.dumps(_record(schema=True)),
    json.dumps(_record(metrics={"a": 1, "b": True, "c": "x", "d": None})),
    json.dumps(_record(metrics={"a": float("nan"), "b": float("inf")})),
    json.dumps(_record(thresholds={"a": -float("inf")})),
    json.dumps(_record(metrics=[1.0])),
    json.dumps(_record(pins={"lib": 1})),
    json.dumps(_record(pins=None)),
    json.dumps(_record(commits={"lib": None})),
    json.dumps(_record(status="exploded")),
    json.dumps(_record(status=None)),
    json.dumps(_record(key=1)),
    json.dumps(_record(key=_DROP)),
    json.dumps(_record(image=3)),
    json.dumps(_record(reason=None)),
    json.dumps(_record(exit_code=True)),
    json.dumps(_record(exit_code=2**31)),
    json.dumps(_record(duration_s=10**400)),
    json.dumps(_record(exit_code=1.0)),
    json.dumps(_record(duration_s=True)),
    json.dumps(_record(duration_s="1")),
    json.dumps(_record(provenance=[])),
    json.dumps(_record(machine=None)),
    json.dumps(_record(machine={"id": 1})),
    json.dumps(_record(machine={"gpus": [{"uuid": None}]})),
    json.dumps(_record(machine={"gpus": {"uuid": "x"}})),
    json.dumps(_record(schema=4)),
    json.dumps(_record(reason="\ud800 lone")),
    json.dumps(_record())[:60],
    json.dumps(_record()) + " trailing",
    "[1, 2]",
    "null",
    "{not json",
    "[" * 300 + "]" * 300,
]


def _full(line: str) -> Result | str:
    try:
        return decode(line)
    except Exception as exc:  # the message is what the store reports
        return f"{type(exc).__name__}: {exc}"


@pytest.mark.parametrize("line", LINES)
def test_the_shortcut_gives_what_full_validation_gives(line: str) -> None:
    fast = ordinary(line.encode())
    full = _full(line)
    if fast is None:
        return  # full validation decides, as before
    assert isinstance(full, Result), full
    assert fast == full
    assert fast.record() == full.record()
    assert json.dumps(fast.record()) == json.dumps(full.record())  # same key order
    assert fast.model_fields_set == full.model_fields_set
    for name in Result.model_fields:
        a, b = getattr(fast, name), getattr(full, name)
        assert type(a) is type(b), name
    assert hash(fast.machine) == hash(full.machine)


def test_the_shortcut_takes_ordinary_lines_and_leaves_the_rest() -> None:
    taken = [line for line in LINES if ordinary(line.encode()) is not None]
    assert len(taken) == 16  # the first sixteen lines above
    assert taken == LINES[:16]


def test_records_share_their_machine_and_set_of_fields() -> None:
    a, b = (ordinary(json.dumps(_record(key=k)).encode()) for k in ("a", "b"))
    assert a is not None
    assert b is not None
    assert a.machine is b.machine
    assert a.model_fields_set is b.model_fields_set
    bare = ordinary(json.dumps(_record(machine=_DROP)).encode())
    assert bare is not None
    assert bare.machine is NO_MACHINE


def test_records_share_the_keys_of_their_fields() -> None:
    """100,000 records each held a dict of its own fields' names: 55 MiB of a report."""
    import sys

    records = [ordinary(json.dumps(_record(key=k)).encode()) for k in ("a", "b")]
    for r in records:
        assert r is not None
        assert sys.getsizeof(r.__dict__) < sys.getsizeof(dict(r.__dict__)) / 2
        assert r == Result.model_validate_json(json.dumps(_record(key=r.key)))


def test_the_shortcut_is_checked_against_this_records_module() -> None:
    """records.py changed: check `fastdecode.ordinary` against the new `Result` validation
    (what it accepts, migrates, cleans or refuses; its field order and types), then set
    `FAST_PATH_FOR` to `fastdecode.source_hash()`. Until then every line is fully
    validated (correct, but several times slower)."""
    assert fastdecode.source_hash() == fastdecode.FAST_PATH_FOR
    assert fastdecode.enabled()


def test_the_store_loads_with_the_shortcut_what_it_loads_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "r.jsonl"
    newer = json.dumps(_record(schema=4))  # refused as a whole: tested in test_store.py
    path.write_text("\n".join(line for line in LINES if line != newer))
    fast = ResultStore(tmp_path).load()
    monkeypatch.setattr("repromatrix.storedlines.ordinary", lambda line: None)
    full = ResultStore(tmp_path).load()
    assert fast == full
    # 16 ordinary; 8 migrated, cleaned or given by field name; one with a lone surrogate;
    # three whose duration is no number of seconds (kept with a note)
    assert len(fast.results) == 28
    assert [p.line for p in fast.problems] == [p.line for p in full.problems]


def test_records_share_equal_thresholds_with_zeros_but_never_a_negative_zero() -> None:
    """Thresholds of zero (`nan_count: 0`) left every record a dict of its own, and the
    report's steps that run once per distinct set of thresholds ran once per record."""
    a, b, c = (
        ordinary(json.dumps(_record(key=k, thresholds={"a.max_abs": 0.01, "a.nans": z})).encode())
        for k, z in (("a", 0.0), ("b", 0.0), ("c", -0.0))
    )
    assert a is not None
    assert b is not None
    assert c is not None
    assert a.thresholds is b.thresholds
    assert c.thresholds is not a.thresholds
    assert str(c.thresholds["a.nans"]) == "-0.0"
    assert str(a.thresholds["a.nans"]) == "0.0"


def _twice(text: str, key: str) -> str:
    """`text` (one line) with the first `"key": value` given twice where it stands."""
    at = text.index(f'"{key}": ')
    end = at + len(f'"{key}": ')
    depth, i = 0, end
    while True:  # the value's end: a comma or closing brace at its own level
        c = text[i]
        if c == '"':
            i = text.index('"', i + 1)
        elif c in "[{":
            depth += 1
        elif c in "]}":
            if depth == 0:
                break
            depth -= 1
        elif c == "," and depth == 0:
            break
        i += 1
    pair = text[at:i]
    return text[:at] + pair + ", " + text[at:]


@pytest.mark.parametrize(
    ("record", "key"),
    [
        (_record(), "status"),
        (_record(), "lib"),  # pins (and commits: the first "lib" is the pin)
        (_record(), "a.max_abs"),  # metrics
        (_record(metrics={}), "a.max_abs"),  # thresholds
        (_record(provenance={"python": "3.12", "torch": "2.6"}), "torch"),  # flat provenance
        (_record(), "kind"),  # nested provenance
        (_record(), "driver"),  # machine
        (_record(), "uuid"),  # a machine's GPU
    ],
)
def test_the_shortcut_refuses_a_key_given_twice_at_every_level(
    record: dict[str, Any], key: str
) -> None:
    """The shortcut counts the keys of a line in field order from the fields it checked
    (`_keys`), not by walking all the parser made: a count one too high would take a line
    with a key given twice, which full validation refuses, naming it."""
    line = _twice(json.dumps(record), key)
    assert ordinary(line.encode()) is None
    with pytest.raises(ValueError, match="given twice"):
        decode(line)


@pytest.mark.parametrize("line", LINES[:16])
def test_the_shortcuts_count_of_keys_is_the_walks(line: str) -> None:
    from pydantic_core import from_json

    from repromatrix.jsonkeys import distinct_keys

    d = from_json(line)
    r = ordinary(line.encode())
    assert r is not None
    if tuple(d) != fastdecode._KEYS:
        return  # another order: counted by the walk itself
    flat = all(type(v) is str for v in d["provenance"].values())
    counted = fastdecode._keys(
        d, d["pins"], d["commits"], d["thresholds"], d["metrics"], d["provenance"], flat
    )
    assert counted == distinct_keys(d)


def test_a_set_of_metric_names_is_judged_once_for_every_record_that_repeats_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each record's metric and threshold names were checked against the bounds one by
    one (~1.5 µs of a light record's ~18), though records repeat the same few sets."""
    from repromatrix import bounds

    judged: list[tuple[str, ...]] = []
    within = bounds.numbers_within

    def counted(numbers: Any) -> bool:
        judged.append(tuple(numbers))
        return within(numbers)

    monkeypatch.setattr(bounds, "numbers_within", counted)
    names = {"judged.once.max_abs": 1.0, "judged.once.nans": None}
    for key in ("a", "b", "c"):
        r = ordinary(json.dumps(_record(key=key, metrics=names, thresholds={})).encode())
        assert r is not None
        assert r.metrics == names
    assert judged.count(tuple(names)) <= 1
    long = {"n" * 300: 1.0}
    for key in ("a", "b"):  # out of bounds: cut each time, as full validation cuts it
        r = ordinary(json.dumps(_record(key=key, metrics=long)).encode())
        assert r is not None
        assert r == Result.model_validate_json(json.dumps(_record(key=key, metrics=long)))
        assert list(r.metrics) != list(long)


def test_a_reason_and_tails_that_records_repeat_are_checked_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every record's reason and output tails were checked against their bounds, though
    records repeat the same few ("within tolerance", "ok\\n")."""
    from repromatrix import bounds

    seen: list[str] = []

    def counting(bound: Any) -> Any:
        def counted(text: str) -> str:
            seen.append(text)
            return str(bound(text))

        return counted

    monkeypatch.setattr(bounds, "bound_reason", counting(bounds.bound_reason))
    monkeypatch.setattr(fastdecode, "_tail", counting(fastdecode._tail))
    texts = {"reason": "checked once: within", "stdout_tail": "checked once\n"}
    for key in ("a", "b", "c"):
        r = ordinary(json.dumps(_record(key=key, **texts)).encode())
        assert r is not None
        assert (r.reason, r.stdout_tail) == tuple(texts.values())
    assert seen.count(texts["reason"]) <= 1
    assert seen.count(texts["stdout_tail"]) <= 1
    bell = {"reason": "two\nlines \x07", "stderr_tail": "\x1b[31mred\x1b[0m"}
    for key in ("a", "b"):  # out of bounds: made printable each time, as validation makes it
        r = ordinary(json.dumps(_record(key=key, **bell)).encode())
        assert r is not None
        assert r == Result.model_validate_json(json.dumps(_record(key=key, **bell)))
        assert (r.reason, r.stderr_tail) != tuple(bell.values())
