"""What `repromatrix bisect` says beside an end that is not what it was given as, after
stored runs of the history (real git, real repro processes, the CLI as a subprocess)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from bisect_repo import _git
from history_repo import History, bisect_cli, build_dag, write_matrix

pytestmark = pytest.mark.integration

#: c0..c11 on one line; scale() is wrong from c5 on (and never fixed).
LINE = [(), *((i,) for i in range(11))]


@dataclass(frozen=True, kw_only=True)
class Upstream:
    history: History
    #: The bisections' cache: the mirror and one environment per commit, built once.
    cache: Path


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Upstream:
    """LINE and a cache for its bisections, shared by the tests that leave the history as
    it is: each writes its own matrix and results, so no verdict passes between them."""
    root = tmp_path_factory.mktemp("end_notes")
    history = build_dag(root / "upstream", LINE, bad=lambda i: i >= 5)
    return Upstream(history=history, cache=root / "cache")


def test_ends_given_the_wrong_way_round_are_not_said_to_be_a_history_that_changed_twice(
    tmp_path: Path, upstream: Upstream
) -> None:
    """A --find-fix with the ends swapped, after a bisect that stored c0 good and c11 bad:
    besides '--bad good (c0) is not bad' came 'note: ... more likely it changed more than
    once (e.g. good, then bad, then good again) than the repro is flaky; the commit named is
    one first good commit, and the rates above are the model's', of a history that changed
    once, no commit named and no rates shown."""
    history = upstream.history
    write_matrix(tmp_path, history)
    first = bisect_cli(tmp_path, "--good=good", "--bad=bad", cache=upstream.cache)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"first bad commit: {history.sha('c5')}" in first.stdout
    out = bisect_cli(tmp_path, "--good=bad", "--bad=good", "--find-fix", cache=upstream.cache)
    assert out.returncode == 6, out.stdout + out.stderr
    assert f"--bad good ({history.sha('c0')[:8]}) is not bad" in out.stderr, out.stderr
    assert "changed more than once" not in out.stdout, out.stdout
    assert "the commit named" not in out.stdout, out.stdout


@pytest.mark.parametrize("rev", ["@{u}", "main@{1}", "@{upstream}"])
def test_an_end_read_from_a_working_copys_reflog_or_upstream_says_so(
    tmp_path: Path, upstream: Upstream, rev: str
) -> None:
    """'--bad @{u}' was "revision '@{u}' is not a commit in <cache>/git/bisectpkg.git;
    check it or the --git-mirror", of a rev git resolves in the user's checkout: the
    cached bare clone has no branch settings or reflog to read it from."""
    history = upstream.history
    write_matrix(tmp_path, history)
    out = bisect_cli(tmp_path, "--good=good", f"--bad={rev}", cache=upstream.cache)
    assert out.returncode == 6, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert f"--bad {rev}: revision '{rev}' is read from a working copy's" in lines[0]
    assert f"(git rev-parse '{rev}' there)" in lines[0]
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("rev", "own"), [("origin/main", "main"), ("remotes/origin/main~2", "main~2")]
)
def test_an_end_named_as_a_checkout_names_its_remotes_branch_gets_the_branchs_name(
    tmp_path: Path, upstream: Upstream, rev: str, own: str
) -> None:
    """'--bad origin/main' (the remote's branch, as the user's checkout names it) was
    "revision 'origin/main' is not a commit in <cache>/git/bisectpkg.git; check it or the
    --git-mirror"; the clone holds the source's own branches: 'main'."""
    history = upstream.history
    write_matrix(tmp_path, history)
    out = bisect_cli(tmp_path, "--good=good", f"--bad={rev}", cache=upstream.cache)
    assert out.returncode == 6, out.stdout + out.stderr
    assert "which holds the source's own branches, not a checkout's remote-tracking" in out.stderr
    assert out.stderr.rstrip().endswith(f"for the source's branch, give '{own}'"), out.stderr
    done = bisect_cli(tmp_path, "--good=good", f"--bad={own}", cache=upstream.cache)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"first bad commit: {history.sha('c5')}" in done.stdout


def test_a_remote_tracking_branch_the_source_lacks_is_asked_for_as_its_commit(
    tmp_path: Path, upstream: Upstream
) -> None:
    """'--bad origin/feature', where the source has no branch 'feature' of its own (only its
    checkout's remote does), said "check it or the --git-mirror" of a name that is right
    in the user's checkout: the clone holds the source's own branches and tags."""
    write_matrix(tmp_path, upstream.history)
    out = bisect_cli(tmp_path, "--good=good", "--bad=origin/feature", cache=upstream.cache)
    assert out.returncode == 6, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "which holds the source's own branches and tags" in lines[0]
    assert "(git rev-parse 'origin/feature' there)" in lines[0]


def test_an_end_that_could_not_be_evaluated_names_no_confidence_to_measure(
    tmp_path: Path, upstream: Upstream
) -> None:
    """The --bad end untestable (exit 125): besides '--bad bad (c11) could not be
    evaluated' came 'confidence: not measured: 2 run(s) ...; one run per candidate trusts
    the repro to be deterministic (--calibrate N repeats each end N times and states a
    probability)', advice for an answer there was none of (calibrated, it says 'none')."""
    history = upstream.history
    write_matrix(tmp_path, history, params=f"{{untestable_at: [{history.sha('c11')[:10]}]}}")
    out = bisect_cli(tmp_path, "--good=good", "--bad=bad", cache=upstream.cache)
    assert out.returncode == 6, out.stdout + out.stderr
    assert f"--bad bad ({history.sha('c11')[:8]}) could not be evaluated" in out.stderr
    assert "confidence: none: no commit is named (see above); 2 run(s)" in out.stdout
    assert "--calibrate" not in out.stdout, out.stdout


def test_a_commit_whose_subject_holds_the_ascii_separators_is_bisected(tmp_path: Path) -> None:
    """A subject holding \\x1e (and \\x1f), which git keeps as written, stopped the
    bisection before any run: 'internal error: ValueError: not enough values to unpack'
    (exit 70); the log's records were parted at that byte."""
    history = build_dag(tmp_path / "upstream", LINE, bad=lambda i: False)
    write_matrix(tmp_path, history)
    upstream = tmp_path / "upstream"
    flags = upstream / "src" / "bisectpkg" / "flags_main.py"
    flags.write_text(flags.read_text().replace("SCALE_BUG_MAIN = False", "SCALE_BUG_MAIN = True"))
    (tmp_path / "message").write_bytes(b"scale: faster \x1e kernel \x1f path\n")
    who = ("-c", "user.name=Dev", "-c", "user.email=dev@example.com")
    _git(upstream, *who, "commit", "-q", "-a", "-F", str(tmp_path / "message"))
    culprit = _git(upstream, "rev-parse", "HEAD").strip()
    (upstream / "later.txt").write_text("later\n")
    _git(upstream, "add", "later.txt")
    _git(upstream, *who, "commit", "-q", "-m", "later")
    _git(upstream, "tag", "-f", "bad")
    out = bisect_cli(tmp_path, "--good=good", "--bad=bad")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"first bad commit: {culprit} 'scale: faster" in out.stdout, out.stdout


def test_ends_given_the_wrong_way_round_after_stored_runs_take_two_runs_to_say_so(
    tmp_path: Path, upstream: Upstream
) -> None:
    """The stored verdicts of a history that changed once, read with the ends swapped,
    contradicted each other (c2 fixed below c5 broken): that switched the search to
    calibrated mode, which ran the stable --bad end 6 more times ('7 of 7 runs') before
    saying what two runs say, as README promises ('in two runs it says so')."""
    history = upstream.history
    write_matrix(tmp_path, history)
    first = bisect_cli(tmp_path, "--good=good", "--bad=bad", cache=upstream.cache)
    assert first.returncode == 0, first.stdout + first.stderr
    out = bisect_cli(tmp_path, "--good=bad", "--bad=good", "--find-fix", cache=upstream.cache)
    assert out.returncode == 6, out.stdout + out.stderr
    c0 = history.sha("c0")[:10]
    runs = [ln for ln in out.stderr.splitlines() if f"bisectpkg={c0}]" in ln]
    assert len(runs) == 1, out.stderr  # one more than the stored one
    assert "is not bad: the repro says passed (2 of 2 runs)" in out.stderr, out.stderr
    assert "calibrated" not in out.stdout, out.stdout
