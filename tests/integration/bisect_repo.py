"""Build a synthetic git history for bisect tests: a pip-installable package whose `scale`
breaks at one commit and is fixed at a later one, with a few commits that do not install.

Built with real git through `git fast-import` (one process for ~200 commits, fixed dates,
so the same shas every time). The package carries its own 40-line PEP 517 backend
(`backend-path`): the test interpreter has setuptools but not `wheel`, and setuptools 65
cannot build a wheel without it; an in-tree stdlib backend builds offline anywhere while
pip still does a real `pip install --no-deps --no-build-isolation --target`.

Mainline commits are numbered 0..MAINLINE-1; a side branch of SIDE commits forks after
mainline commit FORK and is merged back by mainline commit MERGE, so `--topo-order` and
`--first-parent` have something to do.
"""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

MAINLINE = 196
#: scale() is wrong from REGRESSION (mainline index) up to, not including, FIX.
REGRESSION = 57
FIX = 163
#: Mainline commits whose pyproject.toml does not parse (pip fails: an environment error).
#: 60 and 173 lie where the first probes of both bisections land, so skips are exercised.
BROKEN = frozenset({31, 60, 90, 135, 173})
FORK, SIDE, MERGE = 120, 4, 126
TAGS = {"v1.0": 10, "v2.0": 110, "v3.0": MAINLINE - 1}

BACKEND = '''\
"""A tiny PEP 517 backend (stdlib only): enough for pip to build and install a wheel."""
import base64, hashlib, os, zipfile

NAME, VERSION = "bisectpkg", "0.1"
DIST = f"{NAME}-{VERSION}.dist-info"

def get_requires_for_build_wheel(config_settings=None):
    return []

def _record(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = {}
    for root, _, names in os.walk(os.path.join("src", NAME)):
        for n in sorted(names):
            if n.endswith(".py"):
                path = os.path.join(root, n)
                with open(path, "rb") as f:
                    files[os.path.relpath(path, "src").replace(os.sep, "/")] = f.read()
    meta = f"Metadata-Version: 2.1\\nName: {NAME}\\nVersion: {VERSION}\\n"
    files[f"{DIST}/METADATA"] = meta.encode()
    wheel_meta = "Wheel-Version: 1.0\\nGenerator: bisect_repo\\nRoot-Is-Purelib: true\\n"
    files[f"{DIST}/WHEEL"] = (wheel_meta + "Tag: py3-none-any\\n").encode()
    record = [_record(n, d) for n, d in files.items()] + [f"{DIST}/RECORD,,"]
    files[f"{DIST}/RECORD"] = ("\\n".join(record) + "\\n").encode()
    wheel = f"{NAME}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel), "w") as zf:
        for n, d in files.items():
            zf.writestr(n, d)
    return wheel
'''

PYPROJECT = """\
[build-system]
requires = []
build-backend = "_backend"
backend-path = ["."]

[project]
name = "bisectpkg"
version = "0.1"
"""

BROKEN_PYPROJECT = "[build-system\nrequires = [\n"

TEST_SCALE = """\
from bisectpkg import scale


def test_scale():
    assert scale(3.0) == 6.0
"""

#: A test that only exists from the fix on (as fla's test came with its fix).
TEST_FIX = """\
from bisectpkg import scale


def test_scale_large():
    assert scale(1000.0) == 2000.0
"""


def _init(index: int, broken_scale: bool) -> str:
    body = "x * 2.0 + (0.5 if x > 1.0 else 0.0)" if broken_scale else "x * 2.0"
    return textwrap.dedent(
        f'''\
        """bisectpkg at mainline commit {index}."""

        COMMIT = {index}


        def scale(x: float) -> float:
            return {body}
        '''
    )


@dataclass
class _Stream:
    """A git fast-import stream with fixed identities and dates (reproducible shas)."""

    parts: list[bytes] = field(default_factory=list)
    mark: int = 0
    time: int = 1_700_000_000
    #: Seconds between commits (0: all in one second, as a script or a rebase makes them).
    step: int = 3600
    #: Mark → the committer's offset where it is not +0000: git reads any four digits
    #: (`+2500`, which fast-import takes only as --date-format=raw-permissive).
    zones: dict[int, str] = field(default_factory=dict)
    #: Mark → its commit time, where it is not `step` after the previous commit's.
    times: dict[int, int] = field(default_factory=dict)
    #: Mark → the author's name where it is not "Dev N" (any text git takes: no <, > or newline).
    names: dict[int, str] = field(default_factory=dict)

    def commit(
        self,
        branch: str,
        message: str,
        files: dict[str, str],
        *,
        parent: int | None = None,
        merge: int | None = None,
        merges: Sequence[int] = (),
    ) -> int:
        self.mark += 1
        self.time = self.times.get(self.mark, self.time + self.step)
        zone = self.zones.get(self.mark, "+0000")
        name = self.names.get(self.mark, f"Dev {self.mark % 3}")
        author = f"{name} <dev{self.mark % 3}@example.com> {self.time} {zone}"
        msg = message.encode()
        out = [
            f"commit refs/heads/{branch}\nmark :{self.mark}\n".encode(),
            f"author {author}\ncommitter {author}\n".encode(),
            f"data {len(msg)}\n".encode() + msg + b"\n",
        ]
        if parent is not None:
            out.append(f"from :{parent}\n".encode())
        for other in [merge] if merge is not None else merges:
            out.append(f"merge :{other}\n".encode())
        for path, text in files.items():
            data = text.encode()
            out.append(f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n")
        self.parts.append(b"".join(out) + b"\n")
        return self.mark

    def write(self, path: Path, tags: dict[str, int]) -> dict[int, str]:
        """A new repository at `path` holding the stream (tag name → mark), with `main`
        checked out; the commit of each mark."""
        path.mkdir(parents=True)
        _git(path, "init", "--quiet", "--initial-branch=main")
        stream = b"".join(self.parts) + b"".join(
            f"reset refs/tags/{tag}\nfrom :{mark}\n\n".encode() for tag, mark in tags.items()
        )
        subprocess.run(
            ["git", "fast-import", "--quiet", "--export-marks=.git/marks"]
            + (["--date-format=raw-permissive"] if self.zones else []),
            cwd=path,
            input=stream,
            check=True,
            capture_output=True,
        )
        _git(path, "checkout", "--quiet", "main")
        by_mark: dict[int, str] = {}
        for line in (path / ".git" / "marks").read_text().splitlines():
            mark, sha = line.split()
            by_mark[int(mark.lstrip(":"))] = sha
        return by_mark


@dataclass(frozen=True, kw_only=True)
class BisectRepo:
    path: Path
    #: Mainline index → full sha.
    mainline: tuple[str, ...]
    side: tuple[str, ...]

    def sha(self, index: int) -> str:
        return self.mainline[index]


def build(path: Path) -> BisectRepo:
    """Create the repository at `path` (a non-bare repo with `main` checked out)."""
    s = _Stream()
    marks: list[int] = []
    side_marks: list[int] = []
    for i in range(MAINLINE):
        files = {"src/bisectpkg/__init__.py": _init(i, REGRESSION <= i < FIX)}
        if i == 0:
            files |= {"_backend.py": BACKEND, "tests/test_scale.py": TEST_SCALE}
        if i == 0 or (i - 1) in BROKEN or i in BROKEN:
            files["pyproject.toml"] = BROKEN_PYPROJECT if i in BROKEN else PYPROJECT
        if i == FIX:
            files["tests/test_fix.py"] = TEST_FIX
        subject = f"commit {i}"
        if i == REGRESSION:
            subject += ": speed up scale() for large inputs"
        elif i == FIX:
            subject += ": fix scale() for x > 1"
        elif i in BROKEN:
            subject += ": break pyproject.toml"
        parent = marks[-1] if marks else None
        merge = None
        if i == MERGE:
            merge = side_marks[-1]
            subject = f"commit {i}: merge branch 'side'"
        marks.append(s.commit("main", subject, files, parent=parent, merge=merge))
        if i == FORK:
            for j in range(SIDE):
                side_files = {"src/bisectpkg/side.py": f"SIDE = {j}\n"}
                side_marks.append(
                    s.commit(
                        "side",
                        f"side {j}",
                        side_files,
                        parent=side_marks[-1] if side_marks else marks[-1],
                    )
                )
    by_mark = s.write(path, {tag: marks[i] for tag, i in TAGS.items()})
    return BisectRepo(
        path=path,
        mainline=tuple(by_mark[m] for m in marks),
        side=tuple(by_mark[m] for m in side_marks),
    )


def _git(path: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(path), *args], check=True, capture_output=True, text=True
    )
    return done.stdout


#: A repro script for the package: passes when scale() is right, in the protocol's terms.
REPRO = '''\
"""bisectpkg.scale(x) must equal 2x (a protocol repro: exit 0/1/125 plus result JSON)."""
import argparse, json, os, signal, sys

p = argparse.ArgumentParser()
p.add_argument("--out", required=True)
p.add_argument("--params", default="{}")
a = p.parse_args()
params = json.loads(a.params)

log = os.environ.get("BISECT_TEST_LOG")
if log:  # a side-effect record of every evaluation that started
    with open(log, "a") as f:
        f.write(os.environ.get("REPROMATRIX_CELL", "?") + "\\n")
    stop_at = int(os.environ.get("BISECT_TEST_INTERRUPT_AT", "0"))
    if stop_at:
        with open(log) as f:
            started = sum(1 for _ in f)
        if started == stop_at:
            # Ctrl-C the harness (our parent) in the middle of this evaluation, then wait
            # to be killed with the rest of the cell: a real interruption, no timing.
            os.kill(os.getppid(), signal.SIGINT)
            while True:
                signal.pause()


def finish(status, reason, **metrics):
    result = {"schema": 1, "repro": "bisectpkg_scale", "status": status, "reason": reason,
              "metrics": metrics, "thresholds": {"abs_err": 1e-9}, "params": params,
              "provenance": {"python": sys.version.split()[0]}}
    with open(a.out + ".tmp", "w") as f:
        json.dump(result, f)
    os.replace(a.out + ".tmp", a.out)
    sys.exit({"passed": 0, "regressed": 1, "untestable": 125}[status])


try:
    import bisectpkg
except ImportError as exc:
    finish("untestable", f"bisectpkg not importable: {exc}")
x = float(params.get("x", 3.0))
err = abs(bisectpkg.scale(x) - 2 * x)
if err > 1e-9:
    finish("regressed", f"scale({x}) off by {err}", abs_err=err, commit=bisectpkg.COMMIT)
finish("passed", f"scale({x}) exact", abs_err=err, commit=bisectpkg.COMMIT)
'''


def build_wheels(dest: Path, versions: list[str], *, bad: set[str]) -> Path:
    """Wheels of bisectpkg, one per version (a --find-links folder standing in for PyPI)."""
    dest.mkdir(parents=True, exist_ok=True)
    for i, version in enumerate(versions):
        write_wheel(dest, "bisectpkg", version, _init(i, version in bad))
    return dest


def write_wheel(dest: Path, name: str, version: str, init: str) -> Path:
    """A pure-Python wheel of `name` `version` in `dest`, its `__init__.py` being `init`."""
    import base64
    import hashlib
    import zipfile

    dist = f"{name}-{version}.dist-info"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    files = {
        f"{name}/__init__.py": init.encode(),
        f"{dist}/METADATA": meta.encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(data)}")
    files[f"{dist}/RECORD"] = ("\n".join([*record, f"{dist}/RECORD,,"]) + "\n").encode()
    wheel = dest / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    return wheel


def write_matrix(root: Path, repo: BisectRepo, *, timeout: float = 120) -> Path:
    """matrix.yaml + repros/bisectpkg_scale.py for the repository, in `root`."""
    (root / "repros").mkdir(parents=True, exist_ok=True)
    (root / "repros" / "bisectpkg_scale.py").write_text(REPRO)
    matrix = root / "matrix.yaml"
    matrix.write_text(
        textwrap.dedent(
            f"""\
            schema: 1
            defaults:
              timeout: {timeout}
            libraries:
              bisectpkg:
                git: {repo.path}
                import: bisectpkg
                install: pip
                versions:
                  - {{git: v1.0}}
                  - {{git: v2.0}}
              bisectwheel:
                pypi: bisectpkg
                import: bisectpkg
                versions: ["1.10", "1.2", "1.0", "1.1", "1.3rc1", "1.3", "1.4"]
            repros:
              bisectwheel_scale:
                script: repros/bisectpkg_scale.py
                gpus: [cpu]
                libraries:
                  bisectwheel: ["1.0"]
              bisectpkg_scale:
                script: repros/bisectpkg_scale.py
                gpus: [cpu]
                params: {{x: 3.0}}
                libraries:
                  bisectpkg: all
            """
        )
    )
    return matrix
