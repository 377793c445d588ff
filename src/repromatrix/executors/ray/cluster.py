"""The Ray cluster as repromatrix sees it: GPU types as custom resources, nodes started
with them, and the cluster's GPUs as one `HostInfo`.

GPU types come from repromatrix's own probe of each node (nvidia-smi names mapped to the
`gpus:` of matrix.yaml), published as the custom resource `repromatrix-gpu-<type>` (one
unit per physical GPU) when the node joins — not from Ray's built-in accelerator type,
which misreads cards (Ray has mapped "NVIDIA GeForce RTX 4090" to "G" and "RTX 6000 Ada"
to "RTX") and reads only GPU 0.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from repromatrix import proc
from repromatrix.errors import ClusterUnreachable, ExitCode, MissingToolError, UsageError
from repromatrix.host import HostGpu, HostInfo, matches
from repromatrix.model import GpuType

RESOURCE_PREFIX = "repromatrix-gpu-"
#: Set on a node by `repromatrix ray-node`: where its environments and caches live.
NODE_CACHE_VAR = "REPROMATRIX_NODE_CACHE"
#: Set on a node by `repromatrix ray-node --python`: the interpreter its cells run with.
NODE_PYTHON_VAR = "REPROMATRIX_NODE_PYTHON"


def resource(gpu_type: str) -> str:
    return f"{RESOURCE_PREFIX}{gpu_type}"


def node_python(run_python: str) -> str:
    """The interpreter this node runs cells with: its `ray-node --python`, else the run's
    `--python` where the node has it, else its own Ray interpreter."""
    return os.environ.get(NODE_PYTHON_VAR) or (
        run_python if Path(run_python).exists() else sys.executable
    )


def live_resources(
    excluded: Collection[str] = (),
) -> tuple[dict[str, float], dict[str, float]]:
    """What the cluster's live nodes offer, in `usable_resources`' two parts; none of the
    `excluded` nodes' (by node id)."""
    import ray

    return usable_resources(
        n.get("Resources") or {}
        for n in ray.nodes()
        if n.get("Alive") and n.get("NodeID") not in excluded
    )


def usable_resources(
    nodes: Iterable[Mapping[str, float]],
) -> tuple[dict[str, float], dict[str, float]]:
    """The nodes' resources summed, each GPU type's counted only up to its node's GPUs,
    and what that left out, by resource. A cell asks Ray for both: a type's resource on a
    node with no GPU for Ray (a node started by hand, `ray start --resources`, where Ray
    sees none) can never be given, and its cells waited for it for ever, saying nothing."""
    usable: dict[str, float] = {}
    without_gpu: dict[str, float] = {}
    for node in nodes:
        gpus = float(node.get("GPU", 0))
        for name, n in node.items():
            fits = min(float(n), gpus) if name.startswith(RESOURCE_PREFIX) else float(n)
            usable[name] = usable.get(name, 0.0) + fits
            if fits < n:
                without_gpu[name] = without_gpu.get(name, 0.0) + float(n) - fits
    return usable, without_gpu


def cluster_host(
    resources: Mapping[str, float],
    types: Iterable[GpuType],
    without_gpu: Mapping[str, float] | None = None,
) -> HostInfo:
    """The cluster's GPUs of the given types as one host: an entry per physical GPU.
    `without_gpu`: types' resources on nodes with no GPU for Ray, named in its note."""
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
    # What the nodes do offer, by type: a bisection asks for its one type only, and "the
    # cluster has no GPU" was all it said of a cluster full of other types; the GPUs'
    # indices across the cluster ("the cluster has 0: NVIDIA H100") read as counts.
    offered = [
        f"{int(n)} × {name.removeprefix(RESOURCE_PREFIX)}"
        for name, n in sorted(resources.items())
        if name.startswith(RESOURCE_PREFIX) and int(n)
    ]
    notes = [f"its nodes offer {', '.join(offered)}"] if offered else []
    useless = [
        f"{n:g} × {name.removeprefix(RESOURCE_PREFIX)}"
        for name, n in sorted((without_gpu or {}).items())
        if name.startswith(RESOURCE_PREFIX)
    ]
    if useless:
        notes.append(
            f"{', '.join(useless)} on nodes without a GPU for Ray to reserve: start "
            "them with `repromatrix ray-node`, which gives Ray their GPUs"
        )
    note = "; ".join(notes)
    return HostInfo(hostname="ray-cluster", gpus=tuple(gpus), gpu_note=note, scope="cluster")


@dataclass(frozen=True, kw_only=True)
class NodePlan:
    """What `repromatrix ray-node` will advertise: GPUs per matrix type."""

    counts: Mapping[str, int]
    unknown: tuple[str, ...]
    #: nvidia-smi indices of the GPUs of matrix types: the only ones Ray is given.
    typed: tuple[int, ...] = ()

    @property
    def resources(self) -> dict[str, float]:
        return {resource(t): float(n) for t, n in self.counts.items() if n}

    @property
    def gpus(self) -> int:
        """The GPUs Ray gets: those of matrix types. A cell asks for its type and a GPU,
        and Ray hands out GPUs by number: given a card of no type too (a display card
        beside an H100), it reserved that card for an H100 cell, stored as an error."""
        return sum(self.counts.values())

    @property
    def visible(self) -> str:
        """CUDA_VISIBLE_DEVICES for Ray: the GPUs of matrix types (Ray's GPU ids are then
        these indices, as `node._slot` reads them)."""
        return ",".join(map(str, self.typed))

    def check_one_type(self) -> None:
        """Refuse a node with GPUs of several matrix types: a cell asks Ray for its type
        and a GPU, and Ray hands GPUs out by number, so an L4 cell got the H100."""
        kinds = sum(1 for n in self.counts.values() if n)
        if kinds > 1:
            raise UsageError(
                f"ray-node: this node has GPUs of {kinds} "
                f"matrix types ({self.describe()}), and Ray hands GPUs out by number, not "
                "type: start one node per type, each with CUDA_VISIBLE_DEVICES set to its "
                "GPUs (nvidia-smi indices or UUIDs)"
            )

    def describe(self) -> str:
        parts = [f"{n} × {t}" for t, n in self.counts.items() if n]
        if self.unknown:
            parts.append(f"{len(self.unknown)} of no matrix type ({', '.join(self.unknown)})")
        return ", ".join(parts) or "no GPU"


def node_plan(
    host: HostInfo, types: Iterable[GpuType], env: Mapping[str, str] | None = None
) -> NodePlan:
    """Count this node's GPUs by matrix type (nvidia-smi names, as the local run does):
    those CUDA_VISIBLE_DEVICES in `env` names (indices or UUIDs), when it is set."""
    types = [t for t in types if not t.is_cpu]
    given = (env or {}).get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        named = _visible_names(given)
        _check_named(host, given, named)
        host = dataclasses.replace(
            host, gpus=tuple(g for g in host.gpus if {str(g.index), g.uuid} & set(named))
        )
    counts: dict[str, int] = {t.name: 0 for t in types}
    unknown: list[str] = []
    typed: list[int] = []
    for gpu in host.gpus:
        found = next((t for t in types if matches(gpu, t)), None)
        if found is None:
            unknown.append(gpu.name)
        else:
            counts[found.name] += 1
            typed.append(gpu.index)
    return NodePlan(counts=counts, unknown=tuple(unknown), typed=tuple(typed))


def _visible_names(given: str) -> list[str]:
    """The GPUs CUDA_VISIBLE_DEVICES names, up to a negative index (`-1`, the usual way to
    hide every GPU: CUDA sees none from there on)."""
    named: list[str] = []
    for part in (p.strip() for p in given.split(",")):
        if not part or re.fullmatch(r"-\d+", part):
            break
        named.append(part)
    return named


def _check_named(host: HostInfo, given: str, named: list[str]) -> None:
    """Refuse a name that is no GPU of this host (a typo, another machine's UUID): the node
    joined offering fewer GPUs than named, or none, at exit 0."""
    ours = {name for g in host.gpus for name in (str(g.index), g.uuid)}
    missing = [n for n in named if n not in ours]
    if missing and host.gpus:
        listed = ", ".join(f"{g.index} {g.uuid}" for g in host.gpus)
        raise UsageError(
            f"ray-node: CUDA_VISIBLE_DEVICES={given} names {', '.join(missing)}, no GPU of "
            f"this host (nvidia-smi lists {listed}): give indices or UUIDs of its GPUs, or "
            "leave it unset to offer them all"
        )


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
    variables["CUDA_VISIBLE_DEVICES"] = plan.visible  # no card of another type for Ray
    if python:
        variables[NODE_PYTHON_VAR] = python
    command = [_ray_cli(), "start", *argv]
    if block:
        group = proc.ProcessGroup(command, cwd=None, env=variables)
        try:
            return group.wait(None).returncode
        except BaseException:
            # The node lives as long as the command (a container's foreground process):
            # SIGTERM or Ctrl-C left `ray start --block` and the node's servers running,
            # in a session of their own that no signal of the terminal reaches.
            group.kill(cancelled=True)
            raise
    done = proc.run(command, env=variables, timeout=600, daemons=True)
    if done.returncode != 0:
        raise start_failure(done.returncode, done.stdout, done.stderr)
    return 0


def start_failure(code: int, stdout: str, stderr: str) -> UsageError | MissingToolError:
    """`ray start`'s failure in one line: the exception its traceback ends in, all its
    lines (Ray's version mismatch is six, and the last alone said "Python: 3.12.1"), else
    the last line it wrote. A mismatch is exit 4, as the driver's is (`driver.join`)."""
    lines = stderr.strip().splitlines() or stdout.strip().splitlines() or [""]
    raised = [i for i, line in enumerate(lines) if re.match(r"\w+(Error|Exception): ", line)]
    said = " ".join(" ".join(lines[raised[-1] if raised else -1 :]).split())[:400]
    if "Version mismatch" not in said:
        return UsageError(f"ray start failed ({code}): {said}")
    return MissingToolError(
        f"ray start failed ({code}): {said}; start the node with the Python (and Ray) of "
        "the cluster's head"
    )


def _ray_cli() -> str:
    """The `ray` command of this interpreter's Ray (beside it in a venv), else PATH's."""
    beside = Path(sys.executable).parent / "ray"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    try:
        return proc.which("ray")
    except MissingToolError:
        raise MissingToolError("the 'ray' command is missing: pip install 'ray>=2.9'") from None


#: How long the driver waits for the head's port before saying no cluster answers (Ray's
#: own client retries for minutes, printing C++ warnings, then raises).
CONNECT_S = 5.0
#: Where `ray start` records the address of the cluster it started on this machine.
CURRENT_CLUSTER = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"


def checked_address(address: str | None, flag: str = "--ray-address") -> str:
    """The cluster address to give `ray.init`, checked first: a malformed one is a usage
    error (exit 64), one where nothing answers is one line and exit 5, in seconds. `flag`:
    the option that gave it (`ray-node --address`)."""
    given = address or "auto"
    if given == "local":
        return given
    if given.startswith("ray://"):
        raise UsageError(
            f"{flag} {given}: Ray Client addresses are not supported; pass the head's "
            "GCS address HOST:PORT (what `ray-node --head` prints, default port 6379)"
        )
    where = current_head() if given == "auto" else given
    if given == "auto" and not where:
        raise ClusterUnreachable(
            "--executor ray: no Ray cluster was started on this machine; pass "
            "--ray-address HEAD:PORT, or start one with `repromatrix ray-node --head`"
        )
    # Without an address the user never typed one: say where it was read from.
    said = (
        f"--executor ray: {where}, the cluster last started on this machine ({CURRENT_CLUSTER})"
        if given == "auto"
        else f"{flag} {where}"
    )
    host, sep, port = where.rpartition(":")
    # A URL (the dashboard's http://…:8265) was looked up as a host name: "no Ray cluster
    # answers there", exit 5, where one did.
    if not sep or not host or "/" in host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"{said}: write HOST:PORT, the head's GCS address (e.g. 10.0.0.5:6379)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_S).close()
    except OSError as exc:
        raise ClusterUnreachable(
            f"{said}: no Ray cluster answers there ({exc.strerror or exc}); "
            "start the head with `repromatrix ray-node --head`, or check the address"
        ) from None
    return given if given == "auto" else where


def current_head() -> str:
    """The address of the cluster `ray-node --head` started on this machine ("" if none)."""
    try:
        return CURRENT_CLUSTER.read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def watch_head(address: str, *, every_s: float = 1.0, misses: int = 5) -> None:
    """End this process with one line and exit 5 once the head's GCS stops answering
    (`ray stop`, the head killed): Ray itself waits 60 s, then ends the driver with exit 1
    (`--fail-on`'s code) and a line of its own. Records already stored stay; cells cut
    short get none, and the next run does them. A daemon thread; "local" is not watched."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return

    def watch() -> None:
        missed = 0
        while missed < misses:
            time.sleep(every_s)
            try:
                socket.create_connection((host.strip("[]"), int(port)), timeout=2.0).close()
                missed = 0
            except OSError:
                missed += 1
        with contextlib.suppress(OSError):
            os.write(
                2,
                f"repromatrix: error: the Ray cluster at {address} stopped answering; "
                "finished results are kept, and the next run does what is left\n".encode(),
            )
        os._exit(int(ExitCode.DOCKER))

    threading.Thread(target=watch, name="repromatrix-ray-head-watch", daemon=True).start()


def _connect_seconds(text: str) -> float:
    """REPROMATRIX_RAY_CONNECT_S as seconds above 0 (default 120): `abc` was an internal
    error (float()), and `nan` or `-1` gave up at once, saying "within nan s"."""
    if not text:
        return 120.0
    seconds = float(text) if re.fullmatch(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+", text) else 0.0
    if not 0 < seconds <= 86400:
        raise UsageError(
            f"REPROMATRIX_RAY_CONNECT_S={text[:40]!a}: give the seconds to wait for a Ray head "
            "to answer, above 0 and at most 86400 (default 120), or unset it"
        )
    return seconds


@contextlib.contextmanager
def connecting(address: str, env: Mapping[str, str], err: int = 2) -> Iterator[None]:
    """Around `ray.init`: something that accepts connections at `address` but is no Ray
    head (a web server, another service) made it wait for ever, printing Ray's retries.
    After REPROMATRIX_RAY_CONNECT_S seconds (default 120): one line on `err` (standard
    error's descriptor, where Ray's retries are held apart) and exit 5."""
    seconds = _connect_seconds(env.get("REPROMATRIX_RAY_CONNECT_S", ""))

    def give_up() -> None:
        with contextlib.suppress(OSError):
            os.write(
                err,
                f"repromatrix: error: --ray-address {address}: no Ray cluster answered within "
                f"{seconds:g} s (is something else listening there?); check the address\n".encode(),
            )
        os._exit(int(ExitCode.DOCKER))

    timer = threading.Timer(seconds, give_up)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def quiet_driver() -> None:
    """Keep the cluster's error messages off this command's output. Whatever
    `log_to_driver` says, a driver's thread prints every error the cluster publishes to
    standard output: a lost node's raylet log (forty lines, in colour, twice), each kill
    by Ray's memory monitor with the command lines of the node's ten biggest processes
    (other users' too). That was `bisect`'s answer stream; every case it reports becomes a
    record or a one-line error here, and the messages stay in Ray's own logs on the head.
    The switch is the one Ray's debugger (`ray.util.rpdb`) turns off at a breakpoint."""
    import ray._private.worker

    if hasattr(ray._private.worker, "_worker_logs_enabled"):
        ray._private.worker._worker_logs_enabled = False


def head_as_named(address: str) -> str:
    """The head's address as the cluster names it (its node's own IP, the port given):
    the same cluster reached as 127.0.0.1, localhost, a DNS name or `auto` is one cluster,
    whose records a resumed run reuses."""
    port = address.rpartition(":")[2]
    if not port.isdigit():  # "local": a cluster of this run's own
        return address
    with contextlib.suppress(Exception):  # an older Ray's fields: the address as given
        import ray

        for node in ray.nodes():
            if node.get("Alive") and "node:__internal_head__" in node.get("Resources", {}):
                return f"{node['NodeManagerAddress']}:{port}"
    return address
