"""`bisect --test --test-from` with test files a command line cannot carry, and test files
that cannot be a verdict at all: real git, real pip, the CLI as a real subprocess."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from bisect_repo import FIX, TEST_FIX, BisectRepo, build, write_matrix

from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.store import ResultStore

pytestmark = pytest.mark.integration

#: The test of the fix under a comment of 300 KB: as base64 in one argument (2.7 MB once
#: 8 are in one store line), it was past Linux's 128 KiB for one argument string.
BIG = "#" + " big comment" * 25_000 + "\n" + TEST_FIX
#: The same test under another comment: another file, so another experiment.
OTHER = "#" + " other comment" * 21_500 + "\n" + TEST_FIX
HOSTILE = {
    "tests/test_big.py": BIG.encode(),
    "tests/test_other.py": OTHER.encode(),
    "tests/test_latin1.py": b"# caf\xe9\n" + TEST_FIX.encode(),
    "tests/test_nul.py": TEST_FIX.encode() + b"x = 1\x00\n",
    "tests/test_noimport.py": b"def test_scale_large():\n    assert scale(1000.0) == 2000.0\n",
}


@dataclass(frozen=True)
class Workspace:
    root: Path
    matrix: Path
    repo: BisectRepo

    def bisect(self, results: str, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "repromatrix", "--matrix", str(self.matrix), "bisect"]
        argv += [*args, "--results", results, "--cache", str(self.root / "cache")]
        argv += ["--executor", "local", "--no-progress"]
        return subprocess.run(
            argv, cwd=self.root, capture_output=True, text=True, timeout=600, check=False
        )

    def records(self, results: str) -> list[Result]:
        return list(ResultStore(self.root / results).load().results)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root = tmp_path_factory.mktemp("bisect-test-file")
    repo = build(root / "upstream")
    # The files on a branch of their own after the last commit, tagged `hostile`.
    git = ["git", "-C", str(repo.path), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "checkout", "-q", "-b", "hostile"], check=True)
    for name, data in HOSTILE.items():
        (repo.path / name).write_bytes(data)
    os.symlink("test_fix.py", repo.path / "tests" / "test_link.py")
    os.symlink("../../../etc/passwd", repo.path / "tests" / "test_out.py")
    subprocess.run([*git, "add", "tests"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "hostile tests"], check=True)
    subprocess.run([*git, "tag", "hostile"], check=True)
    subprocess.run([*git, "checkout", "-q", "main"], check=True)
    return Workspace(root=root, matrix=write_matrix(root, repo), repo=repo)


COMMON = ("--library=bisectpkg", "--bad=v2.0", "--good=v3.0", "--find-fix", "--jobs=2")


@pytest.mark.parametrize("mode", ["--isolate", ""], ids=["isolated", "in-a-worker"])
def test_a_test_file_of_300_kb_bisects_and_its_records_stay_small(ws: Workspace, mode: str) -> None:
    results = f"results-big{mode}"
    given = (mode,) if mode else ()
    node = "--test=tests/test_big.py::test_scale_large"
    out = ws.bisect(results, node, "--test-from=hostile", *COMMON, *given)
    # Before: under --isolate every cell was an error, "[Errno 7] Argument list too long".
    assert out.returncode == 0, out.stderr
    assert f"first fixed commit: {ws.repo.sha(FIX)}" in out.stdout
    records = ws.records(results)
    assert {r.status for r in records} == {Status.PASSED, Status.REGRESSED}
    for record in records:
        # Before: each cell's result.json held the file as base64 (402 KB), as it was given.
        result = ws.root / "cache" / "runs" / record.run_id / record.key / "result.json"
        assert result.stat().st_size < 30_000
        params = json.loads(result.read_text())["params"]
        assert params["test_file_sha256"] == hashlib.sha256(BIG.encode()).hexdigest()
        assert params["test_file_b64"] == ""
    # Records hold no params (3.7 KB a line before too): the file is nowhere in them.
    for line in b"".join(p.read_bytes() for p in (ws.root / results).glob("*.jsonl")).splitlines():
        assert len(line) < 30_000
    # The same file: the same keys, every run reused.
    again = ws.bisect(results, node, "--test-from=hostile", *COMMON, *given)
    assert again.returncode == 0, again.stderr
    assert len(ws.records(results)) == len(records)
    # Another file of the same test: another experiment, run anew.
    other = ws.bisect(
        results, "--test=tests/test_other.py::test_scale_large", "--test-from=hostile", *COMMON
    )
    assert other.returncode == 0, other.stderr
    keys = {r.key for r in records}
    assert not keys & {r.key for r in ws.records(results)[len(records) :]}


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("tests/test_latin1.py", "is not UTF-8"),
        ("tests/test_nul.py", "does not parse: a null byte on line"),
        ("tests/test_noimport.py", "uses scale, which it neither imports nor defines"),
        ("tests/test_link.py", "is a symbolic link (to test_fix.py); give the file it points"),
        ("tests/test_out.py", "is a symbolic link out of the repository; give the file it"),
    ],
)
def test_a_test_file_that_cannot_be_a_verdict_is_one_line(
    ws: Workspace, name: str, says: str
) -> None:
    node = f"{name}::test_scale_large"
    out = ws.bisect("results-hostile", f"--test={node}", "--test-from=hostile", *COMMON)
    assert out.returncode == 64, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert f"--test {node}: {name} at hostile" in lines[0]
    assert says in lines[0]
    assert "Traceback" not in out.stderr
    assert not list((ws.root / "results-hostile").glob("*.jsonl"))


def test_an_older_upstream_pytest_beside_the_matrix_keeps_its_keys(ws: Workspace) -> None:
    """A copy of repros/upstream_pytest.py made before the file was given by its digest (no
    test_file_sha256 param) is given it as base64 still, as before: the same params, the
    same keys, so the runs stored of its cells are reused; one it cannot take is one line."""
    sources = Path(__file__).parents[2] / "repros"
    shipped = (sources / "upstream_pytest.py").read_text()
    older = shipped.replace('    "test_file_sha256": "",\n', "")
    older = older.replace('test_file(str(p["test_file_sha256"]), ', 'test_file("", ')
    assert '"test_file_sha256"' not in older
    root = ws.root / "older"
    (root / "repros").mkdir(parents=True)
    (root / "repros" / "upstream_pytest.py").write_text(older)
    for name in ("_repro.py", "bisectpkg_scale.py"):
        source = ws.root / "repros" / name
        (root / "repros" / name).write_bytes(
            (source if source.exists() else sources / name).read_bytes()
        )
    (root / "matrix.yaml").write_text(ws.matrix.read_text())
    older_ws = Workspace(root=ws.root, matrix=root / "matrix.yaml", repo=ws.repo)
    node = "--test=tests/test_fix.py::test_scale_large"
    out = older_ws.bisect("results-older", node, "--test-from=v3.0", *COMMON, "--isolate")
    assert out.returncode == 0, out.stderr
    records = ws.records("results-older")
    result = ws.root / "cache" / "runs" / records[0].run_id / records[0].key / "result.json"
    params = json.loads(result.read_text())["params"]
    assert base64.b64decode(params["test_file_b64"]) == TEST_FIX.encode()
    assert "test_file_sha256" not in params
    again = older_ws.bisect("results-older", node, "--test-from=v3.0", *COMMON, "--isolate")
    assert again.returncode == 0, again.stderr
    assert len(ws.records("results-older")) == len(records)
    big = older_ws.bisect("results-older", "--test=tests/test_big.py::test_scale_large",
                          "--test-from=hostile", *COMMON)  # fmt: skip
    assert big.returncode == 64, big.stderr
    assert len(big.stderr.strip().splitlines()) == 1, big.stderr
    assert "is an older copy, which takes the file on its command line" in big.stderr
