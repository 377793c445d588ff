"""The GPU repros' whole run() on CPU, with fake libraries standing in for the real ones.

No GPU exists here, so the bodies of the flashinfer and fla repros are driven end to end
with fakes that have the upstream signatures (flashinfer v0.5.3 wrappers, fla 85992884
functions) and compute the right answer from the repro's own float64 reference, or a
deliberately wrong one shaped like each upstream bug. This checks the plumbing (shapes,
page tables, poison, metrics, verdicts); the kernels themselves only run on the GPU host.
"""

from __future__ import annotations

import importlib.machinery
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# the repro scripts are standalone files, importable as the harness's PYTHONPATH makes them
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "repros"))

import _repro
import fla_fused_chunk_scale as fla_repro
import flashinfer_decode_tensor_cores as decode_repro
import flashinfer_mla_oob_nan as oob_repro
import flashinfer_mla_sm89 as sm89_repro
import pytest
import torch

# ---------------------------------------------------------------------------------------
# a fake flashinfer (v0.5.3 signatures)


class Mode:
    decode_tc_error = 0.0  # added to the tensor-core decode output
    leak = False  # MLA loads the unused slots of the last page (0.2.2-0.2.3, #941)
    wrong_rows = False  # MLA reads shifted KV rows (27906fdbf on SM89, #949)


def _kv_lens(indptr: list[int], last: list[int], page: int) -> list[int]:
    return [(indptr[b + 1] - indptr[b] - 1) * page + last[b] for b in range(len(last))]


def _leak_term(
    cache: Any, indptr: list[int], indices: list[int], lens: list[int], page: int
) -> Any:
    """0 x (sum of the unused slots): NaN exactly when a NaN/inf sits there, as in #941."""
    total = torch.zeros((), dtype=torch.float64)
    for b, n in enumerate(lens):
        last = indices[indptr[b + 1] - 1]
        used = n - (indptr[b + 1] - indptr[b] - 1) * page
        total = total + cache[last, used:].double().sum()  # MLA cache: [pages, page, D]
    return 0.0 * total


class FakeDecode:
    def __init__(
        self,
        float_workspace_buffer: Any,
        kv_layout: str = "NHD",
        use_cuda_graph: bool = False,
        use_tensor_cores: bool = False,
        paged_kv_indptr_buffer: Any = None,
        paged_kv_indices_buffer: Any = None,
        paged_kv_last_page_len_buffer: Any = None,
        backend: str = "auto",
        jit_args: Any = None,
    ) -> None:
        assert kv_layout == "NHD"
        assert backend == "fa2"
        self.tc = use_tensor_cores

    def plan(
        self,
        indptr: Any,
        indices: Any,
        last_page_len: Any,
        num_qo_heads: int,
        num_kv_heads: int,
        head_dim: int,
        page_size: int,
        pos_encoding_mode: str = "NONE",
        window_left: int = -1,
        logits_soft_cap: Any = None,
        q_data_type: Any = "float16",
        kv_data_type: Any = None,
        data_type: Any = None,
    ) -> None:
        assert q_data_type == kv_data_type
        self.indptr, self.indices = indptr.tolist(), indices.tolist()
        self.lens = _kv_lens(self.indptr, last_page_len.tolist(), page_size)
        self.dim = head_dim

    def run(self, q: Any, paged_kv_cache: Any, *, return_lse: bool = False) -> Any:
        qo = list(range(q.shape[0] + 1))
        out = oob_repro.paged_attention_reference(
            q, paged_kv_cache, qo, self.indptr, self.indices, self.lens, sm_scale=self.dim**-0.5
        )
        if self.tc:
            out = out + Mode.decode_tc_error
        return out.to(q.dtype)


class FakePrefill:
    def __init__(
        self, float_workspace_buffer: Any, kv_layout: str = "NHD", backend: str = "auto"
    ) -> None:
        assert backend in ("fa2", "fa3")

    def plan(
        self,
        qo_indptr: Any,
        paged_kv_indptr: Any,
        paged_kv_indices: Any,
        paged_kv_last_page_len: Any,
        num_qo_heads: int,
        num_kv_heads: int,
        head_dim_qk: int,
        page_size: int,
        head_dim_vo: Any = None,
        causal: bool = False,
        q_data_type: Any = "float16",
        kv_data_type: Any = None,
    ) -> None:
        assert causal is False
        self.qo = qo_indptr.tolist()
        self.indptr, self.indices = paged_kv_indptr.tolist(), paged_kv_indices.tolist()
        self.lens = _kv_lens(self.indptr, paged_kv_last_page_len.tolist(), page_size)
        self.dim = head_dim_qk

    def run(self, q: Any, paged_kv_cache: Any) -> Any:
        out = oob_repro.paged_attention_reference(
            q,
            paged_kv_cache,
            self.qo,
            self.indptr,
            self.indices,
            self.lens,
            sm_scale=self.dim**-0.5,
        )
        return out.to(q.dtype)


class FakeMla:
    def __init__(
        self,
        float_workspace_buffer: Any,
        use_cuda_graph: bool = False,
        qo_indptr: Any = None,
        kv_indptr: Any = None,
        kv_indices: Any = None,
        kv_len_arr: Any = None,
        backend: str = "auto",
    ) -> None:
        assert backend in ("fa2", "fa3")

    def plan(
        self,
        qo_indptr: Any,
        kv_indptr: Any,
        kv_indices: Any,
        kv_len_arr: Any,
        num_heads: int,
        head_dim_ckv: int,
        head_dim_kpe: int,
        page_size: int,
        causal: bool,
        sm_scale: float,
        q_data_type: Any,
        kv_data_type: Any,
        use_profiler: bool = False,
    ) -> None:
        assert (head_dim_ckv, head_dim_kpe) == (512, 64)
        assert q_data_type == kv_data_type
        self.args = (
            qo_indptr.tolist(),
            kv_indptr.tolist(),
            kv_indices.tolist(),
            kv_len_arr.tolist(),
        )
        self.page, self.causal, self.scale = page_size, causal, sm_scale

    def run(
        self, q_nope: Any, q_pe: Any, ckv_cache: Any, kpe_cache: Any, return_lse: bool = False
    ) -> Any:
        ckv = ckv_cache.roll(1, dims=1) if Mode.wrong_rows else ckv_cache
        out = sm89_repro.mla_reference(
            q_nope, q_pe, ckv, kpe_cache, *self.args, sm_scale=self.scale, causal=self.causal
        )
        if Mode.leak:
            _, indptr, indices, lens = self.args
            out = out + _leak_term(ckv_cache, indptr, indices, lens, self.page)
        return out.to(q_nope.dtype)


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    """Fake flashinfer in sys.modules, tensors on CPU, CUDA calls stubbed."""
    fi = types.ModuleType("flashinfer")
    fi.__spec__ = importlib.machinery.ModuleSpec("flashinfer", None)
    fi.__version__ = "0.5.3"  # type: ignore[attr-defined]
    fi.BatchDecodeWithPagedKVCacheWrapper = FakeDecode  # type: ignore[attr-defined]
    fi.BatchPrefillWithPagedKVCacheWrapper = FakePrefill  # type: ignore[attr-defined]
    fi.mla = types.SimpleNamespace(BatchMLAPagedAttentionWrapper=FakeMla)  # type: ignore[attr-defined]
    fi.utils = types.SimpleNamespace(  # type: ignore[attr-defined]
        determine_mla_backend=lambda device: "fa3", is_sm90a_supported=lambda device: True
    )
    monkeypatch.setitem(sys.modules, "flashinfer", fi)
    monkeypatch.setattr(_repro, "require_cuda", lambda torch_mod: None)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    props = types.SimpleNamespace(major=9, minor=0, shared_memory_per_multiprocessor=233472)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: props)
    monkeypatch.setattr(
        _repro,
        "cuda_time_ms",
        lambda fn, **kw: (fn(), {"median_ms": 1.0, "min_ms": 1.0, "mean_ms": 1.0})[1],
    )
    for module in (decode_repro, sm89_repro, oob_repro, fla_repro):
        monkeypatch.setattr(module, "DEVICE", "cpu")
    monkeypatch.setattr(Mode, "decode_tc_error", 0.0)
    monkeypatch.setattr(Mode, "leak", False)
    monkeypatch.setattr(Mode, "wrong_rows", False)
    return fi


# ---------------------------------------------------------------------------------------
# decode


DECODE_SMALL = {
    "batch_size": 3,
    "kv_len": 37,
    "num_qo_heads": 4,
    "num_kv_heads": 2,
    "head_dim": 16,
    "page_size": 4,
}


def test_decode_run_passes_with_matching_paths(fake_gpu: types.ModuleType) -> None:
    result = decode_repro.run(DECODE_SMALL)
    assert result["status"] == "passed", result["reason"]
    m = result["metrics"]
    assert m["randn_div10.tc_vs_plain.max_abs"] == 0.0
    assert m["randn.plain_vs_ref.nan"] == 0
    assert 0 < m["randn.plain_vs_ref.max_abs"] < 1e-2  # fp16 rounding of the output
    assert m["latency.plain.median_ms"] == 1.0
    assert m["total_pages"] == 3 * 10
    assert result["thresholds"] == {"atol": 1e-3, "rtol": 1e-3}


def test_decode_run_regresses_when_tc_costs_accuracy(
    fake_gpu: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Mode, "decode_tc_error", 5e-3)
    result = decode_repro.run(DECODE_SMALL)
    assert result["status"] == "regressed", result["reason"]
    assert result["reason"].startswith("randn_div10: tensor-core decode max abs err")
    assert result["metrics"]["randn_div10.tc_vs_plain.mismatch_frac"] > 0.5


# ---------------------------------------------------------------------------------------
# MLA sm89


SM89_SMALL = {"batch_size": 2, "kv_len": 21, "qo_len": 2, "num_heads": 2}


def test_mla_sm89_run_passes_on_sm90_and_says_branch_unreachable(
    fake_gpu: types.ModuleType,
) -> None:
    result = sm89_repro.run(SM89_SMALL)
    assert result["status"] == "passed", result["reason"]
    m = result["metrics"]
    assert m["gpu.shared_memory_per_sm"] == 233472
    assert m["mla.num_mma_kv1_branch_reachable"] == 0
    assert m["mla.cta_tile_kv_expected"] == 64
    for case in ("fa2.float16.page1", "fa3.bfloat16.page16"):
        assert m[f"mla.{case}.mismatch_frac"] == 0.0
        assert m[f"mla.{case}.numel"] == 2 * 2 * 2 * 512
    assert "NOT reachable" in result["reason"]
    assert result["thresholds"]["atol.bfloat16"] == 1e-2


def test_mla_sm89_run_regresses_on_wrong_rows(
    fake_gpu: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Mode, "wrong_rows", True)
    props = types.SimpleNamespace(major=8, minor=9, shared_memory_per_multiprocessor=102400)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: props)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 9))
    result = sm89_repro.run(SM89_SMALL)
    assert result["status"] == "regressed", result["reason"]
    assert result["metrics"]["mla.num_mma_kv1_branch_reachable"] == 1
    assert result["metrics"]["mla.fa3.supported"] == 0
    assert "fa3: fa3 needs SM90a, this GPU is SM89" in result["reason"]
    assert result["metrics"]["mla.fa2.float16.page16.mismatch_frac"] > 0.5


# ---------------------------------------------------------------------------------------
# MLA OOB NaN


OOB_SMALL = {
    "shapes": {"small": {"batch_size": 3, "kv_len": 13, "page_size": 4, "qo_len": 1}},
    "num_qo_heads": 4,
    "num_kv_heads": 2,
    "head_dim": 16,
    "mla_num_heads": 2,
}


def test_oob_run_passes_when_no_path_leaks(fake_gpu: types.ModuleType) -> None:
    result = oob_repro.run(OOB_SMALL)
    assert result["status"] == "passed", result["reason"]
    m = result["metrics"]
    for path in ("mla.fa2", "mla.fa3", "decode", "decode.tc", "prefill.fa2", "prefill.fa3"):
        assert m[f"{path}.supported"] == 1
        for poison in ("clean", "nan", "inf"):
            assert m[f"{path}.small.{poison}.nan"] == 0
            assert m[f"{path}.small.{poison}.mismatch_frac"] == 0.0
        assert m[f"{path}.small.unused_slots_per_request"] == 3


def test_oob_run_regresses_on_the_941_leak(
    fake_gpu: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Mode, "leak", True)
    result = oob_repro.run(OOB_SMALL)
    assert result["status"] == "regressed", result["reason"]
    m = result["metrics"]
    # as measured on 0.2.3: every output element NaN while the clean control is right
    assert m["mla.fa2.small.nan.nan"] == m["mla.fa2.small.nan.numel"] == 3 * 1 * 2 * 512
    assert m["mla.fa2.small.clean.nan"] == 0
    assert m["mla.fa3.small.inf.nan"] == 3 * 2 * 512
    assert m["decode.small.nan.nan"] == 0  # the non-MLA wrappers never leaked
    assert "mla.fa2.small.nan (3072/3072 NaN" in result["reason"]


# ---------------------------------------------------------------------------------------
# fla, through a fake package on disk imported without its __init__


FLA_CHUNK = """
import torch
from fla.utils import contiguous


class _LinearAttn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, scale, dv_factor):
        ctx.save_for_backward(q, k, v)
        ctx.scale, ctx.dv_factor = scale, dv_factor
        t = q.shape[-2]
        mask = torch.ones(t, t, dtype=torch.bool).tril()
        return ((q * scale) @ k.transpose(-1, -2)).masked_fill(~mask, 0) @ v

    @staticmethod
    def backward(ctx, do):
        q, k, v = ctx.saved_tensors
        t = q.shape[-2]
        mask = torch.ones(t, t, dtype=torch.bool).tril()
        s = ((q * ctx.scale) @ k.transpose(-1, -2)).masked_fill(~mask, 0)
        ds = (do @ v.transpose(-1, -2)).masked_fill(~mask, 0) * ctx.scale
        dv = s.transpose(-1, -2) @ do * ctx.dv_factor
        return ds @ k, ds.transpose(-1, -2) @ q, dv, None, None


def chunk_linear_attn(q, k, v, scale=None, initial_state=None, output_final_state=False,
                      normalize=True):
    assert not normalize
    return _LinearAttn.apply(q, k, v, scale, 1.0), None
"""

FLA_FUSED = """
from .chunk import _LinearAttn
BUGGY = {buggy}


def fused_chunk_linear_attn(q, k, v, scale=None, initial_state=None, output_final_state=False,
                            normalize=True):
    assert not normalize
    # the #47 bug: dv computed with an unscaled q once T spans two or more chunks
    factor = 1.0 / scale if BUGGY and q.shape[-2] > 64 else 1.0
    return _LinearAttn.apply(q, k, v, scale, factor), None
"""


def _fake_fla(root: Path, buggy: bool) -> Path:
    files = {
        "fla/__init__.py": "raise RuntimeError('would import models')\n",
        "fla/utils.py": "def contiguous(fn):\n    return fn\n",
        "fla/ops/__init__.py": "raise RuntimeError('would import every op')\n",
        "fla/ops/linear_attn/__init__.py": (
            "from .chunk import chunk_linear_attn\n"
            "from .chunk_fuse import fused_chunk_linear_attn\n"
        ),
        "fla/ops/linear_attn/chunk.py": FLA_CHUNK,
        "fla/ops/linear_attn/chunk_fuse.py": FLA_FUSED.format(buggy=buggy),
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.fixture
def fla_env(fake_gpu: types.ModuleType, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in [m for m in sys.modules if m == "fla" or m.startswith("fla.")]:
        monkeypatch.delitem(sys.modules, name)
    yield
    for name in [m for m in sys.modules if m == "fla" or m.startswith("fla.")]:
        del sys.modules[name]


FLA_SMALL = {"B": 1, "T": 130, "H": 2, "D": 16, "scales": [0.25, 1.0], "timing_iters": 1}


@pytest.mark.parametrize(("buggy", "status"), [(False, "passed"), (True, "regressed")])
def test_fla_run(
    fla_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, buggy: bool, status: str
) -> None:
    monkeypatch.syspath_prepend(str(_fake_fla(tmp_path / f"site{buggy}", buggy)))
    result = fla_repro.run(FLA_SMALL)
    assert result["status"] == status, result["reason"]
    m = result["metrics"]
    assert m["api.fused_chunk.has_scale"] == 1
    assert m["api.fused_chunk.time_first_layout"] == 0
    assert m["rel_err.s1.fused_chunk.dv"] < 1e-5  # scale 1 is right even with the bug
    for t in ("o", "dq", "dk", "dv"):
        assert m[f"rel_err.s0p25.chunk.{t}"] < 1e-5
        assert m[f"nan.s0p25.fused_chunk.{t}"] == 0
    assert "latency.fused_chunk.fwd_bwd_median_ms" in m
    if buggy:
        assert m["rel_err.s0p25.fused_chunk.dv"] > 1.0
        assert m["rel_err.s0p25.fused_chunk.dq"] < 1e-5
        assert "scale 0.25: fused_chunk dv=" in result["reason"]
    else:
        assert m["rel_err.s0p25.fused_chunk.dv"] < 1e-5
