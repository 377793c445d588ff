"""Setting aside what killed runs left cut short in a results folder: a named step that
`run` and `bisect` take once they hold the folder, before they read its records. Loading
never writes; `report` takes no lock and never repairs.

A record cut short is no result (the run writing it was killed, and the next one did its
cell again), yet every load warned of it, for ever. Once, it moves to `<file>.torn`,
which no load reads, and this says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from repromatrix.jsonl import MAX_LINE_BYTES, Line, set_aside_cut_line, set_aside_lines
from repromatrix.records import NewerSchemaError
from repromatrix.store import Loaded, LoadProblem, ResultStore
from repromatrix.storedlines import NotedRecord, cut_short, decoded


@dataclass(frozen=True, kw_only=True)
class Repaired:
    """What `repair` set aside (said once, with the load's problems), and the store's
    records as loaded after it, for the command's first read of them."""

    notes: tuple[LoadProblem, ...]
    loaded: Loaded


def repair(store: ResultStore) -> Repaired:
    """Set aside the records that killed runs left cut short in this host's file: the
    last line (a write cut short), and lines an old crash left in the middle of it (the
    next append closed the cut line off with a newline). The cut bytes go to
    `<file>.torn`, and every whole record stays; a last record that lacks only its
    newline gets one. The caller holds the results folder, so no run writes it now."""
    notes: list[LoadProblem] = []
    note = _set_aside_last(store)
    if note is not None:
        notes.append(note)
    loaded = store.load()
    cut = {p.line for p in loaded.problems if p.cut and p.line and p.file == str(store.path)}
    moved = _set_aside_cut_lines(store.path, cut)
    if moved:
        notes += moved
        loaded = store.load()
    return Repaired(notes=tuple(notes), loaded=loaded)


def _set_aside_cut_lines(path: Path, numbers: set[int]) -> list[LoadProblem]:
    """The cut records at lines `numbers` of `path` set aside, each said."""
    if not numbers:
        return []
    torn = path.with_name(path.name + ".torn")
    try:
        moved = set_aside_lines(path, numbers, torn, cut=lambda text: cut_short(_no_bom(text)))
    except OSError:
        return []  # a read-only folder: the load says so, each time
    return [
        LoadProblem(
            file=str(path),
            line=line,
            message=f"a record cut short by a killed run ({size:,} bytes) was moved to "
            f"{torn.name}; every whole record is kept",
        )
        for line, size in moved
    ]


def _no_bom(text: bytes) -> bytes:
    return text.removeprefix(b"\xef\xbb\xbf")  # as loads read a line


def _set_aside_last(store: ResultStore) -> LoadProblem | None:
    """The cut last line of this host's file set aside, said; None when there was none
    or nothing could be done (a read-only folder)."""
    torn = store.path.with_name(store.path.name + ".torn")
    try:
        moved = set_aside_cut_line(store.path, torn, whole=_whole_record)
    except OSError:
        return None
    if moved is None:
        return None
    line, size = moved
    return LoadProblem(
        file=str(store.path),
        line=line,
        message=f"a record cut short by a killed run ({size:,} bytes) was moved to "
        f"{torn.name}; every whole record is kept",
    )


def _whole_record(line: bytes) -> bool:
    """Whether `line` is a whole record: one this version reads, or a newer one's."""
    try:
        decoded(Line(line, len(line), True, len(line) > MAX_LINE_BYTES), line)
    except (NewerSchemaError, NotedRecord):
        return True  # loading says to upgrade, or keeps it: setting it aside would hide it
    except Exception:  # any line, however odd, is just no record
        return False
    return True
