"""What a run does when its Docker engine stops answering mid-run (dockerd killed): one
line, exit 5, no record for the cell, nothing else said."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("docker")

import requests.exceptions
from cells import CELL

from repromatrix.executors.docker.images import Images
from repromatrix.options import SessionConfig


class _GoneApi:
    def containers(self, **_: Any) -> list[dict[str, Any]]:
        raise requests.exceptions.ConnectionError(
            ("Connection aborted.", ConnectionRefusedError(111, "Connection refused"))
        )


class _GoneEngine:
    api = _GoneApi()


def test_an_engine_gone_mid_run_adds_no_warning_of_builds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Seen with dockerd killed mid-cell: "repromatrix.docker: cannot end an environment
    # build: ('Connection aborted.', ConnectionRefusedError(111, ...))" above the run's
    # "the Docker engine stopped answering" line, in a run that built nothing. A build on
    # an engine that is gone went with it; the next run's clean-up takes its containers.
    config = SessionConfig(results=tmp_path / "res", cache=tmp_path / "cache")
    images = Images(_GoneEngine(), config=config)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING):
        images.cancel()
    assert caplog.records == []


class _DeadApi:
    def ping(self) -> bool:
        raise requests.exceptions.ConnectionError("Connection refused")


class _DeadEngine:
    api = _DeadApi()

    def info(self) -> dict[str, Any]:
        return {}


def test_an_engine_killed_while_it_streams_a_build_is_no_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Seen with dockerd killed -9 during an environment image's build: the build's stream
    # raised urllib3's ProtocolError ("Connection broken: IncompleteRead(0 bytes read)"),
    # which is no requests error: the cell was recorded "error: harness failed:
    # ProtocolError: ...", exit 0, and later runs reused it, where an engine that stops
    # answering mid-run is no record and exit 5 (README).
    import urllib3.exceptions

    from repromatrix.executors.base import Slot, engine_lost
    from repromatrix.executors.docker.executor import DockerExecutor

    config = SessionConfig(results=tmp_path / "res", cache=tmp_path / "cache")
    executor = DockerExecutor(_DeadEngine(), config=config, env={})  # type: ignore[arg-type]

    def broken(*_: Any) -> Any:
        raise urllib3.exceptions.ProtocolError(
            "Connection broken: IncompleteRead(0 bytes read)", None
        )

    monkeypatch.setattr(executor, "_run", broken)
    outcome = executor.run(CELL, Slot(name="cpu0"), tmp_path / "runs" / "r1" / CELL.key)
    assert engine_lost(outcome) == "the Docker engine stopped answering"


class _RestartingApi:
    """An engine stopped (SIGTERM, `systemctl restart docker`) as a run ends its cells."""

    def remove_container(self, cid: str, **_: Any) -> None:
        raise requests.exceptions.ConnectionError(
            ("Connection aborted.", FileNotFoundError(2, "No such file or directory"))
        )


def test_ending_a_cells_container_on_an_engine_gone_raises_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Seen with dockerd stopped by SIGTERM and started again mid-cell: the run's stop
    # (scheduler._halt → CellContainers.cancel) ended as "internal error: ConnectionError:
    # ('Connection aborted.', FileNotFoundError(2, ...)) ... report it", exit 70, where
    # README says one line and exit 5. The container is left for the next run's sweep.
    from repromatrix.executors.docker.isolated import CellContainers

    cells = CellContainers(_RestartingApi(), cell_env={})
    cells._running["c0ffee"] = "repromatrix-run-cell"
    with caplog.at_level(logging.WARNING):
        cells.cancel()
        cells.remove("c0ffee", "repromatrix-run-cell")
    assert caplog.records == []


def test_a_cell_killed_by_a_signal_as_the_engine_went_away_is_no_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Seen with dockerd stopped by SIGTERM mid-cell: the engine stops its containers with
    # SIGTERM, the isolated cell's wait answered 143 and its logs were lost to the
    # engine's socket, and the cell was recorded "error: crashed: killed by signal 15",
    # which later runs reused, where an engine that stops answering is no verdict.
    from cells import outcome

    from repromatrix.executors.base import Slot, engine_lost
    from repromatrix.executors.docker.executor import DockerExecutor

    config = SessionConfig(results=tmp_path / "res", cache=tmp_path / "cache")
    executor = DockerExecutor(_DeadEngine(), config=config, env={})  # type: ignore[arg-type]
    ended = outcome(None, code=143, executor="docker")
    monkeypatch.setattr(executor, "_run", lambda *_: ended)
    got = executor.run(CELL, Slot(name="cpu0"), tmp_path / "runs" / "r1" / CELL.key)
    assert engine_lost(got) == "the Docker engine stopped answering"


class _GoneAfterPingEngine:
    """Answered the ping of `engine_client`, then stopped (dockerd restarted just then)."""

    api = _DeadApi()

    def info(self) -> dict[str, Any]:
        raise requests.exceptions.ConnectionError(
            ("Connection aborted.", FileNotFoundError(2, "No such file or directory"))
        )

    def close(self) -> None:
        pass


def test_an_engine_gone_as_the_run_connects_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Seen by hand: "internal error: ConnectionError: ('Connection aborted.', ...)", exit
    # 70, from DockerExecutor.__init__'s client.info(), where an unreachable engine is one
    # line and exit 5.
    from repromatrix.executors.docker import executor as executor_module

    monkeypatch.setattr(executor_module, "engine_client", lambda env: _GoneAfterPingEngine())
    config = SessionConfig(results=tmp_path / "res", cache=tmp_path / "cache")
    got = executor_module.DockerExecutor.connect(config, env={})
    assert isinstance(got, str)
    assert "cannot reach the Docker engine" in got
