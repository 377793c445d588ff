"""API-drift adapters of the GPU repros, driven with fakes shaped like the real signatures.

The fake signatures copy the parameter lists of the upstream sources at the versions named
in each test (flashinfer v0.1.5, v0.2.3, v0.5.3; fla 7336d0cf, 3f1f080f, v0.1.0, v0.5.2).
"""

from __future__ import annotations

import sys
import types
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
# flashinfer decode


class Recorder:
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]]

    def __init__(self) -> None:
        self.calls = []

    def note(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append((name, args, kwargs))


LOG = Recorder()


class DecodeV015:
    """flashinfer 0.1.5: begin_forward/forward, data_type."""

    def __init__(
        self,
        float_workspace_buffer: Any,
        kv_layout: str = "NHD",
        use_cuda_graph: bool = False,
        use_tensor_cores: bool = False,
        paged_kv_indptr_buffer: Any = None,
        paged_kv_indices_buffer: Any = None,
        paged_kv_last_page_len_buffer: Any = None,
    ) -> None:
        LOG.note("init", kv_layout, use_tensor_cores=use_tensor_cores)

    def begin_forward(
        self,
        indptr: Any,
        indices: Any,
        last_page_len: Any,
        num_qo_heads: int,
        num_kv_heads: int,
        head_dim: int,
        page_size: int,
        pos_encoding_mode: str = "NONE",
        logits_soft_cap: Any = None,
        data_type: Any = "float16",
        q_data_type: Any = None,
    ) -> None:
        LOG.note(
            "begin_forward", num_qo_heads, page_size, data_type=data_type, q_data_type=q_data_type
        )

    def forward(self, q: Any, paged_kv_cache: Any, pos_encoding_mode: str = "NONE") -> Any:
        LOG.note("forward")
        return q * 2


class DecodeV023:
    """flashinfer 0.2.3: plan/run with q_data_type and kv_data_type, no backend."""

    def __init__(
        self,
        float_workspace_buffer: Any,
        kv_layout: str = "NHD",
        use_cuda_graph: bool = False,
        use_tensor_cores: bool = False,
        paged_kv_indptr_buffer: Any = None,
        paged_kv_indices_buffer: Any = None,
        paged_kv_last_page_len_buffer: Any = None,
        jit_args: Any = None,
    ) -> None:
        LOG.note("init", kv_layout, use_tensor_cores=use_tensor_cores)

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
        LOG.note(
            "plan",
            num_qo_heads,
            page_size,
            q_data_type=q_data_type,
            kv_data_type=kv_data_type,
            data_type=data_type,
        )

    def run(self, q: Any, paged_kv_cache: Any, *, return_lse: bool = False) -> Any:
        LOG.note("run")
        return (q * 3, None) if return_lse else q * 3

    begin_forward = plan  # the real 0.2.x keeps the old names as aliases


class DecodeV053(DecodeV023):
    """flashinfer 0.5.3: backend= in the constructor."""

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
        LOG.note("init", kv_layout, use_tensor_cores=use_tensor_cores, backend=backend)


def _plan(wrapper: Any) -> Any:
    return decode_repro.plan_decode(
        wrapper,
        "indptr",
        "indices",
        "last",
        num_qo_heads=32,
        num_kv_heads=8,
        head_dim=128,
        page_size=16,
        dtype=torch.bfloat16,
    )


def test_decode_adapter_old_api_uses_begin_forward_and_data_type() -> None:
    LOG.calls.clear()
    fi = types.SimpleNamespace(BatchDecodeWithPagedKVCacheWrapper=DecodeV015)
    wrapper = decode_repro.make_decode_wrapper(fi, "ws", use_tensor_cores=True, backend="fa2")
    run = _plan(wrapper)
    assert run(torch.ones(2), None).tolist() == [2.0, 2.0]
    assert LOG.calls == [
        ("init", ("NHD",), {"use_tensor_cores": True}),  # no backend: the signature lacks it
        ("begin_forward", (32, 16), {"data_type": torch.bfloat16, "q_data_type": torch.bfloat16}),
        ("forward", (), {}),
    ]


def test_decode_adapter_plan_run_api_passes_kv_data_type() -> None:
    LOG.calls.clear()
    fi = types.SimpleNamespace(BatchDecodeWithPagedKVCacheWrapper=DecodeV023)
    wrapper = decode_repro.make_decode_wrapper(fi, "ws", use_tensor_cores=False, backend="fa2")
    run = _plan(wrapper)
    assert run(torch.ones(1), None).tolist() == [3.0]
    assert LOG.calls[0] == ("init", ("NHD",), {"use_tensor_cores": False})
    assert LOG.calls[1] == (
        "plan",
        (32, 16),
        {"q_data_type": torch.bfloat16, "kv_data_type": torch.bfloat16, "data_type": None},
    )
    assert LOG.calls[2] == ("run", (), {})


def test_decode_adapter_passes_backend_where_it_exists() -> None:
    LOG.calls.clear()
    fi = types.SimpleNamespace(BatchDecodeWithPagedKVCacheWrapper=DecodeV053)
    decode_repro.make_decode_wrapper(fi, "ws", use_tensor_cores=True, backend="fa2")
    assert LOG.calls == [("init", ("NHD",), {"use_tensor_cores": True, "backend": "fa2"})]


def test_decode_adapter_without_use_tensor_cores_is_untestable() -> None:
    class Ancient:
        def __init__(self, float_workspace_buffer: Any, kv_layout: str = "NHD") -> None:
            pass

    fi = types.SimpleNamespace(BatchDecodeWithPagedKVCacheWrapper=Ancient)
    with pytest.raises(_repro.Untestable, match="no use_tensor_cores"):
        decode_repro.make_decode_wrapper(fi, "ws", use_tensor_cores=True, backend=None)
    assert isinstance(
        decode_repro.make_decode_wrapper(fi, "ws", use_tensor_cores=False, backend=None), Ancient
    )


# ---------------------------------------------------------------------------------------
# flashinfer MLA


class MlaV021:
    """flashinfer 0.2.1: backend exists (only fa2 implemented)."""

    def __init__(
        self,
        float_workspace_buffer: Any,
        use_cuda_graph: bool = False,
        qo_indptr: Any = None,
        kv_indptr: Any = None,
        kv_indices: Any = None,
        kv_len_arr: Any = None,
        backend: str = "fa2",
    ) -> None:
        self.backend = backend
        self.planned: tuple[Any, ...] = ()

    def plan(self, *args: Any) -> None:
        self.planned = args

    def run(
        self, q_nope: Any, q_pe: Any, ckv_cache: Any, kpe_cache: Any, return_lse: bool = False
    ) -> Any:
        return q_nope + 1


class MlaNoBackend:
    def __init__(self, float_workspace_buffer: Any, use_cuda_graph: bool = False) -> None:
        self.backend = None


def test_mla_wrapper_absent_is_untestable_with_version() -> None:
    fi = types.SimpleNamespace(__version__="0.2.0", mla=None)
    with pytest.raises(
        _repro.Untestable, match=r"^MLA wrapper absent \(flashinfer 0\.2\.0 < 0\.2\.1\)$"
    ):
        sm89_repro.mla_wrapper_class(fi)


def test_mla_wrapper_found_in_submodule_or_top_level() -> None:
    assert (
        sm89_repro.mla_wrapper_class(
            types.SimpleNamespace(mla=types.SimpleNamespace(BatchMLAPagedAttentionWrapper=MlaV021))
        )
        is MlaV021
    )
    assert (
        sm89_repro.mla_wrapper_class(types.SimpleNamespace(BatchMLAPagedAttentionWrapper=MlaV021))
        is MlaV021
    )


def test_make_mla_wrapper_backend_kwarg() -> None:
    assert sm89_repro.make_mla_wrapper(MlaV021, "ws", "fa3").backend == "fa3"
    assert sm89_repro.make_mla_wrapper(MlaNoBackend, "ws", "fa2").backend is None
    with pytest.raises(_repro.Untestable, match="no backend argument; cannot run fa3"):
        sm89_repro.make_mla_wrapper(MlaNoBackend, "ws", "fa3")


def test_mla_plan_run_argument_order() -> None:
    wrapper = MlaV021("ws")
    out = sm89_repro.mla_plan_run(
        wrapper,
        qo_indptr="qo",
        kv_indptr="kvp",
        kv_indices="kvi",
        kv_lens="len",
        num_heads=16,
        page_size=1,
        causal=False,
        sm_scale=0.1,
        dtype=torch.float16,
        q_nope=torch.zeros(2),
        q_pe=None,
        ckv=None,
        kpe=None,
    )
    assert out.tolist() == [1.0, 1.0]
    assert wrapper.planned == (
        "qo",
        "kvp",
        "kvi",
        "len",
        16,
        512,
        64,
        1,
        False,
        0.1,
        torch.float16,
        torch.float16,
    )


class FakeCuda:
    def __init__(self, cc: tuple[int, int]) -> None:
        self.cc = cc

    def get_device_capability(self) -> tuple[int, int]:
        return self.cc


def _fake_torch(cc: tuple[int, int], cuda: str = "13.0") -> Any:
    return types.SimpleNamespace(
        cuda=FakeCuda(cc), device=lambda name: name, version=types.SimpleNamespace(cuda=cuda)
    )


def test_mla_backend_support_reasons() -> None:
    old = types.SimpleNamespace(__version__="0.2.1", utils=types.SimpleNamespace())
    new = types.SimpleNamespace(
        __version__="0.2.4",
        utils=types.SimpleNamespace(
            determine_mla_backend=lambda d: "fa3", is_sm90a_supported=lambda d: True
        ),
    )
    new_no_sm90a = types.SimpleNamespace(
        __version__="0.2.4",
        utils=types.SimpleNamespace(
            determine_mla_backend=lambda d: "fa2", is_sm90a_supported=lambda d: False
        ),
    )
    assert sm89_repro.mla_backend_unsupported(old, _fake_torch((8, 9)), "fa2") is None
    assert sm89_repro.mla_backend_unsupported(old, _fake_torch((9, 0)), "fa3") == (
        "MLA fa3 backend absent (flashinfer 0.2.1 < 0.2.2)"
    )
    assert sm89_repro.mla_backend_unsupported(new, _fake_torch((8, 9)), "fa3") == (
        "fa3 needs SM90a, this GPU is SM89"
    )
    assert sm89_repro.mla_backend_unsupported(new, _fake_torch((9, 0)), "fa3") is None
    reason = sm89_repro.mla_backend_unsupported(new_no_sm90a, _fake_torch((9, 0), "12.2"), "fa3")
    assert reason is not None
    assert "CUDA >= 12.3" in reason
    assert "12.2" in reason


@pytest.mark.parametrize(
    ("smem", "tile"),
    [
        (233472, 64),
        (227 * 1024, 64),
        (167936, 32),
        (102400, 16),
        (92672, 16),
        (65536, None),
        (None, None),
    ],
)
def test_cta_tile_kv_from_shared_memory(smem: int | None, tile: int | None) -> None:
    assert sm89_repro.cta_tile_kv(smem) == tile


def test_smem_facts_falls_back_to_the_compute_capability_table() -> None:
    class Props:
        shared_memory_per_multiprocessor = 102400

    assert sm89_repro.smem_facts(Props(), (9, 0)) == (102400, True)
    assert sm89_repro.smem_facts(object(), (8, 9)) == (102400, False)
    assert sm89_repro.smem_facts(object(), (9, 0)) == (233472, False)
    assert sm89_repro.smem_facts(object(), (7, 5)) == (None, False)


# ---------------------------------------------------------------------------------------
# flashinfer non-MLA paths of the OOB repro


class PrefillV015:
    """flashinfer 0.1.5: begin_forward/forward; causal defaults to True in forward."""

    def __init__(self, float_workspace_buffer: Any, kv_layout: str = "NHD") -> None:
        LOG.note("init", kv_layout)

    def begin_forward(
        self,
        qo_indptr: Any,
        paged_kv_indptr: Any,
        paged_kv_indices: Any,
        paged_kv_last_page_len: Any,
        num_qo_heads: int,
        num_kv_heads: int,
        head_dim: int,
        page_size: int,
        q_data_type: Any = "float16",
    ) -> None:
        LOG.note("begin_forward", qo_indptr, page_size, q_data_type=q_data_type)

    def forward(self, q: Any, paged_kv_cache: Any, causal: bool = True) -> Any:
        LOG.note("forward", causal=causal)
        return q


class PrefillV024:
    """flashinfer 0.2.4: backend in the constructor, causal in plan, run(q, kv)."""

    def __init__(
        self, float_workspace_buffer: Any, kv_layout: str = "NHD", backend: str = "auto"
    ) -> None:
        LOG.note("init", kv_layout, backend=backend)

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
        LOG.note(
            "plan",
            qo_indptr,
            page_size,
            causal=causal,
            q_data_type=q_data_type,
            kv_data_type=kv_data_type,
        )

    def run(self, q: Any, paged_kv_cache: Any) -> Any:
        LOG.note("run")
        return q


def _paged_runner(fi: Any, path: str) -> Any:
    return oob_repro.make_paged_runner(
        fi,
        path,
        "ws",
        qo_indptr="qo",
        kv_indptr="kvp",
        kv_indices="kvi",
        last_len="last",
        num_qo_heads=32,
        num_kv_heads=8,
        head_dim=128,
        page_size=4,
        dtype=torch.float16,
    )


def test_paged_runner_old_prefill_passes_causal_false_to_forward() -> None:
    LOG.calls.clear()
    run = _paged_runner(
        types.SimpleNamespace(BatchPrefillWithPagedKVCacheWrapper=PrefillV015), "prefill.fa2"
    )
    run("q", "kv")
    assert LOG.calls == [
        ("init", ("NHD",), {}),
        ("begin_forward", ("qo", 4), {"q_data_type": torch.float16}),
        ("forward", (), {"causal": False}),
    ]


def test_paged_runner_new_prefill_passes_backend_and_plan_causal() -> None:
    LOG.calls.clear()
    run = _paged_runner(
        types.SimpleNamespace(BatchPrefillWithPagedKVCacheWrapper=PrefillV024), "prefill.fa3"
    )
    run("q", "kv")
    assert LOG.calls == [
        ("init", ("NHD",), {"backend": "fa3"}),
        (
            "plan",
            ("qo", 4),
            {"causal": False, "q_data_type": torch.float16, "kv_data_type": torch.float16},
        ),
        ("run", (), {}),
    ]


def test_paged_runner_decode_tc_and_backend() -> None:
    LOG.calls.clear()
    run = _paged_runner(
        types.SimpleNamespace(BatchDecodeWithPagedKVCacheWrapper=DecodeV053), "decode.tc"
    )
    assert run(torch.ones(1), None).tolist() == [3.0]
    assert LOG.calls[0] == ("init", ("NHD",), {"use_tensor_cores": True, "backend": "fa2"})
    assert LOG.calls[1][0] == "plan"
    assert LOG.calls[1][2]["kv_data_type"] == torch.float16


def test_path_unsupported_reasons() -> None:
    old = types.SimpleNamespace(
        __version__="0.2.0",
        mla=None,
        BatchDecodeWithPagedKVCacheWrapper=DecodeV015,
        BatchPrefillWithPagedKVCacheWrapper=PrefillV015,
        utils=types.SimpleNamespace(),
    )
    torch89 = _fake_torch((8, 9))
    assert (
        oob_repro.path_unsupported(old, torch89, "mla.fa2")
        == "MLA wrapper absent (flashinfer 0.2.0 < 0.2.1)"
    )
    assert oob_repro.path_unsupported(old, torch89, "decode") is None
    assert oob_repro.path_unsupported(old, torch89, "decode.tc") is None
    reason = oob_repro.path_unsupported(old, torch89, "prefill.fa3")
    assert reason is not None
    assert reason.startswith("prefill wrapper has no backend argument")
    new = types.SimpleNamespace(
        __version__="0.2.4",
        mla=types.SimpleNamespace(BatchMLAPagedAttentionWrapper=MlaV021),
        BatchPrefillWithPagedKVCacheWrapper=PrefillV024,
        utils=types.SimpleNamespace(
            determine_mla_backend=lambda d: "fa2", is_sm90a_supported=lambda d: True
        ),
    )
    assert (
        oob_repro.path_unsupported(new, torch89, "mla.fa3") == "fa3 needs SM90a, this GPU is SM89"
    )
    assert oob_repro.path_unsupported(new, _fake_torch((9, 0)), "mla.fa3") is None
    assert oob_repro.path_unsupported(new, _fake_torch((9, 0)), "prefill.fa3") is None
    assert oob_repro.path_unsupported(new, torch89, "bogus") == "unknown path 'bogus'"


# ---------------------------------------------------------------------------------------
# fla


def _naive_bhtd(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    out: torch.Tensor = fla_repro.linear_attention_reference(q, k, v, scale).float()
    return out


def fla_7336d0cf(
    q: Any, k: Any, v: Any, initial_state: Any = None, output_final_state: bool = False
) -> Any:
    assert q.shape[2] > q.shape[1]  # [B, H, T, D]
    return _naive_bhtd(q, k, v, q.shape[-1] ** -0.5)


def fla_3f1f080f(
    q: Any,
    k: Any,
    v: Any,
    scale: float = -1,
    initial_state: Any = None,
    output_final_state: bool = False,
    normalize: bool = True,
) -> Any:
    assert not normalize
    assert scale != -1
    return _naive_bhtd(q, k, v, scale), None


def fla_v010(
    q: Any,
    k: Any,
    v: Any,
    scale: Any = None,
    initial_state: Any = None,
    output_final_state: bool = False,
    normalize: bool = True,
    head_first: bool = True,
) -> Any:
    assert not normalize
    assert head_first is False
    o = _naive_bhtd(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), scale)
    return o.transpose(1, 2), None


def fla_v052(
    q: Any,
    k: Any,
    v: Any,
    scale: Any = None,
    initial_state: Any = None,
    output_final_state: bool = False,
    normalize: bool = True,
    cu_seqlens: Any = None,
) -> Any:
    assert not normalize
    o = _naive_bhtd(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), scale)
    return o.transpose(1, 2), None


@pytest.mark.parametrize(
    ("fn", "has_scale", "time_first", "scale_default"),
    [
        (fla_7336d0cf, False, False, None),
        (fla_3f1f080f, True, False, -1),
        (fla_v010, True, True, None),
        (fla_v052, True, True, None),
    ],
    ids=["7336d0cf", "3f1f080f", "v0.1.0", "v0.5.2"],
)
def test_linear_attn_adapter_layouts(
    fn: Any, has_scale: bool, time_first: bool, scale_default: Any
) -> None:
    adapter = fla_repro.LinearAttnAdapter(fn)
    assert adapter.has_scale is has_scale
    assert adapter.time_first is time_first
    assert adapter.scale_default == scale_default
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 9, 4, generator=gen).requires_grad_() for _ in range(3))
    scale = 4**-0.5
    assert adapter.supports_scale(scale, 4)
    assert adapter.supports_scale(1.0, 4) is has_scale
    out = adapter(q, k, v, scale)
    assert out.shape == (2, 3, 9, 4)
    torch.testing.assert_close(out, _naive_bhtd(q, k, v, scale))
    out.sum().backward()  # gradients reach the [B, H, T, D] leaves through the transposes
    assert q.grad is not None
    assert q.grad.shape == (2, 3, 9, 4)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize(
    ("fused_file", "fused_name"),
    [("chunk_fuse", "fused_chunk_linear_attention"), ("fused_chunk", "fused_chunk_linear_attn")],
)
def test_import_linear_attn_ops_skips_package_inits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fused_file: str, fused_name: str
) -> None:
    root = tmp_path / "site"
    _write(root / "fla" / "__init__.py", "raise RuntimeError('fla/__init__ imports models')\n")
    _write(root / "fla" / "utils.py", "def contiguous(fn):\n    return fn\n")
    _write(
        root / "fla" / "ops" / "__init__.py",
        "raise RuntimeError('fla/ops/__init__ imports every op')\n",
    )
    _write(
        root / "fla" / "ops" / "linear_attn" / "__init__.py",
        f"from .chunk import chunk_linear_attn\nfrom .{fused_file} import {fused_name}\n",
    )
    _write(
        root / "fla" / "ops" / "linear_attn" / "chunk.py",
        "from fla.utils import contiguous\n\n"
        "@contiguous\ndef chunk_linear_attn(q, k, v):\n    return 'chunk'\n",
    )
    _write(
        root / "fla" / "ops" / "linear_attn" / f"{fused_file}.py",
        f"def {fused_name}(q, k, v):\n    return 'fused'\n",
    )
    for name in [m for m in sys.modules if m == "fla" or m.startswith("fla.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(root))
    try:
        fused, chunk = fla_repro.import_linear_attn_ops()
        assert fused(1, 2, 3) == "fused"
        assert chunk(1, 2, 3) == "chunk"
        fla_pkg = sys.modules["fla"]
        assert list(fla_pkg.__path__) == [str(root / "fla")]
        assert sys.modules["fla.ops"].__path__ == [str(root / "fla" / "ops")]
    finally:
        for name in [m for m in sys.modules if m == "fla" or m.startswith("fla.")]:
            del sys.modules[name]


def test_import_linear_attn_ops_without_fla_is_untestable() -> None:
    if _repro.has_module("fla"):
        pytest.skip("fla is installed here")
    with pytest.raises(
        _repro.Untestable, match=r"^fla not importable by .*: no module named 'fla'"
    ):
        fla_repro.import_linear_attn_ops()
