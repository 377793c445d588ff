"""Verdict and threshold logic of each repro, on hand-made metric dicts."""

from __future__ import annotations

import sys
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
import trt_sdpa_scale as trt_repro


def _st(
    max_abs: float | None, *, nan: int = 0, ref_max: float = 0.04, frac: float | None = None
) -> dict[str, Any]:
    stats: dict[str, Any] = {
        "max_abs": max_abs,
        "nan": nan,
        "inf": 0,
        "ref_max_abs": ref_max,
        "numel": 100,
    }
    if frac is not None:
        stats["mismatch_frac"] = frac
    return stats


# ---------------------------------------------------------------------------------------
# decode with / without tensor cores


def test_decode_passes_when_tc_costs_little_accuracy() -> None:
    status, reason = decode_repro.decode_verdict(
        _st(1e-5), _st(3e-4), atol=1e-3, rtol=1e-3, case="randn_div10"
    )
    assert status == _repro.PASSED
    assert "by design" in reason


def test_decode_regresses_when_tc_excess_beyond_upstream_tolerance() -> None:
    # tolerance = atol + rtol * max|ref| = 1e-3 + 1e-3 * 0.04
    status, reason = decode_repro.decode_verdict(
        _st(1e-5), _st(1.2e-3), atol=1e-3, rtol=1e-3, case="c"
    )
    assert status == _repro.REGRESSED
    assert "1.2e-03" in reason or "0.0012" in reason
    status, _ = decode_repro.decode_verdict(_st(1e-5), _st(1.0e-3), atol=1e-3, rtol=1e-3, case="c")
    assert status == _repro.PASSED


def test_decode_nan_in_tc_is_regressed_and_in_plain_is_error() -> None:
    assert (
        decode_repro.decode_verdict(_st(1e-5), _st(None, nan=3), atol=1e-3, rtol=1e-3, case="c")[0]
        == _repro.REGRESSED
    )
    assert (
        decode_repro.decode_verdict(_st(None, nan=3), _st(1e-5), atol=1e-3, rtol=1e-3, case="c")[0]
        == _repro.ERROR
    )


def test_decode_control_off_reference_is_error() -> None:
    status, reason = decode_repro.decode_verdict(
        _st(5e-3), _st(5e-3), atol=1e-3, rtol=1e-3, case="c"
    )
    assert status == _repro.ERROR
    assert "control" in reason


# ---------------------------------------------------------------------------------------
# MLA sm89


def test_mla_cases_verdict() -> None:
    good = {"fa2.float16.page1": _st(9e-4, frac=0.0), "fa2.bfloat16.page16": _st(7e-3, frac=1e-4)}
    status, reason = sm89_repro.cases_verdict(good, {}, 1e-3, "note")
    assert status == _repro.PASSED
    assert reason.endswith("note")
    bad = dict(good, **{"fa2.bfloat16.page1": _st(1.97, frac=0.992)})
    status, reason = sm89_repro.cases_verdict(bad, {"fa3.x": "boom"}, 1e-3, "note")
    assert status == _repro.REGRESSED
    assert "fa2.bfloat16.page1" in reason
    assert "99.2%" in reason
    assert (
        sm89_repro.cases_verdict(good, {"fa3.x": "RuntimeError: boom"}, 1e-3, "n")[0]
        == _repro.ERROR
    )
    assert sm89_repro.cases_verdict({}, {}, 1e-3, "n")[0] == _repro.UNTESTABLE
    nan_case = {"fa2.float16.page1": _st(None, nan=1, frac=0.0)}
    assert sm89_repro.cases_verdict(nan_case, {}, 1e-3, "n")[0] == _repro.REGRESSED


def test_mla_case_failed_threshold_is_strictly_greater() -> None:
    assert not sm89_repro.case_failed(_st(1e-3, frac=1e-3), 1e-3)
    assert sm89_repro.case_failed(_st(1e-3, frac=1.01e-3), 1e-3)
    assert sm89_repro.case_failed(_st(1e-3), 1e-3)  # no mismatch info at all is not a pass


# ---------------------------------------------------------------------------------------
# MLA OOB NaN


def _group(clean: dict[str, Any], nan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {"clean": clean, "nan": nan, "inf": _st(1e-4, frac=0.0)}


def test_oob_regressed_when_poison_leaks_and_control_is_right() -> None:
    groups = {
        "mla.fa2.small": _group(_st(9.8e-4, frac=0.0), _st(None, nan=100, frac=1.0)),
        "decode.small": _group(_st(1e-4, frac=0.0), _st(1e-4, frac=0.0)),
    }
    status, reason = oob_repro.oob_verdict(groups, {}, 1e-3)
    assert status == _repro.REGRESSED
    assert "mla.fa2.small.nan (100/100 NaN" in reason
    assert "decode" not in reason


def test_oob_error_when_control_wrong_and_no_leak() -> None:
    groups = {"mla.fa2.small": _group(_st(0.5, frac=0.3), _st(0.5, frac=0.3))}
    status, reason = oob_repro.oob_verdict(groups, {}, 1e-3)
    assert status == _repro.ERROR
    assert "clean control wrong" in reason


def test_oob_passed_and_raised_cases() -> None:
    groups = {"decode.small": _group(_st(1e-4, frac=0.0), _st(1e-4, frac=0.0))}
    assert oob_repro.oob_verdict(groups, {}, 1e-3)[0] == _repro.PASSED
    assert (
        oob_repro.oob_verdict(groups, {"mla.fa3.big": "RuntimeError: x"}, 1e-3)[0] == _repro.ERROR
    )
    assert oob_repro.oob_verdict({}, {}, 1e-3)[0] == _repro.UNTESTABLE


def test_last_page_slots_and_poison() -> None:
    assert oob_repro.last_page_slots(13, 4) == (4, 1)
    assert oob_repro.last_page_slots(197, 16) == (13, 5)
    assert oob_repro.last_page_slots(16, 16) == (1, 16)
    mla_cache = torch.zeros(2 * 4, 4, 3)
    unused = oob_repro.poison_last_pages(
        mla_cache, batch_size=2, kv_len=13, page_size=4, value=float("nan"), slot_dim=1
    )
    assert unused == 3
    assert int(mla_cache.isnan().sum()) == 2 * 3 * 3
    assert mla_cache[3, 1:].isnan().all()
    assert mla_cache[7, 1:].isnan().all()
    assert not mla_cache[3, :1].isnan().any()
    assert not mla_cache[:3].isnan().any()
    nhd = torch.zeros(2 * 4, 2, 4, 2, 5)
    oob_repro.poison_last_pages(
        nhd, batch_size=2, kv_len=13, page_size=4, value=float("inf"), slot_dim=2
    )
    assert int(nhd.isinf().sum()) == 2 * 2 * 3 * 2 * 5  # requests x (K, V) x slots x heads x dim
    assert nhd[3, :, 1:].isinf().all()
    assert not nhd[3, :, :1].isinf().any()


# ---------------------------------------------------------------------------------------
# fla


def _rel(values: dict[str, float | None]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for scale in ("s0p125", "s1"):
        for fn in ("chunk", "fused_chunk"):
            for t in fla_repro.TENSORS:
                out[f"{scale}.{fn}.{t}"] = 2.6e-7
    out.update(values)
    return out


def test_scale_label() -> None:
    assert fla_repro.scale_label(0.125) == "s0p125"
    assert fla_repro.scale_label(1.0) == "s1"
    assert fla_repro.scale_label(-1.0) == "sm1"


def test_fla_verdict_reproduces_the_measured_bug() -> None:
    status, reason = fla_repro.fla_verdict(
        _rel({"s0p125.fused_chunk.dv": 6.06}), 1e-2, [0.125, 1.0]
    )
    assert status == _repro.REGRESSED
    assert "scale 0.125: fused_chunk dv=6.06" in reason
    assert "scale 1:" not in reason


def test_fla_verdict_passes_the_fixed_commit_and_checks_controls() -> None:
    assert fla_repro.fla_verdict(_rel({}), 1e-2, [0.125, 1.0])[0] == _repro.PASSED
    status, reason = fla_repro.fla_verdict(_rel({"s1.chunk.dq": 0.5}), 1e-2, [0.125, 1.0])
    assert status == _repro.ERROR
    assert "chunk_linear_attn (the control)" in reason
    # NaN metrics arrive as None and count as wrong
    assert (
        fla_repro.fla_verdict(_rel({"s1.fused_chunk.o": None}), 1e-2, [0.125, 1.0])[0]
        == _repro.REGRESSED
    )


def test_fla_verdict_skips_scales_that_were_not_run() -> None:
    rel = {k: v for k, v in _rel({}).items() if k.startswith("s0p125")}
    assert fla_repro.fla_verdict(rel, 1e-2, [0.125, 1.0])[0] == _repro.PASSED
    assert fla_repro.fla_verdict({}, 1e-2, [1.0])[0] == _repro.UNTESTABLE


def test_fla_threshold_sits_between_measured_good_and_bad() -> None:
    threshold = fla_repro.DEFAULT_PARAMS["max_rel_err"]
    assert 2.6e-7 * 1000 < threshold < 6.06 / 100  # REPROS.md: good 2.6e-7, bad 6.06


# ---------------------------------------------------------------------------------------
# TensorRT


def _trt(norm: float | None, nan: int = 0) -> dict[str, Any]:
    return {
        "max_abs": None if norm is None else norm * 5,
        "max_abs_norm": norm,
        "nan": nan,
        "inf": 0,
    }


@pytest.mark.parametrize(
    ("sdpa", "explicit", "graph_ok", "status"),
    [
        (_trt(2e-3), _trt(2e-3), True, _repro.PASSED),
        (_trt(0.9), _trt(2e-3), True, _repro.REGRESSED),
        (_trt(None, nan=10), _trt(2e-3), True, _repro.REGRESSED),
        (_trt(0.9), _trt(0.9), True, _repro.ERROR),
        (_trt(2e-3), _trt(2e-3), False, _repro.UNTESTABLE),
        (_trt(0.9), _trt(2e-3), False, _repro.REGRESSED),
        (_trt(2e-3), _trt(2e-3), None, _repro.UNTESTABLE),
        (_trt(0.9), _trt(2e-3), None, _repro.REGRESSED),
    ],
)
def test_trt_verdict(
    sdpa: dict[str, Any], explicit: dict[str, Any], graph_ok: bool | None, status: str
) -> None:
    assert trt_repro.trt_verdict(sdpa, explicit, 0.05, graph_ok)[0] == status


def test_trt_threshold_separates_reported_numbers() -> None:
    # fixed TRT: 0.22 abs between engines; broken: 1373 abs. Outputs of this model are O(1..10).
    threshold = trt_repro.DEFAULT_PARAMS["trt_max_abs_norm"]
    assert 0.22 / 10 < threshold < 1373 / 10 / 100


def test_sqrt_on_q_and_k_rules() -> None:
    want = 0.125**0.5
    good = {"q_scale": want, "k_scale": want, "k_transposed": 1, "post_matmul_scale": None}
    assert trt_repro.sqrt_on_q_and_k(good, 0.125)
    assert not trt_repro.sqrt_on_q_and_k(dict(good, k_scale=None), 0.125)
    assert not trt_repro.sqrt_on_q_and_k(dict(good, q_scale=0.125, k_scale=1.0), 0.125)
    assert not trt_repro.sqrt_on_q_and_k(dict(good, post_matmul_scale=1.0), 0.125)
    assert not trt_repro.sqrt_on_q_and_k(dict(good, k_transposed=0), 0.125)
