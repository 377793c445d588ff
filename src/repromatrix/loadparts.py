"""The lines of a results file parsed into records, a large file in parts at once.

Parsing is the cold load's cost (about 14 µs a line: 1.4 s of 100,000 records), and it
ran on one CPU while the others stood idle. Where this process may use more (`jobs` 2 or
more, `forking.fork_possible`) and at least `MIN_SPLIT_BYTES` are left to parse, forked
children parse the file's later parts (each from a line's start to the next part's)
while this process parses the first, and each sends its records back as the parsed
cache holds them (`pack`, pickled into a file in memory): about a fifth of what parsing
them took, done while this process still parses its own part. (Pickled into a pipe,
which holds 64 KiB, a child pickled only as fast as this process read, once this
process's part was done.) A child's share is a little less than this process's, as it
also packs them. Each part is parsed line by line exactly as one process parses the
whole (`parse_part`); a child's line numbers and byte counts are then moved on by the
parts before it. A child that fails in any way (killed, out of memory, an odd line that
raises) costs only time: its part is parsed here again, which also raises here whatever
it raised there (a record of a newer schema).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import mmap
import os
import pickle
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from repromatrix.fastdecode import pack, unpack
from repromatrix.forking import fork_possible
from repromatrix.jsonl import bounded_lines
from repromatrix.load_problems import LoadProblem, joined_cut, unread_line
from repromatrix.records import NewerSchemaError, Result
from repromatrix.storedlines import Joined, NotedRecord, decoded, joined

#: Below this many bytes left to parse (about 20,000 light records, 0.3 s), one process:
#: a fork and the records' way back save too little.
MIN_SPLIT_BYTES = 16 << 20
#: The child's share of the bytes left: less than half, as it also packs its records.
CHILD_SHARE = 0.45
#: How far past the split point a line's end is looked for (a longer line: no split).
_FIND_LINE_END = 1 << 20
_BOM = b"\xef\xbb\xbf"


@dataclass
class Part:
    """What the lines of a file from some point on gave: the records and problems in
    line order; `size` bytes and `lines` whole (newline-ended) lines read, counted from
    the file's start; whether the last line read was cut short (no newline: a record a
    run is still writing, or a killed run's), and how many records and problems came
    before that line (`before`)."""

    results: list[Result]
    problems: list[LoadProblem]
    size: int
    lines: int
    truncated: bool = False
    before: tuple[int, int] = (0, 0)


def parse_rest(path: Path, f: IO[bytes], *, size: int, lines: int, jobs: int = 1) -> Part:
    """The lines of `f` from where it stands (byte `size` of `path`, after `lines` whole
    lines); in up to `jobs` processes when `jobs` > 1 and the rest is large enough: this
    one parses the first part, a forked child each later one."""
    start = f.tell()
    end = os.fstat(f.fileno()).st_size
    cuts = _split_points(f.fileno(), start, end, jobs) if jobs > 1 and fork_possible() else []
    if not cuts:
        return parse_part(path, f, size=size, lines=lines)
    # The last part runs to the file's end as it then stands, as one process reads it.
    bounds: list[int | None] = [*cuts, None]
    children: list[_Child | None] = []
    try:
        for at, until in itertools.pairwise(bounds):
            assert at is not None
            children.append(_start(path, f, at, until))
        whole = parse_part(path, f, size=size, lines=lines, stop=cuts[0] - start)
        for child, (at, until) in zip(children, itertools.pairwise(bounds), strict=True):
            later = _finish(child) if child is not None else None
            if later is None:  # the child failed: its part is parsed here
                assert at is not None
                f.seek(at)
                stop = None if until is None else until - at
                later = parse_part(path, f, size=whole.size, lines=whole.lines, stop=stop)
            else:
                later = _moved_on(later, whole)
            whole = _joined(whole, later)
    except BaseException:
        for child in children:
            if child is not None:
                _stop(child)
        raise
    return whole


def _joined(first: Part, second: Part) -> Part:
    """`first` and then `second`, which was parsed (and counted on) from `first`'s end."""
    return Part(
        results=first.results + second.results,
        problems=first.problems + second.problems,
        size=second.size,
        lines=second.lines,
        truncated=second.truncated,
        before=(
            len(first.results) + second.before[0],
            len(first.problems) + second.before[1],
        ),
    )


def _split_points(fd: int, start: int, end: int, jobs: int) -> list[int]:
    """Where the parts after the first begin (each at a line's start), at most `jobs` - 1
    of them, none smaller than `MIN_SPLIT_BYTES` / 2; empty for one part. A child's part is
    `CHILD_SHARE` / (1 - `CHILD_SHARE`) of this process's, as it also packs its records."""
    rest = end - start
    if rest < MIN_SPLIT_BYTES:
        return []
    parts = max(1, min(jobs, rest * 2 // MIN_SPLIT_BYTES))
    child = CHILD_SHARE / (1 - CHILD_SHARE)
    first = rest / (1 + (parts - 1) * child)
    points: list[int] = []
    for i in range(parts - 1):
        at = _split_point(fd, start + int(first + i * first * child), end)
        if at is None or (points and at <= points[-1]):
            break
        points.append(at)
    return points


def parse_part(path: Path, f: IO[bytes], *, size: int, lines: int, stop: int | None = None) -> Part:
    """The lines of `f` from where it stands to its end, or for `stop` bytes (which
    must end at a line's end)."""
    part = Part(results=[], problems=[], size=size, lines=lines)
    results, problems = part.results, part.problems
    left = stop
    # Line by line: a 100,000-record file is never held whole (nor split) at once.
    for number, read in enumerate(bounded_lines(f), start=lines + 1):
        # A byte-order mark: saved by an editor that adds one (on any line: two such
        # files joined with `cat` put the second one mid-file).
        bom = read.text.startswith(_BOM)
        line, part.truncated = read.text[len(_BOM) :] if bom else read.text, not read.ended
        if part.truncated:
            part.before = (len(results), len(problems))
        else:
            part.size, part.lines = part.size + read.size, number
        if left is not None:
            left -= read.size
        if (line and not line.isspace()) or read.overlong:
            _parse_line(path, number, read, line, part)
        if left is not None and left <= 0:
            break
    return part


def _parse_line(path: Path, number: int, read: Any, line: bytes, part: Part) -> None:
    try:
        part.results.append(decoded(read, line))
    except NewerSchemaError as exc:
        raise exc.as_results_error(f"{path}:{number}") from None
    except NotedRecord as noted:
        part.results.append(noted.record)
        part.problems.append(LoadProblem(file=str(path), line=number, message=noted.note))
    except Exception as exc:  # any line, however odd, costs only itself
        two = None if read.overlong else joined(line)
        if two is None:
            part.problems.append(unread_line(path, number, line, exc, truncated=part.truncated))
        else:
            _read_joined(path, number, two, part)


def _read_joined(path: Path, number: int, two: Joined, part: Part) -> None:
    """The records of line `number`, two joined (a file joined with `cat` to one whose
    last record was cut short): the whole one after a cut one is no less a result."""
    part.results.extend(two.records)
    start, end = two.cut
    if end:
        part.problems.append(joined_cut(path, number, end - start, first=start == 0))
    if two.note:
        part.problems.append(LoadProblem(file=str(path), line=number, message=two.note))


def _split_point(fd: int, at: int, end: int) -> int | None:
    """Where the first line that begins after byte `at` begins, if before `end`."""
    found = os.pread(fd, min(_FIND_LINE_END, end - at), at).find(b"\n")
    if found < 0 or at + found + 1 >= end:
        return None
    return at + found + 1


@dataclass(frozen=True)
class _Child:
    pid: int
    said: int  # where the child writes its part: a memory file, or a pipe's read end
    memory: bool  # `said` is a memory file, read once the child has exited


def _outlet() -> tuple[int, int, bool]:
    """Where a child writes its part (read end, write end, whether a memory file): an
    unnamed file in memory, which the child fills at its own pace and exits, where the
    system has them (Linux); else a pipe, which holds 64 KiB: the child then pickles its
    part only as fast as this process reads it, once this process's own part is done."""
    with contextlib.suppress(AttributeError, OSError):
        fd = os.memfd_create("repromatrix-part", os.MFD_CLOEXEC)
        return fd, fd, True
    read_end, write_end = os.pipe()
    return read_end, write_end, False


def _start(path: Path, f: IO[bytes], mid: int, until: int | None) -> _Child | None:
    """A child parsing `path` from byte `mid` to byte `until` (a line's end, or the file's
    end as it stood), in a file description of its own (a shared one would move this
    process's reading position); None: to the file's end."""
    read_end, write_end, memory = _outlet()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        pid = os.fork()
    except OSError:  # no memory or processes left for it: parsed here instead
        os.close(read_end)
        if not memory:
            os.close(write_end)
        return None
    if pid == 0:  # the child: never returns into the caller's stack
        code = 1
        try:
            if not memory:
                os.close(read_end)
            _child(path, os.fstat(f.fileno()), mid, until, write_end)
            code = 0
        finally:
            os._exit(code)
    if not memory:
        os.close(write_end)
    return _Child(pid=pid, said=read_end, memory=memory)


def _child(path: Path, info: os.stat_result, mid: int, until: int | None, out: int) -> None:
    with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb") as g:
        mine = os.fstat(g.fileno())
        if (mine.st_dev, mine.st_ino) != (info.st_dev, info.st_ino):
            raise OSError(f"{path} was replaced")  # another file now: parsed by the parent
        g.seek(mid)
        part = parse_part(path, g, size=0, lines=0, stop=None if until is None else until - mid)
    said = (pack(part.results), part.problems, part.size, part.lines, part.truncated, part.before)
    with open(out, "wb") as outlet:
        pickle.dump(said, outlet, protocol=pickle.HIGHEST_PROTOCOL)


def _finish(child: _Child) -> Part | None:
    """The child's part (counted from where it began), or None when it failed."""
    data: Any = b""
    with open(child.said, "rb") as outlet:
        if child.memory:  # written whole before the child exited (or it failed)
            _, status = os.waitpid(child.pid, 0)
            if size := os.fstat(outlet.fileno()).st_size:  # read where it lies: no copy
                data = mmap.mmap(outlet.fileno(), size, prot=mmap.PROT_READ)
        else:
            try:
                data = outlet.read()
            finally:
                _, status = os.waitpid(child.pid, 0)
    try:
        if os.waitstatus_to_exitcode(status) != 0:
            return None
        packed, problems, size, lines, truncated, before = pickle.loads(data)
    except Exception:  # a child cut short while writing: its part is parsed here
        return None
    finally:
        if isinstance(data, mmap.mmap):
            data.close()
    return Part(unpack(packed), list(problems), size, lines, truncated, (before[0], before[1]))


def _stop(child: _Child) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(child.pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.close(child.said)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(child.pid, 0)


def _moved_on(second: Part, first: Part) -> Part:
    """`second`, parsed from the end of `first` but counted from nothing, counted on
    from `first`'s lines and bytes."""
    return Part(
        results=second.results,
        problems=[dataclasses.replace(p, line=p.line + first.lines) for p in second.problems],
        size=first.size + second.size,
        lines=first.lines + second.lines,
        truncated=second.truncated,
        before=second.before,
    )
