"""What this host has: its GPUs (as nvidia-smi names them) and its base interpreter.

Matching a physical GPU to a matrix GPU type happens here, once, so the scheduler can give
each GPU one slot and say precisely why a cell is "not run here".
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from repromatrix import proc
from repromatrix.errors import MissingToolError
from repromatrix.model import GpuType
from repromatrix.records import Machine, MachineGpu, machine_id
from repromatrix.safetext import excerpt


@dataclass(frozen=True, kw_only=True)
class HostGpu:
    index: int
    name: str
    uuid: str
    compute_capability: str
    driver: str = ""


@dataclass(frozen=True, kw_only=True)
class HostInfo:
    hostname: str
    gpus: tuple[HostGpu, ...]
    #: Why no GPU was seen, when none was (e.g. "nvidia-smi not found").
    gpu_note: str = ""
    #: What records name this machine by (see `machine_identity`); the hostname is not it.
    machine: Machine = field(default_factory=Machine)
    #: "host" for this machine; "cluster" when the GPUs are a Ray cluster's (one entry per
    #: physical GPU of the cluster, each named as its type's first nvidia-smi name).
    scope: str = "host"

    def gpus_of_type(self, gpu_type: GpuType) -> tuple[HostGpu, ...]:
        return tuple(g for g in self.gpus if matches(g, gpu_type))

    def lacks(self, gpu_type: GpuType) -> str:
        """Why a cell of `gpu_type` cannot run on these GPUs (one line)."""
        if self.scope == "cluster":
            # The note names the types its nodes offer, and those with no GPU for Ray.
            has = [self.gpu_note] if self.gpu_note else []
            return (
                f"no host with this GPU in the cluster: no node offers {gpu_type.name} "
                f"({'; '.join(has) or 'the cluster has no GPU'})"
            )
        return f"no {gpu_type.name} on this host (has {self.describe_gpus()})"

    def describe_gpus(self) -> str:
        if not self.gpus:
            return f"no GPU ({self.gpu_note})" if self.gpu_note else "no GPU"
        return ", ".join(f"{g.index}: {g.name}" for g in self.gpus)


def matches(gpu: HostGpu, gpu_type: GpuType) -> bool:
    """A physical GPU is of a type when nvidia-smi's name is one the type lists."""
    name = gpu.name.strip().lower()
    return any(name == n.strip().lower() for n in gpu_type.smi_names)


_SMI_QUERY = "index,name,uuid,compute_cap,driver_version"


def parse_nvidia_smi(text: str) -> tuple[HostGpu, ...]:
    gpus = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 4 or not parts[0].isdigit():
            continue
        gpus.append(
            HostGpu(
                index=int(parts[0]),
                name=parts[1],
                uuid=parts[2],
                compute_capability=parts[3],
                driver=parts[4] if len(parts) > 4 else "",
            )
        )
    return tuple(gpus)


#: Files that identify a GPU-less machine, in order. /etc/machine-id is missing in many
#: containers and the same on VMs cloned from one image, so the firmware's product UUID
#: is read too when it is readable (root only on most systems).
MACHINE_FILES = (
    Path("/etc/machine-id"),
    Path("/var/lib/dbus/machine-id"),
    Path("/sys/class/dmi/id/product_uuid"),
)


def machine_identity(gpus: tuple[HostGpu, ...], files: tuple[Path, ...] = MACHINE_FILES) -> Machine:
    """The machine as records name it: a keyed hash of its GPUs' UUIDs (stable per
    physical GPU), else of the machine files that exist here. Never the hostname (every
    lent VM is `vm`) and never environment variables: nothing secret or per-shell."""
    found: list[str] = []
    for path in files:
        try:
            text = path.read_text(encoding="ascii", errors="replace").strip()
        except OSError:
            continue
        if text and text not in found:
            found.append(text)
    return Machine(
        id=machine_id((g.uuid for g in gpus), fallback="|".join(found)),
        gpus=tuple(MachineGpu(name=g.name, uuid=g.uuid) for g in gpus),
        driver=next((g.driver for g in gpus if g.driver), ""),
    )


def _info(hostname: str, gpus: tuple[HostGpu, ...], note: str = "") -> HostInfo:
    return HostInfo(hostname=hostname, gpus=gpus, gpu_note=note, machine=machine_identity(gpus))


def detect(env: Mapping[str, str] | None = None) -> HostInfo:
    """Ask nvidia-smi. `REPROMATRIX_FAKE_GPUS` (nvidia-smi CSV) replaces it, for tests."""
    hostname = socket.gethostname()
    env = env or {}
    fake = env.get("REPROMATRIX_FAKE_GPUS")
    if fake is not None:
        return _info(hostname, parse_nvidia_smi(fake.replace(";", "\n")))
    try:
        out = proc.run(
            ["nvidia-smi", f"--query-gpu={_SMI_QUERY}", "--format=csv,noheader,nounits"],
            timeout=30,
        )
    except MissingToolError:
        return _info(hostname, (), "nvidia-smi not found")
    if out.returncode != 0:
        note = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["nvidia-smi failed"]
        return _info(hostname, (), note[0])
    return _info(hostname, parse_nvidia_smi(out.stdout))


#: The oldest Python a cell's interpreter may be (what the worker and repros/_repro.py
#: need): a local run's, an image's python3 and a Ray node's are checked against it.
CELL_PYTHON = (3, 10)
#: `CELL_PYTHON` as lines say it.
CELL_PYTHON_TEXT = ".".join(map(str, CELL_PYTHON))


@dataclass(frozen=True, kw_only=True)
class Interpreter:
    """The base interpreter of the host base: the environment every local cell starts from."""

    executable: str
    version: str
    #: sha256 over `name==version` of every distribution it sees (torch, triton, ...).
    fingerprint: str
    packages: Mapping[str, str]

    def describe(self) -> str:
        torch = self.packages.get("torch", "absent")
        return f"{self.executable} (Python {self.version}, torch {torch})"

    @property
    def too_old_for_cells(self) -> bool:
        """Older than the worker and repros/_repro.py need (`CELL_PYTHON`)."""
        return tuple(int(x) for x in self.version.split(".")[:2] if x.isdigit()) < CELL_PYTHON


#: Runs on any Python, 2.7 included, up to the version: an old one is refused by its
#: version ("cells need Python 3.10 or newer"), not by a missing importlib.metadata.
_PROBE = r"""
import json, sys
if sys.version_info < (3, 8):
    old = {"version": sys.version.split()[0], "executable": sys.executable, "packages": {}}
    print(json.dumps(old))
    sys.exit(0)
import importlib.metadata as md
pk = {}
for d in md.distributions():
    name = (d.metadata["Name"] or "").lower().replace("_", "-")
    if name:
        pk[name] = d.version
print(json.dumps({"version": sys.version.split()[0], "executable": sys.executable, "packages": pk}))
"""


_MISSING = r"""
import importlib.util, json, sys
missing = []
for name in sys.argv[1:]:
    try:
        found = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        missing.append(name)
print(json.dumps(missing))
"""


def missing_modules(executable: str, modules: Iterable[str]) -> list[str]:
    """Which of `modules` the interpreter cannot import (found without importing them)."""
    wanted = sorted(set(modules))
    if not wanted:
        return []
    out = proc.run([executable, "-c", _MISSING, *wanted], timeout=120)
    if out.returncode != 0:
        return wanted
    try:
        found = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):  # something printed past our line: ask no further
        return wanted
    return [str(m) for m in found] if isinstance(found, list) else wanted


#: A Python answers the probe in well under a second; a cold one on a network file
#: system in a few.
PROBE_TIMEOUT_S = 60.0


def probe_interpreter(executable: str, *, env: Mapping[str, str] | None = None) -> Interpreter:
    """Read the interpreter's version and installed distributions (no heavy imports).
    MissingToolError, naming `--python`, for anything that does not answer as a Python
    interpreter does: not runnable, silent, hanging, or printing something else."""
    try:
        out = proc.run([executable, "-c", _PROBE], timeout=PROBE_TIMEOUT_S, env=env)
    except (OSError, MissingToolError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not found"
        if os.path.isdir(executable):
            why = "a folder, not an interpreter"
        elif os.path.isfile(executable) and not os.access(executable, os.X_OK):
            why = "not executable"
        raise MissingToolError(
            f"--python {executable}: cannot run it ({why}); pass a Python interpreter"
        ) from None
    if out.timed_out:
        raise MissingToolError(
            f"--python {executable}: no answer to a version probe within "
            f"{PROBE_TIMEOUT_S:.0f} s; pass a working Python interpreter"
        )
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise MissingToolError(
            f"cannot run base interpreter {executable}: {excerpt(last, 200)} (--python)"
        )
    try:
        data = json.loads(out.stdout.strip().splitlines()[-1])
        packages: dict[str, str] = {str(k): str(v) for k, v in sorted(data["packages"].items())}
        version, found = str(data["version"]), str(Path(data["executable"]))
    except (IndexError, ValueError, KeyError, TypeError, AttributeError):
        raise MissingToolError(
            f"--python {executable}: its answer to a version probe is not a Python "
            "interpreter's; pass a Python interpreter"
        ) from None
    digest = hashlib.sha256(
        json.dumps({"v": version, "p": packages}, sort_keys=True).encode()
    ).hexdigest()[:16]
    return Interpreter(executable=found, version=version, fingerprint=digest, packages=packages)
