"""What a cell claims in a persistent worker beyond the functions it replaces: a library
logger's level, a library class's values and nested classes, a `sys.monitoring` tool id.
Each is put back after the cell or retires its worker, where a process of its own would
not carry it to the next cell; a well-behaved repro (a library that sets itself up at
its first call, a cache filled lazily) still runs every cell in one worker. Real workers;
each case once failed (the next cell's record was wrong, the run exited 0)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from clihelpers import CliRunner
from worker_cells import mode_cells, passed_in_one_worker, run_cells

from repromatrix.records import Result

pytestmark = pytest.mark.integration

#: A library outside the repro's folder, as one installed in the environment is.
LIBRARY = textwrap.dedent("""\
    import logging

    logging.getLogger("lazylib").setLevel(logging.WARNING)  # its own, at its import
    _cache = {}

    class Config:
        tolerance = 1e-6
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
            _cache["ready"] = True
            Config._warned = True  # a warn-once flag, as libraries keep them
        return Config.tolerance, Config.Kernel().name(), Config().scale(2)
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
        got = lazylib.work()
        if mode == "quiet_library_loggers":  # to silence what a library logs
            logging.getLogger("lazylib").setLevel(logging.CRITICAL)
            logging.getLogger("lazylib.calls").setLevel(logging.ERROR)
            return verdict(True, "quieted lazylib's loggers")
        if mode == "check_library_loggers":
            levels = [logging.getLogger(n).level for n in ("lazylib", "lazylib.calls")]
            handlers = len(logging.getLogger("lazylib.calls").handlers)
            ok = (levels, handlers) == ([30, 20], 1)
            return verdict(ok, f"levels {levels}, handlers {handlers}")
        return verdict(got == (1e-6, "lazylib", 2), f"got {got}")
    """)


def _run(tmp_path: Path, run_cli: CliRunner, *modes: str) -> list[Result]:
    (tmp_path / "lib").mkdir(exist_ok=True)
    (tmp_path / "lib" / "lazylib.py").write_text(LIBRARY)
    return run_cells(tmp_path, run_cli, {"c.py": REPRO}, mode_cells("c.py", *modes))


def test_a_well_behaved_repro_runs_every_cell_in_one_worker(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A library first imported in a cell that sets a logger up at its first call, fills
    a cache and sets a warn-once flag on its class: its state, as its process's would be,
    which must retire no worker."""
    passed_in_one_worker(*_run(tmp_path, run_cli, "ok", "ok", "ok"))


def test_a_level_a_cell_sets_on_a_librarys_logger_never_reaches_the_next_cell(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """`logging.getLogger("lazylib").setLevel(CRITICAL)` of a library the cell imported
    first (and of the logger it made at its first call) held for every later cell of the
    worker: their lines at lower levels were lost, where a process of their own has the
    levels the library set. They go back to the library's after the cell."""
    passed_in_one_worker(*_run(tmp_path, run_cli, "quiet_library_loggers", "check_library_loggers"))
