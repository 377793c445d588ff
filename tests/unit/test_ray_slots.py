"""The run's slots as actors: one per slot, made at its first cell, let go when lost or
idle (the bookkeeping; tests/integration/test_ray.py runs them on a real cluster)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray")

from repromatrix.executors.ray.slots import SlotActors


class _Method:
    def __init__(self, actor: _Actor) -> None:
        self.actor = actor

    def remote(self, *args: Any) -> tuple[str, tuple[Any, ...]]:
        self.actor.calls.append(args)
        return (self.actor.name, args)


class _Actor:
    def __init__(self, name: str, options: Mapping[str, Any]) -> None:
        self.name, self.options = name, dict(options)
        self.calls: list[tuple[Any, ...]] = []
        self.run = _Method(self)


def _slots() -> tuple[SlotActors, list[_Actor], list[_Actor]]:
    made: list[_Actor] = []
    ended: list[_Actor] = []

    def make(options: Mapping[str, Any]) -> _Actor:
        made.append(_Actor(f"a{len(made)}", options))
        return made[-1]

    return SlotActors(make, ended.append), made, ended


def test_one_actor_per_slot_made_at_its_first_cell() -> None:
    slots, made, ended = _slots()
    first, ref = slots.call("gpu0", {"num_gpus": 1}, ("c1",))
    again, _ = slots.call("gpu0", {"num_gpus": 1}, ("c2",))
    other, _ = slots.call("cpu0", {"num_cpus": 1}, ("c3",))
    assert first is again is made[0]
    assert other is made[1]
    assert ref == ("a0", ("c1",))
    assert made[0].calls == [("c1",), ("c2",)]
    assert made[1].options == {"num_cpus": 1}
    assert ended == []


def test_a_lost_actor_is_replaced_at_the_slots_next_cell() -> None:
    slots, _, ended = _slots()
    lost, _ = slots.call("gpu0", {}, ("c1",))
    slots.lost("gpu0", lost)
    assert ended == [lost]
    fresh, _ = slots.call("gpu0", {}, ("c2",))
    assert fresh is not lost
    slots.lost("gpu0", lost)  # news of the old one changes nothing for the new one
    assert slots.call("gpu0", {}, ("c3",))[0] is fresh


def test_only_actors_with_nothing_in_flight_are_let_go() -> None:
    slots, made, ended = _slots()
    busy, _ = slots.call("gpu0", {}, ("c1",))
    idle, _ = slots.call("gpu1", {}, ("c2",))
    slots.ended("gpu1")
    assert slots.release_idle() == 1
    assert ended == [idle]
    assert slots.call("gpu0", {}, ("c3",))[0] is busy
    assert slots.call("gpu1", {}, ("c4",))[0] is not idle
    slots.kill_all()
    assert busy in ended
    assert slots.call("gpu0", {}, ("c5",))[0] is not busy
    assert len(made) == 4


def test_a_cluster_address_is_checked_in_seconds_not_minutes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket as socketlib
    import time

    from repromatrix.errors import ClusterUnreachable, UsageError
    from repromatrix.executors.ray import cluster

    for bad in ("127.0.0.1", "127.0.0.1:notaport", "host:0", "ray://127.0.0.1:10001"):
        with pytest.raises(UsageError):
            cluster.checked_address(bad)
    with socketlib.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]  # closed again: nothing listens there
    started = time.monotonic()
    with pytest.raises(ClusterUnreachable, match="no Ray cluster answers there"):
        cluster.checked_address(f"127.0.0.1:{free}")
    assert time.monotonic() - started < cluster.CONNECT_S + 1
    # "auto" follows the address `ray start` recorded on this machine, if any.
    monkeypatch.setattr(cluster, "CURRENT_CLUSTER", tmp_path / "none")
    with pytest.raises(ClusterUnreachable, match="no Ray cluster was started on this machine"):
        cluster.checked_address(None)
    with socketlib.socket() as head:
        head.bind(("127.0.0.1", 0))
        head.listen(1)
        (tmp_path / "current").write_text(f"127.0.0.1:{head.getsockname()[1]}\n")
        monkeypatch.setattr(cluster, "CURRENT_CLUSTER", tmp_path / "current")
        assert cluster.checked_address(None) == "auto"
        assert cluster.checked_address("local") == "local"
    # A head recorded by an earlier `ray start` that is gone: the line names where the
    # address came from, not a --ray-address the user never gave.
    (tmp_path / "current").write_text(f"127.0.0.1:{free}\n")
    with pytest.raises(ClusterUnreachable) as stale:
        cluster.checked_address(None)
    assert str(stale.value).startswith(
        f"--executor ray: 127.0.0.1:{free}, the cluster last started on this machine "
        f"({tmp_path / 'current'}): no Ray cluster answers there"
    )
    assert "--ray-address 127.0.0.1" not in str(stale.value)


def test_idle_actors_let_go_for_a_waiting_slot_are_those_holding_what_it_waits_for() -> None:
    """A slot waiting for an H100 frees an idle H100 actor, never an idle CPU or L4 one."""
    slots, _, ended = _slots()
    h100 = {"num_cpus": 0, "resources": {"repromatrix-gpu-H100": 1.0}}
    idle_h100, _ = slots.call("gpu0", h100, ("c1",))
    idle_l4, _ = slots.call("gpu1", {"num_cpus": 0, "resources": {"repromatrix-gpu-L4": 1.0}}, ())
    idle_cpu, _ = slots.call("cpu0", {"num_cpus": 1}, ("c3",))
    slots.call("gpu2", {**h100, "label_selector": {"x": "y"}}, ("c4",))  # busy
    for slot in ("gpu0", "gpu1", "cpu0"):
        slots.ended(slot)
    assert slots.release_idle(like={**h100, "label_selector": {"x": "y"}}) == 1
    assert ended == [idle_h100]
    assert slots.release_idle() == 2
    assert ended == [idle_h100, idle_l4, idle_cpu]
