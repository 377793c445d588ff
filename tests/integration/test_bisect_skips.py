"""`repromatrix bisect` where commits next to the culprit cannot be tested (the repro exits
125) or err, against `git bisect run` with `git bisect skip` on the same history: "There
are only 'skip'ped commits left to test. The first bad commit could be any of: ..."."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from bisect_repo import _git
from history_repo import CHECK, History, bisect_cli, build_dag, write_matrix

from repromatrix.model import Status
from repromatrix.store import ResultStore

pytestmark = pytest.mark.integration

#: c0..c19 on one line; scale() is wrong from c12 on.
LINE = [(), *((i,) for i in range(19))]
CULPRIT = 12


@dataclass(frozen=True, kw_only=True)
class Upstream:
    history: History
    #: The bisections' cache: the mirror and one environment per commit, built once.
    cache: Path


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Upstream:
    """LINE and a cache for its bisections, shared: each test writes its own matrix and
    results (where its evaluations are counted), so no verdict passes between them."""
    root = tmp_path_factory.mktemp("skips")
    history = build_dag(root / "upstream", LINE, bad=lambda i: i >= CULPRIT, importable=True)
    return Upstream(history=history, cache=root / "cache")


def bisect(root: Path, upstream: Upstream, *args: str) -> subprocess.CompletedProcess[str]:
    return bisect_cli(root, "--good=good", "--bad=bad", *args, cache=upstream.cache)


def git_could_be_any_of(history: History, work: Path, skipped: set[str]) -> set[str]:
    """The commits `git bisect run` names when only skipped ones are left (exit 125)."""
    clone = work / "clone"
    subprocess.run(["git", "clone", "-q", str(history.path), str(clone)], check=True)
    script = work / "check.py"
    skip = f"import os, sys\nif os.popen('git rev-parse HEAD').read().strip() in {skipped!r}:"
    script.write_text(f"{skip}\n    sys.exit(125)\n" + CHECK.format(log=str(work / "log")))
    _git(clone, "bisect", "start", "bad", "good")
    out = subprocess.run(
        ["git", "-C", str(clone), "bisect", "run", sys.executable, str(script)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    assert "The first bad commit could be any of:" in out, out
    listed = out.split("could be any of:", 1)[1].split("We cannot bisect more!")[0]
    return set(listed.split())


def listed_suspects(stdout: str, history: History) -> set[str]:
    head = stdout.split("confidence:", maxsplit=1)[0]
    return {sha for sha in history.shas.values() if f"  {sha} " in head}


@pytest.mark.parametrize("kind", ["untestable_at", "exit_125_at", "error_at"])
def test_skipped_commits_next_to_the_culprit_leave_the_range_git_names(
    tmp_path: Path, upstream: Upstream, kind: str
) -> None:
    """c10 and c11, under the culprit c12, cannot be tested (exit 125) or err: the answer is
    git's "could be any of c10, c11, c12", exit 6. The line then said "it is one of 3
    (listed above) that could not be evaluated" (c12 was, and is bad) and sent untestable
    commits to --retry-errors, which reruns only errors and timeouts. A bare `sys.exit(125)`,
    no result JSON written (`exit_125_at`), is the same skip: it was recorded as an error
    ("a verdict without its result JSON is not trusted") and sent to --retry-errors too."""
    history = upstream.history
    skipped = {history.sha("c10"), history.sha("c11")}
    flag = tmp_path / "still-broken"
    flag.touch()
    ids = ", ".join(sha[:10] for sha in sorted(skipped))
    write_matrix(tmp_path, history, params=f"{{{kind}: [{ids}], error_while: '{flag}'}}")
    out = bisect(tmp_path, upstream)
    assert out.returncode == 6, out.stdout + out.stderr
    git = git_could_be_any_of(history, tmp_path, skipped)
    assert listed_suspects(out.stdout, history) == git == {*skipped, history.sha("c12")}
    line = out.stderr.strip().splitlines()[-1]
    assert "it is one of 3 (listed above), 2 of which could not be evaluated" in line, line
    if kind == "exit_125_at":
        records = ResultStore(tmp_path / "results").load().results
        bare = [r for r in records if r.commits["bisectpkg"] in skipped]
        assert {(r.status, r.reason) for r in bare} == {
            (Status.UNTESTABLE, "no libfoo at this commit")
        }, bare
    if kind != "error_at":
        assert "--retry-errors" not in line, line
        assert "make them testable and run the same command again" in line, line
        return
    assert "run the same command again with --retry-errors" in line, line
    again = bisect(tmp_path, upstream)  # stored errors stand until asked to retry
    assert again.returncode == 6, again.stdout + again.stderr
    assert "repromatrix: 0 evaluation(s)" in again.stderr, again.stderr
    flag.unlink()
    retried = bisect(tmp_path, upstream, "--retry-errors")
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert f"first bad commit: {history.sha('c12')}" in retried.stdout, retried.stdout
    # c11 alone: it passes, and c12 above it is bad; c10 need not run again.
    assert "repromatrix: 1 evaluation(s)" in retried.stderr, retried.stderr


def test_a_calibrated_round_line_names_the_group_the_skips_leave(
    tmp_path: Path, upstream: Upstream
) -> None:
    """Calibrated, with c10 and c11 untestable under the culprit c12: the round lines said
    "calibrated: most likely c12 (99.9% likely, ...)", a probability that belongs to the
    three together (the answer, rightly, is "one of 3"): no run can put c12 above c10."""
    history = upstream.history
    skipped = {history.sha("c10"), history.sha("c11")}
    ids = ", ".join(sha[:10] for sha in sorted(skipped))
    write_matrix(tmp_path, history, params=f"{{untestable_at: [{ids}]}}")
    out = bisect(tmp_path, upstream, "--calibrate=3")
    assert out.returncode == 6, out.stdout + out.stderr
    # The group is git's, asked of the same history, not a constant of this builder's.
    line = [history.sha(f"c{i}") for i in range(len(LINE))]
    git = sorted(git_could_be_any_of(history, tmp_path, skipped), key=line.index)
    assert git == [history.sha(f"c{i}") for i in (10, 11, 12)]  # the case this test means
    assert f"first bad commit is one of {len(git)}" in out.stdout, out.stdout
    assert listed_suspects(out.stdout, history) == set(git)
    last = [ln for ln in out.stdout.splitlines() if ln.startswith("round ")][-1]
    first, final = git[0][:8], git[-1][:8]
    assert f"calibrated: most likely one of {len(git)}, {first} to {final} (" in last, last


def test_a_stored_untestable_end_says_how_to_run_it_again(
    tmp_path: Path, upstream: Upstream
) -> None:
    """The --good end untestable (exit 125) in a first bisect: the second read its stored
    record and said "could not be evaluated (untestable ...); fix that or pick another
    --good", though fixing the repro changed nothing: the record stood, and only --rerun
    (not --retry-errors, for errors and timeouts) runs it again."""
    history = upstream.history
    good = history.sha("c0")[:10]  # tagged good
    write_matrix(tmp_path, history, params=f"{{untestable_at: [{good}]}}")
    first = bisect(tmp_path, upstream)
    assert first.returncode != 0, first.stdout + first.stderr
    assert "could not be evaluated" in first.stderr, first.stderr
    assert "stored record" not in first.stderr, first.stderr
    again = bisect(tmp_path, upstream)
    line = again.stderr.strip().splitlines()[-1]
    assert "could not be evaluated" in line, line
    assert "it is a stored record: --rerun runs every point again" in line, line
