"""Builds of one release for another CUDA (`2.1.0+cu118`, `2.1.0+cu121`) are variants, not
successors: PEP 440 sorts their local labels, but no build follows another. Each variant
is a series of its own, so a regression of the cu121 builds never "ends" at a cu118 one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repromatrix.cli import main
from repromatrix.model import Status
from repromatrix.records import Result

P, R = Status.PASSED, Status.REGRESSED


def _report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], verdicts: dict[str, Status]
) -> tuple[str, str]:
    """(summary.md, README table) of a report of one verdict per torch build."""
    records = [
        Result(
            key=f"k{label}",
            cell_id=f"r[cpu,host,torch={label}]",
            repro="r",
            base="host",
            gpu="cpu",
            pins={"torch": label},
            status=status,
            reason=status.value,
            metrics={"err": 1.0 if status is R else 0.0},
            finished="2026-01-01T00:00:00+00:00",
        )
        for label, status in verdicts.items()
    ]
    store = tmp_path / "results"
    store.mkdir()
    (store / "x.jsonl").write_text("".join(json.dumps(r.record()) + "\n" for r in records))
    readme = tmp_path / "README.md"
    readme.write_text("<!-- reproduced:begin -->\nold\n<!-- reproduced:end -->\n")
    out = tmp_path / "rep"
    argv = ["--matrix", str(tmp_path / "none.yaml"), "report", "--results", str(store)]
    assert main([*argv, "--out", str(out), "--readme", str(readme)]) == 0, capsys.readouterr().err
    return (out / "summary.md").read_text(), readme.read_text()


def test_a_regression_of_one_cuda_build_does_not_end_at_another(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The report said "begins at 2.1.0+cu121 (last good 2.1.0+cu118); ends at 2.2.0+cu118
    — then begins at 2.2.0+cu121": a fix and a return that never were."""
    summary, readme = _report(
        tmp_path,
        capsys,
        {"2.1.0+cu118": P, "2.1.0+cu121": R, "2.2.0+cu118": P, "2.2.0+cu121": R},
    )
    assert "2.2.0+cu118 (last bad" not in summary
    assert "| 2.2.0+cu118" not in readme
    assert (
        "| r | cpu · torch build=+cu121 | begins at or before 2.1.0+cu121 (first tested); "
        "still present in the newest tested (2.2.0+cu121) |"
    ) in summary
    assert "| r | cpu · torch build=+cu118 | not reproduced (2 of 2 passed) |" in summary


def test_another_builds_release_is_no_gap_in_a_builds_boundary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary, _ = _report(
        tmp_path,
        capsys,
        {"2.1.0+cu121": P, "2.1.5+cu118": P, "2.2.0+cu121": R, "2.2.0+cu118": P},
    )
    assert "begins at 2.2.0+cu121 (last good 2.1.0+cu121)" in summary
