"""A result JSON under the 64 MiB limit whose provenance holds millions of entries (a list
of a repro's per-sample values, a dict per token) is judged in about the memory its parse
takes: what is cut away is neither copied nor redacted first. A 60 MB file of such lists
took 3 minutes and 5.5 GB to judge, where a CI runner's OOM killer ends the whole run."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from cells import CELL, outcome

from repromatrix import bounds, redact
from repromatrix.executors.judge import judge
from repromatrix.model import Status
from repromatrix.repro_result import ReproResult

#: Entries of the wide list: enough that a copy of it shows against the parse's memory.
WIDE = 100_000


def _raw(provenance: str) -> bytes:
    head = '{"schema": 1, "repro": "r", "status": "passed", "reason": "ok", "provenance": '
    return (head + provenance + "}").encode()


def _peak(run: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_provenance_of_millions_of_entries_is_bounded_in_about_its_parses_memory() -> None:
    keys = ", ".join(f'"k{i}": {{}}' for i in range(WIDE))
    raw = _raw('{"l": [' + "[]," * WIDE + '[]], "d": {' + keys + "}}")
    parse_alone = _peak(lambda: json.loads(raw))
    kept: list[ReproResult] = []
    judged = _peak(lambda: kept.append(ReproResult.parse(raw)))
    # The parse itself, and little more: the redacted copy of every entry and the list of
    # all of them made before cutting to 500 each took three times as much.
    assert judged < 1.25 * parse_alone, (judged >> 20, parse_alone >> 20)
    stored = kept[0].provenance
    assert len(stored["l"]) == bounds.MAX_ITEMS
    assert stored["l"][-1] == f"[cut by repromatrix: {WIDE + 1 - 499} more of {WIDE + 1} entries]"
    assert stored["d"]["…"] == f"[cut by repromatrix: {WIDE - 499} more of {WIDE} entries]"


def test_what_is_kept_of_a_wide_provenance_is_still_redacted(tmp_path: Path) -> None:
    """Redaction now happens as entries are kept: a secret in a kept value or key, or a
    text under a credential-named key, is hidden as before, and nothing past the cut."""
    secret = "hf_abcdefghijklmnop"
    provenance = {
        "env": {"HF_TOKEN": "plain", f"k_{secret}": f"v {secret} v", "n_token": 3},
        "many": [f"{i} {secret}" for i in range(1000)],
        "url": "https://user:pw@example.com/x",
    }
    path = tmp_path / "result.json"
    path.write_text(json.dumps({"schema": 1, "status": "passed", "provenance": provenance}))
    redact.remember({"HF_TOKEN": secret})
    try:
        record = judge(CELL, outcome(path), host="h", run_id="run")
    finally:
        redact.forget()
    assert record.status is Status.PASSED
    text = json.dumps(record.provenance)
    assert secret not in text
    assert "pw@" not in text
    env = record.provenance["env"]
    assert env == {"HF_TOKEN": "***", "k_***": "v *** v", "n_token": 3}
    assert record.provenance["many"][:2] == ["0 ***", "1 ***"]
    assert len(record.provenance["many"]) == bounds.MAX_ITEMS
