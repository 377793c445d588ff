"""Axis ordering: NGC tags, PEP 440, git topology from a real repository, declared order."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from repromatrix.gitrepo import GitRepo
from repromatrix.mirrors import Mirrors
from repromatrix.model import SourceKind, Status
from repromatrix.ordering import BaseInfo, build_orders, commit_revs, ngc_release, order_bases
from repromatrix.records import Result
from repromatrix.revision_order import RevInfo, order_revisions, place_revisions

PYPI, GIT = SourceKind.PYPI, SourceKind.GIT


def test_ngc_release_from_tag_and_declared() -> None:
    assert ngc_release("nvcr.io/nvidia/pytorch:24.12-py3") == (2024, 12)
    assert ngc_release("nvcr.io/nvidia/pytorch:25.01-py3-igpu") == (2025, 1)
    assert ngc_release("nvcr.io/nvidia/pytorch:latest", "2024-06") == (2024, 6)
    assert ngc_release("nvcr.io/nvidia/pytorch:latest") is None
    assert ngc_release("localhost:5000/img") is None
    assert ngc_release("registry:5000/nvidia/pytorch:24.99-py3") is None


def test_an_os_version_in_a_tag_is_no_release() -> None:
    """nvidia/cuda tags end in the Ubuntu they are built on: CUDA 12.6 on Ubuntu 20.04
    was dated April 2020 and 12.4 on 22.04 April 2022, so a report said the regression
    "begins at cu124 (last good cu126)". Such an image has no release (order unknown,
    until `released:` says one)."""
    assert ngc_release("nvidia/cuda:12.4.1-runtime-ubuntu22.04") is None
    assert ngc_release("nvidia/cuda:12.6.0-cudnn-devel-ubuntu20.04") is None
    assert ngc_release("example/env:pytorch-24.12") == (2024, 12)
    bases = [
        BaseInfo(name="cu126", ref="nvidia/cuda:12.6.0-runtime-ubuntu20.04"),
        BaseInfo(name="ngc", ref="nvcr.io/nvidia/pytorch:24.12-py3"),
        BaseInfo(name="cu124", ref="nvidia/cuda:12.4.1-runtime-ubuntu22.04"),
    ]
    assert order_bases(bases) == ("ngc", "cu126", "cu124")


def test_order_bases_by_release_host_first() -> None:
    bases = [
        BaseInfo(name="ngc2501", ref="nvcr.io/nvidia/pytorch:25.01-py3"),
        BaseInfo(name="custom", ref="example/custom:dev"),
        BaseInfo(name="ngc2412", ref="nvcr.io/nvidia/pytorch:24.12-py3"),
        BaseInfo(name="host"),
        BaseInfo(name="dated", ref="example/x:dev", released="2024-01"),
    ]
    assert order_bases(bases) == ("host", "dated", "ngc2412", "ngc2501", "custom")


def test_pep440_including_post_releases() -> None:
    labels = ["0.2.10", "0.2.2.post1", "0.2.2", "0.2.3rc1", "0.2.3", "0.2.9"]
    infos = [RevInfo(label=x, kind=PYPI, declared=i) for i, x in enumerate(labels)]
    assert order_revisions(infos) == (
        "0.2.2",
        "0.2.2.post1",
        "0.2.3rc1",
        "0.2.3",
        "0.2.9",
        "0.2.10",
    )


def test_mixed_axis_keeps_declared_order_and_no_commit_date_places_a_commit() -> None:
    """Without ancestry, b1 (dated between c2 and c3) went between them: a commit of a
    branch merged later is dated among the line's commits it never was between."""
    infos = [
        RevInfo(label="0.2.3", kind=PYPI, declared=0),
        RevInfo(label="c1", kind=GIT, declared=1, committed="2025-03-01T00:00:00Z"),
        RevInfo(label="c2", kind=GIT, declared=2, committed="2025-03-05T00:00:00Z"),
        RevInfo(label="c3", kind=GIT, declared=3, committed="2025-03-09T00:00:00Z"),
        RevInfo(label="0.2.4", kind=PYPI, declared=4),
        # A commit bisect evaluated, dated between c2 and c3 (not declared).
        RevInfo(label="b1", kind=GIT, committed="2025-03-07T00:00:00+00:00"),
        RevInfo(label="zz", kind=GIT),
    ]
    # Nothing to compare them by: at the end, their place a guess.
    assert place_revisions(infos) == (
        ("0.2.3", "c1", "c2", "c3", "0.2.4", "b1", "zz"),
        frozenset({"b1", "zz"}),
    )


def test_declared_order_fallback_when_nothing_else_is_known() -> None:
    infos = [RevInfo(label=x, kind=GIT, declared=i) for i, x in enumerate(["main", "fix", "old"])]
    assert order_revisions(infos) == ("main", "fix", "old")


def test_commits_have_no_order_of_their_dates() -> None:
    """git keeps when a commit was made, not where it stands: by date, a commit of a branch
    merged later sits among the line's own. Without ancestry commits have no order, never
    the order their records came in, nor their dates' (equal to the second or not)."""
    infos = [
        RevInfo(label="late", kind=GIT, committed="2025-01-03T00:00:00Z"),
        RevInfo(label="t2", kind=GIT, committed="2025-01-02T00:00:00Z"),
        RevInfo(label="t1", kind=GIT, committed="2025-01-02T00:00:00+00:00"),
        RevInfo(label="early", kind=GIT, committed="2025-01-01T00:00:00Z"),
    ]
    order, guessed = place_revisions(infos)
    assert guessed == {"early", "late", "t1", "t2"}
    # Each in either order of the records: the same answer.
    assert place_revisions(infos[::-1]) == (order, guessed)


def _git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env
    ).stdout.strip()


@pytest.fixture
def git_repo(tmp_path: Path) -> tuple[Path, list[str]]:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    work = tmp_path / "work"
    work.mkdir()
    _git(work, "init", "-q", "-b", "main")
    shas = []
    # Dates deliberately out of order: topology must win over dates.
    for i, date in enumerate(["2025-01-05", "2025-01-01", "2025-01-03", "2025-01-02"]):
        (work / "f.txt").write_text(str(i))
        _git(work, "add", "f.txt")
        _git(work, "commit", "-q", "-m", f"c{i}", "--date", f"{date}T00:00:00Z")
        shas.append(_git(work, "rev-parse", "HEAD"))
    _git(work, "tag", "v1", shas[1])
    root = tmp_path / "proj" / "git"
    bare = root / "lib.git"
    bare.parent.mkdir(parents=True)
    subprocess.run(
        ["git", "clone", "-q", "--bare", str(work), str(bare)], check=True, capture_output=True
    )
    return root, shas


def test_topological_order_from_a_real_repository(git_repo: tuple[Path, list[str]]) -> None:
    root, shas = git_repo
    topo = GitRepo(root / "lib.git").topo_positions(
        [shas[3][:10], "v1", shas[0], shas[2], "nope-not-a-rev"]
    )
    assert topo[shas[0]] < topo["v1"] < topo[shas[3][:10]]
    assert "nope-not-a-rev" not in topo
    infos = [
        RevInfo(label="tip", kind=GIT, commit=shas[3], committed="2025-01-02"),
        RevInfo(label="first", kind=GIT, commit=shas[0], committed="2025-01-05"),
        RevInfo(label="v1", kind=GIT, committed="2025-01-01"),
        RevInfo(label="third", kind=GIT, commit=shas[2][:12]),
    ]
    assert order_revisions(infos, topo=topo) == ("first", "v1", "third", "tip")


def test_read_topo_orders_from_results(git_repo: tuple[Path, list[str]]) -> None:
    root, shas = git_repo
    results = [
        Result(
            key=f"k{i}",
            cell_id="c",
            repro="r",
            base="host",
            image=None,
            gpu="h100",
            pins={"lib": sha[:7]},
            status=Status.PASSED,
            reason="",
            provenance={"harness": {"pins": {"lib": {"commit": sha, "kind": "git"}}}},
        )
        for i, sha in enumerate(reversed(shas))
    ]
    topo = {"lib": GitRepo(root / "lib.git").topo_positions(commit_revs(results, None)["lib"])}
    orders = build_orders(results, None, topo=topo)
    # Records spelled the commits with 7 digits; they are shown as 8-digit short hashes.
    assert orders.libraries["lib"] == tuple(s[:8] for s in shas)
    assert GitRepo(root / "missing.git").topo_positions(["HEAD"]) == {}


@pytest.mark.parametrize("name", ["x" * 300, "x" * 5000, "nul\x00name"])
def test_a_library_name_no_file_can_have_has_no_mirror(tmp_path: Path, name: str) -> None:
    """Records name libraries; `report` asks the mirrors of each. A name too long for a
    file, or with a NUL, crashed the whole report (exit 70)."""
    (tmp_path / "git").mkdir()
    assert Mirrors(tmp_path / "git").every(name) == []


def test_a_commit_of_a_merged_branch_is_no_point_of_the_line(tmp_path: Path) -> None:
    """main: g0, m1, m2, merge of a branch s1, s2 made from g0. m1 brought the regression
    in; the branch never had it. git's topological order (g0 m1 m2 s1 s2 merge) put the
    branch after m2, and the report said "ends at s1 (last bad m2)" and compat.html
    "fixed in s1": a fix that never was. Commits off the first-parent line of the
    others are said apart, their order unknown."""
    from repromatrix.report import build_report

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    work = tmp_path / "work"
    work.mkdir()
    _git(work, "init", "-q", "-b", "main")
    sha: dict[str, str] = {}

    def commit(name: str, day: int) -> None:
        (work / name).write_text(name)
        _git(work, "add", name)
        _git(work, "commit", "-q", "-m", name, "--date", f"2025-01-0{day}T00:00:00Z")
        sha[name] = _git(work, "rev-parse", "HEAD")

    # "g0", not "b0": a label of hex digits that its commit's id begins with (1 in 256
    # commits, the committer date being now) is read as that short id, and shown so.
    commit("g0", 1)
    _git(work, "checkout", "-q", "-b", "side")
    commit("s1", 2)
    commit("s2", 3)
    _git(work, "checkout", "-q", "main")
    commit("m1", 4)
    commit("m2", 5)
    _git(work, "merge", "-q", "--no-ff", "side", "-m", "merge")
    sha["merge"] = _git(work, "rev-parse", "HEAD")
    # A branch from m1 never merged, with the newest commit of all: not the line either
    # (main's line holds most of the commits).
    _git(work, "checkout", "-q", "-b", "feature", sha["m1"])
    commit("f1", 9)
    _git(work, "checkout", "-q", "main")
    topo = GitRepo(work / ".git").topo_positions(sha.values())
    assert sha["s1"] not in topo
    assert sha["f1"] not in topo
    assert topo[sha["g0"]] < topo[sha["m1"]] < topo[sha["m2"]] < topo[sha["merge"]]
    del sha["f1"]
    bad = {"m1", "m2", "merge"}
    results = [
        Result(
            key=name,
            cell_id=name,
            repro="r",
            base="host",
            gpu="cpu",
            pins={"lib": name},
            commits={"lib": full},
            status=Status.REGRESSED if name in bad else Status.PASSED,
        )
        for name, full in sha.items()
    ]
    (row,) = build_report(results, topo={"lib": topo}).summary_rows
    assert row.sentence == (
        "begins at m1 · " + sha["m1"][:8] + " (last good g0 · " + sha["g0"][:8] + "); still "
        "present in the newest tested whose order is known (merge · " + sha["merge"][:8] + "); "
        "order unknown (not on the first-parent line of the others in the mirror in --cache "
        "(a commit of a merged branch, one no branch or tag holds now (force-pushed away, "
        "deleted), or one the mirror lacks), or next to a release it "
        "cannot be compared with): s1 · " + sha["s1"][:8] + " (passed), "
        "s2 · " + sha["s2"][:8] + " (passed)"
    )


def test_a_commit_is_not_placed_before_a_release_it_cannot_be_compared_with() -> None:
    """matrix.yaml lists 0.2.3, commit c1, 0.2.4; a bisected commit dated after c1 went
    right after c1, before 0.2.4, and the report said the regression "begins at 22222222
    (last good c1)": it may be newer than 0.2.4 too. Its place is unknown."""
    infos = [
        RevInfo(label="0.2.3", kind=PYPI, declared=0),
        RevInfo(label="c1", kind=GIT, declared=1, commit="1" * 40, committed="2025-01-01"),
        RevInfo(label="0.2.4", kind=PYPI, declared=2),
        RevInfo(label="22222222", kind=GIT, commit="2" * 40, committed="2026-06-01"),
        RevInfo(label="00000000", kind=GIT, commit="0" * 40, committed="2024-06-01"),
    ]
    assert place_revisions(infos) == (
        ("0.2.3", "c1", "0.2.4", "00000000", "22222222"),
        frozenset({"00000000", "22222222"}),
    )
    # Nor between two commits: its date is no place among them (ancestry alone is).
    infos[2] = RevInfo(label="c2", kind=GIT, declared=2, commit="3" * 40, committed="2027-01-01")
    assert place_revisions(infos[1:4]) == (("c1", "c2", "22222222"), frozenset({"22222222"}))


def test_a_listed_commit_off_the_line_keeps_no_place_from_the_list() -> None:
    """matrix.yaml lists m1, a branch's s2, m3, then the merge m4 that brought s2's bug to
    main: the list's place of s2 made m3 its successor, "ends at m3 (last bad s2)" a fix
    on a line that never had the bug. With a mirror, a listed commit off its first-parent
    line is said apart as one no list names."""
    topo = {"1" * 40: 1, "3" * 40: 3, "4" * 40: 4}
    infos = [
        RevInfo(label=name, kind=GIT, declared=i, commit=name[1] * 40)
        for i, name in enumerate(["m1", "s2", "m3", "m4"])
    ]
    assert place_revisions(infos, topo=topo) == (("m1", "m3", "m4", "s2"), frozenset({"s2"}))
    # Without a mirror the list is the only order there is: it stands.
    assert place_revisions(infos) == (("m1", "s2", "m3", "m4"), frozenset())


def test_a_listed_name_that_moved_places_none_of_its_commits() -> None:
    """matrix.yaml lists `main`, run before and after a push: both records took main's
    place in the list, in the order they were read, and without a mirror the report said
    "ends at main · 2222 (last bad main · 1111)" over commits no run saw (or, read the
    other way round, a fix that never was). The list places neither; a mirror places both."""
    infos = [
        RevInfo(label="v1", kind=GIT, declared=0, commit="0" * 40),
        RevInfo(label="main · 11111111", kind=GIT, declared=1, commit="1" * 40),
        RevInfo(label="main · 22222222", kind=GIT, declared=1, commit="2" * 40),
    ]
    assert place_revisions(infos) == (
        ("v1", "main · 11111111", "main · 22222222"),
        frozenset({"main · 11111111", "main · 22222222"}),
    )
    topo = {"0" * 40: 0, "2" * 40: 5, "1" * 40: 9}  # reset back: the older record is newer
    assert place_revisions(infos, topo=topo) == (
        ("v1", "main · 22222222", "main · 11111111"),
        frozenset(),
    )


def test_a_commit_placed_among_many_asks_its_place_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """2,000 bisection commits of a 10,000-commit line took 31 s to place: each was compared
    with every point placed before it, each comparison reading both places from the mirror's
    positions anew (4,000,000 reads). Each point's place is read once now."""
    from repromatrix import revision_order

    shas = [f"{i:040x}" for i in range(300)]
    topo = {sha: i for i, sha in enumerate(shas)}
    infos = [RevInfo(label=sha[-8:], kind=SourceKind.GIT, commit=sha) for sha in shas[::-1]]
    infos[0] = RevInfo(label=shas[-1][-8:], kind=SourceKind.GIT, commit=shas[-1], declared=0)
    reads = 0
    real = revision_order._topo_pos

    def counted(info: RevInfo, topo: dict[str, int]) -> int | None:
        nonlocal reads
        reads += 1
        return real(info, topo)

    monkeypatch.setattr(revision_order, "_topo_pos", counted)
    labels = order_revisions(infos, topo=topo)
    assert labels == tuple(sha[-8:] for sha in shas)
    assert reads < 10 * len(shas), reads


def test_a_bisections_commits_are_placed_without_comparing_each_with_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A report of 2,000 bisection records over a 10,000-commit line spent a third of its
    time placing them: each commit was compared with every point placed before it between
    the listed ones (2,000,000 comparisons). On the mirror's line a place is a binary search
    now; the order is the line's, as before."""
    import random

    from repromatrix import revision_order

    shas = [f"{i:040x}" for i in range(10_000)]
    topo = {sha: i for i, sha in enumerate(shas)}
    listed = [0, 2_500, 5_000, 9_999]
    picked = sorted(set(random.Random(3).sample(range(10_000), 1_000)) - set(listed))
    infos = [
        RevInfo(label=shas[i][-8:], kind=GIT, commit=shas[i], declared=listed.index(i))
        for i in listed
    ]
    infos += [RevInfo(label=shas[i][-8:], kind=GIT, commit=shas[i]) for i in picked[::-1]]
    compared = 0
    real = revision_order._compare

    def counted(a: RevInfo, b: RevInfo, at: dict[str, int | None]) -> int | None:
        nonlocal compared
        compared += 1
        return real(a, b, at)

    monkeypatch.setattr(revision_order, "_compare", counted)
    labels, guessed = place_revisions(infos, topo=topo)
    assert labels == tuple(shas[i][-8:] for i in sorted([*listed, *picked]))
    assert guessed == frozenset()
    assert compared < 10 * len(infos), compared


def test_a_commit_takes_a_place_only_from_the_one_commit_of_the_line_it_is() -> None:
    """The line knows c1 as its full sha and as the rev given, `aaaaaaa` (seven digits).
    A branch's commit aaaaaaab… off the line extends `aaaaaaa` and took c1's place (a
    prefix of it matched, "the reverse" of an abbreviation); an abbreviated commit that
    two full shas of the line extend took the first one's. Neither has a place: said
    apart, never at a commit it is not."""
    c0, c1, c2 = "0" * 40, "aaaaaaa" + "1" * 33, "aaaaaaa" + "2" * 33
    topo = {c0: 0, "aaaaaaa": 1, c1: 1, c2: 2, "c2": 2}
    off = "aaaaaaa" + "b" * 33  # shares c1's seven digits, a commit of its own
    infos = [RevInfo(label=n, kind=SourceKind.GIT, commit=c) for n, c in [("c0", c0), ("c2", c2)]]
    infos += [RevInfo(label="off", kind=SourceKind.GIT, commit=off)]
    infos += [RevInfo(label="both", kind=SourceKind.GIT, commit="aaaaaa")]  # c1 or c2
    infos += [RevInfo(label="one", kind=SourceKind.GIT, commit=c2[:12])]  # c2 alone
    order, guessed = place_revisions(infos, topo=topo)
    assert guessed == {"off", "both"}
    assert order[:3] == ("c0", "c2", "one") or order[:3] == ("c0", "one", "c2")
