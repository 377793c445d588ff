"""The vocabulary of repromatrix: frozen, keyword-only dataclasses and enums.

Nothing here does I/O. `config/` builds these from matrix.yaml and `expand.py` makes the
cells; the result record itself is a pydantic model in `records.py`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

#: Reserved base name: the host interpreter (local executor) rather than a container image.
HOST_BASE = "host"
#: Reserved GPU name: a cell that needs no GPU (runs with CUDA_VISIBLE_DEVICES empty).
CPU_GPU = "cpu"

#: Exit codes of the repro protocol (compatible with `git bisect run`).
EXIT_PASSED = 0
EXIT_REGRESSED = 1
EXIT_UNTESTABLE = 125


class Status(StrEnum):
    """What happened to a cell. Only the first five are results of running it."""

    PASSED = "passed"  # regression absent
    REGRESSED = "regressed"  # regression reproduced
    UNTESTABLE = "untestable"  # the repro said it cannot test here (exit 125)
    ERROR = "error"  # harness or repro failure: crash, bad JSON, env build failure
    TIMEOUT = "timeout"  # killed at the wall-clock limit
    NOT_RUN = "not_run"  # this host lacks the GPU / image / executor the cell needs

    @property
    def is_final(self) -> bool:
        """A final result is reused on resume; `not_run` is only a note about one host."""
        return self is not Status.NOT_RUN

    @property
    def is_verdict(self) -> bool:
        """Passed and regressed say something about the library; the rest do not."""
        return self in (Status.PASSED, Status.REGRESSED)

    @property
    def symbol(self) -> str:
        return STATUS_TEXT[self.value][0]

    @property
    def label(self) -> str:
        return STATUS_TEXT[self.value][1]

    @classmethod
    def from_exit_code(cls, code: int) -> Status:
        if code == EXIT_PASSED:
            return cls.PASSED
        if code == EXIT_REGRESSED:
            return cls.REGRESSED
        if code == EXIT_UNTESTABLE:
            return cls.UNTESTABLE
        return cls.ERROR


#: The one table of how statuses are shown: value → (symbol, label). "none" is a position
#: of the matrix with no record yet (reports only). Terminal, HTML, Markdown and JUnit
#: outputs all read it; the report's script gets it through the page's data blob.
STATUS_TEXT: Mapping[str, tuple[str, str]] = {
    "passed": ("✓", "passed"),
    "regressed": ("✗", "regressed"),
    "untestable": ("?", "untestable"),
    "error": ("!", "error"),
    "timeout": ("⏱", "timeout"),
    "not_run": ("–", "not run here"),
    "none": ("–", "no result yet"),
}


class SourceKind(StrEnum):
    PYPI = "pypi"
    GIT = "git"


class InstallMode(StrEnum):
    #: `pip install --no-deps --target` of the package (PyPI) or of the checkout (git).
    PIP = "pip"
    #: Put the checkout itself on PYTHONPATH: for old trees whose build is not worth running.
    PYTHONPATH = "pythonpath"


class BaseKind(StrEnum):
    HOST = "host"
    IMAGE = "image"


@dataclass(frozen=True, kw_only=True)
class Base:
    """Where a cell runs: the host interpreter or a container image."""

    name: str
    kind: BaseKind
    #: Docker reference for images; empty for the host.
    ref: str = ""
    #: Release date as YYYY-MM for ordering NGC tags (optional).
    released: str | None = None
    #: Facts the image ships (tensorrt, torch, cuda versions) as declared in matrix.yaml.
    ships: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_host(self) -> bool:
        return self.kind is BaseKind.HOST


@dataclass(frozen=True, kw_only=True)
class GpuType:
    name: str
    #: "8.9", "9.0"; empty for the reserved `cpu` type.
    compute_capability: str
    #: Names as `nvidia-smi --query-gpu=name` prints them.
    smi_names: tuple[str, ...]
    shared_memory_per_sm_kb: int | None = None

    @property
    def is_cpu(self) -> bool:
        return self.name == CPU_GPU


CPU = GpuType(name=CPU_GPU, compute_capability="", smi_names=())


@dataclass(frozen=True, kw_only=True)
class Revision:
    """One point on a library's axis: a PyPI version or a git revision."""

    rev: str
    kind: SourceKind
    #: Short label shown in reports (defaults to rev).
    label: str
    #: Extra requirements installed with this revision (`--no-deps` installs need them).
    requires: tuple[str, ...] = ()
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class Library:
    name: str
    #: PyPI project name, if released there.
    pypi: str | None
    #: Git URL or local path, if commits can be pinned.
    git: str | None
    import_name: str
    #: How git revisions are installed (PyPI versions are always pip-installed).
    install: InstallMode
    #: Ordered oldest → newest, as declared.
    revisions: tuple[Revision, ...]
    #: Requirements installed with every revision.
    requires: tuple[str, ...] = ()

    def revision(self, rev: str) -> Revision:
        for r in self.revisions:
            if rev in (r.rev, r.label):
                return r
        raise KeyError(rev)

    def pin(self, revision: Revision) -> Pin:
        source = self.pypi if revision.kind is SourceKind.PYPI else self.git
        assert source is not None, "matrix.py guarantees a source for each revision kind"
        return Pin(
            library=self.name,
            kind=revision.kind,
            source=source,
            rev=revision.rev,
            label=revision.label,
            install=InstallMode.PIP if revision.kind is SourceKind.PYPI else self.install,
            import_name=self.import_name,
            requires=(*self.requires, *revision.requires),
        )


@dataclass(frozen=True, kw_only=True)
class Pin:
    """A library fixed at one revision inside a cell."""

    library: str
    kind: SourceKind
    source: str
    rev: str
    label: str
    install: InstallMode
    import_name: str
    requires: tuple[str, ...] = ()

    @property
    def spec(self) -> str:
        return f"{self.library}={self.label}"

    def key_material(self) -> dict[str, Any]:
        return {
            "library": self.library,
            "kind": self.kind.value,
            "source": self.source,
            "rev": self.rev,
            "install": self.install.value,
            "requires": list(self.requires),
        }


@dataclass(frozen=True, kw_only=True)
class Repro:
    name: str
    script: Path
    #: sha256 of the script and the helper modules beside it (part of every cell key).
    script_digest: str
    #: Upstream issue URL.
    issue: str | None
    description: str
    gpus: tuple[str, ...]
    bases: tuple[str, ...]
    #: library name → revisions (rev strings) this repro spans, in axis order.
    libraries: Mapping[str, tuple[str, ...]]
    timeout_s: float
    params: Mapping[str, Any]
    #: The metric reports chart and quote for this repro (None: the report chooses).
    key_metric: str | None = None
    #: `file:line:column` of `key_metric`, for the warning that no record has it.
    key_metric_where: str = field(default="", compare=False)
    #: Modules the base interpreter must import (None: torch on GPU cells).
    needs: tuple[str, ...] | None = None
    #: Cells need a process of their own (no persistent worker).
    isolate: bool = False
    #: Runs of each end a bisection makes first (None: `bisect` decides).
    calibrate: int | None = None
    #: Files its cells read from their working folder (`Cell.inputs`).
    inputs: tuple[bytes, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True, kw_only=True)
class Cell:
    """One point of the matrix: a repro on a base, a GPU type and a set of pins."""

    repro: str
    script: Path
    base: Base
    gpu: GpuType
    pins: tuple[Pin, ...]
    params: Mapping[str, Any]
    timeout_s: float
    #: Hex digest of everything that can change the result (see `cell_key`).
    key: str
    #: Modules the base interpreter must import for this cell (its pins bring the rest).
    needs: tuple[str, ...] = ()
    #: Run in a process of its own, not in its environment's persistent worker.
    isolate: bool = False
    #: The repro's `script_digest` the key hashes ("": unknown, see `twin_keys`).
    script_digest: str = ""
    #: Files the cell's process reads from its working folder, as `inputs/<sha256>`
    #: (`executors/cell_inputs.py`): what one argument cannot carry (Linux takes at most
    #: 128 KiB), such as a `bisect --test` file. The params name each by its digest, so
    #: the key covers it and records hold 64 characters, not the file.
    inputs: tuple[bytes, ...] = field(default=(), compare=False, repr=False)

    @property
    def id(self) -> str:
        parts = [self.gpu.name, self.base.name, *(p.spec for p in self.pins)]
        return f"{self.repro}[{','.join(parts)}]"

    @property
    def needs_gpu(self) -> bool:
        return not self.gpu.is_cpu

    def pin(self, library: str) -> Pin | None:
        for p in self.pins:
            if p.library == library:
                return p
        return None

    def twins(self, commits: Mapping[str, str]) -> list[Cell]:
        """This experiment with one git pin given by its full commit (from a record's
        `commits`) instead of its declared name: how `bisect` pins a commit that matrix.yaml
        declares as `3f1f080f` (or `v0.5.2`), under a key of its own."""
        if not self.script_digest:
            return []
        twins = []
        for i, p in enumerate(self.pins):
            commit = commits.get(p.library)
            if p.kind is SourceKind.GIT and commit and commit != p.rev:
                pins = (*self.pins[:i], dataclasses.replace(p, rev=commit), *self.pins[i + 1 :])
                key = cell_key(
                    repro=self.repro,
                    script_digest=self.script_digest,
                    base=self.base,
                    gpu=self.gpu,
                    pins=pins,
                    params=self.params,
                )
                twins.append(dataclasses.replace(self, pins=pins, key=key))
        return twins

    def twin_keys(self, commits: Mapping[str, str]) -> set[str]:
        """The keys of `twins`."""
        return {twin.key for twin in self.twins(commits)}

    def to_json(self) -> dict[str, Any]:
        """The shape `repromatrix list --json` prints (usable as a CI job matrix)."""
        return {
            "id": self.id,
            "key": self.key,
            "repro": self.repro,
            "script": _relative(self.script),
            "gpu": self.gpu.name,
            "base": self.base.name,
            "image": self.base.ref or None,
            "libraries": {p.library: p.label for p in self.pins},
            "params": dict(self.params),
            "timeout_s": self.timeout_s,
        }


def _relative(path: Path) -> str:
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return path.as_posix()


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def cell_key(
    *,
    repro: str,
    script_digest: str,
    base: Base,
    gpu: GpuType,
    pins: tuple[Pin, ...],
    params: Mapping[str, Any],
) -> str:
    """Deterministic key: the same inputs always give the same key, any change a new one.

    The script digest covers the repro script and its helper, so editing either makes new
    cells; the timeout is left out because it does not change what a finished run says.
    """
    material = {
        "repro": repro,
        "script": script_digest,
        "base": {"kind": base.kind.value, "name": base.name, "ref": base.ref},
        "gpu": {"name": gpu.name, "cc": gpu.compute_capability},
        "pins": sorted((p.key_material() for p in pins), key=lambda m: str(m["library"])),
        "params": dict(params),
    }
    return hashlib.sha256(canonical_json(material).encode()).hexdigest()[:20]
