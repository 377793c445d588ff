"""What of torch a cell may leave behind that the worker cannot put back, so that the worker
is retired after the cell (`worker_main.py`): torch modes left entered, and the private
names of torch the worker reads and sets its state by (`worker_torch.py`) where this torch
lacks one, which would leave a cell's change unseen.

Standard library only, as `worker_main.py`, which runs it from the same folder.
"""

from __future__ import annotations

import sys
from typing import Any

if __package__:  # imported as part of repromatrix (type checks)
    from repromatrix.executors.worker_torch import UNFROZEN, default_context
else:  # run from worker_main.py's folder, which is on sys.path
    from worker_torch import UNFROZEN, default_context  # type: ignore[import-not-found,no-redef]


def modes_left() -> str:
    """What retires the worker after a cell that left a torch mode entered (a
    `TorchFunctionMode` or `TorchDispatchMode` `__enter__`ed, never exited; autograd's
    `saved_tensors_hooks` likewise): it saw every op of every later cell, where a process
    of its own has none. `set_default_device`'s own mode is put back with the switches;
    another device's (`torch.device("meta").__enter__()`) made the next cell's tensors
    there. (Stacks that cannot be read retire it too: `unreadable`.)"""
    torch: Any = sys.modules.get("torch")
    found: list[str] = []
    if torch is None:
        return ""
    try:
        stack, dispatch, saved = _modes(torch)
        own = default_context(torch)
    except Exception:  # said by `unreadable`
        return ""
    if any(mode is not own for mode in stack) or dispatch:
        found.append("a torch function or dispatch mode entered and never exited")
    if saved is not None:
        found.append("autograd's saved_tensors_hooks entered and never exited")
    # `torch.profiler.profile().__enter__()` never exited recorded every op of every later
    # cell (their latencies, their memory), where a process of their own profiles none.
    enabled = getattr(getattr(torch, "autograd", None), "_profiler_enabled", None)
    try:
        running = bool(enabled()) if callable(enabled) else False
    except Exception:  # a half-imported torch
        running = False
    if running:
        found.append("a torch profiler started and never stopped")
    return "; ".join(found)


def _modes(torch: Any) -> tuple[list[Any], int, Any]:
    """torch's function mode stack, how many dispatch modes are entered, and autograd's
    innermost saved_tensors_hooks (None: none)."""
    stack = [torch._C._get_function_stack_at(i) for i in range(_len(torch, "function"))]
    return (
        stack,
        _len(torch, "dispatch"),
        torch._C._autograd._top_saved_tensors_default_hooks(False),
    )


def _len(torch: Any, stack: str) -> int:
    return int(getattr(torch._C, f"_len_torch_{stack}_stack")())


#: torch's private names by which the worker reads or puts back what a cell changed: each
#: with a public name whose presence says this torch has that state, and what it is. Read
#: quietly (an older torch lacks the state itself), a name a newer torch moved left the
#: cell's change to every later cell of the worker, unseen.
_PRIVATE = (
    ("_GLOBAL_DEVICE_CONTEXT", "set_default_device", "the default device"),
    ("autograd._profiler_enabled", "profiler.profile", "a profiler a cell left running"),
    *(
        (f"_C.{name}", "overrides.TorchFunctionMode", "torch modes a cell left entered")
        for name in ("_get_function_stack_at", "_len_torch_function_stack")
    ),
    ("_C._len_torch_dispatch_stack", "overrides.TorchFunctionMode", "torch dispatch modes"),
    (
        "_C._autograd._top_saved_tensors_default_hooks",
        "autograd.graph.saved_tensors_hooks",
        "saved_tensors_hooks a cell left entered",
    ),
    *(
        (f"_C._{name}", public, what)
        for name, public, what in (
            *(
                (
                    f"{get}check_sparse_tensor_invariants",
                    "sparse.check_sparse_tensor_invariants",
                    "sparse tensors' invariant checks",
                )
                for get in ("", "set_")
            ),
            *(
                (
                    f"{get}multithreading_enabled",
                    "autograd.set_multithreading_enabled",
                    "autograd's multithreading",
                )
                for get in ("is_", "set_")
            ),
        )
    ),
    ("hub._hub_dir", "hub.set_dir", "torch.hub's folder"),
    ("_tensor_str.PRINT_OPTS", "set_printoptions", "torch's print options"),
    (
        "nn.modules.module._global_forward_hooks",
        "nn.modules.module.register_module_forward_hook",
        "nn.Module's global hooks",
    ),
    (f"backends.{UNFROZEN}", "backends.disable_global_flags", "backend flags frozen"),
)
#: torch's config modules whose values the worker puts back by `get_config_copy`.
_COMPILE_CONFIGS = ("torch._dynamo.config", "torch._inductor.config")


def _has(torch: Any, path: str) -> bool:
    """Whether torch has `path`, its first part looked up without torch's `__getattr__`
    (which imports torch._dynamo, seconds, on a first `torch._dynamo`)."""
    if path == f"backends.{UNFROZEN}":
        flags = getattr(getattr(torch, "backends", None), "flags_frozen", None)
        return UNFROZEN in getattr(flags, "__globals__", {})  # the wrapped module's
    first, _, rest = path.partition(".")
    if first not in vars(torch):
        return False
    owner = vars(torch)[first]
    for part in rest.split(".") if rest else ():
        try:
            owner = getattr(owner, part)
        except Exception:  # AttributeError, or whatever a lazy attribute raises
            return False
    return True


def unreadable() -> str:
    """Why the worker cannot put back what a cell may change of this torch ("": it can):
    a private name it reads that this torch lacks where it has what the name holds, or
    mode stacks that cannot be read. Each cell's worker is then retired after it, its
    next cell run in a fresh one, as `--isolate` would, rather than leave it unseen."""
    torch: Any = sys.modules.get("torch")
    if torch is None or not hasattr(torch, "__dict__"):  # not loaded, or a stand-in
        return ""
    missing = {
        f"torch.{name}": what
        for name, public, what in _PRIVATE
        if _has(torch, public) and not _has(torch, name)
    }
    for name in _COMPILE_CONFIGS:
        if not callable(getattr(sys.modules.get(name), "get_config_copy", callable)):
            missing[f"{name}.get_config_copy"] = "torch.compile's config values"
    version = getattr(torch, "__version__", "?")
    if missing:
        names = ", ".join(f"{name} ({what})" for name, what in missing.items())
        return f"torch {version} lacks what the worker puts its state back by: {names}"
    try:
        _modes(torch)
    except Exception as exc:
        why = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        return f"torch {version}'s mode stacks could not be read ({why})"
    return ""
