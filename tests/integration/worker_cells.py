"""Cells of repro scripts run by real persistent workers (`run --jobs 1`), and what each
record says of the worker that ran it: the set-up the worker tests share."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from clihelpers import CliRunner

from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.store import ResultStore


def run_cells(
    tmp_path: Path,
    run_cli: CliRunner,
    scripts: dict[str, str],
    cells: list[tuple[str, str]],
    *,
    timeout: int = 30,
    options: Sequence[str] = (),
) -> list[Result]:
    """Write `scripts` (file name → text) into `tmp_path/repros` and a matrix of `cells` (a
    name, and the cell's fields before `gpus: [cpu]`), run it on one slot (exit 0 asserted);
    one record per cell, in the order they ran (the matrix's at --jobs 1 with no earlier
    durations: each cell is named `cNN_<name>`); `options` go to `run` too."""
    (tmp_path / "repros").mkdir(exist_ok=True)
    for name, text in scripts.items():
        (tmp_path / "repros" / name).write_text(text)
    lines = ["schema: 1", f"defaults: {{timeout: {timeout}}}", "repros:"]
    for i, (name, body) in enumerate(cells):
        lines.append(f"  c{i:02d}_{name}: {{{body}, gpus: [cpu]}}")
    (tmp_path / "m.yaml").write_text("\n".join(lines) + "\n")
    out = run_cli(
        "--matrix", str(tmp_path / "m.yaml"), "run", "--jobs", "1", "--no-progress",
        "--results", str(tmp_path / "results"), *options,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return sorted(ResultStore(tmp_path / "results").load().results, key=lambda r: r.repro)


def mode_cells(script: str, *modes: str) -> list[tuple[str, str]]:
    """One cell per mode of `script` (a file of `repros/`), its `params: {mode: ...}`."""
    return [(m, f"script: repros/{script}, params: {{mode: {m}}}") for m in modes]


def worker(record: Result) -> object:
    """The pid of the worker that ran the record's cell."""
    return record.provenance["harness"]["worker"]["pid"]


def retired(record: Result) -> str:
    """Why the worker was retired after the record's cell ("" when it was not)."""
    return str(record.provenance["harness"]["worker"].get("retired") or "")


def passed_in_one_worker(*records: Result) -> None:
    """Each record passed, and one worker ran them all (none retired it)."""
    for record in records:
        assert record.status is Status.PASSED, (record.repro, record.reason, record.stderr_tail)
    assert len({worker(r) for r in records}) == 1, [retired(r) for r in records]
