"""Issue #11's inputs and outputs through the CLI as real processes: hostile matrix files,
dangerous values, secrets, escape sequences, logs left behind, two runs on one folder."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from clihelpers import CliRunner, cli_argv, fixture_copy, write_matrix

from repromatrix.errors import ExitCode
from repromatrix.locks import LOCK_NAME
from repromatrix.store import ResultStore

pytestmark = pytest.mark.integration

#: Address space for a `validate` process: the interpreter and its imports take about
#: 150 MiB of it, so a loader that expanded an alias bomb would die here, not swap.
VALIDATE_AS_BYTES = 768 * 2**20


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (VALIDATE_AS_BYTES, VALIDATE_AS_BYTES))


def validate(path: Path | str, cwd: Path) -> tuple[int, str, float]:
    started = time.monotonic()
    out = subprocess.run(
        cli_argv("--matrix", str(path), "validate"),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        preexec_fn=_limited,
    )
    return out.returncode, out.stderr, time.monotonic() - started


def bomb(levels: int = 9, width: int = 9) -> str:
    lines = ["schema: 1", f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\nrepros: {}\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (bomb(), "alias '*a3' would expand the document past 20,000 values"),
        ("schema: 1\nrepros: " + "[" * 100_000 + "]" * 100_000, "nested"),
        ("schema: 1\nrepros: {a: {timeout: " + "9" * 100_000 + "}}\n", "100000 digits"),
        ("schema: 1\x00\n", "the control character U+0000"),
    ],
    ids=["alias bomb", "nesting", "huge integer", "NUL"],
)
def test_validate_refuses_hostile_yaml_quickly_in_bounded_memory(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "matrix.yaml"
    path.write_text(text)
    code, err, elapsed = validate(path, tmp_path)
    assert code == ExitCode.CONFIG, err
    assert elapsed < 10  # the interpreter starts in a second or two; the check is instant
    assert err.count("\n") == 1
    assert len(err) < 300
    assert err.startswith("repromatrix: error: matrix.yaml:")
    assert expected in err
    assert "Traceback" not in err


@pytest.mark.parametrize("target", ["/proc/self/mem", "/dev/zero", "/dev/stdin", "."])
def test_validate_reads_only_regular_files(tmp_path: Path, target: str) -> None:
    code, err, _ = validate(target, tmp_path)
    assert code == ExitCode.CONFIG, err
    assert err.count("\n") == 1
    assert err.startswith(f"repromatrix: error: {target}: ")


def test_validate_does_not_wait_on_a_fifo(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "matrix.yaml")
    code, err, elapsed = validate(tmp_path / "matrix.yaml", tmp_path)
    assert code == ExitCode.CONFIG
    assert "not a regular file" in err
    assert elapsed < 10


DANGEROUS = {
    "a git URL that is an option": (
        "libraries:\n  lib:\n    git: '--upload-pack=touch {pwned}'\n    import: lib\n"
        "    versions: [{{git: v1}}]\n",
        "is not a git URL or path",
    ),
    "a revision that is an option": (
        "libraries:\n  lib:\n    git: ./nowhere\n    import: lib\n"
        "    versions: [{{git: '--output={pwned}'}}]\n",
        "is not a git revision",
    ),
    "a PyPI version that is an option": (
        "libraries:\n  lib:\n    pypi: lib\n    import: lib\n"
        "    versions: ['--index-url=file://{pwned}']\n",
        "is not a PEP 440 version",
    ),
}


@pytest.mark.parametrize("case", list(DANGEROUS), ids=list(DANGEROUS))
def test_run_refuses_a_dangerous_value_before_anything_runs(
    tmp_path: Path, run_cli: CliRunner, case: str
) -> None:
    pwned = tmp_path / "pwned"
    libraries, expected = DANGEROUS[case]
    matrix = write_matrix(
        tmp_path / "m.yaml",
        {"r": "script: {fx}/pass_repro.py, gpus: [cpu], libraries: {lib: all}"},
        extra=libraries.format(pwned=pwned),
    )
    out = run_cli("--matrix", str(matrix), "run", "--results", "res", "--no-progress")
    assert out.returncode == ExitCode.CONFIG, out.stderr
    assert out.stderr.count("\n") == 1
    assert out.stderr.startswith("repromatrix: error: m.yaml:")  # relative to the cwd
    assert expected in out.stderr
    assert not pwned.exists()
    assert not (tmp_path / "res").exists() or not list((tmp_path / "res").glob("*.jsonl"))


def test_a_script_outside_the_repository_is_refused(tmp_path: Path, run_cli: CliRunner) -> None:
    matrix = tmp_path / "project" / "m.yaml"
    matrix.parent.mkdir()
    matrix.write_text(
        "schema: 1\nrepros:\n  r: {script: ../../../../../../../../etc/passwd, gpus: [cpu]}\n"
    )
    out = run_cli("--matrix", str(matrix), "run", "--results", "res", "--no-progress")
    assert out.returncode == ExitCode.CONFIG
    assert "project/m.yaml:3:15: script '../../../../../../../../etc/passwd' is outside" in (
        out.stderr
    )


# -- outputs ----------------------------------------------------------------------------

TOKEN = "hf_Zq8sLwK3pT5vXy2Nm9AbCdEf"
CELL_SECRET = "s3cr3t-from-cell-env"
LEAKY = """\
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _fixture import args, finish

out, params = args()
secret, mine = os.environ["HF_TOKEN"], os.environ["MY_API_KEY"]
print(f"env: HF_TOKEN={secret} MY_API_KEY={mine}", flush=True)
print("\\x1b]52;c;ZXZpbA==\\x07\\x1b[2J" + "chatter " * 20_000, flush=True)
print(f"clone https://me:{mine}@git.example/x.git", file=sys.stderr, flush=True)
finish(out, "leaky", "regressed",
       f"\\x1b]8;;http://evil\\x07click\\x1b]8;;\\x07 token {secret}\\nsecond line {mine}",
       max_abs=1.0)
"""


def test_secrets_and_escapes_never_reach_records_reports_or_the_terminal(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    fx = fixture_copy(tmp_path)
    (fx / "leaky_repro.py").write_text(LEAKY)
    matrix = tmp_path / "m.yaml"
    matrix.write_text(
        f"schema: 1\nrepros:\n  leaky: {{script: {fx}/leaky_repro.py, gpus: [cpu]}}\n"
    )
    out = run_cli(
        "--matrix", str(matrix), "run", "--results", "res", "--no-progress",
        "--cell-env", f"MY_API_KEY={CELL_SECRET}", "--cell-env", "NVCC_APPEND_FLAGS=-O2",
        env={"HF_TOKEN": TOKEN},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stderr
    assert "regressed" in out.stderr
    report = run_cli(
        "--matrix", str(matrix), "report", "--results", "res", "--out", "rep",
        env={"HF_TOKEN": TOKEN},
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    (record,) = ResultStore(tmp_path / "res").load().results
    assert record.reason == "click token *** second line ***"
    assert record.provenance["harness"]["cell_env"] == {
        "MY_API_KEY": "***",
        "NVCC_APPEND_FLAGS": "-O2",
    }
    assert "https://***@git.example/x.git" in record.stderr_tail
    written = list((tmp_path / "res").iterdir()) + list((tmp_path / "rep").iterdir())
    written += [p for p in (tmp_path / ".repromatrix" / "runs").rglob("*") if p.is_file()]
    assert len(written) > 5
    for path in written:
        data = path.read_bytes()
        assert TOKEN.encode() not in data, path
        assert CELL_SECRET.encode() not in data, path
        if path.suffix in (".jsonl", ".html", ".md", ".xml", ".csv"):
            assert b"\x1b]52" not in data, path


def test_logs_are_trimmed_once_recorded_unless_kept(tmp_path: Path, run_cli: CliRunner) -> None:
    fx = fixture_copy(tmp_path)
    (fx / "chatty_repro.py").write_text(
        textwrap.dedent(
            """
            import os, sys
            sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
            from _fixture import args, finish
            out, params = args()
            for i in range(200_000):
                print(f"line {i} " + "x" * 40)
            finish(out, "chatty", "passed", "said a lot")
            """
        )
    )
    matrix = tmp_path / "m.yaml"
    matrix.write_text(
        f"schema: 1\nrepros:\n  chatty: {{script: {fx}/chatty_repro.py, gpus: [cpu]}}\n"
    )

    def logs(cache: str) -> list[Path]:
        return sorted((tmp_path / cache / "runs").rglob("stdout.log"))

    out = run_cli(
        "--matrix", str(matrix), "run", "--results", "a", "--cache", "c1", "--no-progress"
    )
    assert out.returncode == 0, out.stderr
    (log,) = logs("c1")
    assert log.stat().st_size < 70_000
    assert log.read_text().rstrip().endswith("line 199999 " + "x" * 40)
    kept = run_cli(
        "--matrix", str(matrix), "run", "--results", "b", "--cache", "c2", "--no-progress",
        "--keep-logs",
    )  # fmt: skip
    assert kept.returncode == 0, kept.stderr
    (log,) = logs("c2")
    assert log.stat().st_size > 9_000_000


# -- one run per results folder ---------------------------------------------------------


def _slow_matrix(tmp_path: Path) -> Path:
    marks = tmp_path / "started"
    return write_matrix(
        tmp_path / "m.yaml",
        {
            "slow": f"script: {{fx}}/slow_repro.py, gpus: [cpu], "
            f"params: {{started_dir: '{marks}', seconds_env: SLOW_S, "
            f"release: '{tmp_path / 'release'}'}}"
        },
    )


def _start(matrix: Path, tmp_path: Path, seconds: str, *extra: str) -> subprocess.Popen[str]:
    argv = cli_argv("--matrix", str(matrix), "run", "--results", "res", "--no-progress", *extra)
    env = dict(os.environ, SLOW_S=seconds)
    return subprocess.Popen(argv, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)


def _wait_started(tmp_path: Path, count: int = 1) -> None:
    deadline = time.monotonic() + 60
    marks = tmp_path / "started"
    while not (marks.is_dir() and len(list(marks.iterdir())) >= count):
        assert time.monotonic() < deadline, "the slow cell did not start"
        time.sleep(0.05)


def test_a_second_run_on_one_results_folder_refuses_or_waits(tmp_path: Path) -> None:
    matrix = _slow_matrix(tmp_path)
    # Until the test says so (the `release` file): on a loaded machine the second run
    # took longer to start than a fixed wait, and found the folder free.
    first = _start(matrix, tmp_path, "600")
    waiting: subprocess.Popen[str] | None = None
    try:
        _wait_started(tmp_path)
        assert f"pid {first.pid}" in (tmp_path / "res" / LOCK_NAME).read_text()
        second = subprocess.run(
            cli_argv("--matrix", str(matrix), "run", "--results", "res", "--no-progress"),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == ExitCode.RESULTS_BUSY
        assert int(ExitCode.RESULTS_BUSY) == 9
        assert second.stderr.count("\n") == 1
        assert second.stderr.startswith(
            f"repromatrix: error: --results res: another repromatrix run is using it (pid "
            f"{first.pid} on "
        )
        assert "pass --wait to start when it does" in second.stderr
        said = tmp_path / "waiting.err"
        with said.open("w") as err:
            waiting = subprocess.Popen(
                cli_argv("--matrix", str(matrix), "run", "--results", "res", "--no-progress",
                         "--wait"),
                cwd=tmp_path, env=dict(os.environ, SLOW_S="0"), stderr=err, text=True,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while "waiting for another run" not in said.read_text():
            assert waiting.poll() is None, said.read_text()
            assert time.monotonic() < deadline, said.read_text()
            time.sleep(0.05)
        (tmp_path / "release").touch()
        _, first_err = first.communicate(timeout=120)
        assert first.returncode == 0, first_err
        waiting.wait(timeout=120)
        waited_err = said.read_text()
        assert waiting.returncode == 0, waited_err
        assert "waiting for another run to finish with res" in waited_err
        assert "1 reused" in waited_err  # it ran nothing twice
    finally:
        for proc in (first, waiting):
            if proc is not None and proc.poll() is None:
                proc.kill()
    assert len(ResultStore(tmp_path / "res").load().results) == 1
    assert len(list((tmp_path / "started").iterdir())) == 1


def test_the_lock_does_not_outlive_a_killed_run(tmp_path: Path) -> None:
    matrix = _slow_matrix(tmp_path)
    first = _start(matrix, tmp_path, "600")
    _wait_started(tmp_path)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=60)
    started = time.monotonic()
    again = subprocess.run(
        cli_argv("--matrix", str(matrix), "run", "--results", "res", "--no-progress"),
        cwd=tmp_path,
        env=dict(os.environ, SLOW_S="0"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert time.monotonic() - started < 60
    assert len(ResultStore(tmp_path / "res").load().results) == 1


def test_report_needs_no_lock(tmp_path: Path) -> None:
    matrix = _slow_matrix(tmp_path)
    first = _start(matrix, tmp_path, "600")
    try:
        _wait_started(tmp_path)
        report = subprocess.run(
            cli_argv("--matrix", str(matrix), "report", "--results", "res", "--out", "rep"),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert report.returncode == 0, report.stderr
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)


def test_a_standard_error_that_takes_nothing_does_not_stop_the_run(tmp_path: Path) -> None:
    """`2>/dev/full` (or a log on a full disk): the first progress line failed, the run
    stopped after a few cells with an internal error and exit 1 (--fail-on's code)."""
    fx = fixture_copy(tmp_path)
    repros = {
        f"p{i}": f"script: {fx}/pass_repro.py, gpus: [cpu], params: {{i: {i}}}" for i in range(6)
    }
    matrix = write_matrix(tmp_path / "m.yaml", repros)
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            cli_argv("--matrix", str(matrix), "run", "--results", str(tmp_path / "res")),
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=full,
            timeout=300,
            check=False,
        )
    assert done.returncode == 0
    assert len(ResultStore(tmp_path / "res").load().results) == 6


RELINKER = """\
import json, os, sys
sys.path.insert(0, {fx!r})
from _fixture import args
out, params = args()
folder = os.path.dirname(os.path.abspath(out))  # the cell's own folder
fake = {fake!r}
with open(os.path.join(fake, os.path.basename(out)), "w") as f:
    json.dump({{"schema": 1, "repro": "r", "status": "passed", "reason": "HOST FILE WAS READ",
               "metrics": {{}}, "thresholds": {{}}, "provenance": {{}}}}, f)
os.chdir("/")
os.rename(folder, folder + ".gone")
os.symlink(fake, folder)
sys.exit(0)
"""


@pytest.mark.parametrize("isolate", [False, True])
def test_a_cell_that_swaps_its_folder_for_a_link_gets_nothing_read_through_it(
    tmp_path: Path, run_cli: CliRunner, isolate: bool
) -> None:
    """A repro renamed its own folder and left a link to another one of the host: the
    harness read that folder's result.json as the verdict ("passed") and cut its logs."""
    fx = fixture_copy(tmp_path)
    fake = tmp_path / "elsewhere"
    fake.mkdir()
    (fake / "stdout.log").write_text("x" * 200_000)
    script = fx / "relinker.py"
    script.write_text(RELINKER.format(fx=str(fx), fake=str(fake)))
    isolated = ", isolate: true" if isolate else ""
    matrix = write_matrix(tmp_path / "m.yaml", {"r": f"script: {script}, gpus: [cpu]{isolated}"})
    out = run_cli("--matrix", str(matrix), "run", "--no-progress", "--results", "res")
    assert out.returncode == 0, out.stderr
    (record,) = ResultStore(tmp_path / "res").load().results
    assert record.status.value == "error"
    assert "replaced its folder" in record.reason
    assert "HOST FILE WAS READ" not in record.reason
    assert (fake / "stdout.log").stat().st_size == 200_000  # not trimmed through the link
