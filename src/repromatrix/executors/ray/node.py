"""What runs on a Ray node for one cell: the node's own executor, its GPU, one record.

A Ray worker process runs `run_cell` for a task. The node keeps, per Ray worker process,
its executors between tasks (module state): environments and compile caches in the node's
cache folder (`repromatrix ray-node --cache`), and the persistent workers of the local or
Docker executor, so a node runs cell after cell of an environment without re-importing
torch. The cell is judged here, where its result JSON is; the driver stores the record.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repromatrix import logs, redact, watchdog
from repromatrix.envs import EnvCache, installs_with_pip
from repromatrix.errors import MissingToolError
from repromatrix.executors.base import (
    ENGINE_LOST,
    HOST_FULL,
    HOST_STORAGE,
    HOST_STORAGE_AT,
    MISSING_TOOL,
    Slot,
    engine_lost,
    host_full,
)
from repromatrix.executors.judge import judge
from repromatrix.executors.local import LocalExecutor
from repromatrix.executors.ray.builds import NODE_BUILD, ClusterFailedBuilds, node_failure
from repromatrix.executors.ray.cluster import NODE_CACHE_VAR, node_python
from repromatrix.executors.ray.node_scripts import local_scripts
from repromatrix.executors.refusals import IMAGE_REFUSED
from repromatrix.host import (
    CELL_PYTHON_TEXT,
    HostInfo,
    Interpreter,
    detect,
    matches,
    missing_modules,
    probe_interpreter,
)
from repromatrix.logs import cut_for_room, trim_cell_logs
from repromatrix.model import Cell, Status
from repromatrix.options import SessionConfig
from repromatrix.records import Result

if TYPE_CHECKING:
    from repromatrix.executors.docker import DockerExecutor


@dataclass(frozen=True, kw_only=True)
class Shared:
    """What the cells of one script in one run share: sent to each node once (the
    driver puts it in Ray's object store and tasks name it)."""

    config: SessionConfig
    #: The repro script and the code beside it that its key covers (`_*.py` helpers, imported
    #: modules and packages of its folder), by path relative to that folder.
    scripts: Mapping[str, bytes]


@dataclass(frozen=True, kw_only=True)
class NodeTask:
    """One cell for a node: everything the driver knows that the node needs."""

    cell: Cell
    shared: Shared
    run_id: str

    @property
    def config(self) -> SessionConfig:
        return self.shared.config

    @property
    def scripts(self) -> Mapping[str, bytes]:
        return self.shared.scripts


@dataclass(kw_only=True)
class _Node:
    config: SessionConfig
    host: HostInfo
    interpreter: Interpreter
    local: LocalExecutor
    docker: DockerExecutor | str | None = None


_nodes: dict[str, _Node] = {}
_lock = threading.Lock()
#: Shared objects by the key the driver gave them, newest last (a worker: a few at a time).
_shared: dict[str, Shared] = {}
_SHARED_KEPT = 32


def shared_for(key: str, fetch: Callable[[], Shared]) -> Shared:
    """The run's `Shared` named `key`: made by `fetch` (unpickling what the cell carried)
    the first time this worker process meets the key, then taken from memory."""
    with _lock:
        found = _shared.get(key)
    if found is None:
        found = fetch()
        with _lock:
            _shared[key] = found
            while len(_shared) > _SHARED_KEPT:
                del _shared[next(iter(_shared))]
    return found


def run_cell(task: NodeTask, gpu_ids: list[int], node_id: str, *, actor: str = "") -> Result:
    """Run one cell on this node and return its record; `actor` is the Ray actor of the
    cell's slot (none: it ran as a plain task, away from a node that lacks its type)."""
    begun = time.perf_counter()
    _watched()
    node = node_for(task.config)
    try:
        return _run_cell(task, node, gpu_ids, node_id, actor, begun)
    except OSError as exc:  # the node's cache cannot take the cell's files
        if exc.errno not in HOST_FULL:
            raise
        raise _on(node, HOST_STORAGE, exc.strerror or str(exc)) from None


class NodeCannotRun(Exception):
    """This node can run no cell now: its Docker engine is unreachable or stopped
    answering (exit 5), its cache's disk is full or read-only (exit 8), its interpreter
    lacks a module the cell needs or its repromatrix is not the driver's (exit 4). Raised
    to the driver, which stops the run without a record for the cell, as a local run
    does: an error record would stand for a run that never was, and the next run would
    reuse it. `key`: the `RunOutcome.harness` key that says which; `cut`: what a full
    disk's cell held in its logs, cut here."""

    def __init__(self, key: str, why: str, where: str = "", cut: str = "") -> None:
        super().__init__(key, why, where, cut)  # all in `args`: the driver unpickles it
        self.key, self.why, self.where, self.cut = key, why, where, cut

    def __str__(self) -> str:
        return self.why


class NodeLacksType(Exception):
    """This node offers the cell's GPU type and has no GPU of it for Ray to give (a node
    started by hand, `ray start --resources`, on another card). Raised to the driver,
    which runs the cell on other nodes: an error record stood for a run that never was.
    `node_id`: the Ray node; `why`: what it offers and lacks."""

    def __init__(self, node_id: str, why: str) -> None:
        super().__init__(node_id, why)  # all in `args`: the driver unpickles it
        self.node_id, self.why = node_id, why

    def __str__(self) -> str:
        return self.why


_code: list[str] = []


def code_digest() -> str:
    """A digest of this repromatrix's own source files (made once per process)."""
    if not _code:
        digest = hashlib.sha256()
        for path in sorted(_PACKAGE.rglob("*.py")):
            digest.update(path.relative_to(_PACKAGE).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
        _code.append(digest.hexdigest()[:16])
    return _code[0]


def check_code(driver: str) -> None:
    """Refuse a cell from a driver whose repromatrix is not this node's: the node ran and
    judged it with its own code (the driver's objects unpickled into this node's classes
    field by field), and nothing said so. Stops the run (exit 4), as a local run refuses
    an interpreter it cannot use."""
    if driver != code_digest():
        raise NodeCannotRun(
            MISSING_TOOL,
            f"on Ray node {socket.gethostname()}: its repromatrix ({_PACKAGE}, code "
            f"{code_digest()}) is not the driver's (code {driver or 'unknown'}); install "
            "the driver's repromatrix on every node and restart them (`ray-node`)",
        )


_PACKAGE = Path(__file__).resolve().parents[2]


def _on(node: _Node, key: str, why: str, at: str | None = None, cut: str = "") -> NodeCannotRun:
    """The error for `why`, saying which node (and for a full disk, which folder: `at`,
    the executor's word for it, else the node's cache; `cut`: what its cell's logs held)."""
    if key == HOST_STORAGE:  # the driver says "… could not run: {why} under {where}"
        host = f"Ray node {node.host.hostname}"
        where = f"{at} on {host}" if at else f"{host}'s cache ({node.config.cache})"
        return NodeCannotRun(key, why, where, cut)
    return NodeCannotRun(key, f"on Ray node {node.host.hostname}: {why}")


def _run_cell(
    task: NodeTask, node: _Node, gpu_ids: list[int], node_id: str, actor: str, begun: float
) -> Result:
    cell = local_scripts(task.cell, task.shared, task.scripts, node.config.cache, _SHARED_KEPT)
    harness: dict[str, Any] = {"node": node_id[:12], "ray_gpu_ids": list(gpu_ids)}
    if actor:
        harness["slot_actor"] = actor[:12]
    slot = _slot(node.host, cell, gpu_ids)
    if isinstance(slot, str):  # not the cell's failure: the driver runs it elsewhere
        offers = f"Ray node {node.host.hostname} offers {cell.gpu.name}, but {slot}"
        raise NodeLacksType(node_id, offers)
    workdir = node.config.cache / "runs" / task.run_id / f"{cell.key}.{secrets.token_hex(3)}"
    executor = node.local if cell.base.is_host else _docker(node)
    if isinstance(executor, str):  # no engine here: not the cell's failure
        raise _on(node, ENGINE_LOST, executor)
    missing = functools.partial(_missing, node)
    refused = interpreter_refuses(node.interpreter, cell, missing) if cell.base.is_host else ""
    if refused:  # a local run refuses to start so (exit 4): no record of a wrong run
        raise _on(node, MISSING_TOOL, refused)
    # What a local run notes as "not run here" (an image this node lacks under --pull
    # never): a note the next run retries, never a final error record.
    not_here = None if cell.base.is_host else executor.can_run(cell)
    if not_here is None and not isinstance(executor, LocalExecutor):
        # The image's python3 (asked once per image id, as a local run asks it): a cell
        # that cannot start its worker is noted, not an error record reused by later runs.
        not_here = executor.refuses(cell)
        if not_here is not None:  # the driver's run ends as a local one does (exit 4)
            harness[IMAGE_REFUSED] = True
    if not_here is None:
        outcome = executor.run(cell, slot, workdir)
        for key, stop in ((ENGINE_LOST, engine_lost(outcome)), (HOST_STORAGE, host_full(outcome))):
            if stop is not None:
                cut = cut_for_room(workdir, "`ray-node --cache`") if key == HOST_STORAGE else ""
                raise _on(node, key, stop, outcome.harness.get(HOST_STORAGE_AT), cut)
        # A build failed for the node's own want: a note the next run retries (an error
        # record was reused after the node mended).
        not_here = node_failure(outcome.harness_error, workdir / "env-build.log")
        if not_here is None:
            on = node.host
            result = judge(cell, outcome, host=on.hostname, run_id=task.run_id, machine=on.machine)
            # Its logs keep their tails, redacted, as a local run's (the driver: its own).
            trim_cell_logs(workdir)
            return _as_ray(result, harness, begun)
        harness[NODE_BUILD] = True
    now = datetime.now(UTC).isoformat(timespec="seconds")
    noted = Result.for_cell(
        cell, status=Status.NOT_RUN, reason=not_here, started=now, finished=now,
        host=node.host.hostname, run_id=task.run_id, machine=node.host.machine,
    )  # fmt: skip
    return _as_ray(noted, harness, begun)


def _as_ray(result: Result, harness: dict[str, Any], begun: float) -> Result:
    """The node's record as the cluster's: which node ran it is in its provenance."""
    provenance = dict(result.provenance)
    provenance["harness"] = {**dict(provenance.get("harness") or {}), "ray": harness}
    # The cluster is the base of a record made on it: a resumed run on the same cluster
    # reuses it, whichever node ran it (the node's own interpreter is in provenance).
    harness["base"] = result.base_fingerprint
    harness["node_s"] = round(time.perf_counter() - begun, 4)
    return result.model_copy(
        update={"provenance": provenance, "base_fingerprint": "ray", "executor": "ray"}
    )


#: (interpreter, modules) → which of them it cannot import: asked once per worker process.
_missing_seen: dict[tuple[str, tuple[str, ...]], list[str]] = {}


def _missing(node: _Node, needs: tuple[str, ...]) -> list[str]:
    key = (node.interpreter.executable, needs)
    if key not in _missing_seen:
        _missing_seen[key] = missing_modules(node.interpreter.executable, needs)
    return _missing_seen[key]


def interpreter_refuses(
    interpreter: Interpreter, cell: Cell, missing: Callable[[tuple[str, ...]], list[str]]
) -> str:
    """Why the node's `interpreter` cannot run `cell` ("" where it can; `missing`: which
    of some modules it cannot import), as a local run refuses it: it lacks a module the
    cell needs, is older than the worker and repros/_repro.py need, or has no pip where
    the cell has a pin to install (a uv venv). The last two made each cell an error
    record ("the worker exited (1) before connecting", "No module named pip"), exit 0,
    that later runs reused."""
    python, version = interpreter.executable, interpreter.version
    start = "start the node with `repromatrix ray-node --python PATH` of"
    if lacks := missing(cell.needs):
        return (
            f"{python} cannot import {', '.join(lacks)}, which {cell.id} needs; "
            f"{start} the interpreter that holds it"
        )
    if interpreter.too_old_for_cells:
        return (
            f"{python} is Python {version}; cells need Python {CELL_PYTHON_TEXT} or newer "
            f"(the worker and repros/_repro.py): {start} a newer one"
        )
    if installs_with_pip(cell.pins) and missing(("pip",)):
        return (
            f"{python} has no pip, which installs the pins of {cell.id}: add it to that "
            f"environment ({python} -m ensurepip) or {start} one that has it"
        )
    return ""


_guard: list[object] = []


def _watched() -> None:
    """Put this Ray worker process under a watchdog of its own, once: the driver ends a
    slot's actor with `ray.kill` (the run's end, Ctrl-C, a lost type), which gives the
    process no chance to clean up. A local worker ends with its parent, but a worker
    container has no parent to watch: it ran its cell on to the end (Ctrl-C), and
    stayed on the node after the run. The watchdog removes what carries this process's
    token (containers, processes) when the process dies, as for a local run. It is no
    child of this process: Ray kills a worker's children when the worker ends."""
    with _lock:
        if not _guard:
            guard = watchdog.guard(orphan=True)
            guard.__enter__()  # never left: the process's end closes it
            _guard.append(guard)


#: id(config) → (config, its node): configs met before, without `repr` for every cell
#: (the tuple keeps the config alive, so its id is not reused).
_seen: dict[int, tuple[SessionConfig, _Node]] = {}


def node_for(config: SessionConfig) -> _Node:
    """This node's executors for `config`; NodeCannotRun (exit 4) where its interpreter
    (`ray-node --python`) no longer runs (its venv removed, a link that leads nowhere): a
    local run refuses such a `--python` before any cell, and each cell was an error
    record ("harness failed on the node: --python ...: cannot run it"), exit 0, that
    later runs reused."""
    try:
        return _node(config)
    except MissingToolError as exc:
        raise NodeCannotRun(MISSING_TOOL, f"on Ray node {socket.gethostname()}: {exc}") from None


def _node(config: SessionConfig) -> _Node:
    seen = _seen.get(id(config))
    if seen is not None and seen[0] is config:
        return seen[1]
    node = _make_node(config)
    with _lock:
        if len(_seen) > _SHARED_KEPT:
            _seen.clear()
        _seen[id(config)] = (config, node)
    return node


def _make_node(config: SessionConfig) -> _Node:
    """The node's executors for this config (equal configs share them: their workers)."""
    key = repr(config)
    with _lock:
        if key in _nodes:
            return _nodes[key]
        cache = Path(os.environ.get(NODE_CACHE_VAR) or Path.home() / ".cache" / "repromatrix-node")
        python = node_python(config.python)
        node_config = dataclasses.replace(config, cache=cache, python=python)
        # The session's secrets, as `run` hides them (its --cell-env and this node's own
        # credential-named variables, which the cells inherit): a node that never heard
        # of them returned a printed HF_TOKEN in clear, and the driver stored it.
        redact.remember(os.environ, node_config.cell_env)
        logs.keep_whole(node_config.keep_logs)
        host = detect(os.environ)
        interpreter = probe_interpreter(python, env=os.environ)
        local = LocalExecutor(
            EnvCache(cache, interpreter, node_config.sources),
            env=os.environ,
            cell_env=node_config.cell_env,
            isolate=node_config.isolate,
            worker_max_rss_mb=node_config.worker_max_rss_mb,
            workroot=cache / "workers",
            holds=cache / "runs",  # its cells' folders: `clean` keeps them while it lives
            failed_builds=ClusterFailedBuilds(interpreter.fingerprint),
        )
        node = _Node(config=node_config, host=host, interpreter=interpreter, local=local)
        _nodes[key] = node
        return node


def close_nodes() -> None:
    """Stop this Ray worker process's persistent workers, as a local run does at its end
    (their socket folders go with them): `ray.kill` of a slot's actor at the run's end
    gave them no chance, and each run left a folder per worker in the node's /tmp."""
    with _lock:
        nodes = list(_nodes.values())
        _nodes.clear()
        _seen.clear()
    for node in nodes:
        node.local.close()
        if node.docker is not None and not isinstance(node.docker, str):
            node.docker.close()


def node_docker(config: SessionConfig) -> DockerExecutor | str:
    """This node's Docker executor for the session's config, the one its cells use (a
    string: why the node has none), for `image_pythons` to ask an image's python3."""
    return _docker(_node(config))


def _docker(node: _Node) -> DockerExecutor | str:
    if node.docker is None:
        try:
            from repromatrix.executors.docker import DockerExecutor
        except ImportError as exc:
            node.docker = f"the Docker SDK is not installed on this node ({exc.name})"
        else:
            # The cluster's slots share the run's failed image builds, as its libraries'.
            failed = ClusterFailedBuilds("docker")
            node.docker = DockerExecutor.connect(node.config, env=os.environ, failed_builds=failed)
    return node.docker


def _slot(host: HostInfo, cell: Cell, gpu_ids: list[int]) -> Slot | str:
    """The GPU Ray reserved for the task, as this node's probe knows it (PCI order, as
    `ray-node` pins CUDA_DEVICE_ORDER), checked to be of the cell's type."""
    if not cell.needs_gpu:
        return Slot(name="ray-cpu")
    if not gpu_ids:
        return "Ray reserved no GPU for its cell there"
    by_index = {g.index: g for g in host.gpus}
    gpu = by_index.get(int(gpu_ids[0]))
    if gpu is None:
        return f"Ray reserved GPU {gpu_ids[0]} there, which nvidia-smi does not list"
    if not matches(gpu, cell.gpu):
        return f"Ray reserved GPU {gpu.index} ({gpu.name}) there for its cell"
    return Slot(name=f"ray-gpu{gpu.index}", gpu=gpu)
