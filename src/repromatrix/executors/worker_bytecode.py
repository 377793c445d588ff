"""The worker's own bytecode in its copy under the cache (`program-*`), written whole or
not at all.

CPython writes a `.pyc` with one write() and takes a short one as whole (importlib's
`_write_atomic`, py_compile's too): a worker started with less room left on the cache's
disk than one of its files' bytecode renamed a cut `.pyc` into place, and every later
worker of that copy failed to import it (EOFError: "the worker exited (1) before
connecting"), each cell of every later run an error record, long after the disk had room
again. So the worker's own files are compiled here alone, each read back before it is put
in place, and `worker_main` imports them with bytecode writing off; what the cells import
keeps the user's setting.

Standard library only: this file runs in environments that do not have repromatrix.
"""

from __future__ import annotations

import contextlib
import importlib.util
import marshal
import os
import py_compile

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
        except (EOFError, ValueError, TypeError) as exc:  # cut by a short write
            raise OSError(f"{made}: cut short") from exc
        os.replace(made, pyc)  # atomic: workers may race
    finally:
        with contextlib.suppress(OSError):
            os.unlink(made)
