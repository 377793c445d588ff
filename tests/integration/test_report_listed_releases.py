"""Releases and listed commits are points of every series along their library: those a
bisection listed, matrix.yaml declares or another repro ran, where this repro ran none of
them: real wheels, real pip, real git, the real `repromatrix run`, `bisect` and `report`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from bisect_repo import REPRO, _init, build_wheels

pytestmark = pytest.mark.integration


def _cli(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return subprocess.run(
        [sys.executable, "-m", "repromatrix", "--matrix", "matrix.yaml", *argv],
        cwd=tmp_path, env=env | {"PIP_CONFIG_FILE": os.devnull},
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def _two_repros(tmp_path: Path, versions: str, again: str) -> None:
    """Repros `scale` (every declared release of bisectpkg) and `again` (`again`'s list,
    YAML) in tmp_path's matrix.yaml, which declares `versions` (YAML) of bisectpkg."""
    (tmp_path / "repros").mkdir()
    for name in ("scale", "again"):
        (tmp_path / "repros" / f"{name}.py").write_text(REPRO)
    (tmp_path / "matrix.yaml").write_text(
        "schema: 1\nlibraries:\n"
        f"  pkg: {{pypi: bisectpkg, import: bisectpkg, versions: {versions}}}\n"
        "repros:\n"
        "  scale: {script: repros/scale.py, gpus: [cpu], libraries: {pkg: all}}\n"
        f"  again: {{script: repros/again.py, gpus: [cpu], libraries: {{pkg: {again}}}}}\n"
    )


def test_a_release_another_repro_ran_is_a_point_of_this_series_too(tmp_path: Path) -> None:
    """Two repros of bisectpkg, matrix.yaml declaring 1.0 (good) and 1.5 (bad); a bisection
    of `scale` listed 1.1-1.4 and ran some of them. `again` ran none of 1.1-1.4: its
    regression begins somewhere between 1.0 and 1.5. The report named only the listed
    releases no repro ran ("no verdict at 1.1 (not run in this series)", where the search
    ran 1.2-1.4): those another repro ran left `again`'s axis, its chart and grid, and its
    sentence a range narrower than its runs know."""
    wheels = build_wheels(
        tmp_path / "wheels", ["1.0", "1.1", "1.2", "1.3", "1.4", "1.5"], bad={"1.3", "1.4", "1.5"}
    )
    _two_repros(tmp_path, '["1.0", "1.5"]', "all")
    common = ["--executor=local", "--no-progress", "--cache=cache", "--results=results"]
    common += [f"--find-links={wheels}", "--no-index"]
    ran = _cli(tmp_path, "run", *common)
    assert ran.returncode == 0, ran.stderr
    bisect = ["bisect", "scale", "--library=pkg", "--good=1.0", "--bad=1.5", *common]
    searched = _cli(tmp_path, *bisect)
    assert searched.returncode == 0, searched.stderr
    assert "first bad release: pkg 1.3" in searched.stdout, searched.stdout
    done = _cli(tmp_path, "report", "--results=results", "--cache=cache", "--out=rep")
    assert done.returncode == 0, done.stderr
    summary = (tmp_path / "rep" / "summary.md").read_text()
    assert "| scale | cpu | begins at 1.3 (last good 1.2);" in summary, summary
    unrun = ", ".join(f"1.{i} (not run in this series)" for i in range(1, 5))
    said = f"begins between 1.0 and 1.5 (last good 1.0, first bad 1.5; no verdict at {unrun})"
    assert f"| again | cpu | {said};" in summary, summary
    compat = (tmp_path / "rep" / "compat.html").read_text()
    assert "no verdict before it at 1.1, 1.2, 1.3, 1.4)" in compat, compat
    page = (tmp_path / "rep" / "index.html").read_text()
    section = re.search(r'<section class="repro"[^>]*data-repro="again".*?</table>', page, re.S)
    assert section is not None
    rows = re.findall(r"<th>([^<]*)</th>", section.group(0))
    assert rows == [f"1.{i}" for i in range(6)]  # a row of its own in again's grid


def test_a_declared_release_this_repro_does_not_run_lies_between_its_points(
    tmp_path: Path,
) -> None:
    """matrix.yaml declares 1.0-1.3 of bisectpkg, which breaks at 1.2; `scale` runs them
    all, `again` only 1.0 and 1.3 (its list). The report said `again` "begins at 1.3 (last
    good 1.0)", a sharp boundary across two declared releases it never ran, where `scale`
    saw the change at 1.2: a range naming them."""
    wheels = build_wheels(tmp_path / "wheels", ["1.0", "1.1", "1.2", "1.3"], bad={"1.2", "1.3"})
    _two_repros(tmp_path, '["1.0", "1.1", "1.2", "1.3"]', '["1.0", "1.3"]')
    ran = _cli(
        tmp_path, "run", "--executor=local", "--no-progress", "--cache=cache",
        "--results=results", f"--find-links={wheels}", "--no-index",
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    done = _cli(tmp_path, "report", "--results=results", "--cache=cache", "--out=rep")
    assert done.returncode == 0, done.stderr
    summary = (tmp_path / "rep" / "summary.md").read_text()
    assert "| scale | cpu | begins at 1.2 (last good 1.1);" in summary, summary
    unrun = "1.1 (not run in this series), 1.2 (not run in this series)"
    said = f"begins between 1.0 and 1.3 (last good 1.0, first bad 1.3; no verdict at {unrun})"
    assert f"| again | cpu | {said};" in summary, summary
    compat = (tmp_path / "rep" / "compat.html").read_text()
    assert "regressed 1.3 (no verdict before it at 1.1, 1.2)" in compat, compat


def _history(path: Path, bad_from: int, n: int) -> list[str]:
    """A git repository of bisectpkg (flat: importable from the checkout) whose scale()
    is wrong from commit `bad_from` on; its n commits' full hashes, oldest first."""
    path.mkdir()
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}

    def git(*args: str, at: int = 0) -> str:
        when = {"GIT_AUTHOR_DATE": f"@{1_700_000_000 + at} +0000"}
        when["GIT_COMMITTER_DATE"] = when["GIT_AUTHOR_DATE"]
        return subprocess.run(
            ["git", "-C", str(path), *args], env=env | when,
            check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip

    git("init", "-q", "-b", "main")
    (path / "bisectpkg").mkdir()
    shas = []
    for i in range(n):
        (path / "bisectpkg" / "__init__.py").write_text(_init(i, i >= bad_from))
        git("add", "-A")
        git("commit", "-q", "-m", f"c{i}", at=i * 1000)
        shas.append(git("rev-parse", "HEAD"))
    return shas


def test_a_listed_commit_this_repro_does_not_run_lies_between_its_points(
    tmp_path: Path,
) -> None:
    """matrix.yaml lists commits c0, c2, c3, c5 of a history that breaks at c2; `scale`
    runs them all, `again` only c0 and c5. Read without a mirror (another --cache), the
    report said `again` "begins at c5 (last good c0)" across the two commits the list has
    between them, where `scale` saw the change at c2: a range naming them."""
    shas = _history(tmp_path / "upstream", bad_from=2, n=6)
    short = [sha[:8] for sha in shas]
    (tmp_path / "repros").mkdir()
    for name in ("scale", "again"):
        (tmp_path / "repros" / f"{name}.py").write_text(REPRO)
    listed = ", ".join(f'{{git: "{shas[i][:10]}"}}' for i in (0, 2, 3, 5))
    (tmp_path / "matrix.yaml").write_text(
        "schema: 1\nlibraries:\n"
        f"  pkg: {{git: '{(tmp_path / 'upstream').as_uri()}', import: bisectpkg,"
        f" install: pythonpath, versions: [{listed}]}}\n"
        "repros:\n"
        "  scale: {script: repros/scale.py, gpus: [cpu], libraries: {pkg: all}}\n"
        f"  again: {{script: repros/again.py, gpus: [cpu], libraries: {{pkg: ['{shas[0][:10]}',"
        f" '{shas[5][:10]}']}}}}\n"
    )
    ran = _cli(
        tmp_path, "run", "--executor=local", "--no-progress", "--cache=cache", "--results=results"
    )
    assert ran.returncode == 0, ran.stderr
    done = _cli(tmp_path, "report", "--results=results", "--cache=elsewhere", "--out=rep")
    assert done.returncode == 0, done.stderr
    summary = (tmp_path / "rep" / "summary.md").read_text()
    assert f"| scale | cpu | begins at {short[2]} (last good {short[0]});" in summary, summary
    unrun = f"{short[2]} (not run in this series), {short[3]} (not run in this series)"
    said = f"between {short[0]} and {short[5]} (last good {short[0]}, first bad {short[5]};"
    assert f"| again | cpu | begins {said} no verdict at {unrun});" in summary, summary
