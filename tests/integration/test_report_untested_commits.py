"""Commits of the history between two a report's cells ran, that none ran: the change may
be at any of them, so a boundary across them is a range, never "at" the first bad. Real
git (a mirror in --cache, as `run` and `bisect` leave it), the real `repromatrix report`."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from repromatrix.config import load_matrix
from repromatrix.expand import expand
from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.store import ResultStore

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.integration

ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
       "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **ENV}
    argv = ["git", "-C", str(repo), *args]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _history(root: Path, commits: int) -> list[str]:
    """c0..c{n-1} on main, oldest first; its bare mirror where `run` leaves one."""
    src = root / "src"
    src.mkdir()
    git(src, "init", "-q", "-b", "main")
    for i in range(commits):
        git(src, "commit", "-q", "--allow-empty", "-m", f"c{i}")
    shas = git(src, "rev-list", "--reverse", "HEAD").split()
    (root / "cache" / "git").mkdir(parents=True)
    git(root, "clone", "-q", "--bare", str(src), str(root / "cache" / "git" / "lib.git"))
    return shas


def _report(root: Path, shas: list[str], verdicts: dict[int, Status], *args: str) -> str:
    """summary.md of a report of `r` at those commits (matrix.yaml lists them)."""
    (root / "r.py").write_text("")
    listed = ", ".join(repr(shas[i][:8]) for i in verdicts)
    (root / "matrix.yaml").write_text(
        "schema: 1\nlibraries:\n"
        f"  lib: {{git: {root / 'src'}, import: lib, versions: [{listed}]}}\n"
        "repros:\n  r: {script: r.py, gpus: [cpu], libraries: {lib: all}}\n"
    )
    _records(root, [(shas[i][:8], shas[i], status) for i, status in verdicts.items()])
    (root / "README.md").write_text("<!-- reproduced:begin -->\n<!-- reproduced:end -->\n")
    return _run_report(root, "--readme", "README.md", *args)


def _records(
    root: Path, runs: Sequence[tuple[str, str, Status]], keys: Mapping[int, str] | None = None
) -> None:
    """A record of `r` on cpu in root/results per (pin, its full commit, status), in order,
    the i-th keyed `keys[i]` (a cell's key, as `run` records it) or k<i>."""
    store = ResultStore(root / "results")
    for i, (pin, sha, status) in enumerate(runs):
        store.append(
            Result(
                key=(keys or {}).get(i, f"k{i}"), cell_id=f"r[cpu,host,lib={pin}]", repro="r",
                base="host", gpu="cpu", pins={"lib": pin}, commits={"lib": sha}, status=status,
                finished=f"2026-01-01T00:00:{i:02d}+00:00",
            )
        )  # fmt: skip


def _run_report(root: Path, *args: str, out: str = "rep") -> str:
    """summary.md of the real `repromatrix report` of root/matrix.yaml and root/results,
    written to root/`out` (which must exit 0)."""
    argv = [sys.executable, "-m", "repromatrix", "report", "--matrix", "matrix.yaml"]
    argv += ["--results", "results", "--out", out, *args]
    done = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return (root / out / "summary.md").read_text()


def test_untested_commits_between_the_last_good_and_the_first_bad_make_a_range(
    tmp_path: Path,
) -> None:
    """Seen at c10 and not at c5, c6..c9 never run: the report said "begins at c10 (last
    good c5)" and "ends at c14 (last bad c12)" over c13, in summary.md, index.html,
    compat.html and the README table, as if the mirror did not show them."""
    shas = _history(tmp_path, 16)
    good, bad = Status.PASSED, Status.REGRESSED
    verdicts = {0: good, 5: good, 10: bad, 12: bad, 14: good, 15: good}
    summary = _report(tmp_path, shas, verdicts, "--cache", "cache")
    c = [s[:8] for s in shas]
    untested = f"no verdict at {c[6]}–{c[9]} (4 commits untested)"
    begins = f"begins between {c[5]} and {c[10]} (last good {c[5]}, first bad {c[10]}; {untested})"
    ends = f"ends between {c[12]} and {c[14]} (last bad {c[12]}, first good {c[14]}; "
    ends += f"no verdict at {c[13]} (untested))"
    assert f"| r | cpu | {begins}; {ends} |" in summary, summary
    html = (tmp_path / "rep" / "index.html").read_text()
    assert begins in html
    assert f"begins at {c[10]}" not in html
    compat = (tmp_path / "rep" / "compat.html").read_text()
    assert f"(no verdict before it at {c[6]}–{c[9]} (4 commits untested))" in compat
    assert f"fixed at or before {c[14]} (no verdict at {c[13]} (untested))" in compat
    readme = (tmp_path / "README.md").read_text()
    assert f"| {c[10]} (last good {c[5]}; {untested}) |" in readme, readme
    # c11, untested inside the interval, splits nothing: bad on both sides of it.
    assert c[11] not in summary


def test_commits_run_next_to_each_other_keep_at(tmp_path: Path) -> None:
    """Where the last good is the first bad's parent, "at" is the truth."""
    shas = _history(tmp_path, 4)
    verdicts = {0: Status.PASSED, 1: Status.PASSED, 2: Status.REGRESSED, 3: Status.REGRESSED}
    summary = _report(tmp_path, shas, verdicts, "--cache", "cache")
    assert f"begins at {shas[2][:8]} (last good {shas[1][:8]}); still present" in summary


def test_the_grid_has_a_row_for_the_untested_commits_and_the_bar_runs_through(
    page: Page, tmp_path: Path
) -> None:
    """On index.html's grid c5 ✓ stood right over c10 ✗ (the bar's cap on c10): "began at
    c10" to the eye, whatever the sentence above said. The untested commits have a row of
    their own, pale at the interval's edges, and the bar runs through c11's."""
    shas = _history(tmp_path, 16)
    good, bad = Status.PASSED, Status.REGRESSED
    _report(tmp_path, shas, {5: good, 10: bad, 12: bad, 14: good}, "--cache", "cache")
    page.goto((tmp_path / "rep" / "index.html").as_uri())
    c = [s[:8] for s in shas]
    rows = page.locator("table.grid tbody tr")
    labels = [rows.nth(i).locator("th").inner_text().strip() for i in range(rows.count())]
    assert labels == [c[5], f"{c[6]}–{c[9]}", c[10], c[11], c[12], c[13], c[14]], labels
    cells = [rows.nth(i).locator("td").get_attribute("class") or "" for i in range(len(labels))]
    assert cells[1].split()[-1] == "ru"  # a boundary lies somewhere here
    assert "ri" in cells[3].split()  # inside the interval, between its bad cells
    assert cells[5].split()[-1] == "ru"


def _upstream_and_fork(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """Upstream c0..c9 (v1.0 = c4) and a fork of it adding f1..f6 (its own v1.0 = f2): the
    two repositories and the fork's commits, oldest first."""
    up, fork = tmp_path / "up", tmp_path / "fork"
    up.mkdir()
    git(up, "init", "-q", "-b", "main")
    for i in range(10):
        git(up, "commit", "-q", "--allow-empty", "-m", f"c{i}")
    git(up, "tag", "v1.0", "HEAD~5")
    git(tmp_path, "clone", "-q", str(up), str(fork))
    for i in range(1, 7):
        git(fork, "commit", "-q", "--allow-empty", "-m", f"f{i}")
    git(fork, "tag", "-f", "v1.0", "HEAD~4")
    return up, fork, git(fork, "rev-list", "--reverse", "HEAD").split()


def test_a_forks_commits_and_tags_are_read_in_the_forks_own_mirror(tmp_path: Path) -> None:
    """A fork under the library name of its upstream, sharing the cache: `run` cloned it
    to lib@<hash>.git beside upstream's lib.git, and the report read the first-parent line
    and tags in lib.git alone: the fork's f3..f5 between its last bad f2 and first good f6
    went uncounted ("ends at f6"), and upstream's tag v1.0 (c4) named the fork's pin v1.0
    (f2) both on c4's point and beside f2's verdict."""
    from repromatrix.mirrors import Mirrors

    up, fork, c = _upstream_and_fork(tmp_path)  # c0..c9 f1..f6
    cache = tmp_path / "cache"
    assert Mirrors(cache / "git").resolve("lib", str(up), "main") == c[9]  # upstream's run
    assert Mirrors(cache / "git").resolve("lib", str(fork), "main") == c[15]  # the fork's
    assert len(list((cache / "git").glob("lib@*.git"))) == 1
    (tmp_path / "r.py").write_text("")
    (tmp_path / "matrix.yaml").write_text(
        "schema: 1\nlibraries:\n"
        f"  lib: {{git: {fork}, import: lib, versions: ['{c[4][:9]}', v1.0, main]}}\n"
        "repros:\n  r: {script: r.py, gpus: [cpu], libraries: {lib: all}}\n"
    )
    runs = [(c[4][:9], c[4], Status.PASSED), ("v1.0", c[11], Status.REGRESSED)]
    _records(tmp_path, [*runs, ("main", c[15], Status.PASSED)])
    summary = _run_report(tmp_path, "--cache", "cache")
    s = [x[:8] for x in c]
    ends = f"ends between v1.0 · {s[11]} and main · {s[15]} (last bad v1.0 · {s[11]}, "
    ends += f"first good main · {s[15]}; no verdict at {s[12]}–{s[14]} (3 commits untested))"
    assert ends in summary, summary
    assert f"v1.0 · {s[4]}" not in summary  # upstream's tag, no name of the fork's c4
    assert f"begins between {s[4]} and v1.0 · {s[11]}" in summary
    assert f"no verdict at {s[5]}–{s[10]} (6 commits untested)" in summary


def test_upstreams_tag_is_read_in_upstreams_mirror_beside_a_forks(tmp_path: Path) -> None:
    """Upstream's matrix lists its tag v1.0 (c4), run there; a fork sharing the cache tags
    its f2 v1.0 and ran f2 and f6 by hash. Read in the mirror holding the most of the
    records' commits, the fork's, upstream's v1.0 named f2: the fork's commit shown as
    "v1.0 · f2" beside upstream's "v1.0 · c4", and upstream's cell v1.0 took f2's verdict."""
    from repromatrix.mirrors import Mirrors

    up, fork, c = _upstream_and_fork(tmp_path)  # c0..c9 f1..f6
    cache = tmp_path / "cache"
    assert Mirrors(cache / "git").resolve("lib", str(up), "v1.0") == c[4]  # upstream's run
    assert Mirrors(cache / "git").resolve("lib", str(fork), "main") == c[15]  # the fork's
    (tmp_path / "r.py").write_text("")
    (tmp_path / "matrix.yaml").write_text(
        "schema: 1\nlibraries:\n"
        f"  lib: {{git: {up}, import: lib, versions: [v1.0]}}\n"
        "repros:\n  r: {script: r.py, gpus: [cpu], libraries: {lib: all}}\n"
    )
    good, bad = Status.PASSED, Status.REGRESSED
    runs = [("v1.0", c[4], good), (c[11][:8], c[11], bad), (c[15][:8], c[15], good)]
    _records(tmp_path, runs)
    summary = _run_report(tmp_path, "--cache", "cache")
    s = [x[:8] for x in c]
    assert f"v1.0 · {s[11]}" not in summary, summary
    ends = f"ends between {s[11]} and {s[15]} (last bad {s[11]}, first good {s[15]}; "
    assert f"begins between v1.0 · {s[4]} and {s[11]} " in summary, summary
    assert ends in summary, summary
    index = html.unescape((tmp_path / "rep" / "index.html").read_text())
    assert f"v1.0 · {s[11]}" not in index
    compat = html.unescape((tmp_path / "rep" / "compat.html").read_text())
    assert f"regressed {s[11]} (no verdict before it" in compat, compat


def test_upstreams_record_of_its_tag_names_no_commit_in_a_forks_report(tmp_path: Path) -> None:
    """A fork's matrix lists v1.0 (its f2) and main; the results hold upstream's run of its
    own v1.0 (c4) beside the fork's. The record's name stood for c4 in the fork's report:
    "begins between v1.0 · c4 and v1.0 · f2 (…; no verdict at v1.0 (no result yet))", two
    v1.0s and a third point of no commit. Upstream's record is c4's, named by its hash."""
    from repromatrix.mirrors import Mirrors

    up, fork, c = _upstream_and_fork(tmp_path)  # c0..c9 f1..f6
    cache = tmp_path / "cache"
    assert Mirrors(cache / "git").resolve("lib", str(up), "v1.0") == c[4]  # upstream's run
    assert Mirrors(cache / "git").resolve("lib", str(fork), "main") == c[15]  # the fork's
    (tmp_path / "r.py").write_text("")
    (tmp_path / "matrix.yaml").write_text(
        "schema: 1\nlibraries:\n"
        f"  lib: {{git: {fork}, import: lib, versions: [v1.0, main]}}\n"
        "repros:\n  r: {script: r.py, gpus: [cpu], libraries: {lib: all}}\n"
    )
    good, bad = Status.PASSED, Status.REGRESSED
    runs = [("v1.0", c[4], good, up), ("v1.0", c[11], bad, fork), ("main", c[15], good, fork)]
    store = ResultStore(tmp_path / "results")
    for i, (pin, sha, status, source) in enumerate(runs):
        prov = {"commit": sha, "kind": "git", "label": pin, "rev": pin, "source": str(source)}
        store.append(
            Result(
                key=f"k{i}", cell_id=f"r[cpu,host,lib={pin}]", repro="r", base="host",
                gpu="cpu", pins={"lib": pin}, commits={"lib": sha}, status=status,
                finished=f"2026-01-01T00:00:0{i}+00:00",
                provenance={"harness": {"pins": {"lib": prov}}},
            )
        )  # fmt: skip
    summary = _run_report(tmp_path, "--cache", "cache")
    s = [x[:8] for x in c]
    assert f"v1.0 · {s[4]}" not in summary, summary
    assert "(no result yet)" not in summary
    begins = f"begins between {s[4]} and v1.0 · {s[11]} (last good {s[4]}, first bad v1.0 · "
    begins += f"{s[11]}; no verdict at {s[5]}–{s[10]} (6 commits untested))"
    assert begins in summary, summary
    index = html.unescape((tmp_path / "rep" / "index.html").read_text())
    assert f"v1.0 · {s[4]}" not in index


def test_a_listed_commit_of_a_merged_branch_is_said_apart(tmp_path: Path) -> None:
    """A bug made on a branch (s2) and merged into main at m4: matrix.yaml listing s2
    between main's m1 and m3 made the report say "ends at m3 (last bad s2)" and
    compat.html "fixed in m3", on a line that never had the bug."""
    src = tmp_path / "src"
    src.mkdir()
    git(src, "init", "-q", "-b", "main")
    for name in ("m0", "m1"):
        git(src, "commit", "-q", "--allow-empty", "-m", name)
    git(src, "checkout", "-q", "-b", "side")
    for name in ("s1", "s2"):
        git(src, "commit", "-q", "--allow-empty", "-m", name)
    git(src, "checkout", "-q", "main")
    for name in ("m2", "m3"):
        git(src, "commit", "-q", "--allow-empty", "-m", name)
    git(src, "merge", "-q", "--no-ff", "side", "-m", "m4")
    sha = {name: git(src, "rev-parse", f":/^{name}") for name in ("m1", "s1", "s2", "m3", "m4")}
    (tmp_path / "cache" / "git").mkdir(parents=True)
    git(tmp_path, "clone", "-q", "--bare", str(src), str(tmp_path / "cache" / "git" / "lib.git"))
    listed = ", ".join(f"'{sha[n][:8]}'" for n in ("m1", "s2", "m3", "m4"))
    (tmp_path / "r.py").write_text("")
    (tmp_path / "matrix.yaml").write_text(
        "schema: 1\nlibraries:\n"
        f"  lib: {{git: {src}, import: lib, versions: [{listed}]}}\n"
        "repros:\n  r: {script: r.py, gpus: [cpu], libraries: {lib: all}}\n"
    )
    bad = {"s2", "m4"}
    _records(
        tmp_path,
        [
            (sha[n][:8], sha[n], Status.REGRESSED if n in bad else Status.PASSED)
            for n in ("m1", "s2", "m3", "m4")
        ],
    )
    summary = _run_report(tmp_path, "--cache", "cache")
    s = {n: x[:8] for n, x in sha.items()}
    assert f"ends at {s['m3']}" not in summary, summary
    # s2, bad on the branch m4 merges, is where it begins or s1 is, which nothing ran:
    # "first bad m4" named the merge, where git bisect names a commit of its branch.
    begins = f"begins between {s['m3']} and {s['s2']} (last good {s['m3']}, first bad {s['s2']}; "
    begins += f"no verdict at {s['s1']} (untested, the branch merged at {s['m4']}))"
    assert f"| r | cpu | {begins}; still present" in summary, summary
    compat = (tmp_path / "rep" / "compat.html").read_text()
    assert f"fixed in {s['m3']}" not in compat


def test_untested_commits_with_a_merge_among_them_say_its_branch_lies_there_too(
    tmp_path: Path,
) -> None:
    """Good at m1, bad at m4, m2 and the merge m3 of s1, s2 never run: "(2 commits
    untested)" counted the first-parent line alone, where the change may be s1 or s2."""
    src = tmp_path / "src"
    src.mkdir()
    git(src, "init", "-q", "-b", "main")
    for name in ("m0", "m1"):
        git(src, "commit", "-q", "--allow-empty", "-m", name)
    git(src, "checkout", "-q", "-b", "side")
    for name in ("s1", "s2"):
        git(src, "commit", "-q", "--allow-empty", "-m", name)
    git(src, "checkout", "-q", "main")
    git(src, "commit", "-q", "--allow-empty", "-m", "m2")
    git(src, "merge", "-q", "--no-ff", "side", "-m", "m3")
    git(src, "commit", "-q", "--allow-empty", "-m", "m4")
    line = git(src, "rev-list", "--first-parent", "--reverse", "HEAD").split()  # m0..m4
    (tmp_path / "cache" / "git").mkdir(parents=True)
    git(tmp_path, "clone", "-q", "--bare", str(src), str(tmp_path / "cache" / "git" / "lib.git"))
    summary = _report(tmp_path, line, {1: Status.PASSED, 4: Status.REGRESSED}, "--cache", "cache")
    c = [s[:8] for s in line]
    said = f"no verdict at {c[2]}–{c[3]} (2 commits untested, one a merge (its branch's "
    said += "commits lie here too))"
    assert f"begins between {c[1]} and {c[4]} (last good {c[1]}, first bad {c[4]}; {said})" in (
        summary
    ), summary
    compat = html.unescape((tmp_path / "rep" / "compat.html").read_text())
    assert f"no verdict before it at {said[len('no verdict at ') :]}" in compat


def test_a_listed_branch_run_before_and_after_it_moved(tmp_path: Path) -> None:
    """matrix.yaml lists `main`, run at c3 (bad) and again after a push at c6 (good). With
    no mirror in --cache the report said "ends at main · c6 (last bad main · c3)", the
    order records were read in, across c4, c5 it never saw; with the mirror, a range."""
    shas = _history(tmp_path, 7)
    (tmp_path / "r.py").write_text("")
    (tmp_path / "matrix.yaml").write_text(
        "schema: 1\nlibraries:\n"
        f"  lib: {{git: {tmp_path / 'src'}, import: lib, versions: ['{shas[0][:8]}', main]}}\n"
        "repros:\n  r: {script: r.py, gpus: [cpu], libraries: {lib: all}}\n"
    )
    # The newest run of main holds its cell's key, as `run` records it.
    key = {c.id: c.key for c in expand(load_matrix(tmp_path / "matrix.yaml"))}
    store = ResultStore(tmp_path / "results")
    runs = [(shas[0][:8], 0, Status.PASSED), ("main", 3, Status.REGRESSED)]
    runs.append(("main", 6, Status.PASSED))
    for i, (pin, at, status) in enumerate(runs):
        store.append(
            Result(
                key=key[f"r[cpu,host,lib={pin}]"] if i != 1 else "k1",
                cell_id=f"r[cpu,host,lib={pin}]", repro="r", base="host",
                gpu="cpu", pins={"lib": pin}, commits={"lib": shas[at]}, status=status,
                finished=f"2026-01-0{i + 1}T00:00:00+00:00",
                provenance={"harness": {"pins": {"lib": {
                    "commit": shas[at], "kind": "git", "label": pin, "rev": pin,
                }}}},
            )
        )  # fmt: skip
    c = [s[:8] for s in shas]
    for cache, said in [
        ("nocache", f"main · {c[3]} (regressed)"),
        ("cache", f"ends between main · {c[3]} and main · {c[6]} (last bad main · {c[3]}, "),
    ]:
        summary = _run_report(tmp_path, "--cache", cache, out=f"rep-{cache}")
        assert f"ends at main · {c[6]}" not in summary, summary
        assert said in summary, summary


def test_a_merge_at_a_boundary_says_its_branchs_commits_are_untested(tmp_path: Path) -> None:
    """Good at m3, bad at the merge m4 of s1, s2 that nothing ran: "begins at m4 (last good
    m3)", where the change may be s1 or s2; likewise a fix merged at m7 from f1, f2 read
    "ends at m7". A branch's commits count as a merged run of untested commits does."""
    src = tmp_path / "src"
    src.mkdir()
    git(src, "init", "-q", "-b", "main")
    for name in ("m0", "m1"):
        git(src, "commit", "-q", "--allow-empty", "-m", name)
    for branch, names, merge, main in [("side", ("s1", "s2"), "m4", ("m2", "m3")),
                                       ("fix", ("f1", "f2"), "m7", ("m5", "m6"))]:  # fmt: skip
        git(src, "checkout", "-q", "-b", branch)
        for name in names:
            git(src, "commit", "-q", "--allow-empty", "-m", name)
        git(src, "checkout", "-q", "main")
        for name in main:
            git(src, "commit", "-q", "--allow-empty", "-m", name)
        git(src, "merge", "-q", "--no-ff", branch, "-m", merge)
    ran = ("m3", "m4", "m6", "m7")
    sha = {
        n: git(src, "log", "--all", "--format=%H", f"--grep=^{n}$")
        for n in (*ran, "s1", "s2", "f1", "f2")
    }
    (tmp_path / "cache" / "git").mkdir(parents=True)
    git(tmp_path, "clone", "-q", "--bare", str(src), str(tmp_path / "cache" / "git" / "lib.git"))
    good, bad = Status.PASSED, Status.REGRESSED
    verdicts = {0: good, 1: bad, 2: bad, 3: good}
    summary = _report(tmp_path, [sha[n] for n in ran], verdicts, "--cache", "cache")
    s = {n: x[:8] for n, x in sha.items()}
    branch = f"{s['s1']}–{s['s2']} (2 commits untested, the branch merged at {s['m4']})"
    begins = f"begins between {s['m3']} and {s['m4']} (last good {s['m3']}, first bad "
    begins += f"{s['m4']}; no verdict at {branch})"
    fix = f"{s['f1']}–{s['f2']} (2 commits untested, the branch merged at {s['m7']})"
    ends = f"ends between {s['m6']} and {s['m7']} (last bad {s['m6']}, first good {s['m7']}; "
    ends += f"no verdict at {fix})"
    assert f"| r | cpu | {begins}; {ends} |" in summary, summary
    index = html.unescape((tmp_path / "rep" / "index.html").read_text())
    assert begins in index
    assert f"begins at {s['m4']}" not in index
    compat = html.unescape((tmp_path / "rep" / "compat.html").read_text())
    assert f"regressed {s['m4']}–{s['m6']} (no verdict before it at {branch})" in compat
    assert f"fixed at or before {s['m7']} (no verdict at {fix})" in compat
    readme = (tmp_path / "README.md").read_text()
    assert f"| {s['m4']} (last good {s['m3']}; no verdict at {branch}) |" in readme, readme


def test_a_branch_run_before_a_force_push_is_not_placed_where_it_points_now(
    tmp_path: Path,
) -> None:
    """`main` ran at c9 (bad), then was force-pushed back to c5 and on to d9 (good), with
    c2 and d7 listed by hash. The old record, which matrix.yaml's `main` no longer names,
    took main's place now: "begins at main · c9 (last good main · d9)", a history that
    never was; it is said apart, its order unknown."""
    from repromatrix.mirrors import Mirrors

    shas = _history(tmp_path, 10)
    src, git_root = tmp_path / "src", tmp_path / "cache" / "git"
    git(src, "reset", "-q", "--hard", shas[5])
    for i in range(6, 10):
        git(src, "commit", "-q", "--allow-empty", "-m", f"d{i}")
    d = {i: git(src, "rev-parse", f"HEAD~{9 - i}") for i in range(6, 10)}
    assert Mirrors(git_root).resolve("lib", str(src), "main") == d[9]  # fetched, as a run does
    (tmp_path / "r.py").write_text("")
    listed = f"'{shas[2][:8]}', '{d[7][:8]}', main"
    (tmp_path / "matrix.yaml").write_text(
        "schema: 1\nlibraries:\n"
        f"  lib: {{git: {src}, import: lib, versions: [{listed}]}}\n"
        "repros:\n  r: {script: r.py, gpus: [cpu], libraries: {lib: all}}\n"
    )
    good, bad = Status.PASSED, Status.REGRESSED
    runs = [(shas[2][:8], shas[2], good), ("main", shas[9], bad)]
    # The newest run of main holds its cell's key, as `run` records it.
    key = {c.id: c.key for c in expand(load_matrix(tmp_path / "matrix.yaml"))}
    runs += [(d[7][:8], d[7], good), ("main", d[9], good)]
    _records(tmp_path, runs, {3: key["r[cpu,host,lib=main]"]})
    summary = _run_report(tmp_path, "--cache", "cache")
    assert "begins at" not in summary, summary
    assert f"main · {shas[9][:8]} (regressed)" in summary, summary
    assert "not reproduced where the order is known (3 of 3 passed)" in summary, summary


def test_a_force_pushed_branch_is_followed_as_it_is_now_though_its_old_line_ran_more(
    tmp_path: Path,
) -> None:
    """`main` ran at c6 (good), c7 and c9 (bad), then was force-pushed back to c5 and on to
    d9 (good). The abandoned line held four of the runs, main's line now two: the report
    followed the abandoned one ("begins at c7 (last good c6)") and said main as it is now
    apart. The line a branch holds now is followed, the abandoned commits said apart."""
    from repromatrix.mirrors import Mirrors

    shas = _history(tmp_path, 10)
    src, git_root = tmp_path / "src", tmp_path / "cache" / "git"
    git(src, "reset", "-q", "--hard", shas[5])
    for i in range(6, 10):
        git(src, "commit", "-q", "--allow-empty", "-m", f"d{i}")
    d9 = git(src, "rev-parse", "HEAD")
    assert Mirrors(git_root).resolve("lib", str(src), "main") == d9  # fetched, as a run does
    (tmp_path / "r.py").write_text("")
    (tmp_path / "matrix.yaml").write_text(
        "schema: 1\nlibraries:\n"
        f"  lib: {{git: {src}, import: lib, versions: ['{shas[2][:8]}', main]}}\n"
        "repros:\n  r: {script: r.py, gpus: [cpu], libraries: {lib: all}}\n"
    )
    good, bad = Status.PASSED, Status.REGRESSED
    runs = [(shas[2][:8], shas[2], good), (shas[6][:8], shas[6], good)]
    runs += [(shas[7][:8], shas[7], bad), ("main", shas[9], bad), ("main", d9, good)]
    key = {c.id: c.key for c in expand(load_matrix(tmp_path / "matrix.yaml"))}
    _records(tmp_path, runs, {4: key["r[cpu,host,lib=main]"]})
    summary = _run_report(tmp_path, "--cache", "cache")
    c = [s[:8] for s in shas]
    assert "begins at" not in summary, summary
    assert "not reproduced where the order is known (2 of 2 passed)" in summary, summary
    assert f"{c[7]} (regressed)" in summary
    assert f"main · {c[9]} (regressed)" in summary
    assert "no branch or tag holds now" in summary


def test_a_branch_commit_after_one_bad_there_is_not_where_it_begins(tmp_path: Path) -> None:
    """Good at m3, bad at the merge m4 of s1, s2, s3, and a bisection's run of s2 bad: the
    note said "no verdict at s1–s3 (2 commits untested, …)", s3 among them, where s3 comes
    after the bad s2 and cannot be where it begins; only s1 can."""
    src = tmp_path / "src"
    src.mkdir()
    git(src, "init", "-q", "-b", "main")
    for name in ("m0", "m1"):
        git(src, "commit", "-q", "--allow-empty", "-m", name)
    git(src, "checkout", "-q", "-b", "side")
    for name in ("s1", "s2", "s3"):
        git(src, "commit", "-q", "--allow-empty", "-m", name)
    git(src, "checkout", "-q", "main")
    for name in ("m2", "m3"):
        git(src, "commit", "-q", "--allow-empty", "-m", name)
    git(src, "merge", "-q", "--no-ff", "side", "-m", "m4")
    names = ("s1", "s2", "s3", "m3", "m4")
    sha = {n: git(src, "log", "--all", "--format=%H", f"--grep=^{n}$") for n in names}
    (tmp_path / "cache" / "git").mkdir(parents=True)
    git(tmp_path, "clone", "-q", "--bare", str(src), str(tmp_path / "cache" / "git" / "lib.git"))
    (tmp_path / "r.py").write_text("")
    (tmp_path / "matrix.yaml").write_text(
        "schema: 1\nlibraries:\n"
        f"  lib: {{git: {src}, import: lib, versions: ['{sha['m3'][:8]}', '{sha['m4'][:8]}']}}\n"
        "repros:\n  r: {script: r.py, gpus: [cpu], libraries: {lib: all}}\n"
    )
    good, bad = Status.PASSED, Status.REGRESSED
    runs = [(sha["m3"][:8], sha["m3"], good), (sha["m4"][:8], sha["m4"], bad)]
    _records(tmp_path, [*runs, (sha["s2"][:10], sha["s2"], bad)])  # as bisect records it
    summary = _run_report(tmp_path, "--cache", "cache")
    s = {n: x[:8] for n, x in sha.items()}
    begins = f"begins between {s['m3']} and {s['s2']} (last good {s['m3']}, first bad {s['s2']}; "
    begins += f"no verdict at {s['s1']} (untested, the branch merged at {s['m4']}))"
    assert begins in summary, summary
    assert s["s3"] not in summary


def test_a_branch_commit_bad_over_its_good_parent_is_where_it_begins_not_the_merge(
    tmp_path: Path,
) -> None:
    """Good at m3, bad at the merge m4 of s1, s2, s3, and a bisection's runs of s1 good
    and s2 bad: the report said "begins at m4 (last good m3)", naming the merge, where
    git bisect names s2 (bad, its tested ancestors good)."""
    src = tmp_path / "src"
    src.mkdir()
    git(src, "init", "-q", "-b", "main")
    for name in ("m0", "m1"):
        git(src, "commit", "-q", "--allow-empty", "-m", name)
    git(src, "checkout", "-q", "-b", "side")
    for name in ("s1", "s2", "s3"):
        git(src, "commit", "-q", "--allow-empty", "-m", name)
    git(src, "checkout", "-q", "main")
    for name in ("m2", "m3"):
        git(src, "commit", "-q", "--allow-empty", "-m", name)
    git(src, "merge", "-q", "--no-ff", "side", "-m", "m4")
    names = ("s1", "s2", "s3", "m3", "m4")
    sha = {n: git(src, "log", "--all", "--format=%H", f"--grep=^{n}$") for n in names}
    (tmp_path / "cache" / "git").mkdir(parents=True)
    git(tmp_path, "clone", "-q", "--bare", str(src), str(tmp_path / "cache" / "git" / "lib.git"))
    (tmp_path / "r.py").write_text("")
    (tmp_path / "matrix.yaml").write_text(
        "schema: 1\nlibraries:\n"
        f"  lib: {{git: {src}, import: lib, versions: ['{sha['m3'][:8]}', '{sha['m4'][:8]}']}}\n"
        "repros:\n  r: {script: r.py, gpus: [cpu], libraries: {lib: all}}\n"
    )
    good, bad = Status.PASSED, Status.REGRESSED
    runs = [(sha[n][:10], sha[n], v) for n, v in (("m3", good), ("m4", bad), ("s1", good))]
    _records(tmp_path, [*runs, (sha["s2"][:10], sha["s2"], bad)])
    summary = _run_report(tmp_path, "--cache", "cache")
    s = {n: x[:8] for n, x in sha.items()}
    assert f"| r | cpu | begins at {s['s2']} (last good {s['s1']}); still present" in summary
    assert "order unknown" not in summary, summary
    compat = html.unescape((tmp_path / "rep" / "compat.html").read_text())
    assert f"regressed {s['s2']}–{s['m4']}, still present" in compat, compat
    # The grid's rows as the sentence reads them, s1 and s2 no longer "order unknown".
    index = (tmp_path / "rep" / "index.html").read_text()
    rows = re.findall(r'<tr data-st="[^"]*"><th[^>]*>([0-9a-f]{8})', index)
    assert rows == [s["m3"], s["s1"], s["s2"], s["m4"]], rows
    assert '<span class="badge">order unknown</span>' not in index


def test_a_merge_of_a_branch_whose_tip_ran_as_its_first_parent_did_is_where_it_begins(
    tmp_path: Path,
) -> None:
    """Good at m2 and at s2, the tip of the branch that m3 merges, bad at m3: the merge is
    the first bad commit, as git bisect names it, where "no verdict at s1 (untested, the
    branch merged at m3)" sent the reader after a commit that cannot be it."""
    src = tmp_path / "src"
    src.mkdir()
    git(src, "init", "-q", "-b", "main")
    for name in ("m0", "m1"):
        git(src, "commit", "-q", "--allow-empty", "-m", name)
    git(src, "checkout", "-q", "-b", "side")
    for name in ("s1", "s2"):
        git(src, "commit", "-q", "--allow-empty", "-m", name)
    git(src, "checkout", "-q", "main")
    git(src, "commit", "-q", "--allow-empty", "-m", "m2")
    git(src, "merge", "-q", "--no-ff", "side", "-m", "m3")
    sha = {n: git(src, "log", "--all", "--format=%H", f"--grep=^{n}$") for n in ("m2", "s2", "m3")}
    (tmp_path / "cache" / "git").mkdir(parents=True)
    git(tmp_path, "clone", "-q", "--bare", str(src), str(tmp_path / "cache" / "git" / "lib.git"))
    good, bad = Status.PASSED, Status.REGRESSED
    verdicts = {0: good, 1: good, 2: bad}
    summary = _report(tmp_path, list(sha.values()), verdicts, "--cache", "cache")
    s = {n: x[:8] for n, x in sha.items()}
    assert f"| r | cpu | begins at {s['m3']} (last good {s['m2']}); " in summary, summary
    assert f"{s['s2']} (passed)" in summary
    assert "untested" not in summary


def test_a_cache_without_one_librarys_mirror_is_said(tmp_path: Path) -> None:
    """`--cache` holding lib's mirror and not lib2's: lib2's boundary read "begins at d6
    (last good d1)" across d2..d5 it could not see, and nothing said the mirror was missing
    (exit 0, no line); a warning now names lib2 and what its sentences cannot see."""
    shas = _history(tmp_path, 4)
    other = tmp_path / "src2"  # never cloned into the cache
    other.mkdir()
    git(other, "init", "-q", "-b", "main")
    for i in range(8):
        git(other, "commit", "-q", "--allow-empty", "-m", f"d{i}")
    d = git(other, "rev-list", "--reverse", "HEAD").split()
    (tmp_path / "r.py").write_text("")
    (tmp_path / "matrix.yaml").write_text(
        "schema: 1\nlibraries:\n"
        f"  lib: {{git: {tmp_path / 'src'}, import: lib, versions: ['{shas[1][:8]}']}}\n"
        f"  lib2: {{git: {other}, import: lib2, versions: ['{d[1][:8]}', '{d[6][:8]}']}}\n"
        "repros:\n  r: {script: r.py, gpus: [cpu], libraries: {lib: all, lib2: all}}\n"
    )
    store = ResultStore(tmp_path / "results")
    for i, (at, status) in enumerate([(1, Status.PASSED), (6, Status.REGRESSED)]):
        store.append(
            Result(
                key=f"k{i}", cell_id=f"r[cpu,host,lib={shas[1][:8]},lib2={d[at][:8]}]",
                repro="r", base="host", gpu="cpu", pins={"lib": shas[1][:8], "lib2": d[at][:8]},
                commits={"lib": shas[1], "lib2": d[at]}, status=status,
                finished=f"2026-01-01T00:00:0{i}+00:00",
            )
        )  # fmt: skip
    argv = [sys.executable, "-m", "repromatrix", "report", "--matrix", "matrix.yaml"]
    argv += ["--results", "results", "--out", "rep", "--cache", "cache"]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    warned = [ln for ln in done.stderr.splitlines() if "holds no clone" in ln]
    assert warned == [
        "repromatrix: warning: --cache cache holds no clone of lib2: its commits are placed by "
        "matrix.yaml's list alone, and those between two it lists are not seen (a boundary "
        'across them reads "at"); give --cache the one its runs used'
    ], done.stderr
