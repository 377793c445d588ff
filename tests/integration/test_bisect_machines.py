"""`repromatrix bisect` over a store that holds another machine's runs of other commits than
this machine's (a store merged from m-b): the answer rests on this machine's runs, and says
where the machines differed. Real git, real pip installs per commit, the CLI as a
subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from history_repo import History, build, write_matrix

from repromatrix.model import Status
from repromatrix.records import Machine
from repromatrix.store import ResultStore

pytestmark = pytest.mark.integration


def cli(root: Path, *args: str, results: str = "r") -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "repromatrix", "--matrix", str(root / "matrix.yaml"), *args]
    argv += ["--executor=local", "--no-progress", f"--cache={root / 'cache'}"]
    argv += [f"--results={results}"]
    return subprocess.run(argv, cwd=root, env=dict(os.environ), capture_output=True, text=True,
                          timeout=600, check=False)  # fmt: skip


def stored(
    root: Path,
    history: History,
    *,
    here: list[str],
    on_m_b: list[str],
    says: Status = Status.PASSED,
) -> None:
    """Runs of `here` made by this machine, and of `on_m_b` by m-b, which says `says`
    (passed where this machine regresses: the bug is from m4 on here)."""
    matrix = root / "matrix.yaml"
    text = matrix.read_text()
    for commits, results in ((on_m_b, "theirs"), (here, "r")):
        if not commits:
            continue
        listed = ", ".join(f"{{git: {history.sha(c)}}}" for c in commits)
        matrix.write_text(text.replace("{git: good}, {git: bad}", listed))
        ran = cli(root, "run", results=results)
        assert ran.returncode in (0, 1), ran.stdout + ran.stderr
    matrix.write_text(text)
    theirs = [
        r.model_copy(
            update={
                "status": says,
                "machine": Machine(id="m-b"),
                "fingerprint": "" if says is Status.PASSED else "scale_err",
                "metrics": {"scale_err": 0.0 if says is Status.PASSED else 0.5, "offset_err": 0.0},
            }
        )
        for r in ResultStore(root / "theirs").load().results
        if r.status.is_final
    ]
    ResultStore(root / "r", host="m-b").append_many(theirs)


@pytest.fixture
def history(tmp_path: Path) -> History:
    history = build(tmp_path / "upstream", main=12, main_flags=lambda i: {"SCALE_BUG_MAIN": i >= 4})
    write_matrix(tmp_path, history)
    return history


def test_another_machines_good_run_above_this_machines_bad_one_is_set_aside(
    tmp_path: Path, history: History
) -> None:
    """m-b stored m5 good, this machine m4 bad: read as one history the bug came, went and
    came back, m4 and m5 ran again, m5 said bad here beside m-b's good, and the search
    calibrated on a "flaky repro" (25 runs). m-b's run is no evidence here."""
    stored(tmp_path, history, here=["m4"], on_m_b=["m5"])
    out = cli(tmp_path, "bisect", "pkg_check", "--library=bisectpkg", "--good=good",
              "--bad=bad", "--jobs=1")  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"first bad commit: {history.sha('m4')}" in out.stdout
    assert "confidence: not measured" in out.stdout
    assert "calibrated because" not in out.stdout
    assert "more than once" not in out.stdout
    m4, m5 = history.sha("m4")[:8], history.sha("m5")[:8]
    assert (
        f"note: {m5} was good in stored runs of m-b alone, taken as no evidence here "
        f"({m4}, older, was bad here; {m5} did not run here); the answer rests on this "
        "machine's runs"
    ) in out.stdout


def test_an_answer_never_rests_on_another_machines_run_alone(
    tmp_path: Path, history: History
) -> None:
    """m-b stored m8 good (it passes there); here the bug is from m4 on. Nothing here said
    otherwise until the answer: m9, whose parent m8 only m-b had seen good."""
    stored(tmp_path, history, here=[], on_m_b=["m8"])
    out = cli(tmp_path, "bisect", "pkg_check", "--library=bisectpkg", "--good=good",
              "--bad=bad", "--jobs=1")  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"first bad commit: {history.sha('m4')}" in out.stdout
    m8 = history.sha("m8")[:8]
    assert (
        f"note: {m8} was good in stored runs of m-b alone, taken as no evidence here (the "
        "answer would have rested on it); the answer rests on this machine's runs"
    ) in out.stdout


def test_an_end_is_not_refused_on_another_machines_runs_alone(
    tmp_path: Path, history: History
) -> None:
    """m-b stored the good end m0 regressed (it fails there); this machine never ran it.
    Run here, it passed beside m-b's run: a "flaky" end, and the search calibrated."""
    stored(tmp_path, history, here=[], on_m_b=["m0"], says=Status.REGRESSED)
    out = cli(tmp_path, "bisect", "pkg_check", "--library=bisectpkg", "--good=good",
              "--bad=bad", "--jobs=1")  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"first bad commit: {history.sha('m4')}" in out.stdout
    assert "calibrated because" not in out.stdout
    m0 = history.sha("m0")[:8]
    assert (
        f"note: good · {m0} was bad in stored runs of m-b alone, taken as no evidence here ("
        "the search ran it); here it was good: the machines differ; the answer rests on this "
        "machine's runs"
    ) in out.stdout
