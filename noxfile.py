"""Front door of repromatrix: `nox -l` lists the sessions, `nox -s NAME -- ARGS` runs one.

- matrix:  run the matrix on this host, then write the report (posargs go to `run`)
- report:  write reports/ from results/ (posargs go to `report`)
- bisect:  find the first bad / first fixed commit (posargs go to `bisect`)
- tests:   unit + integration tests (Docker and browser tests need an engine / Chromium)
- lint:    ruff and mypy --strict over the package, tests, repros, bench and this file
- bench:   benchmarks; writes bench/results.json
- images:  build the registry-free Debian test base image (needs a Docker engine)
"""

from __future__ import annotations

import os
import shutil
import subprocess

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

# Repros import torch, flashinfer, tensorrt from the host's own Python (an NGC image, a
# system with CUDA wheels): the matrix session's venv must see them, so it inherits the
# interpreter's site-packages instead of installing a second (CPU) torch that would shadow it.
HOST_SITE = ["--system-site-packages"]

# CPU torch for the tests of the trt_sdpa_scale export/ONNX Runtime half (the TorchScript
# exporter, `dynamo=False`, is what TensorRT#4333 is about).
TEST_NUMERICS = ["torch==2.13.0", "onnx", "onnxruntime", "numpy"]


@nox.session(venv_params=HOST_SITE)
def matrix(session: nox.Session) -> None:
    """Run matrix.yaml on this host (cells it cannot run are 'not run here'), then report."""
    session.install("-e", ".[docker,parquet]")
    session.run("repromatrix", "run", *session.posargs)
    session.run("repromatrix", "report")


@nox.session(venv_params=HOST_SITE)
def report(session: nox.Session) -> None:
    """Write reports/index.html (+ summary.md, junit.xml, CSV, Parquet) from results/."""
    session.install("-e", ".[parquet]")
    session.run("repromatrix", "report", *session.posargs)


@nox.session(venv_params=HOST_SITE)
def bisect(session: nox.Session) -> None:
    """Find the commit that introduced (or, with --find-fix, ended) a regression."""
    session.install("-e", ".[docker]")
    session.run("repromatrix", "bisect", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """Unit and integration tests. In CI (CI=true) a missing Docker engine or browser fails."""
    session.install("-e", ".[test]", *TEST_NUMERICS)
    args = session.posargs or ["tests"]
    session.run(
        "python",
        "-m",
        "pytest",
        "-W",
        "error",
        "-p",
        "no:cacheprovider",
        *args,
        env={"PYTHONDONTWRITEBYTECODE": "1"},
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint + format check) and mypy --strict."""
    # torch & co. too: mypy checks the repros against their real types, not Any.
    session.install("-e", ".[lint,test]", *TEST_NUMERICS)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session(venv_params=HOST_SITE)
def bench(session: nox.Session) -> None:
    """Benchmarks (report size/time/memory, Docker overhead, bisect rounds) → bench/results.json."""
    session.install("-e", ".[test,docker,parquet]")
    out = os.path.join("bench", "results.json")
    session.run("python", "bench/bench_report.py", "--out", out)
    session.run("python", "bench/bench_bisect.py", "--out", out)
    if _docker_engine_reachable():
        session.run("python", "bench/bench_docker.py", "--out", out)
    else:
        session.warn("no Docker engine reachable: bench_docker skipped")


def _docker_engine_reachable() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, check=False)
    return probe.returncode == 0


@nox.session(python=False)
def images(session: nox.Session) -> None:
    """Build the registry-free test base image (debootstrap from this host's apt mirror)."""
    session.run("bash", "images/test-base.sh", *session.posargs, external=True)
