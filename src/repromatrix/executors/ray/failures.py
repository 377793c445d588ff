"""What Ray's errors mean for a cell: a node lost (run it elsewhere, or note it), the
node unable to run any cell (the run stops), or the harness failing there (a record).

A repro's own failure is a record the node returns, never one of these.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import ray
import ray.exceptions

from repromatrix.errors import ReproMatrixError
from repromatrix.executors.base import ENGINE_LOST, HOST_LOGS_CUT, HOST_STORAGE_AT, MISSING_TOOL
from repromatrix.executors.ray.node import NodeCannotRun
from repromatrix.made_from_files import made_from_other_files
from repromatrix.model import Pin
from repromatrix.records import Result

#: Failures of the infrastructure, which Ray retries: a node or a worker process died.
LOST = (
    ray.exceptions.WorkerCrashedError,
    ray.exceptions.NodeDiedError,
    ray.exceptions.ObjectLostError,
    ray.exceptions.OwnerDiedError,
    ray.exceptions.LocalRayletDiedError,
)

#: What a lost node or process raises: an actor's call (its slot's actor is lost) or a task.
#: Ray's memory monitor killing a worker counts too: cells queued in a slot's actor it
#: killed go back as tasks; the one that used the memory ends on it (`failure_of`).
GONE = (
    ray.exceptions.RayActorError,
    ray.exceptions.ActorUnavailableError,
    ray.exceptions.OutOfMemoryError,
    *LOST,
)

#: Of those, what ends a cell for a reason of its own: this machine's raylet died (the
#: run stops), Ray's memory monitor killed the cell (an error naming the memory). The
#: others, past `--ray-retries`, leave the cell noted, not recorded.
OWN = (ray.exceptions.LocalRayletDiedError, ray.exceptions.OutOfMemoryError)


#: The most a slot waits, once its actor's call failed, for Ray to say why (a node
#: found dead after its health checks: Ray's default is about 30 s).
DEATH_WAIT_S = 60.0
#: How often that wait looks at the run's stop (Ctrl-C).
_LOOK_S = 1.0


class ActorLost(Exception):
    """The slot's actor died before the cell's record came back; `args[0]`: the memory
    kill by Ray's monitor if it came while the actor ran this cell, else None."""


def death_of(actor: Any, stop: threading.Event, wait_s: float = DEATH_WAIT_S) -> str:
    """How a slot's `actor`, whose call failed, ended, in words that begin a line (Ray's
    own once it knows, at most `wait_s` later, or at once on `stop`: Ctrl-C waited for
    it; the actor is not killed here). A call fails as soon as the actor's node stops
    answering, before Ray's health checks find the node dead: dropped then, its slot was
    counted again while Ray still offered the node's GPUs, and the new slot's actor
    waited there with the cells put back."""
    deadline = time.monotonic() + wait_s
    ready = None
    while (left := deadline - time.monotonic()) > 0 and not stop.is_set():
        try:
            ready = ready or actor.__ray_ready__.remote()
            ray.get(ready, timeout=min(left, _LOOK_S))
        except ray.exceptions.ActorUnavailableError:  # not known dead yet: ask again
            ready = None
            stop.wait(min(_LOOK_S / 2, max(0.0, deadline - time.monotonic())))
            continue
        except ray.exceptions.GetTimeoutError:
            continue
        except Exception as exc:  # its death, as Ray tells it
            return moved_words(exc)
        return "a slot's Ray actor stopped answering its calls"
    if stop.is_set():
        return "a slot's Ray actor was lost as the run stopped"
    return f"a slot's Ray node stopped answering for {wait_s:g} s"


def moved_words(exc: BaseException) -> str:
    """What took a slot's actor away, in words that begin a line: its node left the
    cluster (Ray's words name its address and id), or the actor alone died."""
    text = str(exc)
    ip = re.search(r"\bip: (\S+)", text)
    node = re.search(r"Node Id: ([0-9a-f]{8})", text)
    where = f"Ray node {ip[1] if ip else '?'}" + (f" ({node[1]})" if node else "")
    if "its node has died" in text or getattr(exc, "preempted", False):
        return f"{where} left the cluster"
    return f"a slot's Ray actor on {where} died ({type(exc).__name__})"


def failure_of(exc: BaseException) -> tuple[str, dict[str, str]]:
    """Why a cell's wait ended in `exc`, one of Ray's errors (not a lost node: `LOST`),
    and the `RunOutcome.harness` keys that stop the run without a record for it."""
    cause = exc.cause if isinstance(exc, ray.exceptions.RayTaskError) else None
    if isinstance(cause, RuntimeError) and "failed to import on the worker" in str(cause):
        # The node's repromatrix lacks what the driver's calls (an older one, or none
        # on a plain `ray start` node): not the cell's failure, and a record of it
        # would be reused by the next run. The run stops (exit 4), as for other code.
        cause = NodeCannotRun(
            MISSING_TOOL,
            f"on Ray node {getattr(exc, 'ip', '') or '?'}: repromatrix's code for the "
            f"node could not be imported there ({str(cause).strip().splitlines()[-1][:200]});"
            " install the driver's repromatrix on every node and restart them (`ray-node`)",
        )
    if isinstance(cause, NodeCannotRun):  # no record: the run stops, as a local one does
        where = {HOST_STORAGE_AT: cause.where} if cause.where else {}
        cut = {HOST_LOGS_CUT: cause.cut} if cause.cut else {}
        return cause.why, {cause.key: cause.why, **where, **cut}
    if isinstance(exc, ray.exceptions.LocalRayletDiedError):
        # This machine's own Ray is gone (`ray stop`, the head killed): the cluster,
        # not the cell, failed. No record; the run stops as for a lost engine (exit 5).
        why = "the Ray cluster stopped answering (this machine's raylet died)"
        return why, {ENGINE_LOST: why}
    if isinstance(exc, ray.exceptions.OutOfMemoryError):
        return (
            "infrastructure: Ray killed the cell's worker because its node ran low on "
            f"memory ({one_line(exc)[:160]})",
            {},
        )
    return f"harness failed on the node: {one_line(exc)}", {}


def one_line(exc: BaseException) -> str:
    """What failed, in one line: for a task that raised, the node's own exception (Ray's
    text of it is a traceback, of which a line's worth said nothing)."""
    cause = exc.cause if isinstance(exc, ray.exceptions.RayTaskError) else None
    if isinstance(cause, ReproMatrixError):  # a message written for the user
        exc = cause
    elif isinstance(cause, BaseException):
        return one_line(Exception(f"{type(cause).__name__}: {cause}"))
    return " ".join(str(exc).split())[:300]


def other_files(result: Result, pins: Iterable[Pin], held: Callable[[Pin], str]) -> str | None:
    """Why `result`, come back from a node, must not be stored: the node installed a PyPI
    release from other files than the driver's find-links folders hold of it (`held`: a
    pin's `release_digest` there; a node's own folder at that path, or its PIP_FIND_LINKS,
    holds another wheel of it). Its verdict is of files the cell's key does not name, and
    no later run took it (`made_from_files`): each ran the cell again, without a word.
    None where the files agree, or either side names none (an index's release)."""
    if (other := made_from_other_files(result, pins, held)) is None:
        return None
    pin, made, here = other
    return (
        f"its find-links folders (or PIP_FIND_LINKS) hold other files of "
        f"{pin.source} {pin.rev} than the driver's (files {made}, the driver's "
        f"{here}); put the driver's files at the same paths on every node"
    )
