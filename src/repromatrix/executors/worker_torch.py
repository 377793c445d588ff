"""torch's process-wide settings in a persistent worker (`worker_settings.py` keeps them per
script): its global switches (grad mode, default dtype, TF32 in both of its APIs, cuDNN,
oneDNN and deterministic flags, matmul precision, attention kernels, subnormals flushed to
zero, autocast outside a `with`...) and its config modules (`torch._inductor.config`,
`torch._dynamo.config`...), as torch's own import left them or as a repro module's import
set them up.

Standard library only, as `worker_main.py`, which runs it from the same folder.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import sys
import threading
import warnings
from typing import Any, cast

_OPS = ("matmul", "conv", "rnn")  # torch.backends.cuda has matmul alone: others unread
#: torch's global switches: the function that reads each and the one that sets it, or
#: the attribute that holds it ("": set where it is read).
_SWITCHES = {
    # torch 2.9's TF32 (and oneDNN bf16) settings, before the legacy flags, whose reads
    # raise while the two disagree: a cell's `backends.fp32_precision = "tf32"` stayed,
    # and with it TF32 convolutions (oneDNN's, cuDNN's) in every later cell.
    **{
        f"fp32 {at}": (f"backends.{at}fp32_precision", "")
        for at in ("", *(f"{b}.{op}." for b in ("cuda", "cudnn", "mkldnn") for op in _OPS))
    },
    "grad": ("is_grad_enabled", "set_grad_enabled"),
    "dtype": ("get_default_dtype", "set_default_dtype"),
    "matmul_tf32": ("backends.cuda.matmul.allow_tf32", ""),
    "cudnn_tf32": ("backends.cudnn.allow_tf32", ""),
    "benchmark": ("backends.cudnn.benchmark", ""),
    "cudnn_deterministic": ("backends.cudnn.deterministic", ""),
    "deterministic": ("are_deterministic_algorithms_enabled", "use_deterministic_algorithms"),
    # Off, warn-only or on (0, 1, 2): the on/off alone left a cell's `warn_only=True` to
    # every later cell of a repro whose import turned it on. Then whether torch.empty's
    # memory is filled (NaN) under it: a cell's `fill_uninitialized_memory = False` held.
    "deterministic_mode": ("get_deterministic_debug_mode", "set_deterministic_debug_mode"),
    "deterministic_fill": ("utils.deterministic.fill_uninitialized_memory", ""),
    "precision": ("get_float32_matmul_precision", "set_float32_matmul_precision"),
    # Which attention kernel scaled_dot_product_attention may pick: a cell of a "math
    # backend" case (`enable_flash_sdp(False)`) left every later cell on the math kernel.
    "sdp_flash": ("backends.cuda.flash_sdp_enabled", "backends.cuda.enable_flash_sdp"),
    "sdp_mem": (
        "backends.cuda.mem_efficient_sdp_enabled",
        "backends.cuda.enable_mem_efficient_sdp",
    ),
    "sdp_math": ("backends.cuda.math_sdp_enabled", "backends.cuda.enable_math_sdp"),
    "sdp_cudnn": ("backends.cuda.cudnn_sdp_enabled", "backends.cuda.enable_cudnn_sdp"),
    "fp16_reduction": ("backends.cuda.matmul.allow_fp16_reduced_precision_reduction", ""),
    "bf16_reduction": ("backends.cuda.matmul.allow_bf16_reduced_precision_reduction", ""),
    # fp16 matmuls that accumulate in fp16 (cuBLAS), and the linear algebra and BLAS
    # libraries a cell preferred (`preferred_linalg_library("magma")`).
    "fp16_accumulation": ("backends.cuda.matmul.allow_fp16_accumulation", ""),
    **{key: (f"backends.cuda.preferred_{key}_library",) * 2 for key in ("linalg", "blas")},
    "cudnn": ("backends.cudnn.enabled", ""),
    "threads": ("get_num_threads", "set_num_threads"),  # a CPU reduction's order with them
    "anomaly": ("is_anomaly_enabled", "set_anomaly_enabled"),
    "mkldnn": ("backends.mkldnn.enabled", ""),  # oneDNN itself: another CPU kernel
    "mkldnn_deterministic": ("backends.mkldnn.deterministic", ""),
    "opt_einsum": ("backends.opt_einsum.enabled", ""),
    "warn_always": ("is_warn_always_enabled", "set_warn_always"),
    # Subnormals flushed to zero (x86 FTZ/DAZ, this thread's: the cells'): every later
    # cell's float arithmetic, Python's own included, read 1e-310 as 0.
    "flush_denormal": ("", "set_flush_denormal"),
    # `set_default_device("cuda")` (or "meta") of one case made every later cell's tensors
    # there. Read as the context it entered (None: none), not as `get_default_device()`,
    # which says "cpu" for none too: a cell's `set_default_device("cpu")` left its context
    # on torch's mode stack for every later cell, where a process of its own has none.
    "device": ("", "set_default_device"),
    # A cell's `set_autocast_enabled("cpu", True)` ran every later cell's matmuls in
    # bf16/fp16 (its dtype held too); nn.MultiheadAttention's fast path switched off, the
    # math attention kernel's reduced-precision reductions, the anomaly mode's NaN check
    # and the quantized engine likewise: --isolate starts each with torch's own.
    **{
        f"autocast{what} {on}": (f"{read}autocast{what}", f"set_autocast{what}")
        for on in ("cpu", "cuda")
        for read, what in (("is_", "_enabled"), ("get_", "_dtype"))
    },
    "autocast_cache": ("is_autocast_cache_enabled", "set_autocast_cache_enabled"),
    "mha_fastpath": ("backends.mha.get_fastpath_enabled", "backends.mha.set_fastpath_enabled"),
    "sdp_math_reduction": (
        "backends.cuda.fp16_bf16_reduction_math_sdp_allowed",
        "backends.cuda.allow_fp16_bf16_reduction_math_sdp",
    ),
    "anomaly_nan": ("is_anomaly_check_nan_enabled", "set_anomaly_enabled"),
    "quantized_engine": ("backends.quantized.engine", ""),
    # `check_sparse_tensor_invariants.enable()` made a later cell's sparse tensors raise,
    # `set_multithreading_enabled(False)` ran its backward passes on one thread, oneDNN
    # fusion (`torch.jit.enable_onednn_fusion`) fused its TorchScript graphs.
    "sparse_invariants": (
        "_C._check_sparse_tensor_invariants",
        "_C._set_check_sparse_tensor_invariants",
    ),
    "autograd_threads": ("_C._is_multithreading_enabled", "_C._set_multithreading_enabled"),
    "onednn_fusion": ("jit.onednn_fusion_enabled", "jit.enable_onednn_fusion"),
    # einsum's contraction order (`opt_einsum.strategy = "optimal"`), how CPU tensors go
    # to other processes (`set_sharing_strategy("file_system")`), and where torch.hub
    # loads weights from (`hub.set_dir`: another cell's folder, other weights).
    "opt_einsum_strategy": ("backends.opt_einsum.strategy", ""),
    "sharing_strategy": (
        "multiprocessing.get_sharing_strategy",
        "multiprocessing.set_sharing_strategy",
    ),
    "hub_dir": ("hub._hub_dir", ""),
    # TorchScript's executor and fusers (`_jit_set_profiling_executor(False)`, as PyTorch's
    # own JIT tests run, `_jit_override_can_fuse_on_cpu(True)`): a later cell's scripted
    # functions ran on another executor, with other fusions (other roundings).
    "jit_profiling_executor": ("", "_C._jit_set_profiling_executor"),
    "jit_profiling_mode": ("", "_C._jit_set_profiling_mode"),
    "jit_texpr_fuser": ("_C._jit_texpr_fuser_enabled", "_C._jit_set_texpr_fuser_enabled"),
    "jit_texpr_reductions": (
        "_C._jit_texpr_reductions_enabled",
        "_C._jit_set_texpr_reductions_enabled",
    ),
    "jit_fuse_cpu": ("_C._jit_can_fuse_on_cpu", "_C._jit_override_can_fuse_on_cpu"),
    "jit_fuse_gpu": ("_C._jit_can_fuse_on_gpu", "_C._jit_override_can_fuse_on_gpu"),
    "jit_optimize": ("_C._get_graph_executor_optimize", "_C._set_graph_executor_optimize"),
    "jit_inline": ("_C._jit_get_inline_everything_mode", "_C._jit_set_inline_everything_mode"),
    "jit_profiled_runs": ("_C._jit_get_num_profiled_runs", "_C._jit_set_num_profiled_runs"),
    # Last: `torch.backends.disable_global_flags()` made a later cell's `cudnn.benchmark =
    # True` raise, and every backend flag above stay as the cell left it. Lifted first.
    "flags_frozen": ("backends.flags_frozen", "backends.disable_global_flags"),
}
#: The names of torch's modules that `_SWITCHES` reads and sets as plain values
#: (`torch.backends.opt_einsum.strategy = "optimal"`, a global of that module): a cell
#: that sets one changed no library code, and the next cell starts with torch's own
#: (`set_torch`), so `worker_bindings` does not retire the worker for it.
SET_BACK = frozenset(f"torch.{read}" for read, write in _SWITCHES.values() if read and not write)
#: The flag `disable_global_flags` clears, a global of torch.backends' own module (which
#: `torch.backends` itself wraps).
UNFROZEN = "__allow_nonbracketed_mutation_flag"


def _unfrozen(torch: Any) -> dict[str, Any]:
    return cast("dict[str, Any]", torch.backends.flags_frozen.__globals__)


def _at(owner: Any, path: str) -> Any:
    for part in path.split("."):
        owner = getattr(owner, part)
    return owner


def torch_switches() -> dict[str, Any]:
    """torch's global switches now (grad mode, default dtype, TF32 and cuDNN flags,
    deterministic algorithms, float32 matmul precision, attention backends, reduced-precision
    reductions, CPU threads, anomaly detection, default device); empty without torch."""
    switches: dict[str, Any] = {}
    for key in _SWITCHES:
        with contextlib.suppress(Exception):  # a half-imported torch, an older one
            switches[key] = _read(sys.modules.get("torch"), key)
    switches[_CONFIGS] = {name: _config(module) for name, module in _config_modules()}
    switches[_HOOKS] = _hooks()
    return switches


#: The key of `torch_switches` that holds nn.Module's global hooks, by the module's name.
_HOOKS = "module hooks"


def _hooks() -> dict[str, Any]:
    """nn.Module's global hooks (`register_module_forward_hook`...): a cell's hook that
    doubled every output ran in every later cell's models."""
    module = sys.modules.get("torch.nn.modules.module")
    found = [(k, v) for k, v in vars(module or object).items() if k.startswith("_global_")]
    return {k: dict(v) if isinstance(v, dict) else v for k, v in found}


def _set_hooks(saved: dict[str, Any]) -> None:
    module = sys.modules.get("torch.nn.modules.module")
    for name, value in saved.items() if module is not None else ():
        now = getattr(module, name, None)
        if isinstance(now, dict) and isinstance(value, dict) and now != value:
            now.clear()  # in place: torch's own code and the hooks' handles hold them
            now.update(value)
        elif not isinstance(now, dict) and now is not value:
            setattr(module, name, value)


#: The key of `torch_switches` that holds torch's config modules' values, by module.
_CONFIGS = "config modules"
#: Each config module's values as its own import left them (`TorchImport`).
FRESH_CONFIGS: dict[str, dict[str, Any]] = {}


def _is_config(name: str) -> bool:
    return name.startswith("torch.") and name.rpartition(".")[2] in ("config", "_config")


def _config_modules() -> list[tuple[str, Any]]:
    """torch's config modules loaded now (`torch._inductor.config`: `fallback_random`,
    `emulate_precision_casts`, `max_autotune`... change what torch.compile makes)."""
    if len(sys.modules) != _SCANNED[0]:  # a scan of thousands of names: when they change
        _SCANNED[:] = [len(sys.modules), [n for n in list(sys.modules) if _is_config(n)]]
    found = [(n, sys.modules.get(n)) for n in _SCANNED[1]]
    return [(n, m) for n, m in found if callable(getattr(m, "get_config_copy", None))]


_SCANNED: list[Any] = [-1, []]  # how many modules were loaded, and which are config modules


def _config(module: Any) -> dict[str, Any]:
    with contextlib.suppress(Exception), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a cell's "error" filter is put back after this
        return dict(module.get_config_copy())
    return {}


def _set_configs(saved: dict[str, dict[str, Any]]) -> None:
    """Each loaded config module's values as `saved` has them, or as its import left them
    (one imported since): a cell's `torch._inductor.config.fallback_random = True` held
    for every later cell of the worker, where a process of its own has torch's default."""
    for name, module in _config_modules():
        wanted, now = saved.get(name, FRESH_CONFIGS.get(name)) or {}, _config(module)
        changed = [key for key in wanted.keys() & now.keys() if not _same(now[key], wanted[key])]
        for key in changed:
            with contextlib.suppress(Exception), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a deprecated key's warning, once more
                # A copy: the saved value itself, set, was the next cell's to change in
                # place (`.add(Y)`), and never put back again.
                setattr(module, key, copy.deepcopy(wanted[key]))


def _same(a: Any, b: Any) -> bool:
    try:
        return a is b or bool(a == b)
    except Exception:  # a value that cannot be compared (an array): as it was
        return True


def _read(torch: Any, key: str) -> Any:
    read, setter = _SWITCHES[key]
    if key == "device":
        context = default_context(torch)
        return None if context is None else context.device
    if not read and key.startswith("jit_"):  # no getter: its setter says what was
        was = _at(torch, setter)(True)
        _at(torch, setter)(was)
        return was
    if not read:  # flush_denormal: whether a subnormal result comes out as zero
        tiny = sys.float_info.min
        return hasattr(torch, setter) and tiny / 2 == 0.0
    return _at(torch, read)(*_lead(key)) if setter else _at(torch, read)


def default_context(torch: Any) -> Any:
    """The `DeviceContext` that `set_default_device` entered (None: none), in the holder
    torch keeps it in: a thread-local since torch 2.3, the context itself before."""
    held = torch._GLOBAL_DEVICE_CONTEXT
    return getattr(held, "device_context", None) if isinstance(held, threading.local) else held


def _lead(key: str) -> tuple[str, ...]:
    """The device type an autocast switch is read and set with ("autocast_enabled cpu")."""
    return (key.rpartition(" ")[2],) if key.startswith("autocast_") and " " in key else ()


def _set_switch(torch: Any, key: str, value: Any) -> None:
    read, setter = _SWITCHES[key]
    if key == "flags_frozen":
        _unfrozen(torch)[UNFROZEN] = not value
    elif key == "anomaly_nan":  # the NaN check of the anomaly mode as it is
        torch.set_anomaly_enabled(torch.is_anomaly_enabled(), check_nan=value)
    elif setter:
        _at(torch, setter)(*_lead(key), value)
    else:
        owner, _, name = read.rpartition(".")
        setattr(_at(torch, owner), name, value)


#: torch's switches as its own import left them, before any cell's code could change them
#: (`TorchImport`): what a process of a cell's own starts with.
FRESH_TORCH: dict[str, Any] = {}


def set_torch(switches: dict[str, Any] | None) -> None:
    """torch's switches as `switches` has them; torch's own defaults (`FRESH_TORCH`) for
    None. They were put back after each cell to those the worker's first cell left (taken
    before torch was imported, once the cell ended): a first cell's `set_default_dtype(
    torch.float64)` or `set_grad_enabled(False)` held for every later cell of the worker."""
    torch = sys.modules.get("torch")
    wanted = switches if switches is not None else FRESH_TORCH
    if torch is None or not wanted:
        return
    _set_configs(wanted.get(_CONFIGS, {}))
    _set_hooks(wanted.get(_HOOKS, {}))
    with contextlib.suppress(Exception):  # frozen again last, if wanted
        _unfrozen(torch)[UNFROZEN] = True
    for key, value in wanted.items():  # each read as it is now: one may set another
        try:
            now = _read(torch, key)
        except Exception:  # unreadable (a mixed TF32 API's legacy flag): set it
            now = object()  # equal to no value
        with contextlib.suppress(Exception):  # one refused switch stops no other
            if key in _SWITCHES and now != value:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # opt_einsum's strategy warns unused
                    _set_switch(torch, key, value)


class TorchImport:
    """A finder that leaves torch to be found as ever and notes its switches as soon as its
    own import is done (`FRESH_TORCH`), before a cell's code that imported it runs on; the
    values of each of its config modules likewise (`FRESH_CONFIGS`)."""

    def __init__(self) -> None:
        self._busy = False

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if (name != "torch" and not _is_config(name)) or self._busy:
            return None
        self._busy = True
        try:
            spec = importlib.util.find_spec(name)  # the other finders' answer
        except Exception:
            return None
        finally:
            self._busy = False
        loader = getattr(spec, "loader", None)
        run = getattr(loader, "exec_module", None)
        if run is not None:

            def exec_module(module: Any) -> None:
                run(module)
                if name != "torch":
                    FRESH_CONFIGS[name] = _config(module)
                    return
                noted(module)

            with contextlib.suppress(Exception):  # a loader that takes no attribute
                setattr(loader, "exec_module", exec_module)  # noqa: B010 -- a method, to mypy
        return spec


def noted(torch: Any) -> None:
    """torch, just imported (or found loaded as the worker starts): its switches as its
    import left them (`FRESH_TORCH`), and its `set_num_interop_threads` watched."""
    FRESH_TORCH.clear()
    FRESH_TORCH.update(torch_switches())
    original = getattr(torch, "set_num_interop_threads", None)
    if original is None or getattr(original, "__wrapped__", None) is not None:
        return

    def set_num_interop_threads(*args: Any, **kwargs: Any) -> Any:
        INTEROP_SET[0] = True
        return original(*args, **kwargs)

    set_num_interop_threads.__wrapped__ = original  # type: ignore[attr-defined]
    set_num_interop_threads.__doc__ = original.__doc__
    with contextlib.suppress(Exception):
        torch.set_num_interop_threads = set_num_interop_threads


#: Whether a cell called `torch.set_num_interop_threads`, which torch allows once a process.
INTEROP_SET = [False]


def interop_set() -> str:
    """What retires the worker after a cell that set torch's inter-op thread count: every
    later cell's call raised "cannot set number of interop threads after parallel work has
    started or set_num_interop_threads called", where a process of its own sets it."""
    if not INTEROP_SET[0]:
        return ""
    return "torch's inter-op thread count (set_num_interop_threads: once a process)"
