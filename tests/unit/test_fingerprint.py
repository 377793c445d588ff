"""Failure fingerprints: which check a regressed result failed, recorded by the judge,
derived for older records, and how bisect tells a different failure from the same one."""

from __future__ import annotations

import json
import time
from pathlib import Path

import upstream_pytest
from cells import CELL, outcome

from repromatrix.executors.base import RunOutcome
from repromatrix.executors.judge import judge
from repromatrix.fingerprints import fingerprint_of, same_failure
from repromatrix.records import Result


def test_fingerprints_name_the_failed_checks() -> None:
    metrics = {
        "rel_err.s0p125.fused_chunk.dv": 6.04,
        "rel_err.s0p125.fused_chunk.dq": 2.6e-7,
        "rel_err.s1.fused_chunk.dv": None,  # NaN: not finite, so over any bound
        "abs_err": 0.5,
        "other": 1e9,
    }
    thresholds = {"max_rel_err": 0.01, "abs_err": 1e-3, "atol": 1e-3}
    assert fingerprint_of(metrics, thresholds) == (
        "abs_err,rel_err.s0p125.fused_chunk.dv,rel_err.s1.fused_chunk.dv"
    )
    assert fingerprint_of({"abs_err": 1e-4}, thresholds) == ""
    assert same_failure("a,b", "b,c")
    assert not same_failure("a", "c")
    assert same_failure("", "c")  # unknown proves nothing


def test_a_value_quoted_in_a_repros_fingerprint_does_not_make_another_failure() -> None:
    """Each run quoted its own value ("scale_err 0.6990 > 1e-9"): every regression was
    "a different failure" and a 60-commit bisection ran commit by commit, then gave up."""
    assert same_failure(
        "AssertionError: scale_err 0.6990 > 1e-9", "AssertionError: scale_err 1.2113 > 1e-9"
    )
    assert same_failure("RuntimeError: bad at 0x7fff12", "RuntimeError: bad at 0x7ffe00")
    assert not same_failure("AssertionError: scale_err 1 > 0", "AssertionError: offset_err 1 > 0")
    # At a sentence's end, or not finite: the value still (a run of each said "a different
    # failure" of the others and was skipped).
    assert same_failure("AssertionError: got 0.1372.", "AssertionError: got 0.0915.")
    assert same_failure("scale_err 1. > 0", "scale_err 2. > 0")
    assert same_failure("scale_err nan > 1e-9", "scale_err 0.5 > 1e-9")
    assert same_failure("scale_err is -inf.", "scale_err is NaN.")
    assert not same_failure("torch 2.5.1: scale_err", "torch 2.6.1: scale_err")
    assert not same_failure("info 1", "inf 1")
    # Digits in a name are the name; a test id's numbers name the test.
    assert not same_failure("rel_err.fp16", "rel_err.fp32")
    assert not same_failure("attn.64.dv", "attn.128.dv")
    assert not same_failure("t.py::test_a[64-fp16]", "t.py::test_a[128-fp16]")


def _outcome(path: Path, payload: dict[str, object], code: int) -> RunOutcome:
    path.write_text(json.dumps(payload))
    return outcome(path, code=code, base_fingerprint="host:abc", harness={})


def test_judge_records_a_fingerprint_for_regressions_only(tmp_path: Path) -> None:
    cell = CELL
    numbers = {"metrics": {"err": 2.0, "ok": 0.0}, "thresholds": {"err": 1.0, "ok": 1.0}}
    bad = {"schema": 1, "status": "regressed", "reason": "x", **numbers}
    first = judge(cell, _outcome(tmp_path / "a.json", bad, 1), host="h", run_id="r")
    assert first.fingerprint == "err"
    own = {**bad, "fingerprint": "tests/t.py::test_x"}
    got = judge(cell, _outcome(tmp_path / "b.json", own, 1), host="h", run_id="r")
    assert got.fingerprint == "tests/t.py::test_x"
    # A blank one says nothing: the numbers' checks, as with none (it was kept, and every
    # regression of the failure was 'a different failure' of it: no answer, exit 6).
    blank = {**bad, "fingerprint": " \n"}
    got = judge(cell, _outcome(tmp_path / "d.json", blank, 1), host="h", run_id="r")
    assert got.fingerprint == "err"
    assert same_failure(" \n", "err")
    assert same_failure(",", "err")
    good = {**bad, "status": "passed"}
    assert (
        judge(cell, _outcome(tmp_path / "c.json", good, 0), host="h", run_id="r").fingerprint == ""
    )
    # Records written before the field existed load, and derive it from their numbers.
    record = first.record()
    del record["fingerprint"]
    old = Result.model_validate(record, context={"stored": True})
    assert (old.fingerprint, old.failure) == ("", "err")


def test_upstream_pytest_names_the_failing_tests() -> None:
    out = (
        "F.\nFAILED tests/t.py::test_a[2-x] - assert 1 == 2\n"
        "ERROR tests/t.py::test_b - RuntimeError: boom\n"
        "FAILED tests/t.py::test_a[2-x] - again\n1 failed, 1 error in 0.1s\n"
    )
    assert upstream_pytest.failing_ids(out) == ["tests/t.py::test_a[2-x]", "tests/t.py::test_b"]
    assert upstream_pytest.failing_ids("1 passed in 0.1s") == []


def test_test_ids_with_separators_in_their_parameters_stay_whole() -> None:
    out = (
        "FAILED tests/t.py::test_a[a - b] - assert 1 == 2\n"
        "FAILED tests/t.py::test_a[a - c]\n"
        "FAILED tests/t.py::test_b[x::y] - assert [1] - 2\n1 failed in 0.1s\n"
    )
    # Before: both were "tests/t.py::test_a[a": one failure where pytest saw two.
    assert upstream_pytest.failing_ids(out) == [
        "tests/t.py::test_a[a - b]",
        "tests/t.py::test_a[a - c]",
        "tests/t.py::test_b[x::y]",
    ]


def test_a_separator_inside_a_test_ids_brackets_does_not_split_it() -> None:
    # Before: "test_a[1" + "2]" and "test_b[3" + "4]" shared their "#]": the same failure.
    assert not same_failure("tests/t.py::test_a[1,2]", "tests/t.py::test_b[3,4]")
    assert same_failure("tests/t.py::test_a[1,2],tests/t.py::test_c", "tests/t.py::test_c")
    assert same_failure("tests/t.py::test_a[1,2]", "tests/t.py::test_a[1,2]")


def test_a_message_with_commas_is_one_check_not_a_list() -> None:
    """Split at its commas, 'File "a.py", line 3' and 'File "b.py", line 9' shared
    'line #': a bisection followed another crash as if it were the bad end's."""
    a = 'RuntimeError: File "a.py", line 3, in scale'
    b = 'RuntimeError: File "b.py", line 9, in load'
    assert not same_failure(a, b)
    assert not same_failure("File a.py, line 3", "File b.py, line 9")
    assert same_failure(a, 'RuntimeError: File "a.py", line 4, in scale')
    assert not same_failure("expected 1, got 2", "mismatch at 3, got 2")
    # A list of checks is still a list, spaced or not.
    assert same_failure("scale_err, offset_err", "offset_err")
    assert same_failure("tests/t.py::test_a[a - b],tests/t.py::test_c", "tests/t.py::test_c")
    # A tensor quoted in a message: its values are values.
    assert same_failure(
        "AssertionError: got tensor([0.1234, -0.5678], device='cuda:0')",
        "AssertionError: got tensor([1.5e-03, 2.2500], device='cuda:0')",
    )


def test_a_value_with_a_unit_is_a_value() -> None:
    """'took 1.5ms' against 'took 2.1ms' was 'a different failure': each run of a timing
    regression quoted its own time, and the bisection skipped every one of them."""
    assert same_failure("step took 1.5ms", "step took 2.1ms")
    for unit in ("s", "us", "µs", "ns", "MiB", "GB", "%", "x", "GB/s"):
        assert same_failure(f"latency 1.5{unit} over budget", f"latency 22{unit} over budget")
    assert same_failure(
        "CUDA out of memory. Tried to allocate 20.00MiB",
        "CUDA out of memory. Tried to allocate 1.50GiB",
    )
    # Names stay names; a unit does not make another check the same one.
    assert not same_failure("rel_err.fp16", "rel_err.fp32")
    assert not same_failure("sm80 kernel", "sm90 kernel")
    assert not same_failure("step took 1.5ms", "load took 1.5ms")


def test_a_test_id_quoted_in_a_message_keeps_its_numbers_and_the_message_loses_its() -> None:
    """A pytest line with a message: the id's numbers name the test, the message's value
    is a value (kept whole, each run's value made it 'a different failure')."""
    assert same_failure(
        "FAILED t.py::test_a[64-fp16] - assert 0.51 < 0.01",
        "FAILED t.py::test_a[64-fp16] - assert 0.73 < 0.01",
    )
    assert not same_failure(
        "FAILED t.py::test_a[64-fp16] - assert 0.51 < 0.01",
        "FAILED t.py::test_a[128-fp16] - assert 0.51 < 0.01",
    )
    assert same_failure(
        "RuntimeError: CUDA error: an illegal memory access was encountered",
        "RuntimeError: CUDA error: an illegal memory access was encountered",
    )
    assert not same_failure(
        "RuntimeError: CUDA error: an illegal memory access was encountered",
        "RuntimeError: CUDA error: device-side assert triggered",
    )


def test_an_error_code_or_signal_names_the_failure() -> None:
    """'signal 9' (killed: out of memory) and 'signal 11' (a segfault), 'CUDA error 700'
    and 'CUDA error 719' were one failure, their numbers taken for quoted values: a
    bisection followed one crash as if it were the other."""
    assert not same_failure("worker died: signal 9", "worker died: signal 11")
    assert not same_failure("CUDA error 700", "CUDA error 719")
    assert not same_failure("kernel exited with code 139", "kernel exited with code 1")
    assert not same_failure("OSError: [Errno 28] No space left", "OSError: [Errno 2] No space left")
    assert not same_failure("returncode -11", "returncode -9")
    assert same_failure("worker died: signal 9", "worker died: signal 9")
    # torchrun's, a shell's, a log's and the driver's words for them.
    assert not same_failure("exitcode  : -11 (pid: 4242)", "exitcode  : -9 (pid: 4242)")
    assert not same_failure("worker died with exit 139", "worker died with exit 134")
    assert not same_failure("step failed rc=139", "step failed rc=1")
    assert not same_failure(
        "NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus",
        "NVRM: Xid (PCI:0000:3b:00): 13, GPU has fallen off the bus",
    )
    assert same_failure("exitcode  : -11 (pid: 4242)", "exitcode  : -11 (pid: 77)")
    # A value stays a value after such a word when it is a measured one.
    assert same_failure("max error 0.53 > 1e-3", "max error 0.71 > 1e-3")
    assert same_failure("code path took 1.5ms", "code path took 2.5ms")


def test_what_each_run_names_anew_is_not_the_check() -> None:
    """A temporary folder's random name, the rank that hit it first, a count with its
    thousands grouped: each run of one failure says them anew, and each was 'a different
    failure' of the others (skipped: 'first bad commit is one of ...', exit 6)."""
    assert same_failure(
        'File "/tmp/tmp10mu4wry/kernel.py", line 3, in scale',
        'File "/tmp/tmpa_4_thnx/kernel.py", line 3, in scale',
    )
    assert same_failure(
        "[rank0]: NCCL error: unhandled system error", "[rank3]: NCCL error: unhandled system error"
    )
    assert same_failure("1,234,567 mismatched elements", "2,000 mismatched elements")
    assert same_failure("got shape (64,128)", "got shape (64,1024)")
    # What names the failure still does.
    assert not same_failure('File "/tmp/tmp10mu4wry/a.py"', 'File "/tmp/tmp10mu4wry/b.py"')
    assert not same_failure("tmpl_engine failed", "tmpl_render failed")
    assert not same_failure("[rank0]: NCCL error: timeout", "[rank0]: NCCL error: unhandled")


def test_a_time_a_uuid_or_a_unit_after_a_blank_is_not_the_check() -> None:
    """A log line's time ('2026-12-05T06:26:48Z': '05T06' read as a name), torchrun's
    ('time : 2026-12-05_06:26:48'), the slot's GPU UUID and a value whose unit follows a
    blank (torch's 'Tried to allocate 20.00 MiB', '1.50 GiB' at another commit) made one
    failure many: a bisection that crossed an hour, or slots of other GPUs, skipped its
    own failure's runs as 'a different failure'."""
    assert same_failure(
        "[2026-12-05T06:26:48Z] NCCL error: unhandled system error",
        "[2026-12-05T07:01:02.5+00:00] NCCL error: unhandled system error",
    )
    assert same_failure(
        "time : 2026-12-05_06:26:48 exitcode : -11", "time : 2026-12-06_23:00:01 exitcode : -11"
    )
    assert same_failure(
        "2026-12-05 06:26:48,123 ERROR scale wrong", "2026-12-05 11:00:00,999 ERROR scale wrong"
    )
    assert same_failure(
        "GPU-1a2b3c4d-1111-2222-3333-444455556666 fell off the bus",
        "GPU-9f9f9f9f-aaaa-bbbb-cccc-ddddeeeeffff fell off the bus",
    )
    assert same_failure(
        "CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has 3.12 MiB free",
        "CUDA out of memory. Tried to allocate 1.50 GiB. GPU 3 has 512.00 KiB free",
    )
    assert same_failure("step took 1.5 ms", "step took 2s")
    # What names the failure still does; a unit is not a word after a blank.
    assert not same_failure("exitcode : -11 at 2026-12-05_06:26:48", "exitcode : -9")
    assert not same_failure("3 sections differ", "3 blocks differ")


def test_a_long_word_in_a_fingerprint_is_read_once() -> None:
    """A repro's state dumped into its fingerprint (50,000 characters of base64, no `::`
    in it) took 25 s a comparison, looked for a test id from each of its characters: a
    bisection compares each run's, and it stalled for minutes or hours."""
    blob = "ValueError: scale wrong; state=" + "QUJD" * 12_500
    started = time.monotonic()
    assert same_failure(blob, blob + "x") is False
    assert time.monotonic() - started < 5


def test_an_integer_alone_is_a_code_not_a_value() -> None:
    """A repro that writes its child's `str(proc.returncode)` as its fingerprint: "-11" (a
    segfault) and "-9" (the OOM killer) were one failure, a value made one, and a bisection
    followed the other crash; a value with a point is still a value."""
    assert not same_failure("-11", "-9")
    assert not same_failure("700", "719")
    assert same_failure("139", "139")
    assert same_failure("0.51", "0.73")


def test_an_address_a_hashed_cache_path_or_a_complex_value_is_not_the_check() -> None:
    """An address printed without `0x` (the kernel's 'segfault at 7f3a12345678'), a
    Triton or torchinductor cache path named by a hash, a complex value: each run says
    them anew, and each run was 'a different failure' of the others."""
    assert same_failure(
        "segfault at 7f3a12345678 ip 00007f3a12345678 sp 00007ffd12345678 error 4",
        "segfault at 7f3b22345679 ip 00007f3c11111111 sp 00007ffe87654321 error 4",
    )
    assert same_failure(
        "Error in /root/.triton/cache/" + "0a1b2c3d" * 8 + "/_attn_fwd.cubin",
        "Error in /root/.triton/cache/" + "ffee9988" * 8 + "/_attn_fwd.cubin",
    )
    assert same_failure(
        "Error in /root/.triton/cache/ABCDEFGHIJ" + "234567" * 7 + "/k.py",
        "Error in /root/.triton/cache/QRSTUVWXYZ" + "765432" * 7 + "/k.py",
    )
    assert same_failure(
        'File "/tmp/torchinductor_root/ab/cabcdefghijklmnopqrstuvwxyz0123456789abcdefgh.py"',
        'File "/tmp/torchinductor_root/zz/czyxwvutsrqponmlkjihgfedcba9876543210zyxwvuts.py"',
    )
    assert same_failure("got (1+2j), expected 0j", "got (3.5-0.25e-3j), expected 0j")
    # What names the failure still does: a hex word, a commit id, a name with digits.
    assert not same_failure("bad value deadbeef", "bad value cafe")
    assert not same_failure("broken at 3f1f080f", "broken at 85992884")
    assert not same_failure("broken at 3f1f080f43", "broken at 8599288412")
    assert not same_failure("at deadbeefcafe", "at cafecafecafe")
    assert not same_failure("/a/b/kernel_fp16_v2.py failed", "/a/b/kernel_fp32_v2.py failed")
    assert not same_failure("x3j fails", "x4j fails")
    assert not same_failure(
        "in /k/FlashAttnFwdSm90Kernel2Stage.cubin", "in /k/FlashAttnBwdSm90Kernel2Stage.cubin"
    )


def test_deeply_nested_brackets_are_read_once() -> None:
    """5,000 levels of brackets took 1.6 s a comparison (the pairs taken off a level at a
    time), and a bisection compares every run's fingerprint."""
    nested = "[" * 5_000 + "]" * 5_000
    started = time.monotonic()
    for _ in range(5):
        assert same_failure(nested, nested + "x") is False
    assert time.monotonic() - started < 1
    assert not same_failure("t.py::a[[x y] z], t.py::b", "t.py::c")
    assert same_failure("t.py::a[[x y] z], t.py::b", "t.py::b")
    assert same_failure("a [b c", "a [b c")
