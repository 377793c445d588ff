"""`repromatrix bisect` end to end with a real flaky repro script (seeded per cell and run),
stored runs that disagree, --rerun, and a second failure met on the way: real git, real
`pip install --target` per commit, the CLI as a subprocess."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from history_repo import History, build, write_matrix

from repromatrix.model import Status
from repromatrix.records import Machine, Result
from repromatrix.store import ResultStore

pytestmark = pytest.mark.integration


def cli(
    root: Path, matrix: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "repromatrix", "--matrix", str(matrix), *args]
    argv += ["--executor=local", "--no-progress", f"--cache={root / 'cache'}"]
    return subprocess.run(
        argv,
        cwd=root,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def records(root: Path, results: str) -> list[Result]:
    return [r for r in ResultStore(root / results).load().results if r.status.is_final]


def confidence(stdout: str) -> float:
    found = re.search(r"^confidence: ([0-9.]+)%", stdout, re.MULTILINE)
    assert found, stdout
    return float(found.group(1)) / 100


BISECT = ("bisect", "pkg_check", "--library=bisectpkg", "--good=good", "--bad=bad")


@pytest.fixture(scope="module")
def flaky(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, History, Path]:
    """60 commits, the bug from m37; the repro wrongly says "regressed" 20% of the time."""
    root = tmp_path_factory.mktemp("flaky")
    history = build(root / "upstream", main=60, main_flags=lambda i: {"SCALE_BUG_MAIN": i >= 37})
    return root, history, write_matrix(root, history, params="{false_bad: 0.2}")


def test_a_flaky_repro_calibrated_names_the_commit_and_how_sure(
    flaky: tuple[Path, History, Path],
) -> None:
    root, history, matrix = flaky
    state = root / "state-calibrated"
    state.mkdir()
    env = {"FLAKY_STATE": str(state), "FLAKY_SEED": "7"}
    out = cli(root, matrix, *BISECT, "--calibrate=5", "--jobs=2", "--results=r1", env=env)
    assert out.returncode == 0, out.stderr
    assert f"first bad commit: {history.sha('m37')}" in out.stdout, out.stdout
    assert confidence(out.stdout) >= 0.99
    assert "flaky (" in out.stdout  # a commit whose runs disagree, shown as such
    runs = records(root, "r1")
    assert len(runs) > len({r.key for r in runs}), "repeats are fresh stored runs"
    assert any(ln.startswith("round ") and "calibrated" in ln for ln in out.stdout.splitlines())


def _flaky_good_end(root: Path, matrix: Path, results: str) -> dict[str, str]:
    """A matrix run repeated 8 times into `results`, some runs of the good end saying
    "regressed"; the environment that makes the repro's lies repeat."""
    state = root / f"state-{results}"
    state.mkdir()
    env = {"FLAKY_STATE": str(state), "FLAKY_SEED": "3"}
    run = cli(root, matrix, "run", "--repeat=8", f"--results={results}", "--jobs=2", env=env)
    assert run.returncode == 0, run.stderr
    good = [r for r in records(root, results) if r.pins["bisectpkg"] == "good"]
    assert {r.status.value for r in good} == {"passed", "regressed"}
    return env


def test_stored_runs_that_disagree_make_the_next_bisect_calibrate(
    flaky: tuple[Path, History, Path],
) -> None:
    root, history, matrix = flaky
    env = _flaky_good_end(root, matrix, "r2")
    out = cli(root, matrix, *BISECT, "--jobs=2", "--results=r2", env=env)
    assert out.returncode == 0, out.stderr
    # every stored run counted, not the newest of each, and the commits they ran told apart
    assert re.search(r", [1-9][0-9]? already evaluated \(16 stored runs\), ", out.stdout)
    assert "verdicts contradicted each other at" in out.stdout
    assert f"first bad commit: {history.sha('m37')}" in out.stdout
    assert confidence(out.stdout) >= 0.99
    # --rerun: none of the stored runs is evidence; every run is made afresh. Over the
    # boundary's two commits, whose dozens of stored runs the bisection above made (not
    # good..bad again: 34 fresh rounds, 22 s, for the same first line).
    ends = (f"--good={history.sha('m36')}", f"--bad={history.sha('m37')}")
    args = (*BISECT[:3], *ends, "--calibrate=3", "--results=r2")
    assert re.search(r" [1-9][0-9]* already evaluated", cli(root, matrix, *args, env=env).stdout)
    again = cli(root, matrix, *args, "--rerun", env=env)
    assert again.returncode == 0, again.stderr
    assert ", 0 already evaluated" in again.stdout.splitlines()[0]


def test_a_flaky_cell_outside_the_range_makes_the_bisect_calibrate_from_the_start(
    flaky: tuple[Path, History, Path],
) -> None:
    """The matrix's good cell (m0) is flaky in the store; a bisection of m20..bad, whose
    own commits never ran, knows the repro lies and calibrates from its first round
    instead of trusting one run per commit (where a lie that nothing contradicts would
    be taken for the truth)."""
    root, history, matrix = flaky
    env = _flaky_good_end(root, matrix, "r3")
    args = ("bisect", "pkg_check", "--library=bisectpkg", f"--good={history.sha('m20')}")
    out = cli(root, matrix, *args, "--bad=bad", "--jobs=2", "--results=r3", env=env)
    assert out.returncode == 0, out.stderr
    start = out.stdout.splitlines()[0]
    assert "calibrated from the start: the results hold a flaky cell of it: " in start
    assert "pkg_check[cpu,host,bisectpkg=good] passed and regressed" in start
    assert f"first bad commit: {history.sha('m37')}" in out.stdout
    assert confidence(out.stdout) >= 0.99
    assert "(calibrated because the results hold a flaky cell of it" in out.stdout
    # Declared in matrix.yaml, a repro is calibrated from the start with no store at all.
    declared = root / "declared.yaml"
    declared.write_text(matrix.read_text().replace("    params:", "    calibrate: 3\n    params:"))
    again = cli(root, declared, *BISECT, "--jobs=2", "--results=r4", env=env)
    assert again.returncode == 0, again.stderr
    assert "calibrated from the start: declared.yaml asks for calibrate: 3" in again.stdout
    assert f"first bad commit: {history.sha('m37')}" in again.stdout
    assert confidence(again.stdout) >= 0.99


def test_stored_verdicts_count_only_for_the_same_cell_variables(tmp_path: Path) -> None:
    """Verdicts made under another --cell-env were taken as evidence: a second bisection
    without the variable ran nothing and named the first bisection's commit."""
    history = build(tmp_path / "upstream", main=12, main_flags=lambda i: {"SCALE_BUG_MAIN": i >= 6})
    matrix = write_matrix(tmp_path, history)
    first = cli(tmp_path, matrix, *BISECT, "--results=r", "--cell-env=UNRELATED=1")
    assert first.returncode == 0, first.stderr
    again = cli(tmp_path, matrix, *BISECT, "--results=r", "--cell-env=UNRELATED=1")
    assert " 0 already evaluated" not in again.stdout  # the same variables: reused
    other = cli(tmp_path, matrix, *BISECT, "--results=r")
    assert other.returncode == 0, other.stderr
    assert ", 0 already evaluated" in other.stdout.splitlines()[0]
    assert f"first bad commit: {history.sha('m6')}" in other.stdout


def test_an_answer_of_several_commits_exits_6_as_git_bisect_run_stops(tmp_path: Path) -> None:
    """Commits that cannot be tested next to the boundary leave "one of N": printed in
    full, but no answer a script may act on (git bisect run exits non-zero there too)."""
    history = build(tmp_path / "upstream", main=12, main_flags=lambda i: {"SCALE_BUG_MAIN": i >= 6})
    skipped = [history.sha(f"m{i}")[:10] for i in (5, 6)]
    matrix = write_matrix(tmp_path, history, params=f"{{untestable_at: {skipped}}}")
    out = cli(tmp_path, matrix, *BISECT, "--jobs=2", "--results=r")
    assert out.returncode == 6, out.stdout + out.stderr
    assert "first bad commit is one of 3 (the others could not be evaluated):" in out.stdout
    for name in ("m5", "m6", "m7"):
        assert history.sha(name) in out.stdout
    assert "no single first bad commit: it is one of 3" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_different_failure_on_the_way_is_reported_not_followed(tmp_path: Path) -> None:
    # offset() is broken from m18 to m24 (another bug, fixed at m25); scale() from m33.
    # The first probe lands on m24: it regresses, but with offset_err, not the bad end's
    # scale_err. Followed, it would name m18.
    history = build(
        tmp_path / "upstream",
        main=50,
        main_flags=lambda i: {"OFFSET_BUG": 18 <= i < 25, "SCALE_BUG_MAIN": i >= 33},
    )
    matrix = write_matrix(tmp_path, history)
    out = cli(tmp_path, matrix, *BISECT, "--jobs=1", "--results=r")
    assert out.returncode == 0, out.stderr
    assert f"first bad commit: {history.sha('m33')}" in out.stdout, out.stdout
    assert "failed differently from the --bad end (scale_err)" in out.stdout
    assert f"{history.sha('m24')[:8]}: a different failure (offset_err)" in out.stdout
    # The round line says how the search took it, not a bare "regressed" (read as bad).
    m24 = history.sha("m24")[:8]
    round_of_m24 = next(
        line for line in out.stdout.splitlines() if line.startswith("round") and m24 in line
    )
    assert "regressed (a different failure; the followed check was within" in round_of_m24
    stored = {r.pins["bisectpkg"]: r for r in records(tmp_path, "r")}
    assert stored[history.sha("m24")[:10]].fingerprint == "offset_err"
    assert stored[history.sha("m49")[:10]].fingerprint == "scale_err"


def test_an_answer_that_regressed_without_saying_which_check_is_noted(tmp_path: Path) -> None:
    """m10-m29 crash without metrics (another bug), scale breaks at m30: the answer m10
    came at exit 0 with nothing saying it rests on a failure of unknown kind."""
    history = build(
        tmp_path / "upstream",
        main=40,
        main_flags=lambda i: {"OFFSET_BUG": 10 <= i < 30, "SCALE_BUG_MAIN": i >= 30},
    )
    matrix = write_matrix(tmp_path, history, params="{offset_crashes: true}")
    out = cli(tmp_path, matrix, *BISECT, "--jobs=1", "--results=r")
    assert out.returncode == 0, out.stderr
    assert "first bad commit:" in out.stdout
    # git bisect's answer too: m10 is the first commit that regressed at all.
    assert f"first bad commit: {history.sha('m10')}" in out.stdout, out.stdout
    assert "regressed without saying which check failed" in out.stdout, out.stdout
    assert "the --bad end failed scale_err" in out.stdout


def test_a_bad_end_that_regressed_without_saying_which_check_is_noted(tmp_path: Path) -> None:
    """The other way round: scale breaks at m10, and from m30 on the repro crashes without
    metrics (the --bad end says no check). Every regression counts as the --bad end's, so
    the answer is m10, as git's, which failed scale_err: it came at exit 0 with nothing
    saying that the failure named there may not be the one the --bad end showed."""
    history = build(
        tmp_path / "upstream",
        main=40,
        main_flags=lambda i: {"SCALE_BUG_MAIN": i >= 10, "OFFSET_BUG": i >= 30},
    )
    matrix = write_matrix(tmp_path, history, params="{offset_crashes: true}")
    out = cli(tmp_path, matrix, *BISECT, "--jobs=1", "--results=r")
    assert out.returncode == 0, out.stderr
    assert f"first bad commit: {history.sha('m10')}" in out.stdout, out.stdout
    note = next((ln for ln in out.stdout.splitlines() if ln.startswith("note: the --bad")), "")
    assert "regressed without saying which check failed" in note, out.stdout
    assert "RuntimeError: kernel failed" in note, note
    assert f"{history.sha('m10')[:8]} failed scale_err" in note, note


@pytest.mark.parametrize("spelling", ["tags", "short shas"])
def test_a_bisects_runs_of_the_matrix_ends_count_as_the_cells_in_report_and_fail_on(
    flaky: tuple[Path, History, Path], spelling: str
) -> None:
    """`run`, then a calibrated bisect of the matrix's own ends: the bisect pins them by
    full sha (another key), and --fail-on and the run's flaky line counted the run's one
    record of each end while the bisection's table showed 5 or more (declared by short sha,
    the report did too: the bisect's runs were "another definition" of the cell)."""
    root, history, tagged = flaky
    good, bad = (history.sha("m0")[:10], history.sha("m59")[:10])
    matrix = root / f"{spelling.replace(' ', '-')}.yaml"
    ends = "{git: good}, {git: bad}"
    text = tagged.read_text()
    matrix.write_text(
        text if spelling == "tags" else text.replace(ends, f"{{git: {good}}}, {{git: {bad}}}")
    )
    results = f"--results=r-{matrix.stem}"
    state = root / f"state-{matrix.stem}"
    state.mkdir()
    env = {"FLAKY_STATE": str(state), "FLAKY_SEED": "5"}
    assert cli(root, matrix, "run", results, env=env).returncode == 0
    out = cli(root, matrix, *BISECT, "--calibrate=5", "--jobs=2", results, env=env)
    assert out.returncode == 0, out.stderr
    stored = records(root, results.partition("=")[2])
    at_good = [r for r in stored if r.commits["bisectpkg"] == history.sha("m0")]
    assert len({r.key for r in at_good}) == 2  # two keys, one cell
    assert len(at_good) >= 6
    passed = sum(r.status.value == "passed" for r in at_good)
    regressed = sum(r.status.value == "regressed" for r in at_good)
    assert passed
    assert regressed  # seeded: a false alarm at the good end
    argv = ["--matrix", str(matrix), "report", results, f"--out=rep-{matrix.stem}"]
    report = subprocess.run(
        [sys.executable, "-m", "repromatrix", *argv],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert report.returncode == 0, report.stderr
    table = (root / f"rep-{matrix.stem}" / "results.csv").read_text().splitlines()
    (row,) = [row for row in csv.DictReader(table) if row["commit.bisectpkg"] == history.sha("m0")]
    assert (row["flaky"], row["passed_records"]) == ("true", str(passed))
    assert row["regressed_records"] == str(regressed)
    gate = cli(root, matrix, "run", results, "--fail-on=flaky", env=env)
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert f"({passed} passed, {regressed} regressed)" in gate.stderr


def test_stored_runs_whose_machines_disagree_are_no_flaky_repro(tmp_path: Path) -> None:
    """m6 regressed twice here and passed twice on another machine (a store merged from
    it): the report says "machines disagree", the bisection read a flaky repro and
    calibrated ("verdicts contradicted each other at m6"). It takes this machine's runs."""
    history = build(tmp_path / "upstream", main=12, main_flags=lambda i: {"SCALE_BUG_MAIN": i >= 6})
    matrix = write_matrix(tmp_path, history)
    m6 = history.sha("m6")
    text = matrix.read_text().replace("{git: good}, {git: bad}", f"{{git: good}}, {{git: {m6}}}")
    matrix.write_text(text)
    assert cli(tmp_path, matrix, "run", "--repeat=2", "--results=r").returncode == 0
    here = [r for r in records(tmp_path, "r") if r.commits["bisectpkg"] == m6]
    assert [r.status.value for r in here] == ["regressed", "regressed"]
    other = [
        r.model_copy(
            update={
                "status": Status.PASSED,
                "fingerprint": "",
                "machine": Machine(id="m-elsewhere"),
                "metrics": {"scale_err": 0.0, "offset_err": 0.0},
            }
        )
        for r in here
    ]
    ResultStore(tmp_path / "r", host="elsewhere").append_many(other)
    out = cli(tmp_path, matrix, *BISECT, "--jobs=2", "--results=r")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"first bad commit: {m6}" in out.stdout
    assert "contradicted each other" not in out.stdout
    assert "confidence: not measured" in out.stdout
    note = next(ln for ln in out.stdout.splitlines() if ln.startswith("note: stored runs"))
    assert note.startswith(f"note: stored runs of {m6[:8]} disagree only between machines ")
    assert "m-elsewhere passed 2" in note
    assert f"{here[0].machine.id} regressed 2" in note
    assert note.endswith("the bisection took this machine's 2 stored run(s) alone")


def test_a_report_of_a_calibrated_bisect_says_its_boundary_and_how_sure(
    flaky: tuple[Path, History, Path],
) -> None:
    """`bisect --calibrate 3` of a repro wrongly "regressed" 20% of the time named m23 at
    99%; `repromatrix report` of its runs read each commit alone: flaky commits below m23
    and a single false alarm made it "begins between … — then begins between …", a range
    the runs had narrowed. It now weighs them as the bisection did: one boundary, at the
    confidence the bisection stated, the false alarm named as such. Here on the module's
    history (bug from m37; its commits' environments shared with the other tests), where
    the report read each commit alone says "begins between" the last good sha below m36
    and m37, m36 being flaky (seed 7, checked with report/build.py's weighing left out)."""
    root, history, matrix = flaky
    state = root / "state-report"
    state.mkdir()
    env = {"FLAKY_STATE": str(state), "FLAKY_SEED": "7"}
    results = "--results=r-report"
    out = cli(root, matrix, *BISECT, "--calibrate=3", "--jobs=2", results, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    m37 = history.sha("m37")
    assert f"first bad commit: {m37}" in out.stdout, out.stdout
    stated = re.search(r"^confidence: ([0-9.]+%)", out.stdout, re.MULTILINE)
    assert stated, out.stdout
    argv = ["--matrix", str(matrix), "report", results, "--out=rep-report", "--cache=cache"]
    report = subprocess.run(
        [sys.executable, "-m", "repromatrix", *argv],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert report.returncode == 0, report.stderr
    (row,) = [ln for ln in (root / "rep-report" / "summary.md").read_text().splitlines()
              if ln.startswith("| pkg_check | cpu |")]  # fmt: skip
    assert f"begins at {m37[:8]} (last good " in row, row
    assert "begins between" not in row, row
    assert f"by {m37[:8]}: {stated[1]} sure, as a calibrated bisect weighs" in row, row
