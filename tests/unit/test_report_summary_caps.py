"""summary.md is posted as a PR comment (65,536 characters at most, refused whole past
them) and a CI step summary: each of its tables shows what fits and counts the rest,
which index.html lists."""

from __future__ import annotations

from pathlib import Path

from repromatrix.model import Status
from repromatrix.records import Machine, MachineGpu, Result
from repromatrix.report import write_report


def _rec(i: int) -> Result:
    gpu = MachineGpu(name="NVIDIA H100 80GB HBM3", uuid=f"GPU-{i:08d}")
    return Result(
        key=f"k{i}", cell_id=f"repro_{i}[cpu,host,lib=1.0]", repro=f"repro_{i:04d}",
        base="host", gpu="cpu", pins={"lib": "1.0"},
        status=Status.REGRESSED if i % 2 else Status.PASSED,
        finished="2026-01-01T00:00:00+00:00",
        machine=Machine(id=f"m{i:06d}", gpus=(gpu,), driver="580.159.04"),
    )  # fmt: skip


def test_summary_tables_of_a_large_store_stay_within_a_pr_comment(tmp_path: Path) -> None:
    """1,500 repros, each run on a machine of its own, made a summary.md of over 300 KB:
    the main table, the cells per status and the machines table listed every row."""
    paths = write_report(results=[_rec(i) for i in range(1500)], out_dir=tmp_path)
    summary = paths["markdown"].read_text()
    assert len(summary) < 65_536, len(summary)
    main, counts, machines = summary.split("\n### ")[:3]
    assert "| repro_0000 | cpu |" in main
    assert "| repro_1499 | cpu |" not in main
    assert main.rstrip().endswith("more; index.html lists them all.")
    assert counts.startswith("Cells per status")
    assert "| **all** | 750 | 750 | 1500 |" in counts  # the totals stay, after the rows shown
    assert "| repro_1499 |" not in counts
    assert machines.startswith("Machines")
    assert "| m000000 |" in machines
    assert "| m001499 |" not in machines
    shown = machines.count("\n| m")
    assert machines.rstrip().endswith(f"… and {1500 - shown:,} more; index.html lists them all.")
    html = paths["html"].read_text()
    assert "repro_1499" in html
    assert "m001499" in html
