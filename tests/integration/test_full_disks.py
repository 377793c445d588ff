"""Disks that fill in ways a byte count does not show: no inodes left, a full disk met by
the first folder a command makes, a results disk with room for a check but not for the
notes of a whole matrix. Real tmpfs mounts (root only, as CI runs)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from clihelpers import CliRunner, write_matrix

from repromatrix.store import ResultStore

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def _tmpfs(where: Path, options: str) -> Iterator[Path]:
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("the full-disk tests mount a tmpfs and need root in CI")
        pytest.skip("mounting a tmpfs needs root")
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _use_up_inodes(disk: Path, leave: int = 0) -> None:
    """Make empty files on `disk` until it takes no more, then remove `leave` of them."""
    made = []
    with contextlib.suppress(OSError):
        for i in range(100_000):
            (disk / f"f{i}").touch()
            made.append(disk / f"f{i}")
    for path in made[-leave:] if leave else []:
        path.unlink()


def test_a_report_whose_staging_folder_finds_the_disk_full_exits_10(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """The check before loading passed (one inode left: its test file came and went), then
    `--out`'s folder took the last one and the staging folder found none: that was
    'internal error: OSError: [Errno 28] No space left on device' (exit 70)."""
    matrix = write_matrix(tmp_path / "m.yaml", {"p": "script: {fx}/pass_repro.py, gpus: [cpu]"})
    run = run_cli("--matrix", str(matrix), "run", "--no-progress", "--results", "res")
    assert run.returncode == 0, run.stderr
    with _tmpfs(tmp_path / "disk", "size=1m,nr_inodes=64") as disk:
        _use_up_inodes(disk, leave=1)
        out = run_cli("report", "--results", "res", "--out", str(disk / "report"))
        assert out.returncode == 10, out.stderr
        (line,) = out.stderr.splitlines()
        assert line.startswith(f"repromatrix: error: --out {disk / 'report'}: writing the report")
        assert "No space left on device" in line
        assert line.endswith("free some space or pass another folder")


def test_not_run_notes_that_do_not_fit_stop_the_run_with_exit_8(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """The results disk had the 64 KiB the check asks for, but not room for the notes of
    300 cells needing a GPU this host lacks: 'internal error: OSError: [Errno 28] No space
    left on device' (exit 70)."""
    gpus = "gpus:\n  H100: {compute_capability: '9.0', smi_names: [NVIDIA H100 80GB HBM3]}\n"
    repros = {f"g{i:03d}": f"script: {{fx}}/pass_repro.py, gpus: [H100], params: {{i: {i}}}"
              for i in range(300)}  # fmt: skip
    repros["c"] = "script: {fx}/pass_repro.py, gpus: [cpu]"
    matrix = write_matrix(tmp_path / "m.yaml", repros, extra=gpus)
    with _tmpfs(tmp_path / "disk", "size=160k") as disk:
        results = disk / "res"
        out = run_cli("--matrix", str(matrix), "run", "--no-progress", "--results", str(results))
        assert out.returncode == 8, out.stderr
        (line,) = out.stderr.splitlines()
        assert line.startswith("repromatrix: error: the 'not run here' notes of 300 cell(s)")
        assert f"could not be stored in {results}/" in line
        assert line.endswith("no cell was run: make room or grant access there, then run again")
        assert (results / ResultStore(results).path.name).read_bytes() == b""  # nothing cut


@pytest.mark.parametrize(
    "mode", [pytest.param([], id="worker"), pytest.param(["--isolate"], id="isolate")]
)
@pytest.mark.parametrize("inodes", [16, 32])  # 16: the worker's log is the file not made
def test_a_cache_out_of_inodes_stops_the_run_and_records_no_false_error(
    tmp_path: Path, run_cli: CliRunner, mode: list[str], inodes: int
) -> None:
    """Bytes to spare, no file to make: the repro could not write its result JSON (or the
    worker its log) and the cell was recorded as an error ('exited 1 but wrote no result
    JSON', 'worker: [Errno 28] …') that the next run reused instead of running it."""
    repros = {f"r{i}": f"script: {{fx}}/pass_repro.py, gpus: [cpu], params: {{i: {i}}}"
              for i in range(10)}  # fmt: skip
    matrix = write_matrix(tmp_path / "m.yaml", repros)
    with _tmpfs(tmp_path / "disk", f"size=50m,nr_inodes={inodes}") as disk:
        argv = ["--matrix", str(matrix), "run", "--no-progress", "--results", "res", *mode]
        argv += ["--cache", str(disk / "cache")]
        out = run_cli(*argv)
        assert out.returncode == 8, out.stdout + out.stderr
        errors = [ln for ln in out.stderr.splitlines() if ln.startswith("repromatrix: error:")]
        assert len(errors) == 1
        assert "No space left on device" in errors[0]
        kept = ResultStore(tmp_path / "res").load().results
        assert {r.status.value for r in kept} <= {"passed"}
        assert len(kept) < 10

        subprocess.run(["mount", "-o", "remount,nr_inodes=10000", str(disk)], check=True)
        again = run_cli(*argv)
        assert again.returncode == 0, again.stderr
        assert f"{10 - len(kept)} passed, {len(kept)} reused" in again.stderr
    final = ResultStore(tmp_path / "res").load().results
    assert sorted(r.cell_id for r in final) == sorted(f"r{i}[cpu,host]" for i in range(10))


def _big_wheel(folder: Path, version: str) -> None:
    """A wheel of `bigpkg` holding 2 MB that do not compress."""
    dist, files = f"bigpkg-{version}.dist-info", {"bigpkg/__init__.py": b"X = 1\n"}
    files["bigpkg/blob.bin"] = os.urandom(2_000_000)
    meta = f"Metadata-Version: 2.1\nName: bigpkg\nVersion: {version}\n"
    files[f"{dist}/METADATA"] = meta.encode()
    files[f"{dist}/WHEEL"] = b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    lines = [f"{name},sha256={_digest(data)},{len(data)}" for name, data in files.items()]
    files[f"{dist}/RECORD"] = ("\n".join([*lines, f"{dist}/RECORD,,"]) + "\n").encode()
    with zipfile.ZipFile(folder / f"bigpkg-{version}-py3-none-any.whl", "w") as whl:
        for name, data in files.items():
            whl.writestr(name, data)


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def test_an_environment_pip_cannot_unpack_for_want_of_room_is_no_cells_error(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """pip unpacks into the temporary folder (TMPDIR): with that full, every cell of a pin
    was recorded as 'error: environment: pip could not install …: [Errno 28] No space
    left on device', the run ended 0, and later runs reused those errors."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for version in ("1.0", "1.1"):
        _big_wheel(wheels, version)
    libraries = "libraries:\n  bigpkg: {pypi: bigpkg, import: bigpkg, versions: ['1.0', '1.1']}\n"
    repro = "script: {fx}/pass_repro.py, gpus: [cpu], libraries: {bigpkg: all}"
    matrix = write_matrix(tmp_path / "m.yaml", {"p": repro}, extra=libraries)
    argv = ["--matrix", str(matrix), "run", "--no-progress", "--results", "res"]
    argv += ["--find-links", str(wheels), "--no-index"]
    with _tmpfs(tmp_path / "tmp", "size=1m") as tmp:
        out = run_cli(*argv, env={"TMPDIR": str(tmp)})
        assert out.returncode == 8, out.stdout + out.stderr
        (line,) = [ln for ln in out.stderr.splitlines() if ln.startswith("repromatrix: error:")]
        assert "could not run: No space left on device (environment: pip could not" in line
        assert f"or the temporary folder ({tmp})" in line
        assert ResultStore(tmp_path / "res").load().results == ()  # no cell blamed

        subprocess.run(["mount", "-o", "remount,size=20m", str(tmp)], check=True)
        again = run_cli(*argv, env={"TMPDIR": str(tmp)})
        assert again.returncode == 0, again.stderr
    statuses = [r.status.value for r in ResultStore(tmp_path / "res").load().results]
    assert statuses == ["passed", "passed"]


@pytest.mark.parametrize("where", ["res", "new/res"])  # the folder there, or made by the run
def test_a_results_disk_out_of_inodes_asks_for_room_not_a_writable_folder(
    tmp_path: Path, run_cli: CliRunner, where: str
) -> None:
    """The folder was writable; its disk had no inode left for the lock file (or the
    folder): 'pass a writable folder' sent the user looking for a permission."""
    matrix = write_matrix(tmp_path / "m.yaml", {"p": "script: {fx}/pass_repro.py, gpus: [cpu]"})
    with _tmpfs(tmp_path / "disk", "size=1m,nr_inodes=16") as disk:
        (disk / "res").mkdir()
        _use_up_inodes(disk)
        results = disk / where
        out = run_cli("--matrix", str(matrix), "run", "--no-progress", "--results", str(results))
    assert out.returncode == 8, out.stderr
    (line,) = out.stderr.splitlines()
    assert line.startswith(f"repromatrix: error: --results {results}: "), line
    assert "No space left on device" in line, line
    assert line.endswith("make room there, or pass another results folder"), line


def test_a_repro_whose_output_fills_the_cache_leaves_room_for_the_next_run(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A repro printing 22 MB to stderr onto a 1 MiB cache stopped the run with exit 8, and
    its log, left whole, kept the disk full: every later run, of any cell, stopped the same
    way. Its logs are now cut to their tails, and the message says so and what to do."""
    flood = tmp_path / "flood.py"
    flood.write_text('import sys\nsys.stderr.write(("x" * 1023 + "\\n") * 22 * 1024)\n')
    repros = {
        "flood": f"script: {flood}, gpus: [cpu]",
        "ok": "script: {fx}/pass_repro.py, gpus: [cpu]",
    }
    matrix = write_matrix(tmp_path / "m.yaml", repros)
    with _tmpfs(tmp_path / "disk", "size=1m") as disk:
        argv = ["--matrix", str(matrix), "run", "--no-progress", "--results", "res"]
        argv += ["--cache", str(disk / "cache")]
        out = run_cli(*argv, "--repro", "flood")
        assert out.returncode == 8, out.stderr
        assert "Traceback" not in out.stderr
        assert "the cell's own logs held" in out.stderr
        assert "needs a --cache with more room" in out.stderr
        (log,) = (disk / "cache" / "runs").glob("*/*/stderr.log")
        assert log.stat().st_size < 70 * 1024
        assert log.read_text().startswith("[repromatrix: the first ")
        assert ResultStore(tmp_path / "res").load().results == ()  # no verdict on the cell
        again = run_cli(*argv, "--repro", "ok")
        assert again.returncode == 0, again.stderr
        assert "1 passed" in again.stderr


def test_a_cut_record_that_a_full_disk_keeps_from_being_set_aside_leaves_no_torn_file(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A killed run's cut last record on a results disk with no room left: the next run
    could not set it aside, and left an empty `vm.jsonl.torn` beside it, which a user
    reads as the place the record went. Now nothing is left, the record stays where it
    was, and a run once there is room sets it aside."""
    matrix = write_matrix(tmp_path / "m.yaml", {"p": "script: {fx}/pass_repro.py, gpus: [cpu]"})
    with _tmpfs(tmp_path / "disk", "size=1m") as disk:
        argv = ["--matrix", str(matrix), "run", "--no-progress", "--results", str(disk / "res")]
        assert run_cli(*argv).returncode == 0
        (stored,) = (disk / "res").glob("*.jsonl")
        whole = stored.read_bytes()
        with stored.open("ab") as f:
            f.write(whole[:300])  # a run killed while writing its record
        with contextlib.suppress(OSError), (disk / "filler").open("wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
        full = run_cli(*argv)
        assert "Traceback" not in full.stderr
        assert (
            f"{stored}: its last record, cut short by a killed run, could not be set aside "
            "now (No space left on device): it stays where it is, left out; make room there"
        ) in full.stderr
        assert not stored.with_name(stored.name + ".torn").exists(), full.stderr
        assert stored.read_bytes() == whole + whole[:300]
        (disk / "filler").unlink()
        again = run_cli(*argv)
    assert again.returncode == 0, again.stderr
    assert "was moved to" in again.stderr


@pytest.mark.parametrize("no_bytecode", ["1", ""], ids=["PYTHONDONTWRITEBYTECODE", "bytecode"])
def test_a_worker_started_on_a_full_cache_disk_leaves_no_cut_bytecode_behind(
    tmp_path: Path, run_cli: CliRunner, no_bytecode: str
) -> None:
    """CPython writes a .pyc with one write() and takes a short one as whole: a worker that
    started with one page left on the cache's disk put a cut .pyc of its own code in its
    copy under the cache, and every later worker of every later run, once the disk had
    room again, failed to import it ('the worker exited (1) before connecting'): each cell
    an error record, which later runs reused, and exit 0."""
    matrix = write_matrix(tmp_path / "m.yaml", {"w": "script: {fx}/worker_repro.py, gpus: [cpu]"})
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": no_bytecode}
    argv = ["--matrix", str(matrix), "run", "--no-progress", "--results", "res", "--rerun"]
    with _tmpfs(tmp_path / "disk", "size=4m") as disk:
        assert run_cli(*argv, "--cache", str(disk), env=env).returncode == 0
        (program,) = (disk / "workers").glob("program-*/worker_main.py")
        shutil.rmtree(program.parent / "__pycache__", ignore_errors=True)  # a first start
        filler = disk / "filler"
        with contextlib.suppress(OSError), filler.open("wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
        os.truncate(filler, filler.stat().st_size - 4096)  # one page left: a short write
        # Started as the harness starts it, with no socket to reach: its imports are what
        # this is about, and each of its files' bytecode is larger than a page.
        subprocess.run([sys.executable, str(program)], env=env, capture_output=True, check=False)
        filler.unlink()
        run = run_cli(*argv, "--cache", str(disk), env=env)
    assert run.returncode == 0, run.stderr
    records = ResultStore(tmp_path / "res").load().results
    assert [r.status for r in records] == ["passed", "passed"], records[-1].reason


def test_a_library_imported_on_a_full_cache_disk_leaves_no_cut_bytecode_in_its_environment(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """Environments are installed without bytecode, so a cell's first import of a pinned
    library wrote it, with CPython's one write(): on a cache disk with a few pages left the
    library's .pyc was cut, and once the disk had room again every cell of that
    environment, in every later run, was an error record ('EOFError: marshal data too
    short'), exit 0, until `clean --envs`. Its bytecode is now written whole at the build."""
    src = tmp_path / "tinybig"
    (src / "tinylib").mkdir(parents=True)
    line = "def f{0}(x):\n    return x + {0} * 2 - len('" + "a" * 50 + "')\n"
    funcs = "".join(line.format(i) for i in range(800))
    (src / "tinylib" / "__init__.py").write_text("VALUE = 1.0\n" + funcs)  # bytecode > 8 KiB
    (src / "pyproject.toml").write_text(
        "[build-system]\nrequires = ['setuptools']\nbuild-backend = 'setuptools.build_meta'\n"
        "[project]\nname = 'tinylib'\nversion = '1.0'\n[tool.setuptools]\npackages = ['tinylib']\n"
    )
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*pip, "-w", str(wheels), str(src)], check=True, capture_output=True)
    extra = "libraries:\n  tinylib: {pypi: tinylib, import: tinylib, versions: ['1.0']}\n"
    (tmp_path / "t.py").write_text(
        "def run(params):\n    import tinylib\n    return {'schema': 1, 'repro': 't', "
        "'status': 'passed', 'reason': f'VALUE {tinylib.VALUE}', 'metrics': {}, "
        "'thresholds': {}, 'params': {}, 'provenance': {}}\n"
    )
    body = f"script: {tmp_path / 't.py'}, gpus: [cpu], needs: [], libraries: {{tinylib: all}}"
    matrix = write_matrix(tmp_path / "m.yaml", {"t": body}, extra=extra)
    argv = ["--matrix", str(matrix), "run", "--no-progress", "--results", "res", "--rerun",
            "--find-links", str(wheels), "--no-index"]  # fmt: skip
    with _tmpfs(tmp_path / "disk", "size=8m") as disk:
        argv += ["--cache", str(disk)]
        built = run_cli(*argv, env={"PYTHONDONTWRITEBYTECODE": "1"})
        assert built.returncode == 0, built.stderr
        filler = disk / "filler"
        with contextlib.suppress(OSError), filler.open("wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
        os.truncate(filler, filler.stat().st_size - 8192)  # two pages left
        full = run_cli(*argv, env={"PYTHONDONTWRITEBYTECODE": ""})
        assert "Traceback" not in full.stderr
        filler.unlink()
        again = run_cli(*argv, env={"PYTHONDONTWRITEBYTECODE": ""})
    assert again.returncode == 0, again.stderr
    last = ResultStore(tmp_path / "res").load().results[-1]
    assert last.status == "passed", last.reason


@pytest.mark.parametrize(
    "mode", [pytest.param([], id="worker"), pytest.param(["--isolate"], id="isolate")]
)
def test_a_repro_imported_on_a_full_disk_leaves_no_cut_bytecode_beside_it(
    tmp_path: Path, run_cli: CliRunner, mode: list[str]
) -> None:
    """The cache under the repository (`.repromatrix/`, the default) shares its disk with the
    repros: a cell that imported its helper with a few pages left put a cut .pyc of it in
    the repros' `__pycache__`, and every later cell of that folder, in every later run, was
    an error record ('EOFError: marshal data too short'), exit 0. The helper's bytecode is
    now written whole before the folder's first cell, or the run stops for want of room."""
    with _tmpfs(tmp_path / "disk", "size=8m") as disk:
        repros = disk / "repros"
        repros.mkdir()
        line = "def f{0}(x):\n    return x + {0} * 2 - len('" + "a" * 50 + "')\n"
        (repros / "_big.py").write_text("".join(line.format(i) for i in range(800)))
        (repros / "r.py").write_text(
            "import os, sys\nsys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))\n"
            "import _big\n\ndef run(params):\n    return {'schema': 1, 'repro': 'r', "
            "'status': 'passed', 'reason': f'{_big.f1(1)}', 'metrics': {}, "
            "'thresholds': {}, 'params': {}, 'provenance': {}}\n"
        )
        (disk / "m.yaml").write_text(
            "schema: 1\nrepros:\n  r: {script: repros/r.py, gpus: [cpu], needs: []}\n"
        )
        argv = ["--matrix", str(disk / "m.yaml"), "run", "--no-progress", "--rerun", *mode,
                "--results", str(tmp_path / "res")]  # fmt: skip
        first = run_cli(*argv, env={"PYTHONDONTWRITEBYTECODE": "1"}, cwd=disk)
        assert first.returncode == 0, first.stderr
        filler = tmp_path / "disk" / "filler"
        with contextlib.suppress(OSError), filler.open("wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
        os.truncate(filler, filler.stat().st_size - 8192)  # two pages left
        full = run_cli(*argv, env={"PYTHONDONTWRITEBYTECODE": ""}, cwd=disk)
        assert "Traceback" not in full.stderr
        filler.unlink()
        again = run_cli(*argv, env={"PYTHONDONTWRITEBYTECODE": ""}, cwd=disk)
    assert again.returncode == 0, again.stderr
    last = ResultStore(tmp_path / "res").load().results[-1]
    assert last.status == "passed", last.reason


def test_a_clone_whose_fetch_finds_the_cache_disk_full_stops_the_bisect_with_exit_8(
    tmp_path: Path,
) -> None:
    """The source's `bad` moved (to a good commit holding a 4 MB file) and the cache's disk
    had no room for it: git's fetch failed ("fatal: unable to write loose object file: No
    space left on device"), read as the source out of reach ("cannot reach UPSTREAM to
    refresh 'good'; using the cached clone's"), and the bisect named c8 of the `bad` the
    source no longer has, exit 0. A full disk stops it (exit 8), naming the clone."""
    from history_repo import bisect_cli, build_dag
    from history_repo import write_matrix as write_history_matrix

    history = build_dag(tmp_path / "upstream", [(), *((i,) for i in range(11))],
                        bad=lambda i: i >= 8, importable=True)  # fmt: skip
    write_history_matrix(tmp_path, history)
    with _tmpfs(tmp_path / "disk", "size=3m") as disk:
        first = bisect_cli(tmp_path, "--good=good", "--bad=bad", cache=disk / "cache")
        assert first.returncode == 0, first.stdout + first.stderr
        assert f"first bad commit: {history.sha('c8')}" in first.stdout
        git = ["git", "-C", str(history.path)]
        subprocess.run([*git, "checkout", "-q", "--detach", history.sha("c6")], check=True)
        (history.path / "big.bin").write_bytes(os.urandom(4 << 20))
        subprocess.run([*git, "add", "big.bin"], check=True)
        subprocess.run([*git, "commit", "-qm", "big"], check=True, capture_output=True)
        subprocess.run([*git, "tag", "-f", "bad"], check=True, capture_output=True)
        again = bisect_cli(tmp_path, "--good=good", "--bad=bad", cache=disk / "cache")
    said = again.stdout + again.stderr
    assert again.returncode == 8, said
    assert "first bad commit" not in said, said
    assert "cannot reach" not in said, said
    mirror = disk / "cache" / "git" / "bisectpkg.git"
    line = again.stderr.strip().splitlines()[-1]
    assert line.startswith(f"repromatrix: error: cannot fetch bisectpkg into {mirror} "), line
    assert "(No space left on device); free space there" in line, line
