"""What a Ray node runs for a cell of the driver's (`executor.py`): the body of its call
(the driver's code checked first, the run's shared config and scripts unpickled once per
worker process), as a plain task and as a method of a slot's actor. Ray names
their calls after `_on_node_body` and `_SlotActor` in its logs and `ray list actors`.
"""

from __future__ import annotations

import pickle
from functools import partial
from typing import Any

import ray

from repromatrix.executors.ray.node import (
    NodeTask,
    Shared,
    check_code,
    close_nodes,
    run_cell,
    shared_for,
)
from repromatrix.model import Cell
from repromatrix.records import Result


def _on_node_body(
    cell: Cell, key: str, shared: bytes | Shared, run_id: str, code: str = ""
) -> Result:
    check_code(code)  # before anything of the driver's is unpickled here
    context = ray.get_runtime_context()
    if isinstance(shared, bytes):  # unpickled once per worker process
        shared = shared_for(key, partial(pickle.loads, shared))
    task = NodeTask(cell=cell, shared=shared, run_id=run_id)
    # Asked only where they can be set: each question costs a walk of Ray's state.
    gpu_ids = [int(i) for i in ray.get_gpu_ids()] if cell.needs_gpu else []
    actor = context.get_actor_id() or ""
    return run_cell(task, gpu_ids, context.get_node_id(), actor=actor)


#: A cell as a plain task (one sent away from a node that lacks its type). max_calls=0: Ray may run
#: many in one worker process, which keeps the node's persistent workers.
on_node: Any = ray.remote(max_calls=0)(_on_node_body)


class _SlotActor:
    """One slot of the run on its node: the slot's cells, one after another."""

    def run(self, cell: Cell, key: str, shared: bytes | Shared, run_id: str, code: str) -> Result:
        return _on_node_body(cell, key, shared, run_id, code)

    def close(self) -> None:
        close_nodes()


#: Never restarted by Ray: a lost actor's cells go back to the scheduler, which hands them
#: out first again and drops the slot.
slot_actor: Any = ray.remote(max_restarts=0, max_task_retries=0)(_SlotActor)
