"""fla_fused_chunk_scale: fused_chunk_linear_attn returns a wrong dv when scale != 1.

Upstream: fla-org/flash-linear-attention#47, fixed by commit 85992884 ("[Linear Attn] Fix
bad `dv` when passing scale (#47)", 2024-08-18); the commit before it is 3f1f080f. The
backward kernel of the fused chunk kernel accumulated an unscaled q into dh, so dv was off
whenever T > 64 (two or more chunks) and scale != 1; forward, dq and dk were right.
Present since the kernel was added in 7336d0cf (2024-02-14). No PyPI release contains the
bug (the first release, 0.1, is from 2025-03), so the cells are git commits.

Compared, forward and backward (o, dq, dk, dv): ``fused_chunk_linear_attn`` and
``chunk_linear_attn`` against a float64 reference (naive causal linear attention,
o_t = scale * sum_{s <= t} (q_t . k_s) v_s, differentiated by autograd in float64).
B = 2, T = 256, H = 4, D = 64, fp32, ``normalize=False`` (a separate later dk bug with
normalize=True was fixed in 0.5.1), explicit scales D**-0.5 = 0.125 and 1.0, inputs ~ randn
as in the upstream test (tests/ops/test_linear_attn.py, seed 42).

API drift, read from the repository history and handled by inspecting signatures:
  - 7336d0cf: ``fused_chunk_linear_attention(q, k, v, initial_state, output_final_state)``
    (no scale: fixed K**-0.5; no normalize) returning o alone;
  - by 3f1f080f: ``fused_chunk_linear_attn(q, k, v, scale=-1, ..., normalize=True)`` where
    -1 means the default; from 85992884 ``scale=None`` (and -1 multiplies by -1): we always
    pass an explicit scale, so either convention gives the same call;
  - ``head_first`` (from 2024-11, default True, default False from 0.2.0, removed later):
    when present we pass head_first=False with [B, T, H, D] tensors; when absent, [B, T,
    H, D] if the function has ``cu_seqlens`` (the later API), else [B, H, T, D];
  - the module is ``chunk_fuse.py`` early and ``fused_chunk.py`` later.
Old ``fla/__init__.py`` imports the models, which break under transformers 5 ("'bitnet'
is already used by a Transformers config"), and old ``fla/ops/__init__.py`` imports every
op: we register ``fla`` and ``fla.ops`` as bare packages (right ``__path__``, init not run)
and import only ``fla.ops.linear_attn.*``.

Metric per (scale, function, tensor): relative error ||x - ref|| / ||ref||.
Verdict: regressed when a fused_chunk tensor (dv in the bug) has relative error above
``max_rel_err`` while chunk_linear_attn is within it at the same scale; error when chunk
itself is off (the control); passed otherwise. ``max_rel_err`` = 1e-2: measured on an H200
the good kernels give 2.6e-7 (fp32, tl.dot with allow_tf32=False at these commits; a later
TF32 kernel would give ~1e-3) and the bug gives 6.06 for dv at scale 0.125.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _repro

NAME = "fla_fused_chunk_scale"

# where tensors live; the unit tests point it at "cpu" to drive the whole run with fakes
DEVICE = "cuda"

DEFAULT_PARAMS: dict[str, Any] = {
    "seed": 42,
    "B": 2,
    "T": 256,
    "H": 4,
    "D": 64,
    "scales": [0.125, 1.0],  # 0.125 = D**-0.5 for D = 64
    "max_rel_err": 1e-2,
    "functions": ["fused_chunk", "chunk"],
    "timing_iters": 10,  # CUDA-event timing of forward+backward after the checks; 0 = off
}

TENSORS = ("o", "dq", "dk", "dv")


def scale_label(scale: float) -> str:
    """Metric-key-safe label: 0.125 -> "s0p125", 1.0 -> "s1" (no dots inside a key part)."""
    return "s" + f"{scale:g}".replace(".", "p").replace("-", "m")


def run(params: Mapping[str, Any]) -> dict[str, Any]:
    return _repro.execute(NAME, DEFAULT_PARAMS, params, _body, libraries=("torch", "triton", "fla"))


# ---------------------------------------------------------------------------------------
# reference


def linear_attention_reference(q: Any, k: Any, v: Any, scale: float) -> Any:
    """Causal, unnormalised linear attention in float64, layout [B, H, T, D].

    o[t] = scale * sum_{s <= t} (q[t] . k[s]) v[s]; differentiable (plain torch ops).
    """
    import torch

    q64, k64, v64 = q.double(), k.double(), v.double()
    t = q64.shape[-2]
    scores = (q64 * scale) @ k64.transpose(-1, -2)
    mask = torch.ones((t, t), dtype=torch.bool, device=q.device).tril()
    return scores.masked_fill(~mask, 0.0) @ v64


# ---------------------------------------------------------------------------------------
# importing the ops without running fla/__init__.py


def _declared_version(init_path: str | None) -> str:
    """`__version__ = "x"` as written in fla/__init__.py, without running it."""
    if init_path and os.path.isfile(init_path):
        with open(init_path, encoding="utf-8") as f:
            found = re.search(r"__version__\s*=\s*['\"]([^'\"]+)['\"]", f.read())
        if found:
            return found.group(1)
    return "0+unknown"


def import_linear_attn_ops() -> tuple[Any, Any]:
    """Return (fused_chunk function, chunk function) from ``fla.ops.linear_attn``.

    ``fla`` and ``fla.ops`` are registered as bare packages (spec found on sys.path, the
    module created from it, its ``__init__`` not executed) unless already imported.
    """
    if not _repro.has_module("fla"):
        raise _repro.not_importable("fla")
    for name in ("fla", "fla.ops"):
        if name in sys.modules:
            continue
        spec = importlib.util.find_spec(name)
        if spec is None or spec.submodule_search_locations is None:
            raise _repro.not_importable("fla", f"{name} is not a package on sys.path")
        module = importlib.util.module_from_spec(spec)  # sets __path__, runs nothing
        if name == "fla":
            # Newer ops modules do `from fla import __version__` (seen at v0.5.2 on an
            # H200): give the bare package the version its __init__ would have set.
            module.__version__ = _declared_version(spec.origin)  # type: ignore[attr-defined]
        sys.modules[name] = module
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, module)
    try:
        chunk_mod = importlib.import_module("fla.ops.linear_attn.chunk")
        fused_name = next(
            (
                m
                for m in ("fused_chunk", "chunk_fuse")
                if importlib.util.find_spec(f"fla.ops.linear_attn.{m}")
            ),
            None,
        )
        if fused_name is None:
            raise _repro.Untestable(
                "fla.ops.linear_attn has neither fused_chunk.py nor chunk_fuse.py"
            )
        fused_mod = importlib.import_module(f"fla.ops.linear_attn.{fused_name}")
    except _repro.Untestable:
        raise
    except Exception as exc:
        raise _repro.not_importable("fla.ops.linear_attn", _repro.exc_reason(exc)) from exc
    fused = getattr(fused_mod, "fused_chunk_linear_attn", None) or getattr(
        fused_mod, "fused_chunk_linear_attention", None
    )
    chunk = getattr(chunk_mod, "chunk_linear_attn", None)
    if fused is None or chunk is None:
        raise _repro.Untestable(
            "fla.ops.linear_attn lacks fused_chunk_linear_attn/chunk_linear_attn"
        )
    return fused, chunk


# ---------------------------------------------------------------------------------------
# adapter


class LinearAttnAdapter:
    """Calls one fla linear-attention function with [B, H, T, D] tensors whatever its API."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        params = inspect.signature(fn).parameters
        self.has_scale = "scale" in params
        self.has_normalize = "normalize" in params
        self.has_head_first = "head_first" in params
        # [B, T, H, D] with head_first=False, or in the later API without head_first
        self.time_first = self.has_head_first or "cu_seqlens" in params
        default = params["scale"].default if self.has_scale else None
        self.scale_default = default if isinstance(default, int | float) else None

    def supports_scale(self, scale: float, head_dim: int) -> bool:
        """Old APIs without ``scale`` hard-code head_dim**-0.5."""
        return self.has_scale or abs(scale - head_dim**-0.5) <= 1e-12 * max(1.0, scale)

    def __call__(self, q: Any, k: Any, v: Any, scale: float) -> Any:
        kwargs: dict[str, Any] = {}
        if self.has_scale:
            kwargs["scale"] = scale
        if self.has_normalize:
            kwargs["normalize"] = False
        if self.has_head_first:
            kwargs["head_first"] = False
        if self.time_first:
            q, k, v = (x.transpose(1, 2) for x in (q, k, v))
        out = self.fn(q, k, v, **kwargs)
        o = out[0] if isinstance(out, tuple | list) else out
        return o.transpose(1, 2) if self.time_first else o


# ---------------------------------------------------------------------------------------
# verdict (pure)


def fla_verdict(
    rel: Mapping[str, Any], threshold: float, scales: list[float]
) -> _repro.StatusReason:
    """``rel["<scale_label>.<function>.<tensor>"]`` = relative error (None: non-finite)."""

    def bad(value: Any) -> bool:
        return value is None or float(value) > threshold

    regressions: list[str] = []
    control_bad: list[str] = []
    tested = 0
    for scale in scales:
        label = scale_label(scale)
        chunk = {t: rel.get(f"{label}.chunk.{t}") for t in TENSORS}
        fused = {t: rel.get(f"{label}.fused_chunk.{t}") for t in TENSORS}
        if f"{label}.fused_chunk.o" not in rel or f"{label}.chunk.o" not in rel:
            continue  # not run at this scale (API without a scale argument)
        tested += 1
        if any(bad(v) for v in chunk.values()):
            control_bad.append(
                f"scale {scale:g}: chunk "
                + ", ".join(f"{t}={chunk[t]}" for t in TENSORS if bad(chunk[t]))
            )
            continue
        wrong = [f"{t}={fused[t]}" for t in TENSORS if bad(fused[t])]
        if wrong:
            regressions.append(f"scale {scale:g}: fused_chunk {', '.join(wrong)}")
    if regressions:
        return _repro.REGRESSED, (
            f"fused_chunk_linear_attn wrong vs float64 (rel err > {threshold:g}) "
            "while chunk is right: " + "; ".join(regressions)
        )
    if control_bad:
        return _repro.ERROR, "chunk_linear_attn (the control) is off float64: " + "; ".join(
            control_bad
        )
    if not tested:
        return _repro.UNTESTABLE, "no requested scale can be passed to this fla version"
    worst = max(
        (float(v) for k, v in rel.items() if v is not None and ".fused_chunk." in k), default=0.0
    )
    return (
        _repro.PASSED,
        f"fused_chunk and chunk match float64 at every scale (worst fused rel err {worst:.3g})",
    )


# ---------------------------------------------------------------------------------------
# the run


def _body(cell: _repro.Recorder) -> _repro.StatusReason:  # noqa: C901, PLR0915 -- the experiment, read top to bottom
    p = cell.params
    torch = _repro.import_or_untestable("torch")
    if not _repro.has_module("fla"):
        raise _repro.not_importable("fla")
    _repro.require_cuda(torch)
    fused_fn, chunk_fn = import_linear_attn_ops()
    adapters = {"fused_chunk": LinearAttnAdapter(fused_fn), "chunk": LinearAttnAdapter(chunk_fn)}
    for name, ad in adapters.items():
        cell.metric(f"api.{name}.has_scale", int(ad.has_scale))
        cell.metric(f"api.{name}.has_head_first", int(ad.has_head_first))
        cell.metric(f"api.{name}.time_first_layout", int(ad.time_first))
        cell.metric(f"api.{name}.scale_default", ad.scale_default)
    threshold = cell.threshold("max_rel_err", float(p["max_rel_err"]))
    b, t, h, d = (int(p[k]) for k in ("B", "T", "H", "D"))
    device = torch.device(DEVICE)
    gen = torch.Generator(device=device).manual_seed(int(p["seed"]))
    q0 = torch.randn((b, h, t, d), generator=gen, device=device, dtype=torch.float32)
    k0 = torch.randn((b, h, t, d), generator=gen, device=device, dtype=torch.float32)
    v0 = torch.randn((b, h, t, d), generator=gen, device=device, dtype=torch.float32)
    do = torch.randn((b, h, t, d), generator=gen, device=device, dtype=torch.float32)

    rel: dict[str, Any] = {}
    notes: list[str] = []
    scales = [float(s) for s in p["scales"]]
    for scale in scales:
        q64, k64, v64 = (x.double().requires_grad_() for x in (q0, k0, v0))
        leaves = [q64, k64, v64]
        ref_o = linear_attention_reference(q64, k64, v64, scale)
        ref_o.backward(do.double())
        ref = {
            "o": ref_o.detach(),
            "dq": leaves[0].grad,
            "dk": leaves[1].grad,
            "dv": leaves[2].grad,
        }
        for fname in p["functions"]:
            adapter = adapters[str(fname)]
            if not adapter.supports_scale(scale, d):
                notes.append(
                    f"{fname} has no scale argument (fixed D**-0.5): scale {scale:g} not run"
                )
                continue
            q, k, v = (x.clone().requires_grad_() for x in (q0, k0, v0))
            started = time.perf_counter()
            o = adapter(q, k, v, scale)
            o.backward(do)
            torch.cuda.synchronize()
            if f"latency.{fname}.first_call_s" not in cell.metrics:  # includes Triton compile
                cell.metric(f"latency.{fname}.first_call_s", time.perf_counter() - started)
            got = {"o": o.detach(), "dq": q.grad, "dk": k.grad, "dv": v.grad}
            for tensor in TENSORS:
                key = f"{scale_label(scale)}.{fname}.{tensor}"
                value = got[tensor]
                rel[key] = _repro.rel_l2(value, ref[tensor]) if value is not None else None
                cell.metric(f"rel_err.{key}", rel[key])
                cell.metric(f"nan.{key}", int(value.isnan().sum()) if value is not None else None)
    iters = int(p["timing_iters"])
    if iters > 0:
        for fname in p["functions"]:
            adapter = adapters[str(fname)]
            if not adapter.supports_scale(d**-0.5, d):
                continue
            q, k, v = (x.clone().requires_grad_() for x in (q0, k0, v0))

            def fwd_bwd(
                adapter: LinearAttnAdapter = adapter, q: Any = q, k: Any = k, v: Any = v
            ) -> None:
                adapter(q, k, v, d**-0.5).backward(do)

            timing = _repro.cuda_time_ms(fwd_bwd, warmup=2, iters=iters)
            cell.metric(f"latency.{fname}.fwd_bwd_median_ms", timing["median_ms"])
    status, reason = fla_verdict(rel, threshold, scales)
    if notes:
        reason += "; " + "; ".join(notes)
    return status, reason


if __name__ == "__main__":
    raise SystemExit(_repro.main(run, DEFAULT_PARAMS, description=__doc__))
