"""One result record of a small store, as the store, damage and cache tests make it; records
of one cell on machines that disagree, and the reports of them, as the report tests make them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repromatrix.cli import main
from repromatrix.model import Status
from repromatrix.records import Machine, MachineGpu, Result


def result(
    key: str,
    status: Status = Status.PASSED,
    finished: str = "2026-11-22T00:00:00+00:00",
    host: str = "h1",
    **metrics: float,
) -> Result:
    """A record of repro `r` on the host base and no GPU whose one pin, `lib`, is `key`."""
    return Result(
        key=key,
        cell_id=f"r[cpu,host,{key}]",
        repro="r",
        base="host",
        gpu="cpu",
        pins={"lib": key},
        status=status,
        reason=status.value,
        metrics=metrics,
        finished=finished,
        host=host,
    )


def on_machine(
    label: str, status: Status, machine: str, day: int = 1, commit: str = "", gpu: str = ""
) -> Result:
    """A record of `lib` at `label` on one H100 of `machine` (`gpu`: its UUID), on the given
    day of 2026-01."""
    gpu = gpu or f"GPU-{machine}"
    return Result(
        key=f"k{label}",
        cell_id=f"r[H100,host,lib={label}]",
        repro="r",
        base="host",
        gpu="H100",
        pins={"lib": label},
        commits={"lib": commit} if commit else {},
        status=status,
        reason=status.value,
        finished=f"2026-01-0{day}T00:00:00+00:00",
        host="vm",
        machine=Machine(id=machine, gpus=(MachineGpu(name="NVIDIA H100", uuid=gpu),)),
        provenance={"gpu": {"name": "NVIDIA H100", "uuid": gpu}},
    )


#: 1.0 passes everywhere; at 2.0 m-a passes (twice) and m-b regresses (twice).
MACHINES_SPLIT = [
    on_machine("1.0", Status.PASSED, "m-a"),
    on_machine("1.0", Status.PASSED, "m-b", 2),
    on_machine("2.0", Status.PASSED, "m-a"),
    on_machine("2.0", Status.REGRESSED, "m-b", 2),
    on_machine("2.0", Status.PASSED, "m-a", 3),
    on_machine("2.0", Status.REGRESSED, "m-b", 4),
]


def report_of(tmp_path: Path, records: list[Result], capsys: pytest.CaptureFixture[str]) -> Path:
    """`repromatrix report` of `records` (a store of its own under tmp_path) into
    tmp_path/rep, with tmp_path/README.md's table; the report's folder."""
    store = tmp_path / "results"
    store.mkdir(parents=True)
    (store / "x.jsonl").write_text("".join(json.dumps(r.record()) + "\n" for r in records))
    readme = tmp_path / "README.md"
    readme.write_text("<!-- reproduced:begin -->\nold\n<!-- reproduced:end -->\n")
    argv = ["--matrix", str(tmp_path / "none.yaml"), "report", "--results", str(store)]
    code = main([*argv, "--out", str(tmp_path / "rep"), "--readme", str(readme)])
    assert code == 0, capsys.readouterr().err
    return tmp_path / "rep"
