"""Histories with merges, flaky and two-bug repros for the bisect tests, built with real git
(`git fast-import`, fixed dates: the same shas every time), and `git bisect run` as the
reference answer.

The package (bisectpkg, pip-installable through bisect_repo's stdlib backend) reads its
behaviour from two flag modules, one changed on the main line and one on a branch, so a
merge commit combines them the way a real merge combines code:

    scale(x) is wrong when SCALE_BUG_MAIN or SCALE_BUG_SIDE or (MERGE_A and MERGE_B)
    offset(x) is wrong when OFFSET_BUG (a second, unrelated failure)
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bisect_repo import BACKEND, PYPROJECT, _git, _Stream

INIT = '''\
"""bisectpkg: behaviour from the flag modules."""

from bisectpkg.flags_main import MERGE_A, OFFSET_BUG, SCALE_BUG_MAIN
from bisectpkg.flags_side import MERGE_B, SCALE_BUG_SIDE


def scale(x: float) -> float:
    broken = SCALE_BUG_MAIN or SCALE_BUG_SIDE or (MERGE_A and MERGE_B)
    return x * 2.0 + (0.5 if broken else 0.0)


def offset(x: float) -> float:
    return x + (1.0 if OFFSET_BUG else 0.0)
'''

#: Flags of one commit: main-line module and branch module.
Flags = Mapping[str, bool]


def _module(flags: Flags, names: tuple[str, ...], note: str) -> str:
    lines = [f"# {note}"] + [f"{n} = {bool(flags.get(n, False))}" for n in names]
    return "\n".join(lines) + "\n"


MAIN_FLAGS = ("SCALE_BUG_MAIN", "MERGE_A", "OFFSET_BUG")
SIDE_FLAGS = ("SCALE_BUG_SIDE", "MERGE_B")


@dataclass(frozen=True, kw_only=True)
class History:
    path: Path
    #: "m0".."mN" (main line) and "b0".."bK" (branch) → full sha.
    shas: Mapping[str, str]
    #: How matrix.yaml installs it (`build`'s `importable`: pythonpath).
    install: str = "pip"

    def sha(self, name: str) -> str:
        return self.shas[name]

    def name(self, sha: str) -> str:
        return next(n for n, s in self.shas.items() if s == sha)


def build(
    path: Path,
    *,
    main: int,
    main_flags: Callable[[int], Flags],
    branch: int = 0,
    fork: int = 0,
    merge: int = 0,
    side_flags: Callable[[int], Flags] = lambda j: {},
    importable: bool = False,
) -> History:
    """A main line m0..m{main-1}; with `branch`, a branch b0.. forking after m{fork} and
    merged by m{merge} (first parent m{merge-1}, second the branch tip). Tags: good = m0,
    bad = the main line's tip. `importable`: the package at the tree's top, as
    `install: pythonpath` imports it (`write_matrix(..., install="pythonpath")`), for the
    tests of what the search runs, which need no pip install of each commit (~0.5 s of
    CPU an evaluation); without it, under src/ with its build backend, for pip."""
    pkg = "bisectpkg" if importable else "src/bisectpkg"
    s = _Stream()
    marks: dict[str, int] = {}
    side_text = _module({}, SIDE_FLAGS, "branch flags")
    for i in range(main):
        text = _module(main_flags(i), MAIN_FLAGS, f"main line commit {i}")
        files = {f"{pkg}/flags_main.py": text}
        if i == 0:
            files |= {
                "_backend.py": BACKEND,
                "pyproject.toml": PYPROJECT,
                f"{pkg}/__init__.py": INIT,
                f"{pkg}/flags_side.py": side_text,
            }
        parent = marks.get(f"m{i - 1}")
        extra = None
        subject = f"m{i}"
        if branch and i == merge:
            extra = marks[f"b{branch - 1}"]
            files[f"{pkg}/flags_side.py"] = side_text  # the branch tip's, as merged
            subject = f"m{i}: merge branch 'side'"
        marks[f"m{i}"] = s.commit("main", subject, files, parent=parent, merge=extra)
        if branch and i == fork:
            for j in range(branch):
                side_text = _module(side_flags(j), SIDE_FLAGS, f"branch commit {j}")
                marks[f"b{j}"] = s.commit(
                    "side",
                    f"b{j}",
                    {f"{pkg}/flags_side.py": side_text},
                    parent=marks[f"b{j - 1}"] if j else marks[f"m{i}"],
                )
    by_mark = s.write(path, {"good": marks["m0"], "bad": marks[f"m{main - 1}"]})
    shas = {name: by_mark[m] for name, m in marks.items()}
    return History(path=path, shas=shas, install="pythonpath" if importable else "pip")


def build_dag(
    path: Path,
    parents: Sequence[Sequence[int]],
    *,
    step: int = 3600,
    bad: Callable[[int], bool] | None = None,
    zones: Mapping[int, str] | None = None,
    times: Sequence[int] = (),
    importable: bool = False,
    authors: Mapping[int, str] | None = None,
) -> History:
    """c0..c{n-1}, each with the parents given (by index, first parent first) and a file
    of its own; `step` seconds apart (0: all in one second, as a script makes them) or at
    `times`, each committed at +0000 unless `zones` gives c{i} another offset, and by
    "Dev N" unless `authors` names c{i}'s author. Tags:
    good = c0, bad = the last commit. With `bad`, each commit is bisectpkg, whose scale()
    is wrong where bad(i), at the tree's top where `importable` (see `build`)."""
    pkg = "bisectpkg" if importable else "src/bisectpkg"
    zoned = {i + 1: z for i, z in (zones or {}).items()}
    named = {i + 1: a for i, a in (authors or {}).items()}
    s = _Stream(step=step, zones=zoned, times={i + 1: t for i, t in enumerate(times)}, names=named)
    marks: list[int] = []
    for i, ps in enumerate(parents):
        first = marks[ps[0]] if ps else None
        merged = [marks[p] for p in ps[1:]]
        files = {f"f{i % 5}.txt": f"{i}\n"}
        if bad is not None:
            flags = {"SCALE_BUG_MAIN": bad(i)}
            files[f"{pkg}/flags_main.py"] = _module(flags, MAIN_FLAGS, f"commit {i}")
            if not ps:
                files |= {
                    "_backend.py": BACKEND,
                    "pyproject.toml": PYPROJECT,
                    f"{pkg}/__init__.py": INIT,
                    f"{pkg}/flags_side.py": _module({}, SIDE_FLAGS, "branch flags"),
                }
        marks.append(s.commit("main", f"c{i}", files, parent=first, merges=merged))
    by_mark = s.write(path, {"good": marks[0], "bad": marks[-1]})
    shas = {f"c{i}": by_mark[m] for i, m in enumerate(marks)}
    return History(path=path, shas=shas, install="pythonpath" if importable else "pip")


CHECK = """\
import os, sys
sys.path[:0] = [os.path.join(os.getcwd(), "src"), os.getcwd()]  # either layout
import bisectpkg
with open({log!r}, "a") as f:
    f.write(os.popen("git rev-parse HEAD").read())
sys.exit(1 if bisectpkg.scale(3.0) != 6.0 else 0)
"""


@dataclass(frozen=True, kw_only=True)
class GitBisect:
    first_bad: str
    #: How many commits `git bisect run` ran the check on.
    evaluations: int


def git_bisect_run(history: History, work: Path, python: str) -> GitBisect:
    """What `git bisect run` says on a clone of the history (the reference answer)."""
    clone = work / "clone"
    subprocess.run(["git", "clone", "--quiet", str(history.path), str(clone)], check=True)
    log = work / "git-bisect.log"
    script = work / "check.py"
    script.write_text(CHECK.format(log=str(log)))
    _git(clone, "bisect", "start", "bad", "good")
    out = _git(clone, "bisect", "run", python, str(script))
    _git(clone, "bisect", "reset")
    found = next(ln.split()[0] for ln in out.splitlines() if "is the first bad commit" in ln)
    return GitBisect(first_bad=found, evaluations=len(log.read_text().split()))


#: c0..c15 on one line; scale() is wrong from c9 on (the bisect tests of fingerprints).
LINE = [(), *((i,) for i in range(15))]
CULPRIT = 9


@dataclass(frozen=True, kw_only=True)
class Line:
    history: History
    #: A cache for the bisections of `history`: its mirror, one environment per commit.
    cache: Path
    #: `git bisect run`'s answer on the history (the reference).
    first_bad: str


def line_of_commits(root: Path) -> Line:
    """LINE built under `root`, its reference answer, and a cache that the tests of a module
    share (each writes its own matrix, repro and results, so no verdict passes between
    them: what is shared is set-up, the environments of the same commits)."""
    history = build_dag(root / "upstream", LINE, bad=lambda i: i >= CULPRIT, importable=True)
    git = git_bisect_run(history, root / "git", sys.executable)
    return Line(history=history, cache=root / "cache", first_bad=git.first_bad)


def fixed_beside_a_branch(path: Path) -> History:
    """m0..m15 with the bug from m3 to m12 (fixed by m13), and a clean 5-commit branch
    forked at m1 and merged at m12: a --find-fix bisection from m3 leaves the branch out
    on its fork point's word and names m13."""
    return build(
        path,
        main=16,
        main_flags=lambda i: {"SCALE_BUG_MAIN": 3 <= i <= 12},
        branch=5,
        fork=1,
        merge=12,
        importable=True,
    )


def write_matrix(root: Path, history: History, *, params: str = "{}") -> Path:
    """matrix.yaml with bisectpkg from `history` and the repro `pkg_check` (REPRO)."""
    (root / "repros").mkdir(parents=True, exist_ok=True)
    (root / "repros" / "pkg_check.py").write_text(REPRO)
    matrix = root / "matrix.yaml"
    matrix.write_text(
        textwrap.dedent(
            f"""\
            schema: 1
            defaults:
              timeout: 120
            libraries:
              bisectpkg:
                git: {history.path}
                import: bisectpkg
                install: {history.install}
                versions: [{{git: good}}, {{git: bad}}]
            repros:
              pkg_check:
                script: repros/pkg_check.py
                gpus: [cpu]
                params: {params}
                libraries:
                  bisectpkg: all
            """
        )
    )
    return matrix


#: A protocol repro for bisectpkg: scale and offset each checked against a threshold (so a
#: regression's fingerprint names the one that failed). Optionally flaky, seeded per cell
#: and per run (FLAKY_STATE holds a run counter per cell; FLAKY_SEED varies trials). The
#: seed uses the cell id, not its key: the key hashes the repository's path, a temp dir.
REPRO = '''\
"""bisectpkg.scale(x) must be 2x and offset(x) must be x (a protocol repro)."""
import argparse, fcntl, json, os, random, sys

p = argparse.ArgumentParser()
p.add_argument("--out", required=True)
p.add_argument("--params", default="{}")
a = p.parse_args()
params = json.loads(a.params)


def finish(status, reason, metrics):
    result = {"schema": 1, "repro": "pkg_check", "status": status, "reason": reason,
              "metrics": metrics, "thresholds": {"scale_err": 1e-9, "offset_err": 1e-9},
              "provenance": {"python": sys.version.split()[0]}}
    with open(a.out + ".tmp", "w") as f:
        json.dump(result, f)
    os.replace(a.out + ".tmp", a.out)
    sys.exit({"passed": 0, "regressed": 1, "untestable": 125}[status])


def run_number():
    """How many times this cell ran before (under a lock: repeats may run in parallel)."""
    state = os.environ.get("FLAKY_STATE")
    if not state:
        return 0
    key = "".join(c if c.isalnum() else "_" for c in os.environ.get("REPROMATRIX_CELL", "cell"))
    with open(os.path.join(state, key + ".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = os.path.join(state, key + ".n")
        n = int(open(path).read()) if os.path.exists(path) else 0
        with open(path, "w") as f:
            f.write(str(n + 1))
    return n


if params.get("calls"):  # each invocation, counted by the tests of run counts
    with open(params["calls"], "a") as log:
        log.write(os.environ.get("REPROMATRIX_CELL", "cell").replace(" ", "_") + "\\n")
import bisectpkg
metrics = {
    "scale_err": abs(bisectpkg.scale(3.0) - 6.0),
    "offset_err": abs(bisectpkg.offset(1.0) - 1.0),
}
bad = [k for k, v in metrics.items() if v > 1e-9]
cell = os.environ.get("REPROMATRIX_CELL", "")
if any(f"={rev}" in cell for rev in params.get("untestable_at", [])):
    finish("untestable", "cannot be tested at this commit", {})
if any(f"={rev}" in cell for rev in params.get("exit_125_at", [])):  # no JSON: git's skip
    print("no libfoo at this commit", file=sys.stderr)
    sys.exit(125)
if any(f"={rev}" in cell for rev in params.get("error_at", [])):  # while the file is there
    if os.path.exists(params["error_while"]):
        sys.exit(3)
seed = f"{os.environ.get('FLAKY_SEED', '0')}:{cell}:{run_number()}"
rng = random.Random(seed)
if not bad and rng.random() < float(params.get("false_bad", 0.0)):
    finish("regressed", "scale off (a flaky false alarm)", {"scale_err": 0.25, "offset_err": 0.0})
if bad and rng.random() < float(params.get("false_good", 0.0)):
    finish("passed", "looks fine (a flaky miss)", {"scale_err": 0.0, "offset_err": 0.0})
if "offset_err" in bad and params.get("offset_crashes"):  # no metrics: a crash
    finish("regressed", "RuntimeError: kernel failed", {})
if bad:
    finish("regressed", ", ".join(f"{k}={metrics[k]}" for k in bad), metrics)
finish("passed", "scale and offset exact", metrics)
'''


def bisect_cli(
    root: Path, *args: str, cache: Path | None = None, jobs: int = 1
) -> subprocess.CompletedProcess[str]:
    """`repromatrix bisect pkg_check` of the history `write_matrix` wrote under `root`,
    `jobs` jobs, local executor, its results there and its cache too unless `cache` names
    one that tests of one history share (its mirror and per-commit environments, never
    verdicts); `args` add the ends and more."""
    bisect = ("bisect", "pkg_check", "--library=bisectpkg", f"--jobs={jobs}")
    return matrix_cli(root, *bisect, *args, cache=cache)


def matrix_cli(
    root: Path, command: str, *args: str, cache: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`repromatrix COMMAND` (`run`, `bisect`) of the matrix `write_matrix` wrote under
    `root`: local executor, no progress bar, its results there and its cache too unless
    `cache` names one; `args` add the rest."""
    argv = [sys.executable, "-m", "repromatrix", "--matrix", str(root / "matrix.yaml"), command]
    argv += ["--executor=local", "--no-progress"]
    argv += [f"--cache={cache or root / 'cache'}", f"--results={root / 'results'}"]
    argv += args
    return subprocess.run(
        argv,
        cwd=root,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
