"""One identity per machine: a keyed hash of its GPUs' UUIDs (or machine files), never its
hostname or environment; old records get theirs from provenance; reports list machines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from repromatrix import host
from repromatrix.config import load_matrix
from repromatrix.expand import expand
from repromatrix.host import HostGpu, machine_identity
from repromatrix.records import Machine, MachineGpu, Result, machine_id
from repromatrix.report import build_report
from repromatrix.report.machines import machines
from repromatrix.store import ResultStore, decode

ROOT = Path(__file__).resolve().parents[2]
H200 = "GPU-2b5221e8-44ad-0794-11ee-59fb1c5c8235"
FAKE = f"0, NVIDIA H200, {H200}, 9.0, 580.159.04"


def test_machine_id_has_no_hostname_and_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "build-host-7.corp.example")
    secret_env = {"REPROMATRIX_FAKE_GPUS": FAKE, "HF_TOKEN": "hf_s3cr3t", "USER": "alice"}
    info = host.detect(secret_env)
    dumped = info.machine.model_dump_json()
    for secret in ("build-host-7", "corp.example", "hf_s3cr3t", "alice"):
        assert secret not in dumped
    assert info.machine.id.startswith("m-")
    assert info.machine.gpus == (MachineGpu(name="NVIDIA H200", uuid=H200),)
    assert info.machine.driver == "580.159.04"
    # Another hostname and other variables: the same machine.
    monkeypatch.setattr("socket.gethostname", lambda: "vm")
    again = host.detect({"REPROMATRIX_FAKE_GPUS": FAKE, "HF_TOKEN": "other", "PATH": "/x"})
    assert again.machine.id == info.machine.id


def test_gpu_uuids_tell_apart_vms_cloned_from_one_image(tmp_path: Path) -> None:
    machine_file = tmp_path / "machine-id"
    machine_file.write_text("0123456789abcdef0123456789abcdef\n")  # the same in every clone
    gpu = HostGpu(
        index=0, name="NVIDIA H100 80GB HBM3", uuid="GPU-8116de8a", compute_capability="9.0"
    )
    other = HostGpu(index=0, name="NVIDIA H200", uuid=H200, compute_capability="9.0")
    a = machine_identity((gpu,), files=(machine_file,))
    b = machine_identity((other,), files=(machine_file,))
    assert a.id != b.id
    # The order nvidia-smi lists GPUs in does not matter.
    assert machine_identity((gpu, other)).id == machine_identity((other, gpu)).id


def test_a_gpu_less_machine_is_named_by_a_keyed_hash_of_its_machine_files(tmp_path: Path) -> None:
    machine_file = tmp_path / "machine-id"
    machine_file.write_text("0123456789abcdef0123456789abcdef\n")
    m = machine_identity((), files=(machine_file, tmp_path / "missing"))
    assert m.id.startswith("m-")
    assert "0123456789abcdef" not in m.id  # never the confidential id itself (machine-id(5))
    assert machine_identity((), files=(machine_file,)).id == m.id
    machine_file.write_text("fedcba9876543210fedcba9876543210\n")
    assert machine_identity((), files=(machine_file,)).id != m.id
    assert machine_identity((), files=(tmp_path / "missing",)).id == ""


def stored(**extra: Any) -> dict[str, Any]:
    line: dict[str, Any] = {
        "schema": 2,
        "key": "k",
        "cell_id": "r[H200,host]",
        "repro": "r",
        "base": "host",
        "gpu": "H200",
        "status": "passed",
        "host": "vm",
        "run_id": "run-1",
    }
    line.update(extra)
    return line


def test_old_records_get_their_machine_from_the_slot_gpu() -> None:
    prov = {
        "driver": "580.159.04",
        "harness": {"gpu": {"index": 0, "name": "NVIDIA H200", "uuid": H200}},
    }
    r = decode(json.dumps(stored(provenance=prov)))
    assert r.machine.gpus == (MachineGpu(name="NVIDIA H200", uuid=H200),)
    assert r.machine.driver == "580.159.04"
    # The same id a new record gets on that (one-GPU) machine.
    gpu = HostGpu(index=0, name="NVIDIA H200", uuid=H200, compute_capability="9.0")
    assert r.machine.id == machine_identity((gpu,), files=()).id == machine_id([H200])
    # A CPU record carries no GPU: no machine is invented for it.
    assert decode(json.dumps(stored(provenance={"driver": "x"}))).machine == Machine()


def _result(run: str, machine: Machine, host_name: str = "vm") -> Result:
    return Result(
        key=run,
        cell_id="c",
        repro="r",
        base="host",
        gpu="cpu",
        status="passed",  # type: ignore[arg-type]
        host=host_name,
        run_id=run,
        finished="2026-01-01T00:00:00+00:00",
        machine=machine,
    )


def test_reports_group_records_by_machine_not_hostname() -> None:
    h100 = Machine(id=machine_id(["GPU-a"]), gpus=(MachineGpu(name="H100", uuid="GPU-a"),))
    h200 = Machine(id=machine_id(["GPU-b"]), gpus=(MachineGpu(name="H200", uuid="GPU-b"),))
    eight = Machine(
        id=machine_id(["GPU-c", "GPU-d"]),
        gpus=(MachineGpu(name="H200", uuid="GPU-c"), MachineGpu(name="H200", uuid="GPU-d")),
    )
    slot = Machine(id=machine_id(["GPU-d"]), gpus=(MachineGpu(name="H200", uuid="GPU-d"),))
    found = machines(
        [
            _result("r1", h100),
            _result("r1", Machine()),  # a CPU cell of the H100's run: joins its machine
            _result("r2", h200),
            _result("r3", eight),
            _result("r4", slot),  # an old record knew one GPU of the two-GPU host
            _result("r5", Machine(), host_name="laptop"),
        ]
    )
    by_name = {m.name: m for m in found}
    assert len(found) == 4
    assert by_name[h100.id].records == 2
    assert by_name[h200.id].records == 1
    assert by_name[eight.id].records == 2
    assert by_name[eight.id].gpus == ("2 × H200",)
    assert by_name["unidentified (recorded as laptop)"].records == 1
    assert all("vm" not in m.name for m in found)


def test_a_machines_first_and_last_dates_are_times() -> None:
    """A record whose 'finished' is no time was its machine's last date in summary.md's
    machines table ("yesterday", sorting after every year), or its first ("05/12/2026
    22:03", before them): the dates are its records' times, a record's start where its
    finish is none."""
    h100 = Machine(id=machine_id(["GPU-a"]), gpus=(MachineGpu(name="H100", uuid="GPU-a"),))
    records = [_result("r1", h100)]
    odd = records[0].model_copy(update={"finished": "yesterday", "run_id": "r2"})
    started = odd.model_copy(update={"finished": "", "started": "2026-01-02T00:00:00+00:00"})
    early = odd.model_copy(update={"finished": "05/12/2026 22:03", "run_id": "r3"})
    (found,) = machines([*records, odd, started, early])
    assert (found.first, found.last) == ("2026-01-01T00:00:00+00:00", "2026-01-02T00:00:00+00:00")


def test_the_machines_of_one_ray_run_are_told_apart() -> None:
    """A Ray run's records, made on two nodes, carry the driver's one run id: the report
    said "2 records from 1 machine(s)", one machine with an H100 and an L4 and drivers
    "550, 535"."""
    h100 = Machine(id=machine_id(["GPU-a"]), gpus=(MachineGpu(name="H100", uuid="GPU-a"),))
    l4 = Machine(id=machine_id(["GPU-b"]), gpus=(MachineGpu(name="L4", uuid="GPU-b"),))
    found = machines(
        [
            _result("ray-1", h100).model_copy(update={"executor": "ray"}),
            _result("ray-1", l4).model_copy(update={"executor": "ray"}),
        ]
    )
    assert sorted((m.name, m.gpus) for m in found) == sorted(
        [(h100.id, ("H100",)), (l4.id, ("L4",))]
    )


def test_the_published_report_tells_the_lent_machines_apart() -> None:
    """Every lent machine was called "vm"; the report still lists each one once, by what it
    is (several H200s lent on different days are different machines)."""
    results = ResultStore(ROOT / "results" / "published").load().results
    assert {r.host for r in results} == {"vm"}
    matrix = load_matrix(ROOT / "matrix.yaml")
    data = build_report(results, matrix, expand(matrix))
    assert {m.gpus for m in data.machines} == {("NVIDIA H200",), ("NVIDIA H100 80GB HBM3",)}
    assert len({m.name for m in data.machines}) == len(data.machines) >= 2
    assert len({r.machine.id for r in results if r.machine.id}) == len(data.machines)
    assert sum(m.records for m in data.machines) == len(results)


def test_not_run_notes_name_the_machine_they_were_made_on(tmp_path: Path) -> None:
    from repromatrix.host import HostInfo
    from repromatrix.model import CPU, HOST_BASE, Base, BaseKind, Cell
    from repromatrix.scheduler import Scheduler

    gpu = HostGpu(index=0, name="NVIDIA H200", uuid=H200, compute_capability="9.0")
    info = HostInfo(hostname="vm", gpus=(gpu,), machine=machine_identity((gpu,), files=()))
    cell = Cell(
        repro="r",
        script=tmp_path / "r.py",
        base=Base(name=HOST_BASE, kind=BaseKind.HOST),
        gpu=CPU,
        pins=(),
        params={},
        timeout_s=1.0,
        key="k" * 20,
    )
    store = ResultStore(tmp_path / "res", host="vm")
    sched = Scheduler(store=store, host=info, workroot=tmp_path / "runs")
    store.append_many(sched.not_run_notes([(cell, "why")], {}, "host:x"))
    (note,) = store.load().results
    assert note.machine == info.machine
    assert note.machine.id == machine_id([H200])


def test_a_time_spelled_two_ways_is_given_as_the_sort_of_all_records_gave_it() -> None:
    """One instant written with `Z` by one host and `+00:00` by another: the first date is
    the earliest's first spelling among the records, the last the latest's last (each
    distinct time is read once, not each record's)."""
    h100 = Machine(id=machine_id(["GPU-a"]), gpus=(MachineGpu(name="H100", uuid="GPU-a"),))
    times = [
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00+00:00",
        "2026-01-02T00:00:00+00:00",
        "2026-01-01T12:00:00+00:00",
        "2026-01-02T00:00:00Z",
        "2026-01-01T00:00:00+00:00",
    ]
    records = [
        _result("r1", h100).model_copy(update={"finished": t, "key": f"k{i}"})
        for i, t in enumerate(times)
    ]
    (found,) = machines(records)
    assert (found.first, found.last) == ("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z")
    (found,) = machines(records[::-1])
    assert (found.first, found.last) == ("2026-01-01T00:00:00+00:00", "2026-01-02T00:00:00+00:00")
