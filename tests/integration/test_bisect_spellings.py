"""One commit, many spellings (a short sha, a tag, a branch): what a matrix run stored
under any of them is the commit's evidence for `bisect` too, as it is for the report.
Real git and the CLI as a subprocess; the library goes on PYTHONPATH (no pip)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from repromatrix.records import Result
from repromatrix.store import ResultStore

pytestmark = pytest.mark.integration

REPRO = textwrap.dedent("""\
    import argparse, json, sys
    p = argparse.ArgumentParser()
    p.add_argument("--out")
    p.add_argument("--params")
    a = p.parse_args()
    import spellpkg
    bad = spellpkg.VALUE == 1
    with open(a.out, "w") as f:
        json.dump({"schema": 1, "status": "regressed" if bad else "passed",
                   "reason": f"VALUE={spellpkg.VALUE}"}, f)
    sys.exit(1 if bad else 0)
    """)


def _git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t", **(env or {})}  # fmt: skip
    done = subprocess.run(["git", "-C", str(repo), *args], env=env, capture_output=True,
                          text=True, check=True)  # fmt: skip
    return done.stdout.strip()


def _matrix(root: Path, versions: str, pypi: bool = False) -> Path:
    path = root / "m.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        schema: 1
        libraries:
          spellpkg:
            git: {root / "lib"}
            import: spellpkg
            install: pythonpath
            {"pypi: spellpkg" if pypi else ""}
            versions: {versions}
        repros:
          r: {{script: repros/r.py, gpus: [cpu], isolate: true, libraries: {{spellpkg: all}}}}
        """)
    )
    return path


def _cli(root: Path, matrix: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "repromatrix", "--matrix", str(matrix), *args]
    argv += ["--executor=local", "--no-progress", f"--cache={root / 'cache'}", "--results=res"]
    return subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=600,
                          check=False)  # fmt: skip


def _records(root: Path) -> list[Result]:
    return list(ResultStore(root / "res").load().results)


def test_stored_runs_of_a_commit_under_any_spelling_are_bisect_evidence(tmp_path: Path) -> None:
    """A matrix ran the bad commit as the tag `v1` and the branch `feat`; once matrix.yaml
    declared it by its short sha instead, `bisect` read only records of declared spellings
    and ran the commit again, where the report already counted those records as its."""
    lib = tmp_path / "lib"
    (lib / "spellpkg").mkdir(parents=True)
    _git(lib, "init", "-q", "-b", "main")
    (lib / "spellpkg" / "__init__.py").write_text("VALUE = 0\n")
    _git(lib, "add", ".")
    _git(lib, "commit", "-qm", "good")
    good = _git(lib, "rev-parse", "--short=8", "HEAD")
    (lib / "spellpkg" / "__init__.py").write_text("VALUE = 1\n")
    _git(lib, "commit", "-qam", "bad")
    bad = _git(lib, "rev-parse", "HEAD")
    _git(lib, "tag", "v1")
    _git(lib, "branch", "feat")
    (tmp_path / "repros").mkdir()
    (tmp_path / "repros" / "r.py").write_text(REPRO)

    ran = _cli(tmp_path, _matrix(tmp_path, f'[{{git: "{good}"}}, {{git: v1}}, {{git: feat}}]'),
               "run")  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert sorted(r.pins["spellpkg"] for r in _records(tmp_path)) == sorted([good, "feat", "v1"])

    # matrix.yaml now names the bad commit by its short sha only.
    matrix = _matrix(tmp_path, f'[{{git: "{good}"}}, {{git: "{bad[:8]}"}}]')
    before = len(_records(tmp_path))
    found = _cli(tmp_path, matrix, "bisect", "r", "--library=spellpkg", f"--good={good}",
                 f"--bad={bad[:8]}")  # fmt: skip
    assert found.returncode == 0, found.stderr
    assert f"first bad commit: {bad}" in found.stdout
    assert "3 stored run(s) reused" in found.stdout + found.stderr
    # Nothing ran again: both ends were known.
    assert len(_records(tmp_path)) == before


def test_a_tag_named_like_a_short_id_of_another_commit_is_refused_naming_both(
    tmp_path: Path,
) -> None:
    """`--good 1a2b3c4`, the short id of c1, once the source tagged c2 `1a2b3c4` as well:
    git reads the tag first (`git rev-parse` names c2, "refname is ambiguous"), while the
    cached clone, which had c1 and not the tag, bisected from c1 without a fetch, and from
    c2 in the next command, once a fetch had brought the tag. Now a short id is read after a
    fetch as a name is, and both meanings refuse it in one line naming them (exit 64), in
    every command alike; the tag's full name or more of the commit's digits bisect."""
    lib = tmp_path / "lib"
    (lib / "spellpkg").mkdir(parents=True)
    _git(lib, "init", "-q", "-b", "main")
    shas: list[str] = []
    for value in (0, 0, 0, 1, 1):
        (lib / "spellpkg" / "__init__.py").write_text(f"VALUE = {value}\n# {len(shas)}\n")
        _git(lib, "add", ".")
        _git(lib, "commit", "-qm", f"c{len(shas)}")
        shas.append(_git(lib, "rev-parse", "HEAD"))
    (tmp_path / "repros").mkdir()
    (tmp_path / "repros" / "r.py").write_text(REPRO)
    short = shas[1][:7]
    matrix = _matrix(tmp_path, "[{git: main}]")
    bisect = ("bisect", "r", "--library=spellpkg", f"--good={short}", "--bad=main")
    first = _cli(tmp_path, matrix, *bisect)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"({short}" in first.stdout, first.stdout
    _git(lib, "tag", short, shas[2])
    assert _git(lib, "rev-parse", short) == shas[2]  # git: the tag, not the short id
    for _ in range(2):
        out = _cli(tmp_path, matrix, *bisect)
        assert out.returncode == 64, out.stdout + out.stderr
        lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1, out.stderr
        assert f"refs/tags/{short} ({shas[2][:10]})" in lines[0], lines[0]
        assert f"commit {shas[1][:10]}" in lines[0], lines[0]
        assert "Traceback" not in out.stderr
    out = _cli(tmp_path, matrix, *bisect[:3], f"--good=refs/tags/{short}", "--bad=main")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"first bad commit: {shas[3]}" in out.stdout, out.stdout


def test_a_short_id_of_digits_alone_is_the_commit_and_refused_where_a_release_is_named_so(
    tmp_path: Path,
) -> None:
    """`--good 6956717`, a short id made of digits alone: on a git axis it names the commit.
    Where matrix.yaml also declares a release spelled so, `--source auto` read both ends as
    releases when the other was one too (and asked the index for them), and silently as the
    commit otherwise: either reading may be the one meant, so it is refused in one line
    naming both and how to say which (exit 64); the commit's full id bisects it."""
    lib = tmp_path / "lib"
    (lib / "spellpkg").mkdir(parents=True)
    _git(lib, "init", "-q", "-b", "main")
    shas: list[str] = []
    dated = {"GIT_AUTHOR_DATE": "", "GIT_COMMITTER_DATE": ""}
    while not shas or not shas[-1][:7].isdigit():  # the same shas every time: fixed dates
        (lib / "spellpkg" / "__init__.py").write_text(f"VALUE = 0\n# {len(shas)}\n")
        _git(lib, "add", ".")
        dated = dict.fromkeys(dated, f"{1700000000 + 60 * len(shas)} +0000")
        _git(lib, "commit", "-qm", f"c{len(shas)}", env=dated)
        shas.append(_git(lib, "rev-parse", "HEAD"))
    digits = shas[-1][:7]
    for value in (0, 1, 1):
        (lib / "spellpkg" / "__init__.py").write_text(f"VALUE = {value}\n# {len(shas)}\n")
        dated = dict.fromkeys(dated, f"{1700000000 + 60 * len(shas)} +0000")
        _git(lib, "commit", "-qam", f"c{len(shas)}", env=dated)
        shas.append(_git(lib, "rev-parse", "HEAD"))
    (tmp_path / "repros").mkdir()
    (tmp_path / "repros" / "r.py").write_text(REPRO)
    bisect = ("bisect", "r", "--library=spellpkg", f"--good={digits}", "--bad=main")

    releases = _matrix(tmp_path, '[{pypi: "1.0"}, {git: main}]', pypi=True)
    out = _cli(tmp_path, releases, *bisect)  # no release of that name: the commit
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"first bad commit: {shas[-2]}" in out.stdout, out.stdout

    both = _matrix(tmp_path, f'[{{pypi: "{digits}"}}, {{pypi: "99999999"}}, {{git: main}}]', True)
    for bad in ("main", "99999999"):  # read as the commit; as a release (the other end is)
        out = _cli(tmp_path, both, *bisect[:-1], f"--bad={bad}")
        assert out.returncode == 64, out.stdout + out.stderr
        lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1, out.stderr
        assert f"--good {digits} names both the release {digits} of spellpkg" in lines[0]
        assert f"the commit {shas[-4][:12]}" in lines[0], lines[0]
        assert f"its full id ({shas[-4]})" in lines[0], lines[0]
        assert "--source pypi" in lines[0], lines[0]
        assert "Traceback" not in out.stderr
    out = _cli(tmp_path, both, *bisect[:3], f"--good={shas[-4]}", "--bad=main")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"first bad commit: {shas[-2]}" in out.stdout, out.stdout
