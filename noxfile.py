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
- lint:    ruff and mypy --strict over the package, tests, repros, bench and this file
- bench:   benchmarks; writes bench/results.json
- images:  build the registry-free Debian test base image (needs a Docker engine)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import nox

nox.options.sessions = ["tests"]


def _pass_on(signum: int, frame: object) -> None:
    """SIGTERM or SIGHUP to nox alone (a CI runner cancelling its job, `kill <nox>`) ended
    nox at once and left the command it ran going on unattended (`repromatrix run`, its
    workers and cells, holding the results folder). The command gets the signal too, and
    nox then waits for it as for Ctrl-C (see `_repromatrix`)."""
    for child in _children(os.getpid()):
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signum)
    raise KeyboardInterrupt


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc; none where there is no /proc)."""
    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if len(fields) > 1 and fields[1] == str(pid):
                found.append(int(entry))
    return found


for _signal in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(_signal, _pass_on)


def _repromatrix(session: nox.Session, *args: str) -> None:
    """`repromatrix ARGS` in the session. Stopped (Ctrl-C, or SIGTERM passed on), it kills
    its cells and containers and keeps finished results: nox waits a minute for that, then
    30 s after its own SIGTERM, before SIGKILL (nox's 0.3 s and 0.2 s cut it short)."""
    session.run("repromatrix", *args, interrupt_timeout=60.0, terminate_timeout=30.0)


nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

# CPU torch for the tests of the trt_sdpa_scale export/ONNX Runtime half (the TorchScript
# exporter, `dynamo=False`, is what TensorRT#4333 is about).
TEST_NUMERICS = ["torch==2.13.0", "onnx", "onnxruntime", "numpy"]


@nox.session
def matrix(session: nox.Session) -> None:
    """Run matrix.yaml on this host (cells it cannot run are 'not run here'), then report."""
    python = _cells_python(session)
    _install(session, python, ".", optional={**_DOCKER, **_PARQUET})
    args = _with_python(_args(session), python)
    if "-h" in args or "--help" in args:
        _repromatrix(session, "run", *args)
        return
    report = _named(session, _shared(_args(session)), results="results", out="reports")
    run = _named(session, args, results="results")
    before = _records_state(_posarg(run, "--results") or "results")
    try:
        _repromatrix(session, "run", *run)
    except nox.command.CommandFailed as exc:
        if exc.return_code == 1:
            # Cells ended as --fail-on names: the report still shows them, then it fails.
            _repromatrix(session, "report", *report)
            session.error("cells ended as --fail-on names them (above); reports/ is written")
        if _records_state(_posarg(run, "--results") or "results") == before:
            raise  # nothing recorded (a usage error, a busy folder...): nothing new to report
        # Records made before the run failed (exit 3: a damaged record; 7: an environment
        # not built; 2, 5, 8: stopped midway) are reported, as any run's are: reports/ was
        # left as an earlier run wrote it, read as this run's.
        written = "reports/ is written from them"
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


def _records_state(results: str) -> dict[str, tuple[int, int]]:
    """Size and modification time of each results file (`*.jsonl`) under `results`: what
    tells a run that recorded something from one that stopped before it."""
    state = {}
    for root, _dirs, files in os.walk(results):
        for name in files:
            if name.endswith(".jsonl"):
                path = os.path.join(root, name)
                with contextlib.suppress(OSError):
                    st = os.stat(path)
                    state[path] = (st.st_size, st.st_mtime_ns)
    return state


@nox.session
def report(session: nox.Session) -> None:
    """Write reports/index.html (+ summary.md, junit.xml, CSV, Parquet) from results/."""
    # No cell runs: nox's own interpreter's packages do (not REPROMATRIX_PYTHON's).
    _install(session, sys.executable, ".", optional=_PARQUET)
    _repromatrix(
        session, "report", *_named(session, _args(session), results="results", out="reports")
    )


@nox.session
def bisect(session: nox.Session) -> None:
    """Find the commit that introduced (or, with --find-fix, ended) a regression."""
    python = _cells_python(session)
    _install(session, python, ".", optional=_DOCKER)
    _repromatrix(session, "bisect", *_with_python(_args(session), python))


#: Flags whose values are paths (`--git-mirror NAME=PATH`: its PATH).
_PATH_FLAGS = (
    "--matrix", "--results", "--cache", "--out", "--readme", "--compare", "--markdown",
    "--find-links", "--git-mirror",
)  # fmt: skip


def _args(session: nox.Session) -> list[str]:
    """The posargs with relative paths made the caller's: nox runs in the noxfile's folder,
    so `nox -f ../noxfile.py -s report -- --results res` read ../res (`--python` is
    resolved on its own, see `_cells_python`)."""
    out: list[str] = []
    flag = ""
    for arg in session.posargs:
        name, eq, value = arg.partition("=")
        if flag and not arg.startswith("-"):  # `--results --rerun`: the command says so
            out.append(_caller_path(session, flag, arg))
            flag = ""
            continue
        flag = arg if arg in _PATH_FLAGS else ""
        if eq and name in _PATH_FLAGS:
            out.append(f"{name}={_caller_path(session, name, value)}")
        else:
            out.append(arg)
    return out


def _named(session: nox.Session, args: list[str], **defaults: str) -> list[str]:
    """`args` with each folder of `defaults` (`results="results"`: `--results`) that they
    do not give named by its absolute path when nox was started in another folder than
    the noxfile's: the defaults are the noxfile's folder's, and "results in results/" or
    "written to reports/index.html" named a folder the caller's does not have."""
    if os.path.realpath(session.invoked_from) == os.path.realpath(os.getcwd()):
        return args
    named = list(args)
    for name, folder in defaults.items():
        if _posarg(args, f"--{name}") is None:
            named += [f"--{name}", os.path.abspath(folder)]
    return named


def _caller_path(session: nox.Session, flag: str, value: str) -> str:
    name, eq, path = value.partition("=") if flag == "--git-mirror" else ("", "", value)
    if flag == "--git-mirror" and not eq:
        return value  # not NAME=PATH: `run` says so
    if path and not os.path.isabs(path) and "://" not in path:
        path = os.path.join(session.invoked_from, path)
    return f"{name}={path}" if eq else path


def _posarg(args: list[str], flag: str) -> str | None:
    """The value of `--flag V` or `--flag=V` among the posargs, if given; the last one
    when given twice (the command refuses a second one of a flag that takes one)."""
    found = _posargs(args, flag)
    return found[-1] if found else None


def _posargs(args: list[str], flag: str) -> list[str]:
    """Every value of `--flag V` or `--flag=V` among the posargs, in order."""
    found = []
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            found.append(args[i + 1])
        elif arg.startswith(flag + "="):
            found.append(arg.split("=", 1)[1])
    return found


def _cells_python(session: nox.Session) -> str:
    """The interpreter cells run with: --python, else REPROMATRIX_PYTHON, else the one
    running nox (the noxfile runs in it) — as given, never resolved through symlinks, which
    would leave a venv for its base interpreter and lose the venv's torch."""
    if len(_posargs(session.posargs, "--python")) > 1:
        # `run` refuses a second one; this session passes it one, and dropped the other.
        session.error("--python given twice; the command takes one, keep it")
    if session.posargs and session.posargs[-1] == "--python":
        # `--python $PY` of an unset variable: `run` refuses it, but this session dropped it.
        session.error("--python needs a value: the interpreter cells run with (a path)")
    given = _posarg(session.posargs, "--python")
    where = "--python" if given else "REPROMATRIX_PYTHON"
    python = given or os.environ.get("REPROMATRIX_PYTHON") or sys.executable
    found = shutil.which(python) if os.sep not in python else python
    if found is not None and not os.path.isabs(found):
        # nox runs in the noxfile's folder: a relative path is the caller's.
        found = os.path.join(session.invoked_from, found)
    if found is None or not os.path.isfile(found) or not os.access(found, os.X_OK):
        session.error(
            f"cells' interpreter {python} ({where}) is not an executable file: pass "
            "--python PATH or REPROMATRIX_PYTHON=PATH of the Python with the GPU stack"
        )
    return os.path.abspath(found)


def _with_python(args: list[str], python: str) -> list[str]:
    """`args` with `--python` as the path checked here (absolute: a relative one was
    the caller's folder's, and the command runs in the noxfile's)."""
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--python":
            skip = True
        elif not arg.startswith("--python="):
            kept.append(arg)
    return ["--python", python, *kept]


def _shared(args: list[str]) -> list[str]:
    """The posargs `report` shares with `run` (the matrix, where results and mirrors are)."""
    out: list[str] = []
    for flag in ("--matrix", "--results", "--cache"):
        value = _posarg(args, flag)
        if value:
            out += [flag, value]
    return out


#: What a session installs when it can, and what is lost without it. The Docker SDK too:
#: `.[docker]` failed the session on an offline host that carried no docker wheel, host
#: cells included, where the README asks for it for `--executor docker` only.
_DOCKER = {"docker>=7.0": "--executor docker (and image bases under auto) is unavailable"}
_PARQUET = {"pyarrow>=14": "results.parquet is not written"}


def _install(
    session: nox.Session, python: str, target: str, *, optional: dict[str, str] | None = None
) -> None:
    """Install repromatrix (editable) into nox's venv, seeing `python`'s packages first."""
    # pip refused it only after pages of setuptools output; nox may run on an older Python.
    if sys.version_info < (3, 11):  # noqa: UP036
        session.error(
            f"nox runs on Python {sys.version.split()[0]}; repromatrix needs 3.11 or newer "
            "(cells need 3.10): start nox with a newer python3 and name the cells' "
            f"interpreter, e.g. REPROMATRIX_PYTHON={sys.executable} python3.11 -m nox -s matrix"
        )
    _see_packages_of(session, python)
    pip_args = []
    # Every folder given, as `run` takes them for the pins (the last alone missed
    # repromatrix's own wheels carried in another).
    for links in _posargs(_args(session), "--find-links"):
        pip_args += ["--find-links", links]
    if "--no-index" in session.posargs:
        pip_args.append("--no-index")
    # pip took 7-10 s a session to build and install the same editable repromatrix again
    # (and 2 s an extra to find it there): it runs when something is not as it left it.
    stamp = os.path.join(_venv_location(session), "repromatrix-install.txt")
    folder = os.path.abspath(target)
    installed = _digest(os.path.join(folder, "pyproject.toml"), folder)
    if _unmet(session, [], target=folder, stamp=stamp, installed=installed):
        if os.path.exists(stamp):
            os.remove(stamp)
        session.install("-e", target, *pip_args)
        # Skipped by nox as the install is (-R): the stamp says what pip installed.
        session.run_install("python", "-c", _STAMP, stamp, installed, silent=True)
    else:
        session.log(f"repromatrix is installed from {folder} as pip left it: not installed again")
    wanted = optional or {}
    unmet = _unmet(session, list(wanted)) if wanted else []
    for extra, lost in wanted.items():
        if extra not in unmet:
            continue
        # Worth having, not worth failing a run for (offline hosts).
        session.run_install(
            "python", "-m", "pip", "install", extra, *pip_args, success_codes=[0, 1], silent=True
        )
        module = extra.split(">")[0].split("=")[0]
        probe = [_venv_python(session), "-c", f"import {module}"]
        if subprocess.run(probe, check=False, capture_output=True).returncode != 0:
            session.warn(f"{extra} could not be installed: {lost}")
    _check_requirements(session, python)


def _digest(*parts: str) -> str:
    """What repromatrix is installed from: pyproject.toml's bytes (its requirements, entry
    points) and the folder (the editable install's), as one SHA-256."""
    h = hashlib.sha256()
    with contextlib.suppress(OSError), open(parts[0], "rb") as f:
        h.update(f.read())
    for part in parts[1:]:
        h.update(b"\0" + part.encode())
    return h.hexdigest()


_STAMP = "import sys; open(sys.argv[1], 'w').write(sys.argv[2])"

#: The requirements among argv that nox's venv does not meet (version and markers
#: weighed), as a JSON list. With no requirement given: repromatrix's own, and
#: "repromatrix" when it is not installed editable from TARGET with STAMP reading INSTALLED.
_UNMET = """\
import importlib.metadata as m, json, os, sys
from pathlib import Path
def unmet(needs):
    try:
        from packaging.requirements import Requirement
    except ImportError:
        return needs or ["repromatrix"]
    if not needs:
        names = ("TARGET", "STAMP", "INSTALLED")
        target, stamp, installed = (os.environ["REPROMATRIX_" + k] for k in names)
        try:
            url = json.loads(m.distribution("repromatrix").read_text("direct_url.json") or "{}")
            with open(stamp) as f:
                same = f.read() == installed
        except (m.PackageNotFoundError, OSError, ValueError):
            return ["repromatrix"]
        editable = url.get("dir_info", {}).get("editable")
        if not same or not editable or url.get("url") != Path(target).as_uri():
            return ["repromatrix"]
        needs = m.requires("repromatrix") or []
    left = []
    for need in needs:
        req = Requirement(need)
        if req.marker and not req.marker.evaluate({"extra": ""}):
            continue
        try:
            have = m.version(req.name)
        except m.PackageNotFoundError:
            have = None
        if have is None or not req.specifier.contains(have, prereleases=True):
            left.append(need)
    return left
print(json.dumps(unmet(sys.argv[1:])))
"""


def _unmet(
    session: nox.Session, needs: list[str], target: str = "", stamp: str = "", installed: str = ""
) -> list[str]:
    """Which of `needs` (none: repromatrix as `_install` leaves it) nox's venv does not
    meet; all of them when it cannot tell."""
    env = {**os.environ, "REPROMATRIX_TARGET": target, "REPROMATRIX_STAMP": stamp}
    env["REPROMATRIX_INSTALLED"] = installed
    done = subprocess.run(
        [_venv_python(session), "-c", _UNMET, *needs],
        check=False,
        capture_output=True,
        text=True,
        env=env,
    )
    try:
        unmet = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        unmet = ["?"]
    return [str(need) for need in unmet] or ([] if done.returncode == 0 else ["?"])


#: The distributions repromatrix's metadata requires (extras left out) that nox's venv
#: cannot find, as a JSON list (["repromatrix"] when it is not installed at all).
_MISSING = """\
import importlib.metadata as m, json, re
try:
    needs = [r for r in m.requires("repromatrix") or [] if "extra ==" not in r]
except m.PackageNotFoundError:
    needs = ["repromatrix"]
missing = []
for need in needs:
    name = re.match(r"[A-Za-z0-9._-]+", need).group()
    try:
        m.distribution(name)
    except m.PackageNotFoundError:
        missing.append(name)
print(json.dumps(missing))
"""


def _check_requirements(session: nox.Session, python: str) -> None:
    """Fail in one line when nox's venv lacks what repromatrix needs. `nox -R` (no
    install) after a change of the cells' interpreter: pip had taken pydantic, packaging...
    from the packages of the one named then, the .pth now names another's, and `run` ended
    as an internal error ("No module named 'packaging'", exit 70)."""
    done = subprocess.run(
        [_venv_python(session), "-c", _MISSING], check=False, capture_output=True, text=True
    )
    try:
        missing = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        missing = ["repromatrix"]
    again = f"run `nox -s {session.name}` once without -R (--no-install) to install them"
    if missing == ["repromatrix"]:
        session.error(f"nox's venv has no repromatrix installed; {again.replace('them', 'it')}")
    if missing:
        session.error(
            f"nox's venv lacks {', '.join(missing)}, which repromatrix needs: an earlier "
            f"install took them from another interpreter's packages, and {python} (the "
            f"cells' interpreter now) lacks them; {again}"
        )


def _venv_location(session: nox.Session) -> str:
    location = getattr(session.virtualenv, "location", None)
    assert isinstance(location, str), "the session has a virtualenv"
    return location


def _venv_python(session: nox.Session) -> str:
    return os.path.join(_venv_location(session), "bin", "python")


def _see_packages_of(session: nox.Session, python: str) -> None:
    """Let nox's venv import what the cells' interpreter has (pandas, pydantic, ...), so a
    GPU host installs only what it lacks. A `.pth` file, not --system-site-packages: for
    an interpreter that is itself a venv, "system" means its *base* interpreter, whose
    site-packages lack the venv's packages. Skipped across Python versions (compiled
    packages of another version would not load)."""
    probe = (
        "import json, sys, sysconfig; print(json.dumps({'v': list(sys.version_info[:2]), "
        "'p': [p for p in sys.path if p.endswith(('site-packages', 'dist-packages'))], "
        "'own': [sysconfig.get_path('purelib'), sysconfig.get_path('platlib')]}))"
    )
    try:
        out = subprocess.run(
            [python, "-c", probe], check=True, capture_output=True, text=True, timeout=120
        )
        theirs = json.loads(out.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        session.error(
            f"{python} is not a Python that runs (asked for its packages): pass "
            "--python PATH or REPROMATRIX_PYTHON=PATH of the Python with the GPU stack"
        )
    # The venv's own site directories, not its sys.path: that holds what the .pth of an
    # earlier run of this session added.
    ours = session.run("python", "-c", probe, silent=True)
    assert isinstance(ours, str)
    mine = json.loads(ours.strip().splitlines()[-1])
    pth = os.path.join(mine["own"][0], "_repromatrix_cells_python.pth")
    try:
        if theirs["v"] != mine["v"]:
            version = ".".join(map(str, theirs["v"]))
            session.log(f"{python} is Python {version}; nox's venv installs its own packages")
            if os.path.exists(pth):
                os.remove(pth)  # an earlier run's, of another interpreter
            return
        with open(pth, "w") as f:
            f.write("".join(f"{p}\n" for p in theirs["p"] if p not in mine["own"]))
    except OSError as exc:
        session.error(f"cannot write {pth} ({exc.strerror}): nox's venv must be writable")


@nox.session
def tests(session: nox.Session) -> None:
    """Unit and integration tests. In CI (CI=true) a missing Docker engine or browser fails."""
    session.install("-e", ".[test,ray]", *TEST_NUMERICS)
    pytest = ["python", "-m", "pytest", "-W", "error", "-p", "no:cacheprovider"]
    env = {"PYTHONDONTWRITEBYTECODE": "1"}
    # Compiled once, here: under PYTHONDONTWRITEBYTECODE every `python -m repromatrix`,
    # worker and cell the tests start compiled the package from source again (a fresh
    # clone has no __pycache__): ~0.1 s of CPU a process, a quarter of the CLI tests'.
    # The variable stays, so the tests write no bytecode beside anything else.
    session.run("python", "-m", "compileall", "-q", "src", silent=True)
    if session.posargs:
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
