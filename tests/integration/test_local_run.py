"""The local executor end to end, through the CLI as a real process: protocol outcomes,
timeouts that kill whole process trees, Ctrl-C then resume, real pip and git environments."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from clihelpers import FIXTURE_REPROS, CliRunner, cli_argv, pids_alive, write_matrix

from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.store import ResultStore

pytestmark = pytest.mark.integration


def statuses(results: Path) -> dict[str, tuple[Status, str]]:
    latest = ResultStore(results).latest_by_key()
    return {r.cell_id: (r.status, r.reason) for r in latest.values()}


def wait_for(predicate: object, timeout: float = 30.0) -> None:
    """Poll a condition with a deadline (never a fixed sleep standing in for a signal)."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_every_protocol_outcome_is_recorded_and_the_run_goes_on(
    tmp_path: Path, run_cli: CliRunner, repo_root: Path
) -> None:
    matrix = repo_root / "tests" / "fixtures" / "matrix" / "protocol.yaml"
    out = run_cli(
        "--matrix", str(matrix), "run", "--results", "results", "--no-progress", "--jobs", "2"
    )
    assert out.returncode == 0, out.stderr
    got = statuses(tmp_path / "results")
    assert {k: v[0] for k, v in got.items()} == {
        "pass_repro[cpu,host]": Status.PASSED,
        "regress_repro[cpu,host]": Status.REGRESSED,
        "untestable_repro[cpu,host]": Status.UNTESTABLE,
        "segfault_repro[cpu,host]": Status.ERROR,
        "exit3_repro[cpu,host]": Status.ERROR,
        "garbage_repro[cpu,host]": Status.ERROR,
        "mismatch_repro[cpu,host]": Status.ERROR,
    }
    assert got["segfault_repro[cpu,host]"][1].startswith("crashed: killed by signal 11")
    assert "segfault coming" in got["segfault_repro[cpu,host]"][1]
    assert got["exit3_repro[cpu,host]"][1].startswith("exited 3 without a result")
    assert "does not parse" in got["garbage_repro[cpu,host]"][1]
    assert "disagrees with result JSON status 'regressed'" in got["mismatch_repro[cpu,host]"][1]
    (untestable,) = [
        r for r in ResultStore(tmp_path / "results").load().results if r.repro == "untestable_repro"
    ]
    assert untestable.metrics == {"export_max_abs": 2e-7}  # numbers kept even when untestable
    assert untestable.exit_code == 125
    assert "about to crash" in next(
        r.stdout_tail
        for r in ResultStore(tmp_path / "results").load().results
        if r.repro == "segfault_repro"
    )
    # A second run reuses every final result and runs nothing.
    again = run_cli("--matrix", str(matrix), "run", "--results", "results", "--no-progress")
    assert again.returncode == 0
    # Reused errors say so (a plain "reused" hid them), with how to run them again.
    assert "7 reused (4 error/timeout: --retry-errors runs them again)" in again.stderr
    assert len(ResultStore(tmp_path / "results").load().results) == 7


def test_fail_on_turns_regressions_into_exit_1(
    tmp_path: Path, run_cli: CliRunner, repo_root: Path
) -> None:
    matrix = repo_root / "tests" / "fixtures" / "matrix" / "protocol.yaml"
    out = run_cli(
        "--matrix",
        str(matrix),
        "run",
        "--results",
        "r",
        "--no-progress",
        "--repro",
        "regress_repro",
        "--repro",
        "pass_repro",
        "--fail-on",
        "regressed",
    )
    assert out.returncode == 1
    assert "1 cell(s) ended regressed: regress_repro[cpu,host]" in out.stderr
    # Resumed (a CI job run again): the stored regression still fails it.
    again = run_cli(
        "--matrix", str(matrix), "run", "--results", "r", "--no-progress",
        "--repro", "regress_repro", "--repro", "pass_repro", "--fail-on", "regressed",
    )  # fmt: skip
    assert again.returncode == 1, again.stderr
    assert "2 reused" in again.stderr
    assert (
        "1 cell(s) ended regressed (1 of them reused from earlier runs): regress_repro[cpu,host]"
        in again.stderr
    )


def _one_passed_cell(
    tmp_path: Path, run_cli: CliRunner, repo_root: Path
) -> tuple[list[str], ResultStore, Result]:
    """`run --fail-on regressed` of one passing cell: its argv, store and record."""
    matrix = repo_root / "tests" / "fixtures" / "matrix" / "protocol.yaml"
    argv = ["--matrix", str(matrix), "run", "--results", "r", "--no-progress",
            "--repro", "pass_repro", "--fail-on", "regressed"]  # fmt: skip
    assert run_cli(*argv).returncode == 0
    store = ResultStore(tmp_path / "r")
    (passed,) = store.load().results
    return argv, store, passed


def test_fail_on_regressed_fails_a_flaky_cell_as_junit_does(
    tmp_path: Path, run_cli: CliRunner, repo_root: Path
) -> None:
    """A cell whose stored records disagree (passed, regressed) passed `--fail-on
    regressed` when its newest record passed, while junit.xml failed it."""
    argv, store, passed = _one_passed_cell(tmp_path, run_cli, repo_root)
    false_alarm = passed.model_copy(
        update={"status": Status.REGRESSED, "finished": "2020-01-01T00:00:00+00:00"}
    )
    store.append(false_alarm)
    store.append(passed.model_copy(update={"run_id": "later"}))  # the newest passed
    again = run_cli(*argv)
    assert again.returncode == 1, again.stderr
    assert (
        "1 cell(s) ended flaky (1 of them reused from earlier runs; 1 flaky: passed and "
        "regressed in their records)" in again.stderr
    )


def test_fail_on_weighs_only_records_that_count_here(
    tmp_path: Path, run_cli: CliRunner, repo_root: Path
) -> None:
    """Every stored record of a key was weighed: another machine's regression, one made
    with other --cell-env variables, or records of a cell this host cannot run made
    `--fail-on regressed` fail as "flaky", even with --rerun. And a newer timeout hid
    a stored regression (exit 0) that junit.xml and the report show."""
    argv, store, passed = _one_passed_cell(tmp_path, run_cli, repo_root)
    other_machine = passed.model_copy(
        update={
            "status": Status.REGRESSED,
            "machine": passed.machine.model_copy(update={"id": "m-elsewhere"}),
            "run_id": "theirs",
        }
    )
    other_base = passed.model_copy(
        update={"status": Status.REGRESSED, "base_fingerprint": "host:other", "run_id": "env"}
    )
    store.append(other_machine)
    store.append(other_base)
    for extra in ([], ["--rerun"]):
        again = run_cli(*argv, *extra)
        assert again.returncode == 0, again.stderr
    # A regression made here, then a timeout of the same cell: still a regression.
    store.append(
        passed.model_copy(
            update={
                "status": Status.REGRESSED,
                "run_id": "here",
                "finished": "2031-01-01T00:00:00+00:00",
            }
        )
    )
    store.append(
        passed.model_copy(
            update={
                "status": Status.TIMEOUT,
                "run_id": "slow",
                "finished": "2032-01-01T00:00:00+00:00",
            }
        )
    )
    hidden = run_cli(*argv)
    assert hidden.returncode == 1, hidden.stderr
    assert "ended flaky" in hidden.stderr  # passed before, regressed later: both here


def test_hanging_repro_is_killed_with_its_child_at_the_timeout(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    pidfile = tmp_path / "pids.json"
    matrix = write_matrix(
        tmp_path / "m.yaml",
        {
            "hang": f"script: {{fx}}/hang_repro.py, gpus: [cpu], timeout: 3, "
            f"params: {{pidfile: '{pidfile}'}}",
            "after": "script: {fx}/pass_repro.py, gpus: [cpu]",
        },
    )
    started = time.monotonic()
    out = run_cli(
        "--matrix", str(matrix), "run", "--results", "res", "--no-progress", "--jobs", "1"
    )
    elapsed = time.monotonic() - started
    assert out.returncode == 0, out.stderr
    pids = json.loads(pidfile.read_text())
    assert pids_alive([pids["parent"], pids["child"]]) == []
    got = statuses(tmp_path / "res")
    assert got["hang[cpu,host]"][0] is Status.TIMEOUT
    assert got["hang[cpu,host]"][1].startswith("timed out: killed at the 3 s limit")
    assert got["after[cpu,host]"][0] is Status.PASSED  # the run went on
    assert elapsed < 60


def test_timeout_flag_overrides_the_matrix(tmp_path: Path, run_cli: CliRunner) -> None:
    matrix = write_matrix(
        tmp_path / "m.yaml",
        {
            "hang": "script: {fx}/hang_repro.py, gpus: [cpu], timeout: 600",
        },
    )
    out = run_cli(
        "--matrix", str(matrix), "run", "--results", "res", "--no-progress", "--timeout", "1"
    )
    assert out.returncode == 0
    assert statuses(tmp_path / "res")["hang[cpu,host]"][0] is Status.TIMEOUT


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_keeps_finished_cells_and_resume_reruns_nothing_finished(
    tmp_path: Path, sig: signal.Signals
) -> None:
    marks = tmp_path / "started"
    matrix = write_matrix(
        tmp_path / "m.yaml",
        {
            "a": f"script: {{fx}}/slow_repro.py, gpus: [cpu], params: {{started_dir: '{marks}/a'}}",
            "b": f"script: {{fx}}/slow_repro.py, gpus: [cpu], params: {{started_dir: '{marks}/b'}}",
            "c": f"script: {{fx}}/slow_repro.py, gpus: [cpu], "
            f"params: {{started_dir: '{marks}/c', seconds_env: SLOW_C}}",
        },
    )
    argv = cli_argv(
        "--matrix", str(matrix), "run", "--results", "res", "--no-progress", "--jobs", "1"
    )
    env = dict(os.environ, SLOW_C="600")
    runner = subprocess.Popen(argv, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (marks / "c").is_dir() and any((marks / "c").iterdir()))
    (c_marker,) = (marks / "c").iterdir()
    c_pid = int(c_marker.name.split(".")[0])
    runner.send_signal(sig)
    _, err = runner.communicate(timeout=60)
    assert runner.returncode == 130, err
    # The summary counts 2 passed: it says how many of the planned runs that is.
    assert "interrupted; finished cells are kept, rerun to continue (2 of 3 runs finished)" in err
    assert "Traceback" not in err
    assert pids_alive([c_pid]) == []  # the running cell was killed, not orphaned
    got = statuses(tmp_path / "res")
    assert set(got) == {"a[cpu,host]", "b[cpu,host]"}  # nothing recorded for the killed cell
    # Resume: only c runs again.
    done = subprocess.run(
        argv,
        cwd=tmp_path,
        env=dict(os.environ, SLOW_C="0"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "2 reused" in done.stderr
    assert len(list((marks / "a").iterdir())) == 1
    assert len(list((marks / "b").iterdir())) == 1
    assert len(list((marks / "c").iterdir())) == 2
    assert statuses(tmp_path / "res")["c[cpu,host]"][0] is Status.PASSED


STUBBORN = """\
import os, signal, sys, time

signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.SIG_IGN)
os.makedirs(MARKS, exist_ok=True)
open(os.path.join(MARKS, str(os.getpid())), "w").close()
while True:
    time.sleep(0.05)
"""


@pytest.mark.parametrize("isolate", [True, False], ids=["isolate", "worker"])
def test_ctrl_c_ends_cells_that_ignore_sigterm_within_one_grace_period(
    tmp_path: Path, isolate: bool
) -> None:
    """Ctrl-C gives every running cell (and its worker) one grace period together, not one
    each in turn: two cells that ignore SIGTERM and SIGINT end within README's bound."""
    from repromatrix.proc import KILL_GRACE_S

    marks = tmp_path / "started"
    script = tmp_path / "stubborn.py"
    script.write_text(STUBBORN.replace("MARKS", repr(str(marks))))
    matrix = write_matrix(
        tmp_path / "m.yaml",
        {
            "a": f"script: {script}, gpus: [cpu], params: {{n: 1}}",
            "b": f"script: {script}, gpus: [cpu], params: {{n: 2}}",
        },
    )
    argv = cli_argv(
        "--matrix",
        str(matrix),
        "run",
        "--results",
        "res",
        "--no-progress",
        "--jobs",
        "2",
        *(["--isolate"] if isolate else []),
    )
    runner = subprocess.Popen(argv, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: marks.is_dir() and len(list(marks.iterdir())) == 2)
    pids = [int(p.name) for p in marks.iterdir()]
    sent = time.monotonic()
    runner.send_signal(signal.SIGINT)
    _, err = runner.communicate(timeout=60)
    took = time.monotonic() - sent
    assert runner.returncode == 130, err
    assert "Traceback" not in err
    assert pids_alive(pids) == []
    assert took < KILL_GRACE_S + 3, f"Ctrl-C took {took:.1f} s"


def test_rerun_and_retry_errors(tmp_path: Path, run_cli: CliRunner, repo_root: Path) -> None:
    matrix = repo_root / "tests" / "fixtures" / "matrix" / "protocol.yaml"
    sel = ["--repro", "pass_repro", "--repro", "exit3_repro"]
    run_cli("--matrix", str(matrix), "run", "--results", "r", "--no-progress", *sel)
    retry = run_cli(
        "--matrix", str(matrix), "run", "--results", "r", "--no-progress", "--retry-errors", *sel
    )
    assert "1 error, 1 reused" in retry.stderr
    rerun = run_cli(
        "--matrix", str(matrix), "run", "--results", "r", "--no-progress", "--rerun", *sel
    )
    assert "1 passed, 1 error, 0 reused" in rerun.stderr
    assert len(ResultStore(tmp_path / "r").load().results) == 5


def test_pypi_pins_from_a_local_folder_offline_with_cached_envs(
    tmp_path: Path, run_cli: CliRunner, wheelhouse: Path
) -> None:
    matrix = write_matrix(
        tmp_path / "m.yaml",
        {
            "probe": "script: {fx}/env_probe_repro.py, gpus: [cpu], "
            "params: {module: tinylib, good: 1.0}, libraries: {tinylib: all}",
            "probe2": "script: {fx}/env_probe_repro.py, gpus: [cpu], "
            "params: {module: tinylib, good: 1.0, other: 1}, "
            "libraries: {tinylib: ['1.0']}",
        },
        extra=textwrap.dedent("""\
            libraries:
              tinylib: {pypi: tinylib, import: tinylib, versions: ["1.0", "2.0", "9.9"]}
            """),
    )
    args = [
        "--matrix",
        str(matrix),
        "run",
        "--results",
        "res",
        "--no-progress",
        "--jobs",
        "1",
        "--find-links",
        str(wheelhouse),
        "--no-index",
        "--cache",
        "cache",
    ]
    out = run_cli(*args)
    assert out.returncode == 0, out.stderr
    results = {r.cell_id: r for r in ResultStore(tmp_path / "res").latest_by_key().values()}
    assert results["probe[cpu,host,tinylib=1.0]"].status is Status.PASSED
    assert results["probe[cpu,host,tinylib=2.0]"].status is Status.REGRESSED
    missing = results["probe[cpu,host,tinylib=9.9]"]
    assert missing.status is Status.ERROR
    assert missing.reason.startswith("environment: pip could not install tinylib==9.9")
    # Same pins → same environment: the second repro on tinylib 1.0 found the cache warm.
    assert results["probe[cpu,host,tinylib=1.0]"].metrics["warm"] == 0.0
    assert results["probe2[cpu,host,tinylib=1.0]"].metrics["warm"] == 1.0
    envs = sorted(p.name for p in (tmp_path / "cache" / "envs").iterdir() if p.is_dir())
    assert len(envs) == 2  # 1.0 and 2.0; the failed 9.9 build left nothing behind
    assert results["probe[cpu,host,tinylib=2.0]"].provenance["harness"]["env"] in envs
    # Rerun: environments are reused (their manifests are not rewritten).
    stamps = {e: (tmp_path / "cache" / "envs" / e / "env.json").stat().st_mtime_ns for e in envs}
    again = run_cli(*args, "--rerun")
    assert again.returncode == 0
    assert {
        e: (tmp_path / "cache" / "envs" / e / "env.json").stat().st_mtime_ns for e in envs
    } == stamps
    # A damaged environment (installed files gone, a manifest cut short) is built again,
    # not reused: its cells imported nothing, or whatever else PYTHONPATH offered.
    for e in envs:
        shutil.rmtree(tmp_path / "cache" / "envs" / e / "site")
    (tmp_path / "cache" / "envs" / envs[0] / "env.json").write_text('{"pins": [')
    repaired = run_cli(*args, "--rerun")
    assert repaired.returncode == 0, repaired.stderr
    assert repaired.stderr.count("is damaged") == 2, repaired.stderr
    latest = {r.cell_id: r for r in ResultStore(tmp_path / "res").latest_by_key().values()}
    assert latest["probe[cpu,host,tinylib=1.0]"].status is Status.PASSED
    assert latest["probe[cpu,host,tinylib=2.0]"].status is Status.REGRESSED


def test_pins_that_cannot_be_installed_are_tried_once_per_run(
    tmp_path: Path, run_cli: CliRunner, wheelhouse: Path
) -> None:
    """Two cells of pins pip cannot install: pip ran again for each (an hour per cell
    for an sdist whose compile fails late), where an environment is built once for all
    the cells of its pins; the second cell's log says where the build's log is."""
    probe = "script: {fx}/env_probe_repro.py, gpus: [cpu], libraries: {tinylib: ['9.9']}, "
    matrix = write_matrix(
        tmp_path / "m.yaml",
        {
            "one": probe + "params: {module: tinylib, good: 1.0}",
            "two": probe + "params: {module: tinylib, good: 2.0}",
        },
        extra=textwrap.dedent("""\
            libraries:
              tinylib: {pypi: tinylib, import: tinylib, versions: ["1.0", "9.9"]}
            """),
    )
    out = run_cli(
        "--matrix", str(matrix), "run", "--results", "res", "--no-progress", "--jobs", "1",
        "--find-links", str(wheelhouse), "--no-index", "--cache", "cache",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    got = {r.cell_id: r for r in ResultStore(tmp_path / "res").latest_by_key().values()}
    reasons = {got[f"{n}[cpu,host,tinylib=9.9]"].reason for n in ("one", "two")}
    (reason,) = reasons
    assert reason.startswith("environment: pip could not install tinylib==9.9"), reason
    logs = [p.read_text() for p in (tmp_path / "cache" / "runs").glob("*/*/env-build.log")]
    assert sum("pip" in log and "install" in log and "9.9" in log for log in logs) == 1, logs
    (note,) = [log for log in logs if log.startswith("# not built again")]
    assert note.rstrip().endswith("env-build.log")


def _only_windows_wheel_of_9_9(
    tmp_path: Path, run_cli: CliRunner, wheelhouse: Path, *args: str, **kwargs: Any
) -> Result:
    """The one record of a run pinning tinylib 9.9, of which `wheelhouse` holds only a
    Windows wheel; `args` (and `kwargs`, such as `env`) say how pip is given the folder."""
    (one,) = wheelhouse.glob("tinylib-1.0-*.whl")
    shutil.copyfile(one, wheelhouse / "tinylib-9.9-py3-none-win_amd64.whl")
    matrix = write_matrix(
        tmp_path / "m.yaml",
        {
            "probe": "script: {fx}/env_probe_repro.py, gpus: [cpu], "
            "params: {module: tinylib, good: 1.0}, libraries: {tinylib: ['9.9']}"
        },
        extra=textwrap.dedent("""\
            libraries:
              tinylib: {pypi: tinylib, import: tinylib, versions: ["9.9"]}
            """),
    )
    out = run_cli(
        "--matrix", str(matrix), "run", "--results", "res", "--no-progress", "--no-index",
        "--cache", "cache", *args, **kwargs,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (r,) = ResultStore(tmp_path / "res").latest_by_key().values()
    return r


def test_a_wheel_for_another_platform_is_named_in_the_reason(
    tmp_path: Path, run_cli: CliRunner, wheelhouse: Path
) -> None:
    """--find-links held only a Windows wheel of the pinned release: the record said "No
    matching distribution found for tinylib==9.9", as if the file were not there."""
    r = _only_windows_wheel_of_9_9(tmp_path, run_cli, wheelhouse, "--find-links", str(wheelhouse))
    assert r.status is Status.ERROR
    assert "No matching distribution found for tinylib==9.9" in r.reason, r.reason
    assert "tinylib-9.9-py3-none-win_amd64.whl: not for this environment's" in r.reason


def test_a_wheel_for_another_platform_in_a_pip_find_links_folder_is_named_too(
    tmp_path: Path, run_cli: CliRunner, wheelhouse: Path
) -> None:
    """The folder came from PIP_FIND_LINKS (pip reads it, and found the wheel there): the
    reason said only "No matching distribution found", the hint read --find-links alone."""
    r = _only_windows_wheel_of_9_9(
        tmp_path, run_cli, wheelhouse, env={"PIP_FIND_LINKS": str(wheelhouse)}
    )
    assert r.status is Status.ERROR
    assert "No matching distribution found for tinylib==9.9" in r.reason, r.reason
    assert f"PIP_FIND_LINKS folder {wheelhouse} holds tinylib-9.9-py3-none-win_amd64.whl" in (
        r.reason
    ), r.reason


def _tinylib_matrix(tmp_path: Path, versions: str) -> Path:
    """m.yaml: the env probe over tinylib's `versions` (a YAML list) from a git checkout."""
    return write_matrix(
        tmp_path / "m.yaml",
        {
            "probe": "script: {fx}/env_probe_repro.py, gpus: [cpu], "
            "params: {module: tinylib, good: 1.0}, libraries: {tinylib: all}"
        },
        extra=textwrap.dedent(f"""\
            libraries:
              tinylib:
                git: https://example.invalid/tinylib.git
                import: tinylib
                install: pythonpath
                versions: {versions}
            """),
    )


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def test_git_pins_from_a_local_clone(tmp_path: Path, run_cli: CliRunner) -> None:
    repo = tmp_path / "upstream"
    (repo / "tinylib").mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "t@example.invalid")
    _git(repo, "config", "user.name", "t")
    shas: list[str] = []
    for value in (1.0, 1.0, 2.0):
        (repo / "tinylib" / "__init__.py").write_text(f"VALUE = {value}\n# {len(shas)}\n")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", f"value {value}")
        shas.append(_git(repo, "rev-parse", "HEAD"))
    matrix = _tinylib_matrix(tmp_path, f'["{shas[0][:8]}", "{shas[2][:8]}", "main"]')
    out = run_cli(
        "--matrix",
        str(matrix),
        "run",
        "--results",
        "res",
        "--no-progress",
        "--git-mirror",
        f"tinylib={repo}",
        "--cache",
        "cache",
    )
    assert out.returncode == 0, out.stderr
    results = {r.pins["tinylib"]: r for r in ResultStore(tmp_path / "res").load().results}
    assert results[shas[0][:8]].status is Status.PASSED
    assert results[shas[2][:8]].status is Status.REGRESSED
    assert results["main"].status is Status.REGRESSED
    pin = results["main"].provenance["harness"]["pins"]["tinylib"]
    assert pin["commit"] == shas[2]
    assert pin["committed"]
    # The repro saw the same facts inside its environment.
    inside = (
        json.loads(results["main"].provenance["env"]["REPROMATRIX_LIBRARIES"])
        if ("env" in results["main"].provenance)
        else None
    )
    assert inside is None or inside["tinylib"]["commit"] == shas[2]


def test_a_branch_pin_follows_the_branch_and_cell_env_is_part_of_the_run(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A `{git: main}` pin is the commit main is now: after main moves, the stored result
    (made at the old commit) is not reused and the environment is not the old one. A
    record made with other --cell-env variables is not reused either."""
    repo = tmp_path / "upstream"
    (repo / "tinylib").mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "t@example.invalid")
    _git(repo, "config", "user.name", "t")

    def commit(value: float) -> str:
        (repo / "tinylib" / "__init__.py").write_text(f"VALUE = {value}\n")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", f"value {value}")
        return _git(repo, "rev-parse", "HEAD")

    first = commit(1.0)
    matrix = _tinylib_matrix(tmp_path, "[main]")
    argv = ["--matrix", str(matrix), "run", "--results", "res", "--no-progress"]
    argv += ["--git-mirror", f"tinylib={repo}", "--cache", "cache"]
    out = run_cli(*argv)
    assert out.returncode == 0, out.stderr
    again = run_cli(*argv)
    assert "1 reused" in again.stderr, again.stderr  # main has not moved
    second = commit(2.0)
    moved = run_cli(*argv)
    assert moved.returncode == 0, moved.stderr
    assert "0 reused" in moved.stderr, moved.stderr
    records = ResultStore(tmp_path / "res").load().results
    by_commit = {r.commits["tinylib"]: r for r in records}
    assert by_commit[first].status is Status.PASSED
    assert by_commit[second].status is Status.REGRESSED  # the new main, in a new environment
    assert len(list((tmp_path / "cache" / "envs").glob("*/env.json"))) == 2
    # Another --cell-env: not the run that was stored; the same one again: reused.
    with_env = run_cli(*argv, "--cell-env", "PROBE_MODE=strict")
    assert "0 reused" in with_env.stderr, with_env.stderr
    same = run_cli(*argv, "--cell-env", "PROBE_MODE=strict")
    assert "1 reused" in same.stderr, same.stderr


def test_report_orders_commits_by_ancestry_from_the_runs_cache(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """`run --cache DIR` clones the mirror into DIR; `report --cache DIR` reads it there.

    Commit dates run backwards here, and the matrix declares the commits in neither order,
    so only the mirror's topology gives oldest → newest.
    """
    repo = tmp_path / "upstream"
    (repo / "tinylib").mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "t@example.invalid")
    _git(repo, "config", "user.name", "t")
    shas: list[str] = []
    for i, date in enumerate(["2025-03-01", "2025-02-01", "2025-01-01"]):
        (repo / "tinylib" / "__init__.py").write_text(f"VALUE = 1.0\n# {i}\n")
        _git(repo, "add", "-A")
        stamp = f"{date}T00:00:00+00:00"
        subprocess.run(
            ["git", "-C", str(repo), "commit", "-q", "-m", f"c{i}", "--date", stamp],
            check=True,
            capture_output=True,
            env={**os.environ, "GIT_COMMITTER_DATE": stamp},
        )
        shas.append(_git(repo, "rev-parse", "HEAD"))
    labels = [s[:8] for s in shas]
    matrix = _tinylib_matrix(tmp_path, f'["{labels[1]}", "{labels[2]}", "{labels[0]}"]')
    common = ["--matrix", str(matrix)]
    out = run_cli(*common, "run", "--results", "res", "--no-progress",
                  "--git-mirror", f"tinylib={repo}", "--cache", "elsewhere")  # fmt: skip
    assert out.returncode == 0, out.stderr

    def rows(out_dir: str, *extra: str) -> list[str]:
        done = run_cli(*common, "report", "--results", "res", "--out", out_dir, *extra)
        assert done.returncode == 0, done.stderr
        html = (tmp_path / out_dir / "index.html").read_text()
        return re.findall(r"<tr data-st=[^>]*><th[^>]*>([0-9a-f]{8})", html)

    assert rows("by-ancestry", "--cache", "elsewhere") == labels
    # Without the mirror a commit date is no order (a branch merged later is dated among
    # the line's own commits): matrix.yaml's order stands, as declared.
    assert rows("no-mirror") == [labels[1], labels[2], labels[0]]


def test_git_pins_include_submodules(tmp_path: Path, run_cli: CliRunner) -> None:
    """git archive drops submodules; the environment must have them at the recorded commit."""
    sub = tmp_path / "sub"
    sub.mkdir()
    _git(sub, "init", "-q", "-b", "main")
    _git(sub, "config", "user.email", "t@example.invalid")
    _git(sub, "config", "user.name", "t")
    (sub / "__init__.py").write_text("VALUE = 1.0\n")
    _git(sub, "add", "-A")
    _git(sub, "commit", "-q", "-m", "good value")
    good = _git(sub, "rev-parse", "HEAD")
    (sub / "__init__.py").write_text("VALUE = 2.0\n")
    _git(sub, "commit", "-q", "-am", "bad value, not recorded by the parent")
    repo = tmp_path / "upstream"
    (repo / "tinylib").mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "t@example.invalid")
    _git(repo, "config", "user.name", "t")
    (repo / "tinylib" / "__init__.py").write_text("from tinylib.third import VALUE\n")
    (repo / ".gitmodules").write_text(
        '[submodule "third"]\n\tpath = tinylib/third\n\turl = ../sub\n'
    )
    _git(repo, "add", "-A")
    # The gitlink goes in last: `add -A` would drop it (the path is not checked out here).
    _git(repo, "update-index", "--add", "--cacheinfo", f"160000,{good},tinylib/third")
    _git(repo, "commit", "-q", "-m", "vendor sub as a submodule")
    matrix = _tinylib_matrix(tmp_path, "[main]")
    args = ["--matrix", str(matrix), "run", "--results", "res", "--no-progress",
            "--git-mirror", f"tinylib={repo}"]  # fmt: skip
    out = run_cli(*args, "--cache", "cache")
    assert out.returncode == 0, out.stderr
    (result,) = ResultStore(tmp_path / "res").load().results
    assert (result.status, result.reason) == (Status.PASSED, "VALUE=1.0")
    # Without the submodule's repository, the cell says which flag provides it.
    shutil.rmtree(sub)
    out = run_cli(*args, "--cache", "cache2", "--rerun")
    result = ResultStore(tmp_path / "res").latest_by_key()[result.key]
    assert result.status is Status.ERROR
    assert "submodule tinylib/third of tinylib at " in result.reason
    assert "--git-mirror tinylib/tinylib/third=PATH" in result.reason


def test_a_killed_jit_build_does_not_hang_the_next_cell(
    tmp_path: Path, run_cli: CliRunner, wheelhouse: Path
) -> None:
    """A cell killed while holding torch's build baton must not block its environment."""
    matrix = write_matrix(
        tmp_path / "m.yaml",
        {
            "jit": "script: {fx}/baton_repro.py, gpus: [cpu], timeout: 2, "
            "params: {seconds_env: BUILD_SECONDS}, libraries: {tinylib: ['1.0']}"
        },
        extra='libraries:\n  tinylib: {pypi: tinylib, import: tinylib, versions: ["1.0"]}\n',
    )
    args = ["--matrix", str(matrix), "run", "--results", "res", "--no-progress",
            "--find-links", str(wheelhouse), "--no-index", "--cache", "cache"]  # fmt: skip
    first = run_cli(*args, env={"BUILD_SECONDS": "600"})
    assert first.returncode == 0, first.stderr
    (killed,) = ResultStore(tmp_path / "res").load().results
    assert killed.status is Status.TIMEOUT
    batons = list((tmp_path / "cache" / "envs").glob("*/cache/torch_extensions/ext/lock"))
    assert len(batons) == 1  # the killed build left its baton behind
    second = run_cli(*args, "--retry-errors", env={"BUILD_SECONDS": "0"})
    assert second.returncode == 0, second.stderr
    result = ResultStore(tmp_path / "res").latest_by_key()[killed.key]
    assert (result.status, result.reason) == (Status.PASSED, "extension loaded")
    assert result.provenance["harness"]["removed_stale_locks"] == [
        "cache/torch_extensions/ext/lock"
    ]


def test_run_offline_keeps_its_own_wheels_out_of_the_cells(tmp_path: Path, repo_root: Path) -> None:
    """scripts/run-offline.sh put its carried wheels (pydantic & co.) on PYTHONPATH ahead of
    the GPU stack's packages, inside every cell too; it failed with `$1: unbound variable`
    without arguments and only ran from the repository's root."""
    from bisect_repo import build_wheels

    script = repo_root / "scripts" / "run-offline.sh"
    usage = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
    assert usage.returncode == 64
    assert usage.stderr.startswith("usage: scripts/run-offline.sh CARRY")
    carry = tmp_path / "carry"
    build_wheels(carry / "wheels", ["1.0"], bad=set())  # stands in for repromatrix's wheels
    (carry / "dist").mkdir()
    (tmp_path / "probe.py").write_text(
        textwrap.dedent("""\
            import argparse, importlib.util, json
            p = argparse.ArgumentParser()
            p.add_argument("--out")
            p.add_argument("--params")
            a = p.parse_args()
            leaked = importlib.util.find_spec("bisectpkg") is not None
            status = "regressed" if leaked else "passed"
            with open(a.out, "w") as f:
                json.dump({"schema": 1, "status": status, "reason": f"leaked={leaked}"}, f)
            raise SystemExit(1 if leaked else 0)
            """)
    )
    (tmp_path / "matrix.yaml").write_text(
        "schema: 1\nrepros:\n  probe: {script: probe.py, gpus: [cpu]}\n"
    )
    python = tmp_path / "bin" / "python3"  # the tool's own interpreter stands in for the host's
    python.parent.mkdir()
    # A wrapper, not a link: a link outside its venv is the venv's base interpreter, whose
    # packages depend on the machine (one without rich failed this test).
    python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    env = {**os.environ, "PATH": f"{python.parent}:{os.environ['PATH']}"}
    env["REPROMATRIX_SITE"] = str(tmp_path / "site")
    done = subprocess.run(
        ["bash", str(script), str(carry), "run", "--results", "res"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "site" / "bisectpkg").is_dir()  # installed for repromatrix ...
    (record,) = ResultStore(tmp_path / "res").load().results
    assert record.reason == "leaked=False"  # ... and not importable in the cell
    # The other commands run from the carried folder too: `report` was handed run's
    # flags and failed with "unrecognized arguments: --executor local ...", which the
    # user never typed.
    for command in (["report", "--results", "res", "--out", "rep"], ["validate"]):
        other = subprocess.run(
            ["bash", str(script), str(carry), *command],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert other.returncode == 0, (command, other.stderr)
    assert (tmp_path / "rep" / "index.html").is_file()


def test_a_flaky_cell_is_named_by_the_run_summary(tmp_path: Path, run_cli: CliRunner) -> None:
    """`run --repeat 4` of a cell that passed twice and regressed twice said only
    "2 passed, 2 regressed" (counts of records, which a run of a steady pass and a steady
    regression says too): without --fail-on nothing said that one cell disagrees with
    itself, which is what a repeat is run to find out. The summary now names it."""
    counter = tmp_path / "count"
    matrix = write_matrix(
        tmp_path / "matrix.yaml",
        {
            "alt": "script: {fx}/alternating_repro.py, gpus: [cpu], params: {counter: "
            + json.dumps(str(counter))
            + "}",
            "steady": "script: {fx}/pass_repro.py, gpus: [cpu]",
        },
    )
    argv = ["--matrix", str(matrix), "run", "--results", "results", "--no-progress"]
    out = run_cli(*argv, "--repeat", "4", "--jobs", "1")
    assert out.returncode == 0, out.stderr
    # Runs are not cells: "running 8 cell(s)" of a matrix of 2 cells.
    assert out.stderr.startswith("running 8 runs of 2 cells\n")
    line = "repromatrix: 1 cell(s) flaky (passed and regressed in their records): "
    assert f"{line}alt[cpu,host] (2 passed, 2 regressed)" in out.stderr.splitlines()
    # Reused records count as well: a resumed run says it again.
    again = run_cli(*argv, "--repeat", "4")
    assert f"{line}alt[cpu,host] (2 passed, 2 regressed)" in again.stderr.splitlines()
    assert "steady" not in again.stderr


def test_a_repro_fixed_in_the_data_it_reads_is_run_again_and_not_flaky(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A repro that read its reference beside it regressed; after the reference was fixed,
    `run` reused the stale regression (the file was not in the key), and `run --rerun`
    made a pass that the old regression then made 'flaky' (--fail-on regressed: exit 1),
    though the two records were of two versions of the repro."""
    (tmp_path / "r.py").write_text(
        "import os, sys\n"
        "sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))\n"
        "from _fixture import args, finish\n"
        "out, params = args()\n"
        "ref = open(os.path.join(os.path.dirname(__file__), 'ref.txt')).read().strip()\n"
        "finish(out, 'r', 'passed' if ref == 'fixed' else 'regressed', ref)\n"
    )
    shutil.copy(FIXTURE_REPROS / "_fixture.py", tmp_path / "_fixture.py")
    (tmp_path / "ref.txt").write_text("broken\n")
    (tmp_path / "m.yaml").write_text("schema: 1\nrepros:\n  r: {script: r.py, gpus: [cpu]}\n")
    argv = ["--matrix", "m.yaml", "run", "--results", "res", "--no-progress", "--isolate"]
    first = run_cli(*argv)
    assert first.returncode == 0, first.stderr
    assert "regressed" in first.stderr
    (tmp_path / "ref.txt").write_text("fixed\n")
    again = run_cli(*argv, "--fail-on", "regressed")
    assert again.returncode == 0, again.stderr
    assert "1 passed, 0 reused" in again.stderr
    assert "flaky" not in again.stderr


def test_a_tag_and_its_commit_listed_apart_are_refused_before_anything_runs(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """`versions: [{git: v1}, {git: <v1's sha>}]` made two cells of one experiment: the
    commit ran twice and the report showed it as two revisions. A branch at that commit
    (it moves) is not refused."""
    lib = tmp_path / "lib"
    (lib / "tinylib").mkdir(parents=True)
    (lib / "tinylib" / "__init__.py").write_text("VALUE = 0\n")

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(lib), *args],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return done.stdout.strip()

    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "one")
    git("tag", "v1")
    git("branch", "feat")
    sha = git("rev-parse", "HEAD")

    def matrix(versions: str) -> list[str]:
        write_matrix(
            tmp_path / "m.yaml",
            {"r": "script: {fx}/pass_repro.py, gpus: [cpu], libraries: {tinylib: all}"},
            extra=f"libraries:\n  tinylib:\n    git: {lib}\n    import: tinylib\n"
            f"    install: pythonpath\n    versions: {versions}\n",
        )
        return ["--matrix", "m.yaml", "run", "--results", "res", "--no-progress"]

    refused = run_cli(*matrix(f'[{{git: v1}}, {{git: "{sha[:10]}"}}]'))
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert (
        f"m.yaml:11:27: library 'tinylib' lists '{sha[:10]}', the same commit as tag 'v1' "
        f"({sha[:12]}); remove one" in refused.stderr
    )
    assert not list((tmp_path / "res").glob("*.jsonl"))  # refused before any cell ran
    ran = run_cli(*matrix("[{git: v1}, {git: feat}]"))
    assert ran.returncode == 0, ran.stderr
    assert "2 passed" in ran.stderr
    # A branch spelled in hex digits moves as `feat` does: it was refused as a commit id.
    git("branch", "cafe1234")
    hexed = run_cli(*matrix('[{git: v1}, {git: "cafe1234"}]'))
    assert hexed.returncode == 0, hexed.stderr


@pytest.mark.parametrize("name", ["cafe1234", "20240101"])
def test_a_branch_or_tag_named_in_hex_digits_is_followed_as_a_name(
    tmp_path: Path, run_cli: CliRunner, name: str
) -> None:
    """A pin `{git: cafe1234}` naming a branch (or a nightly tag `20240101`) is spelled as a
    commit id would be: it was taken for one, which never moves, so after the branch moved
    `run` reused the record made at its old commit (and its old environment)."""
    repo = tmp_path / "upstream"
    (repo / "tinylib").mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "t@example.invalid")
    _git(repo, "config", "user.name", "t")

    def commit(value: float) -> str:
        (repo / "tinylib" / "__init__.py").write_text(f"VALUE = {value}\n")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", f"value {value}")
        return _git(repo, "rev-parse", "HEAD")

    kind = "branch" if name.startswith("c") else "tag"
    first = commit(1.0)
    _git(repo, kind, name, first)
    matrix = _tinylib_matrix(tmp_path, f'["{name}"]')
    argv = ["--matrix", str(matrix), "run", "--results", "res", "--no-progress"]
    argv += ["--git-mirror", f"tinylib={repo}", "--cache", "cache"]
    out = run_cli(*argv)
    assert out.returncode == 0, out.stderr
    again = run_cli(*argv)
    assert "1 reused" in again.stderr, again.stderr  # it has not moved
    second = commit(2.0)
    _git(repo, kind, "-f", name, second)
    moved = run_cli(*argv)
    assert moved.returncode == 0, moved.stderr
    assert "0 reused" in moved.stderr, moved.stderr
    by_commit = {r.commits["tinylib"]: r for r in ResultStore(tmp_path / "res").load().results}
    assert by_commit[first].status is Status.PASSED
    assert by_commit[second].status is Status.REGRESSED


def test_a_run_that_runs_no_cell_leaves_no_folder_in_the_cache(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """Every `run` made `<cache>/runs/<run id>/` for its cells, and one that ran none (all
    reused, or all 'not run here') left it empty, one more a run: only `clean` removed
    them. A run's folder now goes with the run when no cell left anything in it."""
    gpus = "gpus:\n  H100: {compute_capability: '9.0', smi_names: [NVIDIA H100 80GB HBM3]}\n"
    repros = {
        "p": "script: {fx}/pass_repro.py, gpus: [cpu]",
        "g": "script: {fx}/pass_repro.py, gpus: [H100]",
    }
    matrix = write_matrix(tmp_path / "m.yaml", repros, extra=gpus)
    argv = ["--matrix", str(matrix), "run", "--no-progress", "--cache", "cache"]
    first = run_cli(*argv)
    assert first.returncode == 0, first.stderr
    (ran,) = (tmp_path / "cache" / "runs").iterdir()
    assert list(ran.iterdir())  # the cell's logs stay
    for selection in ([], ["--repro", "g"]):  # all reused; all not run here
        again = run_cli(*argv, *selection)
        assert again.returncode == 0, again.stderr
        assert "running 0 cell(s)" in again.stdout + again.stderr
    assert [p.name for p in (tmp_path / "cache" / "runs").iterdir()] == [ran.name]
