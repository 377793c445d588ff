"""A large results file parsed in two processes (`loadparts`) reads exactly what one
process reads: the same records in the same order, the same problems on the same lines,
a cut last line kept out of the cache; a child that fails costs only time."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from recordfactory import result

from repromatrix import loadparts
from repromatrix.errors import ResultsError
from repromatrix.model import Status
from repromatrix.records import RESULT_SCHEMA
from repromatrix.store import load_results

BOM = "\ufeff"


@pytest.fixture(autouse=True)
def small_split(monkeypatch: pytest.MonkeyPatch) -> None:
    """Split files of a few KB, as files of 16 MiB are."""
    monkeypatch.setattr(loadparts, "MIN_SPLIT_BYTES", 1024)
    monkeypatch.setattr(loadparts, "fork_possible", lambda: True)


@pytest.fixture
def parts(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What each child sent back (None: it failed), as the parent received it."""
    seen: list[Any] = []
    finish = loadparts._finish

    def spy(child: Any) -> Any:
        got = finish(child)
        seen.append(got)
        return got

    monkeypatch.setattr(loadparts, "_finish", spy)
    return seen


def damaged_store(folder: Path, *, cut_last: bool = True) -> Path:
    """200 records with damage of every kind the load names, in both halves: lines
    that are not JSON, a key given twice, blank lines, byte-order marks mid-file,
    two records joined on one line, and (`cut_last`) a last record cut short."""
    folder.mkdir()
    lines = []
    for i in range(200):
        status = Status.REGRESSED if i % 7 == 0 else Status.PASSED
        lines.append(json.dumps(result(f"k{i}", status, err=i / 10).record()))
        if i in (30, 150):
            lines.append('{"schema": 3, "key": ')
        if i in (40, 160):
            lines.append("")
        if i in (50, 170):
            lines.append(BOM + json.dumps(result(f"bom{i}").record()))
        if i in (60, 180):
            twice = json.dumps(result(f"twice{i}").record())
            lines.append(
                twice.replace('"status": "passed"', '"status": "passed", "status": "regressed"')
            )
        if i in (70, 190):
            lines.append(
                json.dumps(result(f"x{i}").record())[:-20] + json.dumps(result(f"y{i}").record())
            )
    text = "\n".join(lines) + "\n"
    if cut_last:
        text += json.dumps(result("cut").record())[:40]
    path = folder / "h.jsonl"
    path.write_text(text, encoding="utf-8")
    return path


def loaded(folder: Path, cache: Path | None = None, jobs: int = 1) -> tuple[list[Any], list[str]]:
    results, problems = load_results([folder], "--results", cache, jobs=jobs)
    return [r.record() for r in results], [str(p) for p in problems]


def test_two_processes_read_what_one_reads(tmp_path: Path, parts: list[Any]) -> None:
    store = tmp_path / "results"
    damaged_store(store)
    one = loaded(store, jobs=1)
    assert parts == []  # one process: no child
    two = loaded(store, jobs=2)
    assert len(parts) == 1
    assert parts[0] is not None, "the later part came from a child"
    assert two == one
    records, problems = one
    # 200 records, 2 after a byte-order mark, 2 joined after a cut one; 2 lines not JSON,
    # 2 keys given twice, 2 cut parts of joined lines, the cut last line.
    assert len(records) == 204
    assert len(problems) == 7
    # Problems in the child's part are named by the file's own line numbers.
    text = (store / "h.jsonl").read_text(encoding="utf-8").split("\n")
    cut = next(n for n, ln in enumerate(text, 1) if ln == '{"schema": 3, "key": ' and n > 100)
    assert any(p.startswith(f"{store / 'h.jsonl'}:{cut}:") for p in problems), problems


def test_the_cache_a_split_load_leaves_reads_the_same_and_leaves_out_the_cut_line(
    tmp_path: Path, parts: list[Any]
) -> None:
    store, cache = tmp_path / "results", tmp_path / "cache"
    path = damaged_store(store)
    # Entries are kept for files of 1 MiB or more: pad this one with whole records.
    pad = "".join(json.dumps(result(f"p{i}").record()) + "\n" for i in range(3000))
    path.write_text(pad + path.read_text(encoding="utf-8"), encoding="utf-8")
    first = loaded(store, cache, jobs=2)
    assert parts
    assert parts[-1] is not None
    assert loaded(store, cache, jobs=1) == first == loaded(store, None, jobs=1)
    # The cut record, finished by the run that was writing it, is read whole next time.
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(result("cut").record())[40:] + "\n")
    records, _ = loaded(store, cache, jobs=2)
    assert records[-1]["key"] == "cut"
    assert len(records) == len(first[0]) + 1


def test_a_child_that_fails_costs_only_time(
    tmp_path: Path, parts: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "results"
    damaged_store(store)
    one = loaded(store, jobs=1)

    def killed(*_: Any) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    monkeypatch.setattr(loadparts, "_child", killed)
    assert loaded(store, jobs=2) == one
    assert parts == [None]

    def raises(*_: Any) -> None:
        raise MemoryError

    monkeypatch.setattr(loadparts, "_child", raises)
    assert loaded(store, jobs=2) == one
    assert parts == [None, None]


def test_a_newer_schema_in_the_childs_part_stops_the_load_as_in_one_process(
    tmp_path: Path, parts: list[Any]
) -> None:
    store = tmp_path / "results"
    store.mkdir()
    lines = [json.dumps(result(f"k{i}").record()) for i in range(100)]
    lines[90] = json.dumps(result("new").record() | {"schema": RESULT_SCHEMA + 1})
    (store / "h.jsonl").write_text("\n".join(lines) + "\n")
    said = []
    for jobs in (1, 2):
        with pytest.raises(ResultsError, match=r"h\.jsonl:91: record schema") as caught:
            loaded(store, jobs=jobs)
        said.append(str(caught.value))
    assert said[0] == said[1]
    assert parts == [None]  # the child failed on it; this process said it


@pytest.mark.parametrize("jobs", [3, 5])
def test_more_processes_read_what_one_reads(tmp_path: Path, parts: list[Any], jobs: int) -> None:
    """With more CPUs, more parts: each child's part ends where the next begins, every
    problem is named by its own line of the file, and the cut last line stays the last."""
    store = tmp_path / "results"
    damaged_store(store)
    one = loaded(store, jobs=1)
    assert loaded(store, jobs=jobs) == one
    assert len(parts) == jobs - 1
    assert None not in parts, "every later part came from a child"
    assert sum(len(p.results) for p in parts) < len(one[0])  # this process parsed a part


def test_middle_children_that_fail_cost_only_time(
    tmp_path: Path, parts: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The children of the middle parts killed: those parts, and only they, are parsed
    here, each to where the next part begins (no record twice, none left out)."""
    store = tmp_path / "results"
    damaged_store(store)
    one = loaded(store, jobs=1)
    child = loadparts._child

    def middle_killed(path: Path, info: Any, mid: int, until: int | None, out: int) -> None:
        if until is not None:  # a middle part: the last one runs to the file's end
            os.kill(os.getpid(), signal.SIGKILL)
        child(path, info, mid, until, out)

    monkeypatch.setattr(loadparts, "_child", middle_killed)
    assert loaded(store, jobs=4) == one
    assert len(parts) == 3
    assert parts[:2] == [None, None]
    assert parts[2] is not None


def _state(pid: int) -> str:
    """The process's state as /proc says it ("Z": it has exited, not waited for yet)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_a_child_leaves_its_part_whole_without_waiting_for_it_to_be_read(
    tmp_path: Path,
) -> None:
    """A child packs and pickles its part while this process still parses its own, and
    ends: nothing need be read from it first. Through a pipe (64 KiB) it pickled only as
    fast as this process read, once this process's own part was done."""
    path = tmp_path / "h.jsonl"
    keys = [f"k{i}" for i in range(2000)]  # pickled, far more than a pipe holds
    path.write_text("".join(json.dumps(result(k).record()) + "\n" for k in keys))
    with path.open("rb") as f:
        child = loadparts._start(path, f, 0, None)
        assert child is not None
        deadline = time.monotonic() + 30
        while _state(child.pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.05)
        ended = _state(child.pid) == "Z"
        part = loadparts._finish(child)
    assert ended, "the child waited for its part to be read"
    assert part is not None
    assert [r.key for r in part.results] == keys
