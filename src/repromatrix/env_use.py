"""One cell's hold on an environment's caches: a lock no other cell of that environment
passes while it runs, and the stale build batons a killed cell left there removed."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from repromatrix.locks import file_lock

#: torch.utils.cpp_extension's FileBaton: a file created with O_EXCL in the build directory
#: and polled until it disappears. flashinfer 0.2.x builds every JIT kernel through it.
BATON = "lock"


@contextmanager
def exclusive_use(root: Path, caches: Sequence[Path], *, pinned: bool) -> Iterator[list[str]]:
    """Hold an environment's caches for one cell; yield the stale batons it removed.

    A cell killed mid-build (timeout, Ctrl-C, SIGTERM) leaves its baton behind, and every
    later build of that kernel waits for it forever (seen on an H100: two cells hung for
    their whole 540 s timeout after the previous run had been stopped). While we hold this
    flock, which dies with its process, no other cell of this environment runs, in this
    process or another: any baton present now is stale and is removed.

    Cells without pins build no library and may share the bare base freely, as the
    scheduler lets them: for them this does nothing.
    """
    if not pinned:
        yield []
        return
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / ".repromatrix-in-use.lock"):
        removed = []
        # Only the cache trees: installed packages (site/, src/) may ship a file "lock".
        for cache in caches:
            for baton in sorted(cache.rglob(BATON)) if cache.is_dir() else ():
                if baton.is_file() and not baton.is_symlink():
                    baton.unlink()
                    removed.append(str(baton.relative_to(root)))
        yield removed
