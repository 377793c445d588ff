"""`judge`: every rule that turns an executor's outcome into a cell's status, one by one."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cells import CELL

from repromatrix.executors.base import RunOutcome
from repromatrix.executors.judge import judge, read_result_json
from repromatrix.model import Status


def outcome(
    tmp_path: Path,
    *,
    code: int | None = 0,
    payload: Any = None,
    raw: str | None = None,
    timed_out: bool = False,
    cancelled: bool = False,
    harness_error: str | None = None,
    stderr: str = "",
) -> RunOutcome:
    path = tmp_path / "result.json"
    if raw is not None:
        path.write_text(raw)
    elif payload is not None:
        path.write_text(json.dumps(payload))
    return RunOutcome(
        exit_code=code,
        timed_out=timed_out,
        cancelled=cancelled,
        duration_s=1.25,
        started=datetime(2026, 1, 1, tzinfo=UTC),
        result_json=path,
        stdout_tail="",
        stderr_tail=stderr,
        executor="local",
        base_fingerprint="host:abc",
        harness={"slot": "cpu0"},
        harness_error=harness_error,
    )


def payload(status: str, reason: str = "why", **extra: Any) -> dict[str, Any]:
    return {
        "schema": 1,
        "repro": "r",
        "status": status,
        "reason": reason,
        "metrics": {"max_abs": 0.5, "n": 3, "bad": float("nan"), "flag": True, "name": "x"},
        "thresholds": {"max_abs": 1e-3},
        "provenance": {"torch": "2.11", "harness": "the repro cannot overwrite this"},
        **extra,
    }


@pytest.mark.parametrize(
    ("code", "status"),
    [(0, Status.PASSED), (1, Status.REGRESSED), (125, Status.UNTESTABLE)],
)
def test_exit_code_and_json_that_agree_give_the_verdict(
    tmp_path: Path, code: int, status: Status
) -> None:
    r = judge(
        CELL, outcome(tmp_path, code=code, payload=payload(status.value)), host="h", run_id="x"
    )
    assert r.status is status
    assert r.reason == "why"
    # Integers become floats, NaN becomes None, non-numbers (true/false too) are dropped.
    assert r.metrics == {"max_abs": 0.5, "n": 3.0, "bad": None}
    assert r.thresholds == {"max_abs": 1e-3}
    # The repro's provenance is kept; the harness's facts go under "harness", never its own.
    name = r.provenance["harness"].pop("record")  # each record's own name
    assert len(name) == 12
    # ... and what the metrics left out is said there.
    assert r.provenance["harness"].pop("cut") == (
        "metrics left out: 2 not numbers (flag, name); metrics kept as null: 1 not finite (bad)"
    )
    assert r.provenance == {"torch": "2.11", "harness": {"slot": "cpu0"}}
    assert (r.key, r.cell_id, r.repro, r.gpu, r.base) == (CELL.key, CELL.id, "r", "cpu", "host")
    assert (r.host, r.run_id, r.exit_code, r.duration_s) == ("h", "x", code, 1.25)


def test_an_empty_reason_is_the_status(tmp_path: Path) -> None:
    r = judge(CELL, outcome(tmp_path, payload=payload("passed", " \n ")), host="h", run_id="x")
    assert r.reason == "passed"


def test_a_multi_line_reason_becomes_one_line(tmp_path: Path) -> None:
    r = judge(CELL, outcome(tmp_path, payload=payload("passed", "a\nb  c")), host="h", run_id="x")
    assert r.reason == "a b c"


def test_harness_failure_is_an_error_with_its_reason(tmp_path: Path) -> None:
    o = outcome(tmp_path, code=None, harness_error="environment: pip could not install x")
    r = judge(CELL, o, host="h", run_id="x")
    assert (r.status, r.reason) == (Status.ERROR, "environment: pip could not install x")
    assert r.provenance["harness"].pop("record")
    assert r.provenance == {"harness": {"slot": "cpu0"}}


def test_timeout_keeps_partial_numbers_and_names_the_limit(tmp_path: Path) -> None:
    o = outcome(
        tmp_path, code=-9, timed_out=True, payload=payload("passed"), stderr="compiling\nstep 3\n"
    )
    r = judge(CELL, o, host="h", run_id="x")
    assert r.status is Status.TIMEOUT
    assert r.reason == "timed out: killed at the 30 s limit; last output: step 3"
    assert r.metrics["max_abs"] == 0.5


def test_cancelled_is_an_error(tmp_path: Path) -> None:
    r = judge(CELL, outcome(tmp_path, code=-15, cancelled=True), host="h", run_id="x")
    assert (r.status, r.reason) == (Status.ERROR, "cancelled (Ctrl-C) before it finished")


def test_no_exit_code_is_an_error(tmp_path: Path) -> None:
    r = judge(CELL, outcome(tmp_path, code=None, payload=payload("passed")), host="h", run_id="x")
    assert (r.status, r.reason) == (Status.ERROR, "the repro did not report an exit code")


@pytest.mark.parametrize(("code", "signal"), [(-11, 11), (139, 11), (128 + 6, 6)])
def test_a_signal_is_a_crash_even_with_a_passing_json(
    tmp_path: Path, code: int, signal: int
) -> None:
    o = outcome(tmp_path, code=code, payload=payload("passed"), stderr="Segmentation fault\n")
    r = judge(CELL, o, host="h", run_id="x")
    assert r.status is Status.ERROR
    assert r.reason == f"crashed: killed by signal {signal}; last output: Segmentation fault"


@pytest.mark.parametrize("code", [128, 193, 255])
def test_an_exit_status_past_the_signals_is_a_crash_not_a_signal(tmp_path: Path, code: int) -> None:
    o = outcome(tmp_path, code=code, payload=payload("passed"), stderr="fatal\n")
    r = judge(CELL, o, host="h", run_id="x")
    assert r.status is Status.ERROR
    assert r.reason == f"crashed: exited {code}; last output: fatal"


@pytest.mark.parametrize("code", [0, 1])
def test_a_verdict_without_its_json_is_not_trusted(tmp_path: Path, code: int) -> None:
    r = judge(CELL, outcome(tmp_path, code=code), host="h", run_id="x")
    assert r.status is Status.ERROR
    assert r.reason == (
        f"exited {code} but wrote no result JSON; a verdict without its result JSON is not trusted"
    )


@pytest.mark.parametrize(
    ("stderr", "reason"),
    [
        ("loading...\nno module named flashinfer here\n", "no module named flashinfer here"),
        ("", "exited 125 (cannot be tested here) without a result JSON or a line saying why"),
    ],
)
def test_exit_125_without_json_is_untestable_with_its_last_line(
    tmp_path: Path, stderr: str, reason: str
) -> None:
    """`sys.exit(125)` where a library is missing, no JSON written: `git bisect run` skips
    such a commit. It was an error ("a verdict without its result JSON is not trusted"),
    and a bisection sent it to --retry-errors; 125 is no verdict, and no crash exits 125."""
    r = judge(CELL, outcome(tmp_path, code=125, stderr=stderr), host="h", run_id="x")
    assert (r.status, r.reason, r.exit_code) == (Status.UNTESTABLE, reason, 125)


def test_exit_125_with_an_unreadable_json_stays_an_error(tmp_path: Path) -> None:
    """A result JSON written but unreadable is a repro's bug to fix, whatever its exit."""
    r = judge(CELL, outcome(tmp_path, code=125, raw="{not json"), host="h", run_id="x")
    assert r.status is Status.ERROR
    assert r.reason.startswith("exited 125 without a result (wrote result JSON that does"), r.reason


def test_a_verdict_without_its_json_says_the_last_line_it_printed(tmp_path: Path) -> None:
    """`sys.exit("the GPU is busy")` in a repro exits 1 with its message on stderr alone:
    the reason said only "exited 1 but wrote no result JSON", the why left in the tail."""
    o = outcome(tmp_path, code=1, stderr="Traceback? no:\nthe GPU is busy\n")
    r = judge(CELL, o, host="h", run_id="x")
    assert r.status is Status.ERROR
    assert r.reason == (
        "exited 1 but wrote no result JSON; a verdict without its result JSON is not trusted"
        "; last output: the GPU is busy"
    )


def test_another_exit_code_without_json_is_an_error_with_the_last_line(tmp_path: Path) -> None:
    r = judge(CELL, outcome(tmp_path, code=3, stderr="boom\n"), host="h", run_id="x")
    assert (r.status, r.reason) == (
        Status.ERROR,
        "exited 3 without a result (wrote no result JSON); last output: boom",
    )


def test_an_error_exit_with_json_keeps_the_repros_reason(tmp_path: Path) -> None:
    o = outcome(tmp_path, code=2, payload=payload("error", "ValueError: bad"))
    r = judge(CELL, o, host="h", run_id="x")
    assert (r.status, r.reason) == (Status.ERROR, "exited 2: ValueError: bad")
    o = outcome(tmp_path, code=2, payload=payload("error", ""))
    assert judge(CELL, o, host="h", run_id="x").reason == "exited 2: no reason given"


def test_exit_code_and_json_that_disagree_are_an_error(tmp_path: Path) -> None:
    r = judge(CELL, outcome(tmp_path, code=0, payload=payload("regressed")), host="h", run_id="x")
    assert r.status is Status.ERROR
    assert r.reason == "exit code 0 (passed) disagrees with result JSON status 'regressed': why"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("{not json", "wrote result JSON that does not parse"),
        ("[1, 2]", "wrote result JSON that is not an object"),
        (json.dumps({"status": "passed"}), "wrote result JSON that lacks the key 'schema'"),
        (json.dumps(payload("passed", schema=7)), "wrote result JSON that has schema 7"),
        (json.dumps(payload("passed", schema=True)), "wrote result JSON that has schema True"),
        (json.dumps(payload("passed", schema=1.0)), "wrote result JSON that has schema 1.0"),
        (json.dumps(payload("timeout")), "has an unknown status 'timeout'"),
        (json.dumps(payload("fine")), "has an unknown status 'fine'"),
        (json.dumps(payload("passed", provenance="oops")), "is invalid at 'provenance'"),
        (json.dumps(payload("passed", metrics=[1, 2])), "is invalid at 'metrics'"),
        (json.dumps({**payload("passed"), "reason": 3}), "is invalid at 'reason'"),
    ],
)
def test_unusable_json_is_an_error_saying_why(tmp_path: Path, raw: str, problem: str) -> None:
    r = judge(CELL, outcome(tmp_path, code=0, raw=raw), host="h", run_id="x")
    assert r.status is Status.ERROR
    assert problem in r.reason
    assert r.metrics == {}


@pytest.mark.parametrize(
    ("status", "said"),
    [
        ("skipped", "'skipped' (did you mean 'untestable'? a status is one of passed, "),
        ("OK", "'OK' (did you mean 'passed'? a status is one of passed, regressed, "),
        ("passed\n", "'passed\\n' (did you mean 'passed' (no blanks around it)? a status "),
        (None, "has an unknown status null (a status is one of passed, regressed, "),
        ("zzz", "'zzz' (a status is one of passed, regressed, untestable, error)"),
    ],
)
def test_an_unknown_status_names_the_one_meant(tmp_path: Path, status: Any, said: str) -> None:
    """pytest's words ('skipped'), a capital, a newline that the reason showed as nothing,
    JSON's null shown as Python's None: each said as the status meant, and the statuses."""
    raw = json.dumps({**payload("passed"), "status": status})
    r = judge(CELL, outcome(tmp_path, code=0, raw=raw), host="h", run_id="x")
    assert r.status is Status.ERROR
    assert said in r.reason, r.reason


def test_read_result_json_of_a_missing_or_unreadable_file(tmp_path: Path) -> None:
    assert read_result_json(None) == (None, "wrote no result JSON")
    assert read_result_json(tmp_path / "nope.json") == (None, "wrote no result JSON")
    folder = tmp_path / "dir.json"
    folder.mkdir()
    assert read_result_json(folder)[0] is None


def test_deeply_nested_json_is_unusable_not_a_crash(tmp_path: Path) -> None:
    deep = '{"schema": 1, "status": "passed", "provenance": ' + "[" * 100_000 + "]" * 100_000 + "}"
    r = judge(CELL, outcome(tmp_path, code=0, raw=deep), host="h", run_id="x")
    assert r.status is Status.ERROR


def test_why_pip_failed_is_its_error_line_with_the_builds_exception() -> None:
    from repromatrix.safetext import pip_failure

    build = (
        "  error: subprocess-exited-with-error\n"
        "  × Getting requirements to build wheel did not run successfully.\n"
        "  ╰─> [3 lines of output]\n"
        "      RuntimeError: this sdist cannot build\n"
        "      [end of output]\n"
        "error: metadata-generation-failed\n"
        "hint: See above for details.\n"
    )  # pip 24+ writes build failures in lower case
    assert pip_failure(build, code=1) == (
        "error: metadata-generation-failed (RuntimeError: this sdist cannot build)"
    )
    missing = "ERROR: Could not find a version\nERROR: No matching distribution found for p==9\n"
    assert pip_failure(missing, code=1) == "ERROR: No matching distribution found for p==9"
    assert pip_failure("", code=2) == "exit 2"
    # `raise SystemExit("...")` in a setup.py prints its message alone: still the reason.
    said = build.replace("RuntimeError: this sdist cannot build", "badpkg refuses to build")
    assert pip_failure(said, code=1) == (
        "error: metadata-generation-failed (badpkg refuses to build)"
    )


def test_a_link_or_fifo_left_for_the_result_or_a_log_is_never_read(tmp_path: Path) -> None:
    from repromatrix.executors.judge import read_result_json
    from repromatrix.proc import tail

    host = tmp_path / "host-secret.json"  # a file of the host, which must not become a verdict
    host.write_text('{"schema": 1, "status": "passed", "reason": "THIS CAME FROM THE HOST"}')
    link = tmp_path / "result.json"
    link.symlink_to(host)
    payload, why = read_result_json(link)
    assert payload is None
    assert why == "left a link where its result JSON goes (links are not followed)"
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # opened for reading, it would wait for a writer forever
    assert read_result_json(fifo) == (
        None,
        "left something other than a file where its result JSON goes",
    )
    zero = tmp_path / "stdout.log"
    zero.symlink_to("/dev/zero")  # read to its end, it would take all memory
    assert tail(zero) == ""
    assert tail(fifo) == ""
    assert tail(link) == ""
    log = tmp_path / "stderr.log"
    log.write_text("x" * 10_000 + "\nlast line\n")
    assert tail(log).endswith("last line\n")


@pytest.mark.parametrize("lone", [chr(0xDCFF), chr(0xD83D)], ids=["low", "high"])
def test_a_lone_surrogate_escape_in_the_result_json_is_read_as_python_writes_it(
    tmp_path: Path, lone: str
) -> None:
    """json.dump writes "\\udcff" for text from undecodable bytes, "\\ud83d" for an
    emoji cut in two; the strict parser refused them and a passing cell became an error."""
    from repromatrix.executors.judge import read_result_json

    path = tmp_path / "result.json"
    reason = "caf" + lone
    path.write_text(
        json.dumps(
            {
                "schema": 1,
                "repro": "r",
                "status": "passed",
                "reason": reason,
                "metrics": {},
                "thresholds": {},
                "provenance": {},
            }
        )
    )
    payload, why = read_result_json(path)
    assert why == ""
    assert payload is not None
    assert payload.status == "passed"
    assert payload.reason == "caf?"


def test_metrics_the_record_leaves_out_are_named(tmp_path: Path) -> None:
    """2,000 metrics kept 1,000 silently; "1.5" and [1, 2] vanished without a word."""
    metrics: dict[str, Any] = {f"m{i:04d}": float(i) for i in range(2000)}
    metrics.update({"text": "1.5", "pair": [1, 2], "gone": None})
    raw = json.dumps({"schema": 1, "status": "passed", "reason": "ok", "metrics": metrics})
    r = judge(CELL, outcome(tmp_path, code=0, raw=raw), host="h", run_id="x")
    assert r.status is Status.PASSED
    cut = r.provenance["harness"]["cut"]
    assert cut == "metrics left out: 2 not numbers (text, pair); 1,001 past the first 1,000"
    fine = judge(CELL, outcome(tmp_path, code=0, raw=json.dumps(
        {"schema": 1, "status": "passed", "reason": "ok", "metrics": {"a": 1.0}}
    )), host="h", run_id="x")  # fmt: skip
    assert "cut" not in fine.provenance["harness"]


def test_metrics_kept_as_null_for_not_being_finite_are_named(tmp_path: Path) -> None:
    """A metric of inf or 10**400 was stored as null with no word: the record read as if the
    repro had written no value."""
    raw = (
        '{"schema": 1, "status": "regressed", "reason": "overflow", "metrics": '
        '{"max_abs": Infinity, "ulps": ' + "9" * 400 + ', "nan_count": NaN, "ok": 1.0}}'
    )
    r = judge(CELL, outcome(tmp_path, code=1, raw=raw), host="h", run_id="x")
    assert r.status is Status.REGRESSED
    assert r.metrics == {"max_abs": None, "ulps": None, "nan_count": None, "ok": 1.0}
    cut = r.provenance["harness"]["cut"]
    assert cut == "metrics kept as null: 3 not finite (max_abs, ulps, nan_count)"


def test_a_huge_fingerprint_is_cut_alike_keeping_both_ends(tmp_path: Path) -> None:
    """A repro that wrote its whole state as its fingerprint (megabytes) stored it in every
    record; it is cut to its two ends with one marker, so two such failures whose ends
    agree are still one failure and the last line (the exception) is kept."""
    from repromatrix.bounds import MAX_FINGERPRINT_CHARS
    from repromatrix.fingerprints import same_failure

    def fp(middle: str) -> str:
        got = payload("regressed", fingerprint="Traceback " + middle * 500_000 + " ValueError")
        return judge(CELL, outcome(tmp_path, code=1, payload=got), host="h", run_id="x").fingerprint

    one, two = fp("a"), fp("b")
    assert len(one) <= MAX_FINGERPRINT_CHARS
    assert one.startswith("Traceback ")
    assert one.endswith(" ValueError")
    assert one != two
    assert same_failure(one, fp("a"))


def test_a_result_json_is_read_once_and_parsed_by_python_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # White-box, for the cost alone (nothing a user sees differs): a 60 MB result was read
    # twice and parsed three times per cell, seconds each, the key check's parse the
    # costliest since it was never given the parse that makes its count enough.
    from repromatrix import proc

    opened: list[object] = []
    parsed: list[object] = []
    real_open, real_loads = proc.open_regular, json.loads

    def counted_open(path: Path) -> Any:
        opened.append(path)
        return real_open(path)

    def counted_loads(*args: Any, **kwargs: Any) -> Any:
        parsed.append(args)
        return real_loads(*args, **kwargs)

    monkeypatch.setattr(proc, "open_regular", counted_open)
    monkeypatch.setattr(json, "loads", counted_loads)
    result = judge(CELL, outcome(tmp_path, payload=payload("passed")), host="h", run_id="r")
    assert result.status is Status.PASSED
    assert "metrics left out: 2 not numbers (flag, name)" in result.provenance["harness"]["cut"]
    assert (len(opened), len(parsed)) == (1, 1)
