"""The README's main command, `python3 -m nox -s matrix`, on a host whose GPU stack lives in
a virtual environment: the cells must run with that environment's interpreter.

A "host" venv holds a stand-in `torch` (a package named like the library the repro
imports). nox starts from that venv's interpreter, builds its own venv for repromatrix, and
the cell must import the stand-in (passed, not untestable). With an interpreter that lacks
it, the run is refused in one line before any cell runs.
"""

from __future__ import annotations

import ast
import contextlib
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from clihelpers import ROOT

from repromatrix.model import Status
from repromatrix.store import ResultStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STAND_IN = '__version__ = "0.0.0+standin"\nSTAND_IN = "the host venv\'s stand-in torch"\n'

REPRO = '''\
"""Passes when the stand-in torch of the host venv is what `import torch` finds."""
import argparse, json, os, sys

parser = argparse.ArgumentParser()
parser.add_argument("--out")
parser.add_argument("--params")
args = parser.parse_args()
try:
    import torch
    found = getattr(torch, "STAND_IN", None)
except ImportError as exc:
    found = None
status = "passed" if found else "untestable"
result = {
    "schema": 1,
    "repro": "standin",
    "status": status,
    "reason": f"imported {found} with {sys.executable}" if found else "no torch",
    "metrics": {},
    "thresholds": {},
    "provenance": {
        "executable": sys.executable,
        "path": os.environ.get("PATH", ""),
        "virtual_env": os.environ.get("VIRTUAL_ENV", ""),
    },
}
with open(args.out, "w") as f:
    json.dump(result, f)
sys.exit(0 if found else 125)
'''

MATRIX = """\
schema: 1
gpus:
  H100: {compute_capability: "9.0", smi_names: ["NVIDIA H100 80GB HBM3"]}
repros:
  standin: {script: fixture/standin.py, gpus: [H100], timeout: 120}
"""


def _project(tmp_path: Path) -> Path:
    """A copy of this checkout (what git would clone), so nox's venv, results and reports
    stay inside tmp_path."""
    proj = tmp_path / "proj"
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = ROOT / rel
        if src.is_file():
            dst = proj / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    (proj / "fixture").mkdir()
    (proj / "fixture" / "standin.py").write_text(REPRO)
    (proj / "m.yaml").write_text(MATRIX)
    return proj


def _host_venv(path: Path, *, stand_in: bool) -> Path:
    """A venv of the base interpreter (which has nox), with or without the stand-in."""
    base = getattr(sys, "_base_executable", sys.executable)
    # Without pip: nothing runs the cells' pip here, and ensurepip took 3-5 s a venv.
    subprocess.run(
        [base, "-m", "venv", "--system-site-packages", "--without-pip", str(path)], check=True
    )
    python = path / "bin" / "python"
    if stand_in:
        site = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        pkg = Path(site) / "torch"
        pkg.mkdir()
        (pkg / "__init__.py").write_text(STAND_IN)
        info = Path(site) / "torch-0.0.0+standin.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: torch\nVersion: 0.0.0\n")
    return python


def _nox(
    python: Path,
    proj: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    options: tuple[str, ...] = (),
    envdir: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """`nox -s matrix` in `proj`, with nox's own `options` (`-R`); `extra` after `--` go
    to `repromatrix run` too. nox's venvs in `envdir` (a `Shared` one), else proj/.nox."""
    if envdir is not None:
        options = (*options, "--envdir", str(envdir))
    given = env or {}
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "REPROMATRIX_PYTHON")}
    env.update(given)
    env["REPROMATRIX_FAKE_GPUS"] = "0, NVIDIA H100 80GB HBM3, GPU-fake-0, 9.0"
    env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
    after = [a for a in extra if a != "--"]
    return subprocess.run(
        [str(python), "-m", "nox", *options, "-f", str(proj / "noxfile.py"), "-s", "matrix",
         "--", "--matrix", "m.yaml", "--results", "res", "--cache", "cache", "--no-progress",
         *after],
        cwd=proj,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )  # fmt: skip


@dataclass(frozen=True)
class _Starts:
    """The starts of a venv's interpreter that a `.pth` file logged (pid, parent, argv)."""

    log: Path

    @property
    def env(self) -> dict[str, str]:
        return {"REPROMATRIX_TEST_STARTS": str(self.log)}

    def by_parent_of(self, command: str) -> list[list[str]]:
        """The argv of the starts by the process that started `repromatrix COMMAND` (nox),
        other than the `repromatrix` commands (a venv's lib64 link reads a `.pth` twice)."""
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        starts = {pid: (parent, argv) for pid, parent, argv in map(ast.literal_eval, lines)}
        ours = {pid for pid, (_, argv) in starts.items() if argv[1].endswith("/repromatrix")}
        nox = [p for pid, (p, argv) in starts.items() if pid in ours and argv[2] == command]
        assert len(nox) == 1, starts
        return [a for pid, (p, a) in starts.items() if p == nox[0] and pid not in ours]


@contextlib.contextmanager
def _venv_starts(venv: Path) -> Iterator[_Starts]:
    """Each start of `venv`'s interpreter logged while the context lasts."""
    (site,) = venv.glob("lib/python3*/site-packages")
    pth = site / "_repromatrix_test_starts.pth"
    starts = _Starts(venv.parent / "starts.log")
    pth.write_text(
        "import os, sys; p = os.environ.get('REPROMATRIX_TEST_STARTS'); "
        "p and open(p, 'a').write(repr((os.getpid(), os.getppid(), sys.orig_argv)) + '\\n')\n"
    )
    try:
        yield starts
    finally:
        pth.unlink()


def _has_nox(python: str) -> bool:
    probe = subprocess.run([python, "-c", "import nox"], capture_output=True, check=False)
    return probe.returncode == 0


@dataclass(frozen=True)
class Shared:
    """What the tests of this module share: a host venv with the stand-in, which no test
    changes, and nox's venvs (`--envdir`), so that pandas, pyarrow... are installed into a
    fresh venv once, not once a test (about 20 s each). Each test's project is its own, so
    nox installs repromatrix from it again: what the tests of the install guard still runs
    (each asserts that pip ran), from a venv an earlier session left, as a user's is."""

    host: Path
    envdir: Path


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Shared:
    root = tmp_path_factory.mktemp("nox-shared")
    return Shared(_host_venv(root / "host", stand_in=True), root / ".nox")


@pytest.fixture
def base_with_nox() -> None:
    base = getattr(sys, "_base_executable", sys.executable)
    if not _has_nox(base):
        if os.environ.get("CI"):
            pytest.fail(f"nox is not installed for {base} (.ci/run installs it)")
        pytest.skip(f"nox is not installed for {base}")


@pytest.mark.usefixtures("base_with_nox")
def test_nox_matrix_runs_cells_with_the_interpreter_that_started_nox(
    tmp_path: Path, shared: Shared
) -> None:
    proj = _project(tmp_path)
    host = shared.host
    done = _nox(host, proj, envdir=shared.envdir)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (result,) = ResultStore(proj / "res").load().results
    assert result.status is Status.PASSED, result.reason
    assert result.reason == f"imported the host venv's stand-in torch with {host}"
    assert result.provenance["executable"] == str(host)
    # The cells' interpreter is the host venv, not nox's own venv, which is neither on
    # their PATH nor their VIRTUAL_ENV (a JIT step running `python` or `pip` found nox's) ...
    assert "/.nox/" not in result.provenance["executable"]
    inner = str(shared.envdir)  # this nox's venvs (the test runner's own may be on PATH)
    assert inner not in result.provenance["path"]
    assert inner not in result.provenance["virtual_env"]
    # ... while the host venv's bin/ comes first, as activating it would put it (a cell's
    # `python` and `pip` were another interpreter's when nox was started unactivated).
    assert result.provenance["path"].split(os.pathsep)[0] == str(host.parent)
    assert result.provenance["virtual_env"] == str(host.parent.parent)
    # ... and the report was written from the same results.
    assert (proj / "reports" / "index.html").is_file()

    # A cells' interpreter that is no Python: one line, no traceback (the noxfile's probe
    # of its packages raised JSONDecodeError, CalledProcessError, PermissionError).
    for bogus in ("/bin/true", "/bin/false", str(tmp_path)):
        bad = _nox(host, proj, env={"REPROMATRIX_PYTHON": bogus}, envdir=shared.envdir)
        assert bad.returncode != 0
        assert "Traceback" not in bad.stdout + bad.stderr, bad.stdout[-2000:] + bad.stderr[-2000:]
        assert f"{bogus}" in bad.stdout + bad.stderr

    # --python twice: refused as `run` refuses it (the session passed `run` the last one
    # alone, and the first was dropped in silence).
    twice = _nox(
        host,
        proj,
        "--",
        "--rerun",
        "--python",
        str(host),
        "--python=/nonexistent",
        envdir=shared.envdir,
    )
    assert twice.returncode != 0
    assert "--python given twice; the command takes one" in twice.stdout + twice.stderr
    # --python without a value (`--python $PY` of an unset variable): the session dropped
    # it and ran the cells with the interpreter that started nox, where `run` refuses it.
    no_value = _nox(host, proj, "--", "--rerun", "--python", envdir=shared.envdir)
    assert no_value.returncode != 0
    said = no_value.stdout + no_value.stderr
    assert "--python needs a value: the interpreter cells run with" in said

    # --fail-on that matches: the session fails, and the report is written all the same.
    (proj / "reports" / "index.html").unlink()
    with _venv_starts(shared.envdir / "matrix") as starts:
        failed = _nox(host, proj, "--", "--fail-on", "passed", env=starts.env, envdir=shared.envdir)
    assert failed.returncode != 0
    assert "1 cell(s) ended passed" in failed.stdout + failed.stderr
    assert (proj / "reports" / "index.html").is_file()
    # Nothing changed since the first session installed repromatrix and its extras: pip is
    # not run again (it built and installed the same editable repromatrix each time, 7-10 s).
    assert "pip install" not in failed.stderr, failed.stderr[-3000:]
    assert f"repromatrix is installed from {proj} as pip left it" in failed.stderr
    # ... and nox's venv's interpreter is started by the session twice besides `repromatrix`:
    # its site folders asked, its requirements read once (three scripts had read them: what
    # it missed, then the extras, then its requirements' names again).
    assert [argv[1] for argv in starts.by_parent_of("run")] == ["-c", "-P"]

    # The same front door with an interpreter that lacks the stand-in: refused in one line,
    # before any cell runs.
    bare = _host_venv(tmp_path / "bare", stand_in=False)
    torch = subprocess.run([str(bare), "-c", "import torch"], capture_output=True, check=False)
    if torch.returncode == 0:
        pytest.skip("the base interpreter has torch itself: nothing to refuse")
    before = len(ResultStore(proj / "res").load().results)
    # pyproject.toml changed (its requirements may have): pip installs repromatrix again.
    with (proj / "pyproject.toml").open("a") as f:
        f.write("# edited\n")
    refused = _nox(bare, proj, envdir=shared.envdir)
    assert refused.returncode != 0, refused.stdout[-3000:] + refused.stderr[-3000:]
    assert "pip install -e ." in refused.stderr, refused.stderr[-3000:]
    out = refused.stdout + refused.stderr
    errors = [ln for ln in out.splitlines() if ln.startswith("repromatrix: error:")]
    assert errors == [
        f"repromatrix: error: {bare} cannot import torch, which 1 cell(s) need (e.g. "
        "standin[H100,host]); run them with the interpreter that holds the GPU stack: "
        "--python PATH (nox: start it with that interpreter, or set REPROMATRIX_PYTHON=PATH)"
    ]
    assert "Traceback" not in out
    assert len(ResultStore(proj / "res").load().results) == before  # nothing recorded


@pytest.mark.usefixtures("base_with_nox")
def test_nox_matrix_reports_a_run_that_failed_after_recording(
    tmp_path: Path, shared: Shared
) -> None:
    """A run that records its cells and then fails (here exit 3: a damaged record in the
    results folder; exit 7, an environment that could not be built, ends alike) left
    reports/ as an earlier run wrote it, or without a report at all, though the README
    says `nox -s matrix` writes it: a stale index.html read as the current one. The report
    of what is recorded is written, then the session fails with the run's reason."""
    proj = _project(tmp_path)
    host = shared.host
    (proj / "res").mkdir()
    (proj / "res" / "old.jsonl").write_text('{"schema": 3, "x": 1}\n')  # no record
    done = _nox(host, proj, envdir=shared.envdir)
    out = done.stdout + done.stderr
    assert done.returncode != 0, out[-3000:]
    assert f"1 recorded result could not be read ({proj}/res/old.jsonl:1)" in out, out[-3000:]
    (result,) = ResultStore(proj / "res").load().results
    assert result.status is Status.PASSED, result.reason
    assert (proj / "reports" / "index.html").is_file(), out[-3000:]
    assert "repromatrix run failed (exit 3, above) after recording results" in out, out[-3000:]


def test_the_untestable_reason_names_the_interpreter(tmp_path: Path) -> None:
    """A repro's own "not importable" says which interpreter looked (repros/_repro.py)."""
    script = textwrap.dedent(f"""\
        import sys
        sys.path.insert(0, {str(ROOT / "repros")!r})
        import _repro
        try:
            _repro.import_or_untestable("surely_not_a_module_xyz")
        except _repro.Untestable as exc:
            print(exc)
        """)
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == (
        f"surely_not_a_module_xyz not importable by {sys.executable}: no module named "
        "'surely_not_a_module_xyz' on sys.path"
    )


@pytest.mark.usefixtures("base_with_nox")
def test_relative_paths_after_the_double_dash_are_the_callers(tmp_path: Path) -> None:
    """nox runs in the noxfile's folder: `nox -f ../noxfile.py -s report -- --results res
    --out rep` read the noxfile's res/ (exit 3, "no such file"), where `--python` was
    already taken from the caller's folder. Every path flag is now the caller's."""
    proj = _project(tmp_path)
    caller = tmp_path / "caller"
    (caller / "res").mkdir(parents=True)
    base = getattr(sys, "_base_executable", sys.executable)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "REPROMATRIX_PYTHON")}
    done = subprocess.run(
        [base, "-m", "nox", "-f", str(proj / "noxfile.py"), "-s", "report", "--",
         "--results", "res", "--out=rep", "--matrix", "../proj/m.yaml"],
        cwd=caller, env=env, capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (caller / "rep" / "index.html").is_file()
    assert not (proj / "rep").exists()
    # A folder the user did not name is the noxfile's, and is said so: "written to
    # reports/index.html" named one the caller's folder does not have.
    again = subprocess.run(
        [base, "-m", "nox", "-f", str(proj / "noxfile.py"), "-s", "report", "--",
         "--results", "res", "--matrix", "../proj/m.yaml"],
        cwd=caller, env=env, capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert f"written to {proj / 'reports' / 'index.html'}" in again.stdout + again.stderr
    assert (proj / "reports" / "index.html").is_file()


@pytest.mark.usefixtures("base_with_nox")
def test_nox_matrix_runs_where_the_docker_sdk_cannot_be_installed(
    tmp_path: Path, shared: Shared
) -> None:
    """The README asks an offline host to carry the Docker SDK for `--executor docker`
    only, but `nox -s matrix` installed `.[docker]` and failed ("No matching distribution
    found for docker>=7.0") before any cell, host cells included. The SDK is now
    installed when it can be, as pyarrow is."""
    proj = _project(tmp_path)
    host = shared.host
    no_docker = tmp_path / "constraints.txt"
    no_docker.write_text("docker<0\n")  # as a wheels folder without it: none to install
    done = _nox(host, proj, env={"PIP_CONSTRAINT": str(no_docker)}, envdir=shared.envdir)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "pip install -e ." in done.stderr  # a project of its own: installed under the pin
    (result,) = ResultStore(proj / "res").load().results
    assert result.status is Status.PASSED, result.reason


@pytest.mark.usefixtures("base_with_nox")
def test_nox_matrix_installs_offline_from_every_find_links_folder(
    tmp_path: Path, shared: Shared
) -> None:
    """`nox -s matrix -- --find-links A --find-links B --no-index` gave repromatrix's own
    install only B, the last one, where `run` uses both for the pins: with repromatrix's
    wheels in A, pip found no setuptools (>=77) and the session failed before any cell."""
    proj = _project(tmp_path)
    host = shared.host
    carried = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "-d", str(carried), "setuptools>=77",
         str(ROOT)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    (tmp_path / "empty").mkdir()
    offline = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "", "PIP_CONFIG_FILE": os.devnull}
    links = ("--find-links", str(carried), "--find-links", str(tmp_path / "empty"))
    done = _nox(host, proj, "--", *links, "--no-index", env=offline, envdir=shared.envdir)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "pip install -e ." in done.stderr  # a project of its own: installed offline
    (result,) = ResultStore(proj / "res").load().results
    assert result.status is Status.PASSED, result.reason


@pytest.mark.usefixtures("base_with_nox")
def test_nox_reused_after_the_cells_interpreter_changed_says_what_to_do(
    tmp_path: Path, shared: Shared
) -> None:
    """`nox -R -s matrix` (no install) after REPROMATRIX_PYTHON named another interpreter:
    nox's venv had taken pydantic, packaging... from the first one's packages, and `run`
    ended as "internal error: No module named 'packaging'" (exit 70). The session now says
    what to do in one line; run without -R, it installs them and the cells run."""
    proj = _project(tmp_path)
    host = shared.host
    first = _nox(host, proj, envdir=shared.envdir)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    base = getattr(sys, "_base_executable", sys.executable)
    no_packages = [base, "-m", "venv", "--without-pip", str(tmp_path / "bare")]
    subprocess.run(no_packages, check=True)
    bare = {"REPROMATRIX_PYTHON": str(tmp_path / "bare" / "bin" / "python")}
    reused = _nox(host, proj, "--", "--rerun", env=bare, options=("-R",), envdir=shared.envdir)
    out = reused.stdout + reused.stderr
    assert reused.returncode != 0
    assert "internal error" not in out, out[-3000:]
    assert "nox's venv lacks pydantic" in out, out[-3000:]
    # Said so that it is true too where the same interpreter's packages changed (a
    # Jinja2 excluded installed there), which the line had called another interpreter's.
    assert (
        "an earlier install took them from the cells' interpreter's packages, which changed "
        f"since or are another interpreter's now ({bare['REPROMATRIX_PYTHON']}); "
    ) in out, out[-3000:]
    assert "run `nox -s matrix` once without -R (--no-install) to install them" in out
