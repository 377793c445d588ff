"""flashinfer_mla_oob_nan: NaN/inf in unused KV slots of the last page leak into the output.

Upstream: flashinfer-ai/flashinfer#941; the invariant is flashinfer#358: out-of-bounds V
rows must be zero-filled (``SharedMemFillMode::kFillZero``) because 0 x NaN = NaN, while K
needs no fill because masking overwrites its scores. MLA broke it in 0.2.2, 0.2.2.post1
and 0.2.3 (a page-granular bound loaded the unused slots of the last page); fixed in 0.2.4
by PR #942 (fa2, commit 27906fdbf) and PR #945 (fa3, commit 061db556d). Upstream test:
``tests/test_deepseek_mla.py::test_batch_mla_oob_kv_nan`` (fp16, rtol = atol = 1e-3).

Trigger: fill ``ckv[last_page, last_page_len:]`` and ``kpe[last_page, last_page_len:]``
(and for the non-MLA wrappers K and V of those slots) with NaN, or with inf; plan with
the true KV lengths; compare with a float64 reference that only reads the first kv_len
slots. The same data without poison is the control. Paths: MLA fa2 / fa3 (where SM90a and
this flashinfer has it), and the non-MLA paged wrappers that have honoured the invariant
throughout: ``BatchDecodeWithPagedKVCacheWrapper`` without and with tensor cores and
``BatchPrefillWithPagedKVCacheWrapper`` (fa2, and fa3 where supported). Shapes: small
(batch 3, kv_len 13, page 4, one query per request; measured on 0.2.3: 24576/24576 outputs
NaN) and bigger (batch 7, kv_len 197, page 16, 7 queries per request, as upstream).

Verdict per (path, shape), tolerance atol = rtol = 1e-3 as upstream, an output being
wrong when it has NaN/inf or more than ``max_mismatch_frac`` (0.1%, see
flashinfer_mla_sm89) of its elements outside |o - ref| <= atol + rtol * |ref|:
  regressed if some poisoned case is wrong while its clean control is right;
  error     if no such case exists but some clean control is wrong or a case raised;
  passed    otherwise.
"""

from __future__ import annotations

import inspect
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _repro

NAME = "flashinfer_mla_oob_nan"

# where tensors live; the unit tests point it at "cpu" to drive the whole run with fakes
DEVICE = "cuda"

DEFAULT_PARAMS: dict[str, Any] = {
    "seed": 42,
    "paths": ["mla.fa2", "mla.fa3", "decode", "decode.tc", "prefill.fa2", "prefill.fa3"],
    "shapes": {
        "small": {"batch_size": 3, "kv_len": 13, "page_size": 4, "qo_len": 1},
        "big": {"batch_size": 7, "kv_len": 197, "page_size": 16, "qo_len": 7},
    },
    "poisons": ["nan", "inf"],
    "mla_num_heads": 16,
    "num_qo_heads": 32,
    "num_kv_heads": 8,
    "head_dim": 128,
    "dtype": "float16",
    "atol": 1e-3,
    "rtol": 1e-3,
    "max_mismatch_frac": 1e-3,
    "workspace_mb": 128,
}

HEAD_DIM_CKV = 512
HEAD_DIM_KPE = 64
MLA_SM_SCALE = 1.0 / ((128 + 64) ** 0.5)
POISON_VALUES = {"nan": float("nan"), "inf": float("inf")}


def run(params: Mapping[str, Any]) -> dict[str, Any]:
    return _repro.execute(NAME, DEFAULT_PARAMS, params, _body, libraries=("torch", "flashinfer"))


# ---------------------------------------------------------------------------------------
# layout of the paged cache and the poison


def last_page_slots(kv_len: int, page_size: int) -> tuple[int, int]:
    """(pages per request, used slots of the last page)."""
    pages = (kv_len + page_size - 1) // page_size
    return pages, kv_len - (pages - 1) * page_size


def poison_last_pages(
    cache: Any, *, batch_size: int, kv_len: int, page_size: int, value: float, slot_dim: int
) -> int:
    """Write ``value`` into the unused slots of each request's last page (in place).

    Requests own consecutive pages (request b: pages b*P .. b*P+P-1). ``slot_dim`` is the
    axis of the in-page slot: 1 for MLA caches ``[pages, page, D]``, 2 for NHD caches
    ``[pages, 2, page, H, D]``. Returns the number of poisoned slots per request.
    """
    pages, used = last_page_slots(kv_len, page_size)
    for b in range(batch_size):
        last = (b + 1) * pages - 1
        if slot_dim == 1:
            cache[last, used:] = value
        else:
            cache[last, :, used:] = value
    return page_size - used


# ---------------------------------------------------------------------------------------
# references (float64; the unit tests check them against loop versions on CPU)


def mla_reference(
    q_nope: Any,
    q_pe: Any,
    ckv: Any,
    kpe: Any,
    qo_indptr: Sequence[int],
    kv_indptr: Sequence[int],
    kv_indices: Sequence[int],
    kv_lens: Sequence[int],
    *,
    sm_scale: float,
    causal: bool = False,
) -> Any:
    """Float64 MLA: softmax((q_nope.ckv + q_pe.kpe) * sm_scale) @ ckv over the used slots."""
    import torch

    total_q, heads, dc = q_nope.shape
    out = torch.zeros((total_q, heads, dc), dtype=torch.float64, device=q_nope.device)
    for b in range(len(kv_lens)):
        q0, q1, length = int(qo_indptr[b]), int(qo_indptr[b + 1]), int(kv_lens[b])
        if q1 == q0 or length == 0:
            continue
        pages = torch.as_tensor(
            [int(i) for i in kv_indices[int(kv_indptr[b]) : int(kv_indptr[b + 1])]],
            device=q_nope.device,
        )
        c = ckv[pages].reshape(-1, dc)[:length].double()
        r = kpe[pages].reshape(-1, kpe.shape[-1])[:length].double()
        logits = (
            torch.einsum("ihd,jd->hij", q_nope[q0:q1].double(), c)
            + torch.einsum("ihd,jd->hij", q_pe[q0:q1].double(), r)
        ) * sm_scale
        if causal:
            rows = torch.arange(q1 - q0, device=q_nope.device)[:, None] + (length - (q1 - q0))
            logits = logits.masked_fill(
                torch.arange(length, device=q_nope.device)[None, :] > rows, float("-inf")
            )
        out[q0:q1] = torch.einsum("hij,jd->ihd", logits.softmax(dim=-1), c)
    return out


def paged_attention_reference(
    q: Any,
    kv_cache: Any,
    qo_indptr: Sequence[int],
    kv_indptr: Sequence[int],
    kv_indices: Sequence[int],
    kv_lens: Sequence[int],
    *,
    sm_scale: float,
    causal: bool = False,
) -> Any:
    """Float64 GQA attention over an NHD cache ``[pages, 2, page, Hkv, D]`` (h -> h // group)."""
    import torch

    total_q, hqo, dim = q.shape
    hkv, dv = kv_cache.shape[3], kv_cache.shape[4]
    group = hqo // hkv
    out = torch.zeros((total_q, hqo, dv), dtype=torch.float64, device=q.device)
    for b in range(len(kv_lens)):
        q0, q1, length = int(qo_indptr[b]), int(qo_indptr[b + 1]), int(kv_lens[b])
        if q1 == q0 or length == 0:
            continue
        pages = torch.as_tensor(
            [int(i) for i in kv_indices[int(kv_indptr[b]) : int(kv_indptr[b + 1])]], device=q.device
        )
        k = kv_cache[pages, 0].reshape(-1, hkv, dim)[:length].double()
        v = kv_cache[pages, 1].reshape(-1, hkv, dv)[:length].double()
        logits = (
            torch.einsum("ikgd,nkd->kgin", q[q0:q1].double().reshape(q1 - q0, hkv, group, dim), k)
            * sm_scale
        )
        if causal:
            rows = torch.arange(q1 - q0, device=q.device)[:, None] + (length - (q1 - q0))
            logits = logits.masked_fill(
                torch.arange(length, device=q.device)[None, :] > rows, float("-inf")
            )
        out[q0:q1] = torch.einsum("kgin,nkd->ikgd", logits.softmax(dim=-1), v).reshape(
            q1 - q0, hqo, dv
        )
    return out


# ---------------------------------------------------------------------------------------
# adapters (chosen by inspecting the installed flashinfer)


def path_unsupported(fi: Any, torch: Any, path: str) -> str | None:  # noqa: C901, PLR0911, PLR0912 -- one rule per API drift, in order
    """Why ``path`` cannot run with this flashinfer on this GPU, or None."""
    version = getattr(fi, "__version__", "?")
    family, _, backend = path.partition(".")
    if family == "mla":
        mla = getattr(fi, "mla", None)
        if getattr(mla, "BatchMLAPagedAttentionWrapper", None) is None and not hasattr(
            fi, "BatchMLAPagedAttentionWrapper"
        ):
            return f"MLA wrapper absent (flashinfer {version} < 0.2.1)"
        if backend == "fa3" and not hasattr(getattr(fi, "utils", None), "determine_mla_backend"):
            return f"MLA fa3 backend absent (flashinfer {version} < 0.2.2)"
    elif family == "decode":
        if not hasattr(fi, "BatchDecodeWithPagedKVCacheWrapper"):
            return "BatchDecodeWithPagedKVCacheWrapper absent"
        if (
            backend == "tc"
            and "use_tensor_cores"
            not in inspect.signature(fi.BatchDecodeWithPagedKVCacheWrapper.__init__).parameters
        ):
            return "decode wrapper has no use_tensor_cores argument"
        return None
    elif family == "prefill":
        cls = getattr(fi, "BatchPrefillWithPagedKVCacheWrapper", None)
        if cls is None:
            return "BatchPrefillWithPagedKVCacheWrapper absent"
        if backend == "fa3" and "backend" not in inspect.signature(cls.__init__).parameters:
            return f"prefill wrapper has no backend argument (flashinfer {version}): no fa3"
    else:
        return f"unknown path {path!r}"
    if backend == "fa3":
        major, minor = torch.cuda.get_device_capability()
        if major != 9:
            return f"fa3 needs SM90a, this GPU is SM{major}{minor}"
        is_sm90a = getattr(getattr(fi, "utils", None), "is_sm90a_supported", None)
        if callable(is_sm90a) and not is_sm90a(torch.device("cuda")):
            return f"fa3 needs SM90a with CUDA >= 12.3 (torch built with CUDA {torch.version.cuda})"
    return None


def _call_plan(plan: Callable[..., Any], args: Sequence[Any], optional: Mapping[str, Any]) -> None:
    params = inspect.signature(plan).parameters
    plan(*args, **{k: v for k, v in optional.items() if k in params})


def make_paged_runner(
    fi: Any,
    path: str,
    workspace: Any,
    *,
    qo_indptr: Any,
    kv_indptr: Any,
    kv_indices: Any,
    last_len: Any,
    num_qo_heads: int,
    num_kv_heads: int,
    head_dim: int,
    page_size: int,
    dtype: Any,
) -> Callable[[Any, Any], Any]:
    """Plan a non-MLA paged wrapper for ``path``; return ``fn(q, kv_cache) -> out``."""
    family, _, backend = path.partition(".")
    if family == "decode":
        cls = fi.BatchDecodeWithPagedKVCacheWrapper
        init = inspect.signature(cls.__init__).parameters
        kwargs: dict[str, Any] = {}
        if "use_tensor_cores" in init:
            kwargs["use_tensor_cores"] = backend == "tc"
        if "backend" in init:
            kwargs["backend"] = "fa2"  # keep "auto" from choosing another kernel family
        wrapper = cls(workspace, "NHD", **kwargs)
        args: list[Any] = [
            kv_indptr,
            kv_indices,
            last_len,
            num_qo_heads,
            num_kv_heads,
            head_dim,
            page_size,
        ]
        optional: dict[str, Any] = {"q_data_type": dtype}
        forward_kwargs: dict[str, Any] = {}
    else:
        cls = fi.BatchPrefillWithPagedKVCacheWrapper
        init = inspect.signature(cls.__init__).parameters
        kwargs = {"backend": backend} if "backend" in init else {}
        wrapper = cls(workspace, "NHD", **kwargs)
        args = [
            qo_indptr,
            kv_indptr,
            kv_indices,
            last_len,
            num_qo_heads,
            num_kv_heads,
            head_dim,
            page_size,
        ]
        optional = {"q_data_type": dtype, "causal": False}
        forward_kwargs = {"causal": False}
    plan = getattr(wrapper, "plan", None)
    call = getattr(wrapper, "run", None)
    if not (callable(plan) and callable(call)):  # flashinfer < 0.1.6
        plan, call = wrapper.begin_forward, wrapper.forward
        fparams = inspect.signature(call).parameters
        forward_kwargs = {k: v for k, v in forward_kwargs.items() if k in fparams}
    else:
        forward_kwargs = {}
    pparams = inspect.signature(plan).parameters
    if "kv_data_type" in pparams:
        optional["kv_data_type"] = dtype
    elif "data_type" in pparams:
        optional["data_type"] = dtype
    _call_plan(plan, args, optional)
    runner = call

    def run_(q: Any, kv_cache: Any) -> Any:
        out = runner(q, kv_cache, **forward_kwargs)
        return out[0] if isinstance(out, tuple) else out

    return run_


def make_mla_runner(
    fi: Any,
    backend: str,
    workspace: Any,
    *,
    qo_indptr: Any,
    kv_indptr: Any,
    kv_indices: Any,
    kv_lens: Any,
    num_heads: int,
    page_size: int,
    dtype: Any,
) -> Callable[[Any, Any, Any, Any], Any]:
    mla = getattr(fi, "mla", None)
    cls = getattr(mla, "BatchMLAPagedAttentionWrapper", None) or fi.BatchMLAPagedAttentionWrapper
    if "backend" in inspect.signature(cls.__init__).parameters:
        wrapper = cls(workspace, backend=backend)
    else:
        wrapper = cls(workspace)
    wrapper.plan(
        qo_indptr,
        kv_indptr,
        kv_indices,
        kv_lens,
        num_heads,
        HEAD_DIM_CKV,
        HEAD_DIM_KPE,
        page_size,
        False,
        MLA_SM_SCALE,
        dtype,
        dtype,
    )

    def run_(q_nope: Any, q_pe: Any, ckv: Any, kpe: Any) -> Any:
        out = wrapper.run(q_nope, q_pe, ckv, kpe)
        return out[0] if isinstance(out, tuple) else out

    return run_


# ---------------------------------------------------------------------------------------
# verdict (pure)


def output_wrong(stats: Mapping[str, Any], max_mismatch_frac: float) -> bool:
    nonfinite = int(stats.get("nan") or 0) + int(stats.get("inf") or 0)
    frac = stats.get("mismatch_frac")
    return nonfinite > 0 or frac is None or float(frac) > max_mismatch_frac


def oob_verdict(
    groups: Mapping[str, Mapping[str, Mapping[str, Any]]],
    errors: Mapping[str, str],
    max_mismatch_frac: float,
) -> _repro.StatusReason:
    """``groups[path.shape][poison]`` = error stats, with poison "clean" as the control."""
    leaks: list[str] = []
    bad_controls: list[str] = []
    for group, cases in sorted(groups.items()):
        clean = cases.get("clean")
        if clean is None or output_wrong(clean, max_mismatch_frac):
            bad_controls.append(group)
            continue
        for poison, stats in sorted(cases.items()):
            if poison != "clean" and output_wrong(stats, max_mismatch_frac):
                leaks.append(
                    f"{group}.{poison} ({stats.get('nan')}/{stats.get('numel')} NaN, "
                    f"max abs {stats.get('max_abs')})"
                )
    if leaks:
        extra = f"; clean control also wrong for {', '.join(bad_controls)}" if bad_controls else ""
        return (
            _repro.REGRESSED,
            f"poison in unused last-page slots leaks into the output: {'; '.join(leaks)}{extra}",
        )
    if bad_controls:
        return (
            _repro.ERROR,
            f"clean control wrong (not the #941 pattern) for {', '.join(bad_controls)}",
        )
    if errors:
        name, msg = next(iter(errors.items()))
        return _repro.ERROR, f"{len(errors)} case groups raised, first {name}: {msg}"
    if not groups:
        return _repro.UNTESTABLE, "no path could run here"
    return (
        _repro.PASSED,
        f"no leak: {len(groups)} path/shape groups correct with NaN/inf in unused slots",
    )


# ---------------------------------------------------------------------------------------
# the run


def _body(cell: _repro.Recorder) -> _repro.StatusReason:
    p = cell.params
    torch = _repro.import_or_untestable("torch")
    if not _repro.has_module("flashinfer"):
        raise _repro.not_importable("flashinfer")
    _repro.require_cuda(torch)
    fi = _repro.import_or_untestable("flashinfer")
    device = torch.device(DEVICE)
    dtype = getattr(torch, str(p["dtype"]))
    atol = cell.threshold("atol", float(p["atol"]))
    rtol = cell.threshold("rtol", float(p["rtol"]))
    max_frac = cell.threshold("max_mismatch_frac", float(p["max_mismatch_frac"]))
    poisons = ["clean", *[str(x) for x in p["poisons"]]]
    for poison in poisons[1:]:
        if poison not in POISON_VALUES:
            raise ValueError(f"unknown poison {poison!r}; use {sorted(POISON_VALUES)}")

    groups: dict[str, dict[str, dict[str, Any]]] = {}
    errors: dict[str, str] = {}
    skipped: list[str] = []
    for path in [str(x) for x in p["paths"]]:
        why = path_unsupported(fi, torch, path)
        if why is not None:
            skipped.append(f"{path}: {why}")
            cell.metric(f"{path}.supported", 0)
            continue
        cell.metric(f"{path}.supported", 1)
        for shape_name, shape in p["shapes"].items():
            group = f"{path}.{shape_name}"
            try:
                groups[group] = _run_group(
                    cell, fi, torch, device, dtype, path, shape, poisons, atol, rtol, group
                )
            except Exception as exc:  # one path failing must not hide the others
                errors[group] = _repro.exc_reason(exc)
                cell.metric(f"{group}.raised", 1)
                # The one-line reason cuts a JIT build log short; the whole exception goes
                # to stderr, whose tail the harness keeps with the result.
                traceback.print_exc(file=sys.stderr)
    status, reason = oob_verdict(groups, errors, max_frac)
    if skipped:
        reason += "; skipped " + "; ".join(skipped)
    return status, reason


def _run_group(
    cell: _repro.Recorder,
    fi: Any,
    torch: Any,
    device: Any,
    dtype: Any,
    path: str,
    shape: Mapping[str, Any],
    poisons: Sequence[str],
    atol: float,
    rtol: float,
    group: str,
) -> dict[str, dict[str, Any]]:
    p = cell.params
    bsz, kv_len, page, qo_len = (
        int(shape[k]) for k in ("batch_size", "kv_len", "page_size", "qo_len")
    )
    family, _, backend = path.partition(".")
    if family == "decode":
        qo_len = 1
    pages, used = last_page_slots(kv_len, page)
    qo_indptr = torch.arange(bsz + 1, dtype=torch.int32, device=device) * qo_len
    kv_indptr = torch.arange(bsz + 1, dtype=torch.int32, device=device) * pages
    kv_indices = torch.arange(bsz * pages, dtype=torch.int32, device=device)
    kv_lens = torch.full((bsz,), kv_len, dtype=torch.int32, device=device)
    last_len = torch.full((bsz,), used, dtype=torch.int32, device=device)
    workspace = torch.empty(int(p["workspace_mb"]) * 1024 * 1024, dtype=torch.uint8, device=device)
    cell.metric(f"{group}.unused_slots_per_request", page - used)
    lists = (qo_indptr.tolist(), kv_indptr.tolist(), kv_indices.tolist(), kv_lens.tolist())
    gen = torch.Generator(device=device).manual_seed(int(p["seed"]))
    out_cases: dict[str, dict[str, Any]] = {}
    if family == "mla":
        heads = int(p["mla_num_heads"])
        q_nope = torch.randn(
            (bsz * qo_len, heads, HEAD_DIM_CKV), generator=gen, device=device, dtype=dtype
        )
        q_pe = torch.randn(
            (bsz * qo_len, heads, HEAD_DIM_KPE), generator=gen, device=device, dtype=dtype
        )
        ckv0 = torch.randn(
            (bsz * pages, page, HEAD_DIM_CKV), generator=gen, device=device, dtype=dtype
        )
        kpe0 = torch.randn(
            (bsz * pages, page, HEAD_DIM_KPE), generator=gen, device=device, dtype=dtype
        )
        ref = mla_reference(q_nope, q_pe, ckv0, kpe0, *lists, sm_scale=MLA_SM_SCALE)
        runner = make_mla_runner(
            fi,
            backend,
            workspace,
            qo_indptr=qo_indptr,
            kv_indptr=kv_indptr,
            kv_indices=kv_indices,
            kv_lens=kv_lens,
            num_heads=heads,
            page_size=page,
            dtype=dtype,
        )
        for poison in poisons:
            ckv, kpe = ckv0.clone(), kpe0.clone()
            if poison != "clean":
                for cache in (ckv, kpe):
                    poison_last_pages(
                        cache,
                        batch_size=bsz,
                        kv_len=kv_len,
                        page_size=page,
                        value=POISON_VALUES[poison],
                        slot_dim=1,
                    )
            out = runner(q_nope, q_pe, ckv, kpe)
            torch.cuda.synchronize()
            out_cases[poison] = _repro.error_stats(out, ref, atol=atol, rtol=rtol)
    else:
        hqo, hkv, dim = int(p["num_qo_heads"]), int(p["num_kv_heads"]), int(p["head_dim"])
        q = torch.randn((bsz * qo_len, hqo, dim), generator=gen, device=device, dtype=dtype)
        kv0 = torch.randn(
            (bsz * pages, 2, page, hkv, dim), generator=gen, device=device, dtype=dtype
        )
        ref = paged_attention_reference(q, kv0, *lists, sm_scale=dim**-0.5)
        runner2 = make_paged_runner(
            fi,
            path,
            workspace,
            qo_indptr=qo_indptr,
            kv_indptr=kv_indptr,
            kv_indices=kv_indices,
            last_len=last_len,
            num_qo_heads=hqo,
            num_kv_heads=hkv,
            head_dim=dim,
            page_size=page,
            dtype=dtype,
        )
        for poison in poisons:
            kv = kv0.clone()
            if poison != "clean":
                poison_last_pages(
                    kv,
                    batch_size=bsz,
                    kv_len=kv_len,
                    page_size=page,
                    value=POISON_VALUES[poison],
                    slot_dim=2,
                )
            out = runner2(q, kv)
            torch.cuda.synchronize()
            out_cases[poison] = _repro.error_stats(out, ref, atol=atol, rtol=rtol)
    for poison, stats in out_cases.items():
        cell.metrics_from(f"{group}.{poison}", stats)
    return out_cases


if __name__ == "__main__":
    raise SystemExit(_repro.main(run, DEFAULT_PARAMS, description=__doc__))
