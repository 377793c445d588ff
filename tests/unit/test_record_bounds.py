"""What a repro writes is bounded at the edge; any stored line can be loaded or skipped."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
from cells import CELL, outcome
from rich.console import Console

from repromatrix import bounds, redact
from repromatrix.cli import main
from repromatrix.executors.judge import judge
from repromatrix.model import EXIT_REGRESSED, Status
from repromatrix.progress import PlainReporter, RichReporter, result_line
from repromatrix.records import Result
from repromatrix.report import write_report
from repromatrix.store import ResultStore


def judged(tmp_path: Path, raw: str, *, code: int = 0, stdout: str = "") -> Result:
    path = tmp_path / "result.json"
    path.write_text(raw, encoding="utf-8", errors="surrogatepass")
    return judge(CELL, outcome(path, code=code, stdout_tail=stdout), host="h", run_id="run")


def payload(**fields: Any) -> str:
    doc = {"schema": 1, "repro": "r", "status": "passed", "reason": "ok", **fields}
    return json.dumps(doc)


def writable(record: Result) -> dict[str, Any]:
    """The record as the store writes it (strict JSON), read back."""
    return json.loads(json.dumps(record.record(), allow_nan=False))  # type: ignore[no-any-return]


def test_a_20_mb_reason_with_escapes_becomes_one_bounded_line(tmp_path: Path) -> None:
    reason = "\x1b]52;c;ZXZpbA==\x07start\n" + "x" * 20_000_000 + "\r\nthe end"
    record = judged(tmp_path, payload(reason=reason))
    assert record.status is Status.PASSED
    assert len(record.reason) == bounds.MAX_REASON_CHARS
    assert record.reason.startswith("start x")
    assert record.reason.endswith("x the end")
    assert "characters cut by repromatrix" in record.reason
    assert record.reason.isprintable()


@pytest.mark.parametrize("filler", ["x", "x ", "  x", "é ", "\t x"])
def test_a_bounded_reason_bounded_again_is_unchanged(filler: str) -> None:
    """A stored record read back must say what it said: the judge bounds a repro's reason,
    then prefixes it and bounds it again, and loading bounds it a third time."""
    for n in (bounds.MAX_REASON_CHARS - 5, bounds.MAX_REASON_CHARS + 7, 50_000):
        once = bounds.bound_reason(filler * n)
        twice = bounds.bound_reason("exited 2: " + once)
        assert bounds.bound_reason(once) == once
        assert bounds.bound_reason(twice) == twice
        assert len(twice) <= bounds.MAX_REASON_CHARS


def test_a_400_digit_metric_and_overflowing_floats_are_none(tmp_path: Path) -> None:
    raw = payload(metrics={"ok": 1.5}).replace(
        '"ok": 1.5', '"ok": 1.5, "huge": ' + "9" * 400 + ', "inf": 1e400, "neg": -1e999'
    )
    record = judged(tmp_path, raw)
    assert record.status is Status.PASSED
    assert dict(record.metrics) == {"ok": 1.5, "huge": None, "inf": None, "neg": None}


def test_a_5000_digit_metric_is_read_again_rather_than_losing_the_cell(tmp_path: Path) -> None:
    raw = payload(metrics={"ok": 1.5}).replace('"ok": 1.5', '"ok": 1.5, "huge": 1' + "0" * 5000)
    record = judged(tmp_path, raw)
    assert record.status is Status.PASSED, record.reason
    assert dict(record.metrics) == {"ok": 1.5, "huge": None}


def test_metric_names_and_counts_are_bounded(tmp_path: Path) -> None:
    metrics = {f"m{i}": float(i) for i in range(5000)}
    metrics["n" * 10_000] = 1.0
    record = judged(tmp_path, payload(metrics=metrics))
    assert len(record.metrics) == bounds.MAX_METRICS
    assert max(len(name) for name in record.metrics) <= bounds.MAX_METRIC_NAME_CHARS
    long = judged(tmp_path, payload(metrics={"\x1b[2J" + "n" * 10_000: 2.0}))
    (name,) = long.metrics
    assert len(name) == bounds.MAX_METRIC_NAME_CHARS
    assert name.isprintable()


@pytest.mark.parametrize(
    "names",
    [
        ["a" * 150 + "X" + "b" * 150, "a" * 150 + "Y" + "b" * 150],  # differ in the middle
        ["a\x1b[2Jb", "ab", "a\x07b"],  # differ in what is not printable
    ],
    ids=["long", "unprintable"],
)
def test_metric_names_that_differ_only_where_they_are_cut_stay_apart(
    tmp_path: Path, names: list[str]
) -> None:
    """Two names of 301 characters that differ in the middle were cut to one name, and
    the second metric's value was lost (and a threshold could be paired with the wrong
    metric); names that differ only by a control character were merged alike."""
    metrics = {name: float(i) for i, name in enumerate(names)}
    record = judged(tmp_path, payload(metrics=metrics, thresholds=metrics))
    assert sorted(v or 0.0 for v in record.metrics.values()) == sorted(metrics.values())
    assert record.thresholds == record.metrics  # each threshold keeps its metric's name
    assert all(len(n) <= bounds.MAX_METRIC_NAME_CHARS and n.isprintable() for n in record.metrics)
    again = Result.model_validate(record.record(), context={"stored": True})
    assert again.metrics == record.metrics  # bounding a bounded name changes nothing
    ResultStore(tmp_path / "res").append(record)
    (loaded,) = ResultStore(tmp_path / "res").load().results
    assert loaded.metrics == record.metrics


@pytest.mark.parametrize(
    "name",
    ["attn." + "x" * 250 + ".rel_err", "attn\x07.rel_err"],
    ids=["long", "unprintable"],
)
def test_a_cut_metric_name_is_still_bounded_by_its_max_threshold(tmp_path: Path, name: str) -> None:
    """A hash ended the last dotted part of a cut name (`rel_err~ab16a392c91b`), so
    `max_rel_err` no longer bounded it: a regressed cell's metric 0.5 over 0.01 was in no
    failed check (an empty fingerprint) where a name of 200 characters is."""
    raw = payload(status="regressed", metrics={name: 0.5}, thresholds={"max_rel_err": 0.01})
    record = judged(tmp_path, raw, code=EXIT_REGRESSED)
    assert record.status is Status.REGRESSED
    (bounded,) = record.metrics
    assert record.fingerprint == bounded
    assert bounded.split(".")[-1] == "rel_err"


def _nested(levels: int) -> str:
    return '{"d": ' * levels + "1" + "}" * levels


@pytest.mark.parametrize("levels", [50, 1_000, 100_000])
def test_deep_provenance_is_cut_with_a_marker_not_rejected(tmp_path: Path, levels: int) -> None:
    raw = payload(provenance={"x": "MARK"}).replace('"MARK"', _nested(levels))
    record = judged(tmp_path, raw)
    assert record.status is Status.PASSED, record.reason
    text = json.dumps(writable(record)["provenance"])
    assert "[cut by repromatrix: nested deeper than 16 levels]" in text
    depth, node = 0, record.provenance["x"]
    while isinstance(node, dict):
        depth, node = depth + 1, node["d"]
    assert depth <= bounds.MAX_DEPTH


def test_wide_and_long_provenance_is_cut_with_markers(tmp_path: Path) -> None:
    provenance = {
        "many": list(range(10_000)),
        "long": "y" * 1_000_000,
        "keys": {f"k{i}": i for i in range(2_000)},
        "nan": math.nan,
        "big": 10**400,
    }
    record = judged(tmp_path, payload(provenance=provenance))  # NaN: Python's JSON token
    stored = writable(record)["provenance"]
    assert len(stored["many"]) == bounds.MAX_ITEMS
    assert stored["many"][-1] == "[cut by repromatrix: 9501 more of 10000 entries]"
    assert len(stored["long"]) <= bounds.MAX_STRING_CHARS
    assert stored["keys"]["…"].startswith("[cut by repromatrix:")
    assert stored["nan"] == "nan"
    assert len(json.dumps(stored)) < 2 * bounds.MAX_PROVENANCE_CHARS


def test_provenance_keys_that_differ_only_where_they_are_cut_stay_apart(
    tmp_path: Path,
) -> None:
    """Two provenance keys of 300 characters that differ in the middle were cut to one
    key, and the second entry was lost in silence."""
    keys = ["env." + "a" * 150 + x + "b" * 150 for x in "XY"]
    record = judged(tmp_path, payload(provenance={"vars": {k: k[154] for k in keys}}))
    kept = record.provenance["vars"]
    assert sorted(kept.values()) == ["X", "Y"]
    assert all(len(k) <= bounds.MAX_KEY_CHARS for k in kept)
    again = Result.model_validate(record.record())  # bounded again, as made here
    assert again.provenance["vars"] == kept


def test_provenance_of_the_wrong_type_is_an_error_record(tmp_path: Path) -> None:
    record = judged(tmp_path, payload(provenance="oops"))
    assert record.status is Status.ERROR
    assert "is invalid at 'provenance'" in record.reason


def test_a_result_json_over_64_mib_is_an_error_record(tmp_path: Path) -> None:
    record = judged(tmp_path, payload(reason="z" * (65 * 2**20)))
    assert record.status is Status.ERROR
    # Said as what it is: it read "wrote result JSON that does not parse (is larger than
    # ...)", sending its author to look for a syntax error in 65 MiB of JSON.
    assert record.reason.startswith(
        "exited 0 but wrote result JSON that is larger than 64 MiB, the most a result JSON "
        "may hold (write bulky data to files of its own);"
    ), record.reason


def test_tails_keep_their_end_without_escape_sequences(tmp_path: Path) -> None:
    record = judged(tmp_path, payload(), stdout="\x1b[31m" + "o" * 100_000 + "\nlast line\n")
    assert len(record.stdout_tail) < bounds.MAX_TAIL_CHARS + 100
    assert record.stdout_tail.endswith("last line\n")
    assert "\x1b" not in record.stdout_tail


def test_a_record_with_everything_oversized_makes_a_normal_report(tmp_path: Path) -> None:
    raw = payload(
        reason="r" * 1_000_000,
        metrics={f"m{i}": i for i in range(3000)},
        provenance={"deep": "MARK"},
    ).replace('"MARK"', _nested(5000))
    record = judged(tmp_path, raw, stdout="s" * 1_000_000)
    store = ResultStore(tmp_path / "results", host="h")
    store.append(record)
    (loaded,) = store.load().results
    paths = write_report(results=[loaded], out_dir=tmp_path / "report")
    assert all(path.stat().st_size < 2_000_000 for path in paths.values())


# -- stored lines -----------------------------------------------------------------------

GOOD_LINE = {
    "schema": 3,
    "key": "k1",
    "cell_id": "r[cpu,host]",
    "repro": "r",
    "base": "host",
    "gpu": "cpu",
    "status": "passed",
    "reason": "fine",
    "finished": "2026-01-01T00:00:00+00:00",
}


def line(**fields: Any) -> str:
    return json.dumps({**GOOD_LINE, **fields})


def test_store_loading_skips_and_reports_every_bad_line(tmp_path: Path) -> None:
    lines = [
        line(),
        line(key="deep").replace('"reason": "fine"', '"reason": "fine", "provenance": DEEP'),
        line(exit_code=0).replace('"exit_code": 0', '"exit_code": ' + "9" * 400),
        line(exit_code="3"),
        line(duration_s=0).replace('"duration_s": 0', '"duration_s": 1e400'),
        line(duration_s=0).replace('"duration_s": 0', '"duration_s": ' + "9" * 400),
        line(schema=0).replace('"schema": 0', '"schema": ' + "9" * 400),
        '{"schema": 3, "key": "\x1b]52;c;ZXZpbA==\x07"',
        "not json at all",
        line(key="last"),
    ]
    lines[1] = lines[1].replace("DEEP", "[" * 100_000 + "]" * 100_000)
    path = tmp_path / "h.jsonl"
    path.write_text("\n".join(lines) + "\n")
    loaded = ResultStore(path).load()
    # A duration that is no number of seconds costs its record nothing but a note.
    assert [r.key for r in loaded.results] == ["k1", "k1", "k1", "last"]
    assert [p.line for p in loaded.problems] == [2, 3, 4, 5, 6, 7, 8, 9]
    assert [p.line for p in loaded.problems if not p.left_out] == [5, 6]
    for problem in loaded.problems:
        shown = str(problem)
        said = "duration_s is " if problem.line in (5, 6) else "unreadable record ("
        assert shown.startswith(f"{path}:{problem.line}: {said}")
        assert shown.isprintable()
        assert len(shown) < 400


def test_the_report_command_warns_about_bad_lines_and_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:

    results = tmp_path / "results"
    results.mkdir()
    (results / "h.jsonl").write_text(
        "\n".join([line(), line(exit_code="3"), "[" * 100_000 + "]" * 100_000]) + "\n"
    )
    code = main(
        ["--matrix", str(tmp_path / "none.yaml"), "report", "--results", str(results),
         "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 3, err  # the report is written; the line it left out is no pass
    warnings = [ln for ln in err.splitlines() if ": warning: " in ln and "--matrix" not in ln]
    assert len(warnings) == 2
    assert "internal error" not in err


# -- the terminal -------------------------------------------------------------------------


def hostile() -> Result:
    return Result(
        key="k",
        cell_id="r[cpu,host,lib=\x1b]8;;http://evil\x07x\x1b]8;;\x07]",
        repro="r",
        base="host",
        gpu="cpu",
        status=Status.REGRESSED,
        reason="\x1b]52;c;ZXZpbA==\x07\x1b[2J\x9b31mred\rover\nnext \u202egnp.exe",
    )


def test_progress_lines_carry_no_escape_sequence_from_a_repro() -> None:
    for reporter_type in (PlainReporter, RichReporter):
        out = io.StringIO()
        console = Console(file=out, force_terminal=True, width=300, color_system="standard")
        reporter = reporter_type(console)
        reporter.start(1)
        reporter.finished(hostile())
        reporter.note("\x1b]0;title\x07 note")
        reporter.stop()
        text = out.getvalue()
        # (rich's own bar moves the cursor with \r and CSI codes; none of these is its)
        for sequence in ("\x1b]52", "\x1b]8", "\x1b[2J", "\x9b", "\x1b]0", "\u202e", "\rover"):
            assert sequence not in text, (reporter_type, sequence)
    plain = result_line(hostile()).plain
    assert plain.isprintable()
    assert "red" in plain


def test_every_text_column_of_the_csv_is_neutralized(tmp_path: Path) -> None:
    """Records read back may hold anything (another host wrote them): no text cell of the
    CSV may start like a formula, whichever column it is in."""
    import csv

    from repromatrix.report.table import FORMULA_START
    from repromatrix.store import decode

    formula = "=1+1"
    names = "key cell_id repro base image gpu reason started finished host run_id executor"
    fields = dict.fromkeys([*names.split(), "base_fingerprint"], formula)
    stored = decode(
        json.dumps(
            {
                **GOOD_LINE,
                **fields,
                "pins": {"lib": "@lib"},
                "commits": {"lib": "-" + "a" * 39},
                "machine": {"id": "+m", "gpus": [{"name": "=g", "uuid": "-u"}], "driver": "@d"},
            }
        )
    )
    paths = write_report(results=[stored], out_dir=tmp_path)
    with paths["csv"].open(newline="") as f:
        (row,) = list(csv.DictReader(f))
    texts = {name: value for name, value in row.items() if value}
    assert texts["reason"] == "'" + formula
    assert texts["lib.lib"].startswith("'@lib")
    risky = {name: value for name, value in texts.items() if value.startswith(FORMULA_START)}
    assert risky == {}


def test_an_internal_error_is_one_bounded_line_without_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug's exception may quote anything (a record, a whole file): the user still gets
    one short line, with the session's secrets masked, and exit 70."""
    secret = "hf_" + "s3cr3t" * 4

    def broken(args: object) -> int:
        raise RuntimeError("quoted:\n" + "x" * 1_000_000 + f" {secret} \x1b[2J")

    monkeypatch.setattr("repromatrix.cli._dispatch", broken)
    monkeypatch.setenv("HF_TOKEN", secret)
    redact.remember({"HF_TOKEN": secret})
    code = main(["--matrix", str(tmp_path / "none.yaml"), "list"])
    err = capsys.readouterr().err
    assert code == 70
    assert err.count("\n") == 1
    assert err.startswith("repromatrix: internal error: RuntimeError: quoted: xxx")
    assert len(err) < 450
    assert secret not in err
    assert "\x1b" not in err
