"""Append-only result store: JSONL files under a results directory.

Each host appends to its own file (`<host>.jsonl`), so results from several hosts merge by
copying files into one directory. A record is written with a single `write` of a whole line
on an O_APPEND descriptor and fsynced, so a killed run leaves at most one truncated last
line; loading tolerates and reports it, and the next run sets it aside
(`store_repair`: to `<file>.torn`, said once) before it reads the records.
Loading survives any line (invalid JSON, a record nested 100,000 levels deep, a 400-digit
number, a field of the wrong type): it is reported with file:line and skipped.

A run holds the results folder (`results_lock`): two runs on one folder would run every
cell twice. The lock is a flock, so it ends with its process, kill -9 included.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repromatrix.errors import ResultsError, StoreError
from repromatrix.fastdecode import pack, unpack
from repromatrix.jsonl import ends_without_newline, write_whole
from repromatrix.load_problems import LoadProblem, no_records_file, not_a_file_problem
from repromatrix.loadparts import parse_rest
from repromatrix.locks import CACHE_LOCK
from repromatrix.outputs import CLEANED, disk_free, not_a_file
from repromatrix.parsed_cache import ParsedCache, parsed_cache
from repromatrix.record_copies import Copies
from repromatrix.records import BASE_COLUMNS, Result, latest_by_key
from repromatrix.safetext import excerpt
from repromatrix.store_witness import Witness
from repromatrix.storedlines import decode
from repromatrix.timestamps import future_note, odd_stamps, zoneless_note

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True, kw_only=True)
class Loaded:
    results: tuple[Result, ...]
    problems: tuple[LoadProblem, ...] = field(default_factory=tuple)


def default_host() -> str:
    return socket.gethostname() or "host"


class ResultStore:
    def __init__(
        self,
        root: Path,
        *,
        host: str | None = None,
        parsed: ParsedCache | None = None,
        jobs: int = 1,
    ) -> None:
        self.root = root
        self.host = host or default_host()
        #: Where loads keep what they parsed (`<cache>/parsed`), so the next parses less.
        self.parsed = parsed
        #: Processes a large file's parse may use (`loadparts`).
        self.jobs = jobs
        #: What this process appended, to find another process's change to the file.
        self.witness = Witness()

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
        self._append([line.encode() for line in lines])

    def hold(self) -> None:
        """Begin to watch the results file as a run that holds its folder finds it: a
        change another process makes to it from now on is found (`witness`)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return  # none yet (the first append begins it), or one a later check names
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                self.witness.begin(fd)
        finally:
            os.close(fd)

    def verify(self) -> None:
        """Once a run is done: the lines it appended that another process took from the
        results file since (`witness.tamperings` says what) are appended again."""
        if not self.witness.began:
            return
        try:  # read-only first: a folder a run only read from may be read-only
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            changed = True
        else:
            try:
                changed = self.witness.changed(fd)
            finally:
                os.close(fd)
        if changed:
            self._append([])

    def _append(self, lines: list[bytes]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = _open_to_append(self.path, os.O_RDWR)
        try:
            self.witness.begin(fd)
            data = self.witness.missing(fd, self.path) + b"".join(lines)
            if data and ends_without_newline(fd):
                # A run killed mid-write left a partial line: close it off so this record
                # stands on its own line (the partial one is reported when loading).
                data = b"\n" + data
            # Where this run's bytes end, known before they are written: the file's size
            # after it, read once the fsync is done, is another process's when that one
            # cut the file short in between (`witness.wrote`).
            end = os.fstat(fd).st_size + len(data)
            if data:
                write_whole(fd, data)
            self.witness.wrote(lines, data, end=end)
        finally:
            os.close(fd)

    def check_writable(self) -> None:
        """StoreError (exit 8) when records cannot be appended here, asked before any cell
        runs: else each result would be lost once its work was done."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            # Non-blocking: a FIFO there would wait for a reader for ever.
            fd = _open_to_append(self.path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            why = exc.strerror or str(exc)
            full = exc.errno in (errno.ENOSPC, errno.EDQUOT)  # no inode left, a quota
            if self.path.is_symlink() and not self.path.exists():
                why = f"{not_a_file(self.path)}; repromatrix makes no file through a link"
                fix = "remove the link, or make the file it points to"
                raise StoreError(
                    f"--results {self.root}: cannot append records to {self.path.name} "
                    f"({why}): {fix}"
                ) from None
        else:
            regular = stat.S_ISREG(os.fstat(fd).st_mode)
            if regular:
                self.witness.begin(fd)
            os.close(fd)
            free = disk_free(self.path)
            free = MIN_FREE_BYTES if free is None else free
            if regular and free >= MIN_FREE_BYTES:
                return
            full, why = regular, f"its disk is full: {free // 1024} KiB free"
        # A full disk is writable: the fix is room, which "a writable folder" never said.
        fix = "make room there, or pass another" if full else "pass a writable"
        if (what := no_records_file(self.path)) is not None:  # the folder may be writable
            moved = "move it away (a run then makes the file), or "
            why, fix = what, f"{'' if self.path.is_symlink() else moved}pass another"
        name = self.path.name
        if self.path.is_symlink():  # the folder may be writable: where the link leads is not
            name += f", a link to {os.path.realpath(self.path)}"
            fix = f"remove the link (runs then make the file here), or {fix}"
        raise StoreError(
            f"--results {self.root}: cannot append records to {name} ({why}); {fix} results folder"
        )

    # -- reading ------------------------------------------------------------------------

    def files(self) -> list[Path]:
        return self._files()[0]

    def _files(self) -> tuple[list[Path], list[LoadProblem]]:
        """The JSONL files under the root, and the `*.jsonl` entries that are not files
        (a link to nothing, a link loop) as problems; ResultsError when the tree cannot be
        walked (a path longer than the system allows, a folder that cannot be listed)."""
        if self.root.is_file():
            return [self.root], []
        if not self.root.exists():
            return [], []
        try:
            found = sorted(_jsonl_under(self.root))
            files = [p for p in found if p.is_file()]
            odd = [p for p in found if not p.is_file() and not p.is_dir()]
        except OSError as exc:
            where = excerpt(str(exc.filename or self.root), 200)
            raise ResultsError(
                f"{self.root}: cannot read the results under it ({exc.strerror or exc}: "
                f"{where}); pass a results folder or JSONL file"
            ) from None
        return files, [not_a_file_problem(p) for p in odd]

    def load(
        self,
        *,
        seen: Copies | None = None,
        read: set[tuple[int, int]] | None = None,
    ) -> Loaded:
        """Every record under the root, a copy of one already read (in `seen`, which
        the caller may share across stores) left out with a warning naming its file. A
        file read already (in `read`, shared alike: `--results results --results
        results/published`, a link to a file beside it) is not read again: its damaged
        lines were said and counted twice, and its records called "copies of records read
        already (… a copied results file?)"."""
        results: list[Result] = []
        files, odd = self._files()
        problems: list[LoadProblem] = list(odd)
        seen = Copies() if seen is None else seen
        read = set() if read is None else read
        for path in files:
            with contextlib.suppress(OSError):  # one that cannot be stat'ed: read, as it was
                info = path.stat()
                if (info.st_dev, info.st_ino) in read:
                    continue
                read.add((info.st_dev, info.st_ino))
            r, p = _load_file(path, self.parsed, self.jobs)
            kept = seen.drop(r)
            if len(kept) < len(r):
                p.append(LoadProblem(file=str(path), line=0, message=_copies(len(r) - len(kept))))
            ahead, local = odd_stamps(map(_FINISHED, kept))
            if ahead:
                p.append(LoadProblem(file=str(path), line=0, message=future_note(ahead)))
            if local:
                p.append(LoadProblem(file=str(path), line=0, message=zoneless_note(local)))
            results.extend(kept)
            problems.extend(p)
        return Loaded(results=tuple(results), problems=tuple(problems))

    def latest_by_key(self) -> dict[str, Result]:
        return latest_by_key(self.load().results)

    def history(self) -> dict[str, list[Result]]:
        """Every record of each key, in file order."""
        return by_key(self.load().results)


def load_results(
    sources: list[Path],
    flag: str,
    cache: Path | None = None,
    *,
    jobs: int = 1,
    parsed: ParsedCache | None = None,
) -> tuple[list[Result], list[LoadProblem]]:
    """Records of every results folder or JSONL file; a path that does not exist is an
    error (exit 3) naming it, never an empty report. With the runs' `cache` (or its
    entries, `parsed`), what was parsed before is not parsed again; with `jobs` 2 a
    large file is parsed in two processes (`loadparts`)."""
    if parsed is None and cache is not None:
        parsed = parsed_cache(cache)
    results: list[Result] = []
    problems: list[LoadProblem] = []
    seen = Copies()  # a record in two sources counts once
    read: set[tuple[int, int]] = set()  # and a file named twice is read once
    for src in sources:
        if not src.exists():
            what = (
                "a link that leads nowhere (a loop, or its target is gone)"
                if src.is_symlink()
                else "no such file or directory"
            )
            raise ResultsError(
                f"{flag} {src}: {what}; pass a results folder or JSONL file (`repromatrix "
                "run` writes results/)"
            )
        if not src.is_file() and not src.is_dir():  # a FIFO, a device: no walk, no read
            raise ResultsError(
                f"{flag} {src}: {not_a_file(src)}, not a results folder or JSONL file; pass "
                "one (`repromatrix run` writes results/)"
            )
        loaded = ResultStore(src, parsed=parsed, jobs=jobs).load(seen=seen, read=read)
        results.extend(loaded.results)
        problems.extend(loaded.problems)
    return results, problems


#: Free space under which the results disk counts as full before a run: a record with its
#: output tails takes up to a few tens of KiB.
MIN_FREE_BYTES = 64 << 10


def _open_to_append(path: Path, flags: int) -> int:
    """The results file `path` opened to append: the file there (or that a link there
    leads to, as loads read it), else a new file of its own. Never one made through a
    link: loads pass over a link that leads nowhere, so what a run wrote there would be
    read nowhere, or somewhere else (FileExistsError, or ELOOP for a link loop)."""
    flags |= os.O_APPEND | os.O_CLOEXEC
    try:
        return os.open(path, flags)
    except FileNotFoundError:
        # O_EXCL makes no file through a link: the link itself "exists".
        return os.open(path, flags | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)


def _jsonl_under(root: Path) -> list[Path]:
    """Every `*.jsonl` entry under `root`, through linked folders too (`results/published`
    may be a link to a shared folder), each folder once (a link loop ends there); OSError
    when a folder cannot be listed. Not into a cache (`--cache R --results R`): a JSONL
    file a repro left in its cell's folder, or a package under envs/, is no record."""
    found: list[Path] = []
    walked: set[tuple[int, int]] = set()

    def fail(exc: OSError) -> None:
        raise exc

    for folder, subfolders, names in os.walk(root, onerror=fail, followlinks=True):
        info = os.stat(folder)
        if (info.st_dev, info.st_ino) in walked:
            subfolders[:] = []
            continue
        walked.add((info.st_dev, info.st_ino))
        if CACHE_LOCK in names:
            subfolders[:] = [s for s in subfolders if s not in CLEANED]
        found += [Path(folder, n) for n in (*names, *subfolders) if n.endswith(".jsonl")]
    return found


_FINISHED = attrgetter("finished")


def _copies(n: int) -> str:
    return (
        f"{n} record{'s are copies' if n != 1 else ' is a copy'} of records read already "
        "(same run, cell and times: a copied results file?); counted once"
    )


def by_key(results: Iterable[Result]) -> dict[str, list[Result]]:
    out: dict[str, list[Result]] = {}
    for r in results:
        out.setdefault(r.key, []).append(r)
    return out


def _load_file(
    path: Path, parsed: ParsedCache | None = None, jobs: int = 1
) -> tuple[list[Result], list[LoadProblem]]:
    results: list[Result] = []
    problems: list[LoadProblem] = []
    try:
        # Never waiting on it: a FIFO put there after the walk, or a file that blocks
        # (/proc/kmsg through a link) fails its read instead of hanging the load.
        with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb") as f:
            # What an earlier load parsed of this file, while its bytes are unchanged.
            prefix = parsed.resume(path, f) if parsed is not None else None
            if prefix is not None:
                results, problems = unpack(prefix.payload[0]), list(prefix.payload[1])
            size, lines = (prefix.size, prefix.lines) if prefix is not None else (0, 0)
            rest = parse_rest(path, f, size=size, lines=lines, jobs=jobs)
            # A cut last line is parsed again next time: its record may be finished.
            kept = (len(results) + len(rest.results), len(problems) + len(rest.problems))
            if rest.truncated:
                kept = (len(results) + rest.before[0], len(problems) + rest.before[1])
            results.extend(rest.results)
            problems.extend(rest.problems)
            if parsed is not None:
                parsed.keep(
                    path,
                    f,
                    prefix=prefix,
                    size=rest.size,
                    lines=rest.lines,
                    payload=lambda: (pack(results[: kept[0]]), problems[: kept[1]]),
                )
    except OSError as exc:
        # One file this user cannot read (another user's, a failing disk) costs its own
        # records, said with the fix, not the whole store: other files' stay readable.
        why = excerpt(exc.strerror or str(exc), 100)
        fix = "fix its permissions, or move it out of the results folder"
        message = f"cannot be read ({why}); its records are left out: {fix}"
        return [], [LoadProblem(file=str(path), line=0, message=message, left_out=True)]
    return results, problems


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


#: `decode` lives in storedlines.py; callers have always taken it from here.
__all__ = [
    "MIN_FREE_BYTES",
    "LoadProblem",
    "Loaded",
    "ResultStore",
    "by_key",
    "decode",
    "default_host",
    "load_results",
    "rows",
    "to_frame",
]
