"""An image's python3 as a node of the cluster has it, for a release bisection under Ray
(`bisect --image BASE --executor ray`): the nodes' engines build the image's environments,
so the driver asks a node of the bisection's GPU type, which answers with its own Docker
executor's `image_target`, the function the local and Docker runs use (version and wheel
tags; a release with no file that python3 installs is no candidate)."""

from __future__ import annotations

from typing import Any

import ray
import ray.exceptions

from repromatrix.executors.ray.cluster import live_resources, resource
from repromatrix.executors.ray.node import _docker, _node, check_code, code_digest
from repromatrix.model import GpuType
from repromatrix.options import SessionConfig
from repromatrix.release_files import Target

#: How long the node may take: pulling nothing (the image is there or the cells fail
#: alike), one short container.
_ASK_S = 300.0


def _on_node(config: SessionConfig, ref: str, code: str) -> Target | None:
    check_code(code)  # a node of another repromatrix answers nothing (its cells say why)
    docker = _docker(_node(config))
    return None if isinstance(docker, str) else docker.image_target(ref)


#: max_calls=1: the worker process ends after it, with the node's executors it made.
_ask: Any = ray.remote(max_calls=1, max_retries=0)(_on_node)


def image_target(config: SessionConfig, ref: str, gpu: GpuType) -> Target | None:
    """Image `ref`'s python3 on a live node that runs `gpu`'s cells (None: no such node, its
    engine or image did not say, or the node was lost meanwhile: every file counts)."""
    usable, _ = live_resources()
    wants: dict[str, Any] = {"num_cpus": 0}
    if not gpu.is_cpu:
        if usable.get(resource(gpu.name), 0.0) <= 0:
            return None
        wants["resources"] = {resource(gpu.name): 0.001}  # beside a slot, holding none
    asked = _ask.options(**wants).remote(config, ref, code_digest())
    try:
        found = ray.get(asked, timeout=_ASK_S)
    except (ray.exceptions.RayError, ray.exceptions.GetTimeoutError):
        ray.cancel(asked, force=True)
        return None
    return found if isinstance(found, Target) else None
