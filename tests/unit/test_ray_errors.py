"""What a record says when the harness failed on a Ray node (not the repro)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ray_exceptions = pytest.importorskip("ray.exceptions")

from repromatrix.config import load_matrix  # noqa: E402
from repromatrix.errors import MissingToolError, UsageError  # noqa: E402
from repromatrix.executors.ray.failures import one_line as _one_line  # noqa: E402
from repromatrix.executors.ray.failures import other_files  # noqa: E402
from repromatrix.expand import expand  # noqa: E402
from repromatrix.host import HostGpu, HostInfo  # noqa: E402
from repromatrix.model import Status  # noqa: E402
from repromatrix.records import Result  # noqa: E402

_TRACEBACK = (
    "ray::_SlotActor.run() (pid=28284, ip=192.0.2.2, actor_id=2b119cd0, repr=<repromatrix."
    "executors.ray.executor._SlotActor object at 0x7fb161d30f50>)\n"
    + '  File "/src/repromatrix/executors/ray/executor.py", line 85, in run\n' * 3
    + "    ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
)


def _task_error(cause: BaseException) -> BaseException:
    error = ray_exceptions.RayTaskError("run", _TRACEBACK, cause)
    raised: BaseException = error.as_instanceof_cause()  # what ray.get raises
    return raised


def test_a_node_exception_is_named_not_rays_traceback() -> None:
    """The reason was the first 300 characters of Ray's traceback (pid, ip, actor id,
    carets) and never the exception: "harness failed on the node: ray::_SlotActor.run()
    (pid=28284, …^^^^ File "/…/executor.py"."""
    cause = NotADirectoryError(20, "Not a directory", "/srv/cache/scripts")
    assert _one_line(_task_error(cause)) == (
        "NotADirectoryError: [Errno 20] Not a directory: '/srv/cache/scripts'"
    )
    said = MissingToolError("--python /opt/py: cannot run it (not found); pass a Python")
    assert _one_line(_task_error(said)) == str(said)  # written for the user: as it is
    assert _one_line(ValueError("a\n  b")) == "a b"


def test_the_cell_rays_memory_monitor_killed_is_recorded_not_run_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A slot's actor killed by Ray's memory monitor while it ran a cell: every call of the
    actor raises OutOfMemoryError, and each went back as a plain task, the running cell
    too, which took the node's memory again up to 1 + --ray-retries more times (four runs
    of one cell here). The running cell is recorded, naming the memory; a cell queued
    behind it never started and comes back moved, for the scheduler to hand out first
    again (it went back as a plain task, which ran after every other cell)."""
    import threading
    from datetime import UTC, datetime

    from cells import CELL

    from repromatrix.executors.ray import executor as ray_executor
    from repromatrix.executors.ray.losses import Losses
    from repromatrix.executors.ray.slots import SlotActors
    from repromatrix.executors.ray.waits import Waits
    from repromatrix.options import SessionConfig

    killed = ray_exceptions.OutOfMemoryError("1 worker(s) were killed due to low memory")
    submitted: list[tuple[object, ...]] = []

    class Tasks:  # `on_node`: a cell submitted again as a plain task
        def options(self, **options: object) -> Tasks:
            return self

        def remote(self, *args: object) -> str:
            submitted.append(args)
            return "task"

    def get(ref: object, timeout: float) -> object:
        raise killed  # the actor's calls, and what Ray says of the actor

    class Actor:  # a slot's actor: its calls are named by the test
        class run:
            @staticmethod
            def remote(*args: object) -> str:
                return "call"

        class __ray_ready__:  # Ray's name
            @staticmethod
            def remote() -> str:
                return "ready"

    monkeypatch.setattr(ray_executor, "on_node", Tasks())
    monkeypatch.setattr("ray.get", get)
    executor = object.__new__(ray_executor.RayExecutor)
    executor.config = SessionConfig()
    executor._identity = "ray:head"
    executor._lock = threading.Lock()
    executor._pending = set()
    executor._cancelled = threading.Event()
    executor._waits = Waits(None)
    executor._losses = Losses(executor.config.ray_retries)
    executor._let_go = set()
    executor._slots = SlotActors(lambda options: Actor(), end=lambda actor: None)
    actor, _ = executor._slots.call("ray-cpu0", {}, ())
    _, _ = executor._slots.call("ray-cpu0", {}, ())
    started = datetime.now(UTC)

    def task(ref: str) -> ray_executor._Task:
        return ray_executor._Task(
            executor=executor, cell=CELL, started=started, slot="ray-cpu0", actor=actor, ref=ref
        )

    running = executor._outcome(task("running"))
    assert submitted == []  # not run again
    assert (running.harness_error or "").startswith(
        "infrastructure: Ray killed the cell's worker because its node ran low on memory ("
    )
    queued = executor._outcome(task("queued"))
    assert submitted == []  # no plain task: the scheduler hands it out again
    assert queued.moved == "a slot's Ray actor on Ray node ? died (OutOfMemoryError)"


def test_a_type_no_node_offers_names_what_the_nodes_do_offer() -> None:
    """`bisect --gpu B200 --executor ray` on a cluster of H100 nodes said "no node offers
    B200 (the cluster has no GPU (no node offers a GPU type of the matrix))": the
    cluster was counted over B200 alone, and the H100s it has were never named."""
    from repromatrix.executors.ray.cluster import cluster_host
    from repromatrix.model import GpuType

    b200 = GpuType(name="B200", compute_capability="10.0", smi_names=("NVIDIA B200",))
    nodes = {"CPU": 4.0, "GPU": 3.0, "repromatrix-gpu-H100": 2.0, "repromatrix-gpu-L4": 1.0}
    assert cluster_host(nodes, [b200]).lacks(b200) == (
        "no host with this GPU in the cluster: no node offers B200 "
        "(its nodes offer 2 × H100, 1 × L4)"
    )
    assert cluster_host({"CPU": 4.0}, [b200]).lacks(b200) == (
        "no host with this GPU in the cluster: no node offers B200 (the cluster has no GPU)"
    )


def test_a_type_no_node_offers_names_the_types_the_cluster_has_by_count() -> None:
    """`run --executor ray` with L4 cells on a cluster of one H100 said "no node offers
    L4 (the cluster has 0: NVIDIA H100 80GB HBM3)": the index of the H100 among the
    cluster's GPUs, which read as a count of none."""
    from repromatrix.executors.ray.cluster import cluster_host
    from repromatrix.model import GpuType

    h100 = GpuType(name="H100", compute_capability="9.0", smi_names=("NVIDIA H100 80GB HBM3",))
    l4 = GpuType(name="L4", compute_capability="8.9", smi_names=("NVIDIA L4",))
    nodes = {"CPU": 4.0, "GPU": 1.0, "repromatrix-gpu-H100": 1.0}
    assert cluster_host(nodes, [h100, l4]).lacks(l4) == (
        "no host with this GPU in the cluster: no node offers L4 (its nodes offer 1 × H100)"
    )


@pytest.mark.parametrize("value", ["abc", "1_0", "５", " 5", "nan", "inf", "-1", "0"])
def test_a_connect_timeout_that_is_no_seconds_is_a_usage_error(value: str) -> None:
    """REPROMATRIX_RAY_CONNECT_S=abc ended `run --executor ray` as an internal error
    (float()), `nan` and `-1` gave up on the cluster at once ("no Ray cluster answered
    within nan s"), and `1_0` or a full-width digit were read as 10 and 5."""
    from repromatrix.executors.ray import cluster

    with (
        pytest.raises(UsageError, match=r"^REPROMATRIX_RAY_CONNECT_S=.*: give the seconds"),
        cluster.connecting("127.0.0.1:1", {"REPROMATRIX_RAY_CONNECT_S": value}),
    ):
        pass


def test_a_connect_timeout_in_seconds_is_taken() -> None:
    from repromatrix.executors.ray.cluster import _connect_seconds

    assert [_connect_seconds(t) for t in ("", "2", "0.5", "30.", ".25")] == [
        120.0, 2.0, 0.5, 30.0, 0.25,
    ]  # fmt: skip


def _two_h100s() -> HostInfo:
    smi = "NVIDIA H100 80GB HBM3"
    gpus = (HostGpu(index=i, name=smi, uuid=f"GPU-n-{i}", compute_capability="9.0") for i in (0, 1))
    return HostInfo(hostname="n", gpus=tuple(gpus))


@pytest.mark.parametrize("given", ["5", "GPU-nope", "0,GPU-n-7"])
def test_a_node_told_to_use_a_gpu_it_lacks_is_refused_not_started_without_it(given: str) -> None:
    """`CUDA_VISIBLE_DEVICES=5 repromatrix ray-node ...` on a host of GPUs 0 and 1 (a typo,
    a UUID of another machine) joined the cluster offering "no GPU" (or fewer than named),
    exit 0: the names that matched no GPU were dropped, and the node's H100 cells went to
    other nodes or were noted "no host with this GPU in the cluster"."""
    from repromatrix.executors.ray.cluster import node_plan
    from repromatrix.model import GpuType

    h100 = GpuType(name="H100", compute_capability="9.0", smi_names=("NVIDIA H100 80GB HBM3",))
    with pytest.raises(UsageError) as raised:
        node_plan(_two_h100s(), [h100], {"CUDA_VISIBLE_DEVICES": given})
    missing = given.rsplit(",", maxsplit=1)[-1]
    assert str(raised.value) == (
        f"ray-node: CUDA_VISIBLE_DEVICES={given} names {missing}, no GPU of this host "
        "(nvidia-smi lists 0 GPU-n-0, 1 GPU-n-1): give indices or UUIDs of its GPUs, "
        "or leave it unset to offer them all"
    )


@pytest.mark.parametrize(("given", "count"), [("", 0), ("-1", 0), ("1", 1), ("GPU-n-0,1", 2)])
def test_a_node_told_to_use_its_own_gpus_or_none_offers_them(given: str, count: int) -> None:
    """An empty CUDA_VISIBLE_DEVICES, or -1 (the usual way to hide every GPU), offers none."""
    from repromatrix.executors.ray.cluster import node_plan
    from repromatrix.model import GpuType

    h100 = GpuType(name="H100", compute_capability="9.0", smi_names=("NVIDIA H100 80GB HBM3",))
    plan = node_plan(_two_h100s(), [h100], {"CUDA_VISIBLE_DEVICES": given})
    assert plan.counts == {"H100": count}


class _Ready:
    """A slot's actor whose `__ray_ready__` calls are counted (their refs: 0, 1, ...)."""

    def __init__(self) -> None:
        self.asked = 0
        outer = self

        class Call:
            @staticmethod
            def remote() -> int:
                outer.asked += 1
                return outer.asked - 1

        self.__ray_ready__ = Call


def test_a_lost_actor_is_said_dropped_once_ray_knows_its_node_died(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A call to a slot's actor fails as soon as its node stops answering (Ray: the actor
    is unavailable), before Ray's health checks find the node dead; dropped then, its
    slot was counted again while the node's GPUs were still offered. Ray is asked again
    until it says how the actor ended: its node left, by its address and id."""
    import threading

    from repromatrix.executors.ray import failures

    died = ray_exceptions.RayActorError(
        error_msg="The actor died unexpectedly before finishing this task.\n\tip: 10.0.0.7\n"
        "The actor died because its node has died. Node Id: 3f2a9c1e0b5d"
    )
    answers: list[BaseException] = [ray_exceptions.ActorUnavailableError("gone", None), died]

    def get(ref: int, timeout: float) -> None:
        raise answers[ref]

    monkeypatch.setattr("ray.get", get)
    actor = _Ready()
    stop = threading.Event()
    assert (
        failures.death_of(actor, stop, wait_s=60) == "Ray node 10.0.0.7 (3f2a9c1e) left the cluster"
    )
    assert actor.asked == 2


def test_ctrl_c_ends_the_wait_for_how_a_lost_actor_ended(monkeypatch: pytest.MonkeyPatch) -> None:
    """The wait for Ray to say how an actor ended (up to a minute, its health checks)
    held Ctrl-C up as long; it ends when the run stops."""
    import threading

    from repromatrix.executors.ray import failures

    stop = threading.Event()

    def get(ref: int, timeout: float) -> None:
        stop.set()  # Ctrl-C while Ray has not said
        raise ray_exceptions.GetTimeoutError("not yet")

    monkeypatch.setattr("ray.get", get)
    actor = _Ready()
    words = failures.death_of(actor, stop, wait_s=3600)
    assert words == "a slot's Ray actor was lost as the run stopped"
    assert actor.asked == 1


def test_a_driver_of_another_python_or_ray_is_told_so_not_an_internal_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A driver in a venv of Python 3.12 (or Debian's 3.11.2) beside a cluster started with
    3.11.7, the same Ray: ray.init's RuntimeError ended `run` and `bisect` as "internal
    error: RuntimeError: Version mismatch: ... (report it)", exit 70."""
    from types import SimpleNamespace
    from typing import cast

    from repromatrix.executors.ray import driver
    from repromatrix.options import SessionConfig

    said = (
        "Version mismatch: The cluster was started with:\n    Ray: 2.60.0\n    Python: 3.11.7\n"
        "This process on node 192.0.2.2 was started with:\n    Ray: 2.60.0\n    Python: 3.12.1\n"
    )

    def init(**_: object) -> None:
        raise RuntimeError(said)

    for name in ("RAY_task_oom_retries", "RAY_IGNORE_UNHANDLED_ERRORS"):  # join sets them
        monkeypatch.setenv(name, os.environ.get(name, "1"))
    monkeypatch.setattr(driver, "checked_address", lambda address, flag: address)
    monkeypatch.setattr("ray.init", init)
    config = SimpleNamespace(ray_address="10.0.0.5:6379", ray_address_from="--ray-address")
    with pytest.raises(MissingToolError) as raised:
        driver.join(cast("SessionConfig", config))
    assert str(raised.value) == (
        "--ray-address 10.0.0.5:6379: the cluster runs Ray 2.60.0 on Python 3.11.7, this "
        "driver Ray 2.60.0 on Python 3.12.1, and Ray joins only the same versions: run "
        "repromatrix with the Python (and Ray) the cluster's nodes were started with"
    )


def test_ray_starts_failure_is_said_by_its_error_not_its_last_line() -> None:
    """`ray-node --address` from a venv of another Python said "ray start failed (1):
    Python: 3.12.1", the last line of Ray's six-line mismatch, and nothing of a mismatch."""
    from repromatrix.executors.ray import cluster

    traceback = (
        "Traceback (most recent call last):\n"
        '  File "/v/ray/_private/utils.py", line 1440, in check_version_info\n'
        "    raise RuntimeError(error_message)\n"
        "RuntimeError: Version mismatch: The cluster was started with:\n    Ray: 2.60.0\n"
        "    Python: 3.11.7\nThis process on node 192.0.2.2 was started with:\n"
        "    Ray: 2.60.0\n    Python: 3.12.1\n"
    )
    said = cluster.start_failure(1, "INFO scripts.py:1234 -- Local node IP: 192.0.2.2\n", traceback)
    assert isinstance(said, MissingToolError)  # exit 4, as the driver's mismatch
    assert str(said) == (
        "ray start failed (1): RuntimeError: Version mismatch: The cluster was started with: "
        "Ray: 2.60.0 Python: 3.11.7 This process on node 192.0.2.2 was started with: Ray: "
        "2.60.0 Python: 3.12.1; start the node with the Python (and Ray) of the cluster's head"
    )
    late = "Exception: The current node timed out during startup. This could happen ...\n"
    said = cluster.start_failure(1, "", "Traceback (most recent call last):\n  File x\n" + late)
    assert isinstance(said, UsageError)
    assert str(said) == f"ray start failed (1): {late.strip()}"
    assert str(cluster.start_failure(2, "usage: ray start\n", "")) == (
        "ray start failed (2): usage: ray start"
    )


@pytest.mark.parametrize("given", ["http://127.0.0.1:8265", "gcs://10.0.0.5:6379"])
def test_an_address_with_a_scheme_is_a_usage_error(given: str) -> None:
    """The dashboard's URL as --ray-address was "no Ray cluster answers there (Name or
    service not known)", exit 5, where a head answered at that host and port."""
    from repromatrix.executors.ray import cluster

    with pytest.raises(UsageError, match=r"write HOST:PORT, the head's GCS address"):
        cluster.checked_address(given)


def test_a_record_a_node_made_from_other_files_of_a_release_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node whose find-links folder at the driver's path (or PIP_FIND_LINKS) held another
    wheel of `fi 1` installed it, and the driver stored its verdict, exit 0, as the
    release's; no later run took it (its files were not the driver's) and each ran the
    cell again without a word. The driver now refuses it (`other_files`, exit 4)."""
    (tmp_path / "r.py").write_text("")
    (tmp_path / "m.yaml").write_text(
        "schema: 1\nlibraries:\n  fi: {pypi: fi, import: fi, versions: ['1']}\n"
        "repros:\n  b: {script: r.py, gpus: [cpu], libraries: {fi: all}}\n"
    )
    (cell,) = expand(load_matrix(tmp_path / "m.yaml"))

    def made_from(files: str) -> Result:
        pins = {"fi": {"rev": "1"} | ({"files": files} if files else {})}
        return Result.for_cell(
            cell, status=Status.REGRESSED, reason="bad", base_fingerprint="x",
            provenance={"harness": {"pins": pins}},
        )  # fmt: skip

    said = other_files(made_from("node0000"), cell.pins, lambda pin: "driver00")
    assert said == (
        "its find-links folders (or PIP_FIND_LINKS) hold other files of fi 1 than the "
        "driver's (files node0000, the driver's driver00); put the driver's files at the "
        "same paths on every node"
    )
    assert other_files(made_from("driver00"), cell.pins, lambda pin: "driver00") is None
    # Either side from an index (no files named): nothing to compare, as `run`'s reuse.
    assert other_files(made_from(""), cell.pins, lambda pin: "driver00") is None
    assert other_files(made_from("node0000"), cell.pins, lambda pin: "") is None
