"""The float64 references of the repros against hand computations and plain loop versions."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# the repro scripts are standalone files, importable as the harness's PYTHONPATH makes them
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "repros"))

import fla_fused_chunk_scale as fla_repro
import flashinfer_decode_tensor_cores as decode_repro
import flashinfer_mla_oob_nan as oob_repro
import flashinfer_mla_sm89 as sm89_repro
import pytest
import torch

# ---------------------------------------------------------------------------------------
# linear attention (fla)


def test_linear_attention_reference_hand_computed() -> None:
    # B = H = 1, T = 2, D = 1: o_t = scale * sum_{s <= t} (q_t k_s) v_s
    q = torch.tensor([1.0, 2.0]).reshape(1, 1, 2, 1).requires_grad_()
    k = torch.tensor([3.0, 4.0]).reshape(1, 1, 2, 1).requires_grad_()
    v = torch.tensor([5.0, 6.0]).reshape(1, 1, 2, 1).requires_grad_()
    o = fla_repro.linear_attention_reference(q, k, v, 0.5)
    assert o.dtype == torch.float64
    # o0 = 0.5 * 1*3*5 = 7.5; o1 = 0.5 * (2*3*5 + 2*4*6) = 39
    assert o.flatten().tolist() == [7.5, 39.0]
    o.backward(torch.ones_like(o))
    # dv_s = scale * sum_{t >= s} q_t k_s: dv0 = 0.5*(1*3 + 2*3) = 4.5, dv1 = 0.5*2*4 = 4
    assert v.grad is not None
    assert v.grad.flatten().tolist() == [4.5, 4.0]
    # dq_t = scale * sum_{s <= t} k_s v_s: dq0 = 0.5*15 = 7.5, dq1 = 0.5*(15+24) = 19.5
    assert q.grad is not None
    assert q.grad.flatten().tolist() == [7.5, 19.5]
    # dk_s = scale * sum_{t >= s} q_t v_s: dk0 = 0.5*(1+2)*5 = 7.5, dk1 = 0.5*2*6 = 6
    assert k.grad is not None
    assert k.grad.flatten().tolist() == [7.5, 6.0]


def test_linear_attention_reference_matches_recurrent_form() -> None:
    gen = torch.Generator().manual_seed(0)
    b, h, t, d = 2, 3, 70, 4  # more than one 64-chunk
    q, k, v = (torch.randn(b, h, t, d, generator=gen) for _ in range(3))
    scale = 0.3
    got = fla_repro.linear_attention_reference(q, k, v, scale)
    state = torch.zeros(b, h, d, d, dtype=torch.float64)
    want = torch.empty(b, h, t, d, dtype=torch.float64)
    for i in range(t):
        state = state + k[:, :, i, :, None].double() * v[:, :, i, None, :].double()
        want[:, :, i] = scale * torch.einsum("bhk,bhkv->bhv", q[:, :, i].double(), state)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------
# paged attention (flashinfer decode / prefill)


def _paged_case(
    seed: int, hqo: int, hkv: int, dim: int, page: int, kv_lens: list[int], qo_lens: list[int]
) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(seed)
    pages_per = [math.ceil(n / page) for n in kv_lens]
    total = sum(pages_per) + 2  # two pages nobody uses
    perm = torch.randperm(total, generator=gen).tolist()
    kv_indptr = [0]
    for n in pages_per:
        kv_indptr.append(kv_indptr[-1] + n)
    kv_indices = perm[: kv_indptr[-1]]
    qo_indptr = [0]
    for n in qo_lens:
        qo_indptr.append(qo_indptr[-1] + n)
    q = torch.randn(qo_indptr[-1], hqo, dim, generator=gen, dtype=torch.float16)
    kv = torch.randn(total, 2, page, hkv, dim, generator=gen, dtype=torch.float16)
    # garbage in unused slots of each last page and in the unused pages must not matter
    for b, n in enumerate(kv_lens):
        last = kv_indices[kv_indptr[b + 1] - 1]
        kv[last, :, n - (pages_per[b] - 1) * page :] = float("nan")
    for unused in perm[kv_indptr[-1] :]:
        kv[unused] = float("inf")
    return {
        "q": q,
        "kv": kv,
        "qo_indptr": qo_indptr,
        "kv_indptr": kv_indptr,
        "kv_indices": kv_indices,
        "kv_lens": kv_lens,
    }


def _paged_loop(case: dict[str, Any], sm_scale: float, causal: bool) -> torch.Tensor:
    q, kv = case["q"].double(), case["kv"].double()
    page = kv.shape[2]
    hqo, hkv = q.shape[1], kv.shape[3]
    out = torch.zeros(q.shape[0], hqo, kv.shape[4], dtype=torch.float64)
    for b, length in enumerate(case["kv_lens"]):
        pages = case["kv_indices"][case["kv_indptr"][b] : case["kv_indptr"][b + 1]]
        q0, q1 = case["qo_indptr"][b], case["qo_indptr"][b + 1]
        for i in range(q1 - q0):
            for h in range(hqo):
                kvh = h // (hqo // hkv)
                allowed = range(length - (q1 - q0) + i + 1) if causal else range(length)
                logits = []
                for j in allowed:
                    key = kv[pages[j // page], 0, j % page, kvh]
                    logits.append(float((q[q0 + i, h] * key).sum()) * sm_scale)
                top = max(logits)
                weights = [math.exp(x - top) for x in logits]
                total = sum(weights)
                acc = torch.zeros(kv.shape[4], dtype=torch.float64)
                for w, j in zip(weights, allowed, strict=True):
                    acc += (w / total) * kv[pages[j // page], 1, j % page, kvh]
                out[q0 + i, h] = acc
    return out


PagedRef = Callable[..., Any]


@pytest.mark.parametrize(
    "reference",
    [decode_repro.paged_attention_reference, oob_repro.paged_attention_reference],
    ids=["decode_script", "oob_script"],
)
@pytest.mark.parametrize("causal", [False, True])
def test_paged_attention_reference_matches_loop(reference: PagedRef, causal: bool) -> None:
    case = _paged_case(1, hqo=4, hkv=2, dim=8, page=4, kv_lens=[5, 9, 3], qo_lens=[2, 3, 1])
    args = (case["qo_indptr"], case["kv_indptr"], case["kv_indices"], case["kv_lens"])
    got = reference(case["q"], case["kv"], *args, sm_scale=0.4, causal=causal)
    assert got.dtype == torch.float64
    assert not got.isnan().any()
    torch.testing.assert_close(got, _paged_loop(case, 0.4, causal), rtol=1e-10, atol=1e-10)


def test_paged_reference_causal_differs_from_full() -> None:
    case = _paged_case(2, hqo=2, hkv=1, dim=4, page=2, kv_lens=[5], qo_lens=[3])
    args = (case["qo_indptr"], case["kv_indptr"], case["kv_indices"], case["kv_lens"])
    full = decode_repro.paged_attention_reference(case["q"], case["kv"], *args, sm_scale=1.0)
    causal = decode_repro.paged_attention_reference(
        case["q"], case["kv"], *args, sm_scale=1.0, causal=True
    )
    # the last query sees everything either way; the first does not
    torch.testing.assert_close(full[2], causal[2])
    assert not torch.allclose(full[0], causal[0])


# ---------------------------------------------------------------------------------------
# MLA


def _mla_case(seed: int, heads: int, page: int, kv_lens: list[int], qo_len: int) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(seed)
    dc, dp = 6, 3
    pages_per = [math.ceil(n / page) for n in kv_lens]
    total = sum(pages_per)
    perm = torch.randperm(total, generator=gen).tolist()
    kv_indptr = [0]
    for n in pages_per:
        kv_indptr.append(kv_indptr[-1] + n)
    nq = qo_len * len(kv_lens)
    ckv = torch.randn(total, page, dc, generator=gen, dtype=torch.float16)
    kpe = torch.randn(total, page, dp, generator=gen, dtype=torch.float16)
    for b, n in enumerate(kv_lens):
        last = perm[kv_indptr[b + 1] - 1]
        used = n - (pages_per[b] - 1) * page
        ckv[last, used:] = float("nan")
        kpe[last, used:] = float("nan")
    return {
        "q_nope": torch.randn(nq, heads, dc, generator=gen, dtype=torch.float16),
        "q_pe": torch.randn(nq, heads, dp, generator=gen, dtype=torch.float16),
        "ckv": ckv,
        "kpe": kpe,
        "qo_indptr": [qo_len * b for b in range(len(kv_lens) + 1)],
        "kv_indptr": kv_indptr,
        "kv_indices": perm,
        "kv_lens": kv_lens,
    }


def _mla_loop(case: dict[str, Any], sm_scale: float, causal: bool) -> torch.Tensor:
    qn, qp = case["q_nope"].double(), case["q_pe"].double()
    ckv, kpe = case["ckv"].double(), case["kpe"].double()
    page = ckv.shape[1]
    out = torch.zeros(qn.shape[0], qn.shape[1], ckv.shape[2], dtype=torch.float64)
    for b, length in enumerate(case["kv_lens"]):
        pages = case["kv_indices"][case["kv_indptr"][b] : case["kv_indptr"][b + 1]]
        q0, q1 = case["qo_indptr"][b], case["qo_indptr"][b + 1]
        for i in range(q1 - q0):
            for h in range(qn.shape[1]):
                allowed = list(range(length - (q1 - q0) + i + 1) if causal else range(length))
                logits = [
                    sm_scale
                    * float(
                        (qn[q0 + i, h] * ckv[pages[j // page], j % page]).sum()
                        + (qp[q0 + i, h] * kpe[pages[j // page], j % page]).sum()
                    )
                    for j in allowed
                ]
                top = max(logits)
                weights = [math.exp(x - top) for x in logits]
                acc = torch.zeros(ckv.shape[2], dtype=torch.float64)
                for w, j in zip(weights, allowed, strict=True):
                    acc += w / sum(weights) * ckv[pages[j // page], j % page]
                out[q0 + i, h] = acc
    return out


@pytest.mark.parametrize(
    "reference",
    [sm89_repro.mla_reference, oob_repro.mla_reference],
    ids=["sm89_script", "oob_script"],
)
@pytest.mark.parametrize(("page", "causal"), [(1, False), (4, False), (4, True)])
def test_mla_reference_matches_loop(reference: PagedRef, page: int, causal: bool) -> None:
    case = _mla_case(3, heads=2, page=page, kv_lens=[7, 5], qo_len=2)
    got = reference(
        case["q_nope"],
        case["q_pe"],
        case["ckv"],
        case["kpe"],
        case["qo_indptr"],
        case["kv_indptr"],
        case["kv_indices"],
        case["kv_lens"],
        sm_scale=sm89_repro.SM_SCALE,
        causal=causal,
    )
    assert not got.isnan().any()
    torch.testing.assert_close(
        got, _mla_loop(case, sm89_repro.SM_SCALE, causal), rtol=1e-10, atol=1e-10
    )


def test_mla_reference_uses_kpe() -> None:
    case = _mla_case(4, heads=1, page=2, kv_lens=[4], qo_len=1)
    args = (case["qo_indptr"], case["kv_indptr"], case["kv_indices"], case["kv_lens"])
    base = sm89_repro.mla_reference(
        case["q_nope"], case["q_pe"], case["ckv"], case["kpe"], *args, sm_scale=1.0
    )
    kpe = case["kpe"].clone()
    kpe[case["kv_indices"][0], 0] += 3.0
    moved = sm89_repro.mla_reference(
        case["q_nope"], case["q_pe"], case["ckv"], kpe, *args, sm_scale=1.0
    )
    assert not torch.allclose(base, moved)
