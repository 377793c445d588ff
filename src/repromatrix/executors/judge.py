"""The one place a repro's output becomes a Result: one rule set for every executor."""

from __future__ import annotations

import codecs
import difflib
import errno
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

from pydantic import ValidationError

from repromatrix import proc
from repromatrix.bounds import (
    MAX_FINGERPRINT_CHARS,
    MAX_METRICS,
    MAX_RESULT_JSON_BYTES,
    long_digits,
    parse_json,
)
from repromatrix.executors.base import OOM_KILLED, RunOutcome
from repromatrix.fingerprints import fingerprint_of
from repromatrix.jsonkeys import repeated_key
from repromatrix.model import EXIT_PASSED, EXIT_REGRESSED, EXIT_UNTESTABLE, Cell, Status
from repromatrix.records import (
    NO_MACHINE,
    Machine,
    Result,
    finite_or_none,
    full_commit,
    pin_commits,
)
from repromatrix.repro_result import PROTOCOL_SCHEMA, ReproResult, ReproStatus
from repromatrix.safetext import cut as cut_ends
from repromatrix.safetext import excerpt, quoted

#: Exit statuses that stand for "killed by signal n" (128 + n, n from 1 to SIGRTMAX, 64).
_SIGNAL_EXIT_MIN, _SIGNAL_EXIT_MAX = 129, 128 + 64


def judge(
    cell: Cell, outcome: RunOutcome, *, host: str, run_id: str, machine: Machine | None = None
) -> Result:
    """One rule set for every executor: exit code and result JSON must agree.

    A crash, a kill or unreadable JSON is an error, never a pass; a timeout is its own
    status; a repro that exits 0 but writes "regressed" (or vice versa) is an error too,
    because one of the two is lying. Git pins are recorded with the full commit their
    environment resolved them to, and the record with the machine it was made on.
    """
    finished = datetime.now(UTC)
    read = _read(outcome.result_json) if outcome.harness_error is None else _UNREAD
    status, reason, payload = _verdict(outcome, read, timeout_s=cell.timeout_s)
    provenance: dict[str, Any] = dict(payload.provenance) if payload is not None else {}
    # A name of its own: `--repeat` runs of one cell in two slots can share every time to
    # the millisecond, and the store must not take one for a copy of the other.
    provenance["harness"] = {**dict(outcome.harness), "record": os.urandom(6).hex()}
    cut = metrics_left_out(read.doc) if payload is not None else ""
    if cut:
        provenance["harness"]["cut"] = cut
    commits = {p.library: p.rev for p in cell.pins if full_commit(p.rev) is not None}
    commits.update(pin_commits(provenance, (p.library for p in cell.pins)))
    fingerprint = ""
    if status is Status.REGRESSED and payload is not None:
        # The repro's own words first (blank ones say nothing); else the checks its
        # numbers failed.
        own = payload.fingerprint if payload.fingerprint.strip() else ""
        # One marker, the same for every cut, so two long fingerprints whose ends agree
        # stay one failure.
        own = cut_ends(own, MAX_FINGERPRINT_CHARS, marker=" […] ")
        fingerprint = own or fingerprint_of(payload.metrics, payload.thresholds)
    return Result.for_cell(
        cell,
        commits=commits,
        machine=machine or NO_MACHINE,
        status=status,
        reason=reason,
        metrics=payload.metrics if payload is not None else {},
        thresholds=payload.thresholds if payload is not None else {},
        provenance=provenance,
        exit_code=outcome.exit_code,
        duration_s=round(outcome.duration_s, 3),
        started=outcome.started.isoformat(timespec="milliseconds"),
        finished=finished.isoformat(timespec="milliseconds"),
        host=host,
        run_id=run_id,
        executor=outcome.executor,
        base_fingerprint=outcome.base_fingerprint,
        stdout_tail=outcome.stdout_tail,
        stderr_tail=outcome.stderr_tail,
        fingerprint=fingerprint,
    )


_Judged = tuple[Status, str, ReproResult | None]


def _verdict(outcome: RunOutcome, read: _Read, *, timeout_s: float) -> _Judged:  # noqa: PLR0911 -- the protocol's rules, one return each, in the order they apply
    if outcome.harness_error is not None:
        return Status.ERROR, outcome.harness_error, None
    payload, problem = read.payload, read.problem
    code = outcome.exit_code
    if outcome.timed_out:
        # Keep whatever partial numbers a repro managed to write before the limit.
        return (
            Status.TIMEOUT,
            f"timed out: killed at the {timeout_s:g} s limit{_last_line(outcome)}",
            payload,
        )
    if outcome.cancelled:
        return Status.ERROR, "cancelled (Ctrl-C) before it finished", payload
    if code is None:
        worker = outcome.harness.get("worker")
        retired = worker.get("retired") if isinstance(worker, dict) else None
        return Status.ERROR, str(retired or "the repro did not report an exit code"), payload
    if code < 0 or _SIGNAL_EXIT_MIN <= code <= _SIGNAL_EXIT_MAX:
        # Negative: Python's word for a signal; 128 + n: a shell's or the Docker engine's.
        sig = -code if code < 0 else code - 128
        oom = " (out of memory: its container's limit)" if outcome.harness.get(OOM_KILLED) else ""
        return Status.ERROR, f"crashed: killed by signal {sig}{oom}{_last_line(outcome)}", payload
    if code >= 128:  # 128 itself, or past the last signal (255: exit(-1), a fatal launcher)
        return Status.ERROR, f"crashed: exited {code}{_last_line(outcome)}", payload
    expected = Status.from_exit_code(code)
    if payload is None:
        if code == EXIT_UNTESTABLE and problem == _NO_JSON:
            # `sys.exit(125)` where a library is missing: no verdict on the regression, and
            # `git bisect run` skips it; no crash, nor `sys.exit("msg")`, exits 125. It was
            # an error, and a bisection sent it to --retry-errors. A file that is there but
            # unreadable stays an error below: the repro's bug.
            why = _last_line(outcome).removeprefix(_LAST)
            return Status.UNTESTABLE, why or _BARE_125, None
        if code in (EXIT_PASSED, EXIT_REGRESSED):
            # `sys.exit("no GPU here")` exits 1 with its message on stderr only: the last
            # line says why, where the reason alone read as a repro that lost its JSON.
            return (
                Status.ERROR,
                f"exited {code} but {problem}; a verdict without its result JSON is not "
                f"trusted{_last_line(outcome)}",
                None,
            )
        return (
            Status.ERROR,
            f"exited {code} without a result ({problem}){_last_line(outcome)}",
            None,
        )
    written = payload.status
    reason = " ".join(payload.reason.split())
    if expected is Status.ERROR:
        return Status.ERROR, f"exited {code}: {reason or 'no reason given'}", payload
    if written != expected.value:
        # The repro's own words too: a repro that wrote "error" and why, then exited 1 for
        # any failure, was recorded without the why.
        why = f": {reason}" if reason else ""
        return (
            Status.ERROR,
            f"exit code {code} ({expected.value}) disagrees with result JSON status "
            f"{written!r}{why}",
            payload,
        )
    return expected, reason or expected.value, payload


def read_result_json(path: Path | None) -> tuple[ReproResult | None, str]:
    """Parse and validate a repro's result file; (None, why) when unusable."""
    read = _read(path)
    return read.payload, read.problem


@dataclass(frozen=True)
class _Read:
    """A result file as read once: its validated payload (None, and why, when unusable)
    and Python's parse of it (None where there is none), which the checks after the
    verdict share. Each parse of a 60 MB file cost seconds: it was read twice and
    parsed three times per cell, then twice (pydantic's, then Python's)."""

    payload: ReproResult | None
    problem: str
    doc: Any = None


_UNREAD = _Read(None, "")


def _read(path: Path | None) -> _Read:
    text = _result_bytes(path)
    if isinstance(text, str):
        return _Read(None, text)
    refused = _refused_unread(text)
    if refused:
        return _Read(None, f"wrote result JSON that {refused}")
    read = _parsed_once(text)
    return read if read is not None else _parsed_twice(text)


def _parsed_once(text: bytes) -> _Read | None:
    """`text` read with one parse, Python's, its payload validated from that parse; None
    where this could read it otherwise than `_parsed_twice`, which then reads it: an
    integer of 30 digits or more (pydantic reads it exactly, `parse_json` as a float),
    text that is no UTF-8 or no JSON, nesting too deep for Python's parser, a payload
    that is invalid (its words are those of pydantic's own JSON parse). What is left,
    pydantic reads alike from the text and from Python's parse of it (`_parsed_twice`
    too: where its own parser refuses the text, a lone surrogate, nesting past 200
    levels, it validates `parse_json`'s parse) (tests/unit/test_judge_one_parse.py)."""
    if long_digits(text):
        return None
    try:
        doc = json.loads(text.decode("utf-8"))
        payload = ReproResult.model_validate(doc)
    except (ValueError, RecursionError):  # ValidationError and UnicodeDecodeError too
        return None
    return _keys_once(text, doc, payload)


def _parsed_twice(text: bytes) -> _Read:
    """`text` validated by pydantic's JSON parse (its words for what is invalid), then
    parsed by `parse_json` for the checks that need Python's parse."""
    try:
        payload = ReproResult.parse(text)
    except ValidationError as exc:
        return _Read(None, f"wrote result JSON that {_invalid(exc)}")
    except (ValueError, RecursionError) as exc:
        return _Read(None, f"wrote result JSON that does not parse ({excerpt(str(exc), 200)})")
    # A byte that is no UTF-8 is read as U+FFFD, as the parse above reads it.
    decoded = text.decode("utf-8", "replace")
    try:
        # As the result was read: integers of any length (a 5,000-digit one is no
        # ValueError), nesting of any depth.
        doc = parse_json(decoded)
    except (ValueError, RecursionError):
        # What pydantic took and Python's parser cannot: neither check below can judge
        # it (the exact key check would fail in the same parser and say nothing).
        return _Read(payload, "")
    return _keys_once(decoded.encode(), doc, payload)


def _keys_once(text: bytes, doc: Any, payload: ReproResult) -> _Read:
    """`payload`, unless an object of `text` (whose parse is `doc`) gives a key twice."""
    # Parsers keep the last of a key given twice: `"status": "passed", …, "status":
    # "regressed"` read as regressed, the value a reader of the file least expects. Given
    # the parse, a file without one is told by a count of its `":`, not parsed again.
    twice = repeated_key(text, doc)
    if twice is not None:
        return _Read(
            None,
            (
                f"wrote result JSON that gives the key {quoted(twice, 60)} twice in one object "
                "(write each key once: which one counts is anyone's guess)"
            ),
        )
    return _Read(payload, "", doc)


#: How UTF-16 and UTF-32 text starts: a byte-order mark (PowerShell's `>`, Python's
#: encoding='utf-16'), or `{` and a NUL without one (a file of NULs, a crash's, is no such).
_WIDE = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_BE, b"{\x00", b"\x00{")


def _refused_unread(text: bytes) -> str:
    """Why `text` is refused before it is parsed (too large; not UTF-8 at its first bytes),
    said with the fix; "" when nothing. Python's own parser says only "expected value at
    line 1 column 1" of the encodings, and "does not parse" sent the author of a 65 MiB
    file looking for a syntax error."""
    if len(text) > MAX_RESULT_JSON_BYTES:
        return (
            f"is larger than {MAX_RESULT_JSON_BYTES >> 20} MiB, the most a result JSON may "
            "hold (write bulky data to files of its own)"
        )
    if text.startswith(codecs.BOM_UTF8):
        return (
            "starts with a UTF-8 byte-order mark (write it with encoding='utf-8', not 'utf-8-sig')"
        )
    if text.startswith(_WIDE):
        return "is UTF-16 or UTF-32 text (write it with encoding='utf-8')"
    return ""


def _result_bytes(path: Path | None) -> bytes | str:
    """The result file's bytes (bounded: ReproResult.parse refuses what is larger), or
    why there are none. Never through a link (it could name any file of the host, which
    would become the verdict) and never waiting on a FIFO."""
    if path is None or not os.path.lexists(path):
        return _NO_JSON
    try:
        with proc.open_regular(path) as f:
            if f is None:
                return "left something other than a file where its result JSON goes"
            return f.read(min(os.fstat(f.fileno()).st_size, MAX_RESULT_JSON_BYTES) + 1)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "left a link where its result JSON goes (links are not followed)"
        return f"wrote a result JSON that cannot be read ({exc.strerror})"


def metrics_left_out(doc: Any) -> str:
    """Of `doc`, the result JSON as `bounds.parse_json` read it: what the record's
    metrics and thresholds leave out of the result JSON's, said (one that is no number,
    those past `bounds.MAX_METRICS`), and those it keeps as null for not being finite
    (NaN, inf, a 400-digit integer): "" when nothing. A record that silently held 1,000 of
    200,000 metrics, or none of the ones written as text, looked complete (those of a file
    over 4 MiB, once not read again, still did: read whatever its size); so did one whose
    threshold, written as text, the report then lacked."""
    if not isinstance(doc, dict):
        return ""
    said = [_numbers_left_out(kind, doc.get(kind)) for kind in ("metrics", "thresholds")]
    return "; ".join(s for s in [*said, _misspelt(doc)] if s)


def _misspelt(doc: dict[str, Any]) -> str:
    """Keys of the result JSON not read that look like a misspelt one of the protocol's
    (`"metric": {...}`): said, where the record looked as if the repro measured nothing."""
    known = {f.alias or name for name, f in ReproResult.model_fields.items()}
    notes = []
    for key in (k for k in doc if k not in known):
        close = difflib.get_close_matches(key.lower(), sorted(known), n=1, cutoff=0.8)
        if close and close[0] not in doc:
            notes.append(f"{quoted(key, 40)} (did you mean {quoted(close[0])}?)")
    return f"keys not read: {', '.join(notes[:5])}" if notes else ""


def _numbers_left_out(kind: str, numbers: Any) -> str:
    if not isinstance(numbers, dict):
        return ""
    numeric = (int, float)
    # A name of only blanks ("") is none: left out (`ReproResult`), and said, where it was
    # stored as a metric named "" that no report could head.
    nameless = sum(1 for k in numbers if not str(k).strip())
    named = {k: v for k, v in numbers.items() if str(k).strip()}
    # true/false are no numbers, though Python's bool is an int: left out, and said.
    odd = [
        str(k)
        for k, v in named.items()
        if v is not None and (isinstance(v, bool) or not isinstance(v, numeric))
    ]
    # NaN, ±inf and integers past a float's range are kept, as null: a repro's "inf" error
    # read as "no value" without a word looked like a metric it never wrote.
    nulled = [
        str(k)
        for k, v in named.items()
        if isinstance(v, numeric) and not isinstance(v, bool) and finite_or_none(v) is None
    ]
    over = len(named) - len(odd) - MAX_METRICS
    notes = [f'{nameless} without a name ("")'] if nameless else []
    if odd:
        notes.append(f"{len(odd)} not numbers ({excerpt(', '.join(odd[:5]), 120)})")
    if over > 0:
        notes.append(f"{over:,} past the first {MAX_METRICS:,}")
    said = [f"{kind} left out: {'; '.join(notes)}"] if notes else []
    if nulled:
        names = excerpt(", ".join(nulled[:5]), 120)
        said.append(f"{kind} kept as null: {len(nulled)} not finite ({names})")
    return "; ".join(said)


def _invalid(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = excerpt(".".join(str(p) for p in err["loc"]), 100)
    value = quoted(err.get("input"), 60)
    if err["type"] == "json_invalid":
        return f"does not parse ({excerpt(err['msg'], 200)})"
    if not loc:
        return "is not an object"
    if err["type"] == "missing":
        return f"lacks the key '{loc}'"
    if loc == "schema":
        return f"has schema {value} (expected {PROTOCOL_SCHEMA})"
    if loc == "status":
        shown = "null" if err.get("input") is None else value  # as JSON writes it
        return f"has an unknown status {shown} ({_statuses_hint(err.get('input'))})"
    return f"is invalid at '{loc}': {excerpt(err['msg'], 200)}"


#: Other tools' words for the protocol's statuses (pytest's, CI's), said as the one meant.
_STATUS_WORDS = {
    **dict.fromkeys(("ok", "pass", "success", "succeeded", "good", "fine"), "passed"),
    **dict.fromkeys(("fail", "failed", "failure", "bad", "regression"), "regressed"),
    **dict.fromkeys(("skip", "skipped", "unsupported", "xfail", "xfailed"), "untestable"),
    **dict.fromkeys(("crash", "crashed", "errored", "exception", "broken"), "error"),
}


def _statuses_hint(status: Any) -> str:
    """The protocol's statuses, and the one a miscased, misspelt or other tool's word
    meant: "has an unknown status 'Passed'" alone sent its author to the docs for a
    capital letter, and 'passed\\n' was shown as 'passed', unknown without a word why."""
    statuses = get_args(ReproStatus)
    known = f"a status is one of {', '.join(statuses)}"
    word = status.strip().lower() if isinstance(status, str) else ""
    close = difflib.get_close_matches(word, statuses, n=1, cutoff=0.75)
    meant = _STATUS_WORDS.get(word) or (close[0] if close else "")
    if not meant:
        return known
    blanks = " (no blanks around it)" if status != status.strip() else ""
    return f"did you mean {quoted(meant)}{blanks}? {known}"


_NO_JSON = "wrote no result JSON"
_LAST = "; last output: "
_BARE_125 = "exited 125 (cannot be tested here) without a result JSON or a line saying why"


def _last_line(outcome: RunOutcome) -> str:
    for text in (outcome.stderr_tail, outcome.stdout_tail):
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if lines:
            return f"{_LAST}{lines[-1][:200]}"
    return ""
