"""What a load parsed is kept between commands: the next load parses only what was
appended, and returns exactly what a plain load returns, whatever happened to the file or
to the entry."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
from recordfactory import result

from repromatrix import parsed_cache
from repromatrix.fastdecode import _FIELDS
from repromatrix.model import Status
from repromatrix.parsed_cache import ParsedCache
from repromatrix.store import Loaded, ResultStore


@pytest.fixture(autouse=True)
def _every_file_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parsed_cache, "MIN_BYTES", 0)


def _same(a: Loaded, b: Loaded) -> None:
    assert [r.record() for r in a.results] == [r.record() for r in b.results]
    assert [str(p) for p in a.problems] == [str(p) for p in b.problems]


def _stores(tmp_path: Path) -> tuple[ResultStore, ResultStore, Path]:
    """A store that keeps what it parsed, the same store without, and the entries' folder."""
    folder = tmp_path / "cache" / "parsed"
    cached = ResultStore(tmp_path / "res", host="h1", parsed=ParsedCache(folder))
    return cached, ResultStore(tmp_path / "res", host="h1"), folder


def _entry(folder: Path) -> Path:
    (found,) = folder.glob("*.pickle")
    return found


def _poison(entry: Path) -> None:
    """Rewrite the entry's records (keeping its digest): a load that uses it says 'poison'."""
    with entry.open("rb") as f:
        head = f.readline()
        size, lines, digest, (packed, problems) = pickle.load(f)
    values, given = packed[0]
    at = _FIELDS.index("cell_id")
    packed[0] = ((*values[:at], "poison", *values[at + 1 :]), given)
    with entry.open("wb") as f:
        f.write(head)
        pickle.dump((size, lines, digest, (packed, problems)), f)


def test_an_appended_file_is_parsed_from_where_the_last_load_stopped(tmp_path: Path) -> None:
    cached, plain, folder = _stores(tmp_path)
    cached.append_many([result("a", max_abs=1.5), result("b", Status.REGRESSED)])
    with cached.path.open("ab") as f:
        f.write(b"not json\n")
    _same(cached.load(), plain.load())
    _poison(_entry(folder))
    assert cached.load().results[0].cell_id == "poison"  # the entry is what was read
    cached.append(result("c"))
    both = cached.load()
    assert [r.key for r in both.results] == ["a", "b", "c"]
    assert both.results[0].cell_id == "poison"  # the prefix from the entry, the rest parsed
    assert [p.line for p in both.problems] == [3]


def test_records_from_the_entry_equal_parsed_ones(tmp_path: Path) -> None:
    cached, plain, _ = _stores(tmp_path)
    cached.append_many([result(f"k{i}", max_abs=float(i)) for i in range(50)])
    first, second = cached.load(), cached.load()
    _same(first, plain.load())
    _same(second, plain.load())
    assert second.results == plain.load().results
    assert second.results[3].model_copy(update={"reason": "x"}).reason == "x"


def test_a_changed_prefix_is_parsed_again(tmp_path: Path) -> None:
    cached, plain, folder = _stores(tmp_path)
    cached.append_many([result("a"), result("b")])
    cached.load()
    _poison(_entry(folder))
    text = cached.path.read_bytes().replace(b'"key": "a"', b'"key": "z"')
    cached.path.write_bytes(text)  # same size, another first record
    _same(cached.load(), plain.load())
    assert cached.load().results[0].key == "z"


def test_a_shorter_or_replaced_file_is_parsed_again(tmp_path: Path) -> None:
    cached, plain, _ = _stores(tmp_path)
    cached.append_many([result("a"), result("b"), result("c")])
    cached.load()
    lines = cached.path.read_bytes().splitlines(keepends=True)
    cached.path.write_bytes(b"".join(lines[:1]))
    _same(cached.load(), plain.load())
    cached.path.unlink()
    cached.append_many([result("d")])
    _same(cached.load(), plain.load())


def test_a_cut_last_line_is_read_again_once_finished(tmp_path: Path) -> None:
    cached, plain, _ = _stores(tmp_path)
    cached.append(result("a"))
    whole = ResultStore(tmp_path / "other", host="h1")
    whole.append(result("b"))
    line = whole.path.read_bytes()
    with cached.path.open("ab") as f:
        f.write(line[:40])  # a run killed mid-write...
    assert [p.line for p in cached.load().problems] == [2]
    with cached.path.open("ab") as f:
        f.write(line[40:])  # ...or a line written in two parts
    loaded = cached.load()
    _same(loaded, plain.load())
    assert [r.key for r in loaded.results] == ["a", "b"]
    assert loaded.problems == ()


@pytest.mark.parametrize("mode", [0o620, 0o602])
def test_an_entry_others_can_write_is_not_trusted(tmp_path: Path, mode: int) -> None:
    cached, plain, folder = _stores(tmp_path)
    cached.append_many([result("a"), result("b")])
    cached.load()
    entry = _entry(folder)
    _poison(entry)
    entry.chmod(mode)
    _same(cached.load(), plain.load())


def test_a_damaged_entry_or_one_of_other_code_is_a_plain_parse(tmp_path: Path) -> None:
    cached, plain, folder = _stores(tmp_path)
    cached.append_many([result("a"), result("b")])
    cached.load()
    entry = _entry(folder)
    _poison(entry)
    head, rest = entry.read_bytes().split(b"\n", 1)
    entry.write_bytes(head[:-4] + b"0000\n" + rest)  # made by another version
    _same(cached.load(), plain.load())
    entry.write_bytes(head + b"\n" + rest[: len(rest) // 2])  # cut short
    _same(cached.load(), plain.load())


def test_a_cache_that_cannot_be_written_only_costs_speed(tmp_path: Path) -> None:
    cached, plain, folder = _stores(tmp_path)
    folder.parent.mkdir(parents=True)
    folder.write_text("a file where the folder goes")
    cached.append_many([result("a"), result("b")])
    _same(cached.load(), plain.load())
    _same(cached.load(), plain.load())


def test_small_files_get_no_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parsed_cache, "MIN_BYTES", 1 << 20)
    cached, plain, folder = _stores(tmp_path)
    cached.append_many([result("a")])
    _same(cached.load(), plain.load())
    assert not folder.exists()


def test_one_file_named_two_ways_names_its_problems_as_given(tmp_path: Path) -> None:
    cached, _, folder = _stores(tmp_path)
    cached.append(result("a"))
    with cached.path.open("ab") as f:
        f.write(b"not json\n")
    parsed = ParsedCache(folder)
    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        relative = ResultStore(Path("res"), parsed=parsed).load()
    finally:
        os.chdir(here)
    absolute = ResultStore(cached.path, parsed=parsed).load()
    assert [p.file for p in relative.problems] == [str(Path("res") / "h1.jsonl")]
    assert [p.file for p in absolute.problems] == [str(cached.path)]


def test_an_entry_kept_aside_is_written_by_a_child_and_there_after_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`report` with a second CPU keeps what it parsed from a forked child while it builds
    the report: the entry is made in another process, and is whole once `finish` returns.
    (Forked even under pytest-xdist, whose threads make `fork_possible` say no.)"""
    monkeypatch.setattr(parsed_cache, "fork_possible", lambda: True)
    cached, plain, folder = _stores(tmp_path)
    cached.append_many([result("a", max_abs=1.5), result("b", Status.REGRESSED)])
    made_in = tmp_path / "made-in"

    def payload() -> object:
        made_in.write_text(str(os.getpid()))
        return ([], [])

    aside = ParsedCache(folder, aside=True)
    with cached.path.open("rb") as f:
        size = len(f.read())
        aside.keep(cached.path, f, prefix=None, size=size, lines=2, payload=payload)
    aside.finish()
    assert int(made_in.read_text()) != os.getpid()
    assert _entry(folder).exists()
    # A load that keeps its entry aside reads the same records, and the next one uses it.
    folder_entry = _entry(folder)
    folder_entry.unlink()
    kept = ResultStore(cached.path, parsed=aside).load()
    aside.finish()
    _same(kept, plain.load())
    _poison(_entry(folder))
    assert "poison" in [r.cell_id for r in ResultStore(cached.path, parsed=aside).load().results]
