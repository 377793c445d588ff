"""The standard library's process-wide settings a repro module may set up at import, kept
per script in a persistent worker (`worker_main.py`).

A repro's module-level `socket.setdefaulttimeout(3.0)`, `sys.setrecursionlimit(12345)`,
`warnings.simplefilter("error")` or `decimal.getcontext().prec = 5` is that repro's
set-up: its own cells run with it, as its process would. The worker kept what an import
set up for every later cell, so another repro's cells in the same worker read them where
a process of their own reads the defaults (an "error" filter made their warnings
exceptions); so did a module-level `os.environ["X"] = "1"`. Each cell now starts from
the settings its own script's import left, or, before a script's first import, from
those the worker had before any repro's; environment variables likewise, the cell's own
(`--cell-env`, the harness's) kept, and those a library's code (outside the repro's
folder) set at its import kept for every script, as its import would set them. The
random generators (Python's, and NumPy's and torch's when loaded) are put where the
script's import left them, so a repro that seeds at import draws from its seed in every
cell, not in its first alone. torch's global switches too (grad mode, default dtype, TF32,
cuDNN, oneDNN and deterministic flags, matmul precision, flushing subnormals to zero): as
the script's import left them, or,
before it, as torch's own import did. NumPy's and torch's print options likewise (a cell's
`np.set_printoptions(precision=2)` cut the next cell's `str(array)` in its reason text).

Standard library only, as `worker_main.py`, which runs it from the same folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
import tempfile
import types
import warnings
from dataclasses import dataclass
from typing import Any, cast

if __package__:  # imported as part of repromatrix (type checks)
    from repromatrix.executors.worker_code import repros_file
    from repromatrix.executors.worker_leftovers import monitoring_tools, tools_claimed
    from repromatrix.executors.worker_torch import (
        TorchImport,
        noted,
        set_torch,
        torch_switches,
    )
else:  # run from worker_main.py's folder, which is on sys.path
    from worker_code import repros_file  # type: ignore[import-not-found,no-redef]
    from worker_leftovers import (  # type: ignore[import-not-found,no-redef]
        monitoring_tools,
        tools_claimed,
    )
    from worker_torch import (  # type: ignore[import-not-found,no-redef]
        TorchImport,
        noted,
        set_torch,
        torch_switches,
    )


@dataclass(frozen=True)
class Settings:
    socket_timeout: float | None
    recursion_limit: int
    filters: list[Any]
    showwarning: Any
    decimal: Any  # a copy of this thread's context; None before decimal is imported
    int_digits: int | None
    trace: Any
    profile: Any
    #: The generators' states: Python's, NumPy's and torch's (CPU), None where not loaded.
    generators: tuple[Any, Any, Any]
    #: torch's global switches (`torch_switches`), None where torch is not loaded.
    torch: dict[str, Any] | None
    #: NumPy's and torch's print options, None where not loaded (`_printing`).
    printing: tuple[dict[str, Any] | None, dict[str, Any] | None]
    #: asyncio's policy and this thread's loop as set (`_event_loop`), None before asyncio.
    event_loop: tuple[Any, dict[str, Any]] | None
    #: `sys.tracebacklimit` (`_UNSET` where none is set) and `sys.dont_write_bytecode`: a
    #: cell's `sys.tracebacklimit = 0` cut every later cell's error to its last line.
    sys_values: tuple[Any, bool]


def current() -> Settings:
    decimal = sys.modules.get("decimal")
    get_digits = getattr(sys, "get_int_max_str_digits", None)  # Python 3.11+
    return Settings(
        socket_timeout=socket.getdefaulttimeout(),
        recursion_limit=sys.getrecursionlimit(),
        filters=list(warnings.filters),
        showwarning=warnings.showwarning,
        decimal=decimal.getcontext().copy() if decimal is not None else None,
        int_digits=int(get_digits()) if get_digits is not None else None,
        trace=sys.gettrace(),
        profile=sys.getprofile(),
        generators=_generators(),
        torch=torch_switches() if "torch" in sys.modules else None,
        printing=_printing(),
        event_loop=_event_loop(),
        sys_values=(getattr(sys, "tracebacklimit", _UNSET), sys.dont_write_bytecode),
    )


_UNSET = object()


def _generators() -> tuple[Any, Any, Any]:
    random, numpy, torch = (sys.modules.get(n) for n in ("random", "numpy", "torch"))
    states: list[Any] = [None, None, None]
    with contextlib.suppress(Exception):  # a half-imported or mocked library
        states[0] = random.getstate() if random is not None else None
        states[1] = numpy.random.get_state() if numpy is not None else None
        states[2] = torch.get_rng_state() if torch is not None else None
    return states[0], states[1], states[2]


def _set_generators(states: tuple[Any, Any, Any]) -> None:
    random, numpy, torch = (sys.modules.get(n) for n in ("random", "numpy", "torch"))
    with contextlib.suppress(Exception):
        if random is not None and states[0] is not None:
            random.setstate(states[0])
        if numpy is not None and states[1] is not None:
            numpy.random.set_state(states[1])
        if torch is not None and states[2] is not None:
            torch.set_rng_state(states[2])


def apply(settings: Settings, *, generators: bool = True) -> None:
    """Make `settings` the process's (the generators' states too, with `generators`). The
    warnings registries are emptied too: a warning shown once (the "default" and "once"
    actions) by an earlier cell is shown again, as a process of the cell's own shows it."""
    if generators:
        _set_generators(settings.generators)
    set_torch(settings.torch)
    _set_printing(settings.printing)
    _set_event_loop(settings.event_loop)
    socket.setdefaulttimeout(settings.socket_timeout)
    sys.setrecursionlimit(settings.recursion_limit)
    warnings.resetwarnings()  # tells the warnings machinery its filters changed
    cast("list[Any]", warnings.filters)[:] = settings.filters  # the list _warnings reads
    warnings.showwarning = settings.showwarning
    _capture_off(warnings.showwarning)
    decimal = sys.modules.get("decimal")
    if decimal is not None:  # defaults when decimal came after the snapshot
        decimal.setcontext(
            settings.decimal.copy() if settings.decimal is not None else decimal.Context()
        )
    if settings.int_digits is not None:
        sys.set_int_max_str_digits(settings.int_digits)
    sys.settrace(settings.trace)
    sys.setprofile(settings.profile)
    limit, sys.dont_write_bytecode = settings.sys_values
    if limit is not _UNSET:
        sys.tracebacklimit = limit
    elif hasattr(sys, "tracebacklimit"):
        del sys.tracebacklimit


def _capture_off(showwarning: Any) -> None:
    """`logging.captureWarnings(True)` of an earlier cell left logging holding the function
    it had replaced once `warnings.showwarning` was put back: the next cell's call did
    nothing, and its warnings never reached logging. Capture is off where logging's own
    function is not the one warnings call."""
    logging = sys.modules.get("logging")
    if logging is not None and showwarning is not getattr(logging, "_showwarning", None):
        with contextlib.suppress(Exception):  # a logging without it: left as it is
            if getattr(logging, "_warnings_showwarning", None) is not None:
                setattr(logging, "_warnings_showwarning", None)  # noqa: B010 (a private name)


#: NumPy's print options as its import sets them (numpy.set_printoptions' defaults); keys
#: an older NumPy does not know are left out when set.
_NUMPY_PRINTING = {
    "edgeitems": 3, "threshold": 1000, "floatmode": "maxprec", "precision": 8,
    "suppress": False, "linewidth": 75, "nanstr": "nan", "infstr": "inf", "sign": "-",
    "formatter": None, "legacy": False, "override_repr": None,
}  # fmt: skip
#: torch's print options (`torch._tensor_str.PRINT_OPTS`) as its import sets them.
_TORCH_PRINTING = {
    "precision": 4, "threshold": 1000, "edgeitems": 3, "linewidth": 80, "sci_mode": None,
}  # fmt: skip


def _printing() -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    numpy, torch = sys.modules.get("numpy"), sys.modules.get("torch")
    got: list[dict[str, Any] | None] = [None, None]
    with contextlib.suppress(Exception):  # a half-imported or mocked library
        got[0] = dict(numpy.get_printoptions()) if numpy is not None else None
    with contextlib.suppress(Exception):
        opts = torch._tensor_str.PRINT_OPTS if torch is not None else None
        got[1] = {k: getattr(opts, k) for k in _TORCH_PRINTING} if opts is not None else None
    return got[0], got[1]


def _set_printing(printing: tuple[dict[str, Any] | None, dict[str, Any] | None]) -> None:
    """Print options as `printing` has them; the libraries' own defaults for None (loaded
    since the snapshot). Only what differs is set: a cell that left them is the rare one."""
    now = _printing()
    numpy, torch = sys.modules.get("numpy"), sys.modules.get("torch")
    with contextlib.suppress(Exception):
        if numpy is not None and now[0] is not None:
            wanted = printing[0] or {k: v for k, v in _NUMPY_PRINTING.items() if k in now[0]}
            if now[0] != wanted:
                numpy.set_printoptions(**wanted)
    with contextlib.suppress(Exception):
        if torch is not None and now[1] is not None and now[1] != (printing[1] or _TORCH_PRINTING):
            torch.set_printoptions(**(printing[1] or _TORCH_PRINTING))


def _event_loop() -> tuple[Any, dict[str, Any]] | None:
    """asyncio's global policy (None: none chosen yet) and what its thread-local holds
    (the loop `set_event_loop` set, whether one was set); None where asyncio is not loaded."""
    events = sys.modules.get("asyncio.events")
    if events is None:
        return None
    policy = getattr(events, "_event_loop_policy", None)
    return policy, dict(vars(getattr(policy, "_local", None) or types.SimpleNamespace()))


def _set_event_loop(saved: tuple[Any, dict[str, Any]] | None) -> None:
    """A library's sync wrapper sets a loop of its own and closes it: the next cell's
    `get_event_loop()` got that closed loop ("Event loop is closed") where a process of
    its own gets a new one. The policy and its loop go back as `saved` has them (a fresh
    process's: no policy, no loop set); a saved loop that a cell has closed since is
    replaced by a new one, as the script's import left one open."""
    events = sys.modules.get("asyncio.events")
    if events is None:
        return
    policy: Any = saved[0] if saved is not None else None
    local = saved[1] if saved is not None else {}
    with contextlib.suppress(Exception):  # asyncio's private names moved: left as it is
        setattr(events, "_event_loop_policy", policy)  # noqa: B010 (a private name)
        holder = getattr(policy, "_local", None)
        if holder is None:
            return
        loop = local.get("_loop")
        if loop is not None and loop.is_closed():
            local = {**local, "_loop": policy.new_event_loop()}
        vars(holder).clear()
        vars(holder).update(local)


class PerScript:
    """Per script, the settings and environment variables its module's import left; ""
    for the worker's own, before any repro's import (`start`)."""

    def __init__(self) -> None:
        self.settings: dict[str, Settings] = {}
        self.environ: dict[str, dict[str, str | None]] = {}
        self.base: dict[str, str] | None = None
        #: While a script's module is imported, its folder; the variables code of that
        #: folder set (a library's own, set by its import, stay the worker's: a process of
        #: another repro importing that library would have them too).
        self._watch: str | None = None
        self._own: set[str] = set()
        #: Audit hooks added since the worker started, and before the cell's own code ran;
        #: fork hooks the repro's code registered (`os.register_at_fork`) likewise.
        self._audit_hooks = [0, 0]
        self._fork_hooks = [0, 0]
        #: The `sys.monitoring` tool ids in use before the cell's own code ran (3.12+).
        self._tools: dict[int, str] = {}
        self._folder = ""  # the folder of the script whose cell runs

    def start(self) -> None:
        if "torch" in sys.modules:  # before the worker's code (a sitecustomize's import)
            noted(sys.modules["torch"])
        else:
            sys.meta_path.insert(0, TorchImport())
        self.settings[""] = current()
        self.base = dict(os.environ)
        with contextlib.suppress(Exception):
            sys.addaudithook(self._audit)
        original = os.register_at_fork

        def register_at_fork(**hooks: Any) -> None:
            if self._repros(sys._getframe(1)):
                self._fork_hooks[0] += 1
            original(**hooks)

        os.register_at_fork = register_at_fork  # before any cell: none of a cell's doing

    def _audit(self, event: str, args: tuple[Any, ...]) -> None:
        # Told to the hooks there are (this one) first. A library's hook is its set-up, as
        # what its import does is: counting one that a library added in the first flashinfer
        # decode cell of each worker retired every worker after one cell on an H100 host.
        if event == "sys.addaudithook" and self._repros(sys._getframe(1)):
            self._audit_hooks[0] += 1
        if self._watch is None or event not in ("os.putenv", "os.unsetenv"):
            return
        try:
            frame: types.FrameType | None = sys._getframe(1)
            while frame is not None and frame.f_globals.get("__name__") in _PLUMBING:
                frame = frame.f_back  # os.environ's __setitem__, MutableMapping.update
            if frame is not None and repros_file(frame.f_code.co_filename, self._watch):
                key = args[0]
                self._own.add(os.fsdecode(key) if isinstance(key, bytes) else str(key))
        except Exception:  # an audit hook that raises would fail the cell's own call
            return

    def _repros(self, frame: types.FrameType) -> bool:
        """Whether `frame` runs the repro's own code (`worker_code`)."""
        return repros_file(frame.f_code.co_filename, self._folder)

    def enter(self, script: str, cell_env: dict[str, str]) -> None:
        """Before a cell of `script` (its cell environment applied): its own settings."""
        if self.base is None:  # a process of the cell's own (`--once`): nothing came before
            return
        # The generators as its import left them (seeded there, or as the harness seeded
        # them before it): every cell of a script draws what its first drew, as a process
        # of its own would. Before its first import they stay as the harness seeded them.
        self._audit_hooks[1], self._fork_hooks[1] = self._audit_hooks[0], self._fork_hooks[0]
        self._folder = os.path.dirname(os.path.abspath(script))
        self._tools = monitoring_tools()
        known = self.settings.get(script)
        apply(known or self.settings[""], generators=known is not None)
        self._watch = None if known else os.path.dirname(os.path.abspath(script))
        self._own = set()
        others = [changes for name, changes in self.environ.items() if name != script]
        own_environ(self.environ.get(script, {}), others, self.base, cell_env)

    def imported(self, script: str, before: dict[str, str]) -> None:
        """`script`'s module was imported (the environment was `before` it)."""
        self.settings[script] = current()
        # Its import's, as its process's would have them.
        self._audit_hooks[1], self._fork_hooks[1] = self._audit_hooks[0], self._fork_hooks[0]
        self._tools = monitoring_tools()
        changes = environ_changes(before)
        self.environ[script] = {k: v for k, v in changes.items() if k in self._own}
        self._watch = None

    def hooks_added(self) -> str:
        """What retires the worker after a cell whose code added an audit hook
        (`sys.addaudithook`) or a fork hook (`os.register_at_fork`), which none can
        remove: it saw every later cell's events, or ran in every child they forked; or
        claimed a `sys.monitoring` tool id and kept it (`worker_leftovers.tools_claimed`)."""
        if self._audit_hooks[0] > self._audit_hooks[1]:
            return "audit hooks it added (sys.addaudithook: none can be removed)"
        if self._fork_hooks[0] > self._fork_hooks[1]:
            return "fork hooks it registered (os.register_at_fork: none can be removed)"
        return tools_claimed(self._tools, self._folder) if self.base is not None else ""

    @staticmethod
    def fresh_tmp(wanted: bool) -> str | None:
        """With `wanted` (a worker container, whose /tmp no other process uses): a temporary
        folder of the cell's own, its TMPDIR and `tempfile.gettempdir()` (the cell's own
        environment applied: made in its TMPDIR, else the container's /tmp). A container per
        cell starts each cell with the image's own /tmp; in one worker container a file a
        cell left there was read by the next. None where none is made (a read-only or missing
        folder: the cell runs with what the container has, as its own container would)."""
        if not wanted:
            return None
        tempfile.tempdir = None  # found again from the cell's environment
        try:
            folder = tempfile.mkdtemp(prefix="repromatrix-cell-")
        except OSError:
            return None
        os.environ["TMPDIR"] = tempfile.tempdir = folder
        return folder

    @staticmethod
    def end_tmp(folder: str | None) -> None:
        """After the cell (its environment put back): its folder removed with what it holds."""
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
            tempfile.tempdir = None


#: The container's shared-memory tmpfs (POSIX shm_open, named semaphores, plain files).
SHM = "/dev/shm"


def shm_names(wanted: bool) -> frozenset[str] | None:
    """With `wanted` (a worker container, whose /dev/shm no other process uses): the names
    in /dev/shm before the cell, for `end_shm`; None where nothing is to be put back."""
    if not wanted:
        return None
    try:
        return frozenset(os.listdir(SHM))
    except OSError:
        return None


def end_shm(before: frozenset[str] | None) -> None:
    """After the cell: what it left in /dev/shm removed. A container per cell starts each
    cell with an empty one; in one worker container a cell's files were read by the next,
    and one that filled the tmpfs (1 GiB) left every later cell no shared memory. Only the
    names the cell made: an object still open keeps its memory until closed, as it would."""
    if before is None:
        return
    with contextlib.suppress(OSError):
        for name in set(os.listdir(SHM)) - before:
            path = os.path.join(SHM, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(path)


#: Modules whose frames stand between `os.environ[key] = value` and `os.putenv`.
_PLUMBING = frozenset({"os", "_collections_abc"})


def environ_changes(before: dict[str, str]) -> dict[str, str | None]:
    """The environment variables set (their value) or removed (None) since `before`."""
    now = os.environ
    changed: dict[str, str | None] = {k: v for k, v in now.items() if before.get(k) != v}
    changed.update(dict.fromkeys(before.keys() - now.keys()))
    return changed


def own_environ(
    own: dict[str, str | None],
    others: list[dict[str, str | None]],
    base: dict[str, str],
    cell: dict[str, str],
) -> None:
    """The variables other repros' imports set put back as the worker had them (unless the
    cell's own environment names them), and those this repro's import set as it set them:
    `os.environ["X"] = "1"` in one repro module reached another's cells."""
    for changes in others:
        for key in changes.keys() - own.keys() - cell.keys():
            if key in base:
                os.environ[key] = base[key]
            else:
                os.environ.pop(key, None)
    for key, value in own.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
