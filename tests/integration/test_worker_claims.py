"""What a cell claims in a persistent worker beyond the functions it replaces: a library
logger's level, a value on a library's module or class, a nested class's method, a
`sys.monitoring` tool id, the traceback limit.
Each is put back after the cell or retires its worker, where a process of its own would
not carry it to the next cell; a well-behaved repro (a library that sets itself up at
its first call, a cache filled lazily) still runs every cell in one worker. Real workers;
each case once failed (the next cell's record was wrong, the run exited 0)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from clihelpers import CliRunner
from worker_cells import mode_cells, passed_in_one_worker, retired, run_cells, worker

from repromatrix.model import Status
from repromatrix.records import Result

pytestmark = pytest.mark.integration

#: A library outside the repro's folder, as one installed in the environment is.
LIBRARY = textwrap.dedent("""\
    import logging

    logging.getLogger("lazylib").setLevel(logging.WARNING)  # its own, at its import
    _cache = {}
    LIMIT = 5

    class Config:
        tolerance = 1e-6
        retries = 3
        class Kernel:
            def name(self):
                return "lazylib"
        def scale(self, x):
            return x

    def work():
        if not _cache:  # set up at its first call: a logger of its own, a cache
            calls = logging.getLogger("lazylib.calls")
            calls.setLevel(logging.INFO)
            calls.addHandler(logging.NullHandler())
            _cache["ready"] = 1
        elif _cache["ready"] == 1:  # at its second: a class's state, as libraries keep it
            _cache["ready"] = 2
            Config._warned = True  # a warn-once flag
            Config._table = {"filled": "lazily"}  # a cache
            Config.Kernel._compiled = True
            global STATE
            STATE = "warm"  # a global it rebinds as it goes
        return Config.tolerance, Config.Kernel().name(), Config().scale(2)

    _calls = []

    def profile():  # a profiler of its own, claimed at its first call and kept
        import sys
        monitoring = sys.monitoring
        if monitoring.get_tool(4) is None:
            monitoring.use_tool_id(4, "lazylib-profiler")
            monitoring.register_callback(4, monitoring.events.PY_START, _count)
            monitoring.set_events(4, monitoring.events.PY_START)

    def _count(code, offset):
        _calls.append(1)
    """)
REPRO = textwrap.dedent("""\
    import logging, os, sys
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(os.path.dirname(here), "lib"))

    def verdict(ok, reason):
        return {"schema": 1, "status": "passed" if ok else "regressed", "reason": reason}

    def run(params):
        mode = params["mode"]
        import lazylib  # first imported by the first cell
        got = (*lazylib.work(), lazylib.Config.retries, lazylib.LIMIT)
        if mode == "quiet_library_loggers":  # to silence what a library logs
            logging.getLogger("lazylib").setLevel(logging.CRITICAL)
            logging.getLogger("lazylib.calls").setLevel(logging.ERROR)
            return verdict(True, "quieted lazylib's loggers")
        if mode == "check_library_loggers":
            levels = [logging.getLogger(n).level for n in ("lazylib", "lazylib.calls")]
            handlers = len(logging.getLogger("lazylib.calls").handlers)
            ok = (levels, handlers) == ([30, 20], 1)
            return verdict(ok, f"levels {levels}, handlers {handlers}")
        if mode == "claim_tool":  # a tracer of the case's own, never freed
            monitoring = sys.monitoring
            monitoring.use_tool_id(3, "repro-tracer")
            shown = lambda code, offset: print(code)  # noqa: E731
            monitoring.register_callback(3, monitoring.events.PY_START, shown)
            monitoring.set_events(3, monitoring.events.PY_START)
            return verdict(True, "claimed tool 3")
        if mode == "check_tool":
            monitoring = sys.monitoring
            try:
                monitoring.use_tool_id(3, "another-tracer")
            except ValueError as exc:
                return verdict(False, str(exc))
            monitoring.free_tool_id(3)
            return verdict(True, "tool 3 was free")
        if mode == "set_class_value":  # a library class's setting, for the case
            lazylib.Config.tolerance = 1.0
            return verdict(True, "set a value")
        if mode == "patch_nested_class":
            lazylib.Config.Kernel.name = lambda self: "patched"
            return verdict(True, "patched a nested class")
        if mode == "bind_library_function":  # another library's function, as a faster one
            import functools, operator
            lazylib.Config.scale = functools.partial(operator.mul, 3)
            return verdict(True, "bound operator.mul")
        if mode == "patch_class_value":  # a mock's patch started, never stopped
            from unittest import mock
            mock.patch.object(lazylib.Config, "retries", 0).start()
            return verdict(True, "patched a value")
        if mode == "limit_tracebacks":  # short error output, for the case's own log
            sys.tracebacklimit = 0
            sys.dont_write_bytecode = not sys.flags.dont_write_bytecode
            return verdict(True, "limited tracebacks")
        if mode == "raise":
            own = bool(sys.flags.dont_write_bytecode)  # as the process started
            assert sys.dont_write_bytecode == own, "an earlier cell's dont_write_bytecode"
            raise ValueError("the case's own error")
        if mode == "set_module_value":  # a library's module-level setting, for the case
            lazylib.LIMIT = 0
            return verdict(True, "set a module's value")
        if mode == "library_tool":
            lazylib.profile()
        return verdict(got == (1e-6, "lazylib", 2, 3, 5), f"got {got}")
    """)


def _run(tmp_path: Path, run_cli: CliRunner, *modes: str, python: str = "") -> list[Result]:
    (tmp_path / "lib").mkdir(exist_ok=True)
    (tmp_path / "lib" / "lazylib.py").write_text(LIBRARY)
    options = ("--python", python) if python else ()
    return run_cells(
        tmp_path, run_cli, {"c.py": REPRO}, mode_cells("c.py", *modes), options=options
    )


def _python_with_monitoring() -> str:
    """An interpreter with `sys.monitoring` (3.12+): this one, or another on PATH or pyenv's."""
    if sys.version_info >= (3, 12):
        return sys.executable
    names = [n for n in (shutil.which(f"python3.{minor}") for minor in range(12, 16)) if n]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found = [str(p) for p in sorted(pyenv.glob("3.1[2-9]*/bin/python3"))] if pyenv.is_dir() else []
    for python in [*names, *found]:
        done = subprocess.run(
            [python, "-c", "import sys; print(sys.monitoring.get_tool(0))"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode == 0:
            return python
    if os.environ.get("CI"):
        pytest.fail("no Python 3.12 or newer here (sys.monitoring): install one (pyenv)")
    pytest.skip("no Python 3.12 or newer here (sys.monitoring)")


def test_a_well_behaved_repro_runs_every_cell_in_one_worker(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A library first imported in a cell that sets a logger up at its first call, fills
    a cache and sets a warn-once flag on its class: its state, as its process's would be,
    which must retire no worker."""
    passed_in_one_worker(*_run(tmp_path, run_cli, "ok", "ok", "ok", "ok"))


def test_a_level_a_cell_sets_on_a_librarys_logger_never_reaches_the_next_cell(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """`logging.getLogger("lazylib").setLevel(CRITICAL)` of a library the cell imported
    first (and of the logger it made at its first call) held for every later cell of the
    worker: their lines at lower levels were lost, where a process of their own has the
    levels the library set. They go back to the library's after the cell."""
    passed_in_one_worker(*_run(tmp_path, run_cli, "quiet_library_loggers", "check_library_loggers"))


def test_a_monitoring_tool_a_cell_claims_and_keeps_retires_its_worker(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """`sys.monitoring.use_tool_id(3, ...)` with a callback of the repro's code, never
    freed: its callback saw (and here printed) every later cell's calls, and the next
    cell's `use_tool_id(3, ...)` raised "tool 3 is already in use" (a regression where a
    process of its own passes, the run exit 0). The worker retires, saying why; a tool a
    library claims at its first call is its set-up and keeps the worker."""
    python = _python_with_monitoring()
    claimed, checked, profiled, after = _run(
        tmp_path, run_cli, "claim_tool", "check_tool", "library_tool", "ok", python=python
    )
    assert claimed.status is Status.PASSED, (claimed.reason, claimed.stderr_tail)
    assert checked.status is Status.PASSED, (checked.reason, checked.stderr_tail)
    assert "code object" not in checked.stdout_tail
    assert worker(checked) != worker(claimed)
    assert "sys.monitoring tool ids it claimed and kept: 3 (repro-tracer)" in retired(claimed)
    passed_in_one_worker(checked, profiled, after)


@pytest.mark.parametrize(
    ("mode", "named"),
    [
        ("set_class_value", "lazylib.Config.tolerance"),
        ("patch_nested_class", "lazylib.Config.Kernel.name"),
        ("bind_library_function", "lazylib.Config.scale"),
        ("patch_class_value", "lazylib.Config.retries"),
        ("set_module_value", "lazylib.LIMIT"),
    ],
)
def test_a_value_a_nested_class_or_a_library_function_a_cell_binds_on_a_library_class_retires_it(
    tmp_path: Path, run_cli: CliRunner, mode: str, named: str
) -> None:
    """`Config.tolerance = 1.0` (a value, no function), a method of a class nested in a
    library's class replaced, or another library's function bound in place of a library
    class's method, by the repro's code: none was seen, and every later cell of the worker
    ran with it (regressed where a process of its own passes, exit 0). The worker now
    retires after such a cell, naming what it bound; a library's own class state set as it
    goes (a warn-once flag, a cache) retires none (the test above)."""
    first, left, checked = _run(tmp_path, run_cli, "ok", mode, "ok")
    assert left.status is Status.PASSED, (left.reason, left.stderr_tail)
    assert checked.status is Status.PASSED, (checked.reason, checked.stderr_tail)
    assert worker(first) == worker(left)
    assert worker(checked) != worker(left)
    assert named in retired(left)


def test_a_traceback_limit_a_cell_sets_never_reaches_the_next_cell(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """`sys.tracebacklimit = 0` (and `sys.dont_write_bytecode` turned) in one cell held for
    every later cell of the worker: the next cell's error was recorded with its traceback
    cut to the exception's line (no frame to find the failing check by), where a process of
    its own prints them all. Both go back after the cell, in one worker."""
    limited, raised = _run(tmp_path, run_cli, "limit_tracebacks", "raise")
    assert limited.status is Status.PASSED, (limited.reason, limited.stderr_tail)
    assert raised.status is Status.ERROR, raised.reason
    assert "the case's own error" in raised.stderr_tail
    assert ", in run" in raised.stderr_tail, raised.stderr_tail
    assert worker(raised) == worker(limited)
