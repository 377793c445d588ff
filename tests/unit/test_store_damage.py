"""A results store that was damaged, edited by hand or made to mislead: what is read of
it, what is refused (with file:line), and that nothing whole is ever lost."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from recordfactory import result

from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.store import ResultStore
from repromatrix.store_repair import repair


def line_of(r: Result, schema: int | None = None) -> str:
    record = r.record()
    if schema is not None:
        record["schema"] = schema
    return json.dumps(record, sort_keys=True)


@pytest.mark.parametrize("schema", [None, 2], ids=["current", "migrated"])
@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('"status": "passed"', '"status": "passed", "status": "regressed"', "status"),
        ('"status": "passed"', '"status" : "regressed", "status": "passed"', "status"),
        ('"max_abs": 1.0', '"max_abs": 1.0, "max_abs": 9.0', "max_abs"),
    ],
    ids=["last-wins", "spaced", "nested"],
)
def test_a_line_with_a_key_given_twice_is_refused_with_file_and_line(
    tmp_path: Path, schema: int | None, old: str, new: str, key: str
) -> None:
    """A parser keeps the last of two values under one key: a record edited (or made) to
    say "passed" to a reader of the file and "regressed" to repromatrix was half read."""
    good = line_of(result("a"), schema)
    bad = line_of(result("b", max_abs=1.0), schema)
    assert old in bad
    path = tmp_path / "hand.jsonl"
    last = good.replace('"a"', '"c"')
    path.write_text(f"{good}\n{bad.replace(old, new, 1)}\n{last}\n")
    loaded = ResultStore(tmp_path).load()
    assert [r.key for r in loaded.results] == ["a", "c"]
    (problem,) = loaded.problems
    assert str(problem).startswith(f"{path}:2: unreadable record (")
    assert f"'{key}' is given twice" in str(problem)


def test_keys_that_only_look_alike_are_no_duplicates(tmp_path: Path) -> None:
    """Text that holds what a key looks like (`\\":`), a key spelled with an escape, and
    one name at two levels are ordinary records."""
    r = result("a", max_abs=1.0).model_copy(
        update={"reason": 'x": "y\\": ', "provenance": {"status": {"status": 1}, "k\u00e9": 2}}
    )
    path = tmp_path / "ok.jsonl"
    path.write_text(line_of(r).replace("k\u00e9", "k\\u00e9") + "\n")
    loaded = ResultStore(tmp_path).load()
    assert loaded.problems == ()
    assert [x.reason for x in loaded.results] == [r.reason]


def test_a_schema_given_twice_is_refused_not_taken_for_a_newer_one(tmp_path: Path) -> None:
    """`"schema": 3, …, "schema": 9` stopped every load as "newer than this repromatrix"."""
    line = line_of(result("a")).replace('"schema": 3', '"schema": 3, "schema": 9', 1)
    (tmp_path / "hand.jsonl").write_text(line + "\n")
    loaded = ResultStore(tmp_path).load()
    assert loaded.results == ()
    (problem,) = loaded.problems
    assert "'schema' is given twice" in str(problem)


@pytest.mark.parametrize("kind", ["gone", "loop"])
def test_a_link_that_leads_nowhere_is_never_written_through(tmp_path: Path, kind: str) -> None:
    """The store's own file as a link to nothing was warned about as "ignored", and then
    the run's records went where it pointed (a file made elsewhere, or exit 8 saying "No
    such file or directory" of a file the user could see)."""
    from repromatrix.errors import StoreError

    store = ResultStore(tmp_path / "res", host="h1")
    store.root.mkdir()
    target = tmp_path / "elsewhere" / "h1.jsonl" if kind == "gone" else store.path
    target.parent.mkdir(exist_ok=True)
    store.path.symlink_to(target)
    with pytest.raises(StoreError) as caught:
        store.check_writable()
    message = str(caught.value)
    assert message.startswith(f"--results {store.root}: cannot append records to h1.jsonl (a link")
    assert "remove the link" in message
    with pytest.raises(OSError, match=r"File exists|Too many levels of symbolic links"):
        store.append(result("a"))
    assert not target.exists() or target.is_symlink()
    assert store.path.is_symlink()


@pytest.mark.parametrize(
    ("kind", "said"), [("folder", "a folder"), ("fifo", "a FIFO (named pipe)")]
)
def test_a_results_file_that_is_no_file_is_named_for_what_it_is(
    tmp_path: Path, kind: str, said: str
) -> None:
    """A folder, or a FIFO with no reader, where the run appends its records: the run said
    "(Is a directory)" or "(No such device or address)" and "pass a writable results
    folder" of a folder that was writable; it is what stands in the file's place that
    has to go."""
    from repromatrix.errors import StoreError

    store = ResultStore(tmp_path / "res", host="h1")
    store.root.mkdir()
    if kind == "folder":
        store.path.mkdir()
    else:
        os.mkfifo(store.path)
    with pytest.raises(StoreError) as caught:
        store.check_writable()
    assert str(caught.value) == (
        f"--results {store.root}: cannot append records to h1.jsonl ({said}, not a file of "
        "records); move it away (a run then makes the file), or pass another results folder"
    )


def test_a_link_to_a_results_file_is_read_and_appended_to_alike(tmp_path: Path) -> None:
    """A link to a file that exists is read (a shared file), so a run appends there too."""
    shared = ResultStore(tmp_path / "shared", host="h1")
    shared.append(result("a"))
    store = ResultStore(tmp_path / "res", host="h1")
    store.root.mkdir()
    store.path.symlink_to(shared.path)
    store.check_writable()
    store.append(result("b"))
    assert [r.key for r in shared.load().results] == ["a", "b"]
    assert [r.key for r in store.load().results] == ["a", "b"]


def test_a_record_cut_by_a_killed_run_is_set_aside_once_and_nothing_whole_is_lost(
    tmp_path: Path,
) -> None:
    """`kill -9` in the middle of a write left a cut line that the next append closed off
    with a newline: from then on every command warned of an "unreadable record" at that
    line, for ever. The next run sets the cut bytes aside, once, and says where."""
    store = ResultStore(tmp_path, host="h1")
    store.append_many([result("a"), result("b")])
    cut = line_of(result("c")).encode()[:300]
    with store.path.open("ab") as f:  # what a write cut short leaves
        f.write(cut)
    (set_aside,) = repair(store).notes
    torn = tmp_path / "h1.jsonl.torn"
    assert str(set_aside) == (
        f"{store.path}:3: a record cut short by a killed run (300 bytes) was moved to "
        f"{torn.name}; every whole record is kept"
    )
    assert torn.read_bytes() == cut + b"\n"  # kept, where no load reads it
    assert repair(store).notes == ()  # once
    store.append(result("d"))
    loaded = store.load()
    assert [r.key for r in loaded.results] == ["a", "b", "d"]
    assert loaded.problems == ()


def test_a_whole_last_record_without_its_newline_is_kept_where_it_is(tmp_path: Path) -> None:
    store = ResultStore(tmp_path, host="h1")
    store.append(result("a"))
    with store.path.open("ab") as f:
        f.write(line_of(result("b")).encode())  # cut just before its newline
    assert repair(store).notes == ()
    store.append(result("c"))
    assert [r.key for r in store.load().results] == ["a", "b", "c"]
    assert not (tmp_path / "h1.jsonl.torn").exists()


def test_a_file_that_is_one_cut_line_loses_nothing_whole(tmp_path: Path) -> None:
    store = ResultStore(tmp_path, host="h1")
    store.path.write_bytes(b"\0" * 200_000)  # a crash left the file full of NUL bytes
    (problem,) = repair(store).notes
    assert problem.line == 1
    assert store.path.read_bytes() == b""
    assert (tmp_path / "h1.jsonl.torn").stat().st_size == 200_001


@pytest.mark.parametrize("kind", ["loop", "gone"])
def test_a_results_folder_that_is_a_link_to_nothing_is_named_as_such(
    tmp_path: Path, kind: str
) -> None:
    """`run --results R` with R a link loop (or a link to a folder that is gone) said
    "cannot use it for results (File exists)"."""
    from repromatrix.errors import OutputError
    from repromatrix.locks import results_lock

    root = tmp_path / "results"
    root.symlink_to(root if kind == "loop" else tmp_path / "gone" / "results")
    what = "a loop" if kind == "loop" else "its target is gone"
    with pytest.raises(OutputError) as caught, results_lock(root):
        pass
    assert str(caught.value) == (
        f"--results {root}: a link that leads nowhere ({what}); pass a results folder, or "
        "make the folder the link points to"
    )
    assert not (tmp_path / "gone").exists()


def test_a_line_that_is_not_utf8_is_named_with_its_fix_and_costs_only_itself(
    tmp_path: Path,
) -> None:
    """An unreadable line was said as "…: unreadable record (Invalid JSON: invalid unicode
    code point at line 1 column 740); ignored", with no word of what to do about it."""
    good = line_of(result("a")).encode()
    bad = line_of(result("b")).encode().replace(b'"reason": "', b'"reason": "\xff\xfe', 1)
    path = tmp_path / "h.jsonl"
    path.write_bytes(bad + b"\n" + good + b"\n")
    loaded = ResultStore(tmp_path).load()
    assert [r.key for r in loaded.results] == ["a"]
    (problem,) = loaded.problems
    shown = str(problem)
    assert shown.startswith(f"{path}:1: unreadable record (Invalid JSON: invalid unicode")
    assert shown.endswith("; ignored: correct that line or delete it")


def test_records_dated_in_the_future_are_said_not_reused_in_silence(tmp_path: Path) -> None:
    """A record from a host whose clock ran ahead (finished 2099) stood for its cell, and
    `run` reused it, without a word: nothing said that its time was no time."""
    store = ResultStore(tmp_path, host="h1")
    ahead = result("b").model_copy(update={"finished": "2099-01-01T00:00:00+00:00"})
    store.append_many([result("a"), ahead, ahead.model_copy(update={"key": "c"})])
    loaded = store.load()
    assert [r.key for r in loaded.results] == ["a", "b", "c"]  # kept: nothing is lost
    (problem,) = loaded.problems
    assert str(problem) == (
        f"{store.path}: 2 records finished later than this host's clock says it is now "
        "(the latest at 2099-01-01T00:00:00+00:00: a clock that ran ahead?); each counts "
        "as older than every other record of its cell: correct the clock of the host that "
        "wrote them"
    )


def test_a_whole_record_of_a_newer_schema_is_never_set_aside(tmp_path: Path) -> None:
    """A newer repromatrix's whole last record, lacking only its newline, is a record this
    version cannot read, not a cut one: it stays, and loading says to upgrade."""
    from repromatrix.errors import ResultsError

    store = ResultStore(tmp_path, host="h1")
    store.append(result("a"))
    with store.path.open("ab") as f:
        f.write(line_of(result("b"), schema=9).encode())
    with pytest.raises(ResultsError, match=r"h1\.jsonl:2: record schema 9 is newer"):
        repair(store)  # which reads the records it leaves for the command
    assert not (tmp_path / "h1.jsonl.torn").exists()
    with pytest.raises(ResultsError, match=r"h1\.jsonl:2: record schema 9 is newer"):
        store.load()


def test_a_results_file_another_folder_shares_is_never_cut(tmp_path: Path) -> None:
    """A file that two results folders hold (a link, a hard link) may be written by a run
    on the other folder, which this run's lock does not keep out: its last line may be
    a record being written, so nothing of it is moved or cut."""
    shared = ResultStore(tmp_path / "shared", host="h1")
    shared.append(result("a"))
    with shared.path.open("ab") as f:
        f.write(b'{"schema": 3, "key": "b"')  # another run's write, not finished yet
    before = shared.path.read_bytes()
    for link in ("symlink", "hardlink"):
        store = ResultStore(tmp_path / link, host="h1")
        store.root.mkdir()
        if link == "symlink":
            store.path.symlink_to(shared.path)
        else:
            store.path.hardlink_to(shared.path)
        assert repair(store).notes == ()
        assert shared.path.read_bytes() == before
        assert not (store.root / "h1.jsonl.torn").exists()


def test_a_finished_time_that_is_no_time_is_not_called_a_clock_ahead(tmp_path: Path) -> None:
    store = ResultStore(tmp_path, host="h1")
    store.append(result("a").model_copy(update={"finished": "yesterday"}))
    (problem,) = store.load().problems
    assert str(problem) == (
        f"{store.path}: 1 record gives 'finished' as no time ('yesterday'); it counts as "
        "older than every other record of its cell: write an ISO 8601 time there, as "
        "repromatrix does"
    )


@pytest.mark.parametrize("stamp", ["", "05/12/2026 22:03", "31/12/2026 22:03"])
def test_a_finished_time_that_is_no_time_is_said_whatever_its_text_sorts_as(
    tmp_path: Path, stamp: str
) -> None:
    """Text that is no time sorted as text: "31/12/2026 22:03" (after every year) was said
    and counted as older than the cell's other records, while "05/12/2026 22:03" and ""
    (before every year) were taken in silence, so a record another tool wrote on the 5th
    lost to every harness record of its cell, the report showing the older verdict
    without a word, and on the 31st was said. Each is said now, and counts as older."""
    from repromatrix.records import latest_by_key

    store = ResultStore(tmp_path, host="h1")
    store.append_many([result("a", Status.REGRESSED), result("a", finished=stamp)])
    loaded = store.load()
    assert latest_by_key(loaded.results)["a"].status is Status.REGRESSED
    (problem,) = loaded.problems
    assert str(problem) == (
        f"{store.path}: 1 record gives 'finished' as no time ({stamp!r}); it counts as "
        "older than every other record of its cell: write an ISO 8601 time there, as "
        "repromatrix does"
    )


def test_a_finished_time_without_an_offset_is_said(tmp_path: Path) -> None:
    """ "2026-11-22T03:00:00" (a host that wrote local time, UTC+5) was taken as UTC in
    silence: the record, made 2 hours before the harness's record of 00:00 UTC, replaced
    it as the cell's newest. It is still taken as UTC, and said."""
    from repromatrix.records import latest_by_key

    store = ResultStore(tmp_path, host="h1")
    local = result("a", Status.PASSED, finished="2026-11-22T03:00:00")
    store.append_many([result("a", Status.REGRESSED), local, local])
    loaded = store.load()
    assert latest_by_key(loaded.results)["a"] is loaded.results[-1]
    (problem,) = loaded.problems
    assert str(problem) == (
        f"{store.path}: 2 records give 'finished' without a UTC offset "
        "('2026-11-22T03:00:00'), taken as UTC: a host that wrote local time puts them hours "
        "away from its other records; write the offset there (+00:00), as repromatrix does"
    )


def test_a_lock_file_that_is_no_file_is_named_with_its_fix(tmp_path: Path) -> None:
    """A folder where the run's lock file goes said "--results R: cannot use it for
    results (Is a directory); pass a writable folder" of a folder that was writable."""
    from repromatrix.errors import StoreError
    from repromatrix.locks import LOCK_NAME, results_lock

    (tmp_path / LOCK_NAME).mkdir()
    with pytest.raises(StoreError) as caught, results_lock(tmp_path):
        pass
    assert str(caught.value) == (
        f"--results {tmp_path}: cannot use it for results ({LOCK_NAME}: Is a directory): "
        f"remove {LOCK_NAME} there (runs make it), or pass another folder"
    )


@pytest.mark.parametrize("duration", ["NaN", "1e400", "-Infinity", "1" + "0" * 400, '"5 s"'])
def test_a_duration_that_is_no_number_of_seconds_keeps_its_record_with_a_note(
    tmp_path: Path, duration: str
) -> None:
    """A record whose duration_s was NaN or overflowed (1e400) was left out of every load
    as an "unreadable record", its verdict lost, at exit 0: it is kept, its duration
    unknown (0 s), and the load says so, naming the line."""
    store = ResultStore(tmp_path, host="h1")
    store.append(result("a"))
    text = line_of(result("b", Status.REGRESSED, max_abs=2.0))
    assert '"duration_s": 0.0' in text
    with store.path.open("a") as f:
        f.write(text.replace('"duration_s": 0.0', f'"duration_s": {duration}') + "\n")
    loaded = store.load()
    kept = [(r.key, r.status, r.duration_s, dict(r.metrics)) for r in loaded.results]
    assert kept == [("a", Status.PASSED, 0.0, {}), ("b", Status.REGRESSED, 0.0, {"max_abs": 2.0})]
    (problem,) = loaded.problems
    assert str(problem).startswith(f"{store.path}:2: duration_s is ")
    assert str(problem).endswith(
        ", not a number of seconds; the record is kept with its duration unknown (0 s): "
        "correct that line to keep this note from coming back"
    )
    assert not problem.left_out


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ('{"max_abs": "2.0"}', "metrics.max_abs is '2.0', not a number"),
        ('{"max_abs": [2.0]}', "metrics.max_abs is [2.0], not a number"),
        ("[2.0]", "metrics is [2.0], not an object of numbers"),
        ('"max_abs=2.0"', "metrics is 'max_abs=2.0', not an object of numbers"),
    ],
)
def test_a_metric_that_is_no_number_keeps_its_record_with_a_note(
    tmp_path: Path, given: str, said: str
) -> None:
    """A stored record whose metric was text or a list (a hand edit, another tool's
    writer) was read without that metric, silently: its numbers were gone from every
    report and chart at exit 0. The record is kept without it, and the load says so,
    naming the line."""
    store = ResultStore(tmp_path, host="h1")
    text = line_of(result("b", Status.REGRESSED, max_abs=2.0))
    assert '"metrics": {"max_abs": 2.0}' in text
    with store.path.open("a") as f:
        f.write(text.replace('"metrics": {"max_abs": 2.0}', f'"metrics": {given}') + "\n")
    loaded = store.load()
    assert [(r.key, r.status, dict(r.metrics)) for r in loaded.results] == [
        ("b", Status.REGRESSED, {})
    ]
    (problem,) = loaded.problems
    assert str(problem) == (
        f"{store.path}:1: {said}; the record is kept without it: correct that line to keep "
        "this note from coming back"
    )
    assert not problem.left_out


def test_a_report_that_cannot_read_a_recorded_result_is_written_and_ends_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A damaged record was left out of the report with a warning, at exit 0: a CI job
    published a report short of a result. The report is written, and ends with exit 3
    naming the first such line; a record kept with a note, or a cut one, costs nothing."""
    from repromatrix.cli import main
    from repromatrix.errors import ExitCode

    store = ResultStore(tmp_path / "res", host="h1")
    store.append(result("a"))
    with store.path.open("a") as f:
        f.write(line_of(result("b")).replace('"duration_s": 0.0', '"duration_s": NaN') + "\n")
    argv = ["--matrix", str(tmp_path / "none.yaml"), "report", "--results", str(store.root)]
    argv += ["--out", str(tmp_path / "rep"), "--cache", str(tmp_path / "cache")]
    assert main(argv) == 0, capsys.readouterr().err
    with store.path.open("a") as f:
        f.write(line_of(result("c")).replace('"status": "passed"', '"status": "fine"') + "\n")
        f.write(line_of(result("d"))[:100])  # a run writing it now, or killed doing so
    assert main(argv) == ExitCode.RESULTS
    err = capsys.readouterr().err
    assert (tmp_path / "rep" / "index.html").exists()
    assert err.splitlines()[-1] == (
        f"repromatrix: error: 1 recorded result could not be read ({store.path}:3); the "
        "report leaves it out: do what the warning above says, then report again"
    )


def test_reading_a_sessions_history_never_writes_the_store_its_repair_step_does(
    tmp_path: Path,
) -> None:
    """The store's repair was a side effect of `Session.history()`: whatever read a
    session's history moved bytes of the results file. Reading writes nothing; the
    named step `repair_store`, which `run` and `bisect` take holding the folder, does."""
    import os

    from repromatrix.options import SessionConfig
    from repromatrix.session import Session

    config = SessionConfig(results=tmp_path / "res", cache=tmp_path / "cache")
    session = Session(config, env={"PATH": os.environ.get("PATH", "")})
    store = ResultStore(config.results, host=session.host.hostname)
    store.append(result("a"))
    with store.path.open("ab") as f:
        f.write(line_of(result("b")).encode()[:200])
    before = store.path.read_bytes()
    assert list(session.history()) == ["a"]
    assert store.path.read_bytes() == before
    assert [p.line for p in session.load_problems] == [2]  # the cut line, said
    session.repair_store()
    assert list(session.history()) == ["a"]
    (moved,) = session.load_problems
    assert "was moved to" in moved.message
    assert store.path.read_bytes() == before[: before.rindex(b"\n") + 1]
    assert list(session.history()) == ["a"]
    assert session.load_problems == (moved,)  # said once per command, read as often


def test_a_record_cut_mid_file_by_an_old_crash_is_set_aside_once(tmp_path: Path) -> None:
    """A cut record that the next append closed off with a newline (a crash before this
    version's repair, or a file copied from a host that crashed) stayed in the middle of
    the file, and every load warned of it as an "unreadable record" to correct or delete,
    for ever. It is said once as what it is, set aside by the next run's repair step, and
    never said again; a line edited wrong stays, for its author to correct."""
    store = ResultStore(tmp_path, host="h1")
    store.append(result("a"))
    cut = line_of(result("b")).encode()[:150]
    edited = line_of(result("x")).replace('"status": "passed"', '"status": "fine"')
    with store.path.open("ab") as f:
        f.write(cut + b"\n" + edited.encode() + b"\n")
    store.append(result("c"))
    loaded = store.load()
    assert [r.key for r in loaded.results] == ["a", "c"]
    fragment, wrong = loaded.problems
    assert str(fragment) == (
        f"{store.path}:2: a record cut short (150 bytes, never a whole record) on a line of "
        "its own: a killed run's, its line closed off by the next record, or a stored "
        "record damaged since, a result then; left out until a `run` or `bisect` with "
        f"--results {tmp_path} sets it aside"
    )
    assert fragment.left_out  # it may have been a result: a report must not pass
    assert wrong.line == 3
    assert wrong.left_out
    (note,) = repair(store).notes
    torn = tmp_path / "h1.jsonl.torn"
    assert str(note) == (
        f"{store.path}:2: a record cut short (150 bytes: a killed run's, or a stored record "
        f"damaged since) was moved to {torn.name}; every whole record is kept"
    )
    assert torn.read_bytes() == cut + b"\n"
    assert store.path.read_text().splitlines()[1] == edited
    assert repair(store).notes == ()
    again = store.load()
    assert [r.key for r in again.results] == ["a", "c"]
    assert [(p.line, p.left_out) for p in again.problems] == [(2, True)]  # the edited one


def test_records_cut_short_in_another_hosts_file_are_set_aside_once_it_is_quiet(
    tmp_path: Path,
) -> None:
    """A folder shared over NFS: host h2's run was killed mid-write and h2 never ran
    again, so h1's every run and report warned of h2's cut record, for ever (only a run
    from h2 repaired h2's file). A run on the folder, which holds it, now sets aside the
    cut records of every file in it; one changed within the last minute is left alone
    (a mount whose locks stay on each host would let h2 be writing it now)."""
    import os
    import time

    store = ResultStore(tmp_path, host="h1")
    store.append(result("a"))
    cut = line_of(result("c")).encode()[:120]
    for host in ("h2", "h3"):
        other = ResultStore(tmp_path, host=host)
        other.append(result(f"{host}-a"))
        with other.path.open("ab") as f:
            f.write(cut + b"\n" + line_of(result(f"{host}-b")).encode() + b"\n" + cut)
    hour_ago = time.time() - 3600
    os.utime(tmp_path / "h2.jsonl", (hour_ago, hour_ago))
    before = (tmp_path / "h3.jsonl").read_bytes()
    notes = repair(store).notes
    assert [(n.file, n.line) for n in notes] == [
        (str(tmp_path / "h2.jsonl"), 4),
        (str(tmp_path / "h2.jsonl"), 2),
    ]
    assert (tmp_path / "h2.jsonl.torn").read_bytes() == cut + b"\n" + cut + b"\n"
    assert (tmp_path / "h3.jsonl").read_bytes() == before
    keys = [r.key for r in store.load().results]
    assert keys == ["a", "h2-a", "h2-b", "h3-a", "h3-b"]


@contextlib.contextmanager
def _read_only(root: Path) -> Iterator[None]:
    """`root` made a folder this user may read but not write: by its mode, or for root
    (whom modes do not stop) made immutable, as a read-only mount is for everyone."""
    import os
    import subprocess

    if os.geteuid() != 0:
        root.chmod(0o555)
        try:
            yield
        finally:
            root.chmod(0o755)
        return
    subprocess.run(["chattr", "+i", str(root)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(root)], check=True)


def test_a_read_only_folder_is_not_promised_a_repair(tmp_path: Path) -> None:
    """A cut record in a folder this user cannot write (a published folder, a read-only
    mount) was "ignored until the next run from its host sets it aside": no run from
    here could, and the warning came back every time. It now says why it stays."""
    root = tmp_path / "published"
    store = ResultStore(root, host="h1")
    store.append(result("a"))
    cut = line_of(result("b")).encode()[:90]
    with store.path.open("ab") as f:
        f.write(cut + b"\n" + line_of(result("c")).encode() + b"\n" + cut)
    before = store.path.read_bytes()
    with _read_only(root):
        said = [str(p) for p in store.load().problems]
        assert repair(store).notes == ()  # nothing it could do, nothing it claims
    assert store.path.read_bytes() == before
    stays = (
        "left out: its folder cannot be written here, so no run from here sets it aside "
        "(whoever can write it may delete that line)"
    )
    assert said == [
        f"{store.path}:2: a record cut short (90 bytes, never a whole record) on a line of its "
        "own: a killed run's, its line closed off by the next record, or a stored record "
        f"damaged since, a result then; {stays}",
        f"{store.path}:4: truncated last record (a run was killed while writing it, or is "
        f"writing it now); {stays}",
    ]


def test_a_run_of_nul_bytes_mid_file_is_set_aside_not_blamed_on_a_user(tmp_path: Path) -> None:
    """A power loss can leave a file's last blocks as NUL bytes (the size written, the
    data not); the next append closed them off with a newline. That line was "unreadable
    record (expected value…): correct that line or delete it", and now fails every run
    and report: it never was a record, and is set aside as a cut one."""
    store = ResultStore(tmp_path, host="h1")
    store.append(result("a"))
    with store.path.open("ab") as f:
        f.write(b"\0" * 4096)
    store.append(result("b"))
    loaded = store.load()
    assert [r.key for r in loaded.results] == ["a", "b"]
    (problem,) = loaded.problems
    assert (problem.line, problem.left_out) == (2, False)
    (note,) = repair(store).notes
    assert note.line == 2
    assert store.load().problems == ()
    assert (tmp_path / "h1.jsonl.torn").stat().st_size == 4097


def test_a_cut_record_says_which_run_sets_it_aside_and_a_shared_file_that_none_will(
    tmp_path: Path,
) -> None:
    """ "Left out until the next run on its folder sets it aside" was said of a cut record
    in results/published/ (a run on results/ never sets it aside) and of a file linked
    in from elsewhere (which no run cuts: another folder's run may be writing it)."""
    store = ResultStore(tmp_path / "results" / "published", host="h1")
    store.append(result("a"))
    with store.path.open("ab") as f:
        f.write(line_of(result("b")).encode()[:80])
    (problem,) = ResultStore(tmp_path / "results").load().problems
    assert str(problem).endswith(
        f"left out until a `run` or `bisect` with --results {store.root} sets it aside"
    )
    (tmp_path / "results" / "linked.jsonl").hardlink_to(store.path)
    said = [str(p) for p in ResultStore(tmp_path / "results").load().problems]
    assert said[0].endswith(
        "left out: the file has another name (a link), and no run cuts a shared file: "
        "delete that line"
    )


def test_a_cut_record_mid_file_in_another_users_file_is_left_to_its_owner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Setting a mid-file cut record aside writes the file anew: in a folder shared by
    several users (hosts of an NFS share running as their own users) the new file was
    this user's, mode 644, and its owner's next run could no longer append to it (exit
    8). Another user's file is left as it is, and the warning says whose run sets it
    aside; its cut last line, cut off in place, is set aside as ever."""
    import os

    store = ResultStore(tmp_path, host="h1")
    store.append(result("a"))
    cut = line_of(result("b")).encode()[:100]
    with store.path.open("ab") as f:
        f.write(cut + b"\n" + line_of(result("c")).encode() + b"\n" + cut)
    someone_else = os.stat(store.path).st_uid + 1
    monkeypatch.setattr(os, "geteuid", lambda: someone_else)  # as another user sees it
    middle, last = store.load().problems
    assert last.line == 4
    assert str(middle).endswith(
        f"left out until a `run` or `bisect` by the file's owner with --results {tmp_path} "
        "sets it aside (another user's run leaves the file as it is)"
    )
    assert [n.line for n in repair(store).notes] == [4]
    assert store.path.read_bytes().count(cut) == 1  # the middle one stays, for its owner
    monkeypatch.undo()
    assert [n.line for n in repair(store).notes] == [2]


def test_a_results_file_that_may_only_be_appended_to_gets_no_copy_of_its_cut_records(
    tmp_path: Path,
) -> None:
    """A results file made append-only (`chattr +a`, a log policy) cannot be cut, yet each
    run's repair step first copied its cut records to `<file>.torn`, then failed to cut
    them: every run added the same bytes to it again, and said nothing."""
    import os
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("chattr +a needs root")
    store = ResultStore(tmp_path, host="h1")
    store.append(result("a"))
    cut = line_of(result("b")).encode()[:90]
    with store.path.open("ab") as f:  # one cut mid-file, one cut last
        f.write(cut + b"\n" + line_of(result("c")).encode() + b"\n" + cut)
    before = store.path.read_bytes()
    subprocess.run(["chattr", "+a", str(store.path)], check=True)
    try:
        assert repair(store).notes == ()
        assert repair(store).notes == ()
    finally:
        subprocess.run(["chattr", "-a", str(store.path)], check=True)
    assert store.path.read_bytes() == before
    assert not (tmp_path / "h1.jsonl.torn").exists()


def test_the_torn_file_of_another_users_results_file_stays_its_owners(tmp_path: Path) -> None:
    """A folder hosts share, each running as its own user: a run that cut off the last
    line of another user's file made `<file>.torn` its own (mode 644), so the owner's
    next run could not set aside its own cut records and warned of them for ever."""
    import os
    import time

    if os.geteuid() != 0:
        pytest.skip("making a file another user's needs root")
    other = ResultStore(tmp_path, host="h2")
    other.append(result("h2-a"))
    with other.path.open("ab") as f:
        f.write(line_of(result("h2-b")).encode()[:90])
    os.chown(other.path, 1001, 1002)
    other.path.chmod(0o664)
    hour_ago = time.time() - 3600
    os.utime(other.path, (hour_ago, hour_ago))
    (note,) = repair(ResultStore(tmp_path, host="h1")).notes
    assert note.file == str(other.path)
    torn = (tmp_path / "h2.jsonl.torn").stat()
    assert (torn.st_uid, torn.st_gid, torn.st_mode & 0o777) == (1001, 1002, 0o664)


def test_a_file_cut_short_just_as_a_record_was_written_loses_the_run_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process cut the results file short (`: > vm.jsonl`) between a run's write of
    a record and the run's look at where the file then ended (its fsync takes a while): the
    run took the new end (0) for its own, read its last record from before the file's start
    at its next one, and stopped at exit 8, "the result of slow[cpu,host] could not be
    stored in res/vm.jsonl: Invalid argument", the file empty. Its records are appended
    again and the cut is said (exit 3), as for a file cut at any other time."""
    from repromatrix import store as store_module

    early = ResultStore(tmp_path / "res")
    early.append(result("early"))
    store = ResultStore(tmp_path / "res")
    store.hold()
    from repromatrix.jsonl import write_whole as real

    def write_then_cut(fd: int, data: bytes) -> None:
        real(fd, data)
        os.truncate(store.path, 0)  # another process, right after the write

    monkeypatch.setattr(store_module, "write_whole", write_then_cut)
    store.append(result("fast"))
    monkeypatch.setattr(store_module, "write_whole", real)
    store.append(result("slow"))
    assert sorted(r.key for r in ResultStore(tmp_path / "res").load().results) == ["fast", "slow"]
    (cut,) = store.witness.tamperings
    assert cut.kind == "cut short"
    assert cut.restored == 1


def test_nul_bytes_as_the_last_line_are_called_nul_bytes_as_they_are_mid_file(
    tmp_path: Path,
) -> None:
    """The NUL bytes a power loss left at a file's end (no newline after them) were a
    "truncated last record (a run was killed while writing it, or is writing it now)",
    and the same bytes mid-file power-loss NUL bytes: both are NUL bytes alone now."""
    store = ResultStore(tmp_path, host="h1")
    store.append(result("a"))
    with store.path.open("ab") as f:
        f.write(b"\0" * 4096)
    (last,) = store.load().problems
    store.append(result("b"))
    (mid,) = store.load().problems
    said = "NUL bytes alone (4,096 bytes, never a record: what a power loss leaves of a write "
    assert (last.line, last.left_out, mid.line) == (2, False, 2)
    assert last.message.startswith(said), last.message
    assert mid.message.startswith(said), mid.message
