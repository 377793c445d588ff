"""Revisions named in odd ways: a tag moved after the run, a commit a record names by its
short hash alone. Real git (a mirror in --cache, as `run` and `bisect` leave it), records
as `run` writes them, the real `repromatrix report`."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_report_untested_commits import _history, _records, _run_report, git

from repromatrix.model import Status

pytestmark = pytest.mark.integration

G, B = Status.PASSED, Status.REGRESSED


def _matrix(root: Path, listed: str) -> None:
    (root / "r.py").write_text("")
    (root / "matrix.yaml").write_text(
        "schema: 1\nlibraries:\n"
        f"  lib: {{git: {root / 'src'}, import: lib, versions: [{listed}]}}\n"
        "repros:\n  r: {script: r.py, gpus: [cpu], libraries: {lib: all}}\n"
    )


def test_a_tag_moved_after_its_run_is_its_new_commit_not_yet_run(tmp_path: Path) -> None:
    """v1.0 ran at c4 (bad), under a definition of the cell older than matrix.yaml's now
    (another key); then v1.0 was moved to c7 and fetched. matrix.yaml's v1.0 had no
    commit in the report ("no verdict at v1.0 (no result yet)"), a point off the line
    that ended the count: c5 and c6, between c4 and c8 (good), went unsaid. It is c7
    now, a point of the line with no result yet, among the untested commits."""
    c = _history(tmp_path, 10)
    src = tmp_path / "src"
    git(src, "tag", "v1.0", c[4])
    _matrix(tmp_path, f"'{c[0][:8]}', v1.0, '{c[8][:8]}'")
    _records(tmp_path, [(c[0][:8], c[0], G), ("v1.0", c[4], B), (c[8][:8], c[8], G)])
    git(src, "tag", "-f", "v1.0", c[7])
    git(tmp_path / "cache" / "git" / "lib.git", "fetch", "-q", "--force", "--tags", str(src))
    summary = _run_report(tmp_path, "--cache", "cache")
    s = [x[:8] for x in c]
    # The run at c4 read "v1.0 · c4" everywhere: the tag's name on a commit it no longer
    # names. It is labelled by the commit it was made at, the tag said to have moved.
    old = f"v1.0 (moved; this run at {s[4]})"
    ends = f"ends between {old} and {s[8]} (last bad {old}, first good {s[8]}; "
    ends += f"no verdict at {s[5]}–{s[6]} (2 commits untested), v1.0 · {s[7]} (no result yet))"
    assert ends in summary, summary
    page = (tmp_path / "rep" / "index.html").read_text()
    compat = (tmp_path / "rep" / "compat.html").read_text()
    # Its row was badged "not in matrix", as if a commit nobody declared: it is the one
    # matrix.yaml's v1.0 named when it ran, and says so.
    said = f"commit {c[4]}, which v1.0 named when this ran (the tag has moved since)"
    assert f'<th title="{said}">{old} <span class="badge">v1.0 before it moved</span>' in page
    assert "not in matrix" not in page
    for text in (summary, page, compat):
        assert f"v1.0 · {s[4]}" not in text


def test_a_commit_recorded_by_its_short_hash_is_named_once(tmp_path: Path) -> None:
    """Records whose commit is a 7-character hash (a record of an older tool, one edited by
    hand) under an 8-character pin: each commit read "70b24f35 · 70b24f3", its hash twice
    as if a name and a commit."""
    c = _history(tmp_path, 10)
    _matrix(tmp_path, ", ".join(f"'{c[i][:8]}'" for i in (0, 3, 5, 9)))
    _records(tmp_path, [(c[i][:8], c[i][:7], v) for i, v in ((0, G), (3, G), (5, B), (9, B))])
    summary = _run_report(tmp_path, "--cache", "cache")
    s = [x[:8] for x in c]
    begins = f"begins between {s[3]} and {s[5]} (last good {s[3]}, first bad {s[5]}; "
    assert begins + f"no verdict at {s[4]} (untested))" in summary, summary
    assert " · " not in summary


def test_a_second_root_merged_in_is_the_branch_its_merge_brings(tmp_path: Path) -> None:
    """An orphan branch o0..o2 (a second root: a vendored project's own history) merged
    into main at m: good at c3 and o0, bad at o2 and m. The change is o1 or o2, never m
    nor anything of main's: a range over o1, the branch the merge brings."""
    c = _history(tmp_path, 4)
    src = tmp_path / "src"
    git(src, "checkout", "-q", "--orphan", "o")
    o = []
    for i in range(3):
        git(src, "commit", "-q", "--allow-empty", "-m", f"o{i}")
        o.append(git(src, "rev-parse", "HEAD"))
    git(src, "checkout", "-q", "main")
    git(src, "merge", "-q", "--allow-unrelated-histories", "--no-ff", "-m", "m", "o")
    m = git(src, "rev-parse", "HEAD")
    git(
        tmp_path / "cache" / "git" / "lib.git",
        "fetch",
        "-q",
        str(src),
        "+refs/heads/*:refs/heads/*",
    )
    runs = [(c[3], G), (o[0], G), (o[2], B), (m, B)]
    _matrix(tmp_path, ", ".join(f"'{sha[:8]}'" for sha, _ in runs))
    _records(tmp_path, [(sha[:8], sha, v) for sha, v in runs])
    summary = _run_report(tmp_path, "--cache", "cache")
    begins = f"begins between {o[0][:8]} and {o[2][:8]} (last good {o[0][:8]}, first bad "
    begins += f"{o[2][:8]}; no verdict at {o[1][:8]} (untested, the branch merged at {m[:8]}))"
    assert begins in summary, summary
