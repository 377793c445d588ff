"""The command as a shell user meets it: locales and encodings of standard output,
misspelt commands and flags, abbreviations. Each runs `python -m repromatrix` as a real
process where the behaviour is the process's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from clihelpers import pids_alive


def repromatrix(
    *argv: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "repromatrix", *argv],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        timeout=60,
        check=False,
    )


def a_matrix(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "r.py").write_text("raise SystemExit('never run')\n")
    path = folder / "m.yaml"
    path.write_text("schema: 1\nrepros:\n  r: {script: r.py, gpus: [cpu]}\n")
    return path


@pytest.mark.parametrize(
    ("folder", "encoding", "said"),
    [
        ("r\u00e9sultats", "ascii", b"r\\xe9sultats"),  # a name the output's encoding lacks
        # A name that is not UTF-8 (bytes a Linux file name may hold) on a UTF-8 terminal:
        # shown as printable text (see test_paths_in_the_lines_of_a_command_that_went_well…).
        (os.fsdecode(b"bad\xffname"), "utf-8", b"bad?name"),
    ],
)
def test_a_path_the_output_cannot_encode_is_escaped_not_an_internal_error(
    tmp_path: Path, folder: str, encoding: str, said: bytes
) -> None:
    """`validate` (and `list`, `bisect`) print paths and revisions to standard output,
    which is strict about its encoding (PYTHONIOENCODING=ascii, a UTF-8 locale and a file
    name that is not UTF-8): the answer was lost to 'internal error: UnicodeEncodeError',
    exit 70. Standard error already escapes what it cannot encode; standard output now
    does the same."""
    matrix = a_matrix(tmp_path / folder)
    done = repromatrix(
        "--matrix", str(matrix), "validate", cwd=tmp_path, env={"PYTHONIOENCODING": encoding}
    )
    assert done.returncode == 0, done.stderr
    assert said + b"/m.yaml: ok: 1 repro, 0 GPU types, 0 images, 0 libraries, 1 cell" in done.stdout
    assert done.stderr == b""


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["run", "--res", "elsewhere"], "--res"),  # --results
        (["run", "--pyth", sys.executable], "--pyth"),  # --python
        (["report", "--res", "elsewhere"], "--res"),
        (["--mat", "other.yaml", "validate"], "--mat"),  # --matrix
    ],
)
def test_a_flag_is_taken_only_whole_never_by_its_first_letters(
    tmp_path: Path,
    argv: list[str],
    flag: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """argparse took `--res` for `--results`: `nox -s matrix -- --res elsewhere` ran into
    elsewhere/ and then reported results/ (the noxfile knows flags by their whole names:
    it makes their relative paths the caller's and hands --results to `report`), and a
    script's `--rep` broke the day a second flag began with it. A prefix is now an
    unrecognized argument."""
    from repromatrix.cli import main

    matrix = a_matrix(tmp_path / "m")
    monkeypatch.chdir(matrix.parent)
    assert main(["--matrix", str(matrix), *argv]) == 64
    err = capsys.readouterr().err
    assert f"unrecognized arguments: {flag}" in err, err
    assert not (matrix.parent / "elsewhere").exists()


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["lst"], "invalid choice: 'lst' (choose from"),
        (["lst"], "did you mean 'list'?"),
        (["run", "--executor", "lcoal"], "did you mean 'local'?"),
        (["run", "--pull", "nevr"], "did you mean 'never'?"),
        (["run", "--repaet", "2"], "unrecognized arguments: --repaet 2; did you mean --repeat?"),
        (["run", "--res", "x"], "unrecognized arguments: --res x; did you mean --results?"),
        (
            ["bisect", "r", "--library", "l", "--good", "a", "--bad", "b", "--find-fixes"],
            "did you mean --find-fix?",
        ),
        (["--debgu", "validate"], "unrecognized arguments: --debgu; did you mean --debug?"),
        (["report", "--output=x"], "did you mean --out?"),
        (["run", "mla"], "unrecognized arguments: mla; did you mean --repro mla?"),
        (["list", "--gpu", "cpu", "mla"], "did you mean --repro mla?"),
    ],
)
def test_a_misspelt_command_flag_or_choice_gets_a_did_you_mean(
    tmp_path: Path, argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`repromatrix lst` listed the seven commands and `run --repaet 2` said only
    'unrecognized arguments', where matrix.yaml's unknown keys get a "did you mean" (and
    a prefix such as `--res` is no longer taken for its flag): the closest name is said."""
    from repromatrix.cli import main

    matrix = a_matrix(tmp_path / "m")
    assert main(["--matrix", str(matrix), *argv]) == 64
    err = capsys.readouterr().err
    assert said in err, err
    assert err.count("\n") == 1, err


#: `python -c` of the command on a host without the Docker SDK (`import docker` fails).
WITHOUT_DOCKER_SDK = """\
import sys
sys.modules["docker"] = None
sys.argv = ["repromatrix", *sys.argv[1:]]
from repromatrix.__main__ import run
run()
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--executor", "docker", "--no-progress", "--results", "res", "--cache", "c"],
        ["clean", "--docker", "--cache", "c"],
    ],
)
def test_a_missing_docker_sdk_is_a_missing_tool_exit_4(tmp_path: Path, argv: list[str]) -> None:
    """README: exit 4 is "a tool is missing", 5 "Docker engine or Ray cluster
    unreachable". Without the Docker SDK, `run --executor docker` exited 5 (an engine that
    does not answer: the user looks at the daemon) and `clean --docker` 64, where
    `--executor ray` without Ray exits 4."""
    matrix = a_matrix(tmp_path / "m")
    (matrix.parent / "c").mkdir()
    (matrix.parent / "c" / ".repromatrix-cache.lock").touch()  # a cache a run used
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_DOCKER_SDK, "--matrix", str(matrix), *argv],
        cwd=matrix.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 4, done.stderr
    assert "Docker SDK" in done.stderr
    # The requirement itself: `pip install 'repromatrix[docker]'` asked PyPI for a
    # repromatrix, which is not there ("No matching distribution found for repromatrix").
    assert "pip install 'docker>=7.0'" in done.stderr
    assert "repromatrix[" not in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr


def test_a_missing_ray_names_the_requirement_to_install(tmp_path: Path) -> None:
    matrix = a_matrix(tmp_path / "m")
    argv = ["run", "--executor", "ray", "--no-progress", "--results", "res", "--cache", "c"]
    without_ray = WITHOUT_DOCKER_SDK.replace('sys.modules["docker"]', 'sys.modules["ray"]')
    done = subprocess.run(
        [sys.executable, "-c", without_ray, "--matrix", str(matrix), *argv],
        cwd=matrix.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 4, done.stderr
    assert done.stderr == (
        "repromatrix: error: --executor ray needs Ray (ray is missing): pip install "
        "'ray>=2.9' (the version the cluster's nodes run)\n"
    )


def test_the_readme_names_every_exit_code_the_command_can_end_with() -> None:
    """README's exit codes against the code's: 70, an internal error (a bug: one line,
    `--debug` for the traceback), was not among them, so a script could not tell it from
    a code the README had not promised."""
    from repromatrix.cli import EXIT_INTERNAL
    from repromatrix.errors import ExitCode

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    listed = " ".join(readme.split("\nExit codes: ", 1)[1].split("\n\n", 1)[0].split())
    for code in [*ExitCode, EXIT_INTERNAL]:
        assert f"`{int(code)}` " in listed, code


#: A folder name pasted from somewhere: a colour, a window title, a line break.
HOSTILE = "x\x1b[31mred\x1b]0;title\x07\nnext"


def test_paths_in_the_lines_of_a_command_that_went_well_reach_no_terminal_raw(
    tmp_path: Path,
) -> None:
    """Error lines showed paths as printable text, but the lines of commands that went
    well did not: `run --results $'x\\e[31m…'` wrote the escape sequence (and a line
    break) into its summary, `validate` into its answer, `clean` into what it removed."""
    matrix = a_matrix(tmp_path / "m")
    odd = matrix.parent / HOSTILE
    odd.mkdir()
    named = odd / "m.yaml"
    named.write_text(matrix.read_text())
    (odd / "r.py").write_text(
        "import json, sys\nout = sys.argv[sys.argv.index('--out') + 1]\n"
        "json.dump({'schema': 1, 'repro': 'r', 'status': 'passed', 'reason': 'ok'}, "
        "open(out, 'w'))\n"
    )
    outputs = [
        repromatrix("--matrix", str(named), "validate", cwd=odd),
        repromatrix(
            "--matrix",
            str(named),
            "run",
            "--executor",
            "local",
            "--no-progress",
            "--results",
            str(odd / "res"),
            "--cache",
            str(odd / "cache"),
            cwd=odd,
        ),
        repromatrix("--matrix", str(named), "clean", "--cache", str(odd / "cache"), cwd=odd),
        repromatrix(
            "--matrix",
            str(odd / "gone.yaml"),
            "report",
            "--results",
            str(odd / "res"),
            "--out",
            str(odd / "rep"),
            cwd=odd,
        ),
    ]
    for done in outputs:
        assert done.returncode == 0, done.stderr
        for stream in (done.stdout, done.stderr):
            assert b"\x1b" not in stream
            assert b"\x07" not in stream
    assert outputs[0].stdout.count(b"\n") == 1, outputs[0].stdout
    summary = [ln for ln in outputs[1].stderr.splitlines() if b"results in" in ln]
    assert b"next/res/" in summary[0], outputs[1].stderr  # one line, the path whole


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--head", "--port", "99999"], "--port 99999: give a number from 1 to 65,535"),
        (["--head", "--port", "0"], "--port 0: give a number from 1 to 65,535"),
        (["--head", "--port", "-1"], "--port -1: give a number from 1 to 65,535"),
        (["--address", "10.0.0.5:6379", "--port", "6380"], "--port is the head's port"),
    ],
)
def test_a_head_port_no_socket_can_have_starts_no_node(
    tmp_path: Path,
    argv: list[str],
    said: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`ray-node --head --port 99999` (or 0) said "node started" with exit 0, and
    `--port -1` ended as "ray start failed (1): AssertionError"; `--port` beside
    `--address` was dropped in silence. Each is now one line naming --port, exit 64,
    before any node starts."""
    from repromatrix.cli import main
    from repromatrix.executors.ray import cluster

    def started(*args: object, **kwargs: object) -> int:
        raise AssertionError("a node was started")

    monkeypatch.setattr(cluster, "start_node", started)
    monkeypatch.setattr(cluster, "checked_address", lambda *a: None)
    matrix = a_matrix(tmp_path / "m")
    cache = ["--cache", str(tmp_path / "node")]
    assert main(["--matrix", str(matrix), "ray-node", *argv, *cache]) == 64
    err = capsys.readouterr().err
    assert said in err, err
    assert err.count("\n") == 1, err


def test_a_cluster_address_from_ray_address_is_named_as_the_variable(tmp_path: Path) -> None:
    """With RAY_ADDRESS set and no --ray-address, a malformed address was refused as
    '--ray-address garbage: write HOST:PORT', a flag the user never gave: the line now
    names the variable it came from."""
    pytest.importorskip("ray")
    matrix = a_matrix(tmp_path / "m")
    done = repromatrix(
        "--matrix", str(matrix), "run", "--executor", "ray", "--no-progress",
        "--results", "res", "--cache", "c", cwd=matrix.parent, env={"RAY_ADDRESS": "garbage"},
    )  # fmt: skip
    assert done.returncode == 64, done.stderr
    assert b"RAY_ADDRESS garbage: write HOST:PORT" in done.stderr, done.stderr
    assert b"--ray-address" not in done.stderr.split(b";")[0]


#: The start of a bisect command line.
BISECT = ["bisect", "r", "--library", "l"]


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        ([*BISECT, "--library", "b", "--good", "v1", "--bad", "v2"], "--library"),
        ([*BISECT, "--good=1", "--bad=2", "--markdown", "a", "--markdown", "b"], "--markdown"),
        (["report", "--out", "a", "--out", "b"], "--out"),
        (["report", "--readme", "A.md", "--readme", "B.md"], "--readme"),
    ],
)  # fmt: skip
def test_a_one_value_flag_of_bisect_or_report_given_twice_is_refused(
    tmp_path: Path,
    argv: list[str],
    flag: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`bisect --good v1 --good v2` (as `git bisect start` takes several good commits)
    bisected from v2 alone, and `report --out a --out b` wrote b only: argparse keeps the
    last value in silence. Like --compare, these now refuse a second value (exit 64)."""
    from repromatrix.cli import main

    matrix = a_matrix(tmp_path / "m")
    monkeypatch.chdir(tmp_path)
    assert main(["--matrix", str(matrix), *argv]) == 64
    err = capsys.readouterr().err
    assert f"argument {flag}: given twice" in err, err
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("columns", ["0", "1", "abc"])
def test_a_terminal_width_of_nothing_still_shows_each_cell(tmp_path: Path, columns: str) -> None:
    """With COLUMNS=0 (a terminal, or a CI log, that says it has no size) rich drew
    everything into no columns: 'running 1 cell(s)' and each cell's line with its
    status and reason were lost, only the summary came out."""
    matrix = a_matrix(tmp_path / "m")
    done = repromatrix(
        "--matrix", str(matrix), "run", "--executor", "local", "--no-progress",
        "--results", "res", "--cache", "c", cwd=matrix.parent, env={"COLUMNS": columns},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert b"running 1 cell(s)" in done.stderr, done.stderr
    assert b"[1/1] " in done.stderr, done.stderr


#: `repromatrix ray-node` whose `ray` command is FAKE_RAY (no Ray node starts for real).
WITH_FAKE_RAY = """\
import sys
from repromatrix.executors.ray import cluster
ray = sys.argv.pop(1)
cluster._ray_cli = lambda: ray
sys.argv = ["repromatrix", *sys.argv[1:]]
from repromatrix.__main__ import run
run()
"""

#: A `ray start --block` stand-in: it and a child of its (the node's servers) wait.
FAKE_RAY = """\
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open(os.environ["FAKE_RAY_PIDS"] + ".tmp", "w") as f:
    f.write(f"{os.getpid()} {child.pid}")
os.replace(os.environ["FAKE_RAY_PIDS"] + ".tmp", os.environ["FAKE_RAY_PIDS"])
time.sleep(600)
"""


def test_sigterm_to_a_blocking_ray_node_stops_the_node(tmp_path: Path) -> None:
    """`ray-node --head --block` is the foreground process of a node (a container, a
    systemd unit): SIGTERM (`docker stop`) ended it with 'interrupted', exit 130, and left
    `ray start` and the node's servers running. The node now stops with it."""
    import signal
    import time

    fake = tmp_path / "ray"
    fake.write_text(f"#!{sys.executable}\n{FAKE_RAY}")
    fake.chmod(0o755)
    pids = tmp_path / "pids"
    matrix = a_matrix(tmp_path / "m")
    log = (tmp_path / "node.log").open("wb")  # a file: the node's servers inherit it
    node = subprocess.Popen(
        [sys.executable, "-c", WITH_FAKE_RAY, str(fake), "--matrix", str(matrix), "ray-node",
         "--head", "--block", "--cache", str(tmp_path / "node")],
        cwd=tmp_path, env={**os.environ, "FAKE_RAY_PIDS": str(pids)},
        stdout=log, stderr=log, start_new_session=True,
    )  # fmt: skip
    started: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while not pids.exists() and node.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pids.exists(), (tmp_path / "node.log").read_text()
        started = [int(p) for p in pids.read_text().split()]
        node.send_signal(signal.SIGTERM)
        node.wait(timeout=60)
        err = (tmp_path / "node.log").read_text()
        assert node.returncode == 130, err
        deadline = time.monotonic() + 15
        while pids_alive(started) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not pids_alive(started), err
    finally:
        for pid in pids_alive(started):  # what the old code left running
            os.kill(pid, signal.SIGKILL)
        if node.poll() is None:
            node.kill()
        log.close()


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--executor", "local", "run"], "--executor is an option of run: give it after"),
        (["-k", "pass", "list"], "-k is an option of list: give it after"),
        # The reverse: "run: unrecognized arguments: --version; did you mean --version?"
        (["run", "--version"], "--version is an option of repromatrix itself: give it before run"),
    ],
)
def test_a_command_option_given_before_the_command_says_where_it_goes(
    tmp_path: Path, argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`repromatrix --executor local run` said "unrecognized arguments: --executor" (the
    flag exists) and, with the did-you-mean, "did you mean --executor?": it is the
    command's option, given before the command."""
    from repromatrix.cli import main

    matrix = a_matrix(tmp_path / "m")
    assert main(["--matrix", str(matrix), *argv]) == 64
    err = capsys.readouterr().err
    assert said in err, err
    assert "did you mean" not in err, err
