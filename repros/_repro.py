"""Shared helper for the standalone repro scripts (the repro protocol, DESIGN.md).

Standard library only at import time: the scripts run inside images that do not have
repromatrix installed, so this file must import anywhere. Functions that work on tensors
take them duck-typed (tensor methods only) or import torch lazily inside.

What lives here:
  - params merging (unknown keys are an error naming the key),
  - the ``Recorder`` (metrics, thresholds) and ``execute`` which turns a repro body
    into the full result dict (``Untestable`` -> "untestable", any other exception ->
    "error" with a one-line reason and the traceback),
  - provenance read inside the environment, never failing on a missing piece,
  - atomic JSON writing, exit-code mapping and the command line ``main``,
  - NaN-safe error metrics and a CUDA-event timing helper.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import functools
import importlib
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

SCHEMA = 1

#: This copy's version, raised with each fix here that changes what a repro writes or how
#: it exits: `repromatrix run` says, once, when a repro's copy is older than its own
#: (`executors/helper_copies.py`), whose fixes --isolate would otherwise miss unsaid.
HELPER_VERSION = 3

PASSED = "passed"
REGRESSED = "regressed"
UNTESTABLE = "untestable"
ERROR = "error"
STATUSES = (PASSED, REGRESSED, UNTESTABLE, ERROR)

EXIT_PASSED = 0
EXIT_REGRESSED = 1
EXIT_ERROR = 2
EXIT_UNTESTABLE = 125  # `git bisect run` skips this commit

_EXIT_CODES = {
    PASSED: EXIT_PASSED,
    REGRESSED: EXIT_REGRESSED,
    UNTESTABLE: EXIT_UNTESTABLE,
    ERROR: EXIT_ERROR,
}

Metric = float | int | None
StatusReason = tuple[str, str]  # (status, one-line reason)
RunFn = Callable[[Mapping[str, Any]], dict[str, Any]]


class Untestable(Exception):
    """This cell cannot be tested here (no GPU, library, feature, wrong arch): exit 125."""


class ParamsError(ValueError):
    """Bad --params: unknown key or wrong type."""


def exit_code(status: str) -> int:
    """Map a result status to the process exit code (git-bisect-run compatible)."""
    return _EXIT_CODES.get(status, EXIT_ERROR)


def one_line(text: str, limit: int = 500) -> str:
    """Collapse whitespace/newlines so a reason is one line; cut overly long text."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def exc_reason(exc: BaseException) -> str:
    """One-line reason for an exception: ``ExcType: message``."""
    return one_line(f"{type(exc).__name__}: {exc}")


# ---------------------------------------------------------------------------------------
# params


def merge_params(
    defaults: Mapping[str, Any], overrides: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Merge ``overrides`` over ``defaults``; an unknown key or a wrong type is a ParamsError.

    Types are checked against the default's type (int is accepted where a float is
    expected; None defaults accept anything), so a typo in a matrix never silently runs
    the default case.
    """
    merged = dict(defaults)
    if overrides is None:
        return merged
    if not isinstance(overrides, Mapping):
        raise ParamsError(f"params must be a JSON object, got {type(overrides).__name__}")
    for key, value in overrides.items():
        if key not in defaults:
            known = ", ".join(sorted(defaults))
            raise ParamsError(f"unknown param {key!r} (known: {known})")
        default = defaults[key]
        if default is not None and not _type_ok(default, value):
            raise ParamsError(
                f"param {key!r} must be {type(default).__name__}, "
                f"got {type(value).__name__} {value!r}"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise ParamsError(f"param {key!r} must be finite, got {value!r}")
        merged[key] = value
    return merged


def _type_ok(default: Any, value: Any) -> bool:  # noqa: PLR0911 -- one return per JSON type a default can have
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, list):
        return isinstance(value, list)
    if isinstance(default, dict):
        return isinstance(value, dict)
    return True


def parse_params_json(text: str | None) -> dict[str, Any] | None:
    """Parse the --params argument (a JSON object) or raise ParamsError."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParamsError(f"--params is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ParamsError(f"--params must be a JSON object, got {type(value).__name__}")
    return value


# ---------------------------------------------------------------------------------------
# metrics


def finite_or_none(value: Any) -> Metric:
    """A JSON-safe metric: ints stay ints, floats that are NaN/inf become None."""
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def error_stats(
    actual: Any,
    reference: Any,
    *,
    rel_floor: float = 1e-6,
    atol: float | None = None,
    rtol: float | None = None,
) -> dict[str, Metric]:
    """NaN-safe error metrics of ``actual`` against ``reference`` (torch tensors, any dtype).

    Computed in float64. ``max_abs``/``mean_abs``/``max_rel``/``mean_rel`` are over the
    elements where both are finite (None when there are none); the relative error divides
    by ``max(|reference|, rel_floor)`` so it stays meaningful near zero. ``nan``/``inf``
    count non-finite values in ``actual``; ``ref_nonfinite`` those of the reference. With
    ``atol``/``rtol`` a torch.testing.assert_close-style mismatch count is added:
    ``|a - r| > atol + rtol * |r|``, any non-finite ``a`` counting as a mismatch.
    """
    a = actual.detach().double()
    r = reference.detach().double()
    numel = int(a.numel())
    finite_a = a.isfinite()
    finite_r = r.isfinite()
    both = finite_a & finite_r
    diff = (a - r).abs()
    d = diff[both]
    n_both = int(d.numel())
    stats: dict[str, Metric] = {
        "numel": numel,
        "nan": int(a.isnan().sum()),
        "inf": int(a.isinf().sum()),
        "ref_nonfinite": int((~finite_r).sum()),
        "max_abs": None,
        "mean_abs": None,
        "max_rel": None,
        "mean_rel": None,
        "ref_max_abs": finite_or_none(r.abs()[finite_r].max()) if int(finite_r.sum()) else None,
    }
    if n_both:
        rel = d / r.abs()[both].clamp_min(rel_floor)
        stats["max_abs"] = finite_or_none(d.max())
        stats["mean_abs"] = finite_or_none(d.mean())
        stats["max_rel"] = finite_or_none(rel.max())
        stats["mean_rel"] = finite_or_none(rel.mean())
    if atol is not None:
        tol = atol + (rtol or 0.0) * r.abs()
        ok = (diff <= tol) & finite_a
        mismatch = numel - int(ok.sum())
        stats["mismatch"] = mismatch
        stats["mismatch_frac"] = (mismatch / numel) if numel else 0.0
    return stats


def rel_l2(actual: Any, reference: Any, *, floor: float = 1e-30) -> Metric:
    """||actual - reference|| / max(||reference||, floor) in float64; None if non-finite."""
    a = actual.detach().double()
    r = reference.detach().double()
    num = float((a - r).norm())
    den = max(float(r.norm()), floor)
    return finite_or_none(num / den)


def flatten_metrics(prefix: str, stats: Mapping[str, Metric]) -> dict[str, Metric]:
    """``{"max_abs": 1}`` with prefix ``a.b`` -> ``{"a.b.max_abs": 1}``."""
    return {f"{prefix}.{key}": value for key, value in stats.items()}


def cuda_time_ms(fn: Callable[[], object], *, warmup: int = 3, iters: int = 20) -> dict[str, float]:
    """Time ``fn`` on the current CUDA stream with CUDA events, after ``warmup`` calls.

    Returns median/min/mean in milliseconds over ``iters`` timed calls (one event pair
    per call, so launch gaps between calls are not counted).
    """
    import torch  # lazily: this module must import without torch

    for _ in range(max(warmup, 0)):
        fn()
    torch.cuda.synchronize()
    times: list[float] = []
    for _ in range(max(iters, 1)):
        start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call,unused-ignore]
        end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call,unused-ignore]
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(float(start.elapsed_time(end)))
    return {
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "mean_ms": statistics.fmean(times),
    }


# ---------------------------------------------------------------------------------------
# preconditions (each failure is Untestable with a precise reason)


def has_module(name: str) -> bool:
    """Whether a top-level module can be found, without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def not_importable(name: str, why: str | None = None) -> Untestable:
    """The Untestable of a missing library, naming the interpreter that looked for it."""
    top = name.split(".", maxsplit=1)[0]
    detail = why or f"no module named {top!r} on sys.path"
    return Untestable(f"{name} not importable by {sys.executable}: {detail}")


def import_or_untestable(name: str) -> Any:
    """Import ``name``; a missing or broken library is "untestable here", not an error."""
    # Name the interpreter: "torch not importable" alone hides that the wrong one ran.
    if not has_module(name.split(".", maxsplit=1)[0]):
        raise not_importable(name)
    try:
        return importlib.import_module(name)
    except Exception as exc:
        raise not_importable(name, exc_reason(exc)) from exc


def require_cuda(torch_mod: Any) -> None:
    """Untestable unless torch sees a CUDA device (cheap: no context is created)."""
    if not torch_mod.cuda.is_available():
        raise Untestable(
            f"no CUDA device (torch {torch_mod.__version__}, "
            f"built with CUDA {torch_mod.version.cuda})"
        )


# ---------------------------------------------------------------------------------------
# provenance

# import name -> distribution names to try when importlib.metadata cannot map it
_DIST_CANDIDATES: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "flashinfer": ("flashinfer-python", "flashinfer"),
    "fla": ("flash-linear-attention", "fla", "fla-core"),
    "tensorrt": ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt_cu12", "tensorrt-libs"),
    "onnx": ("onnx",),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "triton": ("triton", "pytorch-triton"),
}


def _safe(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception:  # provenance never fails the repro
        return None


def _distribution(module: str) -> importlib.metadata.Distribution | None:
    names: list[str] = []
    mapping = _safe(importlib.metadata.packages_distributions) or {}
    names.extend(mapping.get(module, []))
    names.extend(_DIST_CANDIDATES.get(module, (module,)))
    for name in names:
        try:
            return importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def library_info(module: str) -> dict[str, Any] | None:
    """Version, path and (for VCS installs) commit of ``module``, without importing it."""
    dist = _distribution(module)
    loaded = sys.modules.get(module)
    path: str | None = None
    if loaded is not None:
        path = getattr(loaded, "__file__", None)
    else:
        spec = _safe(lambda: importlib.util.find_spec(module))
        path = getattr(spec, "origin", None) if spec is not None else None
    if dist is None and path is None:
        return None
    info: dict[str, Any] = {
        "version": dist.version if dist is not None else None,
        "distribution": dist.metadata["Name"] if dist is not None else None,
        "path": path,
        "commit": None,
    }
    if loaded is not None:
        mod_version = getattr(loaded, "__version__", None)
        if isinstance(mod_version, str):
            info["module_version"] = mod_version
            if info["version"] is None:
                info["version"] = mod_version
        git_version = getattr(loaded, "__git_version__", None)
        if isinstance(git_version, str) and git_version:
            info["commit"] = git_version
    if dist is not None:
        direct = _safe(lambda: dist.read_text("direct_url.json"))
        if direct:
            data = _safe(lambda: json.loads(direct)) or {}
            vcs = data.get("vcs_info") if isinstance(data, dict) else None
            if isinstance(vcs, dict) and vcs.get("commit_id"):
                info["commit"] = vcs["commit_id"]
            if isinstance(data, dict) and data.get("url"):
                info["url"] = data["url"]
    return info


def _nvidia_smi(query: str) -> list[str] | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        done = subprocess.run(
            [exe, f"--query-gpu={query}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def gpu_info(torch_mod: Any, device_index: int = 0) -> dict[str, Any] | None:
    """GPU facts from torch's device properties (only call when a CUDA device exists)."""
    props = torch_mod.cuda.get_device_properties(device_index)
    uuid = getattr(props, "uuid", None)
    info: dict[str, Any] = {
        "name": getattr(props, "name", None),
        "compute_capability": f"{props.major}.{props.minor}",
        "uuid": str(uuid) if uuid is not None else None,
        "sm_count": getattr(props, "multi_processor_count", None),
        # attribute names differ across torch versions; None when this torch has none
        "shared_memory_per_sm": shared_memory_per_sm(props),
        "total_memory": getattr(props, "total_memory", None),
    }
    return info


def shared_memory_per_sm(props: Any) -> int | None:
    """cudaDevAttrMaxSharedMemoryPerMultiprocessor as torch exposes it, or None."""
    for name in ("shared_memory_per_multiprocessor", "max_shared_memory_per_multiprocessor"):
        value = getattr(props, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def provenance(
    libraries: Iterable[str] = (), env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Facts about the environment the repro ran in; every missing piece is None."""
    environ = os.environ if env is None else env
    prov: dict[str, Any] = {
        "python": platform.python_version(),
        "executable": sys.executable,
        "platform": _safe(platform.platform),
        "hostname": _safe(socket.gethostname),
        "torch": None,
        "cuda": None,
        "cudnn": None,
        "triton": None,
        "driver": None,
        "gpu": None,
        "libraries": {},
        "env": {k: v for k, v in sorted(environ.items()) if k.startswith("REPROMATRIX_")},
        "image": {
            "ref": environ.get("REPROMATRIX_IMAGE_REF"),
            "digest": environ.get("REPROMATRIX_IMAGE_DIGEST"),
        },
    }
    torch_mod = sys.modules.get("torch")  # read only if the repro imported it already
    if torch_mod is not None:
        prov["torch"] = _safe(lambda: str(torch_mod.__version__))
        prov["cuda"] = _safe(lambda: torch_mod.version.cuda)
        cudnn = _safe(torch_mod.backends.cudnn.version)
        prov["cudnn"] = str(cudnn) if cudnn is not None else None
        if _safe(lambda: bool(torch_mod.cuda.is_available())):
            prov["gpu"] = _safe(lambda: gpu_info(torch_mod))
    else:
        dist = _distribution("torch")
        prov["torch"] = dist.version if dist is not None else None
    triton = _distribution("triton")
    prov["triton"] = triton.version if triton is not None else None
    if prov["gpu"] is not None or shutil.which("nvidia-smi"):
        rows = _nvidia_smi("driver_version,uuid")
        if rows:
            parts = [p.strip() for p in rows[0].split(",")]
            prov["driver"] = parts[0] or None
            if prov["gpu"] is not None and not prov["gpu"].get("uuid") and len(parts) > 1:
                prov["gpu"]["uuid"] = parts[1]
    libs: dict[str, Any] = {}
    for name in libraries:
        info = _safe(functools.partial(library_info, name))
        if info is not None:
            libs[name] = info
    passed_in = _safe(lambda: json.loads(environ.get("REPROMATRIX_LIBRARIES", "") or "{}"))
    if isinstance(passed_in, dict):
        for name, facts in passed_in.items():
            if isinstance(facts, dict):
                merged = dict(libs.get(name) or {})
                # what the harness installed (rev/commit/source) wins over what we read
                merged.update({k: v for k, v in facts.items() if v is not None})
                libs[name] = merged
    prov["libraries"] = libs
    return prov


# ---------------------------------------------------------------------------------------
# the result


class Recorder:
    """Collects metrics and thresholds of one run and builds the result dict."""

    def __init__(self, name: str, params: Mapping[str, Any], libraries: Sequence[str] = ()) -> None:
        self.name = name
        self.params = dict(params)
        self.libraries = tuple(libraries)
        self.metrics: dict[str, Metric] = {}
        self.thresholds: dict[str, float] = {}
        self.started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")  # noqa: UP017 -- cells may run Python 3.10
        self._t0 = time.perf_counter()

    def metric(self, key: str, value: Any) -> Metric:
        """Record a metric (NaN/inf become None; the caller records NaN counts)."""
        clean = finite_or_none(value)
        self.metrics[key] = clean
        return clean

    def metrics_from(self, prefix: str, stats: Mapping[str, Any]) -> None:
        for key, value in stats.items():
            self.metric(f"{prefix}.{key}", value)

    def threshold(self, key: str, value: float) -> float:
        self.thresholds[key] = float(value)
        return float(value)

    def result(self, status: str, reason: str, tb: str | None = None) -> dict[str, Any]:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        out: dict[str, Any] = {
            "schema": SCHEMA,
            "repro": self.name,
            "status": status,
            "reason": one_line(reason),
            "metrics": dict(self.metrics),
            "thresholds": dict(self.thresholds),
            "params": dict(self.params),
            "provenance": provenance(self.libraries),
            "started": self.started,
            "duration_s": round(time.perf_counter() - self._t0, 6),
        }
        if tb is not None:
            out["traceback"] = tb
        return out


def execute(
    name: str,
    defaults: Mapping[str, Any],
    params: Mapping[str, Any] | None,
    body: Callable[[Recorder], StatusReason],
    libraries: Sequence[str] = (),
) -> dict[str, Any]:
    """Run ``body`` and return the full result dict; never raises for a repro failure.

    Bad params give an "error" result naming the key; ``Untestable`` gives "untestable"
    with its message (metrics recorded so far are kept); any other exception gives
    "error" with ``ExcType: message`` and the traceback.
    """
    try:
        merged = merge_params(defaults, params)
    except ParamsError as exc:
        cell = Recorder(name, dict(params or {}), libraries)
        return cell.result(ERROR, exc_reason(exc))
    cell = Recorder(name, merged, libraries)
    try:
        status, reason = body(cell)
    except Untestable as exc:
        return cell.result(UNTESTABLE, str(exc) or "untestable here")
    except Exception as exc:
        return cell.result(ERROR, exc_reason(exc), traceback.format_exc())
    return cell.result(status, reason)


def write_json_atomic(
    path: str | os.PathLike[str], obj: Any, *, as_worker_writes: bool = False
) -> None:
    """Write JSON to ``path`` via a temp file in the same directory and os.replace.

    Strict by default (no NaN token, no objects JSON lacks); ``as_worker_writes`` writes
    a result as a persistent worker writes what ``run()`` returned (NaN as a token, which
    the harness makes null and names; numpy/torch scalars as the numbers they hold), so a
    cell gets one verdict in its worker and in a process of its own (``--isolate``)."""
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle, any_int_length():
            json.dump(
                obj,
                handle,
                indent=1,
                sort_keys=False,
                allow_nan=as_worker_writes,
                default=_scalar if as_worker_writes else None,
            )
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def any_int_length() -> Iterator[None]:
    """Integers of any length written whole while inside. CPython 3.11+ refuses to write
    one past 4,300 digits, a ValueError that lost the whole result of a repro whose metric
    came out as 10**5000; the harness keeps such a metric as null and names it."""
    setter = getattr(sys, "set_int_max_str_digits", None)
    if setter is None:  # an interpreter without the limit
        yield
        return
    before = sys.get_int_max_str_digits()
    setter(0)
    try:
        yield
    finally:
        setter(before)


def _scalar(value: Any) -> Any:
    """A numpy or torch scalar (``np.float32``, a 0-d tensor) as the number it holds; an
    array or tensor of up to 10,000 values as their list (the harness leaves such a metric
    out, naming it, where the whole result was lost to "can only convert an array of size
    1 to a Python scalar")."""
    numel = getattr(value, "numel", None)
    size = numel() if callable(numel) else getattr(value, "size", None)
    if not isinstance(size, int):
        size = 1
    plain = value.item() if size == 1 and callable(getattr(value, "item", None)) else None
    if isinstance(plain, int | float | bool | str):
        return plain
    listed = value.tolist() if size <= 10_000 and callable(getattr(value, "tolist", None)) else None
    if isinstance(listed, list):
        return listed
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _repro_name(run: RunFn) -> str:
    """NAME of the module defining ``run``, else the script's file name."""
    module = sys.modules.get(getattr(run, "__module__", "") or "")
    name = getattr(module, "NAME", None)
    if isinstance(name, str) and name:
        return name
    return os.path.splitext(os.path.basename(sys.argv[0] or "repro"))[0]


def main(
    run: RunFn,
    defaults: Mapping[str, Any],
    argv: Sequence[str] | None = None,
    *,
    description: str | None = None,
) -> int:
    """Command line of a repro: ``--out RESULT.json [--params JSON]``. Given `argv`, returns
    the exit code; reading the process's own (`argv` None), exits with it: a script that
    ends with a bare ``_repro.main(run, DEFAULT_PARAMS)``, as README's "Adding a repro"
    writes it, exited 0 (passed) whatever it found, where ``raise SystemExit(main(...))``
    (which this leaves as it was) exits with the verdict's code."""
    code = _main(run, defaults, argv, description=description)
    if argv is None:
        raise SystemExit(code)
    return code


def _main(
    run: RunFn,
    defaults: Mapping[str, Any],
    argv: Sequence[str] | None,
    *,
    description: str | None,
) -> int:
    parser = argparse.ArgumentParser(
        description=description,
        epilog="exit codes: 0 passed, 1 regressed, 125 untestable here, other = error. "
        f"default params: {json.dumps(dict(defaults))}",
    )
    parser.add_argument("--out", required=True, help="where to write the result JSON")
    parser.add_argument("--params", default=None, help="JSON object merged over the defaults")
    args = parser.parse_args(argv)
    try:
        overrides = parse_params_json(args.params)
        merge_params(defaults, overrides)
    except ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        name = _repro_name(run)
        # best effort: the harness can read the reason from the JSON too
        with contextlib.suppress(OSError, ValueError, TypeError):
            write_json_atomic(args.out, Recorder(name, {}).result(ERROR, exc_reason(exc)))
        return EXIT_ERROR
    try:
        result = run(overrides or {})
    except Untestable as exc:  # raised in run() itself, outside `execute`: as it says
        result = Recorder(_repro_name(run), dict(overrides or {})).result(
            UNTESTABLE, str(exc) or "untestable here"
        )
    except Exception as exc:  # run() should never raise; an uncaught one would exit 1 ("regressed")
        cell = Recorder(_repro_name(run), dict(overrides or {}))
        result = cell.result(ERROR, exc_reason(exc), traceback.format_exc())
    if not isinstance(result, dict):
        # A `run()` that forgot its `return` (None) crashed here with exit 1: "regressed"
        # to `git bisect run`, where the worker makes the cell an error.
        cell = Recorder(_repro_name(run), dict(overrides or {}))
        why = f"run() returned {type(result).__name__}, not a result dict"
        result = cell.result(ERROR, why)
    try:
        write_json_atomic(args.out, result, as_worker_writes=True)
    except (OSError, ValueError, TypeError, RecursionError) as exc:
        # Not the path: the harness's is a folder of its run, and one failure would read
        # as a new one each run. Nesting too deep for json: this line, not a traceback.
        print(f"error: cannot write the result JSON: {exc_reason(exc)}", file=sys.stderr)
        return EXIT_ERROR
    status = str(result.get("status"))
    # A run() that closed its stderr (fd 2, or sys.stderr): the line is lost, the verdict
    # written is not; the OSError escaped as exit 1, "regressed" to `git bisect run`.
    with contextlib.suppress(OSError, ValueError):
        print(f"{result.get('repro')}: {status}: {result.get('reason')}", file=sys.stderr)
    return exit_code(status)
