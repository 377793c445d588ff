"""Ending a run's environment builds (`Images.cancel`) on an engine that stopped answering:
the run's one line says so; no warning of builds it could not look for is added."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("docker")

import requests.exceptions

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
