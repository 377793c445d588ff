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

from repromatrix.executors.ray.cluster import live_resources, node_python, resource
from repromatrix.executors.ray.node import _docker, _node, check_code, code_digest
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
    docker = _docker(_node(config))
    return None if isinstance(docker, str) else docker.image_target(ref)


#: max_calls=1: the worker process ends after it, with the node's executors it made.
_ask: Any = ray.remote(max_calls=1, max_retries=0)(_on_node)


def image_target(config: SessionConfig, ref: str, gpu: GpuType) -> Target | None:
    """Image `ref`'s python3 (`ref` "": the host base's interpreter) on a live node that
    runs `gpu`'s cells (None: no such node, its engine, image or interpreter did not say,
    or the node was lost meanwhile: every file counts)."""
    usable, _ = live_resources()
    # Beside a slot, holding next to none; a CPU cell's on a node with CPUs, where they run
    # (a head started with none, another interpreter, took it).
    wants: dict[str, Any] = {"num_cpus": 0.001 if gpu.is_cpu else 0}
    if not gpu.is_cpu:
        if usable.get(resource(gpu.name), 0.0) <= 0:
            return None
        wants["resources"] = {resource(gpu.name): 0.001}
    asked = _ask.options(**wants).remote(config, ref, code_digest())
    try:
        found = ray.get(asked, timeout=_ASK_S)
    except (ray.exceptions.RayError, ray.exceptions.GetTimeoutError):
        ray.cancel(asked, force=True)
        return None
    return found if isinstance(found, Target) else None
