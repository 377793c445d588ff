"""A Ray worker unpickles a run's shared config once per key, not once per cell."""

from __future__ import annotations

import pickle

from repromatrix.executors.ray import node
from repromatrix.executors.ray.node import Shared, shared_for
from repromatrix.options import SessionConfig


def _shared(tag: str) -> bytes:
    return pickle.dumps(Shared(config=SessionConfig(), scripts={"r.py": tag.encode()}))


def test_each_key_is_unpickled_once_and_old_keys_are_let_go() -> None:
    calls: list[str] = []

    def fetch(key: str, blob: bytes) -> Shared:
        calls.append(key)
        shared: Shared = pickle.loads(blob)
        return shared

    first = shared_for("k0", lambda: fetch("k0", _shared("a")))
    again = shared_for("k0", lambda: fetch("k0", _shared("other")))
    assert again is first
    assert calls == ["k0"]
    assert first.scripts == {"r.py": b"a"}
    for i in range(1, node._SHARED_KEPT + 1):  # that many newer keys push k0 out
        key = f"k{i}"
        shared_for(key, lambda key=key: fetch(key, _shared(key)))  # type: ignore[misc]
    assert len(node._shared) == node._SHARED_KEPT
    assert shared_for("k0", lambda: fetch("k0", _shared("b"))).scripts == {"r.py": b"b"}
    assert calls.count("k0") == 2
