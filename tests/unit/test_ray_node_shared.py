"""A Ray worker unpickles a run's shared config once per key, not once per cell."""

from __future__ import annotations

import pickle
from pathlib import Path

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


def test_a_node_gets_every_file_the_key_covers_and_nothing_outside(tmp_path: Path) -> None:
    """A repro importing `common` (not a `_*.py` helper) failed on a node that lacks this
    checkout: only the script and `_*.py` were shipped."""
    from repromatrix.executors.ray.node_scripts import scripts_folder, scripts_of

    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "r.py").write_text("import common, pkg.sub, _help\n")
    (src / "_help.py").write_text("H = 1\n")
    (src / "common.py").write_text("C = 1\n")
    (src / "pkg" / "__init__.py").write_text("")
    (src / "pkg" / "sub.py").write_text("S = 1\n")
    (src / "unrelated.py").write_text("U = 1\n")
    files = scripts_of(src / "r.py")
    assert sorted(files) == ["_help.py", "common.py", "pkg/__init__.py", "pkg/sub.py", "r.py"]
    folder = scripts_folder({**files, "../escape.py": b"x"}, tmp_path / "cache")
    assert (folder / "pkg" / "sub.py").read_text() == "S = 1\n"
    assert not (folder.parent / "escape.py").exists()
