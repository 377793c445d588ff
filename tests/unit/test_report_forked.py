"""Report writers run in forked children: their files appear, their failures come back
as the exceptions the caller already handles, and a failing body stops them."""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from clihelpers import CliRunner

from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.report import forked
from repromatrix.report.forked import fork_possible, side_by_side
from repromatrix.store import ResultStore

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")


@pytest.fixture(autouse=True)
def forking(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Earlier tests of a whole suite leave idle threads in this process, which turn
    forking off: the children's behaviour is tested here as if there were none, and
    `fork_possible` itself in a fresh interpreter."""
    if "threads" not in request.node.name:
        monkeypatch.setattr(forked, "fork_possible", lambda: True)


def test_a_fresh_single_threaded_process_may_fork() -> None:
    code = "from repromatrix.report.forked import fork_possible; print(fork_possible())"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "True"


def _writer(path: Path, text: str = "x"):  # type: ignore[no-untyped-def]
    def write() -> None:
        path.write_text(f"{text} {os.getpid()}")

    return write


def test_writers_run_in_children_beside_the_body(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.xml"
    with side_by_side([("a.csv", _writer(a)), ("b.xml", _writer(b))]):
        (tmp_path / "page").write_text("here")
    pids = {int(p.read_text().split()[1]) for p in (a, b)}
    assert len(pids) == 2  # each in a process of its own
    assert os.getpid() not in pids


def test_a_full_disk_in_a_child_comes_back_as_that_oserror(tmp_path: Path) -> None:
    def full() -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "a.csv"))

    with pytest.raises(OSError, match="No space left") as caught, side_by_side([("a.csv", full)]):
        pass
    assert caught.value.errno == errno.ENOSPC
    assert caught.value.filename == str(tmp_path / "a.csv")


def test_another_error_in_a_child_names_the_file(tmp_path: Path) -> None:
    def broken() -> None:
        raise ValueError("bad cell")

    failed = r"writing junit\.xml failed: ValueError: bad cell"
    with pytest.raises(RuntimeError, match=failed), side_by_side([("junit.xml", broken)]):
        pass


def test_a_child_killed_by_a_signal_is_an_error_not_a_missing_file(tmp_path: Path) -> None:
    def killed() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    said = r"its process was killed by signal 9"
    with (
        pytest.raises(forked.WriterKilled, match=said) as caught,
        side_by_side([("results.csv", killed)]),
    ):
        pass
    assert caught.value.filename == "results.csv"


def test_a_failing_body_stops_the_children_and_its_error_wins(tmp_path: Path) -> None:
    started = tmp_path / "started"

    def slow() -> None:
        started.write_text(str(os.getpid()))
        time.sleep(60)
        (tmp_path / "late").write_text("should not be written")

    def body() -> None:
        with side_by_side([("slow", slow)]):
            while not (started.exists() and started.read_text()):  # made, then written
                time.sleep(0.01)
            raise KeyError("body")

    begun = time.monotonic()
    with pytest.raises(KeyError, match="body"):
        body()
    assert time.monotonic() - begun < 30  # not waited out
    pid = int(started.read_text())
    with pytest.raises(ProcessLookupError):  # reaped: no zombie left either
        os.kill(pid, 0)
    assert not (tmp_path / "late").exists()


def test_with_threads_running_the_writers_run_here_in_turn(tmp_path: Path) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert not fork_possible()
        a = tmp_path / "a.csv"
        with side_by_side([("a.csv", _writer(a))]):
            assert not a.exists()  # after the body, not beside it
        assert int(a.read_text().split()[1]) == os.getpid()
    finally:
        stop.set()
        thread.join()


def test_report_jobs_2_writes_the_same_files_as_jobs_1(tmp_path: Path, run_cli: CliRunner) -> None:
    """`report --jobs 2` (the tables and junit.xml from a forked child) changes nothing
    in what is written, nor does `--jobs 4`; `--jobs 0` and `--jobs 65` are refused."""
    store = ResultStore(tmp_path / "res")
    for i in range(40):
        status = Status.REGRESSED if i % 7 == 3 else Status.PASSED
        store.append(
            Result(
                key=f"k{i}",
                cell_id=f"r[cpu,host,lib=1.{i}]",
                repro="r",
                base="host",
                gpu="cpu",
                pins={"lib": f"1.{i}"},
                status=status,
                reason=status.value,
                metrics={"max_abs": i / 100},
                thresholds={"max_abs": 0.05},
                finished="2026-01-01T00:00:00+00:00",
            )
        )
    for jobs in ("1", "2", "4"):
        out = run_cli("report", "--results", str(tmp_path / "res"), "--out", f"o{jobs}",
                      "--jobs", jobs)  # fmt: skip
        assert out.returncode == 0, out.stderr
    names = sorted(p.name for p in (tmp_path / "o1").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "o2").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "o4").iterdir())
    assert {"results.csv", "junit.xml", "index.html"} <= set(names)
    # compat.html says when it was made, to the minute: two reports straddling one differ.
    stamp = re.compile(rb"Generated [^<]*? \xc2\xb7 ")
    for name in ("results.csv", "junit.xml", "results.parquet", "compat.html"):
        if name in names:
            one, two, four = ((tmp_path / out / name).read_bytes() for out in ("o1", "o2", "o4"))
            assert stamp.sub(b"", one) == stamp.sub(b"", two) == stamp.sub(b"", four)
    for wrong in ("0", "65"):
        refused = run_cli("report", "--results", str(tmp_path / "res"), "--jobs", wrong)
        assert refused.returncode == 64
        assert f"--jobs {wrong}: give a number from 1 to 64" in refused.stderr


def _records(store: ResultStore) -> None:
    """Cells of three repros on two GPUs, some regressed, some flaky (two records)."""
    for i in range(60):
        repro, gpu, version = f"r{i % 3}", ("h100", "a100")[i // 3 % 2], f"1.{i // 6}"
        status = Status.REGRESSED if i % 7 == 3 else Status.PASSED
        for again in range(1 + (i % 11 == 0)):
            flipped = again and status is Status.PASSED
            store.append(
                Result(
                    key=f"k{i}",
                    cell_id=f"{repro}[{gpu},host,lib={version}]",
                    repro=repro,
                    base="host",
                    gpu=gpu,
                    pins={"lib": version},
                    status=Status.REGRESSED if flipped else status,
                    reason=status.value,
                    metrics={"max_abs": i / 100},
                    thresholds={"max_abs": 0.05},
                    duration_s=1.5,
                    finished=f"2026-01-01T00:0{again}:00+00:00",
                )
            )


def test_the_tables_are_written_while_the_report_is_built(tmp_path: Path) -> None:
    """With a second CPU the child writing results.csv (and later junit.xml) starts once
    the cells are gathered, not after the whole report is built: it works beside the
    build, and its files are the same as `--jobs 1` writes (junit.xml's cells in the
    report's order, sent to it once the report is built)."""
    _records(ResultStore(tmp_path / "res"))
    code = (
        "import json, sys, time\n"
        "from pathlib import Path\n"
        "import repromatrix.report as report\n"
        "real = report.build_report\n"
        "def waiting(*args, **kwargs):\n"
        "    # The tables' CSV appears in the staging folder while the report is built.\n"
        "    until = time.monotonic() + 20\n"
        "    seen = False\n"
        "    while not seen and time.monotonic() < until:\n"
        "        seen = any(p.stat().st_size for p in Path('out').glob('.*/results.csv'))\n"
        "        time.sleep(0.05)\n"
        "    Path('seen').write_text(json.dumps(seen))\n"
        "    return real(*args, **kwargs)\n"
        "report.build_report = waiting\n"
        "from repromatrix.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    argv = ["report", "--results", "res", "--out", "out", "--jobs", "2"]
    done = subprocess.run(
        [sys.executable, "-c", code, *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "seen").read_text() == "true"
    one = subprocess.run(
        [sys.executable, "-m", "repromatrix", "report", "--results", "res", "--out", "one",
         "--jobs", "1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert one.returncode == 0, one.stderr
    junit = (tmp_path / "out" / "junit.xml").read_text()
    assert junit == (tmp_path / "one" / "junit.xml").read_text()
    assert junit.count("<testsuite ") == 3
    assert junit.count('type="flaky"') >= 1
    for name in ("results.csv", "results.parquet"):
        if (tmp_path / "one" / name).exists():
            assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "one" / name).read_bytes()


def test_the_child_makes_the_details_of_the_pages_last_cells(tmp_path: Path) -> None:
    """With a second CPU the child, its tables written, makes the details of the page's
    last cells (`CHILD_DETAILS_SHARE`) while this process makes the rest of the page: both
    make some, the child most (its tables end as the report is built, and this process
    still has the page to write around them: with 40% the child ended 0.4 s before it),
    and index.html is the one `--jobs 1` writes, but for when it was made."""
    _records(ResultStore(tmp_path / "res"))
    code = (
        "import os, sys\n"
        "from repromatrix.report import blob\n"
        "real = blob.DetailsWriter.cell\n"
        "MAIN = os.getpid()\n"
        "def cell(self, e):\n"
        "    with open('makers', 'a') as f:\n"
        "        f.write(f'{os.getpid()}\\n')\n"
        "    if os.getpid() != MAIN:\n"
        "        with open('by_child', 'a') as f:\n"
        "            f.write('x')\n"
        "    return real(self, e)\n"
        "blob.DetailsWriter.cell = cell\n"
        "from repromatrix.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    outs = {}
    for jobs in ("2", "1"):
        done = subprocess.run(
            [sys.executable, "-c", code, "report", "--results", "res", "--out", f"o{jobs}",
             "--jobs", jobs],
            cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        makers = (tmp_path / "makers").read_text().split()
        (tmp_path / "makers").unlink()
        outs[jobs] = makers
    assert len(set(outs["2"])) == 2  # this process and its child
    assert len(set(outs["1"])) == 1
    assert len(outs["2"]) == len(outs["1"])  # each cell once
    by_child = len((tmp_path / "by_child").read_text())
    assert len(outs["2"]) / 2 < by_child < len(outs["2"])
    stamp = re.compile(rb"Generated [^<]*? \xc2\xb7 ")
    two, one = ((tmp_path / f"o{j}" / "index.html").read_bytes() for j in ("2", "1"))
    assert stamp.sub(b"", two) == stamp.sub(b"", one)


def test_the_child_makes_the_details_of_as_many_cells_as_weigh_its_bytes(
    tmp_path: Path,
) -> None:
    """The child's share of the page's details is bounded by what their records weigh
    (`CHILD_DETAILS_BYTES`): records shaped like a GPU host's (nested provenance,
    kilobytes of stderr) took 880 MiB with 40% of their cells made by the child, which
    copies what it reads and lived the longer, and 642 MiB with none."""
    store = ResultStore(tmp_path / "res")
    for i in range(60):
        store.append(
            Result(
                key=f"k{i}",
                cell_id=f"r[h100,host,lib=1.{i}]",
                repro="r",
                base="host",
                gpu="h100",
                pins={"lib": f"1.{i}"},
                status=Status.PASSED,
                metrics={"max_abs": i / 100},
                stderr_tail=f"warning {i}\n" * 400,  # 4,000 characters and more
                finished="2026-01-01T00:00:00+00:00",
            )
        )
    code = (
        "import os, sys\n"
        "from repromatrix import report\n"
        "from repromatrix.report import blob\n"
        "report.CHILD_DETAILS_BYTES = 10_000\n"
        "real = blob.DetailsWriter.cell\n"
        "def cell(self, e):\n"
        "    with open('makers', 'a') as f:\n"
        "        f.write(f'{os.getpid()}\\n')\n"
        "    return real(self, e)\n"
        "blob.DetailsWriter.cell = cell\n"
        "from repromatrix.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "report", "--results", "res", "--out", "out",
         "--jobs", "2"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    makers = (tmp_path / "makers").read_text().split()
    counts = sorted(makers.count(pid) for pid in set(makers))
    assert counts == [2, 58]  # 40% would have been 24


def _report_with_a_dying_child(tmp_path: Path, how: str) -> subprocess.CompletedProcess[str]:
    """`report --jobs 2` in a process whose child (the tables and junit.xml) is killed
    (`how`: "kill") or finds the disk full ("full"): a stand-in only for that failure."""
    code = (
        "import errno, os, signal, sys\n"
        "from repromatrix.report import table\n"
        "def dying(*args, **kwargs):\n"
        "    if sys.argv[1] == 'kill':\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    raise OSError(errno.ENOSPC, 'No space left on device', str(kwargs['csv_path']))\n"
        "table.write_tables = dying\n"
        "from repromatrix.cli import main\n"
        "sys.exit(main(sys.argv[2:]))\n"
    )
    argv = ["report", "--results", "res", "--out", "out", "--jobs", "2"]
    return subprocess.run(
        [sys.executable, "-c", code, how, *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("how", ["kill", "full"])
def test_a_child_that_dies_fails_the_report_and_leaves_the_last_one_whole(
    tmp_path: Path, run_cli: CliRunner, how: str
) -> None:
    """A forked writer killed (out of memory) or failing ends `report --jobs 2` with exit
    10, the last report left whole, and a fix that fits: a killed child is no file to make
    replaceable (what the message said), but memory to spare (`--jobs 1`)."""
    store = ResultStore(tmp_path / "res")
    store.append(
        Result(
            key="k",
            cell_id="r[cpu,host,lib=1]",
            repro="r",
            base="host",
            gpu="cpu",
            pins={"lib": "1"},
            status=Status.PASSED,
            reason="ok",
        )
    )
    assert run_cli("report", "--results", "res", "--out", "out", "--jobs", "1").returncode == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    failed = _report_with_a_dying_child(tmp_path, how)
    assert failed.returncode == 10, failed.stderr
    assert "Traceback" not in failed.stderr
    after = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    assert after == before  # nothing replaced, no staging folder left
    if how == "kill":
        assert "killed by signal 9" in failed.stderr
        assert "--jobs 1" in failed.stderr
        assert "a file you can replace" not in failed.stderr
    else:
        assert "No space left on device" in failed.stderr
        assert "free some space" in failed.stderr


@pytest.mark.parametrize("cpus", [1, 2])
def test_report_forks_its_slow_writers_by_default_only_with_a_second_cpu(cpus: int) -> None:
    """`report` without --jobs: as many processes as it may use CPUs, up to 4 (the tables
    and junit.xml beside the pages, a large file parsed in parts), one where it is held to
    one (`taskset -c 0`, a container's cpuset)."""
    if cpus > len(os.sched_getaffinity(0)):
        pytest.fail("this test needs a machine with 2 CPUs (CI has them)")
    allowed = sorted(os.sched_getaffinity(0))[:cpus]
    code = "from repromatrix.report.forked import default_jobs; print(default_jobs())"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        preexec_fn=lambda: os.sched_setaffinity(0, allowed),
    )
    assert done.stdout.strip() == str(2 if cpus > 1 else 1)
