"""flashinfer_mla_sm89: MLA paged attention wrong on GPUs with ~100 KB shared memory per SM.

Upstream: flashinfer-ai/flashinfer#949 (RTX 4090, bf16: 99.2% of elements mismatched, max
abs diff 1.97 vs tolerance 1e-3). Bad commit 27906fdbf (PR #942): in
``include/flashinfer/attention/mla.cuh`` ``load_kv``, the ``NUM_MMA_KV == 1`` branch adds
``lane_idx / 8`` twice and loads the wrong KV rows. Fixed by 30b2838e6 (PR #951). Good just
before: 061db556d. All three lie between releases 0.2.3 and 0.2.4, so only source builds
at those commits contain the bug.

Which GPUs can show it: ``NUM_MMA_KV = CTA_TILE_KV / 16`` and the MLA launcher picks
``CTA_TILE_KV`` from cudaDevAttrMaxSharedMemoryPerMultiprocessor (``DISPATCH_SMEM_CONFIG``
in mla.cuh): >= 221696 B -> 64, >= 147968 B -> 32, >= 92672 B -> 16. Only the last
(SM86/SM89, 100 KB) takes the faulty branch; A100/H100/H200 do not, so there the correct
answer is "passed at every commit". The repro records ``gpu.shared_memory_per_sm`` and
``mla.num_mma_kv1_branch_reachable`` so a pass on SM90 is read for what it is.

Mirrors ``tests/attention/test_deepseek_mla.py::test_batch_mla_page_attention`` (fp16,
rtol = atol = 1e-3, head_dim_ckv 512, head_dim_kpe 64, sm_scale = 1/sqrt(128 + 64), q/ckv/kpe
~ randn, seed 42) for backends fa2 and fa3 (where SM90a and this flashinfer has it), fp16
and bf16, page sizes 1 and 16, against a float64 reference computed directly from the MLA
definition (the upstream test expands K/V per head in fp32; same maths).

API: ``flashinfer.mla.BatchMLAPagedAttentionWrapper(workspace, backend=...)`` (first in
0.2.1, where ``backend`` exists but only fa2 is implemented; fa3 from 0.2.2, detected by
``flashinfer.utils.determine_mla_backend``); ``plan(qo_indptr, kv_indptr, kv_indices,
kv_len_arr, num_heads, head_dim_ckv, head_dim_kpe, page_size, causal, sm_scale,
q_data_type, kv_data_type)``; ``run(q_nope, q_pe, ckv_cache, kpe_cache)``.

Tolerances: fp16 atol = rtol = 1e-3 (upstream). bf16 atol = rtol = 1e-2: bf16 keeps 8
mantissa bits against fp16's 11, so the output rounding and the rounding of P before the
P.V MMA are 8x coarser (unit roundoff 3.9e-3 vs 4.9e-4); 8 x 1e-3 rounded up. The bug's
error (1.97 abs, 99% of elements) is two orders of magnitude above either.

Verdict: a case fails when its output has NaN/inf or more than ``max_mismatch_frac`` of its
elements violate |o - ref| <= atol + rtol * |ref|. The upstream test demands zero
mismatches against an fp32 reference rounded to the output dtype; we compare with an
unrounded float64 reference, so we allow 0.1% for isolated rounding-boundary elements (the
bug mismatches ~99%). regressed if any case fails; error if a case raised; else passed.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _repro

NAME = "flashinfer_mla_sm89"

# where tensors live; the unit tests point it at "cpu" to drive the whole run with fakes
DEVICE = "cuda"

DEFAULT_PARAMS: dict[str, Any] = {
    "seed": 42,
    "batch_size": 7,
    "kv_len": 514,  # not a multiple of 16: the last page is partial
    "qo_len": 7,
    "num_heads": 16,
    "causal": False,
    "page_sizes": [1, 16],
    "dtypes": ["float16", "bfloat16"],
    "backends": ["fa2", "fa3"],
    "atol_float16": 1e-3,
    "rtol_float16": 1e-3,
    "atol_bfloat16": 1e-2,
    "rtol_bfloat16": 1e-2,
    "max_mismatch_frac": 1e-3,
    "workspace_mb": 128,
}

HEAD_DIM_CKV = 512
HEAD_DIM_KPE = 64
SM_SCALE = 1.0 / ((128 + 64) ** 0.5)  # head dim before matrix absorption, as upstream

# shared memory per SM by compute capability, for torch builds whose device properties
# lack it (values of cudaDevAttrMaxSharedMemoryPerMultiprocessor)
_SMEM_BY_CC = {(8, 0): 167936, (8, 6): 102400, (8, 7): 167936, (8, 9): 102400, (9, 0): 233472}


def run(params: Mapping[str, Any]) -> dict[str, Any]:
    return _repro.execute(NAME, DEFAULT_PARAMS, params, _body, libraries=("torch", "flashinfer"))


# ---------------------------------------------------------------------------------------
# reference


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
    """Float64 MLA attention over paged ``ckv [pages, page, Dc]`` and ``kpe [pages, page, Dp]``.

    logits[h, i, j] = (q_nope[i, h] . ckv[j] + q_pe[i, h] . kpe[j]) * sm_scale over the
    first ``kv_lens[b]`` slots; output = softmax(logits) @ ckv. Unused slots of the last
    page never enter. Causal masking aligns the queries to the end of the KV sequence.
    """
    import torch

    total_q, heads, dc = q_nope.shape
    out = torch.zeros((total_q, heads, dc), dtype=torch.float64, device=q_nope.device)
    for b in range(len(kv_lens)):
        q0, q1 = int(qo_indptr[b]), int(qo_indptr[b + 1])
        length = int(kv_lens[b])
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
            n_q = q1 - q0
            rows = torch.arange(n_q, device=q_nope.device)[:, None] + (length - n_q)
            cols = torch.arange(length, device=q_nope.device)[None, :]
            logits = logits.masked_fill(cols > rows, float("-inf"))
        out[q0:q1] = torch.einsum("hij,jd->ihd", logits.softmax(dim=-1), c)
    return out


# ---------------------------------------------------------------------------------------
# adapters


def mla_wrapper_class(fi: Any) -> Any:
    mla = getattr(fi, "mla", None)
    cls = getattr(mla, "BatchMLAPagedAttentionWrapper", None) or getattr(
        fi, "BatchMLAPagedAttentionWrapper", None
    )
    if cls is None:
        version = getattr(fi, "__version__", "?")
        raise _repro.Untestable(f"MLA wrapper absent (flashinfer {version} < 0.2.1)")
    return cls


def mla_backend_unsupported(fi: Any, torch: Any, backend: str) -> str | None:
    """Why ``backend`` cannot run here, or None when it can."""
    if backend == "fa2":
        return None
    if backend != "fa3":
        return f"unknown MLA backend {backend!r}"
    utils = getattr(fi, "utils", None)
    if not hasattr(utils, "determine_mla_backend"):
        return f"MLA fa3 backend absent (flashinfer {getattr(fi, '__version__', '?')} < 0.2.2)"
    major, minor = torch.cuda.get_device_capability()
    if major != 9:
        return f"fa3 needs SM90a, this GPU is SM{major}{minor}"
    is_sm90a = getattr(utils, "is_sm90a_supported", None)
    if callable(is_sm90a) and not is_sm90a(torch.device("cuda")):
        return f"fa3 needs SM90a with CUDA >= 12.3 (torch built with CUDA {torch.version.cuda})"
    return None


def make_mla_wrapper(cls: Any, workspace: Any, backend: str) -> Any:
    params = inspect.signature(cls.__init__).parameters
    if "backend" in params:
        return cls(workspace, backend=backend)
    if backend != "fa2":
        raise _repro.Untestable(
            f"BatchMLAPagedAttentionWrapper has no backend argument; cannot run {backend}"
        )
    return cls(workspace)


def mla_plan_run(
    wrapper: Any,
    *,
    qo_indptr: Any,
    kv_indptr: Any,
    kv_indices: Any,
    kv_lens: Any,
    num_heads: int,
    page_size: int,
    causal: bool,
    sm_scale: float,
    dtype: Any,
    q_nope: Any,
    q_pe: Any,
    ckv: Any,
    kpe: Any,
) -> Any:
    wrapper.plan(
        qo_indptr,
        kv_indptr,
        kv_indices,
        kv_lens,
        num_heads,
        HEAD_DIM_CKV,
        HEAD_DIM_KPE,
        page_size,
        causal,
        sm_scale,
        dtype,
        dtype,
    )
    out = wrapper.run(q_nope, q_pe, ckv, kpe)
    return out[0] if isinstance(out, tuple) else out


# ---------------------------------------------------------------------------------------
# verdict (pure)


def case_failed(stats: Mapping[str, Any], max_mismatch_frac: float) -> bool:
    nonfinite = int(stats.get("nan") or 0) + int(stats.get("inf") or 0)
    frac = stats.get("mismatch_frac")
    return nonfinite > 0 or frac is None or float(frac) > max_mismatch_frac


def cases_verdict(
    results: Mapping[str, Mapping[str, Any]],
    errors: Mapping[str, str],
    max_mismatch_frac: float,
    note: str,
) -> _repro.StatusReason:
    failed = [name for name, st in results.items() if case_failed(st, max_mismatch_frac)]
    if failed:
        worst = max(failed, key=lambda n: float(results[n].get("mismatch_frac") or 1.0))
        st = results[worst]
        return _repro.REGRESSED, (
            f"{len(failed)}/{len(results)} cases wrong, worst {worst}: "
            f"{100 * float(st.get('mismatch_frac') or 1.0):.1f}% mismatched, "
            f"max abs {st.get('max_abs')}, "
            f"nan {st.get('nan')}; {note}"
        )
    if errors:
        name, msg = next(iter(errors.items()))
        return _repro.ERROR, f"{len(errors)} cases raised, first {name}: {msg}; {note}"
    if not results:
        return _repro.UNTESTABLE, f"no case could run here; {note}"
    worst_abs = max((float(st.get("max_abs") or 0.0) for st in results.values()), default=0.0)
    return (
        _repro.PASSED,
        f"all {len(results)} cases within tolerance (max abs {worst_abs:.3g}); {note}",
    )


def smem_facts(props: Any, capability: tuple[int, int]) -> tuple[int | None, bool]:
    """(shared memory per SM, whether it came from the device properties)."""
    value = _repro.shared_memory_per_sm(props)
    if value is not None:
        return value, True
    return _SMEM_BY_CC.get(capability), False


def cta_tile_kv(smem_per_sm: int | None) -> int | None:
    """CTA_TILE_KV the MLA launcher picks (DISPATCH_SMEM_CONFIG in mla.cuh at 30b2838e6)."""
    if smem_per_sm is None:
        return None
    if smem_per_sm >= 221696:
        return 64
    if smem_per_sm >= 147968:
        return 32
    if smem_per_sm >= 92672:
        return 16
    return None


# ---------------------------------------------------------------------------------------
# the run


def _body(cell: _repro.Recorder) -> _repro.StatusReason:  # noqa: PLR0915 -- the experiment, read top to bottom
    p = cell.params
    torch = _repro.import_or_untestable("torch")
    if not _repro.has_module("flashinfer"):
        raise _repro.not_importable("flashinfer")
    _repro.require_cuda(torch)
    fi = _repro.import_or_untestable("flashinfer")
    cls = mla_wrapper_class(fi)
    device = torch.device(DEVICE)

    props = torch.cuda.get_device_properties(0)
    capability = (int(props.major), int(props.minor))
    smem, from_props = smem_facts(props, capability)
    tile = cta_tile_kv(smem)
    cell.metric("gpu.shared_memory_per_sm", smem)
    cell.metric("gpu.shared_memory_per_sm_from_props", int(from_props))
    cell.metric("mla.cta_tile_kv_expected", tile)
    cell.metric("mla.num_mma_kv1_branch_reachable", None if tile is None else int(tile == 16))
    note = (
        f"SM{capability[0]}{capability[1]} with {smem} B shared memory/SM -> CTA_TILE_KV {tile}: "
        + (
            "the NUM_MMA_KV==1 branch of #949 is reachable"
            if tile == 16
            else "the NUM_MMA_KV==1 branch of #949 is NOT reachable here"
        )
    )

    max_frac = cell.threshold("max_mismatch_frac", float(p["max_mismatch_frac"]))
    bsz, kv_len, qo_len, heads = (
        int(p["batch_size"]),
        int(p["kv_len"]),
        int(p["qo_len"]),
        int(p["num_heads"]),
    )
    causal = bool(p["causal"])
    qo_indptr = torch.arange(bsz + 1, dtype=torch.int32, device=device) * qo_len
    kv_lens = torch.full((bsz,), kv_len, dtype=torch.int32, device=device)

    results: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    skipped: list[str] = []
    for backend in p["backends"]:
        why = mla_backend_unsupported(fi, torch, str(backend))
        if why is not None:
            skipped.append(f"{backend}: {why}")
            cell.metric(f"mla.{backend}.supported", 0)
            continue
        cell.metric(f"mla.{backend}.supported", 1)
        workspace = torch.empty(
            int(p["workspace_mb"]) * 1024 * 1024, dtype=torch.uint8, device=device
        )
        wrapper = make_mla_wrapper(cls, workspace, str(backend))
        for dtype_name in p["dtypes"]:
            dtype = getattr(torch, str(dtype_name))
            atol = cell.threshold(f"atol.{dtype_name}", float(p[f"atol_{dtype_name}"]))
            rtol = cell.threshold(f"rtol.{dtype_name}", float(p[f"rtol_{dtype_name}"]))
            for page_param in p["page_sizes"]:
                page = int(page_param)
                name = f"{backend}.{dtype_name}.page{page}"
                pages_num = (kv_len + page - 1) // page
                gen = torch.Generator(device=device).manual_seed(int(p["seed"]))
                q_nope = torch.randn(
                    (bsz * qo_len, heads, HEAD_DIM_CKV), generator=gen, device=device, dtype=dtype
                )
                q_pe = torch.randn(
                    (bsz * qo_len, heads, HEAD_DIM_KPE), generator=gen, device=device, dtype=dtype
                )
                ckv = torch.randn(
                    (bsz * pages_num, page, HEAD_DIM_CKV), generator=gen, device=device, dtype=dtype
                )
                kpe = torch.randn(
                    (bsz * pages_num, page, HEAD_DIM_KPE), generator=gen, device=device, dtype=dtype
                )
                kv_indptr = torch.arange(bsz + 1, dtype=torch.int32, device=device) * pages_num
                kv_indices = torch.arange(bsz * pages_num, dtype=torch.int32, device=device)
                try:
                    out = mla_plan_run(
                        wrapper,
                        qo_indptr=qo_indptr,
                        kv_indptr=kv_indptr,
                        kv_indices=kv_indices,
                        kv_lens=kv_lens,
                        num_heads=heads,
                        page_size=page,
                        causal=causal,
                        sm_scale=SM_SCALE,
                        dtype=dtype,
                        q_nope=q_nope,
                        q_pe=q_pe,
                        ckv=ckv,
                        kpe=kpe,
                    )
                    torch.cuda.synchronize()
                except Exception as exc:  # one case failing must not hide the others
                    errors[name] = _repro.exc_reason(exc)
                    cell.metric(f"mla.{name}.raised", 1)
                    continue
                ref = mla_reference(
                    q_nope,
                    q_pe,
                    ckv,
                    kpe,
                    qo_indptr.tolist(),
                    kv_indptr.tolist(),
                    kv_indices.tolist(),
                    kv_lens.tolist(),
                    sm_scale=SM_SCALE,
                    causal=causal,
                )
                stats = _repro.error_stats(out, ref, atol=atol, rtol=rtol)
                results[name] = stats
                cell.metrics_from(f"mla.{name}", stats)
    if skipped:
        note += "; skipped " + "; ".join(skipped)
    return cases_verdict(results, errors, max_frac, note)


if __name__ == "__main__":
    raise SystemExit(_repro.main(run, DEFAULT_PARAMS, description=__doc__))
