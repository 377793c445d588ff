"""What the repair step cannot set aside is said as it is; what it can, it does whole."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from pathlib import Path

import pytest
from recordfactory import result

from repromatrix.records import Result
from repromatrix.store import ResultStore
from repromatrix.store_repair import repair


def line_of(r: Result) -> bytes:
    return json.dumps(r.record(), sort_keys=True).encode()


@pytest.mark.parametrize(
    ("flag", "what"), [("+a", "may only be appended to"), ("+i", "is immutable")]
)
def test_a_cut_record_in_a_file_no_run_may_cut_says_who_can_fix_it(
    tmp_path: Path, flag: str, what: str
) -> None:
    """A results file made append-only (`chattr +a`) with a cut record: the load said it
    was "left out until a `run` or `bisect` with --results X sets it aside", which no run
    can do there (the repair step refuses to cut such a file). It now says why, and who
    can fix it how."""
    if os.geteuid() != 0:
        pytest.skip("chattr needs root")
    store = ResultStore(tmp_path, host="h1")
    store.append(result("a"))
    cut = line_of(result("b"))[:90]
    with store.path.open("ab") as f:  # one cut mid-file, one cut last
        f.write(cut + b"\n" + line_of(result("c")) + b"\n" + cut)
    subprocess.run(["chattr", flag, str(store.path)], check=True)
    try:
        assert repair(store).notes == ()
        problems = store.load().problems
    finally:
        subprocess.run(["chattr", flag.replace("+", "-"), str(store.path)], check=True)
    assert [(p.line, p.cut) for p in problems] == [(2, True), (4, True)]
    fate = (
        f"left out: the file {what} (chattr {flag}), so no run cuts it; whoever may "
        f"(root) can run `chattr {flag.replace('+', '-')} {store.path}`, and the next `run` "
        f"or `bisect` with --results {tmp_path} sets it aside"
    )
    for p in problems:
        assert str(p).endswith(fate), str(p)
        assert "until a `run`" not in str(p)


def test_a_copy_a_killed_repair_left_is_removed_by_the_next_repair(tmp_path: Path) -> None:
    """A repair killed while it wrote a file anew (to set aside a record cut mid-file) left
    `.<file>.<pid>.new`, a copy of the whole results file, that nothing ever removed. The
    next repair (which holds the folder) removes the copies of processes no longer alive,
    says so, and sets the cut record aside."""
    import sys

    store = ResultStore(tmp_path, host="h1")
    store.append(result("a"))
    cut = line_of(result("b"))[:150]
    with store.path.open("ab") as f:
        f.write(cut + b"\n")
    store.append(result("c"))
    killed = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from repromatrix.store import ResultStore\n"
        "from repromatrix.store_repair import repair\n"
        "os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)\n"
        "repair(ResultStore(Path(sys.argv[1]), host='h1'))\n"
    )
    done = subprocess.run([sys.executable, "-c", killed, str(tmp_path)], check=False)
    assert done.returncode == -9
    (left,) = tmp_path.glob(".h1.jsonl.*.new")
    live = tmp_path / f".h1.jsonl.{os.getppid()}.new"  # a repair still at work
    live.write_bytes(b"")
    size = left.stat().st_size
    first, moved = repair(store).notes
    assert str(first) == (
        f"{left}: a copy of {store.path.name} that a killed run left ({size:,} bytes) was removed"
    )
    assert not left.exists()
    assert live.exists()
    assert moved.line == 2
    assert [r.key for r in store.load().results] == ["a", "c"]


def _cut_at(line: bytes, where: str) -> bytes:
    """`line` cut where a killed run's write may stop: in a string, after a key's colon
    (the next record would be read as its value), after a comma, inside a number."""
    at = {
        "in-a-string": line.index(b'"cell_id": "') + 14,
        "at-a-value": line.index(b'"status": ') + len(b'"status": '),
        "after-a-comma": line.index(b", ", 40) + 1,
        "in-a-number": line.index(b'"duration_s": ') + len(b'"duration_s": ') + 1,
    }[where]
    return line[:at]


@pytest.mark.parametrize("where", ["in-a-string", "at-a-value", "after-a-comma", "in-a-number"])
def test_a_file_joined_to_a_cut_record_loses_no_whole_record(tmp_path: Path, where: str) -> None:
    """A results file copied with `cat` onto one whose last record a killed run cut: the
    cut record and the first whole one shared a line, and both were unreadable (the run
    and report ended with exit 3 naming the line). The whole one is read; the cut part is
    said as a cut record, and the next repair sets it (alone) aside."""
    store = ResultStore(tmp_path, host="h1")
    store.append(result("a"))
    cut = _cut_at(line_of(result("b").model_copy(update={"duration_s": 12.5})), where)
    with store.path.open("ab") as f:
        f.write(cut)
    other = tmp_path / "copied" / "h2.jsonl"
    ResultStore(other.parent, host="h2").append_many([result("c"), result("d")])
    with store.path.open("ab") as f:
        subprocess.run(["cat", str(other)], stdout=f, check=True)
    other.unlink()
    loaded = store.load()
    assert [r.key for r in loaded.results] == ["a", "c", "d"]
    (problem,) = loaded.problems
    assert (problem.line, problem.cut, problem.left_out) == (2, True, False)
    assert str(problem) == (
        f"{store.path}:2: a record cut short by a killed run ({len(cut):,} bytes, never a "
        "whole record), with a whole record after it on the same line (a file joined to "
        "it?): that record is read; the cut part is left out until a `run` or `bisect` "
        f"with --results {tmp_path} sets it aside"
    )
    (note,) = repair(store).notes
    assert (note.line, str(note).split(": ", 1)[1]) == (
        2,
        f"a record cut short ({len(cut):,} bytes: a killed run's, or a stored record damaged "
        "since) was moved to h1.jsonl.torn; every whole record is kept",
    )
    assert (tmp_path / "h1.jsonl.torn").read_bytes() == cut + b"\n"
    assert repair(store).notes == ()
    again = store.load()
    assert [r.key for r in again.results] == ["a", "c", "d"]
    assert again.problems == ()


def test_two_whole_records_on_one_line_are_both_read(tmp_path: Path) -> None:
    """A file whose last record lacked only its newline, with another joined to it."""
    store = ResultStore(tmp_path, host="h1")
    store.path.write_bytes(line_of(result("a")) + line_of(result("b")) + b"\n")
    loaded = store.load()
    assert [r.key for r in loaded.results] == ["a", "b"]
    assert loaded.problems == ()
    assert repair(store).notes == ()


def test_a_last_line_joined_to_a_cut_record_keeps_its_whole_record(tmp_path: Path) -> None:
    """The same, where the joined file's last record lacked its newline: the whole line was
    taken for one record cut short, and the repair moved the whole record to the .torn
    file with the cut one."""
    store = ResultStore(tmp_path, host="h1")
    store.append(result("a"))
    cut = line_of(result("b"))[:200]
    with store.path.open("ab") as f:
        f.write(cut + line_of(result("c")))
    assert [r.key for r in store.load().results] == ["a", "c"]
    (note,) = repair(store).notes
    assert note.line == 2
    assert (tmp_path / "h1.jsonl.torn").read_bytes() == cut + b"\n"
    store.append(result("d"))
    again = store.load()
    assert [r.key for r in again.results] == ["a", "c", "d"]
    assert again.problems == ()


def test_a_file_joined_to_nul_bytes_or_to_a_record_of_many_objects_loses_nothing_whole(
    tmp_path: Path,
) -> None:
    """What a power loss leaves (NUL bytes where a write's data never reached the disk),
    and a cut record whose next one holds a hundred objects, each with a file joined to
    them: the line was unreadable, or its whole record left out."""
    store = ResultStore(tmp_path, host="h1")
    many = result("c").model_copy(update={"provenance": {f"p{i}": {"v": i} for i in range(100)}})
    cut = _cut_at(line_of(result("b")), "at-a-value")
    store.path.write_bytes(b"\0" * 300 + line_of(result("a")) + b"\n" + cut + line_of(many) + b"\n")
    loaded = store.load()
    assert [r.key for r in loaded.results] == ["a", "c"]
    assert [(p.line, p.cut) for p in loaded.problems] == [(1, True), (2, True)]
    assert [n.line for n in repair(store).notes] == [1, 2]
    assert (tmp_path / "h1.jsonl.torn").read_bytes() == b"\0" * 300 + b"\n" + cut + b"\n"
    assert [r.key for r in store.load().results] == ["a", "c"]
    assert store.load().problems == ()


@pytest.mark.parametrize("ended", [True, False], ids=["mid-file", "last"])
def test_a_whole_record_with_a_cut_one_joined_after_it_is_read(tmp_path: Path, ended: bool) -> None:
    """A record that lacked only its newline, with a cut record joined after it (a file
    that a killed run cut, copied onto it with `cat`): the line was unreadable (exit 3),
    or the last line was taken for one cut record, and its whole record moved to .torn."""
    store = ResultStore(tmp_path, host="h1")
    cut = line_of(result("b"))[:150]
    store.path.write_bytes(line_of(result("a")) + b"  " + cut + (b"\n" if ended else b""))
    loaded = store.load()
    assert [r.key for r in loaded.results] == ["a"]
    assert [(p.line, p.cut, p.left_out) for p in loaded.problems] == [(1, True, False)]
    assert [n.line for n in repair(store).notes] == [1]
    assert (tmp_path / "h1.jsonl.torn").read_bytes() == cut + b"\n"
    store.append(result("c"))
    again = store.load()
    assert [r.key for r in again.results] == ["a", "c"]
    assert again.problems == ()


@pytest.mark.parametrize("kind", ["link", "folder"])
def test_a_torn_file_no_run_can_write_is_named_not_promised_a_repair(
    tmp_path: Path, kind: str
) -> None:
    """`<file>.torn` linked to /dev/null (to throw cut records away) or made a folder: the
    repair, which writes through no link, set nothing aside, and every load said the cut
    record was "left out until a `run` ... sets it aside", for ever."""
    store = ResultStore(tmp_path, host="h1")
    store.append(result("a"))
    with store.path.open("ab") as f:
        f.write(line_of(result("b"))[:90])
    torn = tmp_path / "h1.jsonl.torn"
    if kind == "link":
        torn.symlink_to("/dev/null")
    else:
        torn.mkdir()
    assert repair(store).notes == ()
    (problem,) = store.load().problems
    assert str(problem).endswith(
        f"left out: {torn.name} is a {'link' if kind == 'link' else 'folder'}, and a run "
        f"sets cut records aside in a file of its own there: remove it, and the next `run` "
        f"or `bisect` with --results {tmp_path} sets it aside"
    ), str(problem)


def test_cut_records_joined_one_after_another_lose_no_whole_one(tmp_path: Path) -> None:
    """Files a killed run cut, joined one after the other with `cat` before another: the
    line of three cut records and a whole one was unreadable (exit 3)."""
    store = ResultStore(tmp_path, host="h1")
    store.append(result("a"))
    cuts = line_of(result("b"))[:150] + line_of(result("c"))[:220] + line_of(result("e"))[:90]
    with store.path.open("ab") as f:
        f.write(cuts + line_of(result("d")) + b"\n")
    loaded = store.load()
    assert [r.key for r in loaded.results] == ["a", "d"]
    assert [(p.line, p.cut, p.left_out) for p in loaded.problems] == [(2, True, False)]
    assert [n.line for n in repair(store).notes] == [2]
    assert (tmp_path / "h1.jsonl.torn").read_bytes() == cuts + b"\n"
    assert [r.key for r in store.load().results] == ["a", "d"]
    assert store.load().problems == ()


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_mid_file_set_aside_stopped_at_the_rename_keeps_each_record_in_one_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """A record cut mid-file goes to `<file>.torn` first, then the file is written anew
    without it. Stopped at the rename (a full disk, Ctrl-C): before it, the file still
    holds the record and `.torn` is as it was (no copy for the next run to add again);
    after it, the record is in `.torn` alone and stays there."""
    store = ResultStore(tmp_path, host="h1")
    store.append(result("a"))
    cut = line_of(result("b"))[:150]
    with store.path.open("ab") as f:
        f.write(cut + b"\n")
    store.append(result("c"))
    torn = tmp_path / "h1.jsonl.torn"
    torn.write_bytes(b"older\n")
    real = os.replace

    def stopped(src: str, dst: str) -> None:
        if when == "after":
            real(src, dst)
            raise KeyboardInterrupt
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", stopped)
    with pytest.raises(KeyboardInterrupt) if when == "after" else contextlib.nullcontext():
        repair(store)
    monkeypatch.undo()
    held = store.path.read_bytes().count(cut)
    assert held + torn.read_bytes().count(cut) == 1
    assert held == (when == "before")
    assert [r.key for r in store.load().results] == ["a", "c"]


def test_nul_bytes_a_cut_last_line_holds_take_no_disk_in_the_torn_file(tmp_path: Path) -> None:
    """A results file whose size outran its data (a power loss; `truncate -s 1G`) ends in
    NUL bytes the disk never held: setting them aside wrote them all to `<file>.torn`
    (1 GiB of disk for a file that took none), and on a disk with less room left the cut
    line could not be set aside, "make room there" said on every load. They go there as a
    hole: the same bytes, no disk."""
    store = ResultStore(tmp_path, host="h1")
    store.append(result("a"))
    whole = store.path.read_bytes()
    tail = 64 << 20
    os.truncate(store.path, len(whole) + tail)
    (note,) = repair(store).notes
    assert f"a record cut short by a killed run ({tail:,} bytes) was moved" in str(note)
    assert store.path.read_bytes() == whole
    torn = tmp_path / "h1.jsonl.torn"
    info = torn.stat()
    assert info.st_size == tail + 1
    assert info.st_blocks * 512 < 1 << 20
    with torn.open("rb") as f:
        f.seek(tail - 4)
        assert f.read() == b"\0" * 4 + b"\n"
    assert [r.key for r in store.load().results] == ["a"]
