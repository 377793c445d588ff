"""`repromatrix clean` and an environment build's step container that outlived its build
(dockerd killed -9 mid-build, then restarted: the step stays exited for ever)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

pytest.importorskip("docker")

from repromatrix.executors.docker import janitor


class _Container:
    def __init__(self, cid: str, name: str, build: str = "5051e63595fede45") -> None:
        self.id = cid
        # A step's container has the image's labels at that step: env.Dockerfile's build
        # token is set there, and emptied in the finished image.
        self.attrs = {"Names": [f"/{name}"], "Labels": {janitor.L_BUILD: build}}


class _Api:
    def __init__(self, finished: dict[str, datetime]) -> None:
        self.finished = finished
        self.removed: list[str] = []

    def inspect_container(self, cid: str) -> dict[str, Any]:
        when = self.finished[cid].strftime("%Y-%m-%dT%H:%M:%S.123456789Z")
        return {"State": {"Status": "exited", "FinishedAt": when}}

    def remove_container(self, cid: str, **_: Any) -> None:
        self.removed.append(cid)


class _Containers:
    def __init__(self, steps: list[_Container]) -> None:
        self.steps = steps

    def list(self, *, filters: dict[str, Any], **_: Any) -> list[_Container]:
        # As the engine filters: build steps carry the image's kind=env label alone.
        return self.steps if f"{janitor.L_KIND}={janitor.KIND_ENV}" in filters["label"] else []


class _Engine:
    def __init__(self, api: _Api, steps: list[_Container]) -> None:
        self.api = api
        self.containers = _Containers(steps)

    def close(self) -> None:
        pass


def test_clean_removes_a_build_step_left_exited_but_not_one_being_committed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = datetime.now(UTC)
    old = _Container("a6bd256a2604", "affectionate_kirch")
    fresh = _Container("b7ce367b3715", "busy_build")
    # A user's container of an image built FROM an env image inherits kind=env: not ours.
    users = _Container("c8df478c4826", "users_own", build="")
    api = _Api({c.id: now - timedelta(minutes=3) for c in (old, users)})
    api.finished[fresh.id] = now - timedelta(seconds=1)
    monkeypatch.setattr(janitor, "engine_client", lambda env: _Engine(api, [old, fresh, users]))
    removed = janitor.clean_leftovers(env={}, images=False)
    # It held a layer that `clean --docker` then kept: "image is being used by stopped
    # container a6bd256a2604", and no run or clean ever removed it.
    assert api.removed == [old.id]
    assert removed == ["container affectionate_kirch"]
