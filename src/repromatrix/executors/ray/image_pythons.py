"""The Python that installs a release bisection's environments on the cluster, as a node
has it: an image's python3 as the node's engine runs it (`bisect --image BASE --executor
ray`), or the node's own interpreter for the host base (`ray-node --python`). The driver
asks a node of the bisection's GPU type, which answers with the function local and Docker
runs use (version and wheel tags; a release with no file that Python installs is no
candidate): the driver's own interpreter judged the host base's releases, and a release
only the nodes' Python installs was left out, one only the driver's installs run."""

from __future__ import annotations

from typing import Any

import ray
import ray.exceptions
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from repromatrix.executors.ray.cluster import node_python, resource, usable_resources
from repromatrix.executors.ray.node import check_code, code_digest, node_docker
from repromatrix.model import GpuType
from repromatrix.options import SessionConfig
from repromatrix.release_files import Target, interpreter_target

#: How long the node may take: pulling nothing (the image is there or the cells fail
#: alike), one short container.
_ASK_S = 300.0


def _on_node(config: SessionConfig, ref: str, code: str) -> Target | None:
    check_code(code)  # a node of another repromatrix answers nothing (its cells say why)
    if not ref:  # the host base: the interpreter the node runs cells with
        return interpreter_target(node_python(config.python))
    docker = node_docker(config)
    return None if isinstance(docker, str) else docker.image_target(ref)


#: max_calls=1: the worker process ends after it, with the node's executors it made.
_ask: Any = ray.remote(max_calls=1, max_retries=0)(_on_node)


def image_target(config: SessionConfig, ref: str, gpu: GpuType) -> Target | None:
    """Image `ref`'s python3 (`ref` "": the host base's interpreter) on a live node that
    runs `gpu`'s cells (None: no such node, its engine, image or interpreter did not say,
    or the node was lost meanwhile: every file counts)."""
    node = node_for(gpu)
    if node is None:
        return None
    # On that node, holding nothing: a 0.001 share of the type's resource went to any node
    # that offers it, one started by hand with no GPU of it (and another interpreter)
    # too, and, with every GPU of the type held by slots, waited minutes or went there.
    pinned = NodeAffinitySchedulingStrategy(node, soft=False)
    asked = _ask.options(num_cpus=0, scheduling_strategy=pinned).remote(config, ref, code_digest())
    try:
        found = ray.get(asked, timeout=_ASK_S)
    except (ray.exceptions.RayError, ray.exceptions.GetTimeoutError):
        ray.cancel(asked, force=True)
        return None
    return found if isinstance(found, Target) else None


def node_for(gpu: GpuType) -> str | None:
    """The id of a live node that runs `gpu`'s cells: one whose GPUs of the type Ray can
    give (`usable_resources`), or with CPUs for a CPU cell; the one with most."""
    wanted = "CPU" if gpu.is_cpu else resource(gpu.name)
    offers = [
        (usable_resources([node.get("Resources") or {}])[0].get(wanted, 0.0), node["NodeID"])
        for node in ray.nodes()
        if node.get("Alive") and node.get("NodeID")
    ]
    found = max((o for o in offers if o[0] > 0), default=None)
    return None if found is None else str(found[1])
