"""A Docker engine with the NVIDIA runtime but no driver to use it: a GPU cell's container
cannot start ('could not select device driver "" with capabilities: [[gpu]]'), every GPU
cell alike. That is this host's fault, not the cell's: no record, the run stops, one line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("docker")

from cells import CELL

from repromatrix.executors.base import MISSING_TOOL, Slot
from repromatrix.options import SessionConfig

_SAID = (
    "docker worker: 500 Server Error for http+docker://localhost/v1.47/containers/ab/start: "
    'Internal Server Error ("could not select device driver "" with capabilities: [[gpu]]")'
)


class _AliveApi:
    def ping(self) -> bool:
        return True


class _AliveEngine:
    api = _AliveApi()

    def info(self) -> dict[str, Any]:
        return {"Runtimes": {"nvidia": {}, "runc": {}}}


@pytest.mark.parametrize(("said", "stops"), [(_SAID, True), ("docker worker: exit 3", False)])
def test_a_gpu_driver_the_engine_cannot_select_stops_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, said: str, stops: bool
) -> None:
    # Seen with `dockerd --add-runtime nvidia=runc` on a host without the driver: the cell
    # was recorded "error: docker worker: could not select device driver ...", exit 0,
    # and later runs reused that record once the driver was installed.
    from repromatrix.executors.docker.executor import DockerExecutor

    config = SessionConfig(results=tmp_path / "res", cache=tmp_path / "cache")
    executor = DockerExecutor(_AliveEngine(), config=config, env={})  # type: ignore[arg-type]
    failed = executor._failed(CELL, datetime.now(UTC), said, {})
    monkeypatch.setattr(executor, "_run", lambda *_: failed)
    got = executor.run(CELL, Slot(name="gpu0"), tmp_path / "runs" / "r1" / CELL.key)
    why = got.harness.get(MISSING_TOOL)
    if not stops:  # any other harness failure stays the cell's error record
        assert why is None
        return
    assert isinstance(why, str)
    assert "cannot give its container a GPU" in why
    assert "nvidia-container-toolkit" in why
    assert "\n" not in why
