"""`repromatrix bisect` over histories whose names stopped saying one thing: a short id that
names several commits, against what git itself says of the same history."""

from __future__ import annotations

import collections
import os
import subprocess
from pathlib import Path

import pytest
from bisect_repo import BACKEND, PYPROJECT
from history_repo import History, build_dag, write_matrix
from history_repo import bisect_cli as bisect

pytestmark = pytest.mark.integration


def shared_prefix(history: History) -> tuple[str, list[str]]:
    """A 4-digit short id that two of the history's commits share (the shas are fixed)."""
    by_prefix = collections.defaultdict(list)
    for sha in history.shas.values():
        by_prefix[sha[:4]].append(sha)
    return next((p, shas) for p, shas in sorted(by_prefix.items()) if len(shas) > 1)


def test_an_end_given_as_a_short_id_that_names_two_commits_says_so(tmp_path: Path) -> None:
    """A short id that the history grew to share: git says "short object ID 6d3f is
    ambiguous" and lists the commits; bisect said "revision '6d3f' is not a commit in
    <cache>/git/bisectpkg.git; check it or the --git-mirror", as of a name it never had."""
    history = build_dag(tmp_path / "upstream", [(), *((i,) for i in range(899))], step=60)
    write_matrix(tmp_path, history)
    prefix, shas = shared_prefix(history)
    out = bisect(tmp_path, f"--good={prefix}", "--bad=bad")
    assert out.returncode == 6, out.stdout + out.stderr
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith(f"repromatrix: error: --good {prefix}: "), line
    assert f"revision '{prefix}' is a short id of {len(shas)} commits" in line, line
    for sha in shas:
        assert sha[:10] in line, line
    assert "give more of its digits" in line, line
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("online", [True, False])
def test_a_partial_clone_as_git_mirror_is_refused_before_any_run(
    tmp_path: Path, online: bool
) -> None:
    """`git clone --filter=blob:none` holds every commit but not their files, and the
    cache's copy of it cannot fetch them (online or not): each cell ended "error: harness
    failed: GitError: error: cannot read '3f8b5b00...'", stored, and the bisect said
    "--good good (...) could not be evaluated ...; fix that or pick another --good"."""
    history = build_dag(tmp_path / "upstream", [(), *((i,) for i in range(19))])
    subprocess.run(
        ["git", "-C", str(history.path), "config", "uploadpack.allowFilter", "true"], check=True
    )
    partial = tmp_path / "partial"
    clone = ["git", "clone", "-q", "--filter=blob:none", "--no-checkout"]
    subprocess.run([*clone, f"file://{history.path}", str(partial)], check=True)
    if not online:
        history.path.rename(tmp_path / "gone")
    write_matrix(tmp_path, history)
    out = bisect(tmp_path, "--good=good", "--bad=bad", f"--git-mirror=bisectpkg={partial}")
    assert out.returncode == 6, out.stdout + out.stderr
    line = out.stderr.strip().splitlines()[-1]
    assert f"--git-mirror bisectpkg={partial} is a partial clone" in line, line
    assert "(--filter=blob:none)" in line, line
    assert "clone it again without --filter" in line, line
    assert "harness failed" not in out.stdout + out.stderr
    assert not list((tmp_path / "results").glob("*.jsonl")), "a run was made and stored"


SUBMODULE_REPRO = """\
import argparse, json, sys
p = argparse.ArgumentParser()
p.add_argument("--out", required=True)
p.add_argument("--params", default="{}")
a = p.parse_args()
from bisectpkg.vendored.flags import BUG
status, code = ("regressed", 1) if BUG else ("passed", 0)
with open(a.out, "w") as f:
    json.dump({"schema": 1, "repro": "pkg_check", "status": status, "reason": f"BUG={BUG}",
               "metrics": {"bug": float(BUG)}, "thresholds": {"bug": 0.5}, "provenance": {}}, f)
sys.exit(code)
"""


def _commit(repo: Path, message: str, files: dict[str, str]) -> str:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    env = dict(os.environ, GIT_AUTHOR_NAME="Dev", GIT_AUTHOR_EMAIL="dev@example.com")
    env |= {"GIT_COMMITTER_NAME": "Dev", "GIT_COMMITTER_EMAIL": "dev@example.com"}
    for args in (["add", "-A"], ["commit", "-q", "-m", message], ["rev-parse", "HEAD"]):
        done = subprocess.run(
            ["git", "-C", str(repo), *args], env=env, capture_output=True, text=True, check=True
        )
    return done.stdout.strip()


def test_a_submodule_bump_to_a_commit_the_cached_mirror_lacks_is_fetched(tmp_path: Path) -> None:
    """The library vendors a submodule; a first run cloned it into the cache. Upstream, the
    submodule then gained the bug and the library bumped it: every commit with the bump
    was an error ("submodule src/bisectpkg/vendored of bisectpkg at f7817722: fatal: not
    a tree object"), stored, and the bisect stopped on its --bad end, where `git submodule
    update` fetches the commit and git bisect names the bump."""
    sub, lib = tmp_path / "sub", tmp_path / "lib"
    for repo in (sub, lib):
        subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    _commit(sub, "s0", {"__init__.py": "", "flags.py": "BUG = False\n"})
    backend = {"_backend.py": BACKEND, "pyproject.toml": PYPROJECT}
    _commit(lib, "c0", {**backend, "src/bisectpkg/__init__.py": ""})
    vendored = lib / "src" / "bisectpkg" / "vendored"
    add = ["git", "-C", str(lib), "-c", "protocol.file.allow=always", "submodule", "add"]
    subprocess.run([*add, "-q", str(sub), "src/bisectpkg/vendored"], check=True)
    good = _commit(lib, "c1: vendor flags", {})
    _commit(lib, "c2", {"notes.txt": "2\n"})
    write_matrix(tmp_path, History(path=lib, shas={}))  # and the repro, replaced:
    (tmp_path / "repros" / "pkg_check.py").write_text(SUBMODULE_REPRO)
    first = bisect(tmp_path, f"--good={good}", "--bad=main")  # clones both into the cache
    assert "is not bad" in first.stderr, first.stdout + first.stderr
    _commit(sub, "s1: the bug", {"flags.py": "BUG = True\n"})
    subprocess.run(["git", "-C", str(vendored), "pull", "-q", "origin", "main"], check=True)
    bump = _commit(lib, "c3: bump vendored flags", {})
    _commit(lib, "c4", {"notes.txt": "4\n"})
    out = bisect(tmp_path, f"--good={good}", "--bad=main")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"first bad commit: {bump}" in out.stdout, out.stdout
    assert "not a tree object" not in out.stdout + out.stderr


def test_a_ref_lock_a_killed_fetch_left_in_the_mirror_does_not_keep_a_moved_end(
    tmp_path: Path,
) -> None:
    """A bisect killed (SIGKILL, the OOM killer) while its mirror's `git fetch` updated refs
    leaves git's lock file there; every later fetch failed ("cannot lock ref 'refs/tags/
    bad': Unable to create '.../bad.lock': File exists"), read as the source being out of
    reach: the next bisect warned "cannot reach UPSTREAM to refresh 'good'; using the cached
    clone's" and bisected the `bad` the source no longer has, naming c8, exit 0, where the
    source's `bad` (moved to c6) passes."""
    history = build_dag(tmp_path / "upstream", [(), *((i,) for i in range(11))],
                        bad=lambda i: i >= 8, importable=True)  # fmt: skip
    write_matrix(tmp_path, history)
    first = bisect(tmp_path, "--good=good", "--bad=bad")
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"first bad commit: {history.sha('c8')}" in first.stdout
    git = ["git", "-C", str(history.path)]
    subprocess.run([*git, "tag", "-f", "bad", history.sha("c6")], check=True, capture_output=True)
    mirror = tmp_path / "cache" / "git" / "bisectpkg.git"
    lock = "refs/tags/bad.lock"
    (mirror / lock).parent.mkdir(parents=True, exist_ok=True)
    (mirror / lock).write_text("")  # as git leaves it when killed mid-update
    again = bisect(tmp_path, "--good=good", "--bad=bad")
    said = again.stdout + again.stderr
    assert again.returncode == 6, said
    assert "cannot reach" not in said
    assert f"--bad bad ({history.sha('c6')[:8]}) is not bad" in said, said
    assert not (mirror / lock).exists()
