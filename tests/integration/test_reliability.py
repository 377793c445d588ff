"""Nothing lost, nothing left running — the process side, with real processes.

Daemons that leave a cell's process group, a runner killed with -9, Ctrl-C during an
environment build (twice), a timeout next to a zombie, and a disk that fills up mid-run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tarfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from clihelpers import (
    FIXTURE_REPROS,
    CliRunner,
    cli_argv,
    fixture_copy,
    pids_alive,
    write_matrix,
)

from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.store import ResultStore

pytestmark = pytest.mark.integration

MODES = [pytest.param([], id="worker"), pytest.param(["--isolate"], id="isolate")]


def _wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {timeout} s")
        time.sleep(0.05)


def _gone_within(pids: list[int], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while pids_alive(pids):
        if time.monotonic() > deadline:
            raise AssertionError(f"still alive after {seconds} s: {pids_alive(pids)}")
        time.sleep(0.05)


def _start(tmp_path: Path, matrix: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cli_argv("--matrix", str(matrix), "run", "--no-progress", "--results", "results", *extra),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("mode", MODES)
def test_a_daemon_that_left_the_cells_group_ends_with_the_cell(
    tmp_path: Path, run_cli: CliRunner, mode: list[str]
) -> None:
    pidfile = tmp_path / "daemon.pid"
    matrix = write_matrix(
        tmp_path / "m.yaml",
        {
            "d": f"script: {{fx}}/worker_repro.py, gpus: [cpu], "
            f"params: {{mode: daemon, pidfile: '{pidfile}'}}"
        },
    )
    out = run_cli("--matrix", str(matrix), "run", "--no-progress", *mode)
    assert out.returncode == 0, out.stderr
    (r,) = ResultStore(tmp_path / "results").load().results
    assert r.status is Status.PASSED
    daemon = int(pidfile.read_text())
    # setsid + double fork took it out of the group; the cell's token found it anyway.
    _gone_within([daemon], 5)


@pytest.mark.parametrize("mode", MODES)
def test_kill_9_of_the_runner_ends_its_repros_within_5_s(tmp_path: Path, mode: list[str]) -> None:
    pidfile = tmp_path / "hang.json"
    matrix = write_matrix(
        tmp_path / "m.yaml",
        {"h": f"script: {{fx}}/hang_repro.py, gpus: [cpu], params: {{pidfile: '{pidfile}'}}"},
        timeout=300,
    )
    runner = _start(tmp_path, matrix, *mode)
    try:
        _wait_for(pidfile)
        pids = json.loads(pidfile.read_text())
        runner.send_signal(signal.SIGKILL)
        runner.communicate(timeout=30)
        # The repro (or its worker) and the child it started: ended by the run's watchdog.
        _gone_within([pids["parent"], pids["child"]], 5)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()


@contextlib.contextmanager
def _slow_sdist(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A find-links folder whose only sdist takes five minutes to build; its setup.py
    writes its pid to the marker first."""
    links = tmp_path / "links"
    src = tmp_path / "slowpkg-1.0"
    src.mkdir()
    marker = tmp_path / "building.pid"
    (src / "setup.py").write_text(
        textwrap.dedent(f"""\
            import os, time
            open({str(marker)!r}, "w").write(str(os.getpid()))
            time.sleep(300)
            from setuptools import setup
            setup(name="slowpkg", version="1.0")
            """)
    )
    (src / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: slowpkg\nVersion: 1.0\n")
    links.mkdir()
    with tarfile.open(links / "slowpkg-1.0.tar.gz", "w:gz") as tar:
        tar.add(src, arcname="slowpkg-1.0")
    yield links, marker


@pytest.mark.parametrize("presses", [1, 2], ids=["ctrl-c", "ctrl-c-twice"])
def test_ctrl_c_ends_an_environment_build(tmp_path: Path, presses: int) -> None:
    with _slow_sdist(tmp_path) as (links, marker):
        matrix = write_matrix(
            tmp_path / "m.yaml",
            {"p": "script: {fx}/pass_repro.py, gpus: [cpu], libraries: {slowpkg: all}"},
            extra="libraries:\n  slowpkg: {pypi: slowpkg, import: slowpkg, versions: ['1.0']}\n",
        )
        runner = _start(tmp_path, matrix, "--find-links", str(links), "--no-index")
        try:
            _wait_for(marker, timeout=120)
            builder = int(marker.read_text())
            started = time.monotonic()
            for _ in range(presses):
                runner.send_signal(signal.SIGINT)
                time.sleep(0.2)
            _, err = runner.communicate(timeout=60)
            took = time.monotonic() - started
        finally:
            if runner.poll() is None:
                runner.kill()
                runner.communicate()
    assert runner.returncode == 130, err
    assert took < 15, f"Ctrl-C took {took:.1f} s: it waited for the build"
    _gone_within([builder], 5)
    # Half a build is not a result: nothing recorded, the next run builds again.
    assert (
        not (tmp_path / "results").exists() or not ResultStore(tmp_path / "results").load().results
    )


def test_a_timeout_is_not_held_up_by_a_zombie(tmp_path: Path, run_cli: CliRunner) -> None:
    script = tmp_path / "zombie_repro.py"
    script.write_text(
        textwrap.dedent("""\
            import os, time
            if os.fork() == 0:
                os._exit(0)  # a child nobody reaps: a zombie in the cell's group
            time.sleep(3600)
            """)
    )
    matrix = write_matrix(tmp_path / "m.yaml", {"z": f"script: {script}, gpus: [cpu], timeout: 2"})
    started = time.monotonic()
    out = run_cli("--matrix", str(matrix), "run", "--no-progress", "--isolate")
    assert out.returncode == 0, out.stderr
    (r,) = ResultStore(tmp_path / "results").load().results
    assert r.status is Status.TIMEOUT
    assert r.duration_s < 2.9, r.duration_s
    assert time.monotonic() - started < 15


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 160 KiB tmpfs (root only: mount)."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("the disk-full test mounts a tmpfs and needs root in CI")
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_loses_no_record_and_the_run_exits_8(
    tmp_path: Path, run_cli: CliRunner, small_disk: Path
) -> None:
    script = tmp_path / "loud_repro.py"
    script.write_text(
        textwrap.dedent(f"""\
            import sys
            sys.path.insert(0, {str(FIXTURE_REPROS)!r})
            from _fixture import args, finish
            out, params = args()
            print("x" * 7000)  # ~7 KB of stdout tail per record
            finish(out, "loud", "passed", "ok", max_abs=1e-5)
            """)
    )
    repros = {f"r{i:02d}": f"script: {script}, gpus: [cpu], params: {{i: {i}}}" for i in range(40)}
    matrix = write_matrix(tmp_path / "m.yaml", repros)
    results = small_disk / "results"
    out = run_cli("--matrix", str(matrix), "run", "--no-progress", "--results", str(results))
    assert out.returncode == 8, out.stderr
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("repromatrix: error:")]
    assert len(errors) == 1
    assert "could not be stored" in errors[0]
    assert "No space left on device" in errors[0]
    assert errors[0].endswith("make room or grant access there, then run again")  # the fix
    loaded = ResultStore(results).load()
    assert loaded.problems == ()  # no cut record: a short write was rolled back
    assert 0 < len(loaded.results) < 40
    assert len({r.key for r in loaded.results}) == len(loaded.results)


def _store(path: Path, records: int) -> Path:
    """A JSONL store of `records` passed records of one repro over as many versions."""
    with path.open("w") as f:
        for i in range(records):
            r = Result(
                key=f"k{i}",
                cell_id=f"r[cpu,host,lib=0.{i}]",
                repro="r",
                base="host",
                image=None,
                gpu="cpu",
                pins={"lib": f"0.{i}"},
                status=Status.PASSED,
                reason="within tolerance",
                metrics={"max_abs": 1e-5},
                thresholds={"max_abs": 0.01},
                exit_code=0,
                duration_s=1.0,
                started="2026-01-01T00:00:00+00:00",
                finished="2026-01-01T00:00:01+00:00",
                host="h",
                run_id="run-1",
                executor="local",
                stdout_tail="y" * 500,
            )
            f.write(json.dumps(r.record()) + "\n")
    return path


@pytest.mark.parametrize("jobs", ["1", "2"])  # 2: the tables are written by a forked child
def test_a_full_disk_keeps_the_last_report_whole_and_the_report_exits_10(
    tmp_path: Path, run_cli: CliRunner, small_disk: Path, jobs: str
) -> None:
    out = small_disk / "report"
    one = _store(tmp_path / "one.jsonl", 1)
    first = run_cli("report", "--results", str(one), "--out", str(out))
    assert first.returncode == 0, first.stderr
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert "index.html" in before

    many = str(_store(tmp_path / "many.jsonl", 3000))
    big = run_cli("report", "--results", many, "--out", str(out), "--jobs", jobs)
    assert big.returncode == 10, big.stderr
    (line,) = big.stderr.splitlines()
    assert line.startswith(f"repromatrix: error: --out {out}: writing ")
    assert "No space left on device" in line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no staging left either


def test_a_full_cache_disk_stops_the_run_with_exit_8_instead_of_recording_errors(
    tmp_path: Path, run_cli: CliRunner, small_disk: Path
) -> None:
    fx = fixture_copy(tmp_path)
    repros = {f"r{i}": f"script: {fx}/pass_repro.py, gpus: [cpu]" for i in range(3)}
    matrix = write_matrix(tmp_path / "m.yaml", repros)
    with contextlib.suppress(OSError), (small_disk / "filler").open("wb") as f:
        while True:  # fill the disk the cache is on
            f.write(b"x" * 4096)
            f.flush()
    out = run_cli(
        "--matrix", str(matrix), "run", "--no-progress", "--results", "res",
        "--cache", str(small_disk / "cache"),
    )  # fmt: skip
    assert out.returncode == 8, out.stderr
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("repromatrix: error:")]
    assert len(errors) == 1
    assert "could not run: No space left on device under the cache" in errors[0]
    assert "free space there (`repromatrix clean` empties its runs/)" in errors[0]  # the fix
    assert ResultStore(tmp_path / "res").load().results == ()  # no cell blamed for the disk


def test_a_cache_disk_that_fills_after_a_run_records_no_false_error(
    tmp_path: Path, run_cli: CliRunner, small_disk: Path
) -> None:
    """The cache was in use (its environment, folders) when its disk filled: the cell's
    repro could not write its result JSON and was recorded as an error at exit 0, which
    the next run then reused."""
    fx = fixture_copy(tmp_path)
    matrix = write_matrix(tmp_path / "m.yaml", {"p": f"script: {fx}/pass_repro.py, gpus: [cpu]"})
    argv = ["--matrix", str(matrix), "run", "--no-progress", "--results", "res"]
    argv += ["--cache", str(small_disk / "cache")]
    # Room for the first run's cache (the worker's program alone is 140 KB), filled after.
    subprocess.run(["mount", "-o", "remount,size=1m", str(small_disk)], check=True)
    assert run_cli(*argv).returncode == 0
    with contextlib.suppress(OSError), (small_disk / "filler").open("wb") as f:
        while True:
            f.write(b"x" * 4096)
            f.flush()
    for isolate in ((), ("--isolate",)):
        out = run_cli(*argv, "--rerun", *isolate)
        assert out.returncode == 8, out.stdout + out.stderr
        assert "No space left on device" in out.stderr
    assert [r.status for r in ResultStore(tmp_path / "res").load().results] == [Status.PASSED]


def test_a_full_results_disk_is_found_before_the_first_cell(
    tmp_path: Path, run_cli: CliRunner, small_disk: Path
) -> None:
    """The cells ran (hours on a GPU), then the run stopped at the first record."""
    fx = fixture_copy(tmp_path)
    matrix = write_matrix(tmp_path / "m.yaml", {"p": f"script: {fx}/pass_repro.py, gpus: [cpu]"})
    (small_disk / "res").mkdir()
    with contextlib.suppress(OSError), (small_disk / "filler").open("wb") as f:
        while True:
            f.write(b"x" * 4096)
            f.flush()
    out = run_cli(
        "--matrix", str(matrix), "run", "--no-progress", "--results", str(small_disk / "res")
    )
    assert out.returncode == 8, out.stderr
    assert "its disk is full" in out.stderr
    # The fix a full disk wants, not "pass a writable results folder" (it is writable).
    assert "make room there, or pass another results folder" in out.stderr, out.stderr
    assert "running" not in out.stderr  # no cell started


def test_a_log_that_filled_the_disk_is_still_cut_to_its_tail(small_disk: Path) -> None:
    """No room for the trimmed copy: the log's head gives its room back where it lies, and
    the log is cut to its tail, or the disk stays full for every later cell."""
    from repromatrix.logs import trim_cell_logs

    workdir = small_disk / "cell"
    workdir.mkdir()
    with contextlib.suppress(OSError), (workdir / "stdout.log").open("wb") as f:
        for i in range(100_000):
            f.write(f"line {i}\n".encode())
            f.flush()
    size = (workdir / "stdout.log").stat().st_size
    freed = trim_cell_logs(workdir, keep_bytes=4096)
    text = (workdir / "stdout.log").read_text()
    assert freed > size // 2
    assert text.startswith("[repromatrix: the first ")
    assert len(text) < 4096 + 200
    assert not (workdir / ".stdout.log.trimmed").exists()


class _Crash(BaseException):
    """The runner killed at a step of a trim (no `except OSError` catches it)."""


@pytest.mark.parametrize("crash_at", range(8))
def test_a_log_cut_for_room_is_never_left_half_rewritten(
    small_disk: Path, monkeypatch: pytest.MonkeyPatch, crash_at: int
) -> None:
    """With no room for the trimmed copy, the log was cut where it lay: its head overwritten
    with the kept tail, then truncated. A reader in between (or the log after a crash
    there) saw the tail followed by the rest of the old log from the middle on, a file
    that was neither. Now, killed at any step, the log is the old one (its head perhaps
    read as NUL bytes, its space given back), or the trimmed one, never a mix."""
    from repromatrix import logs

    workdir = small_disk / "cell"
    workdir.mkdir()
    log = workdir / "stdout.log"
    with contextlib.suppress(OSError), log.open("wb") as f:
        for i in range(100_000):
            f.write(f"line {i}\n".encode())
            f.flush()
    old = log.read_bytes()
    steps = [0]

    def step(real: Callable[..., object]) -> Callable[..., object]:
        def stepped(*args: object, **kwargs: object) -> object:
            if steps[0] == crash_at:
                raise _Crash
            steps[0] += 1
            return real(*args, **kwargs)

        return stepped

    for name in ("pwrite", "ftruncate", "replace"):
        monkeypatch.setattr(os, name, step(getattr(os, name)))
    if hasattr(logs, "punch_hole"):
        monkeypatch.setattr(logs, "punch_hole", step(logs.punch_hole))
    with contextlib.suppress(_Crash):
        logs.trim_cell_logs(workdir, keep_bytes=4096)
    monkeypatch.undo()
    now = log.read_bytes()
    if now.startswith(b"[repromatrix: the first "):
        assert old.endswith(now.partition(b"\n")[2])  # the trimmed log
    else:
        assert len(now) == len(old)
        assert all(a in (0, b) for a, b in zip(now, old, strict=True)), now[:200]
        assert now[-4000:] == old[-4000:]


def test_a_small_log_on_a_full_disk_still_loses_its_secrets(small_disk: Path) -> None:
    """A log short enough to keep whole but holding a secret value, on a disk with no room
    for its redacted copy: it is rewritten where it lies (nothing of it is cut), not left
    with the secret."""
    from repromatrix import logs, redact

    workdir = small_disk / "cell"
    workdir.mkdir()
    (workdir / "stdout.log").write_text("token: hunter2-very-secret\nbye\n")
    with contextlib.suppress(OSError), (small_disk / "filler").open("wb") as f:
        while True:
            f.write(b"\0" * 4096)
            f.flush()
    redact.remember({"HF_TOKEN": "hunter2-very-secret"})
    try:
        logs.trim_cell_logs(workdir)
    finally:
        redact.forget()
    assert (workdir / "stdout.log").read_text() == "token: ***\nbye\n"


def test_a_log_with_another_name_is_never_cut_where_it_lies(small_disk: Path) -> None:
    """A cell's log that is one file under two names (a repro that made its stdout.log a
    hard link to a file of the same disk, say the cache's): with no room for the trimmed
    copy it was cut where it lay, and the other name lost its head with it. Only the
    log's own name is ever replaced now; a shared file is left as it is."""
    from repromatrix import logs

    workdir = small_disk / "cell"
    workdir.mkdir()
    other = small_disk / "precious.txt"
    with contextlib.suppress(OSError), other.open("wb") as f:
        for i in range(100_000):
            f.write(f"line {i}\n".encode())
            f.flush()
    before = other.read_bytes()
    os.link(other, workdir / "stdout.log")
    logs.trim_cell_logs(workdir, keep_bytes=4096)
    now = other.read_bytes()
    assert now[:200] == before[:200]  # short: a diff of the whole file takes pytest minutes
    assert now == before


@contextlib.contextmanager
def _slow_run(
    tmp_path: Path, seconds: int, *extra: str
) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """A run of one slow_repro cell, once its cell has started; killed if still alive at
    the end. Yields the runner and the folder where the cell marks its start (`pid.started`).
    The cell passes after `seconds`, or once the test touches `tmp_path / "release"`."""
    started = tmp_path / "started"
    matrix = write_matrix(
        tmp_path / "m.yaml",
        {"s": f"script: {{fx}}/slow_repro.py, gpus: [cpu], "
              f"params: {{started_dir: '{started}', seconds: {seconds}, "
              f"release: '{tmp_path / 'release'}'}}"},
    )  # fmt: skip
    runner = _start(tmp_path, matrix, *extra)
    try:
        _wait_for(started)
        yield runner, started
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()


def test_clean_refuses_a_cache_a_run_is_using(tmp_path: Path, run_cli: CliRunner) -> None:
    # The cell runs until the test releases it: a cell of a fixed 4 s had ended (and the
    # run with it) before `clean` had started on a loaded machine, which then emptied it.
    with _slow_run(tmp_path, 600, "--cache", "cache") as (runner, _):
        busy = run_cli("--matrix", str(tmp_path / "m.yaml"), "clean", "--cache", "cache")
        # Emptying it now would take the running cell's folder (and its result) away.
        assert busy.returncode == 9, busy.stderr
        assert "a repromatrix run or bisect is using it" in busy.stderr
        assert (tmp_path / "cache" / "runs").is_dir()
        (tmp_path / "release").touch()
        _, err = runner.communicate(timeout=120)
    assert runner.returncode == 0, err
    (r,) = ResultStore(tmp_path / "results").load().results
    assert r.status is Status.PASSED
    assert (tmp_path / "cache" / "workers").is_dir()  # the worker's log and program copy
    done = run_cli("--matrix", str(tmp_path / "m.yaml"), "clean", "--cache", "cache")
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "cache" / "runs").exists()
    assert not (tmp_path / "cache" / "workers").exists()  # it grew with every run


def test_a_closed_terminal_stops_a_run_like_ctrl_c(tmp_path: Path) -> None:
    with _slow_run(tmp_path, 300) as (runner, started):
        runner.send_signal(signal.SIGHUP)
        _, err = runner.communicate(timeout=60)
    assert runner.returncode == 130, err
    assert "interrupted; finished cells are kept" in err
    repro = int(next(started.iterdir()).name.split(".")[0])
    _gone_within([repro], 5)
