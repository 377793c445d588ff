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


def test_a_run_that_cannot_read_a_recorded_result_ends_non_zero(
    tmp_path: Path, run_cli: CliRunner, repo_root: Path
) -> None:
    """A record damaged by hand was warned of and passed over, and the run exited 0: its
    cell ran again, or (out of the selection) was never seen again. Now the run does its
    work and ends with exit 3 naming the line; a record whose only fault is its duration
    (NaN, 1e400) is kept, and costs the exit code nothing."""
    matrix = repo_root / "tests" / "fixtures" / "matrix" / "protocol.yaml"
    argv = ["--matrix", str(matrix), "run", "--results", "results", "--no-progress",
            "--repro", "pass_repro", "--repro", "regress_repro"]  # fmt: skip
    assert run_cli(*argv).returncode == 0
    (path,) = (tmp_path / "results").glob("*.jsonl")
    first, second = path.read_text().splitlines()
    path.write_text(first.replace('"duration_s": ', '"duration_s": 1e400, "x": ') + "\n" + second)
    kept = run_cli(*argv)
    assert kept.returncode == 0, kept.stderr
    assert "2 reused" in kept.stderr  # neither ran again
    assert "duration_s is inf, not a number of seconds; the record is kept" in kept.stderr
    path.write_text(first + "\n" + second.replace('"status": "', '"status": "x') + "\n")
    damaged = run_cli(*argv)
    assert damaged.returncode == 3, damaged.stderr
    assert damaged.stderr.splitlines()[-1] == (
        f"repromatrix: error: 1 recorded result could not be read (results/{path.name}:2); "
        "the run could not reuse it: do what the warning above says, then run again"
    )

    # A run that fails on a regression ends with exit 1; the record left out is said too.
    failing = run_cli(*argv, "--fail-on", "regressed")
    assert failing.returncode == 1, failing.stderr
    assert (
        f"repromatrix: error: 1 recorded result could not be read (results/{path.name}:2)"
        in failing.stderr
    )


def test_what_a_run_set_aside_is_said_even_when_the_run_then_fails(
    tmp_path: Path, run_cli: CliRunner, repo_root: Path
) -> None:
    """A run that set a cut record aside and then stopped on an error (here: no Docker
    engine answering) ended with the error alone: the bytes it had moved to .torn were
    never said, and no later command would say them either."""
    matrix = repo_root / "tests" / "fixtures" / "matrix" / "protocol.yaml"
    argv = ["--matrix", str(matrix), "run", "--results", "results", "--no-progress",
            "--repro", "pass_repro"]  # fmt: skip
    assert run_cli(*argv).returncode == 0
    (path,) = (tmp_path / "results").glob("*.jsonl")
    path.write_bytes(path.read_bytes() * 2 + path.read_bytes()[:200])
    failed = run_cli(*argv, "--rerun", "--executor", "docker",
                     env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})  # fmt: skip
    assert failed.returncode == 5, failed.stderr
    assert f"results/{path.name}:3: a record cut short by a killed run (200 bytes) was moved" in (
        failed.stderr
    )
    assert failed.stderr.splitlines()[-1].startswith("repromatrix: error: ")


def test_a_bisect_that_cannot_read_a_stored_record_ends_non_zero(tmp_path: Path) -> None:
    """A stored evaluation damaged by hand was warned of and the bisection, which could
    not reuse it, exited 0: a CI job passed on a store short of a record. It now gives its
    answer, then ends with exit 3 naming the line, as `run` and `report` do."""
    from history_repo import bisect_cli, build_dag, write_matrix

    history = build_dag(
        tmp_path / "upstream", [(), *((i,) for i in range(5))], bad=lambda i: i >= 3
    )
    work = tmp_path / "work"
    work.mkdir()
    write_matrix(work, history)
    first = bisect_cli(work, "--good=good", "--bad=bad")
    assert first.returncode == 0, first.stdout + first.stderr
    (path,) = (work / "results").glob("*.jsonl")
    lines = path.read_text().splitlines()
    lines[0] = lines[0].replace('"status": "', '"status": "x', 1)
    path.write_text("\n".join(lines) + "\n")
    again = bisect_cli(work, "--good=good", "--bad=bad")
    assert again.returncode == 3, again.stdout + again.stderr
    assert f"first bad commit: {history.sha('c3')}" in again.stdout, again.stdout
    assert again.stderr.splitlines()[-1] == (
        f"repromatrix: error: 1 recorded result could not be read ({path}:1); the bisect "
        "could not reuse it: do what the warning above says, then bisect again"
    )
