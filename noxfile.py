"""Front door of repromatrix: `nox -l` lists the sessions, `nox -s NAME -- ARGS` runs one.

- matrix:  run the matrix on this host, then write the report (posargs go to `run`)
- report:  write reports/ from results/ (posargs go to `report`)
- bisect:  find the first bad / first fixed commit (posargs go to `bisect`)

Cells run with the interpreter that holds the host's GPU stack, never with nox's own venv:
by default the one that started nox (`python3 -m nox` from the venv or conda env that has
torch), else `REPROMATRIX_PYTHON=PATH` or `-- --python PATH`. repromatrix itself lives in
nox's venv, which also sees that interpreter's packages (so an offline host needs wheels
only for what it lacks; pip honours PIP_NO_INDEX / PIP_FIND_LINKS, and a `--find-links DIR`
/ `--no-index` among the posargs is used for repromatrix's own install too).

- tests:   unit + integration tests (Docker and browser tests need an engine / Chromium)
- lint:    ruff and mypy --strict over the package, tests, repros, bench, this file and
           noxsupport/ (the sessions' helpers)
- bench:   benchmarks; writes bench/results.json
- images:  build the registry-free Debian test base image (needs a Docker engine)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import nox

# nox imports this file by its path and runs in its folder, but that folder is on sys.path
# only where nox was started in it with `python -m nox`: `nox -f ../noxfile.py`, or the
# `nox` script, would find no noxsupport/ (the sessions' helpers, beside this file).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from noxsupport.install import DOCKER, PARQUET, install
from noxsupport.interpreters import cells_python, venv_location
from noxsupport.posargs import caller_args, named, posarg, shared, with_python
from noxsupport.results_state import records_state
from noxsupport.signals import pass_signals_on

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True
pass_signals_on()


def _repromatrix(session: nox.Session, *args: str) -> None:
    """`repromatrix ARGS` in the session. Stopped (Ctrl-C, or SIGTERM passed on), it kills
    its cells and containers and keeps finished results: nox waits a minute for that, then
    30 s after its own SIGTERM, before SIGKILL (nox's 0.3 s and 0.2 s cut it short)."""
    session.run("repromatrix", *args, interrupt_timeout=60.0, terminate_timeout=30.0)


# CPU torch for the tests of the trt_sdpa_scale export/ONNX Runtime half (the TorchScript
# exporter, `dynamo=False`, is what TensorRT#4333 is about).
TEST_NUMERICS = ["torch==2.13.0", "onnx", "onnxruntime", "numpy"]


@nox.session
def matrix(session: nox.Session) -> None:
    """Run matrix.yaml on this host (cells it cannot run are 'not run here'), then report."""
    python = cells_python(session)
    install(session, python, ".", optional={**DOCKER, **PARQUET})
    args = with_python(caller_args(session), python)
    if "-h" in args or "--help" in args:
        _repromatrix(session, "run", *args)
        return
    report = named(session, shared(caller_args(session)), results="results", out="reports")
    run = named(session, args, results="results")
    # As the caller finds it: "reports/ is written" named one that another folder lacks.
    reports = os.path.join(posarg(report, "--out") or "reports", "")
    before = records_state(posarg(run, "--results") or "results")
    try:
        _repromatrix(session, "run", *run)
    except nox.command.CommandFailed as exc:
        if exc.return_code == 1:
            # Cells ended as --fail-on names: the report still shows them, then it fails.
            _repromatrix(session, "report", *report)
            session.error(f"cells ended as --fail-on names them (above); {reports} is written")
        if records_state(posarg(run, "--results") or "results") == before:
            raise  # nothing recorded (a usage error, a busy folder...): nothing new to report
        # Records made before the run failed (exit 3: a damaged record; 7: an environment
        # not built; 2, 5, 8: stopped midway) are reported, as any run's are: reports/ was
        # left as an earlier run wrote it, read as this run's.
        written = f"{reports} is written from them"
        try:
            _repromatrix(session, "report", *report)
        except nox.command.CommandFailed as failed:
            if failed.return_code != 3:  # 3: written, the damaged records left out
                written = f"the report failed too (exit {failed.return_code}, above)"
        session.error(
            f"repromatrix run failed (exit {exc.return_code}, above) after recording "
            f"results; {written}"
        )
    _repromatrix(session, "report", *report)


@nox.session
def report(session: nox.Session) -> None:
    """Write reports/index.html (+ summary.md, junit.xml, CSV, Parquet) from results/."""
    # No cell runs: nox's own interpreter's packages do (not REPROMATRIX_PYTHON's).
    install(session, sys.executable, ".", optional=PARQUET)
    _repromatrix(
        session, "report", *named(session, caller_args(session), results="results", out="reports")
    )


@nox.session
def bisect(session: nox.Session) -> None:
    """Find the commit that introduced (or, with --find-fix, ended) a regression."""
    python = cells_python(session)
    install(session, python, ".", optional=DOCKER)
    # The results folder it defaults to is the noxfile's, named so from another folder:
    # "results in results/vm.jsonl" named one the caller's folder does not have.
    args = named(session, caller_args(session), results="results")
    _repromatrix(session, "bisect", *with_python(args, python))


@nox.session
def tests(session: nox.Session) -> None:
    """Unit and integration tests. In CI (CI=true) a missing Docker engine or browser fails."""
    venv_location(session)  # `nox --no-venv`: one line, not nox's traceback
    session.install("-e", ".[test,ray]", *TEST_NUMERICS)
    pytest = ["python", "-m", "pytest", "-W", "error", "-p", "no:cacheprovider"]
    env = {"PYTHONDONTWRITEBYTECODE": "1"}
    # Compiled once, here: under PYTHONDONTWRITEBYTECODE every `python -m repromatrix`,
    # worker and cell the tests start compiled the package from source again (a fresh
    # clone has no __pycache__): ~0.1 s of CPU a process, a quarter of the CLI tests'.
    # The variable stays, so the tests write no bytecode beside anything else.
    if session.run("python", "-m", "compileall", "-q", "src", silent=True) is None:
        # --install-only: nox skips each session.run (None), but not the process this
        # session starts itself below, which ran the Docker and Ray tests for minutes (on
        # the engine) for a command meant to install.
        return
    if session.posargs:
        # In the folder nox was started in, as pytest started there would run: nox runs in
        # the noxfile's, and `nox -f ../noxfile.py -s tests -- unit/test_store.py` from
        # tests/ said "file or directory not found: unit/test_store.py". Only a folder of
        # this checkout: from another, `-- -k store` collected that folder's test files.
        root = os.path.realpath(os.getcwd())
        below = os.path.realpath(session.invoked_from).startswith(root + os.sep)
        with session.chdir(session.invoked_from) if below else contextlib.nullcontext():
            session.run(*pytest, *session.posargs, env=env)
        return
    # Most of the suite waits on git, pip and subprocesses rather than computing: two or
    # more pytest-xdist workers, even on CI's two cores. The files that drive the one
    # Docker engine or start Ray clusters (and the one other that runs cells in Docker)
    # run in one process of their own, as before: they count and remove the engine's
    # containers and images, and bind the host's ports. That process runs beside the
    # rest, not after it: its tests mostly wait on the engine and the cluster, and one
    # after the other the two parts took 42 minutes of CI's 30-minute aim.
    engines = sorted(
        str(p)
        for name in ("test_docker*.py", "test_ray*.py", "test_store_damage_cli.py")
        for p in Path("tests", "integration").glob(name)
    )
    workers = str(max(2, min(4, os.cpu_count() or 1)))
    apart = [f"--ignore={path}" for path in engines]
    # The slowest tests named at the end of each part: CI's time is kept by knowing
    # where it goes.
    slowest = "--durations=25"
    # Beside the venv: `session.create_tmp()` would also set TMPDIR to a folder inside the
    # checkout for the tests, whose temporary paths and git repositories must lie outside.
    log_path = Path(session.virtualenv.location, "engines.log")
    venv_bin = session.bin
    child_env = {
        **os.environ,
        **env,
        "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
        "VIRTUAL_ENV": str(Path(venv_bin).parent),
    }
    # Ctrl-C as a terminal gives it: nox started in the background of a script (`cmd &`)
    # ignores SIGINT, which a child inherits (`session.run` sets it for its own commands),
    # and the tests that send it to a run then waited for ever. A handler of this
    # process's own is not inherited: the child starts with SIGINT's default.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    with open(log_path, "wb") as log:
        beside = subprocess.Popen(
            [str(Path(venv_bin, "python")), *pytest[1:], slowest, *engines],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env,
        )
        try:
            session.run(*pytest, "tests", "-n", workers, slowest, *apart, env=env)
        finally:
            code = beside.wait()
            sys.stdout.write(f"\n--- Docker and Ray tests ({log_path}) ---\n")
            sys.stdout.write(log_path.read_text(errors="replace"))
            sys.stdout.flush()
    if code != 0:
        session.error(f"the Docker and Ray tests failed (exit {code}); see above")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint + format check) and mypy --strict."""
    venv_location(session)  # `nox --no-venv`: one line, not nox's traceback
    # torch & co. too: mypy checks the repros against their real types, not Any.
    session.install("-e", ".[lint,test]", *TEST_NUMERICS)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks, each with its machine, into bench/results.json.

    Harness overhead and makespan, report, bisection, Ray and Docker overhead; persistent
    workers on a GPU when this host has one (bench/bench_gpu.py needs flashinfer 0.5.3:
    pass --find-links DIR)."""
    venv_location(session)  # `nox --no-venv`: one line, not nox's traceback
    session.install("-e", ".[test,docker,parquet,ray]")
    out = os.path.join("bench", "results.json")
    session.run("python", "bench/bench_harness.py", "--out", out)
    session.run("python", "bench/bench_report.py", "--out", out)
    session.run("python", "bench/bench_bisect.py", "--out", out)
    session.run("python", "bench/bench_ray.py", "--out", out)
    if _docker_engine_reachable():
        session.run("python", "bench/bench_docker.py", "--out", out)
    else:
        session.warn("no Docker engine reachable: bench_docker skipped")
    if shutil.which("nvidia-smi"):
        gpu = os.path.join("bench", "gpu.json")
        session.run("python", "bench/bench_gpu.py", "--out", gpu, *session.posargs)
    else:
        session.warn("no GPU (nvidia-smi not found): bench_gpu skipped")


def _docker_engine_reachable() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, check=False)
    return probe.returncode == 0


@nox.session(python=False)
def images(session: nox.Session) -> None:
    """Build the registry-free test base image (debootstrap from this host's apt mirror)."""
    session.run("bash", "images/test-base.sh", *session.posargs, external=True)
