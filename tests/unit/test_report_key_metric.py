"""A `key_metric` in matrix.yaml that no record of its repro has is said, not swapped."""

from __future__ import annotations

from pathlib import Path

import pytest

from repromatrix.cli import main
from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.store import ResultStore

MATRIX = (
    "schema: 1\n"
    "libraries:\n"
    "  lib: {pypi: lib-project, import: lib, versions: ['1.0', '1.1']}\n"
    "repros:\n"
    "  check:\n"
    "    script: r.py\n"
    "    gpus: [cpu]\n"
    "    libraries: {lib: all}\n"
    "    key_metric: KEY\n"
)


def _rec(label: str, status: Status, metrics: dict[str, float | None]) -> Result:
    return Result(
        key=f"k{label}",
        cell_id=f"check[cpu,host,lib={label}]",
        repro="check",
        base="host",
        gpu="cpu",
        pins={"lib": label},
        status=status,
        reason=status.value,
        metrics=metrics,
        thresholds={"scale_err": 1e-9},
        run_id="run-1",
        finished="2026-01-01T00:00:00+00:00",
    )


def _report(tmp_path: Path, key: str, capsys: pytest.CaptureFixture[str]) -> str:
    (tmp_path / "r.py").write_text("")
    (tmp_path / "matrix.yaml").write_text(MATRIX.replace("KEY", key))
    store = ResultStore(tmp_path / "results")
    store.append(_rec("1.0", Status.PASSED, {"scale_err": 0.0, "offset_err": 0.0}))
    store.append(_rec("1.1", Status.REGRESSED, {"scale_err": 0.5, "offset_err": 0.0}))
    argv = ["--matrix", str(tmp_path / "matrix.yaml"), "report"]
    argv += ["--results", str(tmp_path / "results"), "--out", str(tmp_path / "out"), "--jobs=1"]
    assert main(argv) == 0
    return capsys.readouterr().err


def test_a_misspelt_key_metric_is_said_with_the_name_it_may_mean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`key_metric: scale_error` (the records say `scale_err`): the report charted and
    quoted another metric it chose, and nothing said the declared one was in no record."""
    err = _report(tmp_path, "scale_error", capsys)
    assert (
        f"repromatrix: warning: {tmp_path / 'matrix.yaml'}:9:17: key_metric 'scale_error' of "
        "repro 'check' is in none of its records, so the report charts one it chose; fix "
        "the name (did you mean 'scale_err'?)"
    ) in err


def test_a_key_metric_like_none_names_what_the_records_have(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _report(tmp_path, "max_abs", capsys)
    assert "fix the name (its records have 'offset_err', 'scale_err')" in err


def test_a_key_metric_the_records_have_is_not_warned_of(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "warning" not in _report(tmp_path, "offset_err", capsys)


def test_a_flaky_only_series_chooses_the_metric_its_regression_failed() -> None:
    """A cell that passed 5 times and regressed once (scale_err over its threshold), the
    newest run a pass: the key metric was chosen from each cell's winner alone, all
    passes, and the summary named `offset_err`, which never failed, by its name's order."""
    from repromatrix.report.build import summary_rows

    thresholds = {"scale_err": 1e-9, "offset_err": 1e-9}
    runs = [
        _rec("1.0", status, {"scale_err": err, "offset_err": 0.0}).model_copy(
            update={"thresholds": thresholds, "finished": f"2026-01-01T00:0{i}:00+00:00"}
        )
        for i, (status, err) in enumerate(
            [(Status.PASSED, 0.0), (Status.REGRESSED, 0.25), *[(Status.PASSED, 0.0)] * 4]
        )
    ]
    (row,) = summary_rows(runs)
    assert "flaky at 1.0 (5 passed, 1 regressed)" in row.sentence
    assert row.key_metric == "scale_err", row
