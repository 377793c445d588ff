"""What a cell may change in a persistent worker's process (`worker_main.py`), and how
it is put back after the cell, or the worker retired when it cannot be: the process state
(`ProcessState`) and torch's global switches and CUDA context (`reset_torch`).

Standard library only, as `worker_main.py`, which runs it from the same folder.
"""

from __future__ import annotations

import _locale
import contextlib
import gc
import os
import resource
import signal
import socket
import sys
import tempfile
import threading
import time
import types
import warnings
from typing import Any, cast

if __package__:  # imported as part of repromatrix (type checks)
    from repromatrix.executors.worker_bindings import Bindings
    from repromatrix.executors.worker_faults import faults, restore_faults
    from repromatrix.executors.worker_leftovers import (
        a_process_left,
        boot_ticks,
        crowded,
        descriptors,
        left_threads,
        locks_held,
        own,
    )
    from repromatrix.executors.worker_logging import loggers, restore_loggers
else:  # run from worker_main.py's folder, which is on sys.path
    from worker_bindings import Bindings  # type: ignore[import-not-found,no-redef]
    from worker_faults import faults, restore_faults  # type: ignore[import-not-found,no-redef]
    from worker_leftovers import (  # type: ignore[import-not-found,no-redef]
        a_process_left,
        boot_ticks,
        crowded,
        descriptors,
        left_threads,
        locks_held,
        own,
    )
    from worker_logging import loggers, restore_loggers  # type: ignore[import-not-found,no-redef]


class ProcessState:
    """What a cell may change in the worker's process and the next cell must not see:
    environment variables (the time zone applied), signal handlers, the signal mask and
    timers, the umask, CPU affinity, `sys.path`, `sys.argv`, the entries of `sys.modules`,
    import hooks (`sys.meta_path`, `sys.path_hooks`), `tempfile.tempdir`,
    warning filters, the loggers' handlers and levels, the garbage collector's switch and
    thresholds, the C locale, the sockets' default timeout, the standard streams and the
    recursion limit. Taken before the
    cell; what importing the repro module changed is kept (`absorb`: a library's
    import-time setup is library state, which a fresh process would have again); the rest
    is put back after the cell (the worker runs cells in its main thread). What cannot be
    put back (resource limits, priority, chroot, closed standard streams or descriptors,
    threads or processes left running) retires the worker (`restore` says what)."""

    def __init__(self) -> None:
        self.environ = dict(os.environ)
        self.handlers: dict[signal.Signals, Any] = {}
        self._signals()
        self.umask = os.umask(0o022)
        os.umask(self.umask)
        self.streams = (sys.stdin, sys.stdout, sys.stderr)
        self.recursion = sys.getrecursionlimit()
        self.path = list(sys.path)
        self.finders: tuple[list[Any], ...] = (list(sys.meta_path), list(sys.path_hooks))
        self.argv = (sys.argv, list(sys.argv))
        self.logging = loggers()
        self.runtime = _runtime()
        self.mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        self.affinity = _affinity()
        self.warnings = (warnings.filters[:], warnings.showwarning)
        self.socket_timeout = socket.getdefaulttimeout()
        self.tempdir = tempfile.tempdir
        self.opener = _opener()
        self.hooks = (sys.gettrace(), sys.getprofile(), _int_digits(), _decimal_context())
        self.callbacks = (threading.gettrace(), threading.getprofile(), list(gc.callbacks))
        self.native = (faults(), sys.getdlopenflags())
        self.fixed = _fixed()
        self.bindings = Bindings(None)
        self.locks = locks_held()
        self.descriptors = descriptors()
        self.started = boot_ticks()
        #: The repro's folder (its script and helpers), once the worker knows it.
        self.folder = ""
        #: What ended the cell's process as `python SCRIPT` would have it ended (SystemExit,
        #: KeyboardInterrupt, another BaseException) out of the repro's own code: it went
        #: past every `except Exception` clean-up of the library on its way.
        self.ended = ""
        #: Whether the repro module's import raised: what it did before (a registration in
        #: a library's table, a half-imported library) stays in the process, and the next
        #: cell's import ran into it ("'mylib::op' is registered already") where a process
        #: of its own fails as the first cell did.
        self.import_failed = False
        #: Whether its script, run whole (runpy) where it had run before, failed
        #: (`worker_main.AGAIN`).
        self.whole_again = False
        #: What the repro module's import (in this cell) replaced (`Bindings.replaced`):
        #: its own set-up, which no other repro's cell may meet (`worker_main._PATCHED`).
        self.import_replaced = ""
        self.modules = dict(sys.modules)

    def enter(self, folder: str) -> None:
        """The cell's script's folder, once the worker has put it first (and forgotten the
        helpers of another folder's: not the cell's doing)."""
        self.folder = folder
        self.modules = dict(sys.modules)
        self.bindings = Bindings(folder)

    def _signals(self) -> None:
        for sig in _CATCHABLE:
            with contextlib.suppress(OSError, ValueError):
                self.handlers[sig] = signal.getsignal(sig)

    def absorb(self, before: dict[str, str], folder: str, *, imported: bool = True) -> None:
        """Keep what happened since `before` (the environment then): an import (None where
        `imported` is False: the module's bindings, as `enter` took them, are kept)."""
        for key, value in os.environ.items():
            if before.get(key) != value:
                self.environ[key] = value
        for key in before.keys() - os.environ.keys():
            self.environ.pop(key, None)
        self._signals()
        self.recursion = sys.getrecursionlimit()
        self.path = [p for i, p in enumerate(sys.path) if p != folder or i]
        self.finders = (list(sys.meta_path), list(sys.path_hooks))
        self.argv = (sys.argv, list(sys.argv))
        self.logging = loggers()
        self.runtime = _runtime()
        self.modules = dict(sys.modules)
        self.warnings = (warnings.filters[:], warnings.showwarning)
        self.socket_timeout = socket.getdefaulttimeout()
        self.tempdir = tempfile.tempdir
        self.opener = _opener()
        self.hooks = (sys.gettrace(), sys.getprofile(), _int_digits(), _decimal_context())
        self.callbacks = (threading.gettrace(), threading.getprofile(), list(gc.callbacks))
        self.native = (faults(), sys.getdlopenflags())
        if imported:  # what the import bound is its set-up, not the cell's doing
            self.import_replaced = self.bindings.replaced(folder)
            self.bindings = Bindings(folder)
        self.locks = locks_held()

    def restore(self) -> str:
        """Put back what the cell changed; what could not be (empty when nothing)."""
        for timer in (signal.ITIMER_REAL, signal.ITIMER_VIRTUAL, signal.ITIMER_PROF):
            with contextlib.suppress(OSError, ValueError):
                signal.setitimer(timer, 0)  # signal.alarm included
        signal.pthread_sigmask(signal.SIG_SETMASK, self.mask)
        if self.affinity is not None:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, self.affinity)
        self._restore_sys()
        for sig, handler in self.handlers.items():
            with contextlib.suppress(OSError, ValueError, TypeError):
                if signal.getsignal(sig) is not handler:
                    signal.signal(sig, handler)
        if os.environ != self.environ:
            os.environ.clear()
            os.environ.update(self.environ)
        time.tzset()  # a TZ the cell set and applied (`time.tzset`) goes with it
        if warnings.filters != self.warnings[0]:
            warnings.resetwarnings()  # tells the warnings machinery its filters changed
            cast("list[Any]", warnings.filters)[:] = self.warnings[
                0
            ]  # the same list _warnings reads
        warnings.showwarning = self.warnings[1]
        socket.setdefaulttimeout(self.socket_timeout)
        # `tempfile.tempdir = <a folder of its own>`, removed after: every later cell's
        # temporary files went there (FileNotFoundError once it was gone).
        tempfile.tempdir = self.tempdir
        # `urllib.request.install_opener(opener)` (a download's proxy or credentials):
        # every later cell's `urlopen` sent the earlier cell's headers.
        request = sys.modules.get("urllib.request")
        if request is not None and _opener() is not self.opener:
            with contextlib.suppress(Exception):
                request.install_opener(self.opener)
        trace, profile, digits, context = self.hooks
        sys.settrace(trace)  # a tracer or profiler the cell set (they raise, slow down)
        sys.setprofile(profile)
        # Those of threads it starts later (`threading.settrace`), and the collector's
        # callbacks (`gc.callbacks.append`): each ran in every later cell of the worker.
        thread_trace, thread_profile, collected = self.callbacks
        threading.settrace(thread_trace)
        threading.setprofile(thread_profile)
        gc.callbacks[:] = collected
        if digits is not None:
            sys.set_int_max_str_digits(digits)
        decimal = sys.modules.get("decimal")
        if decimal is not None:  # its precision, rounding and traps (defaults if new)
            decimal.setcontext(context.copy() if context is not None else decimal.Context())
        os.umask(self.umask)
        sys.stdin, sys.stdout, sys.stderr = self.streams
        sys.setrecursionlimit(self.recursion)
        # `sys.setdlopenflags(RTLD_GLOBAL | RTLD_NOW)` (an old extension's loading recipe)
        # loaded every later cell's extensions so; `faulthandler.enable(file=f)` sent every
        # later cell's crash dump to the earlier cell's file, where --isolate has none.
        dumps, flags = self.native
        sys.setdlopenflags(flags)
        restore_faults(dumps)  # on the worker's own stderr, put back above
        return self._kept()

    def _kept(self) -> str:
        """What the cell changed that cannot be put back ("" when nothing)."""
        if self.ended or self.import_failed:
            ended = f"it ended its process ({self.ended})"
            return ended if self.ended else "its repro module's import failed part way"
        if _fixed() != self.fixed:
            return "resource limits, priority, root folder, standard streams or descriptors 0-2"
        replaced, stand_ins = self.bindings.replaced(self.folder), self._stand_ins()
        if replaced or stand_ins:
            return replaced or f"{_STAND_INS}: " + ", ".join(stand_ins[:5])
        held = self._held()
        if held:
            return held
        running = self._left_running(grace_s=1.0)
        if running:
            return running
        return "" if _affinity() == self.affinity else "CPU affinity"

    def _stand_ins(self) -> list[str]:
        """Names the cell put in `sys.modules` by hand where no module was: None (to hide a
        module: `import` of it fails) or an object that is no module (a mock). Kept, they
        held for every later cell; removed, a library first imported in the cell that so
        placed one would be run again by the next cell's import. (A hand-made module is
        not told apart: Cython's and torch's own have no `__spec__` either.)"""
        return [
            name
            for name, module in sys.modules.items()
            if name not in self.modules and not isinstance(module, types.ModuleType)
        ]

    def _held(self) -> str:
        """File locks and descriptors the cell still holds, which a process per cell
        releases as it ends ("" when none)."""
        if locks_held() - self.locks:
            return "file locks it holds (flock, lockf)"
        return crowded(self.descriptors)

    def _restore_sys(self) -> None:
        sys.path[:] = self.path
        # Import hooks: a finder a cell put first to hide a module from its case ("runs
        # without flash_attn") hid it from every later cell of the worker. A library's own,
        # installed by its first import (six's), stays: its later imports need it.
        hooks: list[list[Any]] = [sys.meta_path, sys.path_hooks]
        for now, before in zip(hooks, self.finders, strict=True):
            if now != before:
                now[:] = before + [f for f in now if f not in before and not own(f, self.folder)]
                sys.path_importer_cache.clear()  # the finders the cell's hooks made per folder
        sys.argv = self.argv[0]  # an argparse-minded cell rewrote or replaced it
        sys.argv[:] = self.argv[1]
        # A module the cell replaced (a mock) or dropped (a fresh import's second copy,
        # whose classes are not the first's) is put back; what it imported first stays.
        for name, module in self.modules.items():
            if sys.modules.get(name) is not module:
                sys.modules[name] = module
        restore_loggers(self.logging, self.folder)
        _restore_runtime(self.runtime)

    def _left_running(self, *, grace_s: float) -> str:
        """What the cell left running `grace_s` after it ("" when nothing; a thread or a
        child finishing its work may take a moment)."""
        deadline = time.monotonic() + grace_s
        while True:
            if left_threads(self.folder):
                why = "threads it left running"
            elif a_process_left(self.started):
                why = "processes it left running"
            else:
                return ""
            if time.monotonic() >= deadline:
                return why
            time.sleep(0.02)


_STAND_INS = "modules it put in sys.modules by hand (None, a mock)"


_LOCALES = tuple(
    getattr(_locale, name)
    for name in ("LC_CTYPE", "LC_NUMERIC", "LC_TIME", "LC_COLLATE", "LC_MONETARY", "LC_MESSAGES")
    if hasattr(_locale, name)
)
#: The collector's switch, thresholds and debug flags; the interpreter's thread switch
#: interval; the C locale, per category; multiprocessing's start method; NumPy's
#: floating-point error handling.
_Runtime = tuple[bool, tuple[int, ...], int, float, dict[int, str], Any, Any, int, int]
#: `np.geterr()` of a fresh process: what a cell that first imported NumPy leaves behind.
_NUMPY_ERRORS = {"divide": "warn", "over": "warn", "under": "ignore", "invalid": "warn"}


def _runtime() -> _Runtime:
    locales = {}
    for category in _LOCALES:
        with contextlib.suppress(Exception):  # _locale.Error: no locale support
            locales[category] = _locale.setlocale(category, None)
    collector = (gc.isenabled(), gc.get_threshold(), gc.get_debug())
    numpy = sys.modules.get("numpy")
    errors = None
    with contextlib.suppress(Exception):  # a half-imported or mocked numpy
        errors = dict(numpy.geterr()) if numpy is not None else None
    return (
        *collector,
        sys.getswitchinterval(),
        locales,
        _start_method(),
        errors,
        _wakeup_fd(),
        gc.get_freeze_count(),
    )


def _wakeup_fd() -> int:
    """The descriptor `signal.set_wakeup_fd` set (-1: none; the worker's main thread)."""
    try:
        fd = signal.set_wakeup_fd(-1)
        signal.set_wakeup_fd(fd)
        return fd
    except (ValueError, OSError):
        return -1


def _start_method() -> Any:
    """multiprocessing's default context as `set_start_method` left it (None: not chosen
    yet, as in a fresh process); None too where multiprocessing is not imported."""
    context = getattr(sys.modules.get("multiprocessing.context"), "_default_context", None)
    return getattr(context, "_actual_context", None)


def _restore_runtime(before: _Runtime) -> None:
    """`gc.disable()` (a benchmark's set-up) and `locale.setlocale` (read by C code that
    parses and formats numbers) as they were before the cell."""
    enabled, threshold, debug, switch, locales, start, errors, wakeup, frozen = before
    # `signal.set_wakeup_fd(fd)` (an event loop's set-up, left): every later cell's signals
    # wrote a byte into that descriptor, once closed into whatever file took its number;
    # `gc.freeze()` kept the cell's objects out of every later collection.
    if _wakeup_fd() != wakeup:
        with contextlib.suppress(ValueError, OSError):
            signal.set_wakeup_fd(wakeup)
    if gc.get_freeze_count() and not frozen:
        gc.unfreeze()
    if enabled:
        gc.enable()
    else:
        gc.disable()
    gc.set_threshold(*threshold)
    # `gc.set_debug` (DEBUG_STATS wrote to every later cell's stderr, DEBUG_SAVEALL kept
    # their garbage) and `sys.setswitchinterval` (a race repro's thread timing) are
    # process-wide: a fresh process has the defaults.
    gc.set_debug(debug)
    sys.setswitchinterval(switch)
    # `multiprocessing.set_start_method("spawn", force=True)` of one cell made the next
    # cells' pools spawn where a fresh process forks (or the reverse).
    context = getattr(sys.modules.get("multiprocessing.context"), "_default_context", None)
    if context is not None and getattr(context, "_actual_context", None) is not start:
        context._actual_context = start
    # `np.seterr(all="raise")` (to find where a NaN first appears) made the next cells'
    # NaN a FloatingPointError: an error where a fresh process records the regression.
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        with contextlib.suppress(Exception):
            numpy.seterr(**(errors or _NUMPY_ERRORS))
    for category, name in locales.items():
        with contextlib.suppress(Exception):
            if _locale.setlocale(category, None) != name:
                _locale.setlocale(category, name)


def _opener() -> Any:
    """urllib.request's installed opener (None: none, or urllib.request not loaded)."""
    return getattr(sys.modules.get("urllib.request"), "_opener", None)


def _int_digits() -> int | None:
    get = getattr(sys, "get_int_max_str_digits", None)  # Python 3.11+
    return int(get()) if get is not None else None


def _decimal_context() -> Any:
    """The decimal module's context of this thread, as a copy (None before it is used)."""
    decimal = sys.modules.get("decimal")
    return decimal.getcontext().copy() if decimal is not None else None


def _affinity() -> set[int] | None:
    """The CPUs this process may run on (None where the platform cannot say: macOS)."""
    get = getattr(os, "sched_getaffinity", None)
    return set(get(0)) if get is not None else None


def _fixed() -> tuple[Any, ...]:
    """What a cell cannot be trusted to leave as it found it and the worker cannot put
    back: resource limits (a lowered hard limit stays), the standard stream objects
    (closed by `exit()`, reconfigured) and what descriptors 0-2 are."""
    limits = []
    for name in dir(resource):
        if name.startswith("RLIMIT_"):
            with contextlib.suppress(OSError, ValueError):
                limits.append(resource.getrlimit(getattr(resource, name)))
    streams = [
        (getattr(s, "closed", None), getattr(s, "encoding", None), getattr(s, "errors", None))
        for s in (sys.__stdin__, sys.__stdout__)
    ]
    fds = []
    for fd in (0, 1, 2):
        try:
            fds.append(os.fstat(fd).st_ino)
        except OSError:
            fds.append(-1)
    root = os.stat("/")  # chroot cannot be undone
    return (limits, streams, fds, os.getpriority(os.PRIO_PROCESS, 0), root.st_dev, root.st_ino)


#: Signals whose handlers a cell may set (SIGKILL and SIGSTOP cannot be caught).
_CATCHABLE = tuple(s for s in signal.Signals if s not in (signal.SIGKILL, signal.SIGSTOP))


def cuda_health() -> tuple[bool, str]:
    """Free cached GPU memory after a cell; (healthy, why not) of the CUDA context. (torch's
    global switches are put back before each cell: `worker_settings.apply`.)"""
    torch = sys.modules.get("torch")
    if torch is None:
        return True, ""
    try:
        if torch.cuda.is_initialized():
            # A sticky error (illegal address, device-side assert) fails every later call.
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
    except Exception as exc:
        text = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        return False, f"CUDA context unusable after the cell: {text}"
    return True, ""
