"""trt_sdpa_scale's ONNX graph inspection on hand-built graphs and on real exports."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import onnx
import pytest
import torch

# the repro scripts are standalone files, importable as the harness's PYTHONPATH makes them
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "repros"))

import trt_sdpa_scale as trt_repro
from onnx import TensorProto, helper


def _const(name: str, value: float) -> onnx.NodeProto:
    return helper.make_node(
        "Constant",
        [],
        [name],
        value=helper.make_tensor(name + "_t", TensorProto.FLOAT, [], [value]),
    )


def _graph(nodes: list[onnx.NodeProto], initializers: list[onnx.TensorProto] | None = None) -> Any:
    inputs = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 2, 4, 8]) for n in ("q", "k", "v")
    ]
    output = helper.make_tensor_value_info("o", TensorProto.FLOAT, [1, 2, 4, 8])
    graph = helper.make_graph(nodes, "g", inputs, [output], initializer=initializers or [])
    return helper.make_model(graph)


TAIL = [
    helper.make_node("Softmax", ["s"], ["p"], axis=-1),
    helper.make_node("MatMul", ["p", "v"], ["o"]),
]


def test_sqrt_scale_on_both_operands_folded_constants() -> None:
    c = math.sqrt(0.125)
    model = _graph(
        [
            helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
            _const("cq", c),
            helper.make_node("Mul", ["q", "cq"], ["qs"]),
            _const("ck", c),
            helper.make_node("Mul", ["kt", "ck"], ["kts"]),
            helper.make_node("MatMul", ["qs", "kts"], ["s"]),
            *TAIL,
        ]
    )
    info = trt_repro.inspect_attention_graph(model)
    assert info["found_qk_matmul"] == 1
    assert info["q_scale"] == pytest.approx(c)
    assert info["k_scale"] == pytest.approx(c)
    assert info["k_transposed"] == 1
    assert trt_repro.sqrt_on_q_and_k(info, 0.125)


def test_sqrt_node_of_an_initializer_is_evaluated() -> None:
    scale = helper.make_tensor("scale", TensorProto.FLOAT, [], [0.125])
    model = _graph(
        [
            helper.make_node("Sqrt", ["scale"], ["rs"]),
            helper.make_node("Mul", ["q", "rs"], ["qs"]),
            helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
            helper.make_node("Mul", ["rs", "kt"], ["kts"]),  # constant first also counts
            helper.make_node("MatMul", ["qs", "kts"], ["s"]),
            *TAIL,
        ],
        [scale],
    )
    info = trt_repro.inspect_attention_graph(model)
    assert info["sqrt_ops"] == 1
    assert trt_repro.sqrt_on_q_and_k(info, 0.125)


def test_scale_only_on_q_is_not_the_pattern() -> None:
    model = _graph(
        [
            _const("c", 0.125),
            helper.make_node("Mul", ["q", "c"], ["qs"]),
            helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
            helper.make_node("MatMul", ["qs", "kt"], ["s"]),
            *TAIL,
        ]
    )
    info = trt_repro.inspect_attention_graph(model)
    assert info["q_scale"] == pytest.approx(0.125)
    assert info["k_scale"] is None
    assert not trt_repro.sqrt_on_q_and_k(info, 0.125)


def test_scale_after_the_matmul_is_reported() -> None:
    model = _graph(
        [
            helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
            helper.make_node("MatMul", ["q", "kt"], ["s0"]),
            _const("d", 8.0),
            helper.make_node("Div", ["s0", "d"], ["s"]),
            *TAIL,
        ]
    )
    info = trt_repro.inspect_attention_graph(model)
    assert info["post_matmul_scale"] == pytest.approx(0.125)
    assert info["q_scale"] is None
    assert not trt_repro.sqrt_on_q_and_k(info, 0.125)


def test_attention_op_graph_has_no_qk_matmul() -> None:
    node = helper.make_node("Attention", ["q", "k", "v"], ["o"], scale=0.125)
    info = trt_repro.inspect_attention_graph(_graph([node]))
    assert info["attention_ops"] == 1
    assert info["found_qk_matmul"] == 0
    assert not trt_repro.sqrt_on_q_and_k(info, 0.125)


@pytest.mark.parametrize("folding", [True, False])
def test_real_torchscript_export_has_the_pattern(tmp_path: Path, folding: bool) -> None:
    params = dict(trt_repro.DEFAULT_PARAMS, seq_len=9, dim=64, num_heads=1)
    sdpa, explicit = trt_repro.build_modules(params)
    x = trt_repro.make_input(params)
    with torch.no_grad():
        torch.testing.assert_close(sdpa(x), explicit(x), rtol=1e-5, atol=1e-5)
    paths = {}
    for which, module in (("sdpa", sdpa), ("explicit", explicit)):
        paths[which] = tmp_path / f"{which}.onnx"
        trt_repro.export_onnx(module, x, str(paths[which]), 17, folding)
    info = trt_repro.inspect_attention_graph(onnx.load(str(paths["sdpa"])))
    assert trt_repro.sqrt_on_q_and_k(info, 0.125), info
    explicit_info = trt_repro.inspect_attention_graph(onnx.load(str(paths["explicit"])))
    assert not trt_repro.sqrt_on_q_and_k(explicit_info, 0.125)
    assert explicit_info["q_scale"] == pytest.approx(0.125)


def test_modules_share_weights_and_seed_changes_them() -> None:
    params = dict(trt_repro.DEFAULT_PARAMS, dim=64, num_heads=1)
    a, b = trt_repro.build_modules(params)
    c, _ = trt_repro.build_modules(dict(params, seed=5))
    assert torch.equal(a.qkv.weight, b.qkv.weight)
    assert not torch.equal(a.qkv.weight, c.qkv.weight)
    assert float(a.qkv.weight.detach().abs().min()) > 0  # seeded values, never zeros
    with pytest.raises(ValueError, match="not divisible"):
        trt_repro.build_modules(dict(params, dim=65, num_heads=2))
