"""A bisection pins a commit by its full sha, matrix.yaml by the name it declares: two keys
for one experiment. The runs a bisection made of a declared commit (its ends, repeated when
calibrated) are that cell's verdicts in the report, never "another definition" of it."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from repromatrix.bisect_plan import BisectRequest, make_setup
from repromatrix.candidates import Candidate
from repromatrix.cli import main
from repromatrix.config import load_matrix
from repromatrix.expand import expand
from repromatrix.fail_on import failure, flaky_line
from repromatrix.host import HostInfo
from repromatrix.model import SourceKind, Status
from repromatrix.planning import plan
from repromatrix.records import Result
from repromatrix.run_summary import RunSummary

GOOD, BAD = "a" * 40, "b" * 40


def _matrix(tmp_path: Path) -> Path:
    (tmp_path / "r.py").write_text("")
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(
        "schema: 1\n"
        "libraries:\n"
        f"  lib: {{git: {tmp_path / 'upstream'}, import: lib,"
        f" versions: [{{git: {GOOD[:10]}}}, {{git: {BAD[:10]}}}]}}\n"
        "repros:\n"
        "  r: {script: r.py, gpus: [cpu], libraries: {lib: all}}\n"
    )
    return matrix


def _record(key: str, label: str, commit: str, status: Status, n: int) -> Result:
    return Result(
        key=key,
        cell_id=f"r[cpu,host,lib={label}]",
        repro="r",
        base="host",
        gpu="cpu",
        pins={"lib": label},
        commits={"lib": commit},
        status=status,
        reason=status.value,
        finished=f"2026-01-01T00:{n:02d}:00+00:00",
        metrics={"err": float(status is Status.REGRESSED)},
        thresholds={"max_err": 0.5},
    )


def test_a_bisects_runs_of_a_declared_commit_count_in_its_cells_verdicts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`run` once (passed at the good end), then a calibrated bisect ran that end 5 more
    times (4 passed, 1 a false alarm): every output showed the cell passed, not flaky, the
    bisection's runs taken for those of an older repro script (same label, another key)."""
    matrix_path = _matrix(tmp_path)
    matrix = load_matrix(matrix_path)
    request = BisectRequest(repro="r", library="lib", good=GOOD[:10], bad=BAD[:10])
    setup = make_setup(request, matrix)
    declared = {c.id.rpartition("=")[2][:-1]: c.key for c in expand(matrix)}
    # The bisection's cell of the good end: the full sha, labelled as matrix.yaml names it.
    good_end = Candidate(rev=GOOD, label=GOOD[:10], kind=SourceKind.GIT)
    bisect_key = setup.cell(setup.pin(good_end)).key
    assert bisect_key != declared[GOOD[:10]]  # two keys for one experiment
    records = [_record(declared[GOOD[:10]], GOOD[:10], GOOD, Status.PASSED, 0)]
    records += [_record(declared[BAD[:10]], BAD[:10], BAD, Status.REGRESSED, 1)]
    statuses = [Status.PASSED, Status.REGRESSED, Status.PASSED, Status.PASSED, Status.PASSED]
    records += [_record(bisect_key, GOOD[:10], GOOD, s, 10 + i) for i, s in enumerate(statuses)]
    store = tmp_path / "results"
    store.mkdir()
    (store / "x.jsonl").write_text("".join(json.dumps(r.record()) + "\n" for r in records))
    out = tmp_path / "rep"
    argv = ["--matrix", str(matrix_path), "report", "--results", str(store), "--out", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    table = (out / "results.csv").read_text().splitlines()
    rows = {row["cell_id"]: row for row in csv.DictReader(table)}
    good = rows[f"r[cpu,host,lib={GOOD[:10]}]"]
    assert (good["flaky"], good["passed_records"], good["regressed_records"]) == ("true", "5", "1")
    for name in ("summary.md", "junit.xml", "index.html"):
        text = (out / name).read_text()
        assert "5 passed, 1 regressed" in text, name
        assert "another definition" not in text, name


def test_run_fail_on_weighs_a_bisects_runs_of_the_cell_as_junit_does(tmp_path: Path) -> None:
    """After that bisection, `run --fail-on regressed` reused the cell's one pass and ended
    well, where junit.xml fails the cell as flaky; the run's flaky line missed it too. The
    bisection's runs are weighed (never reused: a run of the cell is its own key's)."""
    matrix = load_matrix(_matrix(tmp_path))
    setup = make_setup(
        BisectRequest(repro="r", library="lib", good=GOOD[:10], bad=BAD[:10]), matrix
    )
    cell = next(c for c in expand(matrix) if c.id.endswith(f"={GOOD[:10]}]"))
    twin = setup.cell(setup.pin(Candidate(rev=GOOD, label=GOOD[:10], kind=SourceKind.GIT))).key
    own = _record(cell.key, GOOD[:10], GOOD, Status.PASSED, 0)
    bisected = [_record(twin, GOOD[:10], GOOD, s, 1 + i) for i, s in enumerate((P, R, P))]
    elsewhere = _record(twin, GOOD[:10], GOOD, R, 9).model_copy(update={"base_fingerprint": "x"})
    history = {cell.key: [own], twin: [*bisected, elsewhere]}
    host = HostInfo(hostname="vm", gpus=())
    chosen = cast(Any, SimpleNamespace(base_fingerprint=lambda c: ""))
    planned = plan([cell], host=host, choose=lambda c: chosen, history=history)
    assert [c.key for c, _ in planned.reused] == [cell.key]
    assert planned.to_run == ()
    assert planned.evidence[cell.key] == (own, *bisected)  # not another base's record
    summary = RunSummary(run_id="x", evidence=planned.evidence)
    failed = failure(summary, [cell], {Status.REGRESSED})
    assert failed is not None
    assert "1 flaky" in str(failed)
    assert "(3 passed, 1 regressed)" in (flaky_line(summary) or "")


def test_run_fail_on_weighs_a_bisects_runs_of_a_cell_that_had_no_record(tmp_path: Path) -> None:
    """A cell pinned by a name, with no record of its own, names no commit to plan with:
    its first `run --fail-on flaky` weighed the new record alone and ended 0 where the
    report (the bisection's runs 2 passed, 1 regressed beside it) and the same run again
    said flaky. The new record names the commit: its twins are weighed after the run."""
    from repromatrix.planning import evidence_after

    matrix = load_matrix(_matrix(tmp_path))
    setup = make_setup(
        BisectRequest(repro="r", library="lib", good=GOOD[:10], bad=BAD[:10]), matrix
    )
    cell = next(c for c in expand(matrix) if c.id.endswith(f"={GOOD[:10]}]"))
    twin = setup.cell(setup.pin(Candidate(rev=GOOD, label=GOOD[:10], kind=SourceKind.GIT))).key
    bisected = [_record(twin, GOOD[:10], GOOD, s, 1 + i) for i, s in enumerate((P, R, P))]
    history = {twin: bisected}
    host = HostInfo(hostname="vm", gpus=())
    chosen = cast(Any, SimpleNamespace(base_fingerprint=lambda c: ""))
    planned = plan([cell], host=host, choose=lambda c: chosen, history=history)
    assert [p.cell.key for p in planned.to_run] == [cell.key]
    made = _record(cell.key, GOOD[:10], GOOD, P, 9)
    evidence = evidence_after(planned, [made], history, host)
    assert evidence[cell.key] == tuple(bisected)
    summary = RunSummary(run_id="x", results=[made], evidence=evidence)
    failed = failure(summary, [cell], {"flaky"})
    assert failed is not None
    assert f"1 flaky: passed and regressed in their records): {cell.id} (3 passed" in str(failed)
    assert f"{cell.id} (3 passed, 1 regressed)" in (flaky_line(summary) or "")


P, R = Status.PASSED, Status.REGRESSED
