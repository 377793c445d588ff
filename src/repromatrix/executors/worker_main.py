"""A persistent worker: runs many cells of one environment in one process.

Started by the harness inside a cell's environment (the host interpreter with the pins on
PYTHONPATH, or a container of the environment image) as `python worker_main.py SOCKET`,
it connects to the harness's Unix socket and serves requests, one JSON line each:

    harness → worker  {"cell": {"script", "params", "out", "stdout", "stderr", "env"}, "nonce"}
    worker → harness  {"took": nonce}, before the cell runs
    worker → harness  {"done": {"exit_code", "rss_mb", "healthy", "why", "nonce"}}

A cell runs like `python SCRIPT --out OUT --params JSON` would, minus the process start:
the script is imported once and its `run(params)` called (scripts without one are run
with runpy, still skipping the imports already made: torch, CUDA initialisation, the
library; which scripts are such modules, and how one is imported: `worker_scripts.py`).
Its stdout and stderr go to the cell's own files (file descriptors 1 and 2 are pointed
there for the cell), its result JSON to OUT.

What a cell may keep for the next: imported modules and compiled kernels (caches of the
same environment). What it may not: the harness re-seeds Python's, NumPy's and torch's
generators and puts back torch's global switches (grad mode, default dtype, TF32 and cuDNN
flags, deterministic mode) before every cell (`worker_settings`), and frees cached GPU
memory after every cell; a repro that
needs a clean process declares `isolate: true` in matrix.yaml. A cell that leaves CUDA in
an error state (a sticky error: every later CUDA call fails) or changes the process's
user or groups (which cannot be taken back) makes the worker report itself unhealthy, and
the harness replaces it.

Standard library only: this file runs in environments that do not have repromatrix.
"""

from __future__ import annotations

import contextlib
import gc
import json
import operator
import os
import random
import runpy
import signal
import socket
import sys
import threading
import traceback
from typing import Any

if __package__:  # imported as part of repromatrix (type checks)
    from repromatrix.executors.worker_bindings import load_watched
    from repromatrix.executors.worker_faults import watch_faults
    from repromatrix.executors.worker_leftovers import adopt_orphans, folder_names, undo_try
    from repromatrix.executors.worker_logging import watch_handlers
    from repromatrix.executors.worker_modes import modes_left, unreadable
    from repromatrix.executors.worker_process import (
        child_exits,
        end_with_parent,
        forget,
        mark_worker,
        rss_mb,
    )
    from repromatrix.executors.worker_result import (
        EXIT_ERROR,
        UNWRITABLE,
        cannot_write,
        caught,
        exit_of,
        helper_of,
        refused_params,
        returned,
        write_json,
    )
    from repromatrix.executors.worker_scripts import (
        MODULE_LINKS,
        enter_folder,
        exit_handlers,
        has_run,
        loaded,
        main_defaults,
        module_only,
    )
    from repromatrix.executors.worker_settings import PerScript, end_shm, shm_names
    from repromatrix.executors.worker_state import ProcessState, cuda_health
    from repromatrix.executors.worker_torch import interop_set
else:  # run as `python worker_main.py`: the files beside it (mounted beside it in Docker)
    # Bytecode of its own files comes from `worker_bytecode` alone, whole (CPython's own
    # writes take a full disk's short write as whole); the cells' imports keep the setting.
    _WRITE_BYTECODE = not sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    from worker_bytecode import own_bytecode  # type: ignore[import-not-found]

    own_bytecode(os.path.dirname(os.path.abspath(__file__)))
    from worker_bindings import load_watched  # type: ignore[import-not-found,no-redef]
    from worker_faults import watch_faults  # type: ignore[import-not-found,no-redef]
    from worker_leftovers import (  # type: ignore[import-not-found,no-redef]
        adopt_orphans,
        folder_names,
        undo_try,
    )
    from worker_logging import watch_handlers  # type: ignore[import-not-found,no-redef]
    from worker_modes import modes_left, unreadable  # type: ignore[import-not-found,no-redef]
    from worker_process import (  # type: ignore[import-not-found,no-redef]
        child_exits,
        end_with_parent,
        forget,
        mark_worker,
        rss_mb,
    )
    from worker_result import (  # type: ignore[import-not-found,no-redef]
        EXIT_ERROR,
        UNWRITABLE,
        cannot_write,
        caught,
        exit_of,
        helper_of,
        refused_params,
        returned,
        write_json,
    )
    from worker_scripts import (  # type: ignore[import-not-found,no-redef]
        MODULE_LINKS,
        enter_folder,
        exit_handlers,
        has_run,
        loaded,
        main_defaults,
        module_only,
    )
    from worker_settings import PerScript, end_shm, shm_names  # type: ignore[import-not-found,no-redef]
    from worker_state import ProcessState, cuda_health  # type: ignore[import-not-found,no-redef]
    from worker_torch import interop_set  # type: ignore[import-not-found,no-redef]

    sys.dont_write_bytecode = not _WRITE_BYTECODE

#: The worker's exit when its connection failed under it (`workers.EXIT_LOST` agrees).
EXIT_LOST = 120


def main(argv: list[str]) -> int:
    adopt_orphans()
    if len(argv) == 5 and argv[1] == ONCE:
        return _once(argv[2], argv[3], argv[4])
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(argv[1])
    mark_worker()
    # Between cells the worker stays in a folder of its own (the socket's), never in the
    # cell's folder it was started in: a cell may remove its folder with all it holds.
    home = os.path.dirname(os.path.abspath(argv[1]))
    os.chdir(home)
    MODULE_LINKS.append(os.path.join(home, "modules"))
    end_with_parent(os.getppid())
    # A process a cell forks (os.fork, multiprocessing) must not hold the harness's
    # connection: the harness would not see this worker die while the child lives.
    os.register_at_fork(after_in_child=lambda: forget(sock.fileno()))
    reader = sock.makefile("r", encoding="utf-8")
    writer = sock.makefile("w", encoding="utf-8")
    _send(writer, {"hello": {"pid": os.getpid(), "python": sys.executable}})
    load_watched()  # their functions compared after every cell, a first import's too
    watch_handlers()  # who made each handler: the repro's go with its cell
    watch_faults()  # faulthandler's registrations, which it cannot list
    _PER_SCRIPT.start()  # before any repro's import: where a new script's cells start
    modules: dict[str, Any] = {}
    ids = (os.getresuid(), os.getresgid(), os.getgroups())
    for line in reader:
        request = json.loads(line)
        if "stop" in request:
            break
        cell = request["cell"]
        # Taken: from here on what becomes of this worker is the cell's doing. A worker
        # that dies before saying so (killed while idle) never ran it.
        try:
            _send(writer, {"took": request.get("nonce")})
        except (OSError, ValueError):
            os._exit(EXIT_LOST)
        patched = _patched_by_another(cell["script"])
        if patched:  # not run: it would meet another repro's set-up (`_PATCHED`)
            code, left, again = EXIT_ERROR, "", patched
        else:
            code, left, again = _run_cell(cell, modules, home)
        healthy, why = cuda_health()
        if (os.getresuid(), os.getresgid(), os.getgroups()) != ids:
            healthy, why = False, "the cell changed the process's user or groups"
        elif left and healthy:  # an unusable CUDA context says more
            healthy, why = False, f"the cell changed what cannot be put back: {left}"
        elif again and healthy:
            healthy, why = False, again
        elif healthy and (blind := unreadable()):  # nothing left unseen: not the cell's
            healthy, why = False, f"{blind}; each cell runs in a worker of its own"
        done = {"exit_code": code, "rss_mb": rss_mb(), "healthy": healthy, "why": why}
        if again:  # the harness runs the cell again in a fresh worker (`workers.py`)
            done["again"] = True
        try:
            _send(writer, {"done": {**done, "nonce": request.get("nonce")}})
        except (OSError, ValueError):  # the cell closed or replaced the connection's fd
            os._exit(EXIT_LOST)
    return 0


#: `worker_main.py --once SCRIPT OUT PARAMS`: one cell in a process of its own.
ONCE = "--once"


def _once(script: str, out: str, params: str) -> int:
    """One cell of a repro module that has `run` but no command line, in a process of its
    own (`--isolate`, `isolate: true`): `python SCRIPT` would define `run` and exit 0
    without a result, where a worker runs it."""
    mark_worker()  # a child the cell forks never writes its result
    cell = {"script": script, "out": out, "params": json.loads(params)}
    code = _call(cell, {}, ProcessState())
    if code < 0:  # as Python ends on a KeyboardInterrupt: by the signal, default handled
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    if any(t.is_alive() and not t.daemon for t in threading.enumerate()[1:]):
        # The cell ends when run() returns, as in its worker: a thread it left running
        # (a Timer) must not hold the process until the timeout or end it another way.
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
    return code


def _send(writer: Any, message: dict[str, Any]) -> None:
    writer.write(json.dumps(message) + "\n")
    writer.flush()


#: Why a cell is run again in a fresh worker: its script, run whole where it had run
#: before, failed. A top level that registers a name in a library's table
#: (`torch.library.define`, `Library("mylib", "DEF")`) ran into the name its earlier run
#: left there ("Tried to register an operator ... multiple times"), where a process of its
#: own runs it once and passes; which failure is such cannot be told, so any is checked.
AGAIN = "its script, run whole again in this worker, failed: the cell ran again in a fresh one"


#: Per script whose module's import replaced functions of the standard library, of a
#: library or of a class (`worker_bindings`), what it replaced: that repro's own set-up,
#: which each of its cells has (as under --isolate), and a cell of another repro must not.
_PATCHED: dict[str, str] = {}


def _patched_by_another(script: str) -> str:
    """Why a cell of `script` runs in a fresh worker instead ("" when it runs here): the
    import of another repro's module replaced functions that a process of its own has."""
    for other, what in _PATCHED.items():
        if other != script:
            name = os.path.basename(other)
            changed = f"the import of another repro ({name}) changed the worker, {what}"
            return f"{changed}; the cell ran in a fresh one"
    return ""


def _run_cell(cell: dict[str, Any], modules: dict[str, Any], home: str) -> tuple[int, str, str]:
    """Run one cell with fds 1/2 on its own files, in its folder, back to `home` after it:
    its exit code as a process would give, what it changed that cannot be put back
    (`ProcessState.restore`), and why it must run again in a fresh worker ("" when it
    need not; `AGAIN`: its result JSON, if any, removed)."""
    state = ProcessState()
    os.environ.update(cell["env"])
    tmp = _PER_SCRIPT.fresh_tmp(bool(cell.get("fresh_tmp")))
    shm = shm_names(bool(cell.get("fresh_tmp")))  # a container's /dev/shm is its own too
    os.chdir(cell["cwd"])
    out_fd = os.open(cell["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    err_fd = os.open(cell["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    before = folder_names(cell["cwd"])  # the harness's files: a second try keeps them
    streams = (sys.stdout, sys.stderr)
    for stream in streams:
        stream.flush()
    keep_out, keep_err = os.dup(1), os.dup(2)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    code = EXIT_ERROR
    try:
        with exit_handlers(cell["script"]):
            code = _call(cell, modules, state)
    finally:
        # Objects of the cell held only by cycles go now, their finalizers (and GPU
        # memory) the cell's own, output and crashes included, not the next cell's.
        with contextlib.suppress(BaseException):
            gc.collect()
        # The cell may have replaced or closed the streams, or closed descriptors: what
        # it left must not stop the worker from reporting the cell.
        for stream in {id(s): s for s in (sys.stdout, sys.stderr, *streams)}.values():
            with contextlib.suppress(BaseException):
                stream.flush()
        sys.stdout, sys.stderr = streams
        for kept, fd in ((keep_out, 1), (keep_err, 2)):
            with contextlib.suppress(OSError):
                os.dup2(kept, fd)
        for fd in (out_fd, err_fd, keep_out, keep_err):
            with contextlib.suppress(OSError):
                os.close(fd)
        try:
            os.chdir(home)
        except OSError:  # the cell removed it too
            os.chdir("/")
        left = state.restore() or interop_set() or modes_left() or _PER_SCRIPT.hooks_added()
        _PER_SCRIPT.end_tmp(tmp)
        end_shm(shm)
    if state.whole_again:  # not this attempt's result: the fresh worker's counts
        with contextlib.suppress(OSError):
            os.unlink(cell["out"])
        undo_try(cell["cwd"], before)  # nor what it made: the fresh one starts as it did
    return code, left, AGAIN if state.whole_again else ""


def _call(cell: dict[str, Any], modules: dict[str, Any], state: ProcessState) -> int:
    script, out, params = cell["script"], cell["out"], cell["params"]
    _seed(0)
    folder = enter_folder(script)
    _PER_SCRIPT.enter(script, cell.get("env", {}))  # its own import's set-up, no other's
    state.enter(folder)  # what the cell finds, that set-up included
    # As `python SCRIPT --out OUT --params JSON` has it, for its import too (a module-level
    # `ARGS = parser().parse_args()` read the worker's own arguments); put back after.
    sys.argv = [script, "--out", out, "--params", json.dumps(params)]
    module = None
    try:
        if not has_run(script):
            state.whole_again = script in _WHOLE  # its top level runs in this process again
            _WHOLE.add(script)
            code = _run_path(script, out, params)
            child_exits(code)
            state.whole_again = state.whole_again and (code not in _VERDICTS or not _wrote(out))
            return code
        before, first = dict(os.environ), script not in modules
        module = loaded(script, modules)
        # Before `absorb`: what its `__main__` block sets up, run to find them (os.environ
        # edits), is the import's, for all its cells, as --isolate has it for each.
        defaults = main_defaults(script, module, helper_of(module))
        state.absorb(before, folder, imported=first)  # its `__main__` block ran with it
        if first:
            _PER_SCRIPT.imported(script, before)
            if state.import_replaced:
                _PATCHED[script] = state.import_replaced
        refused = refused_params(module, params, defaults)
        if refused is not None:  # as `_repro.main` refuses them, before `run()`
            print(refused[1], file=sys.stderr)
            with contextlib.suppress(*UNWRITABLE):  # best effort, as `_repro.main`'s
                write_json(out, refused[0])
            return EXIT_ERROR
        result = module.run(params)
    except SystemExit as exc:  # a script that exits while being imported, or from run()
        child_exits(_code(exc))
        state.ended = "SystemExit"
        return _code(exc)
    except BaseException as exc:
        state.import_failed = module is None and has_run(script)  # whole_again stays
        result = caught(exc, module, params)  # as `_repro.main` records it
        if result is None:
            traceback.print_exc()
            child_exits(1)
            if not isinstance(exc, Exception):
                state.ended = type(exc).__name__
            # As `python SCRIPT` ends: by SIGINT on a KeyboardInterrupt, with exit 1 on any
            # other exception out of its `__main__` block (a module with none: `--once`'s 2).
            if isinstance(exc, KeyboardInterrupt):
                return -signal.SIGINT
            return EXIT_ERROR if module_only(script) else 1
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)  # put back for the next cell of its script only
    child_exits(0)
    return _write(out, returned(result, module, params))  # no dict: `_repro.main`'s error


def _write(out: str, result: Any) -> int:
    """The cell's result JSON and its exit code, as `_repro.main` writes and says them."""
    try:
        write_json(out, result)
        return exit_of(result)
    except UNWRITABLE as exc:  # as `_repro.main` says it under --isolate
        print(cannot_write(exc), file=sys.stderr)
        return EXIT_ERROR
    except Exception:  # anything a returned object's methods raise
        traceback.print_exc()
        return EXIT_ERROR


#: What each script's module set up at import, for its own cells alone.
_PER_SCRIPT = PerScript()
#: Scripts this worker has run whole (`runpy`: no `run()` to call, or a top level that acts).
_WHOLE: set[str] = set()
#: The exit codes of the protocol's verdicts: passed, regressed, untestable.
_VERDICTS = (0, 1, 125)


def _wrote(out: str) -> bool:
    return os.path.isfile(out)


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
    if exc.code is None or isinstance(exc.code, int):
        # As the process's exit status has it: its low 8 bits. `sys.exit(-1)` read as -1
        # was "crashed: killed by signal 1" (and under --isolate a module without a command
        # line was killed by SIGHUP), where `python SCRIPT` exits 255.
        return (exc.code or 0) & 0xFF
    print(exc.code, file=sys.stderr)
    return 1


def _seed(value: int) -> None:
    random.seed(value)
    for name, seed in (("numpy", "random.seed"), ("torch", "manual_seed")):
        module = sys.modules.get(name)
        if module is not None:
            with contextlib.suppress(Exception):
                operator.attrgetter(seed)(module)(value)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
