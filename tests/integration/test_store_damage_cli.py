"""A damaged results store met through the commands a user runs, as real processes."""

from __future__ import annotations

from pathlib import Path

import pytest
from clihelpers import CliRunner

from repromatrix.store import ResultStore

pytestmark = pytest.mark.integration


def test_a_record_cut_by_a_killed_run_is_said_once_then_never_again(
    tmp_path: Path, run_cli: CliRunner, repo_root: Path
) -> None:
    """After `kill -9` in the middle of a write, every later `run` and `report` warned of
    "results/h.jsonl:3: unreadable record (Invalid JSON: EOF while parsing…)", for ever."""
    matrix = repo_root / "tests" / "fixtures" / "matrix" / "protocol.yaml"
    argv = ["--matrix", str(matrix), "run", "--results", "results", "--no-progress",
            "--repro", "pass_repro", "--repro", "regress_repro"]  # fmt: skip
    assert run_cli(*argv).returncode == 0
    (path,) = (tmp_path / "results").glob("*.jsonl")
    whole = path.read_bytes()
    path.write_bytes(whole + whole[:300])  # what a run killed while writing leaves
    again = run_cli(*argv, "--rerun")
    assert again.returncode == 0, again.stderr
    torn = path.with_name(path.name + ".torn")
    assert (
        f"warning: results/{path.name}:3: a record cut short by a killed run (300 bytes) was "
        f"moved to {torn.name}; every whole record is kept" in again.stderr
    )
    assert torn.read_bytes() == whole[:300] + b"\n"
    for later in (run_cli(*argv), run_cli("report", "--results", "results", "--out", "rep")):
        assert later.returncode == 0, later.stderr
        assert "warning" not in later.stderr
    assert len(ResultStore(tmp_path / "results").load().results) == 4
