"""Run options: where pins come from, which executor runs cells, how images are pulled.

A leaf module: it imports nothing of repromatrix, so every layer (environments, executors,
the session, the CLI) can take these values without importing the layers above it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


class ExecutorKind(StrEnum):
    AUTO = "auto"
    LOCAL = "local"
    DOCKER = "docker"
    RAY = "ray"


class PullPolicy(StrEnum):
    NEVER = "never"
    MISSING = "missing"
    ALWAYS = "always"


@dataclass(frozen=True, kw_only=True)
class Sources:
    """Where pins come from. Offline hosts pass `find_links` + `no_index` and git mirrors."""

    find_links: tuple[Path, ...] = ()
    no_index: bool = False
    #: library name → local clone, bare repo or bundle replacing the matrix's git URL.
    git_mirrors: Mapping[str, str] = field(default_factory=dict)
    #: Extra pip arguments (e.g. an index URL), appended as given.
    pip_args: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class SessionConfig:
    """Everything a run or a bisection needs to know besides the cells themselves."""

    results: Path = Path("results")
    #: Environments, git mirrors (`<cache>/git`) and per-run work directories.
    cache: Path = Path(".repromatrix")
    executor: ExecutorKind = ExecutorKind.AUTO
    python: str = sys.executable
    jobs: int = 2
    #: Whether --jobs was given (a bisection under Ray otherwise takes every slot).
    jobs_given: bool = True
    #: Cells sharing one GPU at a time (1 keeps latency metrics clean).
    per_gpu: int = 1
    sources: Sources = field(default_factory=Sources)
    pull: PullPolicy = PullPolicy.MISSING
    #: Extra environment variables for every cell (host toolchain workarounds such as
    #: NVCC_APPEND_FLAGS); recorded in each result's provenance.
    cell_env: Mapping[str, str] = field(default_factory=dict)
    #: Overrides every cell's timeout when set.
    timeout_s: float | None = None
    #: Directory holding the image recipes (Dockerfiles).
    images_dir: Path = Path("images")
    #: One process per cell instead of a persistent worker per (environment, slot).
    isolate: bool = False
    #: A worker holding more resident memory (MiB) than this after a cell is replaced.
    worker_max_rss_mb: float | None = 16384.0
    #: The Ray cluster for `--executor ray` (None: RAY_ADDRESS or a running local one).
    ray_address: str | None = None
    #: Where `ray_address` came from, as its errors name it (the flag, or RAY_ADDRESS).
    ray_address_from: str = "--ray-address"
    #: How often Ray retries a cell whose node or worker died (infrastructure only).
    ray_retries: int = 2
    #: `--keep-logs`: cells' logs stay whole once recorded (a Ray node reads it here).
    keep_logs: bool = False

    @property
    def git_root(self) -> Path:
        """Where the bare clones of git libraries live (shared by runs, bisects, reports)."""
        return git_root(self.cache)


def git_root(cache: Path) -> Path:
    return cache.resolve() / "git"
