"""Ending the `repromatrix` command's own process at once, once its work is written and
said: a report of 100,000 records otherwise spent 0.1 s of its end freeing millions of
objects, one at a time, for an interpreter about to go (the kernel frees them at once).

Only the process `repromatrix.__main__` runs is ended so (`own_process`); one that calls
`cli.main` itself (a test, a Python program) keeps its process and the command's objects
are freed as ever.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

_own = {"process": False}  # set by `own_process`, read by `end_now`


def own_process() -> None:
    """Said by `repromatrix.__main__`: this process is the command's own, which `end_now`
    may end."""
    _own["process"] = True


def end_now(code: int, *held: object) -> None:
    """In the command's own process (`own_process`), end it now with exit status `code`:
    standard output and error flushed, logging shut down (what the interpreter's end does
    that a report needs), `held` (what the command made, still referenced by the caller)
    never freed. Elsewhere nothing: the caller returns `code`. The caller has closed its
    files, waited for its children and said its last line."""
    if not _own["process"]:
        return
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # as at the interpreter's end: nothing to say
            stream.flush()
    os._exit(code)
