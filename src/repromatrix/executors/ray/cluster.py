"""The Ray cluster as repromatrix sees it: GPU types as custom resources, nodes started
with them, and the cluster's GPUs as one `HostInfo`.

GPU types come from repromatrix's own probe of each node (nvidia-smi names mapped to the
`gpus:` of matrix.yaml), published as the custom resource `repromatrix-gpu-<type>` (one
unit per physical GPU) when the node joins — not from Ray's built-in accelerator type,
which misreads cards (Ray has mapped "NVIDIA GeForce RTX 4090" to "G" and "RTX 6000 Ada"
to "RTX") and reads only GPU 0.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from repromatrix import proc
from repromatrix.errors import MissingToolError, UsageError
from repromatrix.host import HostGpu, HostInfo, matches
from repromatrix.model import GpuType

RESOURCE_PREFIX = "repromatrix-gpu-"
#: Set on a node by `repromatrix ray-node`: where its environments and caches live.
NODE_CACHE_VAR = "REPROMATRIX_NODE_CACHE"
#: Set on a node by `repromatrix ray-node --python`: the interpreter its cells run with.
NODE_PYTHON_VAR = "REPROMATRIX_NODE_PYTHON"


def resource(gpu_type: str) -> str:
    return f"{RESOURCE_PREFIX}{gpu_type}"


def cluster_host(resources: Mapping[str, float], types: Iterable[GpuType]) -> HostInfo:
    """The cluster's GPUs of the given types as one host: an entry per physical GPU."""
    gpus: list[HostGpu] = []
    for gpu_type in types:
        if gpu_type.is_cpu or not gpu_type.smi_names:
            continue
        for i in range(int(resources.get(resource(gpu_type.name), 0))):
            gpus.append(
                HostGpu(
                    index=len(gpus),
                    name=gpu_type.smi_names[0],
                    uuid=f"ray:{gpu_type.name}:{i}",
                    compute_capability=gpu_type.compute_capability,
                )
            )
    note = "" if gpus else "no node offers a GPU type of the matrix"
    return HostInfo(hostname="ray-cluster", gpus=tuple(gpus), gpu_note=note, scope="cluster")


@dataclass(frozen=True, kw_only=True)
class NodePlan:
    """What `repromatrix ray-node` will advertise: GPUs per matrix type."""

    counts: Mapping[str, int]
    unknown: tuple[str, ...]

    @property
    def resources(self) -> dict[str, float]:
        return {resource(t): float(n) for t, n in self.counts.items() if n}

    @property
    def gpus(self) -> int:
        return sum(self.counts.values()) + len(self.unknown)

    def describe(self) -> str:
        parts = [f"{n} × {t}" for t, n in self.counts.items() if n]
        if self.unknown:
            parts.append(f"{len(self.unknown)} of no matrix type ({', '.join(self.unknown)})")
        return ", ".join(parts) or "no GPU"


def node_plan(host: HostInfo, types: Iterable[GpuType]) -> NodePlan:
    """Count this node's GPUs by matrix type (nvidia-smi names, as the local run does)."""
    types = [t for t in types if not t.is_cpu]
    counts: dict[str, int] = {t.name: 0 for t in types}
    unknown: list[str] = []
    for gpu in host.gpus:
        found = next((t for t in types if matches(gpu, t)), None)
        if found is None:
            unknown.append(gpu.name)
        else:
            counts[found.name] += 1
    return NodePlan(counts=counts, unknown=tuple(unknown))


def start_node(
    plan: NodePlan,
    *,
    address: str | None,
    port: int,
    cache: Path,
    python: str | None,
    block: bool,
    env: Mapping[str, str],
) -> int:
    """`ray start` with this node's GPU types as resources; its exit code.

    CUDA_DEVICE_ORDER=PCI_BUS_ID: Ray hands out GPU indices, CUDA numbers devices fastest
    first by default, and nvidia-smi in PCI order; pinning PCI order makes all three agree.
    """
    if address is None:
        argv = ["--head", f"--port={port}", "--include-dashboard=false"]
    else:
        argv = [f"--address={address}"]
    argv += [
        f"--num-gpus={plan.gpus}",
        f"--resources={json.dumps(plan.resources, sort_keys=True)}",
        "--disable-usage-stats",
        *(["--block"] if block else []),
    ]
    variables = dict(env)
    variables.update({NODE_CACHE_VAR: str(cache.resolve()), "CUDA_DEVICE_ORDER": "PCI_BUS_ID"})
    if python:
        variables[NODE_PYTHON_VAR] = python
    command = [_ray_cli(), "start", *argv]
    if block:
        group = proc.ProcessGroup(command, cwd=None, env=variables)
        return group.wait(None).returncode
    done = proc.run(command, env=variables, timeout=600, daemons=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or done.stdout.strip().splitlines() or [""])[-1]
        raise UsageError(f"ray start failed ({done.returncode}): {last}")
    return 0


def _ray_cli() -> str:
    """The `ray` command of this interpreter's Ray (beside it in a venv), else PATH's."""
    beside = Path(sys.executable).parent / "ray"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    try:
        return proc.which("ray")
    except MissingToolError:
        raise MissingToolError(
            "the 'ray' command is missing: pip install 'repromatrix[ray]'"
        ) from None
