"""Random git histories of any shape for the bisect tests, built with real git, and what
`git bisect run` says on them (the reference answer).

A seed gives a history: a main line, branches forked from old and new commits, merged once
or twice, into the main line or into each other, back-merges, criss-cross merges, octopus
merges, a second root commit merged in, commits of one second and a clock that runs back,
and tags. The library `mk` holds `mk/marker.txt`: `BUG` where the regression is present,
`OK` where it is not, `SKIP` where it cannot be tested; a commit shows the change ("new",
git's bad, or with --find-fix its fixed) when one of the change commits is among its
ancestors, so the history is one git bisect's semantics fit, however merged.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bisect_repo import _git

#: The repro: the protocol's verdict from the marker in the library's checkout.
MARKER_REPRO = '''\
"""mk/marker.txt says whether the regression is here (a protocol repro)."""
import argparse, json, os, sys

p = argparse.ArgumentParser()
p.add_argument("--out", required=True)
p.add_argument("--params", default="{}")
a = p.parse_args()
import mk

text = open(os.path.join(os.path.dirname(mk.__file__), "marker.txt")).read().strip()
status = {"BUG": "regressed", "OK": "passed", "SKIP": "untestable"}[text]
result = {"schema": 1, "repro": "marker", "status": status, "reason": text,
          "metrics": {"bug": float(text == "BUG")}, "thresholds": {"bug": 0.5},
          "provenance": {"python": sys.version.split()[0]}}
with open(a.out, "w") as f:
    json.dump(result, f)
sys.exit({"passed": 0, "regressed": 1, "untestable": 125}[status])
'''

#: `git bisect run`'s check: the same verdict, in git's exit codes (with --find-fix, the
#: terms are broken (old, exit 0) and fixed (new, exit 1)).
GIT_CHECK = """\
#!/bin/sh
git rev-parse HEAD >> "{log}"
case "$(cat mk/marker.txt)" in
  SKIP) exit 125;;
  BUG) exit {bug};;
  *) exit {ok};;
esac
"""


@dataclass(frozen=True, kw_only=True)
class Shape:
    """Commits 0..n-1 (parents first), their commit times and extra tags."""

    parents: tuple[tuple[int, ...], ...]
    times: tuple[int, ...]
    #: Index of the main line's tip.
    tip: int
    tags: Mapping[str, int] = field(default_factory=dict)
    features: frozenset[str] = frozenset()

    @property
    def n(self) -> int:
        return len(self.parents)

    def ancestors(self, c: int) -> set[int]:
        seen, todo = {c}, [c]
        while todo:
            for p in self.parents[todo.pop()]:
                if p not in seen:
                    seen.add(p)
                    todo.append(p)
        return seen


@dataclass(kw_only=True)
class _Grower:
    """A history as it grows: commits, the main line's tip and the open branches."""

    rng: random.Random
    parents: list[tuple[int, ...]] = field(default_factory=list)
    times: list[int] = field(default_factory=list)
    features: set[str] = field(default_factory=set)
    clock: int = 1_700_000_000
    main: int = 0
    branches: dict[str, int] = field(default_factory=dict)
    merged: set[str] = field(default_factory=set)
    serial: int = 0

    def commit(self, *ps: int) -> int:
        step = self.rng.choice([0, 1, 60, 3600, 3600, 7200])
        if self.rng.random() < 0.04:
            step = -self.rng.randint(1, 20000)
            self.features.add("skewed clock")
        if step == 0:
            self.features.add("same second")
        self.clock += step
        self.parents.append(tuple(dict.fromkeys(ps)))
        self.times.append(self.clock)
        if len(ps) > 2:
            self.features.add("octopus")
        return len(self.parents) - 1

    def branch(self) -> str:
        return self.rng.choice(sorted(self.branches))

    def on_main(self) -> None:
        self.main = self.commit(self.main)

    def on_branch(self) -> None:
        b = self.branch()
        self.branches[b] = self.commit(self.branches[b])

    def fork(self) -> None:
        self.serial += 1
        start = self.rng.randrange(len(self.parents)) if self.rng.random() < 0.4 else self.main
        if start != self.main:
            self.features.add("old fork")
        self.branches[f"b{self.serial}"] = self.commit(start)

    def merge(self) -> None:
        b = self.branch()
        self.main = self.commit(self.main, self.branches[b])
        if b in self.merged:
            self.features.add("merged twice")
        self.merged.add(b)
        if self.rng.random() < 0.6:
            del self.branches[b]

    def back_merge(self) -> None:
        b = self.branch()
        self.branches[b] = self.commit(self.branches[b], self.main)
        self.features.add("back-merge")

    def criss_cross(self) -> None:
        b = self.branch()
        old_main, old_b = self.main, self.branches[b]
        self.main = self.commit(old_main, old_b)
        self.branches[b] = self.commit(old_b, old_main)
        self.features.add("criss-cross")
        self.merged.add(b)

    def octopus(self) -> None:
        names = sorted(self.branches)
        if len(names) < 2:
            return self.on_main()
        group = self.rng.sample(names, self.rng.randint(2, min(3, len(names))))
        self.main = self.commit(self.main, *(self.branches[b] for b in group))
        for b in group:
            self.merged.add(b)
            del self.branches[b]
        return None

    def second_root(self) -> None:
        if "second root" in self.features:
            return self.on_main()
        self.serial += 1
        self.branches[f"b{self.serial}"] = self.commit()
        self.features.add("second root")
        return None

    def branch_into_branch(self) -> None:
        if len(self.branches) < 2:
            return self.on_main()
        a, b = self.rng.sample(sorted(self.branches), 2)
        self.branches[a] = self.commit(self.branches[a], self.branches[b])
        self.features.add("branch into branch")
        return None


def random_shape(rng: random.Random, size: int) -> Shape:
    """A history of about `size` commits, made as a project's would be."""
    g = _Grower(rng=rng)
    g.main = g.commit()
    # (cumulative probability, action); with no branch open, a fork.
    actions = [
        (0.35, g.on_main),
        (0.6, g.on_branch),
        (0.7, g.fork),
        (0.8, g.merge),
        (0.85, g.back_merge),
        (0.9, g.criss_cross),
        (0.94, g.octopus),
        (0.96, g.second_root),
        (1.0, g.branch_into_branch),
    ]
    while len(g.parents) < size:
        roll = rng.random()
        if not g.branches and roll >= 0.35:
            roll = 0.65
        next(act for limit, act in actions if roll < limit)()
    for b in sorted(g.branches):
        if rng.random() < 0.5:
            g.main = g.commit(g.main, g.branches[b])
    tags = {f"v{i}": rng.randrange(len(g.parents)) for i in range(rng.randint(0, 3))}
    return Shape(
        parents=tuple(g.parents),
        times=tuple(g.times),
        tip=g.main,
        tags=tags,
        features=frozenset(g.features),
    )


@dataclass(frozen=True, kw_only=True)
class Case:
    """A history with its ends and its changes: what a bisection of it should find."""

    shape: Shape
    #: Indices of the ends as given (old: --good, or --bad with find_fix).
    old: int
    new: int
    #: The commits that bring the change; a commit is new when one is its ancestor.
    changes: tuple[int, ...]
    skips: frozenset[int] = frozenset()
    find_fix: bool = False
    first_parent: bool = False
    #: With --find-fix, the commits that brought the bug: a commit none of them is an
    #: ancestor of passes as a fixed one does (a branch forked before the bug), so the
    #: history changed more than once ("" : the bug is older than every commit).
    bugs: tuple[int, ...] = ()

    def is_new(self, c: int) -> bool:
        ancestors = self.shape.ancestors(c)
        if ancestors & set(self.changes):
            return True
        return bool(self.bugs) and not ancestors & set(self.bugs)

    @property
    def monotone(self) -> bool:
        return not self.bugs

    def marker(self, c: int) -> str:
        if c in self.skips:
            return "SKIP"
        return "OK" if self.is_new(c) != (not self.find_fix) else "BUG"


def random_case(rng: random.Random, size: int) -> Case:
    """A history, its ends and where the change came (mostly once; at times twice, on two
    branches; at times a few commits cannot be tested)."""
    shape = random_shape(rng, size)
    new = shape.tip if rng.random() < 0.85 else rng.randrange(shape.n)
    reach = shape.ancestors(new)
    roll = rng.random()
    if roll < 0.6:
        old = 0 if 0 in reach else min(reach)
    elif roll < 0.85:
        old = rng.choice(sorted(reach))
    else:
        old = rng.randrange(shape.n)  # may lie off new's history: git tests merge bases
    between = sorted(reach - shape.ancestors(old)) or sorted(reach)
    changes = [rng.choice(between)]
    if rng.random() < 0.2:
        changes.append(rng.choice(between))
    if rng.random() < 0.05:
        changes = [rng.choice(sorted(reach))]  # perhaps below the old end
    skips: set[int] = set()
    if rng.random() < 0.3:
        skips = set(rng.sample(between, min(len(between), rng.randint(1, 3))))
        skips -= {old, new}
    find_fix = rng.random() < 0.3
    bugs: tuple[int, ...] = ()
    if find_fix and rng.random() < 0.4:
        bugs = (rng.choice(sorted(shape.ancestors(old))),)
    return Case(
        shape=shape,
        old=old,
        new=new,
        changes=tuple(sorted(set(changes))),
        skips=frozenset(skips),
        find_fix=find_fix,
        first_parent=rng.random() < 0.2,
        bugs=bugs,
    )


@dataclass(frozen=True, kw_only=True)
class Built:
    path: Path
    shas: tuple[str, ...]

    def index(self, sha: str) -> int:
        return self.shas.index(sha)


def build(path: Path, case: Case) -> Built:
    """The case's history as a repository at `path` (fixed dates: the same shas every
    time), `main` at the main line's tip, tags `old` and `new` at the ends."""
    shape = case.shape
    parts: list[bytes] = []
    for i, ps in enumerate(shape.parents):
        when = f"Dev <dev@example.com> {shape.times[i]} +0000"
        msg = f"c{i}".encode()
        out = [b"reset refs/heads/build\n"] if not ps else []
        out += [
            f"commit refs/heads/build\nmark :{i + 1}\n".encode(),
            f"author {when}\ncommitter {when}\n".encode(),
            f"data {len(msg)}\n".encode() + msg + b"\n",
        ]
        if ps:
            out.append(f"from :{ps[0] + 1}\n".encode())
        out += [f"merge :{p + 1}\n".encode() for p in ps[1:]]
        files = {"mk/marker.txt": case.marker(i) + "\n", f"f{i % 7}.txt": f"{i}\n"}
        if not ps:
            files["mk/__init__.py"] = '"""A library whose marker says if it is broken."""\n'
        for name, text in files.items():
            data = text.encode()
            out.append(f"M 100644 inline {name}\ndata {len(data)}\n".encode() + data + b"\n")
        parts.append(b"".join(out) + b"\n")
    refs = {"heads/main": shape.tip, "tags/old": case.old, "tags/new": case.new}
    refs |= {f"tags/{t}": c for t, c in shape.tags.items()}
    for ref, c in refs.items():
        parts.append(f"reset refs/{ref}\nfrom :{c + 1}\n\n".encode())
    path.mkdir(parents=True)
    _git(path, "init", "--quiet", "--initial-branch=main")
    subprocess.run(
        ["git", "fast-import", "--quiet", "--export-marks=.git/marks"],
        cwd=path,
        input=b"".join(parts),
        check=True,
        capture_output=True,
    )
    _git(path, "branch", "-D", "build")
    _git(path, "checkout", "--quiet", "main")
    shas = ["" for _ in range(shape.n)]
    for line in (path / ".git" / "marks").read_text().splitlines():
        mark, sha = line.split()
        shas[int(mark.lstrip(":")) - 1] = sha
    return Built(path=path, shas=tuple(shas))


@dataclass(frozen=True, kw_only=True)
class GitAnswer:
    """What `git bisect run` said: one commit, several ("could be any of"), a bad merge
    base, or an error; and the commits its check ran."""

    first: str = ""
    any_of: tuple[str, ...] = ()
    merge_base_wrong: str = ""
    failed: str = ""
    ran: tuple[str, ...] = ()
    said: str = ""


def git_bisect_run(built: Built, case: Case, work: Path) -> GitAnswer:
    """`git bisect run` on a clone of the history, from the case's ends."""
    clone = work / "git-clone"
    subprocess.run(["git", "clone", "--quiet", str(built.path), str(clone)], check=True)
    log = work / "git-ran"
    log.write_text("")
    check = work / "git-check.sh"
    bug, ok = (0, 1) if case.find_fix else (1, 0)
    check.write_text(GIT_CHECK.format(log=log, bug=bug, ok=ok))
    check.chmod(0o755)
    start = ["bisect", "start"]
    if case.find_fix:
        start += ["--term-old=broken", "--term-new=fixed"]
    if case.first_parent:
        start.append("--first-parent")
    git = ["git", "-C", str(clone)]
    said = ""
    begun = subprocess.run(
        [*git, *start, built.shas[case.new], built.shas[case.old]],
        capture_output=True,
        text=True,
        check=False,
    )
    said += begun.stdout + begun.stderr
    term = "fixed" if case.find_fix else "bad"
    done = (f"is the first {term} commit", "could be any of", "We cannot bisect more")
    rounds = 0
    while begun.returncode == 0 and not any(w in said for w in done):
        # `git bisect run` stops once it checks out a second merge base; go on from there.
        ran = subprocess.run(
            [*git, "bisect", "run", str(check)], capture_output=True, text=True, check=False
        )
        said += ran.stdout + ran.stderr
        rounds += 1
        if (ran.returncode != 0 and not any(w in said for w in done)) or rounds > 20:
            break
    subprocess.run([*git, "bisect", "reset"], capture_output=True, check=False)
    ran_shas = tuple(log.read_text().split())
    first = next(
        (ln.split()[0] for ln in said.splitlines() if f"is the first {term} commit" in ln), ""
    )
    any_of: tuple[str, ...] = ()
    if "could be any of" in said:
        tail = said.split("could be any of:", 1)[1]
        any_of = tuple(
            w for w in tail.split() if len(w) == 40 and all(ch in "0123456789abcdef" for ch in w)
        )
    base = ""
    if "The merge base" in said:
        base = said.split("The merge base", 1)[1].split()[0]
    failed = "" if first or any_of or base else said
    return GitAnswer(
        first=first, any_of=any_of, merge_base_wrong=base, failed=failed, ran=ran_shas, said=said
    )


def write_matrix(root: Path, built: Built) -> Path:
    """matrix.yaml with the library `mk` (a checkout on PYTHONPATH) and the repro `marker`."""
    (root / "repros").mkdir(parents=True, exist_ok=True)
    (root / "repros" / "marker.py").write_text(MARKER_REPRO)
    matrix = root / "matrix.yaml"
    matrix.write_text(
        textwrap.dedent(
            f"""\
            schema: 1
            defaults:
              timeout: 120
            libraries:
              mk:
                git: {built.path}
                import: mk
                install: pythonpath
                versions: [{{git: old}}, {{git: new}}]
            repros:
              marker:
                script: repros/marker.py
                gpus: [cpu]
                libraries:
                  mk: all
            """
        )
    )
    return matrix


def bisect_cli(
    root: Path, case: Case, *, jobs: int, extra: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    """`repromatrix bisect marker` of the case's history, from its ends."""
    argv = [sys.executable, "-m", "repromatrix", "--matrix", str(root / "matrix.yaml")]
    argv += ["bisect", "marker", "--library=mk", "--executor=local", "--no-progress"]
    argv += [f"--cache={root / 'cache'}", f"--results={root / 'results'}", f"--jobs={jobs}"]
    if case.find_fix:
        argv += ["--bad=old", "--good=new", "--find-fix"]
    else:
        argv += ["--good=old", "--bad=new"]
    if case.first_parent:
        argv.append("--first-parent")
    return subprocess.run(
        [*argv, *extra],
        cwd=root,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
