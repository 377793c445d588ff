"""What a cell patched in a persistent worker that `--isolate` would not carry to the next
cell: a class's attribute, a standard-library function of a module the cell itself
imported first, a library's logger the cell set up. Real workers; each case once failed
(the next cell's record was wrong, the run exited 0)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from clihelpers import CliRunner
from worker_cells import mode_cells, passed_in_one_worker, retired, run_cells, worker

from repromatrix.model import Status
from repromatrix.records import Result

pytestmark = pytest.mark.integration

REPRO = textwrap.dedent("""\
    import json, logging, sys, time
    import concurrent.futures  # a library whose logger is there before the first cell

    def verdict(ok, reason):
        return {"schema": 1, "status": "passed" if ok else "regressed", "reason": reason}

    def run(params):
        mode = params["mode"]
        if mode == "swap_ssl_context":  # ssl first imported here, as a download helper does
            import ssl
            ssl._create_default_https_context = ssl._create_unverified_context
            return verdict(True, "swapped the default context")
        if mode == "check_ssl_context":
            import ssl
            ok = ssl._create_default_https_context is ssl.create_default_context
            return verdict(ok, f"default context: {ssl._create_default_https_context.__name__}")
        if mode == "patch_classes":  # a case run with a class's method replaced
            json.JSONEncoder.default = lambda self, o: "patched"
            logging.Formatter.converter = time.gmtime  # log times in UTC
            import fractions  # first imported by this cell, then patched
            fractions.Fraction.__str__ = lambda self: "patched"
            return verdict(True, "patched three classes")
        if mode == "check_classes":
            import fractions
            try:
                encoded = json.dumps(object())
            except TypeError:
                encoded = "refused"
            got = (encoded, logging.Formatter.converter.__name__, str(fractions.Fraction(1, 2)))
            return verdict(got == ("refused", "localtime", "1/2"), f"got {got}")
        if mode == "install_opener":  # a download's credentials, as a hub client sends them
            import urllib.request
            opener = urllib.request.build_opener()
            opener.addheaders = [("Authorization", "Bearer the-first-cells-token")]
            urllib.request.install_opener(opener)
            return verdict(True, "installed an opener")
        if mode == "check_opener":
            import urllib.request
            left = urllib.request._opener
            return verdict(left is None, f"opener left: {left is not None}")
        if mode == "leave_wakeup_and_freeze":  # an event loop's set-up, a benchmark's
            import gc, os, signal
            _, write = os.pipe()
            os.set_blocking(write, False)
            signal.set_wakeup_fd(write)
            gc.freeze()
            return verdict(True, "left a wakeup fd and frozen objects")
        if mode == "check_wakeup_and_freeze":
            import gc, signal
            wakeup = signal.set_wakeup_fd(-1)
            signal.set_wakeup_fd(wakeup)
            return verdict(wakeup == -1 and not gc.get_freeze_count(), f"wakeup fd {wakeup}")
        if mode == "capture_warnings":  # a warning's text checked through logging
            import io, warnings
            stream = io.StringIO()
            handler = logging.StreamHandler(stream)
            logging.getLogger("py.warnings").addHandler(handler)
            logging.captureWarnings(True)
            warnings.warn("the case's warning", UserWarning)
            logging.getLogger("py.warnings").removeHandler(handler)
            ok = "the case's warning" in stream.getvalue()
            return verdict(ok, f"captured: {ok}")
        if mode == "add_builtin":  # as kernprof's `profile`, for the case's decorators
            import builtins
            builtins.profile = lambda function: function
            return verdict(True, "added builtins.profile")
        if mode == "check_builtin":
            try:
                profile
            except NameError:
                return verdict(True, "no profile")
            return verdict(False, "an earlier cell's builtins.profile")
        if mode == "set_up_library_loggers":  # to see, or silence, what a library logs
            import asyncio  # first imported here: its logger is new
            records = []
            class Keep(logging.Handler):
                def emit(self, record):
                    records.append(record)
            for name in ("asyncio", "concurrent.futures"):
                logging.getLogger(name).addHandler(Keep())
                logging.getLogger(name).addHandler(logging.StreamHandler(sys.stdout))
                logging.getLogger(name).addFilter(lambda record: False)
            return verdict(True, "set up asyncio's and concurrent.futures' loggers")
        if mode == "quiet_library_logger":  # asyncio's lines kept from the root's handlers
            import asyncio  # first imported here: its logger is new
            logging.getLogger("asyncio").propagate = False
            logging.getLogger("asyncio").disabled = True
            return verdict(True, "quieted asyncio's logger")
        if mode == "check_library_logger":
            import asyncio
            got = (logging.getLogger("asyncio").propagate, logging.getLogger("asyncio").disabled)
            return verdict(got == (True, False), f"asyncio's propagate, disabled: {got}")
        if mode == "register_faults":  # a hang's stacks on `kill -USR1`, to a file of its own
            import faulthandler, signal
            faulthandler.register(signal.SIGUSR1, file=open("stacks.log", "w"))
            return verdict(True, "registered SIGUSR1")
        if mode == "check_faults":
            import faulthandler, signal
            left = faulthandler.unregister(signal.SIGUSR1)
            return verdict(not left, f"SIGUSR1 registered: {left}")
        if mode == "check_library_loggers":
            import asyncio
            left = {n: (logging.getLogger(n).handlers, logging.getLogger(n).filters)
                    for n in ("asyncio", "concurrent.futures")}
            clean = not any(h or f for h, f in left.values())
            return verdict(clean, f"left: {left}")
        return verdict(True, "ok")
    """)


def _run(tmp_path: Path, run_cli: CliRunner, *modes: str) -> list[Result]:
    """A cell per mode of repros/p.py, in that order (`worker_cells.run_cells`)."""
    return run_cells(tmp_path, run_cli, {"p.py": REPRO}, mode_cells("p.py", *modes), timeout=60)


def test_an_ssl_context_swap_of_a_cell_that_first_imported_ssl_never_reaches_the_next(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """`import ssl` then `ssl._create_default_https_context = ssl._create_unverified_context`
    in `run()`: ssl was not loaded before the cell, so the swap read as ssl's own import
    and no later cell of the worker checked a certificate, where `--isolate` checks them."""
    swapped, checked = _run(tmp_path, run_cli, "swap_ssl_context", "check_ssl_context")
    assert swapped.status is Status.PASSED, (swapped.reason, swapped.stderr_tail)
    assert checked.status is Status.PASSED, (checked.reason, checked.stderr_tail)
    assert worker(checked) != worker(swapped)
    assert "ssl._create_default_https_context" in retired(swapped)


def test_handlers_and_filters_a_cell_gives_a_librarys_logger_never_reach_the_next(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A handler the cell's code made and added to the logger of a library it imported first
    (asyncio's) stayed: every later cell's lines went to it (a handler that keeps records
    counted theirs too), where a process of their own has asyncio's logger bare; a filter
    it added to a library's logger that was there before stayed too, silencing later cells'
    lines. Both go with the cell, in one worker."""
    left, checked = _run(tmp_path, run_cli, "set_up_library_loggers", "check_library_loggers")
    assert left.status is Status.PASSED, (left.reason, left.stderr_tail)
    assert checked.status is Status.PASSED, (checked.reason, checked.stderr_tail)
    assert worker(checked) == worker(left)


def test_propagation_and_disabling_a_cell_gives_a_librarys_logger_never_reach_the_next(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """`logging.getLogger("asyncio").propagate = False` (or `.disabled = True`) in a cell
    that imported asyncio first stayed: every later cell's asyncio lines missed the root's
    handlers, where a process of their own has asyncio's logger as asyncio sets it up."""
    left, checked = _run(tmp_path, run_cli, "quiet_library_logger", "check_library_logger")
    passed_in_one_worker(left, checked)


def test_a_signal_a_cell_registers_with_faulthandler_never_reaches_the_next(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """`faulthandler.register(signal.SIGUSR1, file=f)` in a cell stayed: a later cell's
    SIGUSR1 wrote its stacks to the first cell's file (kept open) in place of the handler
    the later cell expected, where a process of its own has none registered."""
    left, checked = _run(tmp_path, run_cli, "register_faults", "check_faults")
    passed_in_one_worker(left, checked)


def test_class_attributes_a_cell_replaces_never_reach_the_next_cell(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """`json.JSONEncoder.default = f`, `logging.Formatter.converter = time.gmtime`, or a
    method of a class of a module the cell imported first replaced by its code stayed for
    every later cell of the worker (the next cell regressed on them), where a process of
    its own has the classes as their modules define them: the worker retires."""
    patched, checked = _run(tmp_path, run_cli, "patch_classes", "check_classes")
    assert patched.status is Status.PASSED, (patched.reason, patched.stderr_tail)
    assert checked.status is Status.PASSED, (checked.reason, checked.stderr_tail)
    assert worker(checked) != worker(patched)
    why = retired(patched)
    assert "json.encoder.JSONEncoder.default" in why
    assert "logging.Formatter.converter" in why
    assert "fractions.Fraction.__str__" in why


PATCHING_REPRO = textwrap.dedent("""\
    import json, math, statistics
    # Its own set-up, as a process of its own has it for each of its cells.
    json.JSONEncoder.default = lambda self, o: "patched"
    statistics.mean = lambda data: -1.0
    math.sqrt = lambda x: -1.0

    def run(params):
        return {"schema": 1, "status": "passed", "reason": "patched at import"}
    """)
CHECKING_REPRO = textwrap.dedent("""\
    import json, math, statistics

    def run(params):
        try:
            encoded = json.dumps(object())
        except TypeError:
            encoded = "refused"
        got = (encoded, statistics.mean([1, 3]), math.sqrt(4.0))
        ok = got == ("refused", 2, 2.0)
        return {"schema": 1, "status": "passed" if ok else "regressed", "reason": f"got {got}"}
    """)


def test_what_one_repros_import_replaced_never_reaches_another_repros_cells(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A repro module whose import replaced a class's method, a library's function or a
    standard-library one (its own set-up: each of its cells has it, as under `--isolate`)
    left them for the next repro's cells in the same worker, which regressed on them where
    a process of their own passes (the run exited 0). Such a cell runs in a fresh worker;
    the patching repro's own cells still share one."""
    scripts = {"patching.py": PATCHING_REPRO, "checking.py": CHECKING_REPRO}
    cells = [("a1", "patching"), ("a2", "patching"), ("b1", "checking"), ("b2", "checking")]
    a1, a2, b1, b2 = run_cells(
        tmp_path, run_cli, scripts, [(n, f"script: repros/{s}.py") for n, s in cells], timeout=60
    )
    for record in (a1, a2, b1, b2):
        assert record.status is Status.PASSED, (record.repro, record.reason, record.stderr_tail)
    assert worker(a1) == worker(a2)  # its own set-up: no worker retired for it
    assert worker(b1) != worker(a2)
    assert worker(b2) == worker(b1)
    rerun = str(b1.provenance["harness"]["worker"].get("rerun", ""))
    assert "patching.py" in rerun
    assert "json.encoder.JSONEncoder.default" in rerun or "math.sqrt" in rerun


def test_a_cell_that_captures_warnings_into_logging_leaves_the_next_able_to(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """`logging.captureWarnings(True)`: the worker put `warnings.showwarning` back after the
    cell but logging still held the one it had replaced, so the next cell's call did
    nothing and its warnings never reached logging (it regressed where `--isolate`
    passes)."""
    first, second = _run(tmp_path, run_cli, "capture_warnings", "capture_warnings")
    assert first.status is Status.PASSED, (first.reason, first.stderr_tail)
    assert second.status is Status.PASSED, (second.reason, second.stderr_tail)
    assert worker(second) == worker(first)


def test_a_name_a_cell_adds_to_builtins_never_reaches_the_next_cell(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """`builtins.profile = ...` (kernprof's decorator, for a case's `@profile`) was found by
    every later cell of the worker, where a process of its own raises NameError: only
    names replaced in builtins were looked at, not names added. The worker retires."""
    added, checked = _run(tmp_path, run_cli, "add_builtin", "check_builtin")
    assert added.status is Status.PASSED, (added.reason, added.stderr_tail)
    assert checked.status is Status.PASSED, (checked.reason, checked.stderr_tail)
    assert worker(checked) != worker(added)
    assert "builtins.profile" in retired(added)


def test_an_opener_a_cell_installs_for_urllib_never_reaches_the_next_cell(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """`urllib.request.install_opener(opener)` (a download's proxy or credentials) held for
    every later cell of the worker, whose `urlopen` then sent the earlier cell's headers,
    where a process of its own has none. It is put back after the cell."""
    installed, checked = _run(tmp_path, run_cli, "install_opener", "check_opener")
    assert installed.status is Status.PASSED, (installed.reason, installed.stderr_tail)
    assert checked.status is Status.PASSED, (checked.reason, checked.stderr_tail)
    assert worker(checked) == worker(installed)


def test_a_wakeup_fd_and_frozen_objects_a_cell_leaves_never_reach_the_next_cell(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """`signal.set_wakeup_fd(fd)` left every later cell's signals writing a byte into the
    earlier cell's descriptor (once closed, into whatever file took its number), and
    `gc.freeze()` kept the earlier cell's objects out of every later collection, where a
    process of its own has neither. Both are put back after the cell."""
    left, checked = _run(tmp_path, run_cli, "leave_wakeup_and_freeze", "check_wakeup_and_freeze")
    assert left.status is Status.PASSED, (left.reason, left.stderr_tail)
    assert checked.status is Status.PASSED, (checked.reason, checked.stderr_tail)
    assert worker(checked) == worker(left)


#: A library installed in a `.venv` beside the repro's script (its `site-packages`), which
#: sets itself up at its first call, as an accelerator library does: a faster function
#: of another module put in place, a logger of its own with a handler, its pool closed at
#: the process's exit.
VENV_LIBRARY = textwrap.dedent("""\
    import atexit, logging, statistics, sys

    _pool = {}

    def _mean(data):
        data = list(data)
        return sum(data) / len(data)

    def enable():
        if _pool:
            return
        _pool["state"] = "open"
        statistics.mean = _mean
        calls = logging.getLogger("fastpatch.calls")
        calls.addHandler(logging.StreamHandler(sys.stderr))
        calls.setLevel(logging.INFO)
        atexit.register(_pool.update, state="closed")

    def works():
        calls = logging.getLogger("fastpatch.calls")
        return (_pool.get("state"), statistics.mean is _mean, len(calls.handlers), calls.level)
    """)
VENV_REPRO = textwrap.dedent("""\
    import os, sys
    sys.path.insert(0, os.path.join(
        os.path.dirname(os.path.abspath(__file__)), ".venv", "lib", "python3", "site-packages"))
    import fastpatch

    def run(params):
        import statistics
        fastpatch.enable()
        got = (statistics.mean([1, 3]), *fastpatch.works())
        ok = got == (2, "open", True, 1, 20)
        return {"schema": 1, "status": "passed" if ok else "regressed", "reason": f"got {got}"}
    """)


def test_a_library_in_a_venv_beside_the_script_is_a_library_to_every_rule_of_the_worker(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A library installed below the repro's folder (a `.venv` beside the script) that set
    itself up at its first call (`statistics.mean` replaced by its own, a logger of its
    own, an exit handler) counted as the repro's code in some of the worker's rules and as
    a library in others: its replacement retired the worker after every cell (one worker
    per cell), its logger lost its handler and its exit handler ran as the cell ended,
    where its audit hook counted as a library's. Every rule now reads it as a library:
    its set-up stays, as in a process of its own, and one worker runs every cell."""
    site = tmp_path / "repros" / ".venv" / "lib" / "python3" / "site-packages"
    site.mkdir(parents=True)
    (site / "fastpatch.py").write_text(VENV_LIBRARY)
    cells = [(f"v{i}", f"script: repros/v.py, params: {{n: {i}}}") for i in range(3)]
    passed_in_one_worker(*run_cells(tmp_path, run_cli, {"v.py": VENV_REPRO}, cells))
