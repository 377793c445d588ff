"""Append-only result store: JSONL files under a results directory.

Each host appends to its own file (`<host>.jsonl`), so results from several hosts merge by
copying files into one directory. A record is written with a single `write` of a whole line
on an O_APPEND descriptor and fsynced, so a killed run leaves at most one truncated last
line; loading tolerates and reports it, and the next append starts on a fresh line.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from repromatrix.errors import ResultsError
from repromatrix.records import BASE_COLUMNS, NewerSchemaError, Result, latest_by_key

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True, kw_only=True)
class LoadProblem:
    """A line that could not be read; reported, never fatal (except newer schemas)."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass(frozen=True, kw_only=True)
class Loaded:
    results: tuple[Result, ...]
    problems: tuple[LoadProblem, ...] = field(default_factory=tuple)


def default_host() -> str:
    return socket.gethostname() or "host"


class ResultStore:
    def __init__(self, root: Path, *, host: str | None = None) -> None:
        self.root = root
        self.host = host or default_host()

    @property
    def path(self) -> Path:
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in self.host)
        return self.root / f"{safe}.jsonl"

    # -- writing ------------------------------------------------------------------------

    def append(self, result: Result) -> None:
        self.append_many([result])

    def append_many(self, results: Iterable[Result]) -> None:
        """Append records with one write and one fsync (all lines, or a truncated last one)."""
        lines = [
            json.dumps(r.record(), sort_keys=True, allow_nan=False, default=str) + "\n"
            for r in results
        ]
        if not lines:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        data = "".join(lines).encode()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if _ends_without_newline(fd):
                # A run killed mid-write left a partial line: close it off so this record
                # stands on its own line (the partial one is reported when loading).
                data = b"\n" + data
            _write_whole(fd, data)
        finally:
            os.close(fd)

    # -- reading ------------------------------------------------------------------------

    def files(self) -> list[Path]:
        if self.root.is_file():
            return [self.root]
        if not self.root.exists():
            return []
        return sorted(p for p in self.root.rglob("*.jsonl") if p.is_file())

    def load(self) -> Loaded:
        results: list[Result] = []
        problems: list[LoadProblem] = []
        for path in self.files():
            r, p = _load_file(path)
            results.extend(r)
            problems.extend(p)
        return Loaded(results=tuple(results), problems=tuple(problems))

    def latest_by_key(self) -> dict[str, Result]:
        return latest_by_key(self.load().results)

    def history(self) -> dict[str, list[Result]]:
        """Every record of each key, in file order."""
        return by_key(self.load().results)


def by_key(results: Iterable[Result]) -> dict[str, list[Result]]:
    out: dict[str, list[Result]] = {}
    for r in results:
        out.setdefault(r.key, []).append(r)
    return out


def _write_whole(fd: int, data: bytes) -> None:
    """Write and fsync `data` at the end of the file, all of it or none of it.

    On a nearly full disk `write` can write part of its buffer and stop: the cut record
    would stay in the file and later be blamed on a killed run. So a short write (or a
    failed fsync) truncates the file back to where it was and raises ENOSPC.
    """
    before = os.fstat(fd).st_size
    try:
        written = 0
        while written < len(data):
            n = os.write(fd, data[written:])
            if n == 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            written += n
        os.fsync(fd)
    except OSError:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, before)
            os.fsync(fd)
        raise


def _ends_without_newline(fd: int) -> bool:
    size = os.fstat(fd).st_size
    if size == 0:
        return False
    return os.pread(fd, 1, size - 1) != b"\n"


def _load_file(path: Path) -> tuple[list[Result], list[LoadProblem]]:
    results: list[Result] = []
    problems: list[LoadProblem] = []
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read results file ({exc})") from None
    lines = raw.split(b"\n")
    truncated_tail = bool(lines and lines[-1])
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            results.append(decode(line))
        except NewerSchemaError as exc:
            raise exc.as_results_error(where) from None
        except (ValueError, RecursionError) as exc:
            last = number == len(lines) and truncated_tail
            message = (
                "truncated last record (a run was killed while writing); ignored"
                if last
                else f"unreadable record ({_problem(exc)[:200]}); ignored"
            )
            problems.append(LoadProblem(file=str(path), line=number, message=message))
    return results, problems


#: Validation context of records read back from a file (they must carry their schema).
_STORED = {"stored": True}


def decode(line: bytes | str) -> Result:
    """One stored line → Result (migrated); ValueError (pydantic's included) when unusable."""
    return Result.model_validate_json(line, context=_STORED)


def _problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return f"{where + ': ' if where else ''}{err['msg']}"
    return str(exc)


# -- pandas -------------------------------------------------------------------------------


def rows(results: Iterable[Result]) -> Iterator[dict[str, Any]]:
    for r in results:
        row: dict[str, Any] = {c: getattr(r, c) for c in BASE_COLUMNS}
        row["status"] = r.status.value
        for lib, label in r.pins.items():
            row[f"lib.{lib}"] = label
        for name, value in r.metrics.items():
            row[f"metric.{name}"] = value
        yield row


def to_frame(results: Iterable[Result]) -> pd.DataFrame:
    """One row per record: the base columns, `lib.<name>` pins and `metric.<name>` numbers."""
    import pandas as pd

    frame = pd.DataFrame.from_records(list(rows(results)))
    if frame.empty:
        return pd.DataFrame(columns=list(BASE_COLUMNS))
    return frame
