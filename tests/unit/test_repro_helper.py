"""repros/_repro.py: params, results, exit codes, JSON, metrics, provenance, timing."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

# the repro scripts are standalone files, importable as the harness's PYTHONPATH makes them
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "repros"))

import _repro
import pytest
import torch

REPROS_DIR = Path(_repro.__file__).resolve().parent

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
PROVENANCE_KEYS = {
    "python",
    "executable",
    "platform",
    "hostname",
    "torch",
    "cuda",
    "cudnn",
    "triton",
    "driver",
    "gpu",
    "libraries",
    "env",
    "image",
}

DEFAULTS: dict[str, Any] = {"seed": 1, "scale": 0.5, "name": "x", "flag": False, "sizes": [1, 2]}


# ---------------------------------------------------------------------------------------
# params


def test_merge_params_overrides_and_keeps_defaults() -> None:
    merged = _repro.merge_params(DEFAULTS, {"seed": 7, "scale": 2})
    assert merged == {"seed": 7, "scale": 2, "name": "x", "flag": False, "sizes": [1, 2]}
    assert DEFAULTS["seed"] == 1  # defaults untouched


def test_merge_params_none_gives_a_copy_of_the_defaults() -> None:
    merged = _repro.merge_params(DEFAULTS, None)
    assert merged == DEFAULTS
    assert merged is not DEFAULTS


def test_merge_params_unknown_key_names_the_key() -> None:
    with pytest.raises(_repro.ParamsError, match=r"unknown param 'sede'") as info:
        _repro.merge_params(DEFAULTS, {"sede": 3})
    assert "seed" in str(info.value)  # the known keys are listed
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [("seed", "7"), ("seed", 1.5), ("seed", True), ("flag", 1), ("scale", "0.1"), ("sizes", 3)],
)
def test_merge_params_rejects_wrong_types(key: str, value: Any) -> None:
    with pytest.raises(_repro.ParamsError, match=repr(key)):
        _repro.merge_params(DEFAULTS, {key: value})


def test_merge_params_rejects_a_non_mapping() -> None:
    with pytest.raises(_repro.ParamsError, match="JSON object"):
        _repro.merge_params(DEFAULTS, [1, 2])  # type: ignore[arg-type]


def test_parse_params_json() -> None:
    assert _repro.parse_params_json(None) is None
    assert _repro.parse_params_json('{"seed": 3}') == {"seed": 3}
    with pytest.raises(_repro.ParamsError, match="not valid JSON"):
        _repro.parse_params_json("{seed: 3}")
    with pytest.raises(_repro.ParamsError, match="must be a JSON object"):
        _repro.parse_params_json("[1]")


# ---------------------------------------------------------------------------------------
# exit codes, reasons


@pytest.mark.parametrize(
    ("status", "code"),
    [("passed", 0), ("regressed", 1), ("untestable", 125), ("error", 2), ("bogus", 2)],
)
def test_exit_code_mapping(status: str, code: int) -> None:
    assert _repro.exit_code(status) == code


@pytest.mark.parametrize("status", ["passed", "regressed", "untestable", "error", "bogus", None])
def test_worker_exit_codes_are_the_protocols(
    status: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A persistent worker cannot import `_repro` (the repro brings its own), so
    worker_result.py keeps a copy of the exit table: the two must not drift, or a cell's
    exit code would depend on whether it ran in a worker or under --isolate."""
    from repromatrix.executors import worker_result

    result = {"repro": "r", "status": status, "reason": "checked"}
    assert worker_result.exit_of(result) == _repro.exit_code(str(status))
    # The line `_repro.main` prints: a cell's "last output" reads alike in both modes.
    assert capsys.readouterr().err == f"r: {status}: checked\n"
    assert worker_result.exit_of(None) == _repro.EXIT_ERROR == worker_result.EXIT_ERROR


def test_one_line_and_exc_reason() -> None:
    assert _repro.one_line("a\n  b\tc ") == "a b c"
    assert len(_repro.one_line("x" * 2000)) == 500
    assert _repro.exc_reason(ValueError("bad\nthing")) == "ValueError: bad thing"


# ---------------------------------------------------------------------------------------
# metrics


def test_finite_or_none() -> None:
    assert _repro.finite_or_none(float("nan")) is None
    assert _repro.finite_or_none(float("inf")) is None
    assert _repro.finite_or_none(-float("inf")) is None
    assert _repro.finite_or_none(None) is None
    assert _repro.finite_or_none("abc") is None
    assert _repro.finite_or_none(True) == 1
    assert _repro.finite_or_none(3) == 3
    assert _repro.finite_or_none(torch.tensor(0.25)) == 0.25
    assert _repro.finite_or_none(torch.tensor(float("nan"))) is None


def test_error_stats_counts_nan_and_ignores_it_in_max() -> None:
    ref = torch.tensor([1.0, 2.0, 0.0, 4.0])
    got = torch.tensor([1.5, float("nan"), 1e-3, float("inf")], dtype=torch.float16)
    stats = _repro.error_stats(got, ref, rel_floor=1e-2)
    assert stats["numel"] == 4
    assert stats["nan"] == 1
    assert stats["inf"] == 1
    assert stats["ref_nonfinite"] == 0
    assert stats["max_abs"] == pytest.approx(0.5)
    assert stats["mean_abs"] == pytest.approx((0.5 + 1e-3) / 2, rel=1e-3)
    # relative error of 1e-3 vs reference 0 uses the floor 1e-2, not 0
    assert stats["max_rel"] == pytest.approx(0.5)
    assert stats["mean_rel"] == pytest.approx((0.5 + 0.1) / 2, rel=1e-3)
    assert stats["ref_max_abs"] == 4.0
    assert "mismatch" not in stats


def test_error_stats_all_nan_gives_none_not_nan() -> None:
    stats = _repro.error_stats(torch.full((3,), float("nan")), torch.ones(3))
    assert stats["nan"] == 3
    assert stats["max_abs"] is None
    assert stats["mean_rel"] is None
    json.dumps(stats, allow_nan=False)


def test_error_stats_mismatch_matches_torch_isclose() -> None:
    gen = torch.Generator().manual_seed(0)
    ref = torch.randn(1000, generator=gen, dtype=torch.float64)
    got = ref + torch.randn(1000, generator=gen, dtype=torch.float64) * 2e-3
    got[3] = float("nan")
    stats = _repro.error_stats(got, ref, atol=1e-3, rtol=1e-3)
    expected = int((~torch.isclose(got, ref, rtol=1e-3, atol=1e-3)).sum())
    assert stats["mismatch"] == expected
    assert 0 < expected < 1000
    assert stats["mismatch_frac"] == pytest.approx(expected / 1000)


def test_rel_l2() -> None:
    ref = torch.tensor([3.0, 4.0])
    assert _repro.rel_l2(ref + torch.tensor([0.3, 0.4]), ref) == pytest.approx(0.1)
    assert _repro.rel_l2(torch.tensor([float("nan"), 1.0]), ref) is None
    assert _repro.rel_l2(torch.zeros(2), torch.zeros(2)) == 0.0


def test_flatten_metrics() -> None:
    assert _repro.flatten_metrics("a.b", {"max_abs": 1, "nan": 0}) == {
        "a.b.max_abs": 1,
        "a.b.nan": 0,
    }


def test_cuda_time_ms_uses_events_after_warmup(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = {"t": 0.0}
    calls: list[str] = []

    class FakeEvent:
        def __init__(self, enable_timing: bool = False) -> None:
            assert enable_timing
            self.t = 0.0

        def record(self) -> None:
            self.t = clock["t"]

        def synchronize(self) -> None:
            calls.append("sync-event")

        def elapsed_time(self, other: FakeEvent) -> float:
            return other.t - self.t

    durations = iter([9.0, 9.0, 1.0, 5.0, 3.0])  # two warm-up calls, then three timed ones

    def fn() -> None:
        clock["t"] += next(durations)
        calls.append("fn")

    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: calls.append("sync"))
    timing = _repro.cuda_time_ms(fn, warmup=2, iters=3)
    assert timing == {"median_ms": 3.0, "min_ms": 1.0, "mean_ms": 3.0}
    assert calls[:3] == ["fn", "fn", "sync"]


# ---------------------------------------------------------------------------------------
# preconditions


def test_require_cuda_on_this_cpu_machine_is_untestable() -> None:
    if torch.cuda.is_available():
        pytest.skip("this test describes the GPU-less development machine")
    with pytest.raises(_repro.Untestable, match=r"^no CUDA device \(torch .*, built with CUDA"):
        _repro.require_cuda(torch)


def test_import_or_untestable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(
        _repro.Untestable,
        match=rf"^surely_absent_lib not importable by {re.escape(sys.executable)}: no module",
    ):
        _repro.import_or_untestable("surely_absent_lib")
    (tmp_path / "broken_lib_for_test.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(
        _repro.Untestable,
        match=r"^broken_lib_for_test not importable by .*: RuntimeError: boom at import$",
    ):
        _repro.import_or_untestable("broken_lib_for_test")
    assert _repro.import_or_untestable("json") is json
    assert _repro.has_module("json")
    assert not _repro.has_module("surely_absent_lib")


# ---------------------------------------------------------------------------------------
# provenance


def test_provenance_reads_env_and_merges_harness_libraries() -> None:
    env = {
        "REPROMATRIX_IMAGE_REF": "nvcr.io/nvidia/pytorch:24.12-py3",
        "REPROMATRIX_IMAGE_DIGEST": "sha256:abc",
        "REPROMATRIX_LIBRARIES": json.dumps(
            {
                "fla": {"rev": "85992884", "commit": "8" * 40, "source": "git"},
                "onnx": {"source": "pypi"},
            }
        ),
        "OTHER": "not recorded",
    }
    prov = _repro.provenance(["onnx", "surely_absent_lib"], env=env)
    assert set(prov) == PROVENANCE_KEYS
    assert prov["image"] == {"ref": "nvcr.io/nvidia/pytorch:24.12-py3", "digest": "sha256:abc"}
    assert set(prov["env"]) == {
        "REPROMATRIX_IMAGE_REF",
        "REPROMATRIX_IMAGE_DIGEST",
        "REPROMATRIX_LIBRARIES",
    }
    libs = prov["libraries"]
    assert libs["fla"] == {"rev": "85992884", "commit": "8" * 40, "source": "git"}
    import onnx

    assert libs["onnx"]["version"] == onnx.__version__
    assert libs["onnx"]["source"] == "pypi"
    assert libs["onnx"]["path"].endswith("__init__.py")
    assert "surely_absent_lib" not in libs
    assert prov["python"].count(".") == 2
    json.dumps(prov, allow_nan=False)


def test_provenance_survives_garbage_library_json() -> None:
    prov = _repro.provenance([], env={"REPROMATRIX_LIBRARIES": "{not json"})
    assert prov["libraries"] == {}
    assert prov["image"] == {"ref": None, "digest": None}


def test_provenance_reads_torch_only_when_imported() -> None:
    prov = _repro.provenance([], env={})
    assert prov["torch"] == torch.__version__  # torch is imported in this process
    assert prov["cuda"] == torch.version.cuda
    if not torch.cuda.is_available():
        assert prov["gpu"] is None
        assert prov["driver"] is None or isinstance(prov["driver"], str)


def test_shared_memory_per_sm_attribute_names() -> None:
    class New:
        shared_memory_per_multiprocessor = 233472

    class Missing:
        pass

    assert _repro.shared_memory_per_sm(New()) == 233472
    assert _repro.shared_memory_per_sm(Missing()) is None


# ---------------------------------------------------------------------------------------
# execute: the result dict


def _ok_body(cell: _repro.Recorder) -> _repro.StatusReason:
    cell.metric("a.nan_metric", float("nan"))
    cell.metric("a.value", 1.5)
    cell.threshold("tol", 1e-3)
    return _repro.REGRESSED, "saw 1.5 > 1e-3\nsecond line"


def test_execute_builds_the_full_result() -> None:
    result = _repro.execute("demo", DEFAULTS, {"seed": 3}, _ok_body, libraries=("onnx",))
    assert set(result) == RESULT_KEYS
    assert result["schema"] == 1
    assert result["repro"] == "demo"
    assert result["status"] == "regressed"
    assert result["reason"] == "saw 1.5 > 1e-3 second line"
    assert result["metrics"] == {"a.nan_metric": None, "a.value": 1.5}
    assert result["thresholds"] == {"tol": 1e-3}
    assert result["params"]["seed"] == 3
    assert result["params"]["scale"] == 0.5
    assert set(result["provenance"]) == PROVENANCE_KEYS
    assert result["started"].endswith("+00:00")
    assert result["duration_s"] >= 0
    json.dumps(result, allow_nan=False)


def test_execute_untestable_keeps_metrics() -> None:
    def body(cell: _repro.Recorder) -> _repro.StatusReason:
        cell.metric("export.ok", 1)
        raise _repro.Untestable("no CUDA device")

    result = _repro.execute("demo", DEFAULTS, None, body)
    assert result["status"] == "untestable"
    assert result["reason"] == "no CUDA device"
    assert result["metrics"] == {"export.ok": 1}
    assert "traceback" not in result


def test_execute_exception_becomes_error_with_traceback() -> None:
    def body(cell: _repro.Recorder) -> _repro.StatusReason:
        raise KeyError("missing")

    result = _repro.execute("demo", DEFAULTS, None, body)
    assert result["status"] == "error"
    assert result["reason"] == "KeyError: 'missing'"
    assert "Traceback" in result["traceback"]
    assert "body" in result["traceback"]


def test_execute_bad_params_is_an_error_naming_the_key() -> None:
    def body(cell: _repro.Recorder) -> _repro.StatusReason:
        raise AssertionError("must not run")

    result = _repro.execute("demo", DEFAULTS, {"bogus": 1}, body)
    assert result["status"] == "error"
    assert "unknown param 'bogus'" in result["reason"]


def test_cell_rejects_unknown_status() -> None:
    with pytest.raises(ValueError, match="unknown status"):
        _repro.Recorder("demo", {}).result("fine", "x")


# ---------------------------------------------------------------------------------------
# atomic JSON


def test_write_json_atomic_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "result.json"
    _repro.write_json_atomic(target, {"a": 1})
    _repro.write_json_atomic(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert os.listdir(target.parent) == ["result.json"]


def test_write_json_atomic_failure_keeps_old_file(tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    _repro.write_json_atomic(target, {"a": 1})
    with pytest.raises(ValueError, match="JSON compliant"):
        _repro.write_json_atomic(target, {"a": float("nan")})
    assert json.loads(target.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["result.json"]


# ---------------------------------------------------------------------------------------
# main, through a real subprocess of a tiny repro


DEMO_REPRO = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, os.environ["REPROS_DIR"])
    import _repro

    NAME = "demo"
    DEFAULT_PARAMS = {"outcome": "passed", "value": 1.0}

    def _body(cell):
        cell.metric("value", cell.params["value"])
        outcome = cell.params["outcome"]
        if outcome == "untestable":
            raise _repro.Untestable("no CUDA device")
        if outcome == "raise":
            raise RuntimeError("kaboom")
        return outcome, f"outcome {outcome}"

    def run(params):
        return _repro.execute(NAME, DEFAULT_PARAMS, params, _body)

    def crashing_run(params):
        raise RuntimeError("run itself broke")

    if __name__ == "__main__":
        fn = crashing_run if os.environ.get("CRASH_RUN") else run
        raise SystemExit(_repro.main(fn, DEFAULT_PARAMS))
    """
)


def _run_demo(
    tmp_path: Path, *args: str, crash: bool = False
) -> tuple[subprocess.CompletedProcess[str], Path]:
    script = tmp_path / "demo_repro.py"
    script.write_text(DEMO_REPRO)
    out = tmp_path / "out" / "result.json"
    env = dict(os.environ, REPROS_DIR=str(REPROS_DIR))
    if crash:
        env["CRASH_RUN"] = "1"
    proc = subprocess.run(
        [sys.executable, str(script), "--out", str(out), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    return proc, out


@pytest.mark.parametrize(
    ("outcome", "code"),
    [("passed", 0), ("regressed", 1), ("untestable", 125), ("raise", 2), ("error", 2)],
)
def test_main_exit_codes_and_json(tmp_path: Path, outcome: str, code: int) -> None:
    proc, out = _run_demo(tmp_path, "--params", json.dumps({"outcome": outcome, "value": 2}))
    assert proc.returncode == code, proc.stderr
    result = json.loads(out.read_text())
    assert set(result) - {"traceback"} == RESULT_KEYS
    assert result["repro"] == "demo"
    assert result["metrics"] == {"value": 2}
    if outcome == "raise":
        assert result["status"] == "error"
        assert result["reason"] == "RuntimeError: kaboom"
        assert "kaboom" in result["traceback"]
    else:
        assert result["status"] == outcome


def test_main_unknown_param_is_one_line_exit_2(tmp_path: Path) -> None:
    proc, out = _run_demo(tmp_path, "--params", '{"valeu": 3}')
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "unknown param 'valeu'" in proc.stderr
    result = json.loads(out.read_text())
    assert result["status"] == "error"
    assert "'valeu'" in result["reason"]


def test_main_run_that_raises_is_error_not_regressed(tmp_path: Path) -> None:
    proc, out = _run_demo(tmp_path, crash=True)
    assert proc.returncode == 2
    result = json.loads(out.read_text())
    assert result["status"] == "error"
    assert result["reason"] == "RuntimeError: run itself broke"
    assert result["repro"] == "demo"


def test_main_non_finite_param_is_refused(tmp_path: Path) -> None:
    proc, out = _run_demo(tmp_path, "--params", '{"value": 1e999}')
    assert proc.returncode == 2
    assert "param 'value' must be finite" in proc.stderr
    assert json.loads(out.read_text())["status"] == "error"


def test_cell_metric_nan_is_null_in_json() -> None:
    cell = _repro.Recorder("demo", {})
    assert cell.metric("x", math.nan) is None
    assert cell.metric("y", math.inf) is None
    assert json.loads(json.dumps(cell.result("passed", "ok")))["metrics"] == {"x": None, "y": None}
