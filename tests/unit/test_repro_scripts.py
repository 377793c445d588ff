"""Each repro script as a real subprocess on this GPU-less machine (exit 125, precise reason),
and the whole CPU half of trt_sdpa_scale (TorchScript export, graph shape, ONNX Runtime)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# the repro scripts are standalone files, importable as the harness's PYTHONPATH makes them
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "repros"))

import _repro
import pytest
import torch

REPROS_DIR = Path(_repro.__file__).resolve().parent
GPU_REPROS = {
    "flashinfer_decode_tensor_cores": "flashinfer",
    "flashinfer_mla_sm89": "flashinfer",
    "flashinfer_mla_oob_nan": "flashinfer",
    "fla_fused_chunk_scale": "fla",
}
RESULT_KEYS = {
    "schema",
    "repro",
    "status",
    "reason",
    "metrics",
    "thresholds",
    "params",
    "provenance",
    "started",
    "duration_s",
}

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="describes the GPU-less machine")


def run_script(
    tmp_path: Path,
    name: str,
    *args: str,
    pythonpath: list[Path] | None = None,
    timeout: float = 300,
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any] | None]:
    out = tmp_path / f"{name}.json"
    env = dict(os.environ)
    paths = [str(p) for p in (pythonpath or [])] + [str(REPROS_DIR)]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["REPROMATRIX_IMAGE_REF"] = "local"
    proc = subprocess.run(
        [sys.executable, str(REPROS_DIR / f"{name}.py"), "--out", str(out), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    result = json.loads(out.read_text()) if out.exists() else None
    return proc, result


def fake_package(root: Path, name: str) -> Path:
    """A package that fails loudly if imported: proves the GPU check runs before the import."""
    pkg = root / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        f"raise RuntimeError('{name} must not be imported without a GPU')\n"
    )
    return root


@pytest.mark.parametrize("name", sorted(GPU_REPROS))
def test_gpu_repro_without_library_is_untestable(tmp_path: Path, name: str) -> None:
    lib = GPU_REPROS[name]
    if _repro.has_module(lib):
        pytest.skip(f"{lib} is installed here")
    proc, result = run_script(tmp_path, name)
    assert proc.returncode == 125, proc.stderr
    assert result is not None
    assert set(result) == RESULT_KEYS
    assert result["repro"] == name
    assert result["status"] == "untestable"
    assert result["reason"] == (
        f"{lib} not importable by {result['provenance']['executable']}: "
        f"no module named '{lib}' on sys.path"
    )
    assert result["params"] == __import__(name).DEFAULT_PARAMS
    assert result["provenance"]["image"]["ref"] == "local"
    assert result["provenance"]["torch"] == torch.__version__
    assert result["provenance"]["gpu"] is None


@pytest.mark.parametrize("name", sorted(GPU_REPROS))
def test_gpu_repro_with_library_but_no_gpu_is_untestable_fast(tmp_path: Path, name: str) -> None:
    root = fake_package(tmp_path / "site", GPU_REPROS[name])
    started = time.monotonic()
    proc, result = run_script(tmp_path, name, pythonpath=[root])
    assert time.monotonic() - started < 60
    assert proc.returncode == 125, proc.stderr
    assert result is not None
    assert result["status"] == "untestable"
    assert result["reason"] == (
        f"no CUDA device (torch {torch.__version__}, built with CUDA {torch.version.cuda})"
    )
    assert result["metrics"] == {}
    assert "must not be imported" not in proc.stderr


@pytest.mark.parametrize("name", [*sorted(GPU_REPROS), "trt_sdpa_scale"])
def test_unknown_param_exits_2_naming_it(tmp_path: Path, name: str) -> None:
    proc, result = run_script(tmp_path, name, "--params", '{"no_such_knob": 1}')
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "unknown param 'no_such_knob'" in lines[0]
    assert result is not None
    assert result["status"] == "error"


@pytest.mark.parametrize("name", [*sorted(GPU_REPROS), "trt_sdpa_scale"])
def test_help_is_quick_and_imports_no_heavy_library(tmp_path: Path, name: str) -> None:
    code = (
        f"import sys; sys.argv = ['{name}', '--help']\n"
        f"sys.path.insert(0, {str(REPROS_DIR)!r})\n"
        f"import runpy\n"
        f"try:\n    runpy.run_path({str(REPROS_DIR / (name + '.py'))!r}, run_name='__main__')\n"
        f"except SystemExit as e:\n    assert e.code == 0, e.code\n"
        "heavy = [m for m in ('torch', 'flashinfer', 'fla', 'onnx', 'tensorrt')"
        " if m in sys.modules]\n"
        f"assert not heavy, heavy\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "--params" in proc.stdout
    assert "exit codes" in proc.stdout


def test_worker_mode_run_returns_a_result_without_raising() -> None:
    import flashinfer_mla_oob_nan

    result = flashinfer_mla_oob_nan.run({"dtype": "float16"})
    assert set(result) == RESULT_KEYS
    assert result["status"] == "untestable"
    bad = flashinfer_mla_oob_nan.run({"dtypes": ["float16"]})
    assert bad["status"] == "error"
    assert "unknown param 'dtypes'" in bad["reason"]


# ---------------------------------------------------------------------------------------
# trt_sdpa_scale: the CPU half, for real


SMALL_TRT = {"seq_len": 33, "dim": 128, "num_heads": 2}  # head_dim 64, as in the report


def _check_export_half(result: dict[str, Any], scale: float) -> None:
    m = result["metrics"]
    want = math.sqrt(scale)
    assert m["graph.sqrt_scale_on_q_and_k"] == 1
    assert m["graph.expected_sqrt_scale"] == pytest.approx(want)
    assert m["graph.sdpa.q_scale"] == pytest.approx(want, rel=1e-6)
    assert m["graph.sdpa.k_scale"] == pytest.approx(want, rel=1e-6)
    assert m["graph.sdpa.k_transposed"] == 1
    assert m["graph.sdpa.post_matmul_scale"] is None
    assert m["graph.sdpa.attention_ops"] == 0
    # the explicit module puts the whole scale on Q and nothing on K
    assert m["graph.explicit.q_scale"] == pytest.approx(scale, rel=1e-6)
    assert m["graph.explicit.k_scale"] is None
    # ONNX Runtime on CPU agrees with the float64 eager reference (fp32 rounding only)
    for which in ("sdpa", "explicit"):
        assert m[f"ort.{which}_vs_ref.nan"] == 0
        assert m[f"ort.{which}_vs_ref.max_abs_norm"] < 1e-5
        assert m[f"eager.{which}_vs_ref.max_abs_norm"] < 1e-5
    assert m["ort.sdpa_vs_explicit.max_abs"] < 1e-4
    assert result["thresholds"] == {"ort_max_abs_norm": 1e-4, "trt_max_abs_norm": 0.05}


def test_trt_sdpa_scale_default_params_export_half(tmp_path: Path) -> None:
    if _repro.has_module("tensorrt"):
        pytest.skip("tensorrt is installed here")
    proc, result = run_script(tmp_path, "trt_sdpa_scale")
    assert proc.returncode == 125, proc.stderr
    assert result is not None
    assert result["status"] == "untestable"
    assert result["reason"].startswith("tensorrt not importable by ")
    assert ": ModuleNotFoundError" in result["reason"]
    assert "sqrt(s)=0.353553 on Q and K^T" in result["reason"]
    assert "ORT(CPU) matches float64 eager" in result["reason"]
    _check_export_half(result, 0.125)
    libs = result["provenance"]["libraries"]
    assert {"torch", "onnx", "onnxruntime"} <= set(libs)


def test_trt_sdpa_scale_unfolded_graph_has_sqrt_nodes(tmp_path: Path) -> None:
    params = dict(SMALL_TRT, constant_folding=False, scale=0.3)
    proc, result = run_script(tmp_path, "trt_sdpa_scale", "--params", json.dumps(params))
    assert proc.returncode == 125, proc.stderr
    assert result is not None
    _check_export_half(result, 0.3)
    assert result["metrics"]["graph.sdpa.sqrt_ops"] >= 1


def test_trt_sdpa_scale_with_tensorrt_but_no_gpu(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "tensorrt").mkdir(parents=True)
    (site / "tensorrt" / "__init__.py").write_text("__version__ = '10.7.0.23'\n")
    proc, result = run_script(
        tmp_path, "trt_sdpa_scale", "--params", json.dumps(SMALL_TRT), pythonpath=[site]
    )
    assert proc.returncode == 125, proc.stderr
    assert result is not None
    assert result["reason"].startswith(f"no CUDA device (torch {torch.__version__}, CUDA None)")
    assert result["provenance"]["libraries"]["tensorrt"]["module_version"] == "10.7.0.23"
    _check_export_half(result, 0.125)
