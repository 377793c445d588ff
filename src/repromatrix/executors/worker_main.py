"""A persistent worker: runs many cells of one environment in one process.

Started by the harness inside a cell's environment (the host interpreter with the pins on
PYTHONPATH, or a container of the environment image) as `python worker_main.py SOCKET`,
it connects to the harness's Unix socket and serves requests, one JSON line each:

    harness → worker  {"cell": {"script", "params", "out", "stdout", "stderr", "env"}}
    worker → harness  {"done": {"exit_code", "rss_mb", "healthy", "why"}}

A cell runs like `python SCRIPT --out OUT --params JSON` would, minus the process start:
the script is imported once and its `run(params)` called (scripts without one are run
with runpy, still skipping the imports already made: torch, CUDA initialisation, the
library). Its stdout and stderr go to the cell's own files (file descriptors 1 and 2 are
pointed there for the cell), its result JSON to OUT.

What a cell may keep for the next: imported modules and compiled kernels (caches of the
same environment). What it may not: the harness re-seeds Python's, NumPy's and torch's
generators, restores torch's global switches (grad mode, default dtype, TF32 and cuDNN
flags, deterministic mode) and frees cached GPU memory after every cell; a repro that
needs a clean process declares `isolate: true` in matrix.yaml. A cell that leaves CUDA in
an error state (a sticky error: every later CUDA call fails) makes the worker report
itself unhealthy, and the harness replaces it.

Standard library only: this file runs in environments that do not have repromatrix.
"""

from __future__ import annotations

import ast
import contextlib
import gc
import importlib.util
import json
import os
import random
import runpy
import socket
import sys
import traceback
from typing import Any

#: Exit codes of the repro protocol.
EXIT_ERROR = 2
_EXIT = {"passed": 0, "regressed": 1, "untestable": 125}


def main(argv: list[str]) -> int:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(argv[1])
    reader = sock.makefile("r", encoding="utf-8")
    writer = sock.makefile("w", encoding="utf-8")
    _send(writer, {"hello": {"pid": os.getpid(), "python": sys.executable}})
    modules: dict[str, Any] = {}
    baseline: dict[str, Any] | None = None
    for line in reader:
        request = json.loads(line)
        if "stop" in request:
            break
        cell = request["cell"]
        if baseline is None:
            baseline = _torch_switches()
        code = _run_cell(cell, modules)
        healthy, why = _reset(baseline)
        if "torch" in sys.modules:
            # Tensors held only by reference cycles would keep GPU memory; a full
            # collection costs milliseconds, which a GPU cell can spare and a no-op not.
            gc.collect()
        _send(
            writer,
            {"done": {"exit_code": code, "rss_mb": _rss_mb(), "healthy": healthy, "why": why}},
        )
    return 0


def _send(writer: Any, message: dict[str, Any]) -> None:
    writer.write(json.dumps(message) + "\n")
    writer.flush()


def _run_cell(cell: dict[str, Any], modules: dict[str, Any]) -> int:
    """Run one cell with fds 1/2 on its own files; its exit code as a process would give."""
    saved = {k: os.environ.get(k) for k in cell["env"]}
    os.environ.update(cell["env"])
    here = os.getcwd()
    os.chdir(cell["cwd"])
    out_fd = os.open(cell["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    err_fd = os.open(cell["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    keep_out, keep_err = os.dup(1), os.dup(2)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    try:
        return _call(cell, modules)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(keep_out, 1)
        os.dup2(keep_err, 2)
        for fd in (out_fd, err_fd, keep_out, keep_err):
            os.close(fd)
        os.chdir(here)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _call(cell: dict[str, Any], modules: dict[str, Any]) -> int:
    script, out, params = cell["script"], cell["out"], cell["params"]
    _seed(0)
    try:
        if not _has_run(script):
            return _run_path(script, out, params)
        result = _module(script, modules).run(params)
    except SystemExit as exc:  # a script that exits while being imported
        return _code(exc)
    except BaseException:
        traceback.print_exc()
        return EXIT_ERROR
    try:
        _write_json(out, result)
    except (OSError, TypeError, ValueError):
        traceback.print_exc()
        return EXIT_ERROR
    status = result.get("status") if isinstance(result, dict) else None
    print(
        f"{result.get('repro') if isinstance(result, dict) else script}: {status}", file=sys.stderr
    )
    return _EXIT.get(str(status), EXIT_ERROR)


_SHAPES: dict[str, bool] = {}


def _has_run(script: str) -> bool:
    """Whether the script is a repro module: a top-level `run` and nothing at top level
    that acts (parses arguments, computes) — only imports, definitions, assignments,
    `sys.path` edits and an `if __name__ == "__main__":` block. Anything else is run as
    `python SCRIPT` would run it (runpy), still with the imports of earlier cells."""
    if script not in _SHAPES:
        try:
            with open(script, encoding="utf-8") as f:
                tree = ast.parse(f.read())
        except (OSError, SyntaxError, ValueError):
            _SHAPES[script] = False
            return False
        _SHAPES[script] = any(
            isinstance(n, ast.FunctionDef) and n.name == "run" for n in tree.body
        ) and all(_inert(n) for n in tree.body)
    return _SHAPES[script]


def _inert(node: ast.stmt) -> bool:
    if isinstance(
        node,
        (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
         ast.Assign, ast.AnnAssign),
    ):  # fmt: skip
        return True
    if isinstance(node, ast.Expr):
        value = node.value
        if isinstance(value, ast.Constant):  # a docstring
            return True
        func = value.func if isinstance(value, ast.Call) else None
        return isinstance(func, ast.Attribute) and ast.unparse(func) in (
            "sys.path.insert",
            "sys.path.append",
        )
    if isinstance(node, ast.If):
        return ast.unparse(node.test).replace("'", '"') == '__name__ == "__main__"'
    return False


def _module(script: str, modules: dict[str, Any]) -> Any:
    """The script imported once per worker (its directory first on sys.path, as `python
    SCRIPT` has it, so its helpers import)."""
    if script in modules:
        return modules[script]
    folder = os.path.dirname(os.path.abspath(script))
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = "_repromatrix_cell_" + os.path.splitext(os.path.basename(script))[0]
    spec = importlib.util.spec_from_file_location(name, script)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {script}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    modules[script] = module
    return module


def _run_path(script: str, out: str, params: Any) -> int:
    argv, path = sys.argv, list(sys.path)
    sys.argv = [script, "--out", out, "--params", json.dumps(params)]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        return _code(exc)
    finally:
        sys.argv = argv
        sys.path[:] = path
    return 0


def _code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _write_json(path: str, obj: Any) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, allow_nan=False)
    os.replace(tmp, path)


def _seed(value: int) -> None:
    random.seed(value)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        with contextlib.suppress(Exception):
            numpy.random.seed(value)
    torch = sys.modules.get("torch")
    if torch is not None:
        with contextlib.suppress(Exception):
            torch.manual_seed(value)


def _torch_switches() -> dict[str, Any]:
    """torch's global switches as the first cell found them (empty when torch is absent)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    switches: dict[str, Any] = {}
    with contextlib.suppress(Exception):
        switches["grad"] = torch.is_grad_enabled()
        switches["dtype"] = torch.get_default_dtype()
        switches["matmul_tf32"] = torch.backends.cuda.matmul.allow_tf32
        switches["cudnn_tf32"] = torch.backends.cudnn.allow_tf32
        switches["benchmark"] = torch.backends.cudnn.benchmark
        switches["cudnn_deterministic"] = torch.backends.cudnn.deterministic
        switches["deterministic"] = torch.are_deterministic_algorithms_enabled()
        switches["precision"] = torch.get_float32_matmul_precision()
    return switches


def _reset(baseline: dict[str, Any]) -> tuple[bool, str]:
    """Undo what a cell may have changed; (healthy, why not) of the CUDA context."""
    torch = sys.modules.get("torch")
    if torch is None:
        return True, ""
    if not baseline:  # torch arrived with this cell: its switches are the defaults now
        baseline.update(_torch_switches())
    with contextlib.suppress(Exception):
        torch.set_grad_enabled(baseline["grad"])
        torch.set_default_dtype(baseline["dtype"])
        torch.backends.cuda.matmul.allow_tf32 = baseline["matmul_tf32"]
        torch.backends.cudnn.allow_tf32 = baseline["cudnn_tf32"]
        torch.backends.cudnn.benchmark = baseline["benchmark"]
        torch.backends.cudnn.deterministic = baseline["cudnn_deterministic"]
        torch.use_deterministic_algorithms(baseline["deterministic"])
        torch.set_float32_matmul_precision(baseline["precision"])
    try:
        if torch.cuda.is_initialized():
            # A sticky error (illegal address, device-side assert) fails every later call.
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
    except Exception as exc:
        text = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        return False, f"CUDA context unusable after the cell: {text}"
    return True, ""


def _rss_mb() -> float:
    """Resident memory now (not the peak: memory a cell gave back does not count)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
