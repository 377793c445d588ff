"""Library builds that failed in a run, known to every slot on every node of the cluster.

A local run builds an environment once: its later cells get the first build's error (an
sdist whose compile fails late costs an hour each time). On a cluster each slot is a
worker process of its own, on one node or another, and each built the environment again
and failed again. The first failure is kept in the cluster's own key-value store (Ray's
GCS), per run and per node interpreter (nodes with another Python build another
environment); the slots' executors read it before they build.

A failure whose log shows the node's own want (no network to the index, no compiler, no
room, no memory) is kept for that node alone: the same pins build on another node, and a
node whose index was unreachable had every other node's cells of them end in its error.
Its cells are noted "not run here" (`node_failure`), not stored as errors: the next run
reused such an error after the node's index came back, and the build was never tried again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import socket
from collections.abc import Hashable
from pathlib import Path

from repromatrix.executors.base import FailedBuild, FailedBuilds

_NAMESPACE = "repromatrix"

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
        # for the node's want (noted on every run, never recorded). What counts is what
        # the build said, after pip's line that it failed, without pip's own lines (not
        # indented, as the build's are) of a second try (an image build's loose pins).
        lines = _ANSI.sub("", text[built.start() :]).splitlines()
        text = "\n".join(line for line in lines if not line.startswith(_PIP_CHATTER))
    found = next((words for words in NODE_WORDS if words in text), None)
    if found is None and (tool := _NO_TOOL.search(text)):
        found = tool.group()
    return found


#: The reasons of this process's failed builds that were the node's own, and the words
#: that said so: a cell that skipped the build (`FailedBuilds`) has the first build's
#: reason, not its log.
_own: dict[str, str] = {}

#: The key, in a Ray node's harness of a "not run here" note, that says the note is a
#: build that failed for the node's own want (the driver's run then ends with exit 7).
NODE_BUILD = "node_build"


def node_failure(harness_error: str | None, log: Path) -> str | None:
    """The "not run here" reason of a cell whose environment failed to build for this
    node's own want (`harness_error`: its outcome's; `log`: its build log), else None."""
    why = (harness_error or "").removeprefix("environment: ")
    if not why or why == harness_error:  # not a build's failure
        return None
    words = _own.get(why) or node_cause(why, log)
    if words is None:
        return None
    return (
        f"not built on Ray node {socket.gethostname()} for the node's own want ('{words}' "
        f"in its build log): {why}; the next run builds it again"
    )


def _node_id() -> str:
    """This Ray node's id (several nodes may share a host name), else the host name."""
    with contextlib.suppress(Exception):
        import ray

        return str(ray.get_runtime_context().get_node_id())
    return socket.gethostname()


class ClusterFailedBuilds(FailedBuilds):
    """`FailedBuilds` shared by the cluster: `scope` is the node interpreter's identity."""

    def __init__(self, scope: str) -> None:
        super().__init__()
        self._scope = scope
        self._node = _node_id()

    def get(self, run_id: str, key: Hashable) -> FailedBuild | None:
        found = super().get(run_id, key)
        if found is not None:
            return found
        raw: bytes | None = None
        with contextlib.suppress(Exception):  # no store: this process's memory alone
            from ray.experimental.internal_kv import _internal_kv_get

            for name in (self._name(run_id, key), self._name(run_id, key, self._node)):
                raw = _internal_kv_get(name, namespace=_NAMESPACE)
                if raw:
                    break
        if not raw:
            return None
        try:
            data = json.loads(raw)
            why, log, host = str(data["why"]), str(data.get("log") or ""), str(data["host"])
        except (ValueError, KeyError, TypeError):
            return None
        if data.get("node"):  # this node's own want, found by another of its slots
            _own[why] = str(data["node"])
        # The log is on the node that built: named with it when that is another one.
        where = Path(log if host == socket.gethostname() else f"{host}:{log}") if log else None
        super().remember(run_id, key, why, where)
        return super().get(run_id, key)

    def remember(self, run_id: str, key: Hashable, why: str, log: Path | None = None) -> None:
        if super().get(run_id, key) is not None:
            # Known already (a cell that skipped the build, its log a note): shared as the
            # first build's was; a note's log shows no node's want, the build's did.
            return
        super().remember(run_id, key, why, log)
        words = node_cause(why, log)
        data = {"why": why, "log": str(log) if log else "", "host": socket.gethostname()}
        if words:
            _own[why] = data["node"] = words
        # The node's own want: its other slots skip the build, other nodes try it.
        node = self._node if words else ""
        with contextlib.suppress(Exception):  # kept here at least
            from ray.experimental.internal_kv import _internal_kv_put

            _internal_kv_put(
                self._name(run_id, key, node), json.dumps(data), overwrite=False,
                namespace=_NAMESPACE,
            )  # fmt: skip

    def _name(self, run_id: str, key: Hashable, node: str = "") -> str:
        scope = f"{self._scope}\0{node}" if node else self._scope
        digest = hashlib.sha256(f"{scope}\0{key!r}".encode()).hexdigest()[:32]
        return f"failed-build:{run_id}:{digest}"
