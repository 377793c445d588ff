"""Results files as last parsed, kept in the cache between commands.

Parsing a record costs ~50 µs (JSON, validation, migration); a results file of 100,000
records took most of a `report`'s load time, and every `run` and `bisect` parses the store
again to decide what to reuse. A results file only grows (records are appended), so the
records parsed from its first N bytes stay right as long as those bytes do: this keeps
them, with N and a digest of those bytes, and the next load parses only what came after.

Trust: an entry is read only if the file's bytes up to N hash to its digest, it was made
by the same repromatrix source, pydantic and Python (a stamp over them: a changed record
class must not be filled from an old layout), and it belongs to this user and nobody else
can write it (an entry is a pickle). Anything else, or any error, is a plain parse: the
cache can make a load faster, never different. Small files are not kept (they parse in
milliseconds).

Kept `aside` (`report` with a second CPU), an entry is written by a forked child while
this process goes on: packing, hashing and pickling 100,000 records took 0.3 s of the
report's one busy CPU, which then builds the report for seconds with the other idle.
`finish` waits for such children; until then the entry may not be there yet.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import pickle
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from repromatrix.forking import fork_possible

#: Files smaller than this parse in milliseconds; they get no entry.
MIN_BYTES = 1 << 20
_CHUNK = 1 << 20
_MAGIC = b"repromatrix-parsed 1 "


@dataclass(frozen=True)
class Prefix:
    """What an entry holds: the payload parsed from a file's first `size` bytes (`lines`
    whole lines), and the digest of those bytes as it stands after hashing them."""

    size: int
    lines: int
    payload: Any
    hasher: Any  # hashlib's object, fed the first `size` bytes


@functools.cache
def _stamp() -> bytes:
    """Identifies the code that parsed: repromatrix's sources, pydantic, Python."""
    import pydantic

    digest = hashlib.sha256(f"{sys.version}|{pydantic.VERSION}".encode())
    package = Path(__file__).parent
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest().encode()


def parsed_cache(cache: Path, *, aside: bool = False) -> ParsedCache:
    """The entries of the runs' cache folder (`--cache`); `aside`: written by forked
    children (see `ParsedCache.finish`)."""
    return ParsedCache(cache.resolve() / "parsed", aside=aside)


class ParsedCache:
    """Entries under `folder`, one per results file (named by its resolved path); with
    `aside`, each written by a forked child where this process may fork one."""

    def __init__(self, folder: Path, *, aside: bool = False) -> None:
        self.folder = folder
        self.aside = aside
        self._children: list[int] = []

    def finish(self) -> None:
        """Wait for the children writing entries aside (what they wrote is then there)."""
        while self._children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self._children.pop(), 0)

    def _entry(self, path: Path) -> Path:
        # The spelling too: problems found in the file name it as it was given.
        named = f"{path.resolve()}\0{path}"
        name = hashlib.sha256(named.encode(errors="surrogateescape")).hexdigest()[:32]
        return self.folder / f"{name}.pickle"

    def resume(self, path: Path, f: IO[bytes]) -> Prefix | None:
        """The stored prefix of `path` when it still holds, `f` then positioned after it;
        else None with `f` at the start."""
        try:
            found = self._read(path, f)
        except Exception:  # a damaged, foreign or old entry is a parse, never an error
            found = None
        f.seek(0)
        if found is not None:
            f.seek(found.size)
        return found

    def _read(self, path: Path, f: IO[bytes]) -> Prefix | None:
        with self._entry(path).open("rb") as e:
            info = os.fstat(e.fileno())
            if info.st_uid != os.geteuid() or info.st_mode & 0o022:
                return None
            if e.readline() != _MAGIC + _stamp() + b"\n":
                return None
            size, lines, digest, payload = pickle.load(e)
        hasher = _hash(f, hashlib.sha256(), 0, size)
        if hasher is None or hasher.digest() != digest:
            return None
        return Prefix(size=size, lines=lines, payload=payload, hasher=hasher)

    def keep(
        self,
        path: Path,
        f: IO[bytes],
        *,
        prefix: Prefix | None,
        size: int,
        lines: int,
        payload: Callable[[], Any],
    ) -> None:
        """Store what `payload` makes (what was parsed from the first `size` bytes,
        `lines` lines, of `path`) when it says more than the entry there: it is not made
        otherwise (packing 100,000 records costs 0.1 s). Failures (a full disk, a
        read-only cache) only cost the next load its speed."""
        if size < MIN_BYTES or (prefix is not None and prefix.size == size):
            return
        if self.aside and fork_possible():
            sys.stdout.flush()
            sys.stderr.flush()
            with contextlib.suppress(OSError):  # no memory or processes left: kept here
                pid = os.fork()
                if pid == 0:  # the child: never returns into the caller's stack
                    try:
                        self._write(path, f, prefix, size, lines, payload)
                    finally:
                        os._exit(0)
                self._children.append(pid)
                return
        self._write(path, f, prefix, size, lines, payload)

    def _write(
        self,
        path: Path,
        f: IO[bytes],
        prefix: Prefix | None,
        size: int,
        lines: int,
        payload: Callable[[], Any],
    ) -> None:
        with contextlib.suppress(Exception):
            start = prefix.size if prefix is not None else 0
            base = prefix.hasher if prefix is not None else hashlib.sha256()
            hasher = _hash(f, base, start, size)
            if hasher is None:
                return
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".parsed-")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(_MAGIC + _stamp() + b"\n")
                    pickle.dump((size, lines, hasher.digest(), payload()), out, protocol=5)
                os.replace(tmp, self._entry(path))
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise


def _hash(f: IO[bytes], hasher: Any, start: int, end: int) -> Any:
    """`hasher` fed bytes [start, end) of `f` (a copy: `hasher` is left as it was);
    None when the file is shorter than `end`."""
    hasher = hasher.copy()
    f.seek(start)
    left = end - start
    while left > 0:
        chunk = f.read(min(_CHUNK, left))
        if not chunk:
            return None
        hasher.update(chunk)
        left -= len(chunk)
    return hasher
