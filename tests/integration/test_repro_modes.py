"""A repro written with `repros/_repro.py` gets one verdict in its persistent worker and
in a process of its own (`--isolate`): the worker calls `run()` and writes what it
returned, `_repro.main` does the same for `python SCRIPT`. Real processes."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from clihelpers import CliRunner

from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.store import ResultStore

pytestmark = pytest.mark.integration

HELPER = Path(__file__).resolve().parents[2] / "repros" / "_repro.py"

REPRO = textwrap.dedent("""\
    import os, sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _repro

    class Scalar:  # as numpy's float32 and a 0-d tensor are: a number behind .item()
        def item(self):
            return 0.25

    def run(params):
        rec = _repro.Recorder("m", params)
        if params["mode"] == "untestable":
            raise _repro.Untestable("needs an SM90 GPU")  # in run() itself, not in execute
        if params["mode"] == "interrupted":
            raise KeyboardInterrupt  # a repro's own Ctrl-C handling gone wrong
        if params["mode"] == "raises":
            raise ValueError("bad shape (3, 4)")  # run() should not raise; this one does
        if params["mode"] == "odd_numbers":
            result = rec.result("passed", "max abs below 1e-3")
            result["metrics"].update(max_abs=float("nan"), scalar=Scalar())
            return result
        rec.result("passed", "computed")  # and forgot to return it

    if __name__ == "__main__":
        sys.exit(_repro.main(run, {"mode": ""}))
""")


def _matrix(tmp_path: Path) -> Path:
    (tmp_path / "repros").mkdir()
    shutil.copy(HELPER, tmp_path / "repros" / "_repro.py")
    (tmp_path / "repros" / "m.py").write_text(REPRO)
    lines = ["schema: 1", "defaults: {timeout: 30}", "repros:"]
    for mode in ("odd_numbers", "no_return", "untestable", "raises", "interrupted"):
        lines.append(f"  {mode}: {{script: repros/m.py, params: {{mode: {mode}}}, gpus: [cpu]}}")
    (tmp_path / "m.yaml").write_text("\n".join(lines) + "\n")
    return tmp_path / "m.yaml"


def _two_cells(tmp_path: Path, name: str, script: str) -> None:
    """m.yaml: cells `a` and `b` of one script (`repros/NAME.py`), params {n: a|b}."""
    (tmp_path / "repros").mkdir()
    (tmp_path / "repros" / f"{name}.py").write_text(script)
    lines = ["schema: 1", "defaults: {timeout: 30}", "repros:"]
    lines += [f"  {n}: {{script: repros/{name}.py, gpus: [cpu], params: {{n: {n}}}}}" for n in "ab"]
    (tmp_path / "m.yaml").write_text("\n".join(lines) + "\n")


def _in_one_worker(run_cli: CliRunner, tmp_path: Path, name: str, script: str) -> dict[str, Result]:
    """Cells `a` then `b` of `script` (`_two_cells`), run by one worker (checked): what
    `a` leaves is what `b` meets."""
    _two_cells(tmp_path, name, script)
    got = _run(run_cli, tmp_path / "m.yaml", "results")
    workers = {got[n].provenance["harness"]["worker"]["pid"] for n in "ab"}
    assert len(workers) == 1
    return got


def _run(run_cli: CliRunner, path: Path, results: str, *extra: str) -> dict[str, Result]:
    folder = path.parent / results
    out = run_cli(
        "--matrix", str(path), "run", "--jobs", "1", "--no-progress", "--results", str(folder),
        *extra,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return {r.repro: r for r in ResultStore(folder).load().results}


@pytest.mark.parametrize("isolate", [False, True], ids=["worker", "isolate"])
def test_numbers_a_worker_records_are_recorded_in_a_process_of_its_own(
    tmp_path: Path, run_cli: CliRunner, isolate: bool
) -> None:
    """A NaN metric or a numpy scalar in what `run()` returned: passed in the worker, an
    error under `--isolate` ("cannot write ...: Out of range float values")."""
    got = _run(run_cli, _matrix(tmp_path), "results", *(["--isolate"] if isolate else []))
    odd = got["odd_numbers"]
    assert (odd.status, odd.exit_code) == (Status.PASSED, 0), odd.reason
    assert odd.metrics["max_abs"] is None
    assert odd.metrics["scalar"] == 0.25


@pytest.mark.parametrize("isolate", [False, True], ids=["worker", "isolate"])
def test_a_run_that_returns_no_dict_is_an_error_that_says_so(
    tmp_path: Path, run_cli: CliRunner, isolate: bool
) -> None:
    """A `run()` that forgot its `return`: `_repro.main` crashed on None with a traceback
    and exit 1, "regressed" to `git bisect run`; the records said only "wrote result JSON
    that is not an object", each mode in other words."""
    path = _matrix(tmp_path)
    got = _run(run_cli, path, "results", *(["--isolate"] if isolate else []))
    none = got["no_return"]
    assert (none.status, none.exit_code) == (Status.ERROR, 2), none.reason
    assert "run() returned NoneType, not a result dict" in none.reason
    direct = subprocess.run(
        [sys.executable, str(tmp_path / "repros" / "m.py"), "--out", str(tmp_path / "r.json"),
         "--params", '{"mode": "no_return"}'],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert direct.returncode == 2, direct.stderr
    assert "Traceback" not in direct.stderr


@pytest.mark.parametrize("isolate", [False, True], ids=["worker", "isolate"])
def test_untestable_raised_in_run_itself_is_untestable_in_both_modes(
    tmp_path: Path, run_cli: CliRunner, isolate: bool
) -> None:
    """`raise _repro.Untestable("needs an SM90 GPU")` in `run()` (not inside
    `_repro.execute`) was an `error` in both modes: a CPU host showed the cell red where
    the repro said it cannot be tested here."""
    path = _matrix(tmp_path)
    got = _run(run_cli, path, "results", *(["--isolate"] if isolate else []))
    cell = got["untestable"]
    assert (cell.status, cell.exit_code) == (Status.UNTESTABLE, 125), cell.reason
    assert cell.reason == "needs an SM90 GPU"
    direct = subprocess.run(
        [sys.executable, str(tmp_path / "repros" / "m.py"), "--out", str(tmp_path / "r.json"),
         "--params", '{"mode": "untestable"}'],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert direct.returncode == 125, direct.stderr
    assert "Traceback" not in direct.stderr


@pytest.mark.parametrize("isolate", [False, True], ids=["worker", "isolate"])
def test_an_exception_from_run_is_the_same_error_in_both_modes(
    tmp_path: Path, run_cli: CliRunner, isolate: bool
) -> None:
    """`run()` raising ValueError: under `--isolate` `_repro.main` records "exited 2:
    ValueError: bad shape (3, 4)" with its traceback, the worker "exited 2 without a
    result (wrote no result JSON); last output: ValueError: ...": one failure, two
    reasons, and a report that compares runs saw them as different failures."""
    got = _run(run_cli, _matrix(tmp_path), "results", *(["--isolate"] if isolate else []))
    cell = got["raises"]
    assert (cell.status, cell.exit_code) == (Status.ERROR, 2), cell.reason
    assert cell.reason == "exited 2: ValueError: bad shape (3, 4)"
    # KeyboardInterrupt ends a Python process by SIGINT: "exited 2 without a result" in
    # the worker, "crashed: killed by signal 2" under --isolate.
    stopped = got["interrupted"]
    assert (stopped.status, stopped.exit_code) == (Status.ERROR, -2), stopped.reason
    assert stopped.reason == "crashed: killed by signal 2; last output: KeyboardInterrupt"


OWN_MAIN = textwrap.dedent("""\
    import argparse, json

    def run(params):
        raise ValueError("bad shape (3, 4)")

    if __name__ == "__main__":  # a command line of its own, not `_repro.main`
        p = argparse.ArgumentParser()
        p.add_argument("--out")
        p.add_argument("--params", default="{}")
        args = p.parse_args()
        result = run(json.loads(args.params))
        with open(args.out, "w") as f:
            json.dump(result, f)
""")


@pytest.mark.parametrize("isolate", [False, True], ids=["worker", "isolate"])
def test_an_exception_out_of_a_scripts_own_main_is_the_same_error_in_both_modes(
    tmp_path: Path, run_cli: CliRunner, isolate: bool
) -> None:
    """`python SCRIPT` exits 1 on the exception ("exited 1 but wrote no result JSON ..."),
    the worker said "exited 2 without a result ...": one failure, two reasons."""
    _two_cells(tmp_path, "own", OWN_MAIN)
    got = _run(run_cli, tmp_path / "m.yaml", "results", *(["--isolate"] if isolate else []))
    for n in "ab":
        assert (got[n].status, got[n].exit_code) == (Status.ERROR, 1), got[n].reason
        assert got[n].reason.startswith("exited 1 but wrote no result JSON"), got[n].reason
        assert got[n].reason.endswith("last output: ValueError: bad shape (3, 4)")


GC_REPRO = textwrap.dedent("""\
    import gc, sys

    def run(params):
        clean = gc.get_debug() == 0 and sys.getswitchinterval() == 0.005
        gc.set_debug(gc.DEBUG_SAVEALL)  # a leak hunt's set-up, left on
        sys.setswitchinterval(1.0)  # a race repro's
        return {"schema": 1, "status": "passed" if clean else "regressed",
                "reason": f"clean={clean}"}
""")


def test_the_collectors_debug_flags_and_the_switch_interval_do_not_reach_the_next_cell(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """`gc.set_debug` and `sys.setswitchinterval` of one cell were the next cell's in its
    worker: it regressed where a process of its own passes."""
    got = _in_one_worker(run_cli, tmp_path, "g", GC_REPRO)
    assert [got[n].status for n in "ab"] == [Status.PASSED, Status.PASSED], got["b"].reason


ARGV_REPRO = textwrap.dedent("""\
    import argparse, json, sys

    def parser():
        p = argparse.ArgumentParser()
        p.add_argument("--out", required=True)
        p.add_argument("--params", default="{}")
        return p

    ARGS = parser().parse_args()  # at import, as many scripts do

    def run(params):
        mine = json.loads(parser().parse_args().params) == params
        return {"schema": 1, "status": "passed" if mine else "regressed",
                "reason": f"argv={sys.argv[1:2]} mine={mine}"}

    if __name__ == "__main__":
        with open(ARGS.out, "w") as f:
            json.dump(run(json.loads(ARGS.params)), f)
""")


@pytest.mark.parametrize("isolate", [False, True], ids=["worker", "isolate"])
def test_a_repro_reads_its_own_command_line_in_a_worker_too(
    tmp_path: Path, run_cli: CliRunner, isolate: bool
) -> None:
    """`sys.argv` in a worker was the worker's (`worker_main.py SOCKET`): a module-level
    `parse_args()` with a required `--out` made every cell an error ("the following
    arguments are required: --out") that passed under `--isolate`."""
    _two_cells(tmp_path, "a", ARGV_REPRO)
    got = _run(run_cli, tmp_path / "m.yaml", "results", *(["--isolate"] if isolate else []))
    for n in "ab":
        assert (got[n].status, got[n].reason) == (Status.PASSED, "argv=['--out'] mine=True")


START_REPRO = textwrap.dedent("""\
    import multiprocessing

    def run(params):
        method = multiprocessing.get_start_method(allow_none=True)
        multiprocessing.set_start_method("spawn", force=True)  # for this cell's pool
        return {"schema": 1, "status": "passed" if method is None else "regressed",
                "reason": f"start method {method}"}
""")


def test_a_cells_multiprocessing_start_method_does_not_reach_the_next_cell(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """`set_start_method("spawn", force=True)` of one cell was the next cell's default in
    its worker, which regressed ("start method spawn") where a process of its own passed."""
    got = _in_one_worker(run_cli, tmp_path, "s", START_REPRO)
    assert [got[n].status for n in "ab"] == [Status.PASSED, Status.PASSED], got["b"].reason


NUMPY_REPRO = textwrap.dedent("""\
    import numpy as np

    def run(params):
        if params["n"] == "a":
            np.seterr(all="raise")  # to find where a NaN first appears, left on
            return {"schema": 1, "status": "passed", "reason": "set"}
        x = np.array([0.0]) / np.array([0.0])  # the regression: a NaN output
        return {"schema": 1, "status": "regressed", "reason": f"nan={bool(np.isnan(x[0]))}"}
""")


def test_a_cells_numpy_error_handling_does_not_reach_the_next_cell(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """`np.seterr(all="raise")` of one cell made the next cell's NaN a FloatingPointError
    in its worker: an error where a process of its own records the regression."""
    pytest.importorskip("numpy")
    got = _in_one_worker(run_cli, tmp_path, "n", NUMPY_REPRO)
    assert (got["b"].status, got["b"].reason) == (Status.REGRESSED, "nan=True"), got["b"].reason


SETS_AT_IMPORT = textwrap.dedent("""\
    import decimal, os, socket, sys, warnings
    # A repro module's own set-up at import (assignments: it is still a module).
    _timeout = socket.setdefaulttimeout(3.0)
    _limit = sys.setrecursionlimit(12345)
    _filters = warnings.simplefilter("error")
    _context = decimal.getcontext()
    _prec = setattr(_context, "prec", 5)
    os.environ["A_SET_UP"] = "1"
    os.environ["PROBE_MODE"] = "a's"

    def run(params):
        return {"schema": 1, "status": "passed", "reason": "set up"}
""")

READS_STATE = textwrap.dedent("""\
    import decimal, os, socket, sys, warnings
    import noisy

    def run(params):
        with warnings.catch_warnings(record=True) as seen:
            noisy.warn()  # shown once per location: a fresh process records it
        state = (socket.getdefaulttimeout(), sys.getrecursionlimit(), warnings.filters[0][0],
                 decimal.getcontext().prec, len(seen), os.environ.get("A_SET_UP"),
                 os.environ.get("PROBE_MODE"))
        return {"schema": 1, "status": "passed", "reason": repr(state)}
""")


@pytest.mark.parametrize("isolate", [False, True], ids=["worker", "isolate"])
def test_what_one_repro_module_sets_up_does_not_reach_another_repros_cells(
    tmp_path: Path, run_cli: CliRunner, isolate: bool
) -> None:
    """Repro `a`'s module set the sockets' default timeout, the recursion limit, an
    "error" warning filter and decimal's precision at import; the worker kept what an
    import set up (a library's, it assumed), so repro `b`'s cells in the same worker read
    them: `(3.0, 12345, 'error', 5, ...)` where a process of its own reads the defaults;
    so did the variables `a` set in `os.environ` at import (`--cell-env` wins over them).
    A warning shown once (the "default" action) by `b`'s first cell was not shown to its
    second, which a process of its own records too."""
    repros = tmp_path / "repros"
    repros.mkdir()
    (repros / "a.py").write_text(SETS_AT_IMPORT)
    (repros / "b.py").write_text(READS_STATE)
    (repros / "noisy.py").write_text("import warnings\ndef warn():\n    warnings.warn('x')\n")
    lines = ["schema: 1", "defaults: {timeout: 30}", "repros:"]
    lines.append("  a: {script: repros/a.py, gpus: [cpu]}")
    lines += [f"  b{n}: {{script: repros/b.py, gpus: [cpu], params: {{n: {n}}}}}" for n in (1, 2)]
    (tmp_path / "m.yaml").write_text("\n".join(lines) + "\n")
    extra = ["--cell-env", "PROBE_MODE=strict", *(["--isolate"] if isolate else [])]
    got = _run(run_cli, tmp_path / "m.yaml", "results", *extra)
    if not isolate:
        assert len({got[n].provenance["harness"]["worker"]["pid"] for n in got}) == 1
        assert got["a"].finished < got["b1"].finished < got["b2"].finished
    for n in ("b1", "b2"):
        assert got[n].reason == repr((None, 1000, "default", 28, 1, None, "strict")), got[n].reason


TORCH_UNSEEDED = textwrap.dedent("""\
    import torch

    def run(params):
        return {"schema": 1, "status": "passed", "reason": repr(torch.randn(3).tolist())}
""")


def test_torchs_generator_is_seeded_alike_for_every_cell_of_a_worker(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A repro that draws from torch's default generator without seeding it: the worker
    seeds it before each cell, but before the first cell's import torch was not loaded,
    so the first cell drew from a random seed and the next ones from `manual_seed(0)`: a
    cell's record depended on its place in the worker."""
    pytest.importorskip("torch")
    got = _in_one_worker(run_cli, tmp_path, "t", TORCH_UNSEEDED)
    assert got["a"].reason == got["b"].reason


SEEDED_AT_IMPORT = textwrap.dedent("""\
    import random
    import torch

    _seeded = (random.seed(99), torch.manual_seed(42))  # once, at import, as scripts do

    def run(params):
        drawn = (round(random.random(), 12), [round(x, 6) for x in torch.randn(2).tolist()])
        return {"schema": 1, "status": "passed", "reason": repr(drawn)}
""")


def test_generators_a_repro_seeds_at_import_are_so_seeded_in_each_of_its_cells(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A repro that seeds at import (`random.seed(99)`, `torch.manual_seed(42)`): a process
    of its own draws from those seeds in every cell; its worker drew so in the first cell
    only, from the harness's seed 0 in the next ones."""
    torch = pytest.importorskip("torch")
    import random

    torch.manual_seed(42)
    want = (round(random.Random(99).random(), 12), [round(x, 6) for x in torch.randn(2).tolist()])
    got = _in_one_worker(run_cli, tmp_path, "s", SEEDED_AT_IMPORT)
    assert [got[n].reason for n in "ab"] == [repr(want)] * 2


LIBRARY_SETS_ENV = "import os\nos.environ.setdefault('LIB_BACKEND', 'fast')\n"
USES_LIBRARY = textwrap.dedent("""\
    import os, sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
    import libsetsenv

    def run(params):
        return {"schema": 1, "status": "passed", "reason": repr(os.environ.get("LIB_BACKEND"))}
""")


@pytest.mark.parametrize("isolate", [False, True], ids=["worker", "isolate"])
def test_a_variable_a_library_sets_at_import_stays_for_every_repro_of_the_worker(
    tmp_path: Path, run_cli: CliRunner, isolate: bool
) -> None:
    """What a library (a module outside the repro's folder) sets in `os.environ` at its
    import is the library's: a repro whose cells come after another's first import of it
    reads it as a process of its own does, though the import that set it was the other's."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "libsetsenv.py").write_text(LIBRARY_SETS_ENV)
    (tmp_path / "repros").mkdir()
    for name in ("a", "b"):
        (tmp_path / "repros" / f"{name}.py").write_text(USES_LIBRARY)
    lines = ["schema: 1", "defaults: {timeout: 30}", "repros:"]
    lines += [f"  {n}: {{script: repros/{n}.py, gpus: [cpu]}}" for n in "ab"]
    (tmp_path / "m.yaml").write_text("\n".join(lines) + "\n")
    got = _run(run_cli, tmp_path / "m.yaml", "results", *(["--isolate"] if isolate else []))
    assert [got[n].reason for n in "ab"] == ["'fast'", "'fast'"]


TORCH_SWITCHES = textwrap.dedent("""\
    IMPORT_TORCH
    def run(params):
        import torch
        if params["n"] == "a":  # this cell's own case, set where it should not be
            torch.set_default_dtype(torch.float64)
            torch.set_grad_enabled(False)
            torch.backends.cuda.matmul.allow_tf32 = not torch.backends.cuda.matmul.allow_tf32
            torch.use_deterministic_algorithms(True)
        seen = (torch.ones(1).dtype, torch.is_grad_enabled(),
                torch.backends.cuda.matmul.allow_tf32, torch.are_deterministic_algorithms_enabled())
        return {"schema": 1, "status": "passed", "reason": repr(seen)}
""")


@pytest.mark.parametrize("where", ["at_import", "in_run"])
def test_torchs_switches_a_cell_sets_do_not_reach_the_next_cell(
    tmp_path: Path, run_cli: CliRunner, where: str
) -> None:
    """A first cell's `torch.set_default_dtype(torch.float64)`, `set_grad_enabled(False)`,
    TF32 or deterministic switch held for every later cell of its worker (the switches to
    put back were read once that cell had ended), where a process of the cell's own starts
    with torch's defaults plus what the repro's import set (here TF32 on)."""
    pytest.importorskip("torch")
    at_import = "import torch\ntorch.backends.cuda.matmul.allow_tf32 = True\n"
    script = TORCH_SWITCHES.replace("IMPORT_TORCH", at_import if where == "at_import" else "")
    got = _in_one_worker(run_cli, tmp_path, "t", script)
    tf32 = where == "at_import"
    assert got["a"].reason == f"(torch.float64, False, {not tf32}, True)"
    assert got["b"].reason == f"(torch.float32, True, {tf32}, False)"


NUMERIC_SWITCHES = textwrap.dedent("""\
    import sys

    def run(params):
        import torch
        if params["n"] == "a":  # a case run with TF32, oneDNN in bf16, subnormals flushed
            torch.backends.fp32_precision = "tf32"
            torch.backends.mkldnn.conv.fp32_precision = "bf16"
            flushes = torch.set_flush_denormal(True)
            torch.backends.mkldnn.enabled = False
            torch.set_warn_always(True)
            torch.backends.cuda.matmul.allow_fp16_accumulation = True
            return {"schema": 1, "status": "passed", "reason": f"flushes: {flushes}"}
        tiny = sys.float_info.min
        seen = (tiny / 2 == 0.0, torch.backends.fp32_precision,
                torch.backends.mkldnn.conv.fp32_precision, torch.backends.mkldnn.enabled,
                torch.is_warn_always_enabled(), torch.backends.cuda.matmul.allow_fp16_accumulation)
        return {"schema": 1, "status": "passed", "reason": repr(seen)}
""")


def test_torchs_numeric_switches_a_cell_sets_do_not_reach_the_next_cell(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """torch 2.9's TF32 settings (`torch.backends.fp32_precision = "tf32"`, oneDNN's
    `fp32_precision = "bf16"`), `set_flush_denormal(True)`, oneDNN switched off,
    `set_warn_always` and cuBLAS's fp16 accumulation held for every later cell of the
    worker (only the legacy TF32 flags were put back): the next cell's float arithmetic
    flushed 1e-310 to 0 and its CPU convolutions ran in bf16 or without oneDNN, where a
    process of its own (`--isolate`) starts with torch's defaults."""
    torch = pytest.importorskip("torch")
    if not hasattr(torch.backends, "fp32_precision"):
        pytest.skip("torch before 2.9 has no fp32_precision settings")
    got = _in_one_worker(run_cli, tmp_path, "t", NUMERIC_SWITCHES)
    if got["a"].reason != "flushes: True":
        pytest.skip("this CPU cannot flush subnormals (no x86 DAZ)")
    assert got["b"].status is Status.PASSED, got["b"].reason
    assert got["b"].reason == "(False, 'none', 'none', True, False, False)"


COMPILE_CONFIG = textwrap.dedent("""\
    IMPORT_CONFIG
    def run(params):
        import torch._dynamo.config as dynamo
        import torch._inductor.config as inductor
        if params["n"] == "a":  # this cell's own case: torch.compile's random ops in eager
            inductor.fallback_random = True
            dynamo.cache_size_limit = 1
        seen = (inductor.fallback_random, inductor.max_autotune, dynamo.cache_size_limit)
        return {"schema": 1, "status": "passed", "reason": repr(seen)}
""")


@pytest.mark.parametrize("where", ["at_import", "in_run"])
def test_torch_compile_config_a_cell_sets_does_not_reach_the_next_cell(
    tmp_path: Path, run_cli: CliRunner, where: str
) -> None:
    """A cell's `torch._inductor.config.fallback_random = True` (or a `torch._dynamo.config`
    value) held for every later cell of its worker, which then compiled other kernels than
    a process of its own, where `--isolate` starts with torch's values plus what the repro's
    import set (here max_autotune)."""
    pytest.importorskip("torch._inductor.config")
    at_import = "import torch._inductor.config\ntorch._inductor.config.max_autotune = True\n"
    script = COMPILE_CONFIG.replace("IMPORT_CONFIG", at_import if where == "at_import" else "")
    got = _in_one_worker(run_cli, tmp_path, "t", script)
    tuned = where == "at_import"
    assert got["a"].reason == f"(True, {tuned}, 1)"
    assert got["b"].reason == f"(False, {tuned}, 8)"
    # Read by torch's public copy: its deprecated `shallow_copy_dict` warned in every cell.
    assert "Warning" not in (got["b"].stderr_tail or ""), got["b"].stderr_tail


SETS_INTEROP_THREADS = textwrap.dedent("""\
    def run(params):
        import torch
        torch.set_num_interop_threads(1)  # each cell, as a process of its own may
        return {"schema": 1, "status": "passed", "reason": "set"}
""")


def test_a_cell_that_sets_torchs_interop_threads_leaves_the_next_a_fresh_worker(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """torch allows `set_num_interop_threads` once a process: the second cell of a worker
    that called it failed ("cannot set number of interop threads after parallel work has
    started or set_num_interop_threads called"), where `--isolate` passes both. The worker
    is now replaced after such a cell, as after any change it cannot put back."""
    pytest.importorskip("torch")
    _two_cells(tmp_path, "t", SETS_INTEROP_THREADS)
    got = _run(run_cli, tmp_path / "m.yaml", "results")
    assert [got[n].status for n in "ab"] == [Status.PASSED, Status.PASSED], got["b"].reason
    retired = got["a"].provenance["harness"]["worker"]["retired"]
    assert "set_num_interop_threads" in retired


REGISTERS_THEN_FAILS = textwrap.dedent("""\
    import os
    import registry

    OP = registry.register("mylib::op")  # as torch.library.Library("mylib", "DEF") does
    BACKEND = os.environ["NO_SUCH_BACKEND"]  # then the import fails

    def run(params):
        return {"schema": 1, "status": "passed", "reason": BACKEND}
""")
REGISTRY = textwrap.dedent("""\
    NAMES = set()

    def register(name):
        if name in NAMES:
            raise RuntimeError(f"{name!r} is registered already")
        NAMES.add(name)
        return name
""")


def test_a_repro_module_whose_import_failed_is_imported_again_in_a_fresh_worker(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A repro module whose import registered a name in a library's table, then failed: the
    next cell's import in the same worker failed on the name the first left registered
    ("'mylib::op' is registered already"), where a process of its own fails as the first
    did ("KeyError: 'NO_SUCH_BACKEND'"). The worker is replaced after such an import."""
    _two_cells(tmp_path, "s", REGISTERS_THEN_FAILS)
    (tmp_path / "repros" / "registry.py").write_text(REGISTRY)
    got = _run(run_cli, tmp_path / "m.yaml", "results")
    for name in "ab":
        assert got[name].status is Status.ERROR
        assert got[name].reason.endswith("last output: KeyError: 'NO_SUCH_BACKEND'"), name
    workers = [got[name].provenance["harness"]["worker"] for name in "ab"]
    assert workers[0]["pid"] != workers[1]["pid"]
    assert "import failed" in workers[0]["retired"]


REGISTERS_AT_TOP_LEVEL = textwrap.dedent("""\
    import json, sys
    import registry

    registry.register("mylib::op")  # as torch.library.define("mylib::op", ...) does
    out = sys.argv[sys.argv.index("--out") + 1]
    with open(out, "w") as f:
        json.dump({"schema": 1, "status": "passed", "reason": "registered"}, f)
""")


def test_a_script_run_whole_again_in_its_worker_that_fails_runs_in_a_fresh_one(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A script without `run()` runs whole in each cell of its worker, beside the modules
    its earlier cells imported: a top level that registers a name in a library's table
    failed in every cell after the first ("'mylib::op' is registered already"), where a
    process of each cell's own passes. Such a failure is run again in a fresh worker."""
    _two_cells(tmp_path, "s", REGISTERS_AT_TOP_LEVEL)
    (tmp_path / "repros" / "registry.py").write_text(REGISTRY)
    got = _run(run_cli, tmp_path / "m.yaml", "results")
    assert [(got[n].status, got[n].reason) for n in "ab"] == [(Status.PASSED, "registered")] * 2
    workers = [got[n].provenance["harness"]["worker"] for n in "ab"]
    assert workers[0]["pid"] != workers[1]["pid"]
    assert "rerun" not in workers[0]
    assert "fresh" in workers[1]["rerun"]


CLONES_INTO_ITS_FOLDER = textwrap.dedent("""\
    import json, os, sys

    params = json.loads(sys.argv[sys.argv.index("--params") + 1])
    os.mkdir("checkout")  # as `git clone URL checkout` makes it, in the cell's folder
    if params["n"] == "b":
        sys.exit("collection error: test_scale.py: ImportError")  # exit 1, no result
    out = sys.argv[sys.argv.index("--out") + 1]
    with open(out, "w") as f:
        json.dump({"schema": 1, "status": "passed", "reason": "cloned"}, f)
""")


@pytest.mark.parametrize("isolate", [False, True], ids=["worker", "isolate"])
def test_a_script_run_again_in_a_fresh_worker_meets_a_folder_as_its_process_would(
    tmp_path: Path, run_cli: CliRunner, isolate: bool
) -> None:
    """A script run whole again in its worker that failed runs again in a fresh one, in
    the cell's folder as the failed try had left it: its `checkout` there made the second
    try fail on it ("FileExistsError: [Errno 17] File exists: 'checkout'"), the record
    naming that, where a process of the cell's own says the repro's own failure."""
    _two_cells(tmp_path, "s", CLONES_INTO_ITS_FOLDER)
    got = _run(run_cli, tmp_path / "m.yaml", "results", *(["--isolate"] if isolate else []))
    assert (got["a"].status, got["a"].reason) == (Status.PASSED, "cloned")
    b = got["b"]
    assert (b.status, b.exit_code) == (Status.ERROR, 1)
    assert b.reason.endswith("last output: collection error: test_scale.py: ImportError")
    if not isolate:
        assert "fresh" in b.provenance["harness"]["worker"]["rerun"]


TORCH_BACKENDS = textwrap.dedent("""\
    import torch

    def run(params):
        cuda = torch.backends.cuda
        if params["n"] == "a":  # the "math kernel, one thread" case
            cuda.enable_flash_sdp(False)
            cuda.enable_mem_efficient_sdp(False)
            cuda.matmul.allow_fp16_reduced_precision_reduction = False
            torch.backends.cudnn.enabled = False
            torch.set_num_threads(1)
            torch.set_anomaly_enabled(True)
        seen = (cuda.flash_sdp_enabled(), cuda.mem_efficient_sdp_enabled(),
                cuda.matmul.allow_fp16_reduced_precision_reduction, torch.backends.cudnn.enabled,
                torch.get_num_threads() == 1, torch.is_anomaly_enabled())
        return {"schema": 1, "status": "passed", "reason": repr(seen)}
""")


def test_attention_backends_and_threads_a_cell_sets_do_not_reach_the_next_cell(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A cell's `enable_flash_sdp(False)` (scaled_dot_product_attention's kernel),
    reduced-precision reductions, cuDNN off, `set_num_threads(1)` or anomaly detection held
    for every later cell of its worker, where a process of the cell's own has torch's
    defaults: the next cell measured another kernel than it names."""
    torch = pytest.importorskip("torch")
    if torch.get_num_threads() == 1:
        pytest.skip("one thread is torch's default here")
    got = _in_one_worker(run_cli, tmp_path, "t", TORCH_BACKENDS)
    assert got["a"].reason == "(False, False, False, False, True, True)"
    assert got["b"].reason == "(True, True, True, True, False, False)"


TORCH_DEVICE = textwrap.dedent("""\
    import torch

    def run(params):
        if params["n"] == "a":  # this case's tensors on another device ("cuda" on a GPU)
            torch.set_default_device("meta")
        return {"schema": 1, "status": "passed", "reason": str(torch.ones(1).device)}
""")


def test_a_default_device_a_cell_sets_does_not_reach_the_next_cell(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """`torch.set_default_device(...)` of one cell made every later cell's tensors on that
    device, where a process of its own makes them on the CPU."""
    pytest.importorskip("torch")
    got = _in_one_worker(run_cli, tmp_path, "t", TORCH_DEVICE)
    assert [got[n].reason for n in "ab"] == ["meta", "cpu"]


DEVICE_CONTEXTS = textwrap.dedent("""\
    import torch
    IMPORT_SETS

    def run(params):
        if params["n"] == "a":  # this cell's own case: no default device, or the CPU's
            torch.set_default_device(None if IMPORT_SETS_IT else "cpu")
        if params["n"] == "b":  # a `with torch.device("meta"):` never exited
            torch.device("meta").__enter__()
        seen = (torch._C._len_torch_function_stack(), str(torch.ones(1).device))
        return {"schema": 1, "status": "passed", "reason": repr(seen)}
""")


@pytest.mark.parametrize("where", ["at_import", "in_run"])
def test_a_default_device_context_a_cell_enters_or_leaves_is_not_the_next_cells(
    tmp_path: Path, run_cli: CliRunner, where: str
) -> None:
    """A cell's `torch.set_default_device("cpu")` left its device context on torch's mode
    stack for every later cell of its worker (read as "cpu", torch's own default, it was
    not put back), and a cell's `set_default_device(None)` under a repro whose import set
    "cpu" left later cells without it; a `torch.device("meta")` entered and never exited
    made the next cell's tensors meta tensors. `--isolate` gives each cell its import's."""
    pytest.importorskip("torch")
    at_import = where == "at_import"
    script = DEVICE_CONTEXTS.replace("IMPORT_SETS_IT", repr(at_import)).replace(
        "IMPORT_SETS", "SET_UP = torch.set_default_device('cpu')" if at_import else ""
    )
    (tmp_path / "repros").mkdir()
    (tmp_path / "repros" / "t.py").write_text(script)
    lines = ["schema: 1", "defaults: {timeout: 60}", "repros:"]
    lines += [f"  {n}: {{script: repros/t.py, gpus: [cpu], params: {{n: {n}}}}}" for n in "abc"]
    (tmp_path / "m.yaml").write_text("\n".join(lines) + "\n")
    got = _run(run_cli, tmp_path / "m.yaml", "results")
    fresh = int(at_import)  # the import's context, as a process of its own has it
    assert [got[n].reason for n in "abc"] == [
        f"({1 - fresh}, 'cpu')",
        f"({fresh + 1}, 'meta')",
        f"({fresh}, 'cpu')",
    ]
    workers = {n: got[n].provenance["harness"]["worker"] for n in "abc"}
    assert workers["a"]["pid"] == workers["b"]["pid"] != workers["c"]["pid"]
    assert workers["a"]["retired"] is None
    assert "mode entered and never exited" in workers["b"]["retired"]


BARE_MAIN = textwrap.dedent("""\
    import os, sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _repro

    def run(params):
        rec = _repro.Recorder("bare", params)
        if params["n"] == "b":
            raise _repro.Untestable("needs an SM90 GPU")
        return rec.result("regressed", "max abs 0.5 above 1e-3")

    if __name__ == "__main__":
        _repro.main(run, {"n": ""})  # its exit code not handed to sys.exit
""")


@pytest.mark.parametrize("isolate", [False, True], ids=["worker", "isolate"])
def test_a_main_block_that_drops_mains_exit_code_keeps_the_verdict(
    tmp_path: Path, run_cli: CliRunner, isolate: bool
) -> None:
    """`_repro.main(run, DEFAULT_PARAMS)` as README's "Adding a repro" writes it, without
    `raise SystemExit(...)`: the script exited 0 whatever it found, so under `--isolate`
    a regression was recorded as "exit code 0 (passed) disagrees with result JSON status
    'regressed'", an error, where its worker recorded it regressed (and `git bisect run`
    took it for a good commit)."""
    _two_cells(tmp_path, "bare", BARE_MAIN)
    shutil.copy(HELPER, tmp_path / "repros" / "_repro.py")
    got = _run(run_cli, tmp_path / "m.yaml", "results", *(["--isolate"] if isolate else []))
    assert (got["a"].status, got["a"].exit_code) == (Status.REGRESSED, 1), got["a"].reason
    assert got["a"].reason == "max abs 0.5 above 1e-3"
    assert (got["b"].status, got["b"].exit_code) == (Status.UNTESTABLE, 125), got["b"].reason
    direct = subprocess.run(
        [sys.executable, str(tmp_path / "repros" / "bare.py"), "--out", str(tmp_path / "r.json"),
         "--params", '{"n": "a"}'],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert direct.returncode == 1, direct.stderr


DETERMINISTIC_MODES = textwrap.dedent("""\
    import torch
    import torch.utils.deterministic as det

    SET_UP = torch.use_deterministic_algorithms(True)  # the repro's own: errors, not warnings

    def run(params):
        if params["n"] == "a":  # this cell's own case: warnings only, memory left unfilled
            torch.use_deterministic_algorithms(True, warn_only=True)
            det.fill_uninitialized_memory = False
        seen = (torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled(),
                det.fill_uninitialized_memory)
        return {"schema": 1, "status": "passed", "reason": repr(seen)}
""")


def test_torchs_deterministic_warn_only_and_fill_a_cell_sets_do_not_reach_the_next_cell(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A cell's `use_deterministic_algorithms(True, warn_only=True)` had only its on/off
    put back: with the repro's import's own `use_deterministic_algorithms(True)` every
    later cell ran warn-only, its nondeterministic ops warning where a process of its own
    (`--isolate`) raises; a cell's `torch.utils.deterministic.fill_uninitialized_memory =
    False` held too (`torch.empty` no longer filled with NaN in later cells)."""
    pytest.importorskip("torch.utils.deterministic")
    got = _in_one_worker(run_cli, tmp_path, "t", DETERMINISTIC_MODES)
    assert got["a"].reason == "(True, True, False)", got["a"].reason
    assert got["b"].reason == "(True, False, True)", got["b"].reason


CONFIG_IN_PLACE = textwrap.dedent("""\
    import torch
    IMPORT_ADDS

    def run(params):
        import torch._dynamo.config as dynamo
        # This cell's own case: torch.compile traces through its tensor subclass.
        dynamo.traceable_tensor_subclasses.add(type(params["n"], (torch.Tensor,), {}))
        seen = sorted(t.__name__ for t in dynamo.traceable_tensor_subclasses)
        return {"schema": 1, "status": "passed", "reason": repr(seen)}
""")


@pytest.mark.parametrize("where", ["at_import", "in_run"])
def test_a_torch_config_set_a_cell_adds_to_in_place_does_not_reach_later_cells(
    tmp_path: Path, run_cli: CliRunner, where: str
) -> None:
    """A cell's `torch._dynamo.config.traceable_tensor_subclasses.add(X)` was put back
    after it, but by the worker's own copy of the saved value: the next cell's `.add(Y)`
    changed that copy too, Y was never taken out, and every later cell traced Y (here
    cell c saw ['b', 'c']), where `--isolate` gives each cell its own subclass alone
    (plus what the repro's import added)."""
    pytest.importorskip("torch._dynamo.config")
    adds = "import torch._dynamo.config\n"
    adds += "Imp = type('imp', (torch.Tensor,), {})\n"
    adds += "SET_UP = torch._dynamo.config.traceable_tensor_subclasses.add(Imp)\n"
    script = CONFIG_IN_PLACE.replace("IMPORT_ADDS", adds if where == "at_import" else "")
    (tmp_path / "repros").mkdir()
    (tmp_path / "repros" / "t.py").write_text(script)
    lines = ["schema: 1", "defaults: {timeout: 60}", "repros:"]
    lines += [f"  {n}: {{script: repros/t.py, gpus: [cpu], params: {{n: {n}}}}}" for n in "abc"]
    (tmp_path / "m.yaml").write_text("\n".join(lines) + "\n")
    got = _run(run_cli, tmp_path / "m.yaml", "results")
    assert len({got[n].provenance["harness"]["worker"]["pid"] for n in "abc"}) == 1
    base = ["imp"] if where == "at_import" else []
    assert [got[n].reason for n in "abc"] == [repr(sorted([*base, n])) for n in "abc"]


AUTOCAST_AND_KERNELS = textwrap.dedent("""\
    import torch

    def run(params):
        if params["n"] == "a":  # this cell's own case: fp16 autocast on CPU, no fast path
            torch.set_autocast_enabled("cpu", True)
            torch.set_autocast_dtype("cpu", torch.float16)
            torch.backends.mha.set_fastpath_enabled(False)
            torch.backends.cuda.allow_fp16_bf16_reduction_math_sdp(True)
            torch.set_anomaly_enabled(False, check_nan=False)
        seen = ((torch.ones(2, 2) @ torch.ones(2, 2)).dtype, torch.get_autocast_dtype("cpu"),
                torch.backends.mha.get_fastpath_enabled(),
                torch.backends.cuda.fp16_bf16_reduction_math_sdp_allowed(),
                torch.is_anomaly_check_nan_enabled())
        return {"schema": 1, "status": "passed", "reason": repr(seen)}
""")


def test_torchs_autocast_and_attention_switches_a_cell_sets_do_not_reach_the_next_cell(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A cell's `torch.set_autocast_enabled("cpu", True)` (and its fp16 dtype) ran every
    later cell's matmuls in fp16 in that worker; its nn.MultiheadAttention fast path
    switched off, the math attention kernel's fp16/bf16 reductions and the anomaly mode's
    `check_nan=False` held too, where `--isolate` starts each cell with torch's own."""
    torch = pytest.importorskip("torch")
    if not hasattr(torch, "get_autocast_dtype") or not hasattr(torch.backends, "mha"):
        pytest.skip("torch before 2.4 reads autocast per device otherwise")
    got = _in_one_worker(run_cli, tmp_path, "t", AUTOCAST_AND_KERNELS)
    assert got["a"].reason == "(torch.float16, torch.float16, False, True, False)"
    assert got["b"].reason == "(torch.float32, torch.bfloat16, True, False, True)"


SPARSE_AUTOGRAD_JIT = textwrap.dedent("""\
    import torch

    def run(params):
        if params["n"] == "a":  # this cell's own case: checked sparse tensors, one thread
            torch.sparse.check_sparse_tensor_invariants.enable()
            torch.autograd.set_multithreading_enabled(False)
            torch.jit.enable_onednn_fusion(True)
        seen = (torch.sparse.check_sparse_tensor_invariants.is_enabled(),
                torch.autograd.is_multithreading_enabled(), torch.jit.onednn_fusion_enabled())
        return {"schema": 1, "status": "passed", "reason": repr(seen)}
""")


def test_torchs_sparse_autograd_and_jit_switches_a_cell_sets_do_not_reach_the_next_cell(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A cell's `torch.sparse.check_sparse_tensor_invariants.enable()` (later cells' sparse
    tensors checked, raising where --isolate builds them), `torch.autograd.
    set_multithreading_enabled(False)` and `torch.jit.enable_onednn_fusion(True)` held for
    every later cell of its worker."""
    pytest.importorskip("torch")
    got = _in_one_worker(run_cli, tmp_path, "t", SPARSE_AUTOGRAD_JIT)
    assert got["a"].reason == "(True, False, True)"
    assert got["b"].reason == "(False, True, False)"


TORCHSCRIPT_EXECUTOR = textwrap.dedent("""\
    import torch

    def run(params):
        if params["n"] == "a":  # this cell's own case: the legacy executor, fusers changed
            torch._C._jit_set_profiling_executor(False)
            torch._C._jit_set_profiling_mode(False)
            torch._C._jit_set_texpr_fuser_enabled(False)
            torch._C._jit_override_can_fuse_on_cpu(True)
            torch._C._set_graph_executor_optimize(False)
        executor = torch._C._jit_set_profiling_executor(True)
        torch._C._jit_set_profiling_executor(executor)
        seen = (executor, torch._C._jit_texpr_fuser_enabled(), torch._C._jit_can_fuse_on_cpu(),
                torch._C._get_graph_executor_optimize())
        return {"schema": 1, "status": "passed", "reason": repr(seen)}
""")


def test_torchscripts_executor_and_fuser_switches_a_cell_sets_do_not_reach_the_next_cell(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A TorchScript case's `torch._C._jit_set_profiling_executor(False)` (as PyTorch's own
    JIT tests run), its fusers switched (`_jit_set_texpr_fuser_enabled(False)`,
    `_jit_override_can_fuse_on_cpu(True)`) and `_set_graph_executor_optimize(False)` held
    for every later cell of its worker, whose scripted functions then ran on another
    executor with other fusions (other roundings) than under --isolate."""
    torch = pytest.importorskip("torch")
    if not hasattr(torch._C, "_jit_set_profiling_executor"):
        pytest.skip("a torch without TorchScript's executor switches")
    got = _in_one_worker(run_cli, tmp_path, "t", TORCHSCRIPT_EXECUTOR)
    assert got["a"].reason == "(False, False, True, False)"
    assert got["b"].reason == "(True, True, False, True)"


ENTERS_A_MODE = textwrap.dedent("""\
    import torch

    class Traced(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    def run(params):
        if params["n"] == "a":  # this cell's own case, its modes never exited
            Traced().__enter__()
            torch.autograd.graph.saved_tensors_hooks(lambda x: x, lambda x: x).__enter__()
        if params["n"] == "b":  # a default device is put back, not a mode to retire for
            torch.set_default_device("meta")
        seen = (torch._C._len_torch_function_stack(),
                torch._C._autograd._top_saved_tensors_default_hooks(False) is not None)
        return {"schema": 1, "status": "passed", "reason": repr(seen)}
""")


def test_a_cell_that_leaves_a_torch_mode_entered_leaves_the_next_a_fresh_worker(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A `TorchFunctionMode` (or `saved_tensors_hooks`) a cell entered and never exited saw
    every op of every later cell of its worker, where `--isolate` has none: the worker is
    now replaced after such a cell, as after any change it cannot put back. A default
    device (`set_default_device`, a mode of torch's own) retires none."""
    pytest.importorskip("torch")
    (tmp_path / "repros").mkdir()
    (tmp_path / "repros" / "t.py").write_text(ENTERS_A_MODE)
    lines = ["schema: 1", "defaults: {timeout: 60}", "repros:"]
    lines += [f"  {n}: {{script: repros/t.py, gpus: [cpu], params: {{n: {n}}}}}" for n in "abc"]
    (tmp_path / "m.yaml").write_text("\n".join(lines) + "\n")
    got = _run(run_cli, tmp_path / "m.yaml", "results")
    assert [got[n].reason for n in "abc"] == ["(1, True)", "(1, False)", "(0, False)"]
    workers = {n: got[n].provenance["harness"]["worker"] for n in "abc"}
    assert "mode entered and never exited" in workers["a"]["retired"]
    assert "saved_tensors_hooks" in workers["a"]["retired"]
    assert workers["b"]["retired"] is None
    assert workers["b"]["pid"] == workers["c"]["pid"] != workers["a"]["pid"]


LEAVES_A_PROFILER = textwrap.dedent("""\
    import torch

    def run(params):
        if params["n"] == "a":  # this cell's own case, profiled, the profiler never stopped
            torch.profiler.profile().__enter__()
            torch.ones(3).sum()
        return {"schema": 1, "status": "passed", "reason": repr(torch.autograd._profiler_enabled())}
""")


def test_a_cell_that_leaves_a_torch_profiler_running_leaves_the_next_a_fresh_worker(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """`torch.profiler.profile().__enter__()` never exited recorded every op of every later
    cell of its worker (their latencies, their memory), where `--isolate` profiles none:
    the worker is replaced after such a cell."""
    torch = pytest.importorskip("torch")
    if not hasattr(torch.autograd, "_profiler_enabled"):
        pytest.skip("a torch that says not whether its profiler runs")
    (tmp_path / "repros").mkdir()
    (tmp_path / "repros" / "t.py").write_text(LEAVES_A_PROFILER)
    lines = ["schema: 1", "defaults: {timeout: 60}", "repros:"]
    lines += [f"  {n}: {{script: repros/t.py, gpus: [cpu], params: {{n: {n}}}}}" for n in "ab"]
    (tmp_path / "m.yaml").write_text("\n".join(lines) + "\n")
    got = _run(run_cli, tmp_path / "m.yaml", "results")
    assert [got[n].reason for n in "ab"] == ["True", "False"]
    workers = {n: got[n].provenance["harness"]["worker"] for n in "ab"}
    assert "profiler" in workers["a"]["retired"]
    assert workers["b"]["pid"] != workers["a"]["pid"]


LACKS_A_NAME = textwrap.dedent("""\
    import torch

    # As a torch would be that moved a private name the worker reads its modes by.
    MOVED = delattr(torch._C, "_len_torch_function_stack")
    SEEN = []

    class Traced(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            SEEN.append(func)
            return func(*args, **(kwargs or {}))

    def run(params):
        if params["n"] == "a":  # this cell's own case, its mode never exited
            Traced().__enter__()
        before = len(SEEN)
        torch.ones(1) + 1
        return {"schema": 1, "status": "passed", "reason": repr(len(SEEN) - before)}
""")


def test_a_torch_that_lacks_a_name_the_worker_reads_retires_each_worker_and_says_so(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """The worker reads torch's modes, default device, hooks and some switches by private
    names, quietly (an older torch lacks the state itself): on a torch that moved one, a
    mode cell `a` left entered was never seen, and cell `b` ran under it in the same
    worker (its ops traced where `--isolate` traces none). Each cell's worker is now
    retired after it, the record naming the missing name, as a process of its own."""
    pytest.importorskip("torch")
    got = _in_fresh_workers(run_cli, tmp_path, LACKS_A_NAME)
    assert [got[n].reason for n in "ab"] == ["2", "0"]  # torch.ones and the addition
    for name in "ab":
        retired = got[name].provenance["harness"]["worker"]["retired"]
        assert "lacks" in retired, retired
        assert "torch._C._len_torch_function_stack" in retired, retired


def _in_fresh_workers(run_cli: CliRunner, tmp_path: Path, script: str) -> dict[str, Result]:
    """Cells `a` then `b` of `script` (`_two_cells`), each in a worker of its own."""
    _two_cells(tmp_path, "t", script)
    got = _run(run_cli, tmp_path / "m.yaml", "results")
    assert len({got[n].provenance["harness"]["worker"]["pid"] for n in "ab"}) == 2
    return got


GLOBAL_MODULE_HOOK = textwrap.dedent("""\
    import torch
    IMPORT_HOOK

    def run(params):
        if params["n"] == "a":  # this cell's own case: every module's output doubled
            torch.nn.modules.module.register_module_forward_hook(lambda m, i, o: o * 2)
        out = torch.nn.Identity()(torch.ones(1)).item()
        return {"schema": 1, "status": "passed", "reason": repr(out)}
""")


@pytest.mark.parametrize("where", ["at_import", "in_run"])
def test_a_global_module_hook_a_cell_registers_does_not_reach_the_next_cell(
    tmp_path: Path, run_cli: CliRunner, where: str
) -> None:
    """A cell's `torch.nn.modules.module.register_module_forward_hook(...)` ran in every
    later cell's models in its worker (the next cell's Identity returned 2.0 for 1.0),
    where `--isolate` has none but what the repro's import registered (here +1)."""
    pytest.importorskip("torch")
    at_import = "ADDS = torch.nn.modules.module.register_module_forward_hook(lambda m, i, o: o + 1)"
    script = GLOBAL_MODULE_HOOK.replace("IMPORT_HOOK", at_import if where == "at_import" else "")
    got = _in_one_worker(run_cli, tmp_path, "t", script)
    hooked = where == "at_import"
    assert [got[n].reason for n in "ab"] == (["4.0", "2.0"] if hooked else ["2.0", "1.0"])


EINSUM_SHARING_HUB = textwrap.dedent("""\
    import torch
    import torch.hub
    import torch.multiprocessing

    def run(params):
        if params["n"] == "a":  # this cell's own case
            torch.backends.opt_einsum.strategy = "optimal"
            torch.multiprocessing.set_sharing_strategy("file_system")
            torch.hub.set_dir("/nonexistent/other-weights")
        seen = (torch.backends.opt_einsum.strategy, torch.multiprocessing.get_sharing_strategy(),
                torch.hub.get_dir() == "/nonexistent/other-weights")
        return {"schema": 1, "status": "passed", "reason": repr(seen)}
""")


def test_torchs_einsum_sharing_and_hub_settings_a_cell_sets_do_not_reach_the_next_cell(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A cell's `torch.backends.opt_einsum.strategy = "optimal"`, `torch.multiprocessing.
    set_sharing_strategy("file_system")` and `torch.hub.set_dir(...)` (the next cell's
    `torch.hub.load` read another folder's weights) held for every later cell of its
    worker, where `--isolate` starts each with torch's own."""
    torch = pytest.importorskip("torch")
    sharing = pytest.importorskip("torch.multiprocessing")
    if "file_descriptor" not in sharing.get_all_sharing_strategies():
        pytest.skip("this platform shares CPU tensors one way only")
    fresh = torch.backends.opt_einsum.strategy
    got = _in_one_worker(run_cli, tmp_path, "t", EINSUM_SHARING_HUB)
    assert got["a"].reason == "('optimal', 'file_system', True)"
    assert got["b"].reason == f"({fresh!r}, 'file_descriptor', False)"


FREEZES_FLAGS = textwrap.dedent("""\
    import torch

    def run(params):
        if params["n"] == "a":  # this cell's own case: cuDNN benchmarking, flags frozen
            torch.backends.cudnn.benchmark = True
            torch.backends.disable_global_flags()
            return {"schema": 1, "status": "passed", "reason": "frozen"}
        seen = (torch.backends.flags_frozen(), torch.backends.cudnn.benchmark)
        torch.backends.cudnn.deterministic = True  # raised while frozen
        return {"schema": 1, "status": "passed", "reason": repr(seen)}
""")


def test_backend_flags_a_cell_freezes_do_not_stay_frozen_for_the_next_cell(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A cell's `torch.backends.disable_global_flags()` made the next cell of its worker
    raise on `torch.backends.cudnn.deterministic = True` ("not allowed to set
    torch.backends.cudnn flags after disable_global_flags"), and kept the backend flags it
    set before (cuDNN benchmarking) from being put back, where `--isolate` passes."""
    pytest.importorskip("torch")
    got = _in_one_worker(run_cli, tmp_path, "t", FREEZES_FLAGS)
    assert got["b"].status is Status.PASSED, got["b"].reason
    assert got["b"].reason == "(False, False)"
