"""Which check a regression failed: a record's fingerprint, and when two name the same
failure (a bisection follows one failure, not whichever it meets)."""

from __future__ import annotations

import re
from collections.abc import Mapping

#: Separates the checks of one fingerprint ("a,b": both failed).
FINGERPRINT_SEP = ","


def fingerprint_of(
    metrics: Mapping[str, float | None], thresholds: Mapping[str, float | None]
) -> str:
    """Which checks a result failed, derived from its numbers: the metrics over their
    threshold or not finite (stored as None), sorted, comma-separated (see `_limits`)."""
    failed = {
        metric
        for metric, limits in _limits(metrics, thresholds).items()
        if (value := metrics[metric]) is None or any(value > limit for limit in limits)
    }
    return FINGERPRINT_SEP.join(sorted(failed))


def checks_pass(
    checks: str, metrics: Mapping[str, float | None], thresholds: Mapping[str, float | None]
) -> bool:
    """Whether a result measured every check of the fingerprint `checks` and each is
    within a threshold: that failure is absent there, whatever else failed."""
    names = [c for c in split_checks(checks) if c]
    limits = _limits(metrics, thresholds)
    return bool(names) and all(
        (value := metrics.get(n)) is not None and n in limits and all(value <= x for x in limits[n])
        for n in names
    )


def _limits(
    metrics: Mapping[str, float | None], thresholds: Mapping[str, float | None]
) -> dict[str, list[float]]:
    """Metric → the thresholds that bound it. A threshold applies to the metric of its
    name; failing that, a `max_X` (or `X`) threshold bounds every metric with a dotted part
    `X`, as the repros name them (`max_rel_err` → `rel_err.s0p125.fused_chunk.dv`,
    `max_mismatch_frac` → `mla.fa2.big.nan.mismatch_frac`)."""
    out: dict[str, list[float]] = {}
    for name, limit in thresholds.items():
        if limit is None:
            continue
        if name in metrics:
            bounded = [name]
        else:
            quantity = name.removeprefix("max_")
            bounded = [m for m in metrics if quantity in m.split(".")]
        for metric in bounded:
            out.setdefault(metric, []).append(limit)
    return out


def split_checks(fingerprint: str) -> list[str]:
    """The checks of a fingerprint. A separator inside a test id's brackets is part of the
    id (`tests/t.py::test_y[1,2]`): split there, `test_y[1` and `2]` (a bare `#]` once
    numbers are made one) made tests that share nothing look like the same failure.

    A list names its checks without spaces (metric names, test ids: "a,b" or "a, b"); a
    piece with a space in it is a message's, whose commas are its own ('File "a.py", line
    3'), and the message is one check: split, `line #` made two crashes in different
    files the same failure, and a bisection followed the other one."""
    checks, depth, start = [], 0, 0
    for i, char in enumerate(fingerprint):
        if char == "[":
            depth += 1
        elif char == "]":
            depth = max(0, depth - 1)
        elif char == FINGERPRINT_SEP and depth == 0:
            checks.append(fingerprint[start:i])
            start = i + 1
    checks.append(fingerprint[start:])
    return [fingerprint] if any(_spaced(c) for c in checks) else checks


def _spaced(piece: str) -> bool:
    """Whether a piece holds a space outside brackets (a message's words, not a name;
    a test id's parameters may hold spaces: `test_a[a - b]`). Each matched pair is
    dropped with what it holds, in one pass: taken off innermost first, a regex at a
    time, 5,000 levels took 1.6 s a comparison, and a bisection compares every run's."""
    kept: list[str] = []
    opened: list[int] = []
    for char in piece:
        if char == "]" and opened:
            del kept[opened.pop() :]
            continue
        if char == "[":
            opened.append(len(kept))
        kept.append(char)
    return len("".join(kept).split()) > 1


#: A real number's digits, or a value Python prints for a float that is not finite.
_REAL = r"(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|(?i:nan|inf))"

#: A number standing alone in a check's text (a value, an address, a count): "scale_err
#: 0.6990 > 1e-9", "failed at 0x7f3a", "got 0.6990." (a sentence's full stop after it),
#: the values Python prints for a float that is not finite ("got nan", "-inf"), and a
#: complex value, whole ("(1+2j)", "(3.5-0.25j)", numpy's "1.+2.j": its sign is the value's).
#: A value may carry its unit ("took 1.5ms", "20.00MiB", "1.8x", "93%"): each run of a
#: timing regression quotes its own time, and without the unit it was a name, another
#: failure at every step. Digits inside a name are the name ("fp16", "s0p125", "sm90",
#: "attn.64.dv", "2.5.1", "3x4"): preceded or followed by a letter, digit or `_`, or by a
#: `.` that another of those follows.
_NUMBER = re.compile(
    rf"(?<![\w.])[-+]?(?:0[xX][0-9a-fA-F]+|(?:{_REAL}[-+])?{_REAL}[jJ]|{_REAL})"
    r"(?:[nuµm]?s|sec|min|[kKMGTP]i?B|B|%|[xX]| (?:[nuµm]?s|sec|min|[kKMGTP]i?B|B|%))?"
    r"(?!\w|\.\w)"
)


def check_shapes(fingerprint: str) -> set[str]:
    """The checks of a fingerprint with the numbers standing alone in them made one: a
    repro's own fingerprint may quote the value that failed, which differs run to run.
    A test id (`path::test[64-fp16]`) is kept whole: its numbers name the test; the rest
    of a message that quotes one ("FAILED t.py::test_a[64] - assert 0.51 < 0.01") is not
    (kept whole too, each run's value made it another failure). An integer alone is a
    code (`_CODE_ALONE`)."""
    checks = (c.strip() for c in split_checks(fingerprint))
    return {
        c if _CODE_ALONE.fullmatch(c) else "".join(map(_shape, _TEST_ID.split(c)))
        for c in checks
        if c
    }


#: A check that is an integer alone is a code, not a quoted value: a repro that writes
#: `str(proc.returncode)` ("-11" a segfault, "-9" the OOM killer) named two crashes one.
_CODE_ALONE = re.compile(r"[-+]?\d+")


#: A pytest node id in a check (`path::name`, with its brackets and what they hold). It
#: begins where a word does: tried at every character, a long word with no `::` in it (a
#: blob, a hex dump) was read to its end from each of them: 24 s to compare two
#: fingerprints of 50,000 characters, and a bisection compares each run's.
_TEST_ID = re.compile(r"((?<!\S)\S*::(?:[^\s\[]|\[[^\]]*\])*)")


def _shape(part: str) -> str:
    """A part of a check with its numbers made one, unless it is a test id."""
    if "::" in part:
        return part
    return _GROUPED.sub("#", _NUMBER.sub(_value, _ANEW.sub(_anew, part)))


#: What each run of one failure names anew: a temporary folder or file in a path (Python's
#: `tempfile`: "/tmp/tmp" and 8 random characters), the rank that hit it first ("[rank3]:",
#: torch.distributed's prefix), the time a log line or torchrun's ChildFailedError gives
#: ("2026-12-05T06:26:48.123Z", "2026-12-05_06:26:48": its "05T06" read as a name), a
#: GPU's UUID (the slot's GPU: "GPU-1a2b3c4d-..."), an address printed without `0x`
#: (12 to 16 hex digits after `at`, `ip`, `sp`, `addr`…: the kernel's "segfault at
#: 7f3a12345678 ip 00007f3a…"; or 16 padded ones, `0000…`, `ffff…`), a cache folder or
#: file named by a hash (a path part of 24 or more letters of one case and digits, both;
#: a CamelCase name is a name): Triton's `~/.triton/cache/<hash>/`, torchinductor's
#: `/tmp/torchinductor_root/xx/c<hash>.py`, with the two-character folder before it). A
#: hex word (`deadbeef`, `cafe`) or a commit id outside a path (7 to 11 digits, or 40)
#: stays a name. Left as they were, each run was "a different failure".
_ANEW = re.compile(
    r"(?<=[/\\])(tmp)[a-z0-9_]{8}(?![a-z0-9_])|\b(rank)\d+\b|"
    r"(?<![\w.])\d{4}-\d\d-\d\d[T_ ]\d\d:\d\d(?::\d\d(?:[.,]\d+)?)?(?:Z|[+-]\d\d:?\d\d)?(?!\w)|"
    r"(?<![0-9a-fA-F])[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}(?![0-9a-fA-F])|"
    r"(?i:\b((?:at|ip|sp|pc|rip|rsp|addr(?:ess)?|ptr|pointer)(?:\s*[:=]\s*|\s+)))"
    r"(?=[a-fA-F]*\d)[0-9a-fA-F]{12,16}(?![\w.])|"
    r"(?<![\w.])(?:0000|ffff)[0-9a-fA-F]{12}(?![\w.])|"
    r"(?<=[/\\])(?:[a-z0-9]{2}[/\\])?(?=[A-Za-z]*\d)(?=\d*[A-Za-z])"
    r"(?:[a-z0-9]{24,}|[A-Z0-9]{24,})(?![A-Za-z0-9])"
)


def _anew(match: re.Match[str]) -> str:
    return f"{match.group(1) or match.group(2) or match.group(3) or ''}#"


#: Values made one, joined by commas: a count with its thousands grouped ("1,234,567"
#: and "12" are one count), a shape written without blanks ("(64,128)", "(64,1024)").
_GROUPED = re.compile(r"#(?:,#)+")


#: What comes before a number that names the failure: a signal, an errno, an exit or
#: return code, a CUDA/NCCL error ("signal 9" is the OOM killer, "signal 11" a segfault;
#: "CUDA error 700" an illegal address, "719" a launch failure). Made one, two crashes
#: were the same failure and a bisection followed the other one. Spelled as torchrun's
#: ChildFailedError ("exitcode  : -11"), a shell's ("exit 139"), a log's ("rc=134") or the
#: driver's ("NVRM: Xid (PCI:0000:3b:00): 79", fallen off the bus; "13" an exception).
_CODE_BEFORE = re.compile(
    r"(?i)(?:\bsig(?:nal)?|\berrno|\bcode|\bstatus|\bexit(?:ed|code)?(?: with)?|\brc|"
    r"\breturncode|\bxid(?:\s*\([^()]*\))?|"
    r"\b(?:cuda|nccl|hip|cublas|cudnn|cusolver|cusparse|cufft|curand)(?:_status)? error)"
    r"\s*[:=#]?\s*$"
)


def _value(number: re.Match[str]) -> str:
    """`#` for a quoted value; a code (an integer after `_CODE_BEFORE`) as it is."""
    text = number.group()
    before = number.string[max(0, number.start() - 40) : number.start()]
    if text.lstrip("+-").isdigit() and _CODE_BEFORE.search(before):
        return text
    return "#"


def same_failure(a: str, b: str) -> bool:
    """Whether two fingerprints name the same failure: they share a failed check (numbers
    standing alone in it aside), or one of them is unknown (empty, or blank: no check in
    it), which proves nothing either way."""
    shapes_a, shapes_b = check_shapes(a), check_shapes(b)
    return not shapes_a or not shapes_b or bool(shapes_a & shapes_b)
