"""A result JSON a repro writes that JSON parsers read loosely (a byte-order mark, a key
given twice, an integer past CPython's 4,300 digits, true/false as a metric): each one
said, naming what is wrong, alike in a persistent worker and under `--isolate`. Real
processes through `repromatrix run`."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from repro_runs import run_repros

from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.store import ResultStore

pytestmark = pytest.mark.integration

#: Records of one run by repro name.
Got = dict[str, Result]

#: A script that writes its result JSON itself, byte for byte (no `run()`).
RAW = textwrap.dedent("""\
    import argparse, json, sys
    p = argparse.ArgumentParser()
    p.add_argument("--out")
    p.add_argument("--params")
    args = p.parse_args()
    mode = json.loads(args.params)["mode"]
    head = b'{"schema": 1, "repro": "raw", "status": "passed", "reason": "checked", '
    many = {f"m{i}": 0.5 for i in range(300_000)} if mode == "many" else {}
    data = {
        "many": head + b'"metrics": ' + json.dumps(many).encode() + b"}",  # 6 MiB
        "bom": b"\\xef\\xbb\\xbf" + head + b'"metrics": {"e": 0.5}}',
        "utf16": (head + b'"metrics": {"e": 0.5}}').decode().encode("utf-16"),
        "twice": head + b'"metrics": {"e": 0.5}, "status": "regressed"}',
        "twice_deep": head + b'"provenance": ' + b'{"x": ' * 100_000 + b"1" + b"}" * 100_000
        + b', "status": "regressed"}',
        "huge": head + b'"metrics": {"max_err": 1' + b"0" * 5000 + b', "e": 0.5}}',
        "flag": head + b'"metrics": {"nan_seen": true, "e": 0.5}}',
        "nameless": head + b'"metrics": {"": 0.25, "e": 0.5}, "thresholds": {" ": 1}}',
        "misspelt": head + b'"metric": {"e": 0.5}, "threshold": {"e": 0.1}, "params": {}}',
        "limits": head + b'"metrics": {"e": 0.5}, "thresholds": {"e": "1e-3", "f": true}}',
        "error_exit1": b'{"schema": 1, "repro": "raw", "status": "error", "reason": "CUDA '
        b'error: out of memory"}',
    }[mode]
    with open(args.out, "wb") as f:
        f.write(data)
    sys.exit(1 if mode == "error_exit1" else 0)  # `sys.exit(1)` for any failure
""")

#: A repro with `run()` and `_repro.main`, returning what json writes as it reads back.
WITH_RUN = textwrap.dedent("""\
    import os, sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _repro

    def run(params):
        if params["mode"] == "nameless":  # a name made of nothing (`f"{prefix}"`)
            return {"schema": 1, "repro": "r", "status": "passed", "reason": "checked",
                    "metrics": {"": 0.25, "e": 0.5}, "thresholds": {" ": 1}}
        metric = {"huge": 10**5000, "flag": True}[params["mode"]]
        return {"schema": 1, "repro": "r", "status": "passed", "reason": "checked",
                "metrics": {"max_err" if params["mode"] == "huge" else "nan_seen": metric,
                            "e": 0.5}}

    if __name__ == "__main__":
        sys.exit(_repro.main(run, {"mode": ""}))
""")


#: What raw.py writes (r.py returns where it has the mode: "huge", "flag", "nameless").
MODES = ("bom", "utf16", "twice", "twice_deep", "huge", "flag", "nameless", "error_exit1",
         "many", "limits", "misspelt")  # fmt: skip


@pytest.fixture(scope="module", params=[False, True], ids=["worker", "isolate"])
def got(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Got:
    """Each mode of `raw.py`, and of `r.py` where it has the mode, one cell each, in one
    run per way of running cells (in their workers, `--isolate`) that the tests read."""
    isolate = bool(request.param)
    root = tmp_path_factory.mktemp("isolate" if isolate else "worker")
    repros = [
        f"{script}_{mode}: {{script: repros/{script}.py, params: {{mode: {mode}}}, gpus: [cpu]}}"
        for mode in MODES
        for script in (("raw", "r") if mode in ("huge", "flag", "nameless") else ("raw",))
    ]
    out, records = run_repros(
        root, {"raw": RAW, "r": WITH_RUN}, repros, isolate=isolate, timeout=60
    )
    assert "Traceback" not in out.stderr
    return records


def test_a_result_json_with_a_byte_order_mark_is_said_to_have_one(got: Got) -> None:
    """`open(out, "w", encoding="utf-8-sig")`, or "utf-16": "wrote result JSON that does
    not parse (Invalid JSON: expected value at line 1 column 1)", which sent its author
    looking for a stray character the editor does not show."""
    cell = got["raw_bom"]
    assert (cell.status, cell.exit_code) == (Status.ERROR, 0), cell.reason
    assert cell.reason == (
        "exited 0 but wrote result JSON that starts with a UTF-8 byte-order mark (write it "
        "with encoding='utf-8', not 'utf-8-sig'); a verdict without its result JSON is not "
        "trusted"
    )
    wide = got["raw_utf16"]  # PowerShell's `>`: as unreadable, said alike
    assert (wide.status, wide.exit_code) == (Status.ERROR, 0), wide.reason
    assert wide.reason == (
        "exited 0 but wrote result JSON that is UTF-16 or UTF-32 text (write it with "
        "encoding='utf-8'); a verdict without its result JSON is not trusted"
    )


def test_a_result_json_giving_a_key_twice_is_refused_naming_the_key(got: Got) -> None:
    """`"status": "passed", ..., "status": "regressed"`: read as its last value, the
    record said "exit code 0 (passed) disagrees with result JSON status 'regressed'", a
    status the file also says is "passed"; stored lines are refused for it (jsonkeys.py)."""
    # Beside a provenance nested 100,000 deep, past the recursion limit of the parser
    # that looks for keys given twice: read last-wins, "exit code 0 (passed) disagrees".
    for cell in (got["raw_twice"], got["raw_twice_deep"]):
        assert (cell.status, cell.exit_code) == (Status.ERROR, 0), cell.reason
        assert cell.reason == (
            "exited 0 but wrote result JSON that gives the key 'status' twice in one object "
            "(write each key once: which one counts is anyone's guess); a verdict without "
            "its result JSON is not trusted"
        )


def test_a_metric_past_4300_digits_keeps_the_verdict_and_is_named(got: Got) -> None:
    """A metric of 10**5000: from `run()` the cell was an error ("cannot write the result
    JSON: ValueError: Exceeds the limit (4300 digits) ..."), its verdict lost; written by
    the repro it was kept as null without the note `provenance.harness.cut` gives a
    400-digit one. Now both keep the verdict and the other metrics, and name it."""
    for name in ("raw_huge", "r_huge"):
        cell = got[name]
        assert (cell.status, cell.reason) == (Status.PASSED, "checked"), cell.reason
        assert cell.metrics == {"max_err": None, "e": 0.5}
        cut = cell.provenance["harness"]["cut"]
        assert cut == "metrics kept as null: 1 not finite (max_err)", name


def test_a_metric_given_as_true_is_left_out_and_named(got: Got) -> None:
    """`"nan_seen": true` was recorded as the number 1.0 without a word (Python's bool is
    an int), plotted as a measured error; JSON's true is no number: left out, as text is,
    and named in `provenance.harness.cut`."""
    for name in ("raw_flag", "r_flag"):
        cell = got[name]
        assert cell.status is Status.PASSED, cell.reason
        assert cell.metrics == {"e": 0.5}, name
        cut = cell.provenance["harness"]["cut"]
        assert cut == "metrics left out: 1 not numbers (nan_seen)", name


def test_a_metric_without_a_name_is_left_out_and_named(got: Got) -> None:
    """`"metrics": {"": 0.25}` (a name built of an empty prefix) was stored as a metric
    named "", a column no report could head, and a threshold named " " as one; each is
    left out, as text is, and said in `provenance.harness.cut`."""
    for name in ("raw_nameless", "r_nameless"):
        cell = got[name]
        assert cell.status is Status.PASSED, cell.reason
        assert (dict(cell.metrics), dict(cell.thresholds)) == ({"e": 0.5}, {}), name
        cut = cell.provenance["harness"]["cut"]
        assert cut == (
            'metrics left out: 1 without a name (""); thresholds left out: 1 without a name ("")'
        ), name


def test_an_exit_code_that_disagrees_with_the_json_keeps_the_repros_reason(got: Got) -> None:
    """A repro that wrote status "error" and why, then exited 1 (its `sys.exit(1)` for any
    failure): "exit code 1 (regressed) disagrees with result JSON status 'error'", the
    out-of-memory it had named nowhere in the record's reason."""
    cell = got["raw_error_exit1"]
    assert (cell.status, cell.exit_code) == (Status.ERROR, 1), cell.reason
    assert cell.reason == (
        "exit code 1 (regressed) disagrees with result JSON status 'error': CUDA error: out "
        "of memory"
    )


def test_metrics_past_the_first_thousand_are_said_in_a_large_result_json(got: Got) -> None:
    """300,000 metrics (a result JSON of 6 MiB): the record kept the first 1,000 and said
    nothing of the rest, since a result JSON over 4 MiB was not read again to count what
    was left out; it looked complete, where one of 3 MiB said "299,000 past the first
    1,000"."""
    cell = got["raw_many"]
    assert (cell.status, len(cell.metrics)) == (Status.PASSED, 1000), cell.reason
    assert cell.provenance["harness"]["cut"] == "metrics left out: 299,000 past the first 1,000"


def test_thresholds_left_out_are_named(got: Got) -> None:
    """A threshold written as text ("1e-3") or as true was left out without a word: the
    record, and the report (its metrics plot and details), looked as if the repro had none."""
    cell = got["raw_limits"]
    assert (cell.status, cell.thresholds) == (Status.PASSED, {}), cell.reason
    assert cell.provenance["harness"]["cut"] == "thresholds left out: 2 not numbers (e, f)"


def test_a_misspelt_key_of_the_result_json_is_named(got: Got) -> None:
    """`"metric": {...}` for "metrics": the record held no metrics and said nothing, as
    if the repro had measured nothing; keys it does not read that look like one it does
    are named (keys `_repro` writes beside them, such as "params", are not)."""
    cell = got["raw_misspelt"]
    assert (cell.status, cell.metrics) == (Status.PASSED, {}), cell.reason
    assert cell.provenance["harness"]["cut"] == (
        "keys not read: 'metric' (did you mean 'metrics'?), 'threshold' (did you mean "
        "'thresholds'?)"
    )


ARRAYS = textwrap.dedent("""\
    import os, sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _repro
    import numpy as np

    def run(params):
        per_head = np.array([1e-3, 2e-3])  # a metric of many values, where one goes
        return {"schema": 1, "repro": "a", "status": "regressed", "reason": "max 2e-3",
                "metrics": {"max_abs": np.float32(0.25), "per_head": per_head}}

    if __name__ == "__main__":
        sys.exit(_repro.main(run, {}))
""")


@pytest.mark.parametrize("isolate", [False, True], ids=["worker", "isolate"])
def test_an_array_metric_is_named_not_the_whole_result_lost(tmp_path: Path, isolate: bool) -> None:
    """A numpy array where a metric goes: "exited 2 without a result (wrote no result
    JSON); last output: error: cannot write the result JSON: ValueError: can only convert
    an array of size 1 to a Python scalar", verdict and every metric lost, the metric not
    named. It is written as its list, which the record leaves out, naming it."""
    repros = ["a: {script: repros/a.py, gpus: [cpu]}"]
    run_repros(tmp_path, {"a": ARRAYS}, repros, isolate=isolate)
    (cell,) = ResultStore(tmp_path / "results").load().results
    assert (cell.status, cell.reason) == (Status.REGRESSED, "max 2e-3"), cell.reason
    assert cell.metrics == {"max_abs": 0.25}
    assert cell.provenance["harness"]["cut"] == "metrics left out: 1 not numbers (per_head)"
