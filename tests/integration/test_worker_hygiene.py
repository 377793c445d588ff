"""What one cell does in a persistent worker must not reach another cell's record: a
process it forks, the process state it changes (environment, signals, umask, streams),
helper modules of the same name in two repros' folders, or bytes it writes into the
worker's connection. Real workers; each case once failed (wrong records, exit 0)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from clihelpers import CliRunner, pids_alive
from worker_cells import mode_cells, passed_in_one_worker, run_cells, worker

from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.store import ResultStore

pytestmark = pytest.mark.integration

REPRO = textwrap.dedent("""\
    import os, signal, stat, sys, time
    import fractions, ssl, statistics  # as a library the repro imports would

    def verdict(status, reason):
        return {"schema": 1, "status": status, "reason": reason}

    def square(x):
        return x * x

    def run(params):
        mode = params["mode"]
        if mode == "fork_child_exits":  # the child ends with sys.exit(0), as children do
            if os.fork() == 0:
                time.sleep(0.3)
                sys.exit(0)
            return verdict("passed", "parent")
        if mode == "fork_child_returns":
            if os.fork() == 0:
                time.sleep(0.3)
            return verdict("passed", "parent")
        if mode == "fork_then_crash":  # the child outlives the worker
            if os.fork() == 0:
                time.sleep(1000)
            import ctypes
            ctypes.string_at(0)
        if mode == "close_fds":  # the inherited ones too (a sandboxing library does)
            os.closerange(3, 4096)
            return verdict("passed", "closed")
        if mode == "regressed":
            time.sleep(1)
            return verdict("regressed", "bad")
        if mode == "leave_state":
            os.environ["LEFT"] = "by an earlier cell"
            os.environ.pop("PATH", None)
            signal.alarm(1)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            os.umask(0o777)
            sys.stdout = open(os.devnull, "w")
            return verdict("passed", "left state behind")
        if mode == "check_state":
            time.sleep(1.5)  # past the alarm the earlier cell set
            clean = (
                "LEFT" not in os.environ
                and bool(os.environ.get("PATH"))
                and os.umask(0o022) == 0o022
                and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
                and sys.stdout is sys.__stdout__
            )
            return verdict("passed" if clean else "regressed", f"clean={clean}")
        if mode == "leave_timers":  # each once made the next cell an error or a timeout
            import faulthandler
            signal.setitimer(signal.ITIMER_PROF, 0.3)
            faulthandler.dump_traceback_later(1, exit=True)
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            sys.path.insert(0, "/left/by/a/cell")
            class Cycle:
                def __init__(self):
                    self.me = self
                def __del__(self):
                    print("finalizer of the earlier cell")
            Cycle()
            return verdict("passed", "left timers")
        if mode == "check_timers":
            end = time.process_time() + 0.8
            while time.process_time() < end:  # past the CPU timer
                pass
            time.sleep(1.5)  # past the hang guard
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
            junk = [[i] for i in range(200000)]  # a collection here runs old finalizers
            clean = signal.SIGALRM not in blocked and "/left/by/a/cell" not in sys.path
            return verdict("passed" if clean else "regressed", f"clean={clean} {len(junk)}")
        if mode == "harness_names":  # what `import ray` or `import docker` would find
            import importlib.util
            found = {n: getattr(importlib.util.find_spec(n), "origin", None) or ""
                     for n in ("ray", "docker", "base", "local", "judge", "workers")}
            ours = sorted(n for n, origin in found.items() if "repromatrix" in origin)
            return verdict("regressed" if ours else "passed", f"harness modules: {ours}")
        if mode == "spawn_pool":  # as torch.multiprocessing starts processes
            import multiprocessing
            with multiprocessing.get_context("spawn").Pool(2) as pool:
                got = pool.map(square, range(4), chunksize=1)
            return verdict("passed" if got == [0, 1, 4, 9] else "regressed", str(got))
        if mode == "leave_interpreter_state":
            import socket, warnings
            warnings.simplefilter("error")
            socket.setdefaulttimeout(1e-6)
            os.environ["TZ"] = "Asia/Tokyo"
            time.tzset()
            import decimal
            decimal.getcontext().prec = 3
            sys.set_int_max_str_digits(640)
            sys.setprofile(lambda *args: None)
            return verdict("passed", "left warnings, socket and time zone state")
        if mode == "check_interpreter_state":
            import decimal, socket, warnings
            warnings.warn("harmless", DeprecationWarning)
            clean = socket.getdefaulttimeout() is None and "JST" not in time.tzname
            clean = clean and sys.getprofile() is None and len(str(10**1000)) == 1001
            clean = clean and len(str(decimal.Decimal(1) / 7)) > 20
            return verdict("passed" if clean else "regressed", f"clean={clean} tz={time.tzname}")
        if mode == "leave_argv_and_logging":  # argparse'd or basicConfig'd inside run()
            import logging
            sys.argv[:] = ["repro.py", "--fast"]
            logging.basicConfig(level=logging.DEBUG, filename="cell.log")
            logging.getLogger().addHandler(logging.StreamHandler(sys.stdout))
            logging.disable(logging.WARNING)
            return verdict("passed", "left argv and logging")
        if mode == "check_argv_and_logging":
            import logging
            logging.basicConfig(level=logging.INFO, filename="mine.log")
            logging.getLogger().error("the second cell's line")
            logging.shutdown()
            with open("mine.log") as f:
                logged = f.read()
            clean = "--fast" not in sys.argv and "the second cell's line" in logged
            clean = clean and logging.getLogger().level == logging.INFO
            return verdict("passed" if clean else "regressed", f"argv={sys.argv} log={logged!r}")
        if mode == "replace_modules":  # a mock left in sys.modules, a module dropped
            import types
            fake = types.ModuleType("statistics")
            fake.mean = lambda data: -1.0
            sys.modules["statistics"] = fake
            del sys.modules["fractions"]
            return verdict("passed", "replaced statistics, dropped fractions")
        if mode == "check_modules":
            import fractions, statistics
            clean = statistics.mean([1.0, 2.0, 3.0]) == 2.0
            clean = clean and statistics.Fraction is fractions.Fraction
            return verdict("passed" if clean else "regressed", f"clean={clean}")
        if mode in ("hold_a_lock", "take_the_lock"):  # a lock file, as tools guard a GPU
            import fcntl
            global HELD
            lock = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "gpu.lock"), "w")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                return verdict("regressed", f"the lock is taken: {exc}")
            if mode == "hold_a_lock":
                HELD = lock  # kept: a process per cell would release it as it ends
            else:
                lock.close()
            return verdict("passed", "took the lock")
        if mode == "exit_in_run":  # as its command line would end
            sys.exit(0)
        if mode == "interrupt_in_run":
            raise KeyboardInterrupt
        if mode == "base_exception_in_run":
            class Abort(BaseException):
                pass
            raise Abort("past every `except Exception` of the library")
        if mode == "remove_own_folder":  # a repro that cleans up after itself
            import shutil
            shutil.rmtree(os.getcwd())
            return verdict("passed", "removed its folder")
        if mode == "leak_descriptors":  # os.open/os.pipe never closed, up to the limit
            try:
                while True:
                    os.open(os.devnull, os.O_RDONLY)
            except OSError:
                pass
            return verdict("passed", "leaked descriptors")
        if mode == "leave_runtime_state":  # a benchmark's usual set-up, never undone
            import gc, locale
            gc.disable()
            gc.set_threshold(1, 1, 1)
            locale.setlocale(locale.LC_ALL, "C.UTF-8")
            return verdict("passed", "left gc and locale state")
        if mode == "check_runtime_state":
            import gc, locale
            clean = gc.isenabled() and gc.get_threshold()[0] != 1
            clean = clean and locale.setlocale(locale.LC_COLLATE) == "C"
            return verdict("passed" if clean else "regressed", f"clean={clean}")
        if mode == "leave_native":  # crash dumps to a file of its own, symbols global
            import faulthandler
            faulthandler.enable(file=open("faults.log", "w"))
            sys.setdlopenflags(os.RTLD_GLOBAL | os.RTLD_NOW)
            return verdict("passed", "left faulthandler and dlopen flags")
        if mode == "check_native":
            import faulthandler
            clean = not faulthandler.is_enabled() and not sys.getdlopenflags() & os.RTLD_GLOBAL
            return verdict("passed" if clean else "regressed", f"clean={clean}")
        if mode == "leave_callbacks":  # a profiler's set-up, left in place
            import gc, threading
            gc.callbacks.append(lambda phase, info: print("collecting", phase))
            threading.settrace(lambda *args: None)
            threading.setprofile(lambda *args: None)
            return verdict("passed", "left gc callbacks and thread hooks")
        if mode == "check_callbacks":
            import gc, threading
            clean = not gc.callbacks and threading.gettrace() is threading.getprofile() is None
            return verdict("passed" if clean else "regressed", f"clean={clean}")
        if mode == "leave_own_logger":  # the repro's own logging set-up, in run()
            import logging
            own = logging.getLogger("myrepro")
            own.addHandler(logging.FileHandler("own.log"))
            own.setLevel(logging.DEBUG)
            return verdict("passed", "set up its own logger")
        if mode == "check_own_logger":
            import logging
            own = logging.getLogger("myrepro")
            clean = not own.handlers and own.level == logging.NOTSET
            return verdict("passed" if clean else "regressed", f"clean={clean}")
        if mode == "add_audit_hook":  # to see which files its case opens
            sys.addaudithook(lambda event, args: print(event) if event == "open" else None)
            return verdict("passed", "added an audit hook")
        if mode == "library_audit_hook":  # a library's set-up, in its first call
            here = os.path.dirname(os.path.abspath(__file__))
            sys.path.insert(0, os.path.join(os.path.dirname(here), "lib"))
            import hooklib
            hooklib.watch()
            return verdict("passed", "a library added an audit hook")
        if mode == "add_fork_hook":  # to see which of its case's calls fork
            os.register_at_fork(after_in_child=lambda: print("forked", flush=True))
            return verdict("passed", "registered a fork hook")
        if mode == "forks":
            child = os.fork()
            if child == 0:
                os._exit(0)
            os.waitpid(child, 0)
            return verdict("passed", "forked")
        if mode == "opens_a_file":
            open(os.devnull).close()
            return verdict("passed", "opened a file")
        if mode == "patch_stdlib":  # a repro silencing or intercepting something
            import math
            ssl._create_default_https_context = ssl._create_unverified_context  # a proxy's
            math.sqrt = lambda x: -1.0
            os.putenv = lambda key, value: None
            sys.excepthook = lambda *args: None
            return verdict("passed", "replaced math.sqrt, os.putenv, sys.excepthook")
        if mode == "check_stdlib":
            import math
            clean = math.sqrt(4.0) == 2.0 and sys.excepthook is sys.__excepthook__
            clean = clean and ssl._create_default_https_context is ssl.create_default_context
            clean = clean and os.putenv.__module__ == "posix"
            return verdict("passed" if clean else "regressed", f"clean={clean}")
        if mode == "patch_library":  # a case run with a library's function replaced
            from unittest import mock
            sys.modules["statistics"].mean = lambda data: 0.0
            mock.patch("statistics.median", return_value=0.0).start()  # never stopped
            import colorsys  # first imported by this cell, then patched
            colorsys.rgb_to_hsv = lambda r, g, b: (0.0, 0.0, 0.0)
            return verdict("passed", "replaced statistics.mean and median")
        if mode == "check_library":
            stats = sys.modules["statistics"]  # imported at the top (run() imports it too)
            clean = stats.mean([1, 3]) == 2 and stats.median([1, 3]) == 2
            import colorsys
            clean = clean and colorsys.rgb_to_hsv(1, 0, 0) == (0.0, 1.0, 1.0)
            return verdict("passed" if clean else "regressed", f"clean={clean}")
        if mode == "leave_thread":
            import threading
            threading.Timer(1.5, lambda: os._exit(3)).start()
            return verdict("passed", "left a thread")
        if mode == "keep_a_compile_pool":  # torch.compile's workers, as it starts them
            import subprocess
            global COMPILE_POOL
            COMPILE_POOL = subprocess.Popen(
                [sys.executable, "-c", "import time; time.sleep(60)",
                 "/site-packages/torch/_inductor/compile_worker/__main__.py"]
            )
            return verdict("passed", "kept a compile pool")
        if mode == "leave_daemon_thread":  # its own loop, as daemon
            import threading
            def later():
                time.sleep(1.5)
                os._exit(3)
            threading.Thread(target=later, daemon=True).start()
            return verdict("passed", "left a daemon thread")
        if mode == "keep_a_library_daemon":  # a library's daemon (a queue's consumer)
            import queue, threading
            global QUEUE
            QUEUE = queue.Queue()
            threading.Thread(target=QUEUE.get, daemon=True).start()
            return verdict("passed", "kept a library daemon")
        if mode == "keep_a_pool":  # a library's thread pool: its state, kept
            import concurrent.futures
            global POOL
            POOL = concurrent.futures.ThreadPoolExecutor(2)
            POOL.submit(time.sleep, 0.1).result()
            return verdict("passed", "kept a pool")
        if mode == "leave_processes":  # a child, and a daemon that left the group
            import subprocess
            here = os.path.dirname(os.path.abspath(__file__))
            child = subprocess.Popen(["sleep", "300"])
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    with open(os.path.join(here, "daemon.pid"), "w") as f:
                        f.write(str(os.getpid()))
                    time.sleep(300)
                os._exit(0)
            os.wait()
            while not os.path.exists(os.path.join(here, "daemon.pid")):
                time.sleep(0.01)
            with open(os.path.join(here, "child.pid"), "w") as f:
                f.write(str(child.pid))
            return verdict("passed", "left processes")
        if mode in ("leave_processes_clean_env", "hang_beside_a_clean_env_daemon"):
            # As above, each with an environment of its own (`env=` of subprocess):
            # nothing of the harness's is inherited but the process tree.
            import subprocess
            here = os.path.dirname(os.path.abspath(__file__))
            clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
            child = subprocess.Popen(["sleep", "300"], env=clean, start_new_session=True)
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    with open(os.path.join(here, "daemon.pid"), "w") as f:
                        f.write(str(os.getpid()))
                    os.execve("/bin/sh", ["sh", "-c", "exec sleep 300"], clean)
                os._exit(0)
            os.wait()
            while not os.path.exists(os.path.join(here, "daemon.pid")):
                time.sleep(0.01)
            with open(os.path.join(here, "child.pid"), "w") as f:
                f.write(str(child.pid))
            if mode == "hang_beside_a_clean_env_daemon":
                time.sleep(300)
            return verdict("passed", "left processes")
        if mode == "check_processes":
            here = os.path.dirname(os.path.abspath(__file__))
            alive = []
            for name in ("child.pid", "daemon.pid"):
                with open(os.path.join(here, name)) as f:
                    pid = int(f.read())
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        if f.read().rsplit(")", 1)[-1].split()[0] != "Z":
                            alive.append(name)
                except OSError:
                    pass
            return verdict("regressed" if alive else "passed", f"alive: {alive}")
        if mode == "slow_ok":
            time.sleep(2.5)
            return verdict("passed", "slow")
        if mode == "close_stdin":  # `exit()` at the end of a script does this
            sys.stdin.close()
            return verdict("passed", "closed stdin")
        if mode == "use_stdin":
            return verdict("passed", f"tty={sys.stdin.isatty()}")
        if mode == "drop_user":  # nobody; a user dropped cannot be taken back
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            return verdict("passed", "dropped to nobody")
        if mode == "write_to_connection":
            for fd in range(3, 256):
                try:
                    if stat.S_ISSOCK(os.fstat(fd).st_mode):
                        os.write(fd, b"not the worker's reply\\n")
                except OSError:
                    pass
            return verdict("passed", "wrote into the connection")
        if mode == "write_bytes_to_connection":  # no UTF-8 at all
            for fd in range(3, 256):
                try:
                    if stat.S_ISSOCK(os.fstat(fd).st_mode):
                        os.write(fd, b"\\xff\\xfe not the worker's reply\\n")
                except OSError:
                    pass
            return verdict("passed", "wrote bytes into the connection")
        if mode == "trickle_into_connection":  # a byte now and then, never a line
            socks = []
            for fd in range(3, 256):
                try:
                    if stat.S_ISSOCK(os.fstat(fd).st_mode):
                        socks.append(fd)
                except OSError:
                    pass
            for _ in range(60):
                for fd in socks:
                    os.write(fd, b"x")
                time.sleep(0.25)
            return verdict("passed", "trickled")
        if mode == "forge_reply":  # a well-formed reply, as the worker writes it
            import json
            fake = {"done": {"exit_code": 0, "rss_mb": 1, "healthy": True, "why": ""}}
            for fd in range(3, 256):
                try:
                    if stat.S_ISSOCK(os.fstat(fd).st_mode):
                        os.write(fd, (json.dumps(fake) + "\\n").encode())
                except OSError:
                    pass
            time.sleep(0.5)
            return verdict("regressed", "forged a reply")
        if mode == "odd_numbers":  # NaN, and a scalar type json cannot write (numpy's)
            class Scalar:
                def item(self):
                    return 0.25
            return {**verdict("passed", "odd numbers"),
                    "metrics": {"nan": float("nan"), "scalar": Scalar()}}
        return verdict("passed", "ok")
    """)
HELPER_REPRO = textwrap.dedent("""\
    import common

    def run(params):
        mine = common.WHO == {who!r}
        return {{"schema": 1, "status": "passed" if mine else "regressed", "reason": common.WHO}}
    """)


def _run(tmp_path: Path, run_cli: CliRunner, cells: list[tuple[str, str]]) -> list[Result]:
    """`cells` run with repros/m.py written (`worker_cells.run_cells`)."""
    return run_cells(tmp_path, run_cli, {"m.py": REPRO}, cells)


def _cells(*modes: str) -> list[tuple[str, str]]:
    return mode_cells("m.py", *modes)


def _put_back(tmp_path: Path, run_cli: CliRunner, leave: str, check: str) -> tuple[Result, Result]:
    """Cell `leave` changes some state and cell `check`, next in the same worker, finds it
    put back: both pass, one worker ran both."""
    left, checked = _run(tmp_path, run_cli, _cells(leave, check))
    passed_in_one_worker(left, checked)
    return left, checked


def test_a_repro_module_without_a_command_line_runs_isolated_too(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """`isolate: true` ran `python m.py --out ...`, which only defined `run` and exited 0:
    every isolated cell of a module that a worker runs well was an error."""
    cells = [
        (mode, f"script: repros/m.py, params: {{mode: {mode}}}, isolate: true")
        for mode in ("leave_state", "check_state", "regressed", "odd_numbers")
    ]
    got = _run(tmp_path, run_cli, cells)
    assert [r.status for r in got] == [
        Status.PASSED, Status.PASSED, Status.REGRESSED, Status.PASSED,
    ], [r.reason for r in got]  # fmt: skip
    assert [r.exit_code for r in got] == [0, 0, 1, 0]
    assert got[3].metrics == {"nan": None, "scalar": 0.25}
    assert all(r.provenance["harness"]["isolated"] for r in got)


def test_an_isolated_repro_module_ends_when_run_returns_as_in_itsworker(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A thread left running kept the isolated process (`worker_main.py --once`) alive
    after `run()` returned: it ended as that thread chose (an exit 3 there: an error, or a
    timeout), where the worker that README says it runs as records the cell's verdict."""
    body = "script: repros/m.py, params: {mode: leave_thread}, isolate: true"
    (left,) = _run(tmp_path, run_cli, [("leave_thread", body)])
    assert left.status is Status.PASSED, left.reason
    assert left.exit_code == 0


def test_a_forked_child_of_a_cell_never_answers_for_theworker(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    got = _run(
        tmp_path,
        run_cli,
        _cells("fork_child_exits", "regressed", "ok", "fork_child_returns", "regressed"),
    )
    assert [r.status for r in got] == [
        Status.PASSED, Status.REGRESSED, Status.PASSED, Status.PASSED, Status.REGRESSED,
    ]  # fmt: skip
    # One worker served them all: the children ended without touching it.
    assert len({worker(r) for r in got}) == 1


def test_a_crash_while_a_forked_child_lives_is_a_crash_not_a_timeout(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    crashed, after = _run(tmp_path, run_cli, _cells("fork_then_crash", "ok"))
    assert crashed.status is Status.ERROR
    assert crashed.reason.startswith("crashed: killed by signal 11"), crashed.reason
    assert crashed.duration_s < 10  # not the 30 s limit
    assert after.status is Status.PASSED


def test_a_worker_records_what_the_script_itself_would_write(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """NaN in `run()`'s metrics was an error in a worker (strict JSON) but null when the
    script ran alone; scalars with `.item()` (numpy, torch) are the numbers they hold."""
    (odd,) = _run(tmp_path, run_cli, _cells("odd_numbers"))
    assert odd.status is Status.PASSED, odd.reason
    assert odd.metrics == {"nan": None, "scalar": 0.25}


def test_process_state_a_cell_changes_is_put_back_for_the_next(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    _put_back(tmp_path, run_cli, "leave_state", "check_state")


@pytest.mark.parametrize(
    "attack", ["write_to_connection", "write_bytes_to_connection", "forge_reply"]
)
def test_bytes_a_cell_writes_into_the_connection_cost_only_that_cell(
    tmp_path: Path, run_cli: CliRunner, attack: str
) -> None:
    """Garbage, or a well-formed "done" line the cell forged (taken as its reply; its real
    reply was then taken as the next cell's, whose own run was lost, at exit 0), or bytes
    that are no UTF-8 (the harness failed to decode them and kept the worker, whose reply
    to that cell was then taken as the next one's: an innocent cell's error)."""
    garbled, bad, good = _run(tmp_path, run_cli, _cells(attack, "regressed", "ok"))
    assert garbled.status is Status.ERROR
    assert "reply was garbled" in garbled.reason
    assert (bad.status, good.status) == (Status.REGRESSED, Status.PASSED)
    assert (bad.exit_code, good.exit_code) == (1, 0)


def test_a_cell_that_trickles_bytes_into_the_connection_still_times_out(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """Each byte restarted the harness's socket timeout: the cell ran its full 15 s past a
    2 s limit (and could have run for ever), then was recorded as garbled, not timed out."""
    (tmp_path / "repros").mkdir()
    (tmp_path / "repros" / "m.py").write_text(REPRO)
    (tmp_path / "m.yaml").write_text(
        "schema: 1\nrepros:\n  a: {script: repros/m.py, gpus: [cpu], timeout: 2, "
        "params: {mode: trickle_into_connection}}\n"
    )
    out = run_cli("--matrix", str(tmp_path / "m.yaml"), "run", "--no-progress")
    assert out.returncode == 0, out.stderr
    (r,) = ResultStore(tmp_path / "results").load().results
    assert r.status is Status.TIMEOUT, r.reason
    assert r.duration_s < 8


def test_repros_in_two_folders_each_import_their_own_helper(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    for who in ("ra", "rb"):
        folder = tmp_path / "repros" / who
        folder.mkdir(parents=True)
        (folder / "rep.py").write_text(HELPER_REPRO.format(who=who))
        (folder / "common.py").write_text(f"WHO = {who!r}\n")
    got = _run(
        tmp_path,
        run_cli,
        [
            ("a", "script: repros/ra/rep.py"),
            ("b", "script: repros/rb/rep.py"),
            ("c", "script: repros/ra/rep.py, params: {again: 1}"),
        ],
    )
    assert [(r.status, r.reason) for r in got] == [
        (Status.PASSED, "ra"), (Status.PASSED, "rb"), (Status.PASSED, "ra"),
    ]  # fmt: skip
    assert len({worker(r) for r in got}) == 1


def test_what_importing_the_repro_sets_up_stays_for_the_next_cell(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    (tmp_path / "repros").mkdir()
    (tmp_path / "repros" / "fakelib.py").write_text(
        textwrap.dedent("""\
            import os, signal
            # Import-time setup, as a library does it: a fresh process would have it too.
            os.environ.setdefault("LIB_MODE", "lazy")
            signal.signal(signal.SIGUSR1, signal.SIG_IGN)
            """)
    )
    (tmp_path / "repros" / "lib_state.py").write_text(
        textwrap.dedent("""\
            import os, signal
            import fakelib

            def run(params):
                ok = (
                    os.environ.get("LIB_MODE") == "lazy"
                    and signal.getsignal(signal.SIGUSR1) is signal.SIG_IGN
                    and "CELL_ONLY" not in os.environ
                )
                os.environ["CELL_ONLY"] = "x"  # a cell's own change: gone for the next
                return {"schema": 1, "status": "passed" if ok else "regressed", "reason": str(ok)}
            """)
    )
    got = _run(
        tmp_path,
        run_cli,
        [
            ("a", "script: repros/lib_state.py"),
            ("b", "script: repros/lib_state.py, params: {n: 2}"),
        ],
    )
    assert [r.status for r in got] == [Status.PASSED, Status.PASSED], [r.reason for r in got]
    assert len({worker(r) for r in got}) == 1


def test_a_worker_that_cannot_start_in_its_cells_time_makes_the_cell_time_out(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    slow = tmp_path / "site"
    slow.mkdir()
    (slow / "sitecustomize.py").write_text(
        textwrap.dedent("""\
            import sys, time
            if sys.argv and sys.argv[0].endswith("worker_main.py"):
                print("sitecustomize: starting slowly", file=sys.stderr, flush=True)
                time.sleep(60)
            """)
    )
    (tmp_path / "repros").mkdir()
    (tmp_path / "repros" / "m.py").write_text(REPRO)
    (tmp_path / "m.yaml").write_text(
        "schema: 1\nrepros:\n  a: {script: repros/m.py, gpus: [cpu], timeout: 3, "
        "params: {mode: ok}}\n"
    )
    out = run_cli(
        "--matrix", str(tmp_path / "m.yaml"), "run", "--no-progress",
        env={"PYTHONPATH": str(slow)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (r,) = ResultStore(tmp_path / "results").load().results
    # The cell's 3 s, not the two minutes a worker may take to connect.
    assert r.status is Status.TIMEOUT
    assert r.reason.endswith("last output: sitecustomize: starting slowly"), r.reason
    assert r.duration_s < 10


def test_a_worker_whose_parent_dies_ends_with_its_cell(tmp_path: Path) -> None:
    """A Ray slot actor killed with -9 (or a harness) leaves its worker behind: the worker
    must end itself, and its cell's processes with it, not run the cell on."""
    import os
    import subprocess
    import sys
    import time

    from repromatrix.executors.workers import WORKER_MAIN

    parent = textwrap.dedent(f"""\
        import json, os, socket, subprocess, sys
        path = {str(tmp_path / "w.sock")!r}
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(path)
        listener.listen(1)
        worker = subprocess.Popen([sys.executable, {str(WORKER_MAIN)!r}, path],
                                  start_new_session=True)
        conn, _ = listener.accept()
        conn.recv(4096)  # its hello
        cell = {{"script": {str(tmp_path / "sleepy.py")!r}, "params": {{}},
                "out": {str(tmp_path / "result.json")!r},
                "stdout": {str(tmp_path / "stdout.log")!r},
                "stderr": {str(tmp_path / "stderr.log")!r},
                "cwd": {str(tmp_path)!r}, "env": {{}}}}
        conn.sendall((json.dumps({{"cell": cell}}) + "\\n").encode())
        while not os.path.exists({str(tmp_path / "started")!r}):
            pass
        print(worker.pid, flush=True)
        os._exit(0)  # dies in the middle of the cell, as a killed actor does
        """)
    (tmp_path / "sleepy.py").write_text(
        "import pathlib, time\n\ndef run(params):\n"
        f"    pathlib.Path({str(tmp_path / 'started')!r}).touch()\n"
        "    time.sleep(300)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", parent], capture_output=True, text=True, timeout=60, check=True
    )
    worker = int(out.stdout.strip())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(worker, 9)
    raise AssertionError("the orphaned worker was still running 10 s after its parent died")


def test_a_cell_that_drops_its_user_costs_the_next_cell_nothing(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A root worker whose cell became `nobody` could no longer write the next cell's files:
    that innocent cell was recorded as an error."""
    import os

    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("dropping a user needs root in CI")
        pytest.skip("dropping a user needs root")
    (tmp_path / "results").mkdir()
    dropped, after = _run(tmp_path, run_cli, _cells("drop_user", "ok"))
    assert dropped.status is Status.ERROR  # as nobody it could not write its own result
    assert after.status is Status.PASSED, after.reason
    assert worker(after) != worker(dropped)


def test_timers_masks_paths_and_finalizers_of_a_cell_stay_with_it(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A CPU timer, a hang guard, a blocked signal, a sys.path entry and an object whose
    finalizer ran at the next cell's first collection: each made an innocent cell an
    error, a timeout, or the owner of another cell's output."""
    left, checked = _run(tmp_path, run_cli, _cells("leave_timers", "check_timers"))
    assert left.status is Status.PASSED
    assert "finalizer of the earlier cell" in left.stdout_tail
    assert checked.status is Status.PASSED, (checked.reason, checked.stderr_tail)
    assert "finalizer" not in checked.stdout_tail
    assert worker(checked) == worker(left)


def test_a_cell_that_closes_a_standard_stream_retires_itsworker(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    closed, used = _run(tmp_path, run_cli, _cells("close_stdin", "use_stdin"))
    assert closed.status is Status.PASSED
    assert used.status is Status.PASSED, (used.reason, used.stderr_tail)
    assert worker(used) != worker(closed)


def test_a_cell_can_start_processes_the_spawn_way(tmp_path: Path, run_cli: CliRunner) -> None:
    """Spawned children import the functions they run by their module's name; the repro's
    private name in the worker was not importable, and the cell timed out."""
    (spawned,) = _run(tmp_path, run_cli, _cells("spawn_pool"))
    assert spawned.status is Status.PASSED, (spawned.reason, spawned.stderr_tail[-500:])


def test_a_cell_never_imports_the_harness_s_own_modules_by_their_names(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """The worker ran as `python .../repromatrix/executors/worker_main.py`, so that folder
    was first on a cell's sys.path: a library's `import ray` (vLLM's) or `import docker`
    found repromatrix's own executor packages, not the real ones or an ImportError. The
    worker now runs from a folder that holds only its own files, as in Docker."""
    cells = [
        *_cells("harness_names"),
        ("isolated", "script: repros/m.py, params: {mode: harness_names}, isolate: true"),
    ]
    for record in _run(tmp_path, run_cli, cells):
        assert record.status is Status.PASSED, (record.repro, record.reason)
        assert record.reason == "harness modules: []"


def test_warning_filters_socket_timeouts_and_time_zones_stay_with_their_cell(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    left, checked = _run(
        tmp_path, run_cli, _cells("leave_interpreter_state", "check_interpreter_state")
    )
    assert left.status is Status.PASSED
    assert checked.status is Status.PASSED, (checked.reason, checked.stderr_tail)


def test_argv_and_logging_a_cell_sets_up_stay_with_their_cell(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """`sys.argv` a cell rewrote and the root logger it configured (`logging.basicConfig`,
    a handler, `logging.disable`) reached the next cell: its `basicConfig` did nothing and
    its log lines went to the earlier cell's folder and output, or nowhere."""
    _, checked = _put_back(tmp_path, run_cli, "leave_argv_and_logging", "check_argv_and_logging")
    assert "the second cell's line" not in checked.stdout_tail


def test_modules_a_cell_replaces_or_drops_in_sys_modules_are_put_back(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A mock a cell left in `sys.modules` was what every later cell of its worker
    imported (a verdict on the mock); a module it dropped came back as a second copy
    whose classes are not the first's."""
    _put_back(tmp_path, run_cli, "replace_modules", "check_modules")


def test_a_lock_a_cell_still_holds_retires_itsworker(tmp_path: Path, run_cli: CliRunner) -> None:
    """A lock file a cell took and kept (`fcntl.flock`) was still held when the next cell
    of its worker asked for it: that cell regressed on the earlier cell's lock, where a
    process per cell would have released it."""
    held, taken = _run(tmp_path, run_cli, _cells("hold_a_lock", "take_the_lock"))
    assert held.status is Status.PASSED
    assert taken.status is Status.PASSED, taken.reason
    assert worker(taken) != worker(held)
    assert "file locks it holds" in held.provenance["harness"]["worker"]["retired"]


@pytest.mark.parametrize("ending", ["exit_in_run", "interrupt_in_run", "base_exception_in_run"])
def test_a_cell_that_ends_its_process_from_run_retires_itsworker(
    tmp_path: Path, run_cli: CliRunner, ending: str
) -> None:
    """`sys.exit`, KeyboardInterrupt or another BaseException out of `run()` ends a process
    per cell, and unwinds past a library's `except Exception` clean-up in a worker: the
    next cells ran on in the worker it left half-done."""
    ended, after = _run(tmp_path, run_cli, _cells(ending, "ok"))
    assert ended.status is Status.ERROR, ended.reason
    assert after.status is Status.PASSED, after.reason
    assert worker(after) != worker(ended)
    assert "ended its process" in ended.provenance["harness"]["worker"]["retired"]


def test_a_cell_that_removes_its_own_folder_costs_the_next_cell_nothing(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """The worker started in its first cell's folder and went back there after each cell:
    once a cell removed its folder, the next cell's start failed and that innocent cell
    was recorded as an error (exited 1 without a result)."""
    removed, after, later = _run(tmp_path, run_cli, _cells("remove_own_folder", "regressed", "ok"))
    # Its result is kept, as under --isolate: the worker makes the folder again to write it.
    assert (removed.status, removed.reason) == (Status.PASSED, "removed its folder")
    assert (after.status, later.status) == (Status.REGRESSED, Status.PASSED), after.reason


def test_descriptors_a_cell_leaks_up_to_the_limit_cost_only_that_cell(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A cell that left the worker without a free descriptor made every later cell of the
    worker an error ("Too many open files" writing its result), innocent ones included."""
    leaked, after, later = _run(tmp_path, run_cli, _cells("leak_descriptors", "ok", "ok"))
    assert leaked.status is Status.ERROR  # it could not write its own result either
    assert (after.status, later.status) == (Status.PASSED, Status.PASSED), after.reason
    assert worker(after) != worker(leaked)
    assert "descriptors it left open" in leaked.provenance["harness"]["worker"]["retired"]


def test_garbage_collection_and_locale_a_cell_sets_stay_with_it(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """`gc.disable()` (as benchmarks do around a timed loop) and `locale.setlocale` (which
    C code parsing and formatting numbers reads) reached every later cell of the worker."""
    _put_back(tmp_path, run_cli, "leave_runtime_state", "check_runtime_state")


def test_faulthandler_and_dlopen_flags_a_cell_sets_stay_with_it(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """`faulthandler.enable(file=f)` sent every later cell's crash dump to the first
    cell's file (kept open), and `sys.setdlopenflags(RTLD_GLOBAL | RTLD_NOW)` loaded every
    later cell's extensions with global symbols, where `--isolate` has neither."""
    _put_back(tmp_path, run_cli, "leave_native", "check_native")


def test_gc_callbacks_and_thread_hooks_a_cell_sets_stay_with_it(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A cell's `gc.callbacks.append(f)` ran f at every later cell's collections (its
    prints in their logs), and `threading.settrace`/`setprofile` traced every thread later
    cells started, where `--isolate` has neither."""
    _put_back(tmp_path, run_cli, "leave_callbacks", "check_callbacks")


def test_a_logger_of_the_repros_own_a_cell_sets_up_is_new_to_the_next_cell(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """`logging.getLogger("myrepro").addHandler(FileHandler(...))` in `run()`: the logger
    appeared with the cell, so it was left as a library's, and every later cell of the
    worker added one more handler (each line written twice, once to the first cell's
    file), where `--isolate` starts each with none."""
    _put_back(tmp_path, run_cli, "leave_own_logger", "check_own_logger")


def test_an_audit_hook_a_cell_adds_retires_itsworker(tmp_path: Path, run_cli: CliRunner) -> None:
    """`sys.addaudithook(f)` in `run()`, which nothing can remove: f saw (and here printed)
    every event of every later cell of the worker, where `--isolate` has none."""
    hooked, opened = _run(tmp_path, run_cli, _cells("add_audit_hook", "opens_a_file"))
    assert (hooked.status, opened.status) == (Status.PASSED, Status.PASSED), opened.reason
    assert "open" not in opened.stdout_tail
    assert worker(opened) != worker(hooked)
    assert "audit hooks it added" in hooked.provenance["harness"]["worker"]["retired"]


HOOKLIB = textwrap.dedent("""\
    import sys
    seen = []

    def watch():  # once, as a library sets itself up in its first call
        if not seen:
            seen.append("set up")
            sys.addaudithook(lambda event, args: None)
    """)


def test_an_audit_hook_a_library_adds_keeps_theworker(tmp_path: Path, run_cli: CliRunner) -> None:
    """An audit hook added by a library's code (outside the repro's folder) in a cell, as
    one did in the first flashinfer decode cell of each worker on an H100 host, is the
    library's set-up: counting it as the cell's retired every worker after one cell (3.3x
    the in-process time for 50 cells), where the repro's own hook must still retire it."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "hooklib.py").write_text(HOOKLIB)
    hooked, opened = _run(tmp_path, run_cli, _cells("library_audit_hook", "opens_a_file"))
    assert (hooked.status, opened.status) == (Status.PASSED, Status.PASSED), opened.reason
    assert hooked.provenance["harness"]["worker"]["retired"] is None
    assert worker(opened) == worker(hooked)


def test_a_fork_hook_a_cell_registers_retires_itsworker(tmp_path: Path, run_cli: CliRunner) -> None:
    """`os.register_at_fork(after_in_child=f)` in `run()`, which nothing can remove: f ran
    (and here printed) in every child of every later cell of the worker."""
    hooked, forked = _run(tmp_path, run_cli, _cells("add_fork_hook", "forks"))
    assert (hooked.status, forked.status) == (Status.PASSED, Status.PASSED), forked.reason
    assert "forked" not in forked.stdout_tail
    assert worker(forked) != worker(hooked)
    assert "fork hooks it registered" in hooked.provenance["harness"]["worker"]["retired"]


def test_standard_library_functions_a_cell_replaces_never_reach_the_next_cell(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A cell that replaced `math.sqrt`, `os.putenv` or `sys.excepthook` changed every
    later cell of its worker, which then passed or regressed on the replacement; so did
    `ssl._create_default_https_context = ssl._create_unverified_context` (no later cell
    checked a certificate), a function of ssl's own, not of the repro's code."""
    patched, checked = _run(tmp_path, run_cli, _cells("patch_stdlib", "check_stdlib"))
    assert patched.status is Status.PASSED
    assert checked.status is Status.PASSED, (checked.reason, checked.stderr_tail)
    assert worker(checked) != worker(patched)
    retired = patched.provenance["harness"]["worker"]["retired"]
    assert "standard-library functions it replaced: " in retired
    assert "math.sqrt" in retired
    assert "ssl._create_default_https_context" in retired


def test_library_functions_a_cells_code_replaces_never_reach_the_next_cell(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A cell that replaced a library's function by its own (`numpy.allclose = lambda *a,
    **k: True`, here `statistics.mean`) or by a mock it never stopped changed every later
    cell of its worker (the next cell regressed on the replacement), where `--isolate`
    gives each the library's own; so did one of a module the cell imported first."""
    patched, checked = _run(tmp_path, run_cli, _cells("patch_library", "check_library"))
    assert patched.status is Status.PASSED
    assert checked.status is Status.PASSED, (checked.reason, checked.stderr_tail)
    assert worker(checked) != worker(patched)
    retired = patched.provenance["harness"]["worker"]["retired"]
    assert "library functions its code replaced: " in retired
    assert "statistics.mean" in retired
    assert "statistics.median" in retired
    assert "colorsys.rgb_to_hsv" in retired  # a module the cell itself imported first


def test_a_thread_pool_a_cell_keeps_does_not_retire_itsworker(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """Idle pool workers are library state (a compiler's pool), not a leftover Timer."""
    kept, after = _run(tmp_path, run_cli, _cells("keep_a_pool", "ok"))
    assert (kept.status, after.status) == (Status.PASSED, Status.PASSED)
    assert worker(after) == worker(kept)


def test_a_cell_that_leaves_a_thread_running_retires_itsworker(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A timer thread a cell started ended the worker in the middle of the next cell."""
    left, slow = _run(tmp_path, run_cli, _cells("leave_thread", "slow_ok"))
    assert left.status is Status.PASSED
    assert slow.status is Status.PASSED, (slow.reason, slow.stderr_tail)
    assert worker(slow) != worker(left)


def test_processes_a_cell_leaves_running_end_before_the_next_cell(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A child (`subprocess.Popen` never waited for) and a daemon that left the group ran
    on beside the next cells of the worker (holding a GPU's memory, writing files), where
    a process per cell would have ended them with their cell."""
    left, checked = _run(tmp_path, run_cli, _cells("leave_processes", "check_processes"))
    assert left.status is Status.PASSED
    assert checked.status is Status.PASSED, checked.reason
    assert worker(checked) != worker(left)
    assert "processes it left running" in left.provenance["harness"]["worker"]["retired"]


def test_processes_a_cell_left_with_an_environment_of_their_own_end_too(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A child started with `env=` and its own session, and a daemon started so, carry no
    token of the harness: replacing the worker left both running for good."""
    left, checked = _run(tmp_path, run_cli, _cells("leave_processes_clean_env", "check_processes"))
    assert left.status is Status.PASSED
    assert checked.status is Status.PASSED, checked.reason
    assert worker(checked) != worker(left)


@pytest.mark.parametrize("isolate", [False, True])
def test_a_timed_out_cell_ends_with_processes_of_an_environment_of_their_own(
    tmp_path: Path, run_cli: CliRunner, isolate: bool
) -> None:
    """At the timeout, the cell's child and daemon with environments of their own (no
    token, another session) outlived the kill of the cell and of the run."""
    body = "script: repros/m.py, params: {mode: hang_beside_a_clean_env_daemon}, timeout: 5"
    (hung,) = _run(tmp_path, run_cli, [("hang", body + (", isolate: true" if isolate else ""))])
    assert hung.status is Status.TIMEOUT, hung.reason
    pids = [int((tmp_path / "repros" / n).read_text()) for n in ("child.pid", "daemon.pid")]
    assert pids_alive(pids) == []


SCRIPT_LEAVING_A_DAEMON = textwrap.dedent("""\
    import argparse, json, os

    args = argparse.ArgumentParser()
    args.add_argument("--out")
    args.add_argument("--params")
    out = args.parse_args().out
    if os.fork() == 0:  # a daemon with an environment of its own: no harness token
        os.setsid()
        if os.fork() == 0:
            with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "d.pid"), "w") as f:
                f.write(str(os.getpid()))
            os.execve("/bin/sh", ["sh", "-c", "exec sleep 300"], {"PATH": "/usr/bin:/bin"})
        os._exit(0)
    os.wait()
    with open(out, "w") as f:
        json.dump({"schema": 1, "status": "passed", "reason": "left a daemon"}, f)
    """)


def test_a_daemon_an_isolated_script_leaves_ends_with_the_run(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """`python SCRIPT` in a process of its own: a daemon it left with an environment of
    its own went to init, beyond every kill and sweep, and outlived the run."""
    (tmp_path / "repros").mkdir()
    (tmp_path / "repros" / "s.py").write_text(SCRIPT_LEAVING_A_DAEMON)
    (left,) = _run(tmp_path, run_cli, [("daemon", "script: repros/s.py, isolate: true")])
    assert left.status is Status.PASSED, left.reason
    daemon = int((tmp_path / "repros" / "d.pid").read_text())
    assert pids_alive([daemon]) == []


def test_a_librarys_compile_pool_is_its_state_not_a_process_left_running(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """torch.compile starts its compile workers once per process and reuses them: taken
    for processes left running, they retired the worker after every cell of such a repro,
    each next cell paying a fresh process (CUDA start, compiles) again."""
    kept, after = _run(tmp_path, run_cli, _cells("keep_a_compile_pool", "ok"))
    assert (kept.status, after.status) == (Status.PASSED, Status.PASSED)
    assert worker(after) == worker(kept)
    assert kept.provenance["harness"]["worker"]["retired"] is None


def test_a_daemon_thread_running_the_repros_code_retires_itsworker(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A daemon thread of the repro's own ended the worker in the middle of the next,
    innocent cell (recorded as its error); a library's daemon thread is its state."""
    left, slow, kept, after = _run(
        tmp_path, run_cli, _cells("leave_daemon_thread", "slow_ok", "keep_a_library_daemon", "ok")
    )
    assert left.status is Status.PASSED
    assert slow.status is Status.PASSED, (slow.reason, slow.stderr_tail)
    assert worker(slow) != worker(left)
    assert (kept.status, after.status) == (Status.PASSED, Status.PASSED)
    assert worker(after) == worker(kept)


def test_a_cell_that_closes_the_workers_connection_is_said_so_not_blamed_on_its_verdict(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """The worker's reply failed (EBADF) and it died: the record said "exit code 1
    (regressed) disagrees with result JSON status 'passed'", blaming the repro."""
    closed, after = _run(tmp_path, run_cli, _cells("close_fds", "ok"))
    assert closed.status is Status.ERROR
    assert "lost its connection to repromatrix" in closed.reason, closed.reason
    assert "disagrees" not in closed.reason
    assert after.status is Status.PASSED, (after.reason, after.stderr_tail)
