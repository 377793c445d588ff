"""A GPU cell recorded "untestable" because the engine had no NVIDIA runtime is no record
to reuse once the engine has one: the base it ran on says so (`base_fingerprint`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("docker")

from cells import CELL

from repromatrix.executors.docker.executor import DockerExecutor
from repromatrix.model import Base, BaseKind, GpuType
from repromatrix.options import SessionConfig

H100 = GpuType(name="H100", compute_capability="9.0", smi_names=("NVIDIA H100 80GB HBM3",))
IMAGE = Base(name="img", kind=BaseKind.IMAGE, ref="repromatrix-absent:1")


class _Engine:
    """What the executor asks of an engine before any cell: its info, nothing else."""

    def __init__(self, info: dict[str, Any]) -> None:
        self._info = info
        self.api = object()

    def info(self) -> dict[str, Any]:
        return self._info


def _executor(tmp_path: Path, info: dict[str, Any]) -> DockerExecutor:
    config = SessionConfig(results=tmp_path / "res", cache=tmp_path / "cache")
    return DockerExecutor(_Engine(info), config=config, env={})  # type: ignore[arg-type]


def test_a_gpu_cell_without_the_runtime_is_on_another_base_than_with_it(tmp_path: Path) -> None:
    # The untestable record says "install nvidia-container-toolkit": the run after that
    # install must run the cell, not reuse the record ("1 reused") until --rerun.
    without = _executor(tmp_path, {})
    with_it = _executor(tmp_path, {"Runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}})
    gpu_cell = dataclasses.replace(CELL, base=IMAGE, gpu=H100)
    assert without.base_fingerprint(gpu_cell) != with_it.base_fingerprint(gpu_cell)
    # Records made with the runtime keep the base they had: nothing else runs again.
    assert with_it.base_fingerprint(gpu_cell) == f"image:{IMAGE.ref}"
    # A CPU cell gets no GPU either way: its base does not depend on the runtime.
    cpu_cell = dataclasses.replace(CELL, base=IMAGE)
    assert without.base_fingerprint(cpu_cell) == with_it.base_fingerprint(cpu_cell)
