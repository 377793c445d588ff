"""Which failed environment builds were the machine's own (no network to the index, no
compiler, no room, no memory), read from the build's reason and log, and not the pins'.

Such a failure is no verdict on the pins: stored as an error, it was reused by every
later run after the machine mended (its index back, its compiler installed), and the
build was never tried again. A local run notes such cells "not run here" and ends with
exit 7; a Ray node keeps it for itself (`ray/builds.py`). A source that does not build
must never be taken for one: its cells would never get their error record.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from repromatrix.model import Status
from repromatrix.records import Result

#: What pip's (or a build's) output says when the node, not the pins, failed the build.
NODE_WORDS = (
    # The network: the index, a URL or a proxy out of the node's reach.
    "NewConnectionError",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "No route to host",
    "Connection refused",
    "ConnectTimeoutError",
    "Read timed out",
    "ProxyError",
    "SSLError",
    # The toolchain: a compiler, nvcc or headers the node lacks.
    "failed: No such file or directory",  # distutils: command 'gcc' failed: No such file…
    "unable to execute",
    "No CMAKE_C_COMPILER could be found",
    "No CMAKE_CXX_COMPILER could be found",
    "nvcc: not found",
    "Python.h: No such file or directory",
    "CUDA_HOME environment variable is not set",
    # Room and memory (a full disk stops the run before it gets here: `full_in`).
    "No space left on device",
    "Disk quota exceeded",
    "Cannot allocate memory",
    "Killed signal terminated program",
)

#: How much of a build's log is read for `NODE_WORDS`: pip's reasons are at its end.
_LOG_TAIL = 256 * 1024


#: What pip says when it got as far as building a source, which then failed (pip 22 on;
#: older pips: "Command errored out").
_BUILD_FAILED = re.compile(
    r"subprocess-exited-with-error|Command errored out with exit status|did not run successfully"
)


#: What pip says of an index it tried (a warning, a page it skipped), and the colours an
#: engine's build log gives such lines.
_PIP_CHATTER = ("WARNING: ", "Could not fetch URL ")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")

#: setuptools' word for a compiler or build tool the node lacks (its distutils says
#: "[Errno 2] No such file or directory: 'gcc'", none of `NODE_WORDS`).
_NO_TOOL = re.compile(
    r"No such file or directory: '(?:[^'\n]*/)?(?:[\w.+-]*-)?"
    r"(?:gcc|g\+\+|cc|c\+\+|clang|clang\+\+|nvcc|cmake|ninja|make)'"
)


#: pip's warning of a find-links folder that is not there (PIP_FIND_LINKS, pip.conf's
#: find-links: a share not mounted); of a file:// index's page it says "neither a file nor
#: a directory", an index that lacks the project, which is no want of the machine's.
_NO_FOLDER = re.compile(r"Location '[^'\n]*' is ignored: it is either a non-existing path")


def node_cause(why: str, log: Path | None) -> str | None:
    """Which of `NODE_WORDS` a failed build's reason or log holds, None when none."""
    text = why
    if log is not None:
        with contextlib.suppress(OSError), log.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - _LOG_TAIL))
            text += "\n" + f.read().decode(errors="replace")
    if built := _BUILD_FAILED.search(text):
        # pip found the source and built it: what it said of the indexes before ("Retrying
        # ... Connection refused", "Could not fetch URL ... SSLError" of one it then did
        # without) says nothing of that failure, and took a source that does not compile
        # for the machine's want (noted on every run, never recorded). What counts is what
        # the build said, after pip's line that it failed, without pip's own lines (not
        # indented, as the build's are) of a second try (a pin asked again as pip spells it).
        lines = _ANSI.sub("", text[built.start() :]).splitlines()
        text = "\n".join(line for line in lines if not line.startswith(_PIP_CHATTER))
    found = next((words for words in NODE_WORDS if words in text), None)
    for pattern in (_NO_TOOL, _NO_FOLDER):
        if found is None and (said := pattern.search(text)):
            found = said.group()
    return found


def own_build(harness_error: str | None, log: Path, known: dict[str, str]) -> str | None:
    """The words that make a cell's failed environment build (`harness_error`, its
    outcome's; `log`, its build log) the machine's own, else None. `known`: the reasons of
    this run's builds found so, and their words, kept here too, since a later cell of the
    same pins skipped the build and has its reason but not its log."""
    why = (harness_error or "").removeprefix("environment: ")
    if not why or why == harness_error:  # not a build's failure
        return None
    words = known.get(why) or node_cause(why, log)
    if words is not None:
        known[why] = words
    return words


#: How a cell that skipped its run's failed build names that build's log (`local.py`).
SKIPPED_BUILD = "# not built again: this run's build failed, its log is "


def stored_own_build(record: Result) -> str | None:
    """The words that make a stored `error` record's environment build the machine's own,
    read from the build log it names (on this machine, where it still is); else None.
    Records stored before such builds were noted said pip's "No matching distribution
    found" of an index out of reach, as of a release that an index lacks: their log
    alone tells them apart, and they were reused by every later run."""
    if record.status is not Status.ERROR or not record.reason.startswith("environment: "):
        return None
    harness = record.provenance.get("harness")
    workdir = harness.get("workdir") if isinstance(harness, dict) else None
    if not isinstance(workdir, str) or not workdir:
        return None
    log = Path(workdir) / "env-build.log"
    with contextlib.suppress(OSError, ValueError), log.open(encoding="utf-8") as f:
        first = f.readline(4096)
        if first.startswith(SKIPPED_BUILD):  # a later cell of the pins: the build's log
            log = Path(first.removeprefix(SKIPPED_BUILD).strip())
    if not log.is_file():  # gone with the cache, or another machine's
        return None
    return node_cause(record.reason.removeprefix("environment: "), log)
