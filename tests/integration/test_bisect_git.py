"""`repromatrix bisect` end to end on a git history built by the test (bisect_repo.py):
real git, real `pip install --target` per commit, the CLI as a real subprocess."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from bisect_repo import (
    BROKEN,
    FIX,
    FORK,
    REGRESSION,
    TAGS,
    BisectRepo,
    build,
    build_wheels,
    write_matrix,
)

from repromatrix.bisect import log_bound
from repromatrix.candidates import commit_candidates
from repromatrix.config import load_matrix
from repromatrix.errors import BisectError
from repromatrix.mirrors import Mirrors
from repromatrix.model import Status
from repromatrix.options import git_root
from repromatrix.records import Result
from repromatrix.store import ResultStore

pytestmark = pytest.mark.integration


@dataclass(frozen=True, kw_only=True)
class Workspace:
    root: Path
    matrix: Path
    repo: BisectRepo
    #: Environments and the git clone, shared by every test (one pip install per commit).
    cache: Path

    def bisect(
        self, results: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.cli("bisect", *args, "--results", results, env=env)

    def cli(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        full_env = dict(os.environ)
        full_env.update(env or {})
        argv = [sys.executable, "-m", "repromatrix", "--matrix", str(self.matrix), *args]
        if args[0] in ("bisect", "run"):
            argv += ["--cache", str(self.cache), "--executor", "local", "--no-progress"]
        return subprocess.run(
            argv,
            cwd=self.root,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    def records(self, results: str) -> list[Result]:
        return list(ResultStore(self.root / results).load().results)

    def candidates(self, old: str, new: str) -> int:
        out = subprocess.run(
            [
                "git",
                "-C",
                str(self.repo.path),
                "rev-list",
                "--count",
                "--ancestry-path",
                f"{old}..{new}",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return int(out.stdout) + 1


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root = tmp_path_factory.mktemp("bisect")
    repo = build(root / "upstream")
    matrix = write_matrix(root, repo)
    return Workspace(root=root, matrix=matrix, repo=repo, cache=root / "cache")


def bisect_records(records: list[Result]) -> list[Result]:
    return [r for r in records if r.run_id.startswith("bisect-") and r.status.is_final]


def test_finds_the_first_bad_commit_within_log2_and_a_second_run_is_free(ws: Workspace) -> None:
    md = ws.root / "regression.md"
    out = ws.bisect(
        "results-k1",
        "bisectpkg_scale",
        "--library=bisectpkg",
        "--good=v1.0",
        "--bad=v2.0",
        "--jobs=1",
        f"--markdown={md}",
    )
    assert out.returncode == 0, out.stderr
    bad = ws.repo.sha(REGRESSION)
    assert f"first bad commit: {bad} 'commit {REGRESSION}: speed up scale()" in out.stdout
    n = ws.candidates("v1.0", "v2.0")
    evaluations = bisect_records(ws.records("results-k1"))
    # The two ends, then git's very commits: after the skipped (broken) commit 60, git
    # bisect steps away to commit 101 (bisect.c skip_away), which costs one run more than
    # a neighbour would; `git bisect run` runs the same 9 commits on this history.
    assert len(evaluations) <= math.ceil(math.log2(n)) + 4, out.stdout
    # Every evaluation is an ordinary stored result with commit + date for the report.
    keys = Counter(r.key for r in evaluations)
    assert max(keys.values()) == 1
    pins = evaluations[0].provenance["harness"]["pins"]["bisectpkg"]
    assert len(pins["commit"]) == 40
    assert pins["committed"].startswith("20")
    # The probe that met a commit which does not install skipped to a neighbour.
    broken = {ws.repo.sha(i)[:10] for i in BROKEN}
    errors = [r for r in evaluations if r.status is Status.ERROR]
    assert errors, "the layout puts a broken commit on the first probe"
    assert all(r.pins["bisectpkg"] in broken for r in errors)
    assert "pip could not install" in errors[0].reason
    assert "skip" in out.stdout
    text = md.read_text()
    assert bad[:10] in text
    assert "| # | revision |" in text

    again = ws.bisect(
        "results-k1", "bisectpkg_scale", "--library=bisectpkg", "--good=v1.0", "--bad=v2.0"
    )
    assert again.returncode == 0, again.stderr
    assert f"first bad commit: {bad}" in again.stdout
    assert f"{len(evaluations)} already evaluated" in again.stdout
    assert len(bisect_records(ws.records("results-k1"))) == len(evaluations)
    # The second ran nothing, and left no empty folder of its own in the cache.
    assert all(any(run.iterdir()) for run in (ws.cache / "runs").iterdir())


def test_find_fix_finds_the_first_fixed_commit(ws: Workspace) -> None:
    out = ws.bisect(
        "results-fix",
        "bisectpkg_scale",
        "--library=bisectpkg",
        "--bad=v2.0",
        "--good=v3.0",
        "--find-fix",
        "--jobs=1",
    )
    assert out.returncode == 0, out.stderr
    assert f"first fixed commit: {ws.repo.sha(FIX)} 'commit {FIX}: fix scale()" in out.stdout
    n = ws.candidates("v2.0", "v3.0")
    assert len(bisect_records(ws.records("results-fix"))) <= math.ceil(math.log2(n)) + 3


def test_three_points_per_round_stay_within_log4(ws: Workspace) -> None:
    out = ws.bisect(
        "results-k3",
        "bisectpkg_scale",
        "--library=bisectpkg",
        "--good=v1.0",
        "--bad=v2.0",
        "--jobs=3",
    )
    assert out.returncode == 0, out.stderr
    assert f"first bad commit: {ws.repo.sha(REGRESSION)}" in out.stdout
    rounds = [ln for ln in out.stdout.splitlines() if ln.startswith("round ")]
    n = ws.candidates("v1.0", "v2.0")
    assert len(rounds) <= log_bound(n, 3) + 3, out.stdout
    assert "3 point(s) per round" in out.stdout
    evaluations = bisect_records(ws.records("results-k3"))
    assert len(evaluations) <= 3 * len(rounds)
    assert len({r.run_id for r in evaluations}) == 1


def test_an_interrupted_bisect_resumes_without_rerunning_finished_commits(
    ws: Workspace,
) -> None:
    log = ws.root / "started.log"
    args = ("bisectpkg_scale", "--library=bisectpkg", "--bad=v2.0", "--good=v3.0", "--find-fix")
    first = ws.bisect(
        "results-resume",
        *args,
        "--jobs=1",
        env={"BISECT_TEST_LOG": str(log), "BISECT_TEST_INTERRUPT_AT": "4"},
    )
    assert first.returncode == 130, first.stderr
    assert "run the same command again to continue" in first.stderr
    done_first = bisect_records(ws.records("results-resume"))
    assert len(done_first) == 3  # the fourth was cancelled mid-run: not a result
    started_first = log.read_text().splitlines()
    assert len(started_first) == 4

    second = ws.bisect("results-resume", *args, "--jobs=1", env={"BISECT_TEST_LOG": str(log)})
    assert second.returncode == 0, second.stderr
    assert f"first fixed commit: {ws.repo.sha(FIX)}" in second.stdout
    assert "3 already evaluated" in second.stdout
    started_second = log.read_text().splitlines()[4:]
    finished_first = {r.cell_id for r in done_first}
    assert not finished_first & set(started_second), "a finished commit ran again"
    assert started_first[3] in started_second, "the cancelled one is evaluated again"
    everything = bisect_records(ws.records("results-resume"))
    assert max(Counter(r.key for r in everything).values()) == 1


def test_wrong_endpoints_stop_with_one_clear_line(ws: Workspace) -> None:
    out = ws.bisect(
        "results-ends", "bisectpkg_scale", "--library=bisectpkg", "--good=v2.0", "--bad=v3.0"
    )
    assert out.returncode == 6, out.stderr
    err = [ln for ln in out.stderr.splitlines() if ln.startswith("repromatrix: error:")]
    assert len(err) == 1
    assert "--good v2.0" in err[0]
    assert "is not good" in err[0]
    assert "regressed" in err[0]
    # --find-fix: the older end is --bad, and v1.0 is not (the regression came later).
    out = ws.bisect(
        "results-ends-fix",
        "bisectpkg_scale",
        "--library=bisectpkg",
        "--bad=v1.0",
        "--good=v3.0",
        "--find-fix",
    )
    assert out.returncode == 6, out.stderr
    assert "--bad v1.0 (" in out.stderr
    assert "is not bad: the repro says passed" in out.stderr
    assert "pick a later --bad, where the regression is present" in out.stderr
    # Reversed ancestry is a usage mistake git can tell before anything runs.
    out = ws.bisect(
        "results-ends", "bisectpkg_scale", "--library=bisectpkg", "--good=v2.0", "--bad=v1.0"
    )
    assert out.returncode == 6
    assert "is not an ancestor of" in out.stderr


def test_matrix_results_for_declared_commits_are_reused(ws: Workspace) -> None:
    out = ws.cli("run", "--repro", "bisectpkg_scale", "--results", "results-alias", "--jobs", "2")
    assert out.returncode == 0, out.stderr
    assert len(ws.records("results-alias")) == 2  # v1.0 and v2.0 as matrix.yaml names them
    out = ws.bisect(
        "results-alias",
        "bisectpkg_scale",
        "--library=bisectpkg",
        "--good=v1.0",
        "--bad=v2.0",
        "--jobs=1",
    )
    assert out.returncode == 0, out.stderr
    assert "2 already evaluated" in out.stdout
    fresh = bisect_records(ws.records("results-alias"))
    ends = {ws.repo.sha(TAGS["v1.0"])[:10], ws.repo.sha(TAGS["v2.0"])[:10]}
    assert not ends & {r.pins["bisectpkg"] for r in fresh}


def test_an_upstream_test_as_the_verdict(ws: Workspace) -> None:
    out = ws.bisect(
        "results-upstream",
        "--test=tests/test_scale.py::test_scale",
        "--library=bisectpkg",
        "--good=v1.0",
        "--bad=v2.0",
        "--jobs=2",
    )
    assert out.returncode == 0, out.stderr
    assert f"first bad commit: {ws.repo.sha(REGRESSION)}" in out.stdout
    records = bisect_records(ws.records("results-upstream"))
    assert {r.repro for r in records} == {"upstream_pytest"}
    regressed = [r for r in records if r.status is Status.REGRESSED]
    assert "test_scale" in regressed[0].reason
    assert regressed[0].metrics["pytest.failed"] == 1


def test_an_upstream_test_added_with_the_fix(ws: Workspace) -> None:
    common = (
        "--test=tests/test_fix.py::test_scale_large",
        "--library=bisectpkg",
        "--bad=v2.0",
        "--good=v3.0",
        "--find-fix",
        "--jobs=2",
    )
    # Without --test-from the file does not exist before the fix: the old end is untestable.
    out = ws.bisect("results-upstream-fix", *common)
    assert out.returncode == 6
    assert "could not be evaluated" in out.stderr
    assert "does not exist at this commit" in out.stderr
    out = ws.bisect("results-upstream-fix", *common, "--test-from=v3.0")
    assert out.returncode == 0, out.stderr
    assert f"first fixed commit: {ws.repo.sha(FIX)}" in out.stdout


def test_an_upstream_test_that_the_test_from_commit_lacks_is_one_line(ws: Workspace) -> None:
    common = ("--library=bisectpkg", "--bad=v2.0", "--good=v3.0", "--find-fix", "--test-from=v3.0")
    # Before: both ends ran (an environment each) and the bisection stopped with exit 6,
    # "--bad v2.0 could not be evaluated (... ERROR: not found: /tmp/.../upstream-x/...);
    # fix that or pick another --bad", which names neither the test nor the way out.
    for node, says in (
        ("tests/test_fix.py::test_scale_larg[a::b c]", "defines no test_scale_larg"),
        ("tests/test_fixes.py::test_scale_large", "tests/test_fixes.py does not exist at v3.0"),
        # Before: git's listing of the folder was laid over the tree as a file "tests".
        ("tests", "tests is a folder, not a file, at v3.0"),
        # Before: git read "v3.0:./tests/..." as relative to a work tree the mirror has not,
        # and the file was said to be a folder.
        ("./tests/test_fix.py::test_scale_larg", "defines no test_scale_larg"),
    ):
        out = ws.bisect("results-upstream-missing", f"--test={node}", *common)
        assert out.returncode == 64, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1, out.stderr
        assert says in lines[0]
        assert f"--test {node}" in lines[0]
        assert "test_scale_large" in lines[0] or "--test-from that has it" in lines[0]
    assert not (ws.root / "results-upstream-missing").exists() or not ws.records(
        "results-upstream-missing"
    )


def test_candidates_follow_topology_and_first_parent(ws: Workspace) -> None:
    envs = Mirrors(git_root(ws.cache))
    lib = load_matrix(ws.matrix).libraries["bisectpkg"]
    everything = commit_candidates(envs, lib, "v2.0", "v3.0").candidates
    first_parent = commit_candidates(envs, lib, "v2.0", "v3.0", first_parent=True).candidates
    assert everything[0].rev == ws.repo.sha(TAGS["v2.0"])
    assert everything[-1].rev == ws.repo.sha(TAGS["v3.0"])
    assert {c.rev for c in everything} - {c.rev for c in first_parent} == set(ws.repo.side)
    assert [c.rev for c in first_parent] == [
        ws.repo.sha(i) for i in range(TAGS["v2.0"], TAGS["v3.0"] + 1)
    ]
    order = [c.rev for c in everything]
    assert order.index(ws.repo.side[0]) < order.index(ws.repo.side[-1])
    assert everything[1].subject == f"commit {TAGS['v2.0'] + 1}"
    assert json.dumps(everything[1].committed).count("T") == 1


def test_releases_from_a_local_index(ws: Workspace) -> None:
    """PyPI mode: declared versions in PEP 440 order, installed by pip from --find-links."""
    wheels = build_wheels(
        ws.root / "wheels",
        ["1.0", "1.1", "1.2", "1.3rc1", "1.3", "1.4", "1.10"],
        bad={"1.3rc1", "1.3", "1.4"},
    )
    pypi = ("bisectwheel_scale", "--library=bisectwheel", f"--find-links={wheels}", "--no-index")
    out = ws.bisect("results-pypi", *pypi, "--good=1.0", "--bad=1.10", "--find-fix")
    assert out.returncode == 64  # ends swapped: a usage mistake, said before any run
    assert "1.10 is not older than 1.0" in out.stderr
    # 1.0 passes, so with --find-fix the old end is not bad: a clear stop.
    out = ws.bisect("results-pypi", *pypi, "--bad=1.0", "--good=1.10", "--find-fix")
    assert out.returncode == 6
    assert "--bad 1.0 (1.0) is not bad" in out.stderr
    out = ws.bisect(
        "results-pypi",
        "bisectwheel_scale",
        "--library=bisectwheel",
        "--good=1.0",
        "--bad=1.4",
        "--jobs=2",
        f"--find-links={wheels}",
        "--no-index",
    )
    assert out.returncode == 0, out.stderr
    # 1.0 ran twice above (a contrary end is confirmed before the stop): one release, and
    # both its runs, count.
    assert f"6 releases (from folder {wheels}), 1 already evaluated (2 stored runs)," in out.stdout
    assert "first bad release: bisectwheel 1.3rc1" in out.stdout
    out = ws.bisect(
        "results-pypi",
        "bisectwheel_scale",
        "--library=bisectwheel",
        "--bad=1.4",
        "--good=1.10",
        "--find-fix",
        "--jobs=2",
        f"--find-links={wheels}",
        "--no-index",
    )
    assert out.returncode == 0, out.stderr
    assert "first fixed release: bisectwheel 1.10" in out.stdout


def test_candidates_come_from_a_bundle_mirror_offline(ws: Workspace, tmp_path: Path) -> None:
    """--git-mirror NAME=BUNDLE: cloned once into the cache, the matrix URL never asked."""
    bundle = tmp_path / "bisectpkg.bundle"
    subprocess.run(
        ["git", "-C", str(ws.repo.path), "bundle", "create", str(bundle), "--all"],
        check=True,
        capture_output=True,
    )
    lib = load_matrix(ws.matrix).libraries["bisectpkg"]
    unreachable = dataclasses.replace(lib, git="https://example.invalid/bisectpkg.git")
    envs = Mirrors(git_root(tmp_path / "cache"), {"bisectpkg": str(bundle)})
    got = commit_candidates(envs, unreachable, "v1.0", "v2.0").candidates
    assert [c.rev for c in got] == [ws.repo.sha(i) for i in range(TAGS["v1.0"], TAGS["v2.0"] + 1)]
    assert (tmp_path / "cache" / "git" / "bisectpkg.git" / "HEAD").is_file()
    bundle.unlink()  # the clone is reused: the bundle is not needed any more
    again = commit_candidates(envs, unreachable, "v1.0", "v2.0", first_parent=True).candidates
    assert [c.rev for c in again] == [c.rev for c in got]


def test_ends_on_parting_branches_bisect_from_their_merge_base(ws: Workspace) -> None:
    """As `git bisect start NEW OLD` with OLD on another branch: the merge base is the old
    end (tested first), the candidates what NEW reaches that OLD does not. They were
    refused ("pass their merge base"), though git answers there."""
    envs = Mirrors(git_root(ws.cache))
    lib = load_matrix(ws.matrix).libraries["bisectpkg"]
    side, main = ws.repo.side[0], ws.repo.sha(FORK + 2)  # the branch forked at FORK
    axis = commit_candidates(envs, lib, side, main)
    assert [c.rev for c in axis.candidates] == [ws.repo.sha(i) for i in range(FORK, FORK + 3)]
    assert axis.parted_from == side
    chain = commit_candidates(envs, lib, side, main, first_parent=True)
    assert [c.rev for c in chain.candidates] == [c.rev for c in axis.candidates]
    assert commit_candidates(envs, lib, "v1.0", main).parted_from == ""
    with pytest.raises(BisectError, match="the older revision goes first"):
        commit_candidates(envs, lib, "v2.0", "v1.0")


def test_release_ends_of_a_library_with_git_and_pypi_get_a_way_out(ws: Workspace) -> None:
    """Both ends look like releases but are not declared: auto bisected git, whose error
    ("not a commit") named no way out."""
    matrix = ws.root / "both.yaml"
    matrix.write_text(
        ws.matrix.read_text().replace("    git: ", "    pypi: bisectpkg\n    git: ", 1)
    )
    argv = [sys.executable, "-m", "repromatrix", "--matrix", str(matrix), "bisect"]
    argv += ["bisectpkg_scale", "--library=bisectpkg", "--good=1.0", "--bad=1.4"]
    argv += ["--cache", str(ws.cache), "--executor", "local", "--no-progress"]
    argv += ["--results", str(ws.root / "results-both")]
    out = subprocess.run(
        argv, cwd=ws.root, capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 6, out.stderr
    assert "look like releases of bisectpkg: pass --source pypi" in out.stderr


def test_a_revision_git_does_not_know_is_named_with_its_flag(ws: Workspace) -> None:
    out = ws.bisect(
        "results-norev", "bisectpkg_scale", "--library=bisectpkg", "--good=nosuchrev", "--bad=v2.0"
    )
    assert out.returncode == 6
    assert out.stderr.startswith("repromatrix: error: --good nosuchrev: revision 'nosuchrev'")
    fix = ws.bisect(
        "results-norev", "bisectpkg_scale", "--library=bisectpkg", "--bad=v1.0", "--good=nope",
        "--find-fix",
    )  # fmt: skip
    assert fix.returncode == 6
    assert fix.stderr.startswith("repromatrix: error: --good nope: revision 'nope'")


def test_declared_ends_are_named_in_the_bisect_table_and_markdown(ws: Workspace) -> None:
    """README: a revision is shown everywhere, bisect tables and Markdown included, by its
    declared name and short hash (`v1.0 · 1a2b3c4d`): the table showed the ends matrix.yaml
    declares as v1.0 and v2.0 by their hashes alone."""
    md = ws.root / "declared-ends.md"
    out = ws.bisect(
        "results-declared", "bisectpkg_scale", "--library=bisectpkg", "--good=v1.0",
        "--bad=v2.0", "--jobs=1", "--markdown", str(md),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    good, bad = ws.repo.sha(TAGS["v1.0"])[:8], ws.repo.sha(TAGS["v2.0"])[:8]
    rows = [line.split() for line in out.stdout.splitlines() if line[:1].isdigit()]
    assert ["v1.0", "·", good] in [row[1:4] for row in rows], out.stdout
    assert ["v2.0", "·", bad] in [row[1:4] for row in rows], out.stdout
    assert f"| v1.0 · {good} |" in md.read_text()
    assert f"| v2.0 · {bad} |" in md.read_text()
