"""Flag values that once ended as an internal error, a run that lost every cell but exited
0, or no end at all: each is one line naming the flag, with its exit code, before any cell
runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from clihelpers import never_run_matrix

from repromatrix import host
from repromatrix.cli import main
from repromatrix.errors import MissingToolError


@pytest.fixture
def matrix(tmp_path: Path) -> Path:
    return never_run_matrix(tmp_path)


def run(matrix: Path, *argv: str) -> list[str]:
    """`run` of `matrix`, with a --results and a --cache beside it unless `argv` gives its
    own (a flag given twice is refused)."""
    given = {a.split("=")[0] for a in argv}
    defaults = [
        (flag, str(matrix.parent / folder))
        for flag, folder in (("--results", "res"), ("--cache", "cache"))
        if flag not in given
    ]
    return [
        "--matrix", str(matrix), "run", "--no-progress",
        *(part for pair in defaults for part in pair), *argv,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--timeout", "inf"), "--timeout inf: give seconds above 0 and at most 604800"),
        (("--timeout", "nan"), "--timeout nan: give seconds"),
        (("--timeout", "1e300"), "--timeout 1e+300: give seconds"),
        (("--timeout", "0"), "--timeout 0.0: give seconds"),
        (("--jobs", "10000000"), "--jobs 10000000: give a number from 1 to 4,096"),
        (("--jobs", "0"), "--jobs 0: give a number from 1"),
        (("--per-gpu", "100000"), "--per-gpu 100000: give a number from 1 to 64"),
        (("--repeat", "100000000"), "--repeat 100000000: give a number from 1 to 10,000"),
        (("--ray-retries", "-1"), "--ray-retries -1: give a number from 0"),
        (("--worker-memory", "nan"), "--worker-memory must be 0"),
    ],
)
def test_counts_and_seconds_out_of_range_are_usage_errors(
    matrix: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    assert main(run(matrix, *argv)) == 64
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert message in err
    assert not (matrix.parent / "res").exists()  # refused before anything was recorded


@pytest.mark.parametrize("kind", ["file", "under a file"])
def test_a_cache_that_cannot_be_a_folder_stops_the_run_before_any_cell(
    matrix: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    blocker = matrix.parent / "blocker"
    blocker.write_text("x")
    cache = blocker if kind == "file" else blocker / "cache"
    argv = run(matrix)
    argv[argv.index("--cache") + 1] = str(cache)
    assert main(argv) == 10
    err = capsys.readouterr().err
    assert err.startswith(f"repromatrix: error: --cache {cache}: ")
    assert not (matrix.parent / "res").exists()


def _script(path: Path, body: str) -> str:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def test_a_python_that_answers_something_else_is_a_missing_tool(tmp_path: Path) -> None:
    for executable in ("/bin/true", _script(tmp_path / "garbage", "echo garbage")):
        with pytest.raises(MissingToolError, match="not a Python interpreter's"):
            host.probe_interpreter(executable)
    with pytest.raises(MissingToolError, match=r"cannot run it \(a folder, not an interpreter\)"):
        host.probe_interpreter(str(tmp_path))


def test_a_python_that_never_answers_is_given_up_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(host, "PROBE_TIMEOUT_S", 1.0)
    with pytest.raises(MissingToolError, match="no answer to a version probe within 1 s"):
        host.probe_interpreter(_script(tmp_path / "hang", "exec sleep 600"))


def test_a_bad_python_through_the_cli_exits_4(
    matrix: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(run(matrix, "--python", "/bin/true")) == 4
    assert "--python /bin/true" in capsys.readouterr().err


def _into_a_full_disk(argv: list[str]) -> None:
    """`repromatrix ARGV > /dev/full` is exit 10 with one line, never exit 0 or a bug."""
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "repromatrix", *argv],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 10, done.stderr
    assert done.stderr == (
        "repromatrix: error: cannot write to standard output (No space left on device); "
        "free space where it goes, or send it elsewhere\n"
    )


def test_a_full_standard_output_is_an_output_error_not_a_bug(matrix: Path) -> None:
    _into_a_full_disk(["--matrix", str(matrix), "list", "--json"])


@pytest.mark.parametrize("command", [["list", "--json"], ["validate"], ["--help"]])
def test_a_closed_standard_output_is_an_output_error(matrix: Path, command: list[str]) -> None:
    """`repromatrix list >&-` exited 0 having written nothing; bisect crashed (exit 70)."""
    done = subprocess.run(
        [sys.executable, "-m", "repromatrix", "--matrix", str(matrix), *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        check=False,
        preexec_fn=lambda: os.close(1),
    )
    assert done.returncode == 10, done.stderr
    assert done.stderr == (
        "repromatrix: error: cannot write to standard output (it is closed); send it to a file\n"
    )


def test_no_file_opened_takes_the_place_of_a_closed_standard_output() -> None:
    code = (
        "import os, sys; from repromatrix import cli; cli._standard_streams(); "
        "fd = os.open(os.devnull, os.O_RDONLY); print(fd, file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], stderr=subprocess.PIPE, text=True, timeout=60,
        check=True, preexec_fn=lambda: os.close(1),
    )  # fmt: skip
    assert int(done.stderr) > 2


@pytest.mark.parametrize("argv", [["--bogus"], ["-v", "--bogus=1"], ["--bogus", "list"]])
def test_an_unknown_flag_before_the_command_is_named(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert main(argv) == 64
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["bisect", "--help"]])
def test_help_that_cannot_be_written_is_an_output_error(argv: list[str]) -> None:
    # argparse swallows the write error of --help and --version (exit 0, nothing shown).
    _into_a_full_disk(argv)


def test_a_run_that_selects_no_cell_is_a_usage_error(
    matrix: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`run -k typo` ran nothing and ended well (exit 0): a CI job went green untested."""
    assert main(run(matrix, "-k", "no-such-cell", "--results", str(tmp_path / "r"))) == 64
    err = capsys.readouterr().err
    assert "-k no-such-cell selects none of the" in err
    assert "`repromatrix list` shows them" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("target", ["/dev/null", "fifo", "dir"])
def test_a_results_file_that_cannot_take_records_stops_the_run_before_any_cell(
    matrix: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path, target: str
) -> None:
    """The cells ran (GPU hours), then every record was lost (exit 8 at the end)."""
    from repromatrix.store import ResultStore

    results = tmp_path / "r"
    results.mkdir()
    where = ResultStore(results).path
    if target == "fifo":
        os.mkfifo(where)
    elif target == "dir":
        where.mkdir()
    else:
        where.symlink_to(target)
    code = main(run(matrix, "--results", str(results)))
    err = capsys.readouterr().err
    assert code == 8, err
    assert f"cannot append records to {where.name}" in err
    runs = matrix.parent / "cache" / "runs"
    assert not any(runs.rglob("stdout.log")) if runs.exists() else True  # no cell ran


def test_an_empty_fail_on_is_a_usage_error(
    matrix: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--fail-on "$UNSET"` gated nothing and went green."""
    assert main(run(matrix, "--fail-on", "")) == 64
    assert "--fail-on needs one or more statuses" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("CUDA_VISIBLE_DEVICES=7", "set by repromatrix for every cell"),
        ("TRITON_CACHE_DIR=/shared", "set by repromatrix for every cell"),
        ("TORCHINDUCTOR_CACHE_DIR=/shared", "set by repromatrix for every cell"),
        ("REPROMATRIX_KEY=x", "set by repromatrix for every cell"),
        ("PYTHONPATH=/elsewhere", "the pins' install folders on PYTHONPATH"),
        ("A B=1", "write NAME=VALUE"),
        ("PATH=/usr/local/cuda/bin", "set it in the shell that runs repromatrix"),
        ("VIRTUAL_ENV=/venv", "set it in the shell that runs repromatrix"),
        ("PYTHONUSERBASE=/u", "set it in the shell that runs repromatrix"),
        ("NVIDIA_VISIBLE_DEVICES=all", "set by repromatrix for every cell"),
        ("PYTHONSAFEPATH=1", "changes how the harness starts"),
        ("PYTHONINSPECT=1", "changes how the harness starts"),
    ],
)
def test_cell_env_refuses_what_the_harness_sets_and_odd_names(
    matrix: Path, capsys: pytest.CaptureFixture[str], item: str, message: str
) -> None:
    """CUDA_VISIBLE_DEVICES=7 was dropped in the cell but recorded in its provenance; a
    shared TRITON_CACHE_DIR mixed kernels of library versions. PATH replaced the one the
    harness gives cells (their interpreter's bin/ first; in a container, the image's, where
    `python` is found), NVIDIA_VISIBLE_DEVICES=all gave a container every GPU of the host,
    PYTHONSAFEPATH=1 made every worker exit before connecting and PYTHONINSPECT=1 made an
    isolated cell that passed an error: each was accepted in silence."""
    assert main(run(matrix, "--cell-env", item)) == 64
    assert message in capsys.readouterr().err


def test_cell_env_given_twice_is_refused(matrix: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(run(matrix, "--cell-env", "A=1", "--cell-env", "A=2")) == 64
    assert "--cell-env A: given twice" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [["--matrix=", "list"], ["report", "--results", ""], ["report", "--out", " "],
     ["run", "--cache", ""]],
)  # fmt: skip
def test_an_empty_path_is_a_usage_error_not_the_current_folder(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """`--results ""` read every .jsonl under the current folder; `--out ""` wrote there."""
    assert main(argv) == 64
    assert ": an empty value; give " in capsys.readouterr().err


def test_a_git_mirror_of_no_library_or_no_path_is_refused_before_any_cell(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "r.py").write_text("")
    matrix = tmp_path / "m.yaml"
    matrix.write_text(
        "schema: 1\nlibraries:\n  fla: {git: https://example.invalid/fla, import: fla, "
        "versions: [{git: abc1234}]}\nrepros:\n  r: {script: r.py, gpus: [cpu], "
        "libraries: {fla: all}}\n"
    )
    assert main(run(matrix, "--git-mirror", f"flaa={tmp_path}")) == 64
    assert "no library 'flaa' in m.yaml; did you mean 'fla'?" in capsys.readouterr().err
    assert main(run(matrix, "--git-mirror", f"fla={tmp_path}/gone")) == 64
    assert "no such file or folder; pass a clone or a git bundle" in capsys.readouterr().err
    assert not (matrix.parent / "res").exists()


def test_a_cache_path_that_would_split_pythonpath_is_refused(
    matrix: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Environments go on PYTHONPATH from the cache: `a:b` split it, and the pins were
    not importable (or another copy on PYTHONPATH was imported instead) at exit 0."""
    assert main(run(matrix, "--cache", str(tmp_path / "c a:b"))) == 64
    assert "separates PYTHONPATH entries" in capsys.readouterr().err


def test_clean_refuses_a_folder_that_is_no_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`clean --envs --cache ~` deleted the user's own git/, envs/ and runs/ folders."""
    home = tmp_path / "home"
    (home / "git" / "project").mkdir(parents=True)
    (home / "git" / "project" / "README").write_text("mine\n")
    assert main(["clean", "--envs", "--cache", str(home)]) == 64
    assert "not a repromatrix cache" in capsys.readouterr().err
    assert (home / "git" / "project" / "README").read_text() == "mine\n"
    # A folder named but missing is a typo, not "removed 0 item(s)" at exit 0.
    assert main(["clean", "--envs", "--cache", str(tmp_path / "missing")]) == 64
    assert "missing: no such folder; pass the --cache your runs used" in capsys.readouterr().err
    # A file where the cache should be (the default's name too) is no cache either.
    (tmp_path / ".repromatrix").write_text("notes\n")
    for cache in (str(tmp_path / ".repromatrix"), ".repromatrix"):
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(tmp_path)
            assert main(["clean", "--cache", cache]) == 64
        assert "is a file, not a folder" in capsys.readouterr().err
    assert (tmp_path / ".repromatrix").read_text() == "notes\n"


def test_a_cache_lock_that_is_a_link_is_refused_by_clean_and_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], matrix: Path
) -> None:
    """With the lock file a link, neither a run nor a clean could take it, and both went
    on without it: a clean could empty the folders of a run in progress."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (tmp_path / "elsewhere").write_text("")
    (cache / ".repromatrix-cache.lock").symlink_to(tmp_path / "elsewhere")
    (cache / "runs").mkdir()
    assert main(["clean", "--cache", str(cache)]) == 10
    assert "is a link, so a run and a clean could not exclude each other" in (
        capsys.readouterr().err
    )
    assert (cache / "runs").is_dir()
    assert main(run(matrix)) == 10  # its --cache is tmp_path/cache too
    assert "is a link" in capsys.readouterr().err


def test_fail_on_not_run_fails_a_run_that_left_cells_not_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--fail-on not_run` was accepted and never failed anything."""
    (tmp_path / "r.py").write_text("print('never runs')\n")
    (tmp_path / "m.yaml").write_text(
        "schema: 1\ngpus:\n  H100: {compute_capability: '9.0', smi_names: [NVIDIA H100]}\n"
        "repros:\n  r: {script: r.py, gpus: [H100]}\n"
    )
    assert main(run(tmp_path / "m.yaml", "--fail-on", "not_run")) == 1
    assert "1 cell(s) ended not_run: r[H100,host] (" in capsys.readouterr().err
    assert main(run(tmp_path / "m.yaml")) == 0


def test_a_cell_interpreter_older_than_310_is_refused_before_any_cell(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Python 3.9 made every cell an error (the worker's and _repro.py's syntax) and the
    run still ended well. (An interpreter that says it is 3.9: sys.version set by a
    sitecustomize on its PYTHONPATH.)"""
    assert _refused_stand_in(tmp_path, 'import sys\nsys.version = "3.9.18 (stand-in)"\n') == 4
    err = capsys.readouterr().err
    assert "is Python 3.9.18; cells need Python 3.10 or newer" in err


def _refused_stand_in(tmp_path: Path, sitecustomize: str) -> int:
    """`run --python` with this interpreter under a sitecustomize: its exit code."""
    import sys

    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(sitecustomize)
    old = tmp_path / "python-old"
    old.write_text(f'#!/bin/sh\nPYTHONPATH={site} exec {sys.executable} "$@"\n')
    old.chmod(0o755)
    (tmp_path / "r.py").write_text("print('never runs')\n")
    (tmp_path / "m.yaml").write_text("schema: 1\nrepros:\n  r: {script: r.py, gpus: [cpu]}\n")
    return main(run(tmp_path / "m.yaml", "--python", str(old)))


def test_cells_do_not_see_the_venv_repromatrix_runs_in() -> None:
    """Under nox, cells saw nox's venv first on PATH and in VIRTUAL_ENV: a library running
    `python` or `pip` from PATH got nox's, not the GPU stack's."""
    import os
    import sys

    from repromatrix.executors.local import _leave_own_venv

    assert sys.prefix != sys.base_prefix  # the tests run in nox's venv
    own = os.path.join(sys.prefix, "bin")
    env = {"PATH": f"{own}{os.pathsep}/usr/bin", "VIRTUAL_ENV": sys.prefix, "HOME": "/h"}
    _leave_own_venv(env, "/opt/torch/.venv/bin/python3")
    assert env == {"PATH": "/usr/bin", "HOME": "/h"}
    same = {"PATH": f"{own}{os.pathsep}/usr/bin", "VIRTUAL_ENV": sys.prefix}
    _leave_own_venv(same, sys.executable)  # the cells run in that venv: it stays
    assert same == {"PATH": f"{own}{os.pathsep}/usr/bin", "VIRTUAL_ENV": sys.prefix}


def test_the_cells_venv_comes_first_on_their_path(tmp_path: Path) -> None:
    """Started as /opt/torch/.venv/bin/python3 -m nox, not activated: `python` and `pip`
    from a cell's PATH were pyenv's (no torch), though the README promises the GPU
    stack's. A plain interpreter's folder (/usr/bin) is not moved first."""
    import os
    import sys

    from repromatrix.executors.local import _leave_own_venv

    venv, conda = tmp_path / "venv", tmp_path / "conda"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (conda / "bin").mkdir(parents=True)
    (conda / "conda-meta").mkdir()
    own = os.path.join(sys.prefix, "bin")
    env = {"PATH": f"{own}{os.pathsep}/usr/local/bin{os.pathsep}/usr/bin"}
    _leave_own_venv(env, str(venv / "bin" / "python3"))
    assert env == {
        "PATH": f"{venv / 'bin'}{os.pathsep}/usr/local/bin{os.pathsep}/usr/bin",
        "VIRTUAL_ENV": str(venv),
    }
    env = {"PATH": f"/usr/bin{os.pathsep}{conda / 'bin'}"}
    _leave_own_venv(env, str(conda / "bin" / "python"))
    assert env == {"PATH": f"{conda / 'bin'}{os.pathsep}/usr/bin"}
    env = {"PATH": f"/usr/local/bin{os.pathsep}/usr/bin"}
    _leave_own_venv(env, "/usr/bin/python3")
    assert env == {"PATH": f"/usr/local/bin{os.pathsep}/usr/bin"}


@pytest.mark.parametrize("flag", ["--results", "--cache", "--out", "--compare"])
def test_a_path_the_system_cannot_take_is_one_line_not_an_internal_error(
    matrix: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str
) -> None:
    """A name over 255 bytes, or a link loop, ended as "internal error: OSError: [Errno
    36] File name too long" (exit 70) from whichever module met it first."""
    (tmp_path / "loopA").symlink_to(tmp_path / "loopB")
    (tmp_path / "loopB").symlink_to(tmp_path / "loopA")
    for bad in (str(tmp_path / ("x" * 300)), str(tmp_path / "loopA")):
        if flag in ("--out", "--compare"):
            argv = ["--matrix", str(matrix), "report", "--results", str(tmp_path), flag, bad]
        else:
            argv = run(matrix, flag, bad)
        code = main(argv)
        err = capsys.readouterr().err
        assert code in (3, 8, 10, 64), (bad, err)
        errors = [line for line in err.splitlines() if not line.startswith("repromatrix: warn")]
        assert len(errors) == 1, err
        assert errors[0].startswith("repromatrix: error: "), err


def test_cells_keep_the_user_site_the_interpreter_check_saw(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Cells get a HOME of their own: torch in ~/.local (pip install --user) passed the
    check, then every GPU cell was untestable ("No module named 'torch'") at exit 0."""
    import site

    from repromatrix.executors.local import _keep_user_site

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("PYTHONUSERBASE", raising=False)
    monkeypatch.setattr(site, "USER_BASE", None)
    env = {"HOME": str(tmp_path)}
    _keep_user_site(env)
    assert env["PYTHONUSERBASE"] == str(tmp_path / ".local")
    given = {"HOME": str(tmp_path), "PYTHONUSERBASE": "/elsewhere"}
    _keep_user_site(given)
    assert given["PYTHONUSERBASE"] == "/elsewhere"


def test_a_cluster_address_without_the_ray_executor_is_refused(
    matrix: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--ray-address HOST:PORT` without `--executor ray` ran every cell on this host."""
    assert main(run(matrix, "--ray-address", "127.0.0.1:1")) == 64
    assert "only --executor ray runs cells on a cluster" in capsys.readouterr().err


def test_ray_retries_without_the_ray_executor_is_refused(
    matrix: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--ray-retries 5` without `--executor ray` was accepted and meant nothing: the
    user believed lost cells would be retried."""
    assert main(run(matrix, "--ray-retries", "5")) == 64
    err = capsys.readouterr().err
    assert "--ray-retries 5: only --executor ray runs cells on a cluster" in err


def test_a_ray_address_in_the_environment_under_the_auto_executor_is_said(
    matrix: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """RAY_ADDRESS set (by `ray job submit`, or in a Ray user's shell) and no --executor:
    the cells ran on this host, and "1 cell needs an H100; this host has none" was all it
    said of a cluster that has one. Said in one line; --executor local says nothing."""
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    main(run(matrix))
    said = (
        "repromatrix: warning: RAY_ADDRESS is set (10.0.0.5:6379), but --executor auto runs "
        "cells on this host; pass --executor ray to run them on that cluster"
    )
    assert capsys.readouterr().err.count(said) == 1
    main(run(matrix, "--executor", "local"))
    assert "RAY_ADDRESS" not in capsys.readouterr().err


def test_a_python_without_importlib_metadata_is_refused_by_its_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Python 2.7 to 3.7 got "cannot run base interpreter ...: No module named metadata"
    instead of the version line. (A stand-in: a sitecustomize that says 3.7 and hides
    importlib.metadata, as 3.7 lacks it.)"""
    says_37 = (
        "import sys\nsys.version = '3.7.16 (stand-in)'\nsys.version_info = (3, 7, 16)\n"
        "sys.modules['importlib.metadata'] = None\n"
    )
    assert _refused_stand_in(tmp_path, says_37) == 4
    err = capsys.readouterr().err
    assert "is Python 3.7.16; cells need Python 3.10 or newer" in err


def test_a_bad_node_address_names_the_flag_given(capsys: pytest.CaptureFixture[str]) -> None:
    """`ray-node --address bad::addr` said "--ray-address bad::addr: write HOST:PORT"."""
    assert main(["ray-node", "--address", "bad::addr"]) == 64
    assert capsys.readouterr().err.startswith("repromatrix: error: --address bad::addr: write")


def test_a_node_given_head_and_address_is_told_to_take_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`ray-node --head --address a:1` said "give --address HEAD to join a cluster, or
    --head", as if neither had been given."""
    assert main(["ray-node", "--head", "--address", "10.0.0.5:6379"]) == 64
    assert capsys.readouterr().err == (
        "repromatrix: error: ray-node: --head starts a cluster's head, --address HEAD joins "
        "one: give one\n"
    )


def test_a_python_that_is_a_folder_or_not_executable_is_said_so(
    matrix: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both said "cannot run it" with "Permission denied" or "not found"."""
    plain = tmp_path / "python3"
    plain.write_text("#!/bin/sh\n")
    assert main(run(matrix, "--python", str(plain))) == 4
    assert "cannot run it (not executable)" in capsys.readouterr().err
    assert main(run(matrix, "--python", str(tmp_path))) == 4
    assert "cannot run it (a folder, not an interpreter)" in capsys.readouterr().err


def test_a_report_into_the_results_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`report --out results` wrote the report among the records (exit 0)."""
    (tmp_path / "results").mkdir()
    argv = ["report", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "results")]
    assert main(argv) == 64
    assert "is the results folder" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == []


@pytest.mark.parametrize(
    ("inputs", "said"),
    [
        (["--results", "results/x.jsonl"], "is the folder of the results file"),
        (["--results", "new", "--compare", "results"], "is the --compare folder"),
        (["--results", "new", "--compare", "results/x.jsonl"], "is the folder of the --compare"),
    ],
)
def test_a_report_into_the_folder_of_a_results_file_or_the_compared_set_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], inputs: list[str], said: str
) -> None:
    """`report --results results/x.jsonl --out results` (or `--compare results --out
    results`) wrote the report among the records (exit 0), which `--out results` with
    `--results results` refuses."""
    for folder in ("results", "new"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.jsonl").write_text("")
    argv = ["--matrix", str(tmp_path / "none.yaml"), "report", "--out", str(tmp_path / "results")]
    argv += [str(tmp_path / arg) if not arg.startswith("--") else arg for arg in inputs]
    assert main(argv) == 64
    assert said in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["x.jsonl"]


def test_a_node_python_that_cannot_run_is_refused_before_the_node_joins(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ray-node --python /missing` joined the cluster, and every cell the node took was
    an error record whose reason was a cut Ray traceback (exit 0)."""
    missing = tmp_path / "no-python"
    assert main(["ray-node", "--address", "127.0.0.1:1", "--python", str(missing)]) == 4
    err = capsys.readouterr().err
    assert err == f"repromatrix: error: --python {missing}: cannot run it (not found); " + (
        "pass a Python interpreter\n"
    )


def test_a_node_python_older_than_cells_need_is_refused_before_the_node_joins(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ray-node --python` of a Python 3.9 joined the cluster without a word; each run it
    joined then refused it (exit 4). The node refuses it as it starts."""
    old = tmp_path / "python3.9"
    old.write_text(
        "#!/bin/sh\n"
        """echo '{"version": "3.9.18", "executable": "/opt/py39/bin/python", "packages": {}}'\n"""
    )
    old.chmod(0o755)
    assert main(["ray-node", "--address", "127.0.0.1:1", "--python", str(old)]) == 4
    err = capsys.readouterr().err
    assert err == (
        f"repromatrix: error: ray-node: --python {old} is Python 3.9.18; cells need Python "
        "3.10 or newer: give --python of a newer one\n"
    )


@pytest.mark.parametrize("command", ["report", "run"])
def test_an_escape_sequence_in_a_path_never_reaches_the_terminal(
    matrix: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """`--results $'\\e]52;c;...\\a'` (a path pasted from somewhere) was echoed in the error
    as it was: the terminal ran it (an OSC 52 clipboard write, colours, a new title)."""
    path = str(matrix.parent / "\x1b]52;c;aGk=\x07\x1b[31mred")
    argv = ["--matrix", str(matrix), command, "--results", path]
    if command == "report":
        assert main(argv) == 3
    else:
        (matrix.parent / "afile").write_text("")
        assert main([*argv[:-1], str(matrix.parent / "afile" / "\x1b[2Jx")]) != 0
    err = capsys.readouterr().err
    assert "\x1b" not in err
    assert "\x07" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "argv",
    [
        ("--executor", "local", "--results", "a", "--results", "b"),
        ("--executor", "local", "--cache=a", "--cache=b"),
        ("--executor", "local", "--executor", "docker"),
        ("--jobs", "1", "--jobs", "2"),
        ("--per-gpu", "1", "--per-gpu", "2"),
        ("--timeout", "5", "--timeout", "600"),
        ("--python", sys.executable, "--python", "python3"),
        ("--pull", "never", "--pull", "always"),
        ("--worker-memory", "1", "--worker-memory", "2"),
        ("--repeat", "5", "--repeat", "1"),
        ("--fail-on", "regressed", "--fail-on", "error"),
        ("--matrix", "a.yaml", "--matrix", "b.yaml"),
    ],
)
def test_a_one_value_flag_of_run_given_twice_is_refused(
    matrix: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    """`run --fail-on regressed --fail-on error` gated errors alone and `--repeat 5 --repeat
    1` ran once: argparse kept the last value in silence. Like bisect's and report's
    one-value flags, a second one is now refused (exit 64) before anything runs."""
    assert main(run(matrix, *argv)) == 64
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    flags = [a.split("=")[0] for a in argv if a.startswith("--")]
    twice = next(f for f in flags if flags.count(f) == 2)
    assert f"argument {twice}: given twice" in err, err
    assert not (matrix.parent / "res").exists()


def test_matrix_given_before_and_after_the_command_is_refused(
    matrix: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`repromatrix --matrix a.yaml list --matrix b.yaml` listed b.yaml's cells in silence
    (the command's own value replaced the one given before it)."""
    assert main(["--matrix", str(matrix), "list", "--matrix", "other.yaml"]) == 64
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "argument --matrix: given twice" in err, err


def _one_value_flags() -> list[tuple[str, str, str]]:
    """(command, flag, a value it takes) for every flag of every command that keeps one
    value (argparse's plain store: not a switch, not a repeatable flag)."""
    import argparse

    from repromatrix.cli import build_parser
    from repromatrix.flag_types import count_arg, number_arg

    found = []
    subparsers = build_parser()._subparsers
    assert subparsers is not None
    commands = subparsers._group_actions[0].choices
    assert isinstance(commands, dict)
    for name, parser in commands.items():
        for action in parser._actions:
            if action.nargs is not None or not action.option_strings:
                continue  # a switch (store_true: nargs 0), or a positional
            if isinstance(action, argparse._AppendAction):
                continue
            value = "1" if action.type in (count_arg, number_arg) else "x"
            if action.choices:
                value = str(next(iter(action.choices)))
            found.append((name, action.option_strings[-1], value))
    return found


@pytest.mark.parametrize(("command", "flag", "value"), _one_value_flags())
def test_every_one_value_flag_given_twice_is_refused(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
    flag: str,
    value: str,
) -> None:
    """`bisect --gpu H100 --gpu H200` bisected on H200, `report --title A --title B` and
    `clean --cache a --cache b` took the last value in silence, though the README says a
    flag that takes one value refuses a second one: every such flag of every command does."""
    monkeypatch.chdir(tmp_path)  # a command that is not refused writes nothing elsewhere
    assert main([command, flag, value, flag, value]) == 64
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"argument {flag}: given twice" in err, err


@pytest.mark.parametrize("command", ["run", "bisect"])
def test_pull_with_the_local_executor_is_refused(
    matrix: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """`run --executor local --pull always` was taken and dropped: a local run uses no
    image, so nothing was pulled, and it exited 0 as if the policy had been applied."""
    argv = run(matrix, "--executor", "local", "--pull", "always")
    if command == "bisect":
        at = argv.index("run")
        argv[at : at + 2] = ["bisect", "r", "--library", "lib", "--good", "a", "--bad", "b"]
    assert main(argv) == 64
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--pull always: --executor local runs every cell on this host, in no image" in err
    assert not (matrix.parent / "res").exists()


def test_pull_is_taken_where_an_image_may_run(matrix: Path) -> None:
    from repromatrix.arguments import session_config
    from repromatrix.cli import build_parser

    for executor in ("auto", "docker", "ray"):
        argv = run(matrix, "--executor", executor, "--pull", "never")
        args = build_parser().parse_args(argv)
        assert session_config(args).pull.value == "never"


def test_worker_memory_with_isolate_is_refused(
    matrix: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`run --isolate --worker-memory 512` was taken and dropped: no cell ran in a worker,
    so the limit applied to none, and the run ended well."""
    assert main(run(matrix, "--isolate", "--worker-memory", "512")) == 64
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--worker-memory 512: --isolate runs each cell in a process of its own" in err
    assert not (matrix.parent / "res").exists()


HUGE = "n" * 60_000 + "END"


@pytest.mark.parametrize(
    "argv",
    [
        ["bisect", "r", "--library", HUGE, "--good", "1", "--bad", "2"],
        ["list", "-k", "[" * 60_000],
    ],
    ids=["bisect-library", "list-k"],
)
def test_a_huge_flag_value_is_quoted_cut_not_echoed_whole(
    matrix: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """`--library` of 60,000 characters came back whole in its error: a line of 60 KB on
    the terminal. The value is cut (head…tail); the words around it, the fix, stay."""
    assert main(["--matrix", str(matrix), *argv]) == 64
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err[:300]
    assert err.startswith("repromatrix: error: ")
    assert len(err) < 1_000, err[:300]
    assert "…" in err
