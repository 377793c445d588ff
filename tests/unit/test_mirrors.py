"""The cached clones of libraries' repositories (`mirrors.Mirrors`) follow their source:
another repository named for the library, and branches and tags that moved, never leave a
stale answer (a bisect of the wrong repository's commits, an old `main`). Real git."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from repromatrix.gitlog import Line
from repromatrix.mirrors import Mirrors


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
        env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
             "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin", "HOME": str(repo)},
    )  # fmt: skip
    return out.stdout.strip()


def history(path: Path, name: str, commits: int) -> list[str]:
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    shas = []
    for i in range(commits):
        git(path, "commit", "-q", "--allow-empty", "-m", f"{name}{i}")
        shas.append(git(path, "rev-parse", "HEAD"))
    git(path, "tag", "good", shas[0])
    git(path, "tag", "bad", shas[-1])
    return shas


def test_another_repository_for_the_library_is_cloned_not_the_old_one_used(
    tmp_path: Path,
) -> None:
    a, b = history(tmp_path / "a", "a", 3), history(tmp_path / "b", "b", 4)
    root = tmp_path / "cache"
    assert Mirrors(root).resolve("lib", str(tmp_path / "a"), "bad") == a[-1]
    # matrix.yaml's git: now names b (or a --git-mirror does): b's commits, b's names.
    assert Mirrors(root).resolve("lib", str(tmp_path / "b"), "bad") == b[-1]
    assert Mirrors(root).resolve("lib", str(tmp_path / "b"), a[1]) is None
    via_mirror = Mirrors(root, {"lib": str(tmp_path / "a")})
    assert via_mirror.resolve("lib", "https://example.invalid/b.git", "bad") == a[-1]
    # The same place spelled another way is the same repository: no new clone.
    mirror = root / "lib.git"
    before = mirror.stat().st_ino
    assert Mirrors(root).resolve("lib", f"{tmp_path}/./a", "good") == a[0]
    assert mirror.stat().st_ino == before


def test_a_fork_of_the_same_name_never_takes_the_other_sources_mirror_away(
    tmp_path: Path,
) -> None:
    """Two matrices sharing a cache, a fork and its upstream both named `lib`: the second
    source deleted and re-cloned the first's mirror, under a bisection using it ("revision
    ... not found", stored as an error)."""
    a, b = history(tmp_path / "a", "a", 3), history(tmp_path / "b", "b", 4)
    root = tmp_path / "cache"
    upstream = Mirrors(root)
    assert upstream.resolve("lib", str(tmp_path / "a"), "bad") == a[-1]
    before = (root / "lib.git").stat().st_ino
    assert Mirrors(root).resolve("lib", str(tmp_path / "b"), "bad") == b[-1]
    assert (root / "lib.git").stat().st_ino == before  # still there, still a's
    assert upstream.resolve("lib", str(tmp_path / "a"), a[1]) == a[1]
    assert Mirrors(root).resolve("lib", str(tmp_path / "a"), "good") == a[0]
    # Both are a report's to choose from, the one named after the library first.
    found = Mirrors(root).every("lib")
    assert [(repo.path.name == "lib.git", origin) for repo, origin in found] == [
        (True, str(tmp_path / "a")),
        (False, str(tmp_path / "b")),
    ]


def test_branches_and_tags_are_read_as_the_source_has_them_now(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shas = history(src, "m", 3)
    root = tmp_path / "cache"
    assert Mirrors(root).resolve("lib", str(src), "main") == shas[-1]
    git(src, "commit", "-q", "--allow-empty", "-m", "newer")
    git(src, "tag", "-f", "bad", shas[1])  # a tag moved
    git(src, "branch", "gone", shas[0])
    newer = git(src, "rev-parse", "HEAD")
    later = Mirrors(root)
    assert later.resolve("lib", str(src), "main") == newer
    assert later.resolve("lib", str(src), "bad") == shas[1]
    assert later.resolve("lib", str(src), "main~1") == shas[-1]
    git(src, "branch", "-D", "gone")
    assert Mirrors(root).resolve("lib", str(src), "gone") is None  # deleted there: gone here


def test_an_unreachable_source_leaves_the_cached_names(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shas = history(src, "m", 2)
    root = tmp_path / "cache"
    assert Mirrors(root).resolve("lib", str(src), "main") == shas[-1]
    src.rename(tmp_path / "elsewhere")  # offline: the source cannot be reached
    again = Mirrors(root)
    assert again.resolve("lib", str(src), "main") == shas[-1]  # the clone still answers
    assert again.resolve("lib", str(src), shas[0]) == shas[0]
    assert (root / "lib.git" / "HEAD").exists()


def test_a_source_that_cannot_be_cloned_stops_a_bisection_with_exit_6(tmp_path: Path) -> None:
    from repromatrix.candidates import commit_candidates
    from repromatrix.errors import BisectError, ExitCode
    from repromatrix.model import InstallMode, Library

    library = Library(name="lib", pypi=None, git="https://example.invalid/lib.git",
                      import_name="lib", install=InstallMode.PIP, revisions=())  # fmt: skip
    mirrors = Mirrors(tmp_path / "cache", {"lib": str(tmp_path / "nowhere")})
    with pytest.raises(BisectError) as caught:
        commit_candidates(mirrors, library, "v1", "v2")
    message = str(caught.value)
    assert caught.value.exit_code is ExitCode.BISECT
    assert "fatal:" in message
    assert "check --git-mirror lib=PATH" in message


def test_head_is_the_sources_head_now(tmp_path: Path) -> None:
    """`--bad HEAD` read the HEAD the mirror had when cloned: the source's checkout moved
    to another branch, and a fresh cache and an old one bisected different ranges."""
    src = tmp_path / "src"
    shas = history(src, "m", 2)
    root = tmp_path / "cache"
    assert Mirrors(root).resolve("lib", str(src), "HEAD") == shas[-1]
    git(src, "checkout", "-q", "-b", "side")
    git(src, "commit", "-q", "--allow-empty", "-m", "on side")
    side = git(src, "rev-parse", "HEAD")
    assert Mirrors(root).resolve("lib", str(src), "HEAD") == side
    assert Mirrors(root).resolve("lib", str(src), "HEAD~1") == shas[-1]


def test_a_commit_named_by_its_message_is_resolved(tmp_path: Path) -> None:
    """`:/text` (git's newest commit whose message matches, as `git bisect` takes it) was
    read as `:/text^{commit}`, a search for that longer text: "not a commit"."""
    src = tmp_path / "src"
    shas = history(src, "m", 3)
    mirrors = Mirrors(tmp_path / "cache")
    assert mirrors.resolve("lib", str(src), ":/m1") == shas[1]
    assert mirrors.resolve("lib", str(src), ":/^m2") == shas[2]
    assert mirrors.resolve("lib", str(src), ":/nothing like it") is None
    git(src, "tag", "-a", "-m", "release", "v1", shas[0])  # annotated: peeled to its commit
    assert Mirrors(tmp_path / "cache").resolve("lib", str(src), "v1") == shas[0]


def test_a_commit_named_by_its_message_is_resolved_in_a_batch_as_git_rev_parse(
    tmp_path: Path,
) -> None:
    """A matrix revision `:/text` is matched to stored results through `resolve_many`, which
    asked for `:/text^{commit}` (a search for that longer text): found by no record, and
    placed nowhere in the report's order. Now the batch names what `git rev-parse` does;
    a search that matches nothing, or is no regex, is left out, never an error."""
    src = tmp_path / "src"
    shas = history(src, "m", 4)
    repo = Mirrors(tmp_path / "cache").repo("lib", str(src))
    asked = [":/m1", ":/^m2", ":/m[0-9]", "good", ":/nothing like it", ":/[", "HEAD~1"]
    found = repo.resolve_many(asked)
    for rev in (":/m1", ":/^m2", ":/m[0-9]", "good", "HEAD~1"):
        assert found[rev] == git(src, "rev-parse", rev), rev
        assert found[rev] == repo.resolve(rev), rev
    assert found[":/m1"] == shas[1]
    assert ":/nothing like it" not in found
    assert ":/[" not in found
    assert repo.topo_positions([":/^m2", "bad"]) == {":/^m2": 2, shas[2]: 2, "bad": 3, shas[3]: 3}


@pytest.mark.parametrize("name", ["20240101", "cafe1234"])
def test_a_branch_or_tag_named_like_a_commit_id_is_read_as_the_source_has_it_now(
    tmp_path: Path, name: str
) -> None:
    """A date tag a nightly job moves (`20240101`) or a branch `cafe1234` is all hex digits:
    it was taken for a commit id, which never moves, so the clone's old answer stood and
    `bisect --bad 20240101` bisected the commit the tag named when the clone was made."""
    src = tmp_path / "src"
    shas = history(src, "m", 3)
    git(src, "branch" if name.startswith("c") else "tag", name, shas[0])
    root = tmp_path / "cache"
    assert Mirrors(root).resolve("lib", str(src), name) == shas[0]
    git(src, "branch" if name.startswith("c") else "tag", "-f", name, shas[-1])  # moved
    assert Mirrors(root).resolve("lib", str(src), name) == shas[-1]
    git(src, "branch" if name.startswith("c") else "tag", "-d", name)  # deleted there
    assert Mirrors(root).resolve("lib", str(src), name) is None
    assert Mirrors(root).resolve("lib", str(src), shas[1][:8]) == shas[1]  # an id still is one


def test_a_name_that_is_both_a_tag_and_a_branch_is_said_once_naming_both(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`--good x` with x a tag and a branch resolved to the tag without a word, where git
    itself warns "refname 'x' is ambiguous": a bisect from the wrong commit looks right."""
    src = tmp_path / "src"
    shas = history(src, "m", 3)
    git(src, "tag", "x", shas[0])
    git(src, "branch", "x", shas[1])
    mirrors = Mirrors(tmp_path / "cache")
    with caplog.at_level("WARNING", logger="repromatrix"):
        assert mirrors.resolve("lib", str(src), "x") == shas[0]  # git's choice: the tag
        assert mirrors.resolve("lib", str(src), "x") == shas[0]
        # A bisection resolves through more than one (the search's, the environments').
        assert Mirrors(tmp_path / "cache").resolve("lib", str(src), "x") == shas[0]
        assert mirrors.resolve("lib", str(src), "refs/heads/x") == shas[1]
        assert mirrors.resolve("lib", str(src), "good") == shas[0]
    said = [r.getMessage() for r in caplog.records if "ambiguous" in r.getMessage()]
    assert said == [
        f"'x' of lib is ambiguous: refs/tags/x ({shas[0][:10]}) and refs/heads/x "
        f"({shas[1][:10]}); using refs/tags/x, as git does: give the full name to choose"
    ]


def test_a_report_walks_a_librarys_first_parent_line_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The order of a library's commits and the commits between them no cell ran come from
    one first-parent line: `report` asked git for it three times per library (a full
    `rev-list --topo-order` and twice `rev-list --first-parent`), 0.25 s a library on a
    5,000-commit history where once is 0.14 s."""
    from repromatrix import proc
    from repromatrix.report_command import _history

    shas = history(tmp_path / "src", "m", 8)
    repo = Mirrors(tmp_path / "cache").repo("lib", str(tmp_path / "src"))
    walks: list[str] = []
    run = proc.run

    def counted(argv: list[str], **kwargs: object) -> proc.Completed:
        walks.extend(a for a in argv if a == "rev-list")
        return run(argv, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(proc, "run", counted)
    topo, lines = _history({"lib": repo}, {"lib": [shas[2][:8], "bad", shas[5]]})
    assert walks == ["rev-list"]
    assert topo == {"lib": {shas[2][:8]: 2, shas[2]: 2, shas[5]: 5, "bad": 7, shas[7]: 7}}
    assert lines == {"lib": Line(commits=tuple(shas[2:]))}


def test_the_commits_each_merge_brings_in_come_from_one_walk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where every commit of main is a merge (GitHub's merge button), a report of 200 of
    them asked git `rev-list m ^m^1` for each: 200 processes a library, 8 s. The line and
    what its merges bring in are two walks, however many merges ran."""
    from repromatrix import proc

    src = tmp_path / "src"
    line = history(src, "m", 1)
    brought = {}
    for i in range(12):
        git(src, "checkout", "-q", "-b", f"s{i}", line[0] if i == 5 else "main")
        git(src, "commit", "-q", "--allow-empty", "-m", f"s{i}")
        git(src, "checkout", "-q", "main")
        git(src, "merge", "-q", "--no-ff", "-m", f"m{i}", f"s{i}")
        line.append(git(src, "rev-parse", "HEAD"))
        brought[line[-1]] = (git(src, "rev-parse", f"s{i}"),)
    brought[line[6]] = (git(src, "rev-parse", "s5"),)  # made from m0, which m5 holds
    repo = Mirrors(tmp_path / "cache").repo("lib", str(src))
    walks: list[str] = []
    run = proc.run

    def counted(argv: list[str], **kwargs: object) -> proc.Completed:
        walks.extend(a for a in argv if a == "rev-list")
        return run(argv, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(proc, "run", counted)
    _, got = repo.history(line[1:])
    assert walks == ["rev-list", "rev-list"]
    assert got.commits == tuple(line[1:])
    assert got.branches == {m: brought[m] for m in line[2:]}


def test_a_revision_is_read_once_a_fetch_not_once_a_cell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every cell's base and environment asked the mirror for its pin's commit again: a git
    process per cell (10 repros over 20 short ids: 201 `git rev-parse` to plan 200 cells
    all stored). After the process's fetch a name stands for one commit until the next
    fetch, which reads it anew."""
    from repromatrix.gitrepo import GitRepo

    src = tmp_path / "src"
    shas = history(src, "m", 3)
    asked: list[str] = []
    real = GitRepo.resolve

    def counted(self: GitRepo, rev: str) -> str | None:
        asked.append(rev)
        return real(self, rev)

    monkeypatch.setattr(GitRepo, "resolve", counted)
    mirrors = Mirrors(tmp_path / "cache")
    short = shas[1][:10]
    for _ in range(5):
        assert mirrors.resolve("lib", str(src), short) == shas[1]
        assert mirrors.resolve("lib", str(src), "main") == shas[-1]
    assert asked.count(short) <= 2  # before and after the process's one fetch
    assert asked.count("main") == 1
    git(src, "commit", "-q", "--allow-empty", "-m", "newer")
    assert mirrors.update("lib", str(src))
    assert mirrors.resolve("lib", str(src), "main") == git(src, "rev-parse", "HEAD")
