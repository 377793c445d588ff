"""Persistent workers with real processes: reuse, and replacement when a cell crashes,
times out or leaves the worker too big; `--isolate` and a repro's `isolate: true`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from clihelpers import CliRunner, fixture_copy

from repromatrix.executors.workers import WORKER_FILES, WORKER_MAIN
from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.store import ResultStore

pytestmark = pytest.mark.integration

#: Relative to the matrix, which gets a copy of the fixture repros beside it.
SCRIPT = "fixture-repros/worker_repro.py"


def matrix(tmp_path: Path, cells: dict[str, dict[str, Any]], *, extra: str = "") -> Path:
    """One repro per cell, all with the same script and no pins: one environment."""
    lines = ["schema: 1", "defaults: {timeout: 60}", "repros:"]
    for name, params in cells.items():
        timeout = params.pop("timeout", None)
        body = f"script: {SCRIPT}, gpus: [cpu], params: {json.dumps(params)}"
        if timeout is not None:
            body += f", timeout: {timeout}"
        lines.append(f"  {name}: {{{body}{extra}}}")
    fixture_copy(tmp_path)
    path = tmp_path / "m.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run(run_cli: CliRunner, path: Path, *extra: str) -> dict[str, Result]:
    results = path.parent / "results"
    out = run_cli(
        "--matrix", str(path), "run", "--jobs", "1", "--no-progress", "--results", str(results),
        *extra,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return {r.repro: r for r in ResultStore(results).load().results}


def pid(r: Result) -> int:
    return int(r.provenance["pid"])


def test_cells_of_one_environment_share_one_worker(tmp_path: Path, run_cli: CliRunner) -> None:
    got = run(
        run_cli,
        matrix(tmp_path, {"a": {"tag": "a"}, "b": {"tag": "b"}, "c": {"tag": "c"}}),
    )
    assert {r.status for r in got.values()} == {Status.PASSED}
    assert pid(got["a"]) == pid(got["b"]) == pid(got["c"])
    assert [got[n].provenance["harness"]["worker"]["cell"] for n in "abc"] == [1, 2, 3]
    for name, r in got.items():
        # Each cell still has its own identity, folder and output.
        assert r.provenance["cell"] == r.cell_id
        assert r.provenance["cwd"] == r.provenance["harness"]["workdir"]
        assert r.stdout_tail == f"cell {name} in pid {pid(r)}\n"
    # Seeds are reset per cell: a cell sees the same generator state as in a process of
    # its own, whatever ran before it in the worker.
    assert len({r.metrics["random"] for r in got.values()}) == 1


def test_a_crash_costs_its_cell_and_the_next_gets_a_fresh_worker(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    got = run(run_cli, matrix(tmp_path, {"a": {}, "b": {"mode": "crash"}, "c": {}}))
    assert got["a"].status is Status.PASSED
    assert got["b"].status is Status.ERROR
    assert got["b"].reason.startswith("crashed: killed by signal 11")
    assert got["b"].provenance["harness"]["worker"]["retired"] == "crashed"
    assert got["c"].status is Status.PASSED
    assert pid(got["c"]) != pid(got["a"])


def test_a_timeout_kills_the_worker_and_the_next_cell_gets_a_fresh_one(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    # Equal timeouts: equal expected durations, so the cells run in the order listed.
    cells: dict[str, dict[str, Any]] = {
        "a": {"timeout": 2},
        "b": {"mode": "hang", "timeout": 2},
        "c": {"timeout": 2},
    }
    got = run(run_cli, matrix(tmp_path, cells))
    hung = got["b"]
    assert hung.status is Status.TIMEOUT
    assert hung.reason.startswith("timed out: killed at the 2 s limit; last output: hanging")
    assert hung.duration_s < 3.5
    assert got["c"].status is Status.PASSED
    assert pid(got["c"]) != pid(got["a"])


def test_a_worker_grown_past_the_memory_limit_is_replaced(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    cells = {"a": {"mode": "grow", "mb": 160}, "b": {}}
    got = run(run_cli, matrix(tmp_path, cells), "--worker-memory", "120")
    assert got["a"].status is Status.PASSED  # the cell itself was fine
    retired = got["a"].provenance["harness"]["worker"]["retired"]
    assert retired.startswith("holds ")
    assert retired.endswith("MiB after the cell (limit 120 MiB)")
    assert pid(got["b"]) != pid(got["a"])
    # Without a limit the same worker goes on.
    (tmp_path / "nolimit").mkdir()
    cells = {"a": {"mode": "grow", "mb": 160}, "b": {}}
    again = run(run_cli, matrix(tmp_path / "nolimit", cells), "--worker-memory", "0")
    assert pid(again["b"]) == pid(again["a"])


def test_isolate_gives_each_cell_a_process(tmp_path: Path, run_cli: CliRunner) -> None:
    got = run(run_cli, matrix(tmp_path, {"a": {}, "b": {}}), "--isolate")
    assert pid(got["a"]) != pid(got["b"])
    assert all(r.provenance["harness"]["isolated"] for r in got.values())
    assert all("worker" not in r.provenance["harness"] for r in got.values())


def test_a_repro_can_ask_for_a_process_of_its_own(tmp_path: Path, run_cli: CliRunner) -> None:
    got = run(run_cli, matrix(tmp_path, {"a": {}, "b": {}}, extra=", isolate: true"))
    assert pid(got["a"]) != pid(got["b"])
    assert all(r.provenance["harness"]["isolated"] for r in got.values())


def test_a_worker_killed_between_cells_costs_the_next_cell_nothing(tmp_path: Path) -> None:
    """A worker killed while idle (the OOM killer choosing it, `kill -9`) was handed the
    next cell anyway, which was recorded "crashed: killed by signal 9" although it never
    ran. The executor is driven directly so that the worker dies between two cells."""
    import os
    import signal

    from repromatrix.config import load_matrix
    from repromatrix.executors.base import Slot
    from repromatrix.expand import expand
    from repromatrix.options import ExecutorKind, SessionConfig
    from repromatrix.session import Session

    path = matrix(tmp_path, {"a": {"tag": "a"}, "b": {"tag": "b"}})
    cells = {c.repro: c for c in expand(load_matrix(path))}
    config = SessionConfig(
        results=tmp_path / "results", cache=tmp_path / "cache", executor=ExecutorKind.LOCAL
    )
    executor = Session(config, env=os.environ).local()
    run_dir = (tmp_path / "cache" / "runs" / "idle-worker").resolve()
    slot = Slot(name="cpu0")
    try:
        first = executor.run(cells["a"], slot, run_dir / "a")
        assert first.exit_code == 0, first
        worker = first.harness["worker"]
        assert isinstance(worker, dict)
        os.kill(int(worker["pid"]), signal.SIGKILL)
        second = executor.run(cells["b"], slot, run_dir / "b")
    finally:
        executor.close()
    assert (second.exit_code, second.harness_error, second.timed_out) == (0, None, False)
    assert second.harness["worker"] == {**second.harness["worker"], "cell": 1}


def test_a_deep_temporary_folder_does_not_keep_workers_from_starting(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """With TMPDIR deeper than a Unix socket path can be (~100 bytes: CI runners, nested
    build folders), every worker cell was an error record "worker: AF_UNIX path too
    long" at exit 0, reused by later runs."""
    deep = tmp_path / ("d" * 100)
    deep.mkdir()
    path = matrix(tmp_path, {"a": {"tag": "a"}})
    results = tmp_path / "results"
    out = run_cli(
        "--matrix", str(path), "run", "--no-progress", "--results", str(results),
        env={"TMPDIR": str(deep)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (r,) = ResultStore(results).load().results
    assert r.status is Status.PASSED, r.reason


def test_a_script_beside_its_matrix_shares_one_worker_with_the_cache_there(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A repro script beside matrix.yaml, the cache the default `.repromatrix/` there: the
    worker program's copy in `<cache>/workers/` lay under the repro's folder, so the
    worker's own watch thread counted as a daemon thread of the repro's code and every
    cell retired its worker ('threads it left running'): a process per cell, never one
    worker per environment."""
    (tmp_path / "worker_repro.py").write_text(
        (fixture_copy(tmp_path) / "worker_repro.py").read_text()
    )
    lines = ["schema: 1", "defaults: {timeout: 60}", "repros:"]
    for name in "abc":
        lines.append(f"  {name}: {{script: worker_repro.py, gpus: [cpu], params: {{tag: {name}}}}}")
    path = tmp_path / "matrix.yaml"
    path.write_text("\n".join(lines) + "\n")
    got = run(run_cli, path)
    assert {r.status for r in got.values()} == {Status.PASSED}
    workers = [got[n].provenance["harness"]["worker"] for n in "abc"]
    assert [w.get("retired") for w in workers] == [None, None, None], workers
    assert pid(got["a"]) == pid(got["b"]) == pid(got["c"])


def test_the_worker_program_s_bytecode_is_kept_in_its_copy_under_dontwritebytecode(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """Under PYTHONDONTWRITEBYTECODE (CI sets it; so do many images) every worker compiled
    its fourteen files beside worker_main.py again: ~55 ms of CPU a start, paid by each
    evaluation of a bisection. Their bytecode is written into the program's copy in the
    cache, which is repromatrix's own; the repro's folder still gets none."""
    path = matrix(tmp_path, {"a": {"tag": "a"}})
    out = run_cli(
        "--matrix", str(path), "run", "--no-progress", "--results", str(tmp_path / "results"),
        "--cache", str(tmp_path / "cache"), env={"PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (r,) = ResultStore(tmp_path / "results").load().results
    assert r.status is Status.PASSED, r.reason
    (program,) = (tmp_path / "cache" / "workers").glob("program-*")
    tag = sys.implementation.cache_tag
    beside = {f.stem for f in WORKER_FILES if f != WORKER_MAIN}
    kept = {p.name for p in (program / "__pycache__").glob("*.pyc")}
    assert kept == {f"{name}.{tag}.pyc" for name in beside}, kept
    assert not list((tmp_path / "fixture-repros").rglob("__pycache__"))
