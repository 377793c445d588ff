"""The worker's own bytecode in its copy under the cache (`program-*`), written whole or
not at all.

CPython writes a `.pyc` with one write() and takes a short one as whole (importlib's
`_write_atomic`, py_compile's too): a worker started with less room left on the cache's
disk than one of its files' bytecode renamed a cut `.pyc` into place, and every later
worker of that copy failed to import it (EOFError: "the worker exited (1) before
connecting"), each cell of every later run an error record, long after the disk had room
again. So the worker's own files are compiled here alone, each read back before it is put
in place, and `worker_main` imports them with bytecode writing off; what the cells import
keeps the user's setting. An environment's libraries, installed without bytecode, met the
same at a cell's first import of them: `python worker_bytecode.py DIR...`, run by the
cells' interpreter when the environment is built (`envs.py`), writes theirs.

Standard library only: this file runs in environments that do not have repromatrix.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import marshal
import os
import py_compile
import sys

#: A `.pyc`'s header (magic, flags, source mtime and size) before the marshalled code.
_HEADER = 16


def own_bytecode(here: str) -> None:
    """Compile the files beside worker_main.py in its copy under the cache: under
    PYTHONDONTWRITEBYTECODE (CI, many images) every worker compiled them again, ~55 ms of
    CPU a start, a bisection's every evaluation. Elsewhere (the source tree, Docker's
    read-only mounts) nothing is written."""
    if not os.path.basename(here).startswith("program-"):
        return
    for name in os.listdir(here):
        if not name.endswith(".py") or name == "worker_main.py":
            continue
        path = os.path.join(here, name)
        pyc = importlib.util.cache_from_source(path)
        if not os.path.exists(pyc):
            # No room, a read-only cache: the import compiles it in memory instead.
            with contextlib.suppress(OSError, NotImplementedError, py_compile.PyCompileError):
                _compile_whole(path, pyc)


def _compile_whole(path: str, pyc: str) -> None:
    made = f"{pyc}.{os.getpid()}.part"
    try:
        py_compile.compile(path, cfile=made, doraise=True)
        with open(made, "rb") as f:
            data = f.read()
        try:
            marshal.loads(data[_HEADER:])
        except (EOFError, ValueError, TypeError) as exc:  # cut by a short write: no room
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), made) from exc
        os.replace(made, pyc)  # atomic: workers may race
    finally:
        with contextlib.suppress(OSError):
            os.unlink(made)


#: What stops `compile_tree`: the disk took no more (any other file's failure skips it).
_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT})


def compile_tree(root: str) -> None:
    """Every `.py` under `root` compiled whole; OSError once the disk takes no more. A file
    that does not compile (a template, Python 2) is skipped, as the import would fail."""
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [d for d in subfolders if d != "__pycache__"]
        for name in names:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            try:
                _compile_whole(path, importlib.util.cache_from_source(path))
            except OSError as exc:
                if exc.errno in _NO_ROOM:
                    raise
            except (NotImplementedError, py_compile.PyCompileError):
                continue


#: A repro's folder's files past this are no code the matrix lets it import (2 MiB each).
_MAX_CODE_BYTES = 2 << 20


def compile_folder(folder: str) -> None:
    """The `.py` files of a repro's folder itself (not below it: a script at the root of a
    large repository), whose bytecode is missing, stale or cut, compiled whole: a cell's
    import would write it with CPython's one write(); OSError once the disk takes no more."""
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if not name.endswith(".py") or not os.path.isfile(path):
            continue
        pyc = importlib.util.cache_from_source(path)
        try:
            if os.path.getsize(path) > _MAX_CODE_BYTES or _current(path, pyc):
                continue
            _compile_whole(path, pyc)
        except OSError as exc:
            if exc.errno in _NO_ROOM:
                raise
        except (NotImplementedError, py_compile.PyCompileError):
            continue


def _current(path: str, pyc: str) -> bool:
    """Whether `pyc` is whole and of `path` as it is now (by its mtime and size, as the
    import checks it; a hash-based one is left to the import)."""
    try:
        with open(pyc, "rb") as f:
            data = f.read()
        marshal.loads(data[_HEADER:])
    except (OSError, EOFError, ValueError, TypeError):
        return False
    stat = os.stat(path)
    if data[:4] != importlib.util.MAGIC_NUMBER:
        return False
    if int.from_bytes(data[4:8], "little") & 1:  # hash-based: the import checks it
        return True
    return data[8:16] == (
        (int(stat.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little")
        + (stat.st_size & 0xFFFFFFFF).to_bytes(4, "little")
    )


if __name__ == "__main__":
    flat = sys.argv[1:2] == ["--flat"]
    try:
        for tree in sys.argv[1 + flat :]:
            (compile_folder if flat else compile_tree)(tree)
    except OSError as exc:  # the words `executors.base.full_in` reads
        sys.exit(f"{exc.strerror}: {exc.filename}")
