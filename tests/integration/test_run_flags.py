"""`run`'s flags as a user combines them (--retry-errors, --repeat, --fail-on), through the
CLI as a real process on tiny CPU repros."""

from __future__ import annotations

from pathlib import Path

import pytest
from clihelpers import CliRunner, write_matrix

from repromatrix.model import Status
from repromatrix.store import ResultStore

pytestmark = pytest.mark.integration

#: A repro that passes, or errors (exits 3 without a result) while its flag file exists:
#: a cell whose environment broke for a while (an out-of-memory kill, a full /tmp).
TOGGLE = """\
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _fixture import args, finish
out, params = args()
if os.path.exists(params["flag"]):
    print("the environment broke")
    sys.exit(3)
finish(out, "toggle", "passed", "fine", max_abs=1e-5)
"""


def _toggle_matrix(tmp_path: Path) -> tuple[list[str], Path]:
    """`run` of one toggle cell: its argv, and the flag file that makes it error."""
    flag = tmp_path / "broken"
    matrix = write_matrix(
        tmp_path / "matrix.yaml",
        {"toggle": f"script: {{fx}}/toggle_repro.py, gpus: [cpu], params: {{flag: {flag}}}"},
    )
    (tmp_path / "fixture-repros" / "toggle_repro.py").write_text(TOGGLE)
    argv = ["--matrix", str(matrix), "run", "--results", "r", "--no-progress"]
    return argv, flag


def test_retry_errors_reruns_a_cell_whose_newest_record_is_an_error(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A cell that passed, then errored on `--rerun`: the run's line said '1 reused (1
    error/timeout: --retry-errors runs them again)', yet `--retry-errors` ran nothing
    (the older pass was enough) and `--fail-on error` then exited 0 on it."""
    argv, flag = _toggle_matrix(tmp_path)
    assert run_cli(*argv).returncode == 0
    flag.touch()
    broke = run_cli(*argv, "--rerun")
    assert "1 error, 0 reused" in broke.stderr, broke.stderr
    flag.unlink()
    retry = run_cli(*argv, "--retry-errors", "--fail-on", "error")
    assert retry.returncode == 0, retry.stderr
    assert "1 passed, 0 reused" in retry.stderr, retry.stderr
    statuses = [r.status for r in ResultStore(tmp_path / "r").load().results]
    assert statuses == [Status.PASSED, Status.ERROR, Status.PASSED]
    # The error is answered: a resumed run reuses the cell and no longer fails on it.
    again = run_cli(*argv, "--fail-on", "error")
    assert again.returncode == 0, again.stderr
    assert "1 reused, 0 not run here" in again.stderr


@pytest.mark.parametrize(
    ("flag", "typed", "meant"), [("--gpu", "CPU", "cpu"), ("--repro", "TOGGLE", "toggle")]
)
def test_a_selection_in_the_wrong_case_is_named_in_the_right_one(
    tmp_path: Path, run_cli: CliRunner, flag: str, typed: str, meant: str
) -> None:
    """`--gpu CPU` said "not in matrix.yaml (known: cpu)" with no hint, where `--gpu h100`
    got "did you mean 'H100'?": difflib weighs letters case and all."""
    argv, _ = _toggle_matrix(tmp_path)
    out = run_cli(*argv, flag, typed)
    assert out.returncode == 64, out.stderr
    assert f"did you mean '{meant}'?" in out.stderr, out.stderr


def test_fail_on_weighs_a_pass_then_an_error_as_the_report_does(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A cell that passed, then errored: the report showed it passed (a verdict is never
    hidden by a record that could not test), yet `run --fail-on error` failed on it (exit
    1) and `--fail-on passed` let it through; both now weigh its best evidence."""
    argv, flag = _toggle_matrix(tmp_path)
    assert run_cli(*argv).returncode == 0
    flag.touch()
    assert run_cli(*argv, "--rerun").returncode == 0
    report = run_cli("report", "--results", "r", "--out", "rep")
    assert report.returncode == 0, report.stderr
    assert (
        "| toggle | cpu | not reproduced (1 of 1 passed) |"
        in (tmp_path / "rep" / "summary.md").read_text()
    )
    on_error = run_cli(*argv, "--fail-on", "error")
    assert on_error.returncode == 0, on_error.stderr
    on_passed = run_cli(*argv, "--fail-on", "passed")
    assert on_passed.returncode == 1, on_passed.stderr
    assert "1 cell(s) ended passed (1 of them reused from earlier runs)" in on_passed.stderr


def test_a_repeat_that_tops_up_a_cell_counts_the_records_it_reused(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """`run --repeat 3` of a cell with one stored record ran two more and said '2
    passed, 0 reused': the one stored record that stands for its third run was unsaid.
    The counts are of runs: those made now and those the store already held."""
    argv, _ = _toggle_matrix(tmp_path)
    assert run_cli(*argv).returncode == 0
    topped = run_cli(*argv, "--repeat", "3")
    assert topped.returncode == 0, topped.stderr
    assert "2 passed, 1 reused, 0 not run here" in topped.stderr, topped.stderr
    whole = run_cli(*argv, "--repeat", "3")
    assert "3 reused, 0 not run here" in whole.stderr, whole.stderr
    once = run_cli(*argv)
    assert "1 reused, 0 not run here" in once.stderr, once.stderr
    fresh = run_cli(*argv, "--repeat", "2", "--rerun")
    assert "2 passed, 0 reused, 0 not run here" in fresh.stderr, fresh.stderr


@pytest.mark.parametrize(
    ("typed", "meant"), [("not-run", "not_run"), ("PASSED", "passed"), ("regresed", "regressed")]
)
def test_a_misspelt_fail_on_status_is_named_in_its_spelling(
    tmp_path: Path, run_cli: CliRunner, typed: str, meant: str
) -> None:
    """`--fail-on not-run` (the way `--fail-on` itself is spelt) said only "unknown
    status; use some of: …, not_run, …", where a misspelt flag, choice or selection
    says which name was meant."""
    argv, _ = _toggle_matrix(tmp_path)
    out = run_cli(*argv, "--fail-on", f"error,{typed}")
    assert out.returncode == 64, out.stderr
    assert f"--fail-on {typed}: unknown status; did you mean '{meant}'?" in out.stderr, out.stderr
    assert not (tmp_path / "r").exists()  # refused before anything ran


def test_a_repeat_that_tops_up_an_errored_cell_says_retry_errors_runs_it_again(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A cell whose one stored record is an error, topped up by `--repeat 3`: the line
    said '2 passed, 1 reused' and no '(1 error/timeout: --retry-errors runs them again)',
    which the same record reused by a plain run gets; the reused error was unsaid."""
    argv, flag = _toggle_matrix(tmp_path)
    flag.touch()
    assert "1 error, 0 reused" in run_cli(*argv).stderr
    flag.unlink()
    topped = run_cli(*argv, "--repeat", "3")
    assert topped.returncode == 0, topped.stderr
    assert (
        "2 passed, 1 reused (1 error/timeout: --retry-errors runs them again), 0 not run"
        in topped.stderr
    ), topped.stderr
    retried = run_cli(*argv, "--repeat", "3", "--retry-errors")
    assert "1 passed, 2 reused, 0 not run here" in retried.stderr, retried.stderr
