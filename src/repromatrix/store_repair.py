"""Setting aside what killed runs left cut short in a results folder: a named step that
`run` and `bisect` take once they hold the folder, before they read its records. Loading
never writes; `report` takes no lock and never repairs.

A record cut short is no result (the run writing it was killed, and the next one did its
cell again), yet every load warned of it, for ever. Once, it moves to `<file>.torn`,
which no load reads, and this says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from repromatrix.jsonl import MAX_LINE_BYTES, Line, set_aside_cut_line
from repromatrix.records import NewerSchemaError
from repromatrix.store import Loaded, LoadProblem, ResultStore
from repromatrix.storedlines import NotedRecord, decoded


@dataclass(frozen=True, kw_only=True)
class Repaired:
    """What `repair` set aside (said once, with the load's problems), and the store's
    records as loaded after it, for the command's first read of them."""

    notes: tuple[LoadProblem, ...]
    loaded: Loaded


def repair(store: ResultStore) -> Repaired:
    """Set aside a record that a killed run left cut short at the end of this host's
    file: the cut bytes go to `<file>.torn`, and every whole record stays. A last record
    that lacks only its newline gets one. The caller holds the results folder, so no run
    is writing the file now."""
    notes: list[LoadProblem] = []
    note = _set_aside_last(store)
    if note is not None:
        notes.append(note)
    return Repaired(notes=tuple(notes), loaded=store.load())


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
