"""Generated result records: store lines and repro result JSONs, valid-ish and hostile.

Store loading survives any line (reported with file:line, skipped); judging survives any
result JSON (a record, never an exception); every record that comes out can be written
back, printed on a terminal and read again: one-line printable reasons, finite numbers,
bounded provenance. Each within 10 s of CPU and 256 MiB: a bound on blow-ups (a pattern that
backtracks, a copy per nesting level), not a speed target, and CPU time so that a loaded
machine's waiting does not count.
"""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from bounded import Spending
from cells import CELL, outcome
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repromatrix import bounds
from repromatrix.errors import ResultsError
from repromatrix.executors.judge import judge
from repromatrix.progress import result_line
from repromatrix.records import Result
from repromatrix.store import ResultStore, decode

LIMIT_CPU_S = 10.0
LIMIT_BYTES = 256 * 2**20
SETTINGS = settings(
    max_examples=2000,
    deadline=None,  # measured in the tests, with the memory
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
STORED: dict[str, Any] = {
    "schema": 3,
    "key": "k1",
    "cell_id": "r[cpu,host]",
    "repro": "r",
    "base": "host",
    "gpu": "cpu",
    "status": "passed",
    "reason": "max abs 1e-5 <= 1e-3",
    "metrics": {"max_abs": 1e-5},
    "thresholds": {"max_abs": 1e-3},
    "provenance": {"torch": "2.11.0", "harness": {"slot": "cpu0"}},
    "exit_code": 0,
    "duration_s": 1.5,
    "finished": "2026-01-01T00:00:00+00:00",
}
REPRO: dict[str, Any] = {
    "schema": 1,
    "repro": "r",
    "status": "passed",
    "reason": "max abs 1e-5 <= 1e-3",
    "metrics": {"max_abs": 1e-5, "nan": 0},
    "thresholds": {"max_abs": 1e-3},
    "provenance": {"torch": "2.11.0", "gpu": {"name": "H100"}},
}

#: Raw JSON number texts no Python float writes.
BIG_NUMBERS = ["9" * 400, "-" + "9" * 400, "1e400", "-1e400", "1" + "0" * 5000, "NaN", "Infinity"]
TEXTS = [
    "\x1b]52;c;ZXZpbA==\x07 clipboard",
    "\x1b[2J\x1b[31mred",
    "line one\nline two\r\nthree",
    "\ud800 lone",
    "x" * 100_000,
    "https://user:t0ps3cret@example.com/repo.git",
    "=cmd|' /C calc'!A0",
    "",
]


def _deep(levels: int, open_: str = "[", close: str = "]") -> str:
    return open_ * levels + close * levels


HOSTILE_JSON = st.one_of(
    st.sampled_from(BIG_NUMBERS),
    st.sampled_from([json.dumps(t) for t in TEXTS]),
    st.builds(_deep, st.integers(10, 5000)),
    st.builds(lambda n: '{"a":' * n + "1" + "}" * n, st.integers(10, 3000)),
    st.builds(lambda n: json.dumps({f"m{i}": i for i in range(n)}), st.integers(900, 3000)),
    st.builds(lambda n: json.dumps(["v"] * n), st.integers(400, 5000)),
    st.builds(json.dumps, st.one_of(st.integers(), st.floats(), st.text(max_size=30), st.none())),
    st.sampled_from(['"3"', "true", "[]", "{}", '"oops"', "null", "-1", "2147483648"]),
)
STORED_FIELDS = [*STORED, "stdout_tail", "stderr_tail", "machine", "commits", "pins", "image"]
REPRO_FIELDS = [*REPRO]


def _with(base: dict[str, Any], field: str, raw: str, nested: str | None) -> str:
    """`base` as JSON with `field` (or a key inside it) set to the raw JSON text `raw`."""
    doc = copy.deepcopy(base)
    marker = "\u0000MARK\u0000"
    if nested is not None and isinstance(doc.get(field), dict):
        doc[field][nested] = marker
    else:
        doc[field] = marker
    return json.dumps(doc).replace(json.dumps(marker), raw, 1)


@st.composite
def store_lines(draw: st.DrawFn) -> bytes:
    lines = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["field", "field", "field", "raw", "valid"]))
        if kind == "valid":
            lines.append(json.dumps(STORED))
        elif kind == "raw":
            lines.append(
                draw(
                    st.one_of(
                        st.sampled_from(["{", "not json", '{"schema": 3', "[]", "1", '"x"']),
                        st.builds(_deep, st.integers(100, 100_000)),
                        st.text(max_size=40),
                    )
                )
            )
        else:
            field = draw(st.sampled_from(STORED_FIELDS))
            nested = draw(st.sampled_from([None, "x", "max_abs", "harness"]))
            lines.append(_with(STORED, field, draw(HOSTILE_JSON), nested))
    text = "\n".join(lines)
    if draw(st.booleans()):
        text += "\n"
    return text.encode("utf-8", errors="surrogatepass")


@st.composite
def repro_jsons(draw: st.DrawFn) -> tuple[bytes, int]:
    code = draw(st.sampled_from([0, 1, 125, 2, -11, 137]))
    if draw(st.integers(0, 5)) == 0:
        text = draw(
            st.one_of(
                st.sampled_from(["", "{", "null", "[]", '{"schema": 1}']),
                st.builds(_deep, st.integers(100, 50_000)),
            )
        )
    else:
        field = draw(st.sampled_from(REPRO_FIELDS))
        nested = draw(st.sampled_from([None, "x", "max_abs", "gpu"]))
        text = _with(REPRO, field, draw(HOSTILE_JSON), nested)
    return text.encode("utf-8", errors="surrogatepass"), code


SEEN = {"store_examples": 0, "problems": 0, "repro_examples": 0, "max_s": 0.0, "max_bytes": 0}


def _measure(run: Any) -> Any:
    spent = Spending()
    try:
        with spent:
            return run()
    finally:
        SEEN["max_s"] = max(SEEN["max_s"], spent.cpu_s)
        SEEN["max_bytes"] = max(SEEN["max_bytes"], spent.peak_bytes)
        assert spent.cpu_s < LIMIT_CPU_S
        assert spent.peak_bytes < LIMIT_BYTES


def usable(record: Result) -> None:
    """A record that came out can be stored again, read back and printed."""
    line = json.dumps(record.record(), sort_keys=True, allow_nan=False, default=str)
    again = decode(line)
    assert again.reason == record.reason
    assert len(record.reason) <= bounds.MAX_REASON_CHARS
    assert record.reason.isprintable()
    shown = result_line(record).plain
    assert shown.isprintable()
    for value in (*record.metrics.values(), *record.thresholds.values()):
        assert value is None or math.isfinite(value)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("records")


@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")  # large reprs
@SETTINGS
@given(data=store_lines())
def test_store_loading_survives_any_line(folder: Path, data: bytes) -> None:
    path = folder / "host.jsonl"
    path.write_bytes(data)
    try:
        loaded = _measure(ResultStore(path).load)
    except ResultsError as exc:  # only a newer schema stops loading, in one line
        stopped = str(exc)
    else:
        stopped = ""
    if stopped:
        assert "newer than this repromatrix reads" in stopped
        assert stopped.isprintable()
        assert len(stopped) < 300
        return
    SEEN["store_examples"] += 1
    SEEN["problems"] += len(loaded.problems)
    for problem in loaded.problems:
        shown = str(problem)
        # A line's problem names its line; a note on the file's records as a whole
        # (dated past this host's clock, or by no time) names the file.
        whole_file = problem.line == 0 and "finished" in problem.message
        assert re.match(rf"^{re.escape(str(path))}{'' if whole_file else ':[0-9]+'}: ", shown), (
            shown
        )
        assert shown.isprintable()
        assert len(shown) < 400
    for record in loaded.results:
        usable(record)


@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")
@SETTINGS
@given(case=repro_jsons())
def test_judging_survives_any_result_json(folder: Path, case: tuple[bytes, int]) -> None:
    data, code = case
    path = folder / "result.json"
    path.write_bytes(data)
    ran = outcome(path, code=code, stdout_tail="\x1b[31mtail\x1b[0m\n")
    record = _measure(lambda: judge(CELL, ran, host="h", run_id="run"))
    SEEN["repro_examples"] += 1
    usable(record)
    assert len(json.dumps(record.record(), default=str)) < 2 * 2**20


def test_the_fuzzing_above_ran_and_stayed_in_bounds() -> None:
    """Runs after the properties (file order): what they saw, for the record."""
    print(f"record fuzz: {SEEN}")
    if SEEN["store_examples"] == 0:
        pytest.skip("run with the property tests above")
    assert SEEN["store_examples"] + SEEN["repro_examples"] >= 2000
    assert SEEN["problems"] > 0
