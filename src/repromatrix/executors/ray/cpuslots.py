"""The run's CPU slots as one Ray placement group: one bundle of one CPU per slot.

A CPU cell asks Ray for one CPU, and a cluster may have many more CPUs than `--jobs`: a
cell submitted ahead of its turn would run beside the slot's current one. Pinned to its
slot's bundle instead, a cell waits in Ray until that bundle is free, so a CPU slot can
keep its next cells submitted as a GPU slot does (no round trip through the driver
between cells) while never more than `--jobs` CPU cells run at once.

The group is made when the first CPU cell asks, and only when the cluster has the CPUs
free for it right away; otherwise (or when Ray cannot place it promptly) CPU cells run as
plain one-CPU tasks, one at a time per slot, as before. When a node holding a bundle
dies, Ray places the bundle again on a node with a free CPU and retries the cell there.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

#: How long Ray may take to place a group whose CPUs the cluster reports free.
_PLACE_S = 5.0
#: How long a bundle may stay unplaced (its node died, no CPU free elsewhere) before a
#: cell waiting on it is given up as an infrastructure failure.
UNPLACED_GRACE_S = 30.0


class CpuSlots:
    """Slot name → bundle of the run's placement group (made on first use)."""

    def __init__(self, slots: int) -> None:
        self.slots = max(1, slots)
        self._lock = threading.Lock()
        self._group: Any = None
        self._tried = False
        self._bundle: dict[str, int] = {}
        self._unplaced_since: float | None = None

    def available(self) -> bool:
        """Whether CPU cells are pinned to bundles (making the group on first call)."""
        with self._lock:
            if not self._tried:
                self._tried = True
                self._group = _make(self.slots)
            return self._group is not None

    def options(self, slot_name: str) -> dict[str, Any] | None:
        """Ray task options that pin a cell of `slot_name` to its bundle; None when there
        is no group or every bundle already has another slot (never: the scheduler runs
        exactly `slots` CPU slots)."""
        if not self.available():
            return None
        with self._lock:
            index = self._bundle.get(slot_name)
            if index is None:
                if len(self._bundle) >= self.slots:
                    return None
                index = self._bundle[slot_name] = len(self._bundle)
        return {
            "num_cpus": 1,
            "scheduling_strategy": PlacementGroupSchedulingStrategy(
                placement_group=self._group,
                placement_group_bundle_index=index,
                placement_group_capture_child_tasks=False,
            ),
        }

    def lost(self) -> bool:
        """Whether the group has been without a node for one of its bundles longer than
        the grace period (asked while a cell waits)."""
        if self._group is None:
            return False
        try:
            state = ray.util.placement_group_table(self._group).get("state")
        except Exception:  # the cluster's table unreadable: keep waiting, Ray retries
            return False
        if state == "CREATED":
            self._unplaced_since = None
            return False
        now = time.monotonic()
        if self._unplaced_since is None:
            self._unplaced_since = now
        return now - self._unplaced_since > UNPLACED_GRACE_S

    def close(self) -> None:
        with self._lock:
            group, self._group = self._group, None
        if group is not None:
            with contextlib.suppress(Exception):  # the job's end removes it too
                remove_placement_group(group)


def _make(slots: int) -> Any:
    """A placement group of `slots` one-CPU bundles, spread over the nodes, or None."""
    if ray.available_resources().get("CPU", 0.0) < slots:
        return None
    group = placement_group([{"CPU": 1.0}] * slots, strategy="SPREAD")
    if group.wait(timeout_seconds=_PLACE_S):
        return group
    remove_placement_group(group)
    return None
