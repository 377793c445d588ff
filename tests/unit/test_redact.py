"""Secrets never recorded: credential-named variables, URL credentials, named fields."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cells import CELL, outcome

from repromatrix import logs, redact
from repromatrix.executors.judge import judge
from repromatrix.model import Status
from repromatrix.records import Result

TOKEN = "hf_Zq8sLwK3pT5vXy2Nm9AbCdEf"
PASSWORD = "correct-horse-battery"


@pytest.fixture(autouse=True)
def session() -> Iterator[None]:
    redact.forget()
    yield
    redact.forget()
    logs.keep_whole(False)


@pytest.mark.parametrize(
    "name",
    [
        "HF_TOKEN",
        "GITHUB_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "OPENAI_API_KEY",
        "NGC_API_KEY",
        "WANDB_API_KEY",
        "apiKey",
        "DB_PASSWORD",
        "MYSQL_PWD_PASSWD",
        "CLIENT_SECRET",
        "SSH_PRIVATE_KEY",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "AUTH_HEADER",
        "PROXY_AUTHORIZATION",
        "SESSION_ID",
        "SESSION",
        "AWS_SESSION_TOKEN",
        "COOKIE",
        "GHTOKEN",
        "GITHUB_PAT",
        "STRIPE_KEY",
        "x-api-key",
    ],
)
def test_credential_names(name: str) -> None:
    assert redact.secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "REPROMATRIX_KEY",
        "REPROMATRIX_CELL",
        "TOKENIZERS_PARALLELISM",
        "GIT_AUTHOR_NAME",
        "XAUTHORITY",
        "KEY_METRIC",
        "PATH",
        "HOME",
        "CUDA_VISIBLE_DEVICES",
        "NVCC_APPEND_FLAGS",
        "PYTHONHASHSEED",
        "num_tokens",
        "PASSTHROUGH",
        "MONKEY",
        "CACHE_KEY",
        "XDG_SESSION_TYPE",
        "XDG_SESSION_CLASS",
        "DESKTOP_SESSION",
        "MY_SESSION",
        "NOX_CURRENT_SESSION",
        "DBUS_SESSION_BUS_ADDRESS",
        "SESSION_MANAGER",
    ],
)
def test_names_that_are_not_credentials(name: str) -> None:
    assert not redact.secret_name(name)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://user:tok@github.com/o/r.git", "https://***@github.com/o/r.git"),
        ("clone git+ssh://git:pw@h:22/x failed", "clone git+ssh://***@h:22/x failed"),
        ("pip: http://__token__:pypi-AgEI@host/simple/", "pip: http://***@host/simple/"),
        ("no credentials: https://github.com/o/r", "no credentials: https://github.com/o/r"),
        ("mail me at a@b.c", "mail me at a@b.c"),
        ("ssh://git@host/x", "ssh://***@host/x"),
    ],
)
def test_url_credentials_are_stripped(text: str, expected: str) -> None:
    assert redact.strip_url_credentials(text) == expected


def test_values_of_credential_variables_are_hidden_everywhere_in_text() -> None:
    redactor = redact.remember(
        {"HF_TOKEN": TOKEN, "PATH": "/usr/bin", "SESSION": "1"}, {"DB_PASSWORD": PASSWORD}
    )
    text = f"token={TOKEN} pw={PASSWORD} path=/usr/bin one=1"
    assert redactor.text(text) == "token=*** pw=*** path=/usr/bin one=1"
    assert redact.current() is redactor


def test_a_record_made_here_is_redacted_in_reason_tails_and_provenance() -> None:
    redact.remember({"HF_TOKEN": TOKEN})
    record = Result(
        key="k",
        cell_id="c",
        repro="r",
        base="host",
        gpu="cpu",
        status=Status.ERROR,
        reason=f"401 for {TOKEN} at https://me:{PASSWORD}@hub.example/x",
        stdout_tail=f"env: HF_TOKEN={TOKEN}\n",
        stderr_tail=f"Authorization: Bearer {TOKEN}\n",
        provenance={
            "harness": {"cell_env": {"HF_TOKEN": TOKEN, "MY_PASSWORD": "abc", "N": "1"}},
            "env": {"api_key": 12345, "session": "s3ss10n-v4lu3", "num_token": 128},
            "log": [f"using {TOKEN}"],
        },
    )
    text = json.dumps(record.record())
    assert TOKEN not in text
    assert PASSWORD not in text
    assert "s3ss10n-v4lu3" not in text
    assert record.reason == "401 for *** at https://***@hub.example/x"
    assert record.provenance["harness"]["cell_env"] == {
        "HF_TOKEN": "***",
        "MY_PASSWORD": "***",  # under its name, however short
        "N": "1",
    }
    assert record.provenance["env"]["num_token"] == 128  # numbers are shapes, not secrets


def test_judge_redacts_what_a_repro_wrote(tmp_path: Path) -> None:
    redact.remember({}, {"NGC_API_KEY": TOKEN})
    result = tmp_path / "result.json"
    result.write_text(
        json.dumps(
            {
                "schema": 1,
                "repro": "r",
                "status": "passed",
                "reason": f"key {TOKEN} worked",
                "provenance": {"env": {"NGC_API_KEY": TOKEN}, "url": f"https://u:{TOKEN}@h"},
            }
        )
    )
    ran = outcome(
        result,
        stdout_tail=f"printing {TOKEN}",
        harness={"slot": "cpu0", "cell_env": {"NGC_API_KEY": TOKEN}},
    )
    cell = CELL
    record = judge(cell, ran, host="h", run_id="run")
    assert record.status is Status.PASSED
    assert TOKEN not in json.dumps(record.record())
    assert record.reason == "key *** worked"


def test_trimmed_logs_keep_their_tail_redacted(tmp_path: Path) -> None:
    redact.remember({"HF_TOKEN": TOKEN})
    big = tmp_path / "stdout.log"
    big.write_text("".join(f"line {i}\n" for i in range(100_000)) + f"the end {TOKEN}\n")
    small = tmp_path / "stderr.log"
    small.write_text(f"short {TOKEN}\n")
    clean = tmp_path / "env-build.log"
    clean.write_text("nothing to hide\n")
    before = clean.stat().st_mtime_ns
    freed = logs.trim_cell_logs(tmp_path)
    kept = big.read_text()
    assert big.stat().st_size <= logs.KEEP_BYTES + 200
    assert freed > 900_000
    assert kept.startswith("[repromatrix: the first ")
    assert "run with --keep-logs to keep whole logs]" in kept.splitlines()[0]
    assert kept.splitlines()[1].startswith("line ")  # from a line start
    assert kept.endswith("the end ***\n")
    assert small.read_text() == "short ***\n"
    assert clean.stat().st_mtime_ns == before  # untouched


def test_keep_logs_leaves_them_whole_but_without_secrets(tmp_path: Path) -> None:
    log = tmp_path / "stdout.log"
    log.write_text("x" * 500_000)
    (tmp_path / "stderr.log").write_text(f"line\n{TOKEN} twice {TOKEN}\nend\n")
    logs.keep_whole(True)
    assert logs.trim_cell_logs(tmp_path) == 0
    assert log.stat().st_size == 500_000
    assert (tmp_path / "stderr.log").read_text() == f"line\n{TOKEN} twice {TOKEN}\nend\n"
    redact.remember({"HF_TOKEN": TOKEN})
    assert logs.trim_cell_logs(tmp_path) == 0
    assert log.stat().st_size == 500_000
    assert (tmp_path / "stderr.log").read_text() == "line\n*** twice ***\nend\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stderr.log", "stdout.log"]


def test_a_log_replaced_by_a_link_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("y" * 500_000)
    cell = tmp_path / "cell"
    cell.mkdir()
    (cell / "stdout.log").symlink_to(target)
    (cell / ".stdout.log.trimmed").symlink_to(tmp_path / "elsewhere")
    assert logs.trim_cell_logs(cell) == 0
    assert target.read_text() == "y" * 500_000
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("keep", [False, True], ids=["trimmed", "kept whole"])
def test_a_log_or_result_replaced_by_a_fifo_does_not_hold_up_the_run(
    tmp_path: Path, keep: bool
) -> None:
    """Opening a FIFO for reading waits for a writer: it once stopped a whole run for good
    (no timeout, no Ctrl-C) when a repro left one where its result JSON goes."""
    redact.remember({"HF_TOKEN": TOKEN})
    for name in ("stdout.log", "result.json"):
        os.mkfifo(tmp_path / name)
    logs.keep_whole(keep)
    try:
        done = threading.Event()

        def trim() -> None:
            logs.trim_cell_logs(tmp_path)
            done.set()

        worker = threading.Thread(target=trim, daemon=True)
        worker.start()
        worker.join(timeout=10)
        assert done.is_set(), "trimming waited on a FIFO"
    finally:
        logs.keep_whole(False)
        # Let a stuck open (if any) go, so no thread outlives the test.
        for name in ("stdout.log", "result.json"):
            with contextlib.suppress(OSError):
                os.close(os.open(tmp_path / name, os.O_WRONLY | os.O_NONBLOCK))
    assert stat.S_ISFIFO((tmp_path / "stdout.log").lstat().st_mode)


def test_worker_logs_are_trimmed_and_redacted_when_the_session_stops(tmp_path: Path) -> None:
    """A worker's own log (what it printed outside its cells) is an output like the cells'
    logs: the session that stopped the worker trims it and masks its secrets."""
    redact.remember({"HF_TOKEN": TOKEN})
    chatty = tmp_path / "cpu0-abc.log"
    chatty.write_text("".join(f"import noise {i}\n" for i in range(50_000)) + f"{TOKEN}\n")
    crash = tmp_path / "cpu1-abc.log"
    crash.write_text(f"Traceback: token={TOKEN}\n")
    freed = logs.trim_worker_logs([chatty, crash, tmp_path / "never-written.log"])
    assert freed > 500_000
    assert chatty.stat().st_size <= logs.KEEP_BYTES + 200
    assert chatty.read_text().endswith("***\n")
    assert crash.read_text() == "Traceback: token=***\n"


_BOUNDED = """
import resource, sys
from pathlib import Path
from repromatrix import logs, redact
redact.remember({{"HF_TOKEN": {token!r}}})
logs.keep_whole({keep})
with open("/proc/self/status") as f:
    size = next(int(ln.split()[1]) for ln in f if ln.startswith("VmSize:")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (size + (256 << 20), size + (256 << 20)))
logs.trim_cell_logs(Path({folder!r}))
"""


def _bounded_trim(folder: Path, keep: bool) -> None:
    """`trim_cell_logs` in a process that may take 256 MiB more than it has."""
    code = _BOUNDED.format(token=TOKEN, keep=keep, folder=str(folder))
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_result_json_of_gigabytes_is_cut_to_its_tail_in_bounded_memory(tmp_path: Path) -> None:
    """A repro's result JSON past the bound a result may have (its record says so) was
    read whole to be redacted: a sparse 10 GiB one, made in an instant, took 8 GiB of the
    runner's memory and two minutes, and a larger one would have killed the run."""
    result = tmp_path / "result.json"
    with result.open("wb") as f:
        f.truncate(1 << 30)
        f.seek(1 << 30)
        f.write(f'\n"the end {TOKEN}"\n'.encode())
    _bounded_trim(tmp_path, keep=False)
    kept = result.read_text()
    assert len(kept) <= logs.KEEP_BYTES + 300
    assert kept.startswith("[repromatrix: the first ")
    assert kept.endswith('"the end ***"\n')


def test_a_whole_log_without_newlines_is_redacted_in_bounded_memory(tmp_path: Path) -> None:
    """--keep-logs redacted line by line: 768 MiB of output without a newline (binary junk
    on stdout) was one line, read whole. A secret split between two pieces read is found."""
    log = tmp_path / "stdout.log"
    split = (1 << 20) - 5  # across the first piece's end
    with log.open("wb") as f:
        f.truncate(768 << 20)
        f.seek(split)
        f.write(TOKEN.encode())
        f.seek(768 << 20)
        f.write(f"end {TOKEN}".encode())
    _bounded_trim(tmp_path, keep=True)
    with log.open("rb") as f:
        f.seek(split)
        assert f.read(len(TOKEN)) == b"***" + b"\0" * (len(TOKEN) - 3)
        f.seek(-20, os.SEEK_END)
        assert f.read().endswith(b"end ***")
    whole = (768 << 20) + len("end ") + len(TOKEN)
    assert log.stat().st_size == whole - 2 * (len(TOKEN) - len("***"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stdout.log"]
