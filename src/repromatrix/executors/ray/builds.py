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
import socket
from collections.abc import Hashable
from pathlib import Path

from repromatrix.executors.base import FailedBuild, FailedBuilds
from repromatrix.executors.build_words import node_cause

_NAMESPACE = "repromatrix"

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
    words = _own.get(why) or _node_words(why, log)
    if words is None:
        return None
    return (
        f"not built on Ray node {socket.gethostname()} for the node's own want ('{words}' "
        f"in its build log): {why}; the next run builds it again"
    )


def _node_words(why: str, log: Path | None) -> str | None:
    """The words of a failed build (`why`, its log) that make it this node's own want:
    `node_cause`'s, or the node's clone of a library's git source failing (a path only
    the driver's host has, a host the node cannot reach), which the driver had cloned to
    resolve the cell's commits. Its cells were error records, exit 0, that later runs
    reused once the node reached it."""
    if why.startswith("cannot clone "):
        return "cannot clone"
    return node_cause(why, log)


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
        words = _node_words(why, log)
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
