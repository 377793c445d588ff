"""Library builds that failed in a run, known to every slot on every node of the cluster.

A local run builds an environment once: its later cells get the first build's error (an
sdist whose compile fails late costs an hour each time). On a cluster each slot is a
worker process of its own, on one node or another, and each built the environment again
and failed again. The first failure is kept in the cluster's own key-value store (Ray's
GCS), per run and per node interpreter (nodes with another Python build another
environment); the slots' executors read it before they build.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
from collections.abc import Hashable
from pathlib import Path

from repromatrix.executors.base import FailedBuild, FailedBuilds

_NAMESPACE = "repromatrix"


class ClusterFailedBuilds(FailedBuilds):
    """`FailedBuilds` shared by the cluster: `scope` is the node interpreter's identity."""

    def __init__(self, scope: str) -> None:
        super().__init__()
        self._scope = scope

    def get(self, run_id: str, key: Hashable) -> FailedBuild | None:
        found = super().get(run_id, key)
        if found is not None:
            return found
        raw: bytes | None = None
        with contextlib.suppress(Exception):  # no store: this process's memory alone
            from ray.experimental.internal_kv import _internal_kv_get

            raw = _internal_kv_get(self._name(run_id, key), namespace=_NAMESPACE)
        if not raw:
            return None
        try:
            data = json.loads(raw)
            why, log, host = str(data["why"]), str(data.get("log") or ""), str(data["host"])
        except (ValueError, KeyError, TypeError):
            return None
        # The log is on the node that built: named with it when that is another one.
        where = Path(log if host == socket.gethostname() else f"{host}:{log}") if log else None
        super().remember(run_id, key, why, where)
        return super().get(run_id, key)

    def remember(self, run_id: str, key: Hashable, why: str, log: Path | None = None) -> None:
        super().remember(run_id, key, why, log)
        data = {"why": why, "log": str(log) if log else "", "host": socket.gethostname()}
        with contextlib.suppress(Exception):  # kept here at least
            from ray.experimental.internal_kv import _internal_kv_put

            _internal_kv_put(
                self._name(run_id, key), json.dumps(data), overwrite=False, namespace=_NAMESPACE
            )

    def _name(self, run_id: str, key: Hashable) -> str:
        digest = hashlib.sha256(f"{self._scope}\0{key!r}".encode()).hexdigest()[:32]
        return f"failed-build:{run_id}:{digest}"
