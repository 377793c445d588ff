"""Report files written side by side: each slow writer (the tables, the JUnit file) in a
forked child while this process renders the pages.

Why fork: the report is built once in memory (100,000 records take seconds to build), and
a forked child reads it as it is, copy-on-write, with nothing to pickle or load again.
Writing the files one after another left all but one core idle. Where fork is not safe
(threads are running: a child would inherit their locks held), not there (not POSIX), or
the memory a child copies is not to spare, each writer runs here, in turn, as before.

A child reports failure by its exit status and one line on a pipe: an OSError comes back
as an OSError with its errno and file name (so a full disk reads as a full disk, and the
staged output is discarded as for any write here); anything else as a RuntimeError.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from repromatrix.forking import cpus, fork_possible, give_back_free_memory

__all__ = ["WriterKilled", "default_jobs", "fork_possible", "side_by_side"]

#: What a child that fails says, at most (one JSON line).
_MAX_SAID = 4096


class WriterKilled(OSError):
    """A child writing report files was killed by a signal: most often the kernel's, out
    of memory, as the child copies what it reads. No file of the report is to blame."""

    #: What to do about it, said where the report's write failures are said.
    fix = "run it again with --jobs 1 (one process: less memory)"


@dataclass(frozen=True)
class _Child:
    name: str
    pid: int
    said: int  # read end of the child's pipe


#: Parts of a cold parse past this many save little: the parent still unpacks every
#: child's records, one child after another. On a 16-CPU host (5 interleaved cold reports
#: of 100,000 light records, 2026-12-05) the medians were 12.2 s at 2, 11.4 s at 4 and
#: 9.7 s at 8 parts, each run's spread wider than those gaps; peak memory the same.
DEFAULT_JOBS_MOST = 4


def default_jobs() -> int:
    """`report`'s `--jobs` when none is given: the CPUs this process may run on, at most
    `DEFAULT_JOBS_MOST` (2 or more: the tables and junit.xml take no time of their own,
    100,000 records in about 4.9 s instead of 6 s, warm; a large results file is parsed
    in that many parts), else 1. `fork_possible` still decides at the fork."""
    return max(1, min(cpus(), DEFAULT_JOBS_MOST))


@contextlib.contextmanager
def side_by_side(
    writers: Sequence[tuple[str, Callable[[], None]]], *, fork: bool = True
) -> Iterator[None]:
    """Run each `(name, writer)` in a forked child while the body runs here; on the way
    out wait for them all and raise the first failure. When the body fails, the children
    are stopped (what they wrote is discarded with the rest) and the body's error wins.
    Without `fork` (or where it is not possible) the writers run here after the body."""
    if not (fork and fork_possible()):
        yield
        for _, write in writers:
            write()
        return
    children: list[_Child] = []
    try:
        for name, write in writers:
            children.append(_start(name, write))
        yield
    except BaseException:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)
        for child in children:
            _reap(child)
        raise
    failures = [failure for child in children if (failure := _reap(child)) is not None]
    if failures:
        raise failures[0]


def _start(name: str, write: Callable[[], None]) -> _Child:
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    give_back_free_memory()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the caller's stack (no finally, no atexit)
        os.close(read_end)
        code = 0
        try:
            write()
        except OSError as exc:
            code = 1
            said = {"errno": exc.errno, "strerror": exc.strerror, "filename": exc.filename}
            _say(write_end, said)
        except BaseException as exc:  # everything is reported to the parent
            code = 2
            _say(write_end, {"error": f"{type(exc).__name__}: {exc}"})
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os._exit(code)
    os.close(write_end)
    return _Child(name=name, pid=pid, said=read_end)


def _say(fd: int, said: dict[str, object]) -> None:
    data = json.dumps(said, default=str).encode()[:_MAX_SAID]
    with contextlib.suppress(OSError):
        os.write(fd, data)


def _reap(child: _Child) -> BaseException | None:
    """Wait for `child`; its failure as the exception to raise here, or None."""
    try:
        chunks = []
        while chunk := os.read(child.said, _MAX_SAID):
            chunks.append(chunk)
    finally:
        os.close(child.said)
    _, status = os.waitpid(child.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        return None
    try:
        said = json.loads(b"".join(chunks) or b"{}")
    except ValueError:
        said = {}
    if "errno" in said:
        return OSError(said["errno"], said.get("strerror") or "", said.get("filename"))
    if code < 0:
        what = f"killed by signal {-code}"
        if -code == signal.SIGKILL:
            what += " (out of memory?)"
        return WriterKilled(errno.EIO, f"its process was {what}", child.name)
    return RuntimeError(f"writing {child.name} failed: {said.get('error', f'exit {code}')}")
