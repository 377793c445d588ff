"""Records of one cell on one machine that disagree only between bases (another
interpreter, or the `--cell-env NVIDIA_TF32_OVERRIDE=1` the README asks for where a
variable changes results), each steady on its own, are no flaky repro: the bases differ,
as `run` itself weighs them (it reuses and judges a base's own records only)."""

from __future__ import annotations

from pathlib import Path

import pytest
from recordfactory import on_machine, report_of

from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.report import build_report

PLAIN = "host:b748c06e5264d1e5"
TF32 = "host:b748c06e5264d1e5+6f1e2d3c4b5a"


def _on(label: str, status: Status, base: str, day: int) -> Result:
    r = on_machine(label, status, "m-a", day)
    harness = {"base": base, **({"cell_env": {"NVIDIA_TF32_OVERRIDE": "1"}} if "+" in base else {})}
    provenance = {**r.provenance, "harness": harness}
    return r.model_copy(update={"base_fingerprint": base, "provenance": provenance})


#: One machine, one GPU: 1.0 passes on both bases; 2.0 passes twice without the variable
#: and regresses twice with it.
SPLIT = [
    _on("1.0", Status.PASSED, PLAIN, 1),
    _on("1.0", Status.PASSED, TF32, 2),
    _on("2.0", Status.PASSED, PLAIN, 1),
    _on("2.0", Status.PASSED, PLAIN, 2),
    _on("2.0", Status.REGRESSED, TF32, 3),
    _on("2.0", Status.REGRESSED, TF32, 4),
]


def test_bases_of_one_machine_that_each_give_one_verdict_are_said_to_disagree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """summary.md said "regressed only intermittently: flaky at 2.0 (2 passed, 2
    regressed)", junit.xml 'type="flaky"', results.csv `flaky` true, where `run --fail-on
    flaky` on either base found nothing flaky: the variable decides, every time."""
    said = (
        f"bases disagree at 2.0 ({PLAIN} passed 2, "
        f"{TF32} (--cell-env NVIDIA_TF32_OVERRIDE=1) regressed 2)"
    )
    out = report_of(tmp_path, SPLIT, capsys)
    summary = (out / "summary.md").read_text()
    assert f"regressed only on some bases: {said}" in summary, summary
    # One machine: its note must not say machines disagree.
    assert "1 cell(s) where machines (or one machine's bases or GPUs) disagree, each" in summary
    junit = (out / "junit.xml").read_text()
    assert 'type="machines-disagree"' in junit, junit
    assert 'type="flaky"' not in junit, junit
    csv = (out / "results.csv").read_text().splitlines()
    (row,) = [ln for ln in csv if "lib=2.0" in ln]
    assert ",false,true," in row, row  # flaky false, machines_disagree true


def test_one_run_on_each_base_is_still_flaky_and_records_without_a_base_fall_to_the_gpus() -> None:
    (entry,) = build_report(SPLIT[3:5]).entries
    assert entry.flaky_text == "flaky: 1 passed, 1 regressed"
    # Records made before the base was recorded ("") are split by GPU as before.
    old = [r.model_copy(update={"base_fingerprint": ""}) for r in SPLIT[2:]]
    gpu = {"name": "NVIDIA H100", "uuid": ""}
    two = [r.model_copy(update={"provenance": {"gpu": {**gpu, "uuid": f"GPU-{i // 2}"}}})
           for i, r in enumerate(old)]  # fmt: skip
    (entry,) = build_report(two).entries
    assert entry.flaky_text == "GPUs disagree: GPU-0 of m-a passed 2, GPU-1 of m-a regressed 2"


def test_a_boundary_between_bases_that_disagree_is_said_to_be_theirs_maybe() -> None:
    """1.0 regresses with the variable and passes without it; 2.0 ran with it alone, 3.0
    without it alone: "ends at 3.0 (last bad 2.0)" would read as a fix in 3.0."""
    records = [
        _on("1.0", Status.PASSED, PLAIN, 1),
        _on("1.0", Status.PASSED, PLAIN, 2),
        _on("1.0", Status.REGRESSED, TF32, 3),
        _on("1.0", Status.REGRESSED, TF32, 4),
        _on("2.0", Status.REGRESSED, TF32, 1),
        _on("3.0", Status.PASSED, PLAIN, 1),
    ]
    (finding,) = build_report(records).repros[0].findings
    assert finding.summary.endswith(
        f"; 2.0 ran on {TF32} (--cell-env NVIDIA_TF32_OVERRIDE=1) alone and 3.0 on {PLAIN} "
        "alone, bases that disagree at 1.0: the change may be theirs"
    ), finding.summary


def test_a_bisection_weighs_its_bases_records_as_before() -> None:
    """A bisection takes its own base's records alone (`bisect_evidence`); where it cannot
    (a cluster's base is not known ahead), one machine's records that disagree between
    bases are its evidence as they were, not a split that keeps this machine's records."""
    from repromatrix.bisect_aliases import machines_apart
    from repromatrix.winner import machines_split

    records = SPLIT[2:]
    assert str(machines_split(records)).startswith("bases disagree: ")
    assert machines_split(records, bases=False) is None
    assert machines_apart(records, {r.key for r in records}, "m-a", "vm") == (records, None)


def test_report_compare_counts_bases_that_now_disagree_as_bases() -> None:
    """changes.md's headline counted "2 of machines that disagree" of one machine's bases."""
    from repromatrix.report.compare import compare

    comparison = compare(SPLIT[2:4], SPLIT[2:])
    (change,) = comparison.changes
    assert change.kind == "bases disagree now", change.kind
    assert "0 flaky changes, 1 of bases that disagree)" in comparison.headline
