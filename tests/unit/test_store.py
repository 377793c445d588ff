"""The result store: append-only JSONL, crash tolerance, schema migration, merging hosts."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from recordfactory import result

from repromatrix.errors import ResultsError
from repromatrix.model import Status
from repromatrix.records import RESULT_SCHEMA, Result, latest_by_key
from repromatrix.store import ResultStore, load_results, to_frame


def test_append_and_load_round_trip(tmp_path: Path) -> None:
    store = ResultStore(tmp_path, host="h1")
    store.append(result("a", max_abs=1.5))
    store.append_many([result("b", Status.REGRESSED), result("c", Status.UNTESTABLE)])
    loaded = store.load()
    assert [r.key for r in loaded.results] == ["a", "b", "c"]
    assert loaded.results[0].metrics == {"max_abs": 1.5}
    assert loaded.results[1].status is Status.REGRESSED
    assert loaded.problems == ()
    assert store.path == tmp_path / "h1.jsonl"


def test_truncated_last_line_is_tolerated_reported_and_healed(tmp_path: Path) -> None:
    store = ResultStore(tmp_path, host="h1")
    store.append(result("a"))
    with store.path.open("ab") as f:  # a run killed in the middle of a write
        f.write(b'{"schema": 2, "key": "b", "sta')
    loaded = store.load()
    assert [r.key for r in loaded.results] == ["a"]
    assert len(loaded.problems) == 1
    assert loaded.problems[0].line == 2
    assert "truncated last record" in str(loaded.problems[0])
    # The next append starts on a fresh line, so the new record is intact.
    store.append(result("c"))
    loaded = store.load()
    assert [r.key for r in loaded.results] == ["a", "c"]
    said = "a record cut short (30 bytes, never a whole record) on a line of its own"
    assert said in str(loaded.problems[0])


def test_newer_schema_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "other.jsonl"
    record = result("a").record() | {"schema": RESULT_SCHEMA + 1}
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(
        ResultsError,
        match=rf"other.jsonl:1: record schema {RESULT_SCHEMA + 1} is newer than this "
        rf"repromatrix reads \({RESULT_SCHEMA}\); upgrade repromatrix",
    ):
        ResultStore(tmp_path).load()


def test_schema_1_records_are_migrated(tmp_path: Path) -> None:
    old = result("a").record()
    old["schema"] = 1
    del old["base_fingerprint"]
    del old["executor"]
    (tmp_path / "old.jsonl").write_text(json.dumps(old) + "\n")
    (r,) = ResultStore(tmp_path).load().results
    assert r.schema_version == RESULT_SCHEMA
    assert r.executor == "local"


def test_merge_hosts_newest_wins_and_not_run_never_hides(tmp_path: Path) -> None:
    ResultStore(tmp_path, host="gpu-a").append_many(
        [
            result("k1", Status.REGRESSED, "2026-11-20T00:00:00+00:00", "gpu-a"),
            result("k2", Status.PASSED, "2026-11-20T00:00:00+00:00", "gpu-a"),
        ]
    )
    ResultStore(tmp_path, host="gpu-b").append_many(
        [
            result("k1", Status.PASSED, "2026-11-21T00:00:00+00:00", "gpu-b"),
            result("k2", Status.NOT_RUN, "2026-11-22T00:00:00+00:00", "cpu-box"),
        ]
    )
    latest = ResultStore(tmp_path).latest_by_key()
    assert latest["k1"].host == "gpu-b"
    assert latest["k1"].status is Status.PASSED
    assert latest["k2"].status is Status.PASSED  # a later not_run note does not hide it
    assert len(ResultStore(tmp_path).load().results) == 4


def test_frame_has_pins_and_metrics_columns(tmp_path: Path) -> None:
    frame = to_frame([result("a", max_abs=2.0), result("b", Status.ERROR)])
    assert list(frame["status"]) == ["passed", "error"]
    assert frame.loc[0, "metric.max_abs"] == 2.0
    assert frame.loc[1, "lib.lib"] == "b"
    assert to_frame([]).empty


def test_latest_by_key_prefers_final_over_not_run_even_when_older() -> None:
    rs = [
        result("k", Status.TIMEOUT, "2026-01-01T00:00:00+00:00"),
        result("k", Status.NOT_RUN, "2026-02-01T00:00:00+00:00"),
    ]
    assert latest_by_key(rs)["k"].status is Status.TIMEOUT


def test_jsonl_links_to_nothing_are_named_not_skipped_in_silence(tmp_path: Path) -> None:
    ResultStore(tmp_path, host="h1").append(result("a"))
    (tmp_path / "gone.jsonl").symlink_to(tmp_path / "nowhere")
    (tmp_path / "loop.jsonl").symlink_to(tmp_path / "loop.jsonl")
    loaded = ResultStore(tmp_path).load()
    assert [r.key for r in loaded.results] == ["a"]
    # Its records (a share not mounted, a file moved) are left out: no report passes.
    fix = "left out: make the file it points to readable again, or remove the link"
    assert sorted(str(p) for p in loaded.problems) == [
        f"{tmp_path / 'gone.jsonl'}: a link that leads nowhere (its target is gone), not a "
        f"file of records; {fix}",
        f"{tmp_path / 'loop.jsonl'}: a link that leads nowhere (a loop), not a file of "
        f"records; {fix}",
    ]
    assert all(p.left_out for p in loaded.problems)


def test_jsonl_entries_that_are_no_files_are_named_for_what_they_are(tmp_path: Path) -> None:
    """A FIFO or socket named *.jsonl was warned about as "a broken link?": a user looked
    for a link that was not there."""
    ResultStore(tmp_path, host="h1").append(result("a"))
    os.mkfifo(tmp_path / "pipe.jsonl")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "sock.jsonl"))
        (tmp_path / "null.jsonl").symlink_to(os.devnull)
        loaded = ResultStore(tmp_path).load()
    assert [r.key for r in loaded.results] == ["a"]
    assert sorted(str(p) for p in loaded.problems) == [
        f"{tmp_path / 'null.jsonl'}: a link to a character device, not a file of records; ignored",
        f"{tmp_path / 'pipe.jsonl'}: a FIFO (named pipe), not a file of records; ignored",
        f"{tmp_path / 'sock.jsonl'}: a socket, not a file of records; ignored",
    ]
    assert not any(p.left_out for p in loaded.problems)  # never a file of records


def test_a_tree_deeper_than_the_system_allows_is_a_results_error(tmp_path: Path) -> None:
    deep = tmp_path / "r"
    deep.mkdir()
    fd = os.open(deep, os.O_RDONLY)
    try:
        for _ in range(150):  # 150 x 38 characters: past PATH_MAX (4096) from tmp_path
            os.mkdir("a" * 37, dir_fd=fd)
            fd, old = os.open("a" * 37, os.O_RDONLY, dir_fd=fd), fd
            os.close(old)
        with os.fdopen(os.open("vm.jsonl", os.O_WRONLY | os.O_CREAT, dir_fd=fd), "w") as f:
            f.write(json.dumps(result("a").record()) + "\n")
    finally:
        os.close(fd)
    with pytest.raises(ResultsError, match="cannot read the results under it"):
        ResultStore(deep).load()


def test_a_record_held_by_two_files_or_two_sources_counts_once(tmp_path: Path) -> None:
    from repromatrix.store import load_results

    run = {"run_id": "run-1", "started": "2026-11-22T00:00:00+00:00"}
    made = [
        result("a").model_copy(update=run),
        result("a", Status.REGRESSED).model_copy(update={**run, "run_id": "run-2"}),
        result("b"),  # no run id: made by hand, never taken for a copy
        result("b"),
    ]
    store = ResultStore(tmp_path / "res")
    for r in made:
        store.append(r)
    (tmp_path / "res" / "copy").mkdir()
    (tmp_path / "res" / "copy" / "h.jsonl").write_bytes(store.path.read_bytes())
    loaded = store.load()
    # The copy's run records are left out, with a warning naming its file.
    assert sorted((r.key, r.status.value) for r in loaded.results) == [
        ("a", "passed"), ("a", "regressed"), ("b", "passed"), ("b", "passed"),
        ("b", "passed"), ("b", "passed"),
    ]  # fmt: skip
    (problem,) = loaded.problems
    assert "2 records are copies" in problem.message
    assert problem.file == str(store.path)  # the later file read (copy/ comes first)
    # One folder passed twice: once, and its file read once.
    results, problems = load_results([tmp_path / "res", store.path], "--results")
    assert len([r for r in results if r.key == "a"]) == 2
    assert [p.file for p in problems] == [str(store.path)]


def test_a_file_named_twice_is_read_once_its_damage_said_once(tmp_path: Path) -> None:
    """`report --results results --results results/published`, or a folder and its file:
    each damaged line was said twice and counted as two results that could not be read,
    and the file's whole records were called "copies of records read already (... a
    copied results file?)"."""
    from repromatrix.store import load_results

    store = ResultStore(tmp_path / "res" / "published")
    store.append(result("a").model_copy(update={"run_id": "r1", "started": "2026-11-22"}))
    with store.path.open("a") as f:
        f.write(json.dumps(result("b").record()).replace('"passed"', '"fine"') + "\n")
    (tmp_path / "res" / "link.jsonl").symlink_to(store.path)
    for sources in (
        [tmp_path / "res", tmp_path / "res" / "published"],
        [store.path, store.path],
        [tmp_path / "res"],
    ):
        results, problems = load_results(sources, "--results")
        assert [r.key for r in results] == ["a"]
        (problem,) = problems
        assert (problem.line, "unreadable record") == (2, problem.message[:17]), problem


def test_repeats_made_side_by_side_in_one_millisecond_are_not_copies(tmp_path: Path) -> None:
    """`run --repeat 300 --jobs 2` of a no-op cell: pairs of records in two slots shared
    run, key and every time; 18 were dropped as copies and run again next time."""
    same = {"run_id": "run-1", "started": "2026-11-22T00:00:00.001+00:00"}
    made = [
        result("a").model_copy(
            update={**same, "provenance": {"harness": {"slot": slot, "record": name}}}
        )
        for slot, name in (("cpu0", "r1"), ("cpu1", "r2"), ("cpu0", "r3"))
    ]
    store = ResultStore(tmp_path / "res")
    for r in made:
        store.append(r)
    loaded = store.load()
    assert len(loaded.results) == 3
    assert loaded.problems == ()
    (tmp_path / "res" / "copy.jsonl").write_bytes(store.path.read_bytes())
    assert len(store.load().results) == 3  # a copied file still counts once


def test_a_byte_order_mark_costs_no_record(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "res")
    store.append(result("a"))
    store.path.write_bytes(b"\xef\xbb\xbf" + store.path.read_bytes())  # an editor saved it
    loaded = store.load()
    assert [r.key for r in loaded.results] == ["a"]
    assert loaded.problems == ()


def test_files_joined_with_their_byte_order_marks_cost_no_record(tmp_path: Path) -> None:
    """`cat a.jsonl b.jsonl > all.jsonl` of two files an editor saved with a byte-order
    mark puts the second mark at the start of a line in the middle: its record was
    "unreadable" and left out of every report."""
    one, two = ResultStore(tmp_path / "one"), ResultStore(tmp_path / "two")
    one.append(result("a"))
    two.append(result("b"))
    joined = tmp_path / "all" / "all.jsonl"
    joined.parent.mkdir()
    joined.write_bytes(b"".join(b"\xef\xbb\xbf" + s.path.read_bytes() for s in (one, two)))
    loaded = ResultStore(joined.parent).load()
    assert [r.key for r in loaded.results] == ["a", "b"]
    assert loaded.problems == ()


def test_a_run_into_a_results_file_is_told_to_pass_a_folder(tmp_path: Path) -> None:
    from repromatrix.errors import OutputError
    from repromatrix.locks import results_lock

    target = tmp_path / "h.jsonl"
    target.write_text("")
    with pytest.raises(OutputError, match="not a folder"), results_lock(target):
        pass


@pytest.mark.parametrize(
    "lone",
    [chr(0xDC80) + " here", chr(0xD83D) + " here", "cut: " + chr(0xD83D)],
    ids=["low", "high", "high-last"],
)
def test_a_lone_surrogate_escape_costs_nothing(tmp_path: Path, lone: str) -> None:
    """json.dumps writes "\\udc80" for text from undecodable bytes, or the high half of
    an emoji cut in two; the line was dropped whole ("unexpected end of hex escape")."""
    store = ResultStore(tmp_path)
    odd = result("k1").model_copy(update={"reason": "bad byte " + lone})
    store.append(odd)
    loaded = store.load()
    assert loaded.problems == ()
    (back,) = loaded.results
    # Kept, made printable.
    assert back.reason == "bad byte " + lone.replace("\udc80", "?").replace("\ud83d", "?")


def test_a_lock_file_that_is_a_link_is_refused_not_written_through(tmp_path: Path) -> None:
    """`run` wrote "pid … since …" over the file a link in the results folder named."""
    from repromatrix.errors import OutputError
    from repromatrix.locks import LOCK_NAME, results_lock

    precious = tmp_path / "precious.txt"
    precious.write_text("keep me\n")
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / LOCK_NAME).symlink_to(precious)
    with pytest.raises(OutputError, match="is a link"), results_lock(tmp_path / "res"):
        pass
    assert precious.read_text() == "keep me\n"


def test_records_in_a_linked_folder_are_read_and_a_link_loop_ends(tmp_path: Path) -> None:
    """`results/published` as a link to a shared folder: its records were silently not
    read (no report rows, cells run again)."""
    shared = ResultStore(tmp_path / "shared")
    shared.append(result("a"))
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "published").symlink_to(tmp_path / "shared")
    (tmp_path / "res" / "loop").symlink_to(tmp_path / "res")
    loaded = ResultStore(tmp_path / "res").load()
    assert [r.key for r in loaded.results] == ["a"]


@pytest.mark.parametrize(
    "field",
    ["repro", "key", "cell_id", "host", "run_id", "gpu", "pins", "machine"],
)
def test_a_record_named_by_megabytes_is_refused_not_shown_whole(tmp_path: Path, field: str) -> None:
    """A 5 MB repro name, key or host made a 68 MB page and a 16 MB summary.md: names
    that identify a record are never cut (two records would become one), so such a
    record is refused with the field named, and the others load."""
    huge = "Z" * 5_000_000
    shapes: dict[str, object] = {
        "pins": {"lib": huge},
        "machine": {"id": huge, "gpus": [], "driver": ""},
    }
    change = shapes.get(field, huge)
    store = ResultStore(tmp_path)
    store.append(result("k1"))
    with (tmp_path / "odd.jsonl").open("w") as f:
        f.write(json.dumps({**result("k2").record(), field: change}) + "\n")
    loaded = store.load()
    assert [r.key for r in loaded.results] == ["k1"]
    (problem,) = loaded.problems
    assert "5,000,000 characters long; repromatrix writes at most 1,000" in problem.message
    named = {"pins": "pins.lib", "machine": "machine.id"}.get(field, field)
    assert f"({named} is" in problem.message


def test_a_file_that_cannot_be_read_costs_its_records_not_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another user's results file (mode 600) stopped `report` and `run` (exit 3) with no
    fix named; the other files' records were readable."""
    ResultStore(tmp_path, host="h1").append(result("a"))
    other = ResultStore(tmp_path / "other", host="h2")
    other.append(result("b", host="h2"))
    opened = os.open

    def refuse(path: object, *args: int, **kwargs: int) -> int:
        if Path(str(path)) == other.path:
            raise PermissionError(13, "Permission denied", str(path))
        return opened(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", refuse)
    loaded = ResultStore(tmp_path).load()
    assert [r.key for r in loaded.results] == ["a"]
    (problem,) = loaded.problems
    assert problem.file == str(other.path)
    assert "cannot be read (Permission denied)" in str(problem)
    assert "fix its permissions" in str(problem)


@pytest.mark.parametrize("cache", [".", "cache"], ids=["cache-is-results", "cache-inside"])
def test_a_cache_inside_the_results_folder_lends_it_no_records(tmp_path: Path, cache: str) -> None:
    """`run --cache R --results R`: a cell's folder (runs/<run>/<key>/) is the repro's to
    write; a JSONL file it leaves there is not a record (nor a newer schema that would
    stop every later load), and neither is anything under the cache's other folders."""
    from repromatrix.locks import CACHE_LOCK

    store = ResultStore(tmp_path, host="h1")
    store.append(result("a"))
    (tmp_path / cache).mkdir(exist_ok=True)
    (tmp_path / cache / CACHE_LOCK).write_text("")
    forged = json.dumps({**result("forged").record(), "host": "h2"}) + "\n"
    for sub in ("runs/r1/k1", "envs/e1/site", "git/fla", "parsed"):
        (tmp_path / cache / sub).mkdir(parents=True)
        (tmp_path / cache / sub / "trace.jsonl").write_text(forged + '{"schema": 99}\n')
    loaded = store.load()
    assert [r.key for r in loaded.results] == ["a"]
    assert loaded.problems == ()


def test_a_line_longer_than_any_record_is_passed_over_not_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A results file a crash left full of NUL bytes (or a binary file named *.jsonl) is
    one "line" of any length: it costs its own line, said with its size, and never more
    memory than the bound; the records around it stay, and so does the cut last line's
    report."""
    import tracemalloc

    from repromatrix import jsonl

    monkeypatch.setattr(jsonl, "MAX_LINE_BYTES", 64 << 10)
    store = ResultStore(tmp_path, host="h1")
    store.append(result("a"))
    with store.path.open("ab") as f:
        f.write(b"\0" * (8 << 20) + b"\n")
    store.append(result("b"))
    with store.path.open("ab") as f:
        f.write(b"x" * (8 << 20))  # cut: no newline
    tracemalloc.start()
    try:
        loaded = store.load()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [r.key for r in loaded.results] == ["a", "b"]
    too_long = f"a line of {(8 << 20) + 1:,} bytes, longer than any record (65,536 bytes at most)"
    cut = "a run was killed while writing it, or is writing it now"
    assert [(p.line, p.message) for p in loaded.problems] == [
        (2, f"unreadable record ({too_long}); ignored: correct that line or delete it"),
        (
            4,
            f"truncated last record ({cut}); left out until a `run` or `bisect` with "
            f"--results {tmp_path} sets it aside",
        ),
    ]
    assert peak < 2 << 20
    store.append(result("c"))  # the cut line is closed off; the next record stands alone
    assert [r.key for r in store.load().results] == ["a", "b", "c"]


def test_a_results_file_that_would_block_costs_its_records_not_a_hang(tmp_path: Path) -> None:
    """A FIFO that appears where the walk saw a file (or a link to a file that blocks,
    such as /proc/kmsg) with a writer that never writes: reading it waited for ever."""
    import threading

    from repromatrix.store import _load_file

    fifo = tmp_path / "h1.jsonl"
    os.mkfifo(fifo)
    writer = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # holds it open, writes nothing
    got: list[tuple[list[Result], list[object]]] = []

    def load() -> None:
        results, problems = _load_file(fifo)
        got.append((results, list(problems)))

    reader = threading.Thread(target=load, daemon=True)
    try:
        reader.start()
        reader.join(timeout=10)
        assert not reader.is_alive(), "the load waited on the FIFO"
    finally:
        os.close(writer)  # a reader still waiting sees the end of the file
        reader.join(timeout=10)
    ((results, _),) = got
    assert results == []  # nothing there yet: what it holds now, nothing waited for


def test_a_results_path_that_is_no_file_or_folder_is_named_with_its_flag(tmp_path: Path) -> None:
    """`report --results FIFO` (or `--compare /dev/zero`) said "FIFO: cannot read the
    results under it (Not a directory: FIFO)": no flag, and not what the path is."""
    os.mkfifo(tmp_path / "pipe")
    for flag, path in (("--results", tmp_path / "pipe"), ("--compare", Path(os.devnull))):
        with pytest.raises(ResultsError) as caught:
            load_results([path], flag)
        kind = "a FIFO (named pipe)" if flag == "--results" else "a character device"
        assert str(caught.value) == (
            f"{flag} {path}: {kind}, not a results folder or JSONL file; pass one "
            "(`repromatrix run` writes results/)"
        )
