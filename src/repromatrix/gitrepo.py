"""The one git seam: every git command of repromatrix is built here (and run through
`proc`): cloning and fetching mirrors, resolving revisions, reading files and commit facts,
listing commits in topological order, exporting trees with their submodules. Which mirror a
library's source gets, and when it is cloned or fetched, is `mirrors.py`'s.
"""

from __future__ import annotations

import contextlib
import os
import re
import tarfile
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from repromatrix import proc
from repromatrix.gitlog import LOG_ARGS, Commit, Line, line_of, merged_span, parse_log

_HEX = frozenset("0123456789abcdef")


class GitError(Exception):
    """A git command failed; the message is git's last line of output."""


def _is_sha(text: str) -> bool:
    return 7 <= len(text) <= 64 and set(text) <= _HEX


def _commit_of(rev: str) -> str:
    """`rev` peeled to its commit, as cat-file takes it. A message search (`:/fix typo`)
    takes any suffix as part of its text and names a commit already: left as it is, or
    `:/text^{commit}` looked for the longer text and matched none of its records."""
    return rev if rev.startswith(":/") else f"{rev}^{{commit}}"


def is_commit_id(rev: str) -> bool:
    """Whether `rev` is written as a commit id (7 to 64 hex digits), which never moves,
    rather than a name (a branch, a tag, `main~3`) that may."""
    return _is_sha(rev)


def safe_rev(rev: str) -> str:
    """A revision as git may take it on a command line (never read as an option)."""
    if not rev or rev.startswith("-") or any(c in rev for c in "\0\n\r"):
        raise GitError(f"'{rev}' is not a revision")
    return rev


class GitRepo:
    """A (bare) repository on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        #: rev → its name git found ambiguous (tag and branch `x`: git warns, takes the tag).
        self.ambiguous: dict[str, str] = {}

    def _git(
        self, *args: str, input_text: str | None = None, timeout: float = 600
    ) -> proc.Completed:
        return proc.run(
            ["git", "--git-dir", str(self.path), *args], timeout=timeout, input_text=input_text
        )

    def _check(self, *args: str, input_text: str | None = None) -> str:
        out = self._git(*args, input_text=input_text)
        if out.returncode != 0:
            last = (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]
            raise GitError(last)
        return out.stdout

    # -- revisions -----------------------------------------------------------------------

    def resolve(self, rev: str) -> str | None:
        """Full sha of the commit `rev` names, or None when this repository lacks it."""
        try:
            spec = f"{safe_rev(rev)}^{{commit}}"
        except GitError:
            return None
        out = self._git("rev-parse", "--verify", "--end-of-options", spec)  # --quiet: no warning
        if found := re.search(r"refname '(.+)' is ambiguous", out.stderr):
            self.ambiguous[rev] = found[1]
        if out.returncode != 0:
            # `:/fix typo` (the newest commit whose message matches) takes the suffix as part
            # of its text: name the object first, then peel it to its commit.
            out = self._git("rev-parse", "--verify", "--quiet", "--end-of-options", rev)
            oid = out.stdout.strip()
            if out.returncode != 0 or not _is_sha(oid):
                return None
            out = self._git("rev-parse", "--verify", "--quiet", f"{oid}^{{commit}}")
        return out.stdout.strip() if out.returncode == 0 else None

    def commits_named(self, short: str) -> list[str]:
        """Every commit a short id (4 hex digits or more) may name, its annotated tags'
        peeled: several where git says "short object ID ... is ambiguous"."""
        if not 4 <= len(short) < 40 or not set(short.lower()) <= _HEX:
            return []
        out = self._git("rev-parse", f"--disambiguate={short.lower()}")
        objects = out.stdout.split() if out.returncode == 0 else []
        return sorted(set(self.resolve_many(objects).values()))

    def refs_named(self, name: str) -> list[tuple[str, str]]:
        """(ref, sha) of every ref a short `name` may stand for, in git's order of preference."""
        full = [f"refs/{name}", *(f"refs/{d}/{name}" for d in ("tags", "heads", "remotes"))]
        text = self._check("for-each-ref", "--format=%(refname) %(objectname)", *full)
        found = dict(line.split(" ", 1) for line in text.splitlines())
        return [(ref, found[ref]) for ref in full if ref in found]

    def resolve_many(self, revs: Sequence[str]) -> dict[str, str]:
        """rev → full sha for those revisions the repository knows (one git call)."""
        wanted = [r for r in dict.fromkeys(revs) if r and not r.startswith("-") and "\n" not in r]
        if not wanted or not self.path.exists():
            return {}
        out = self._git(
            "cat-file",
            "--batch-check=%(objecttype) %(objectname)",
            input_text="".join(f"{_commit_of(r)}\n" for r in wanted),
        )
        found: dict[str, str] = {}
        for rev, line in zip(wanted, out.stdout.splitlines(), strict=False):
            parts = line.split()
            if len(parts) == 2 and parts[0] == "commit" and _is_sha(parts[1]):
                found[rev] = parts[1]
        return found

    def commit(self, sha: str) -> Commit:
        text = self._check("log", "-1", *LOG_ARGS, "--end-of-options", safe_rev(sha))
        return parse_log(text)[0]

    def is_ancestor(self, old: str, new: str) -> bool:
        out = self._git("merge-base", "--is-ancestor", safe_rev(old), safe_rev(new))
        return out.returncode == 0

    def merge_bases(self, a: str, b: str) -> list[str]:
        """The best common ancestors of `a` and `b` (several after criss-cross merges)."""
        out = self._git("merge-base", "--all", safe_rev(a), safe_rev(b))
        return out.stdout.split() if out.returncode == 0 else []

    def shallow(self) -> frozenset[str]:
        """Commits this clone holds without parents: `git clone --depth` cut history there."""
        path = self.path / "shallow"
        return frozenset(ln for ln in (path.read_text().split() if path.is_file() else ()))

    def log(
        self, old: str, new: str, *, first_parent: bool = False, ancestry_path: bool = True
    ) -> list[Commit]:
        """Commits in old..new, oldest first, in topological order (parents included)."""
        args = ["log", "--topo-order", "--reverse", *LOG_ARGS]
        if ancestry_path:
            args.append("--ancestry-path")
        if first_parent:
            args.append("--first-parent")
        return parse_log(self._check(*args, f"{safe_rev(old)}..{safe_rev(new)}", "--"))

    def topo_positions(self, revs: Iterable[str]) -> dict[str, int]:
        """`history`'s positions alone."""
        return self.history(revs)[0]

    def history(self, revs: Iterable[str]) -> tuple[dict[str, int], Line]:
        """The position (oldest = 0) of each rev this repository knows on one first-parent
        line (of the newest of `revs` that holds the most of them), keyed by the rev as
        given and by its full sha; and that line from the oldest of them on it to the
        newest: the commits a report says nothing ran between two that did. One walk of
        the line for both (a report asked git for it three times per library).

        Off the line (a commit of a branch merged into it, or of another) a commit is left
        out: m1 bad on main and s1 good on a branch made before m1 read as "ends at s1", a
        fix that never was. Such commits are said apart, their order unknown. A line a ref
        holds now goes first: after a force push, the abandoned one held more of the runs."""
        shas = self.resolve_many(list(revs))
        given = set(shas.values())
        heads = self._git("merge-base", "--independent", *sorted(given)) if given else None
        best: list[list[str]] = []  # newest first, each commit with its parents
        held = (False, 0)
        for head in (newest := heads.stdout.split() if heads and heads.returncode == 0 else []):
            out = self._git("rev-list", "--first-parent", "--parents", head)
            here = [ln.split() for ln in out.stdout.splitlines()] if out.returncode == 0 else []
            ref = len(newest) > 1 and bool(self._git("for-each-ref", f"--contains={head}").stdout)
            if (n := (ref, len(given.intersection(c[0] for c in here)))) > held:
                best, held = here, n
        best.reverse()
        position = {c[0]: i for i, c in enumerate(best) if c[0] in given}
        found = {rev: position[sha] for rev, sha in shas.items() if sha in position}
        found |= {sha: position[sha] for sha in given if sha in position}
        at = sorted(position.values())
        part = best[at[0] : at[-1] + 1] if at else []
        merges = frozenset(c[0] for c in part if len(c) > 2)
        tips = {c[0]: tuple(c[2:]) for c in part[1:] if len(c) > 2 and c[0] in given}  # merged
        commits = tuple(c[0] for c in part)
        span = merged_span(commits, tips)  # one walk for every merge, not a `rev-list` each
        walk = self._git("rev-list", "--parents", *span) if span else None
        graph = walk.stdout if walk and walk.returncode == 0 else ""
        return found, line_of(commits, merges, graph, tips)

    # -- the mirror's refs ---------------------------------------------------------------

    def drop_stale_locks(self) -> list[Path]:
        """Remove the ref lock files a killed git left (`refs/**/*.lock`, `packed-refs.lock`,
        `HEAD.lock`), which fail every later fetch ("cannot lock ref ...: File exists"); the
        paths removed. Only for a caller that holds every writer of the repository out (the
        mirror's file lock): a lock file then belongs to no live git."""
        found = [*(self.path / "refs").rglob("*.lock")]
        found += [p for n in ("packed-refs.lock", "HEAD.lock") if (p := self.path / n).exists()]
        removed = []
        for path in found:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
        return removed

    def fetch_from(self, source: str) -> str | None:
        """Make the branches and tags `source`'s (new ones added, moved ones moved, deleted
        ones gone); None when done, else what git said (the source out of reach, or this
        repository's disk full)."""
        out = self._git(
            # An auto gc left running in the background would hold ref locks after the
            # caller let others in, and `drop_stale_locks` take them for a killed git's.
            "-c", "gc.autoDetach=false",
            "fetch", "--quiet", "--force", "--prune", "--no-tags", "--", source,
            "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*",
            timeout=3600,
        )  # fmt: skip
        return None if out.returncode == 0 else out.stderr.strip() or f"exit {out.returncode}"

    def follow_head(self, source: str) -> None:
        """Point HEAD where `source`'s points now (its checked-out branch, or its detached
        commit): `--bad HEAD` must mean the source's HEAD, not the one it had when the
        mirror was cloned. Left as it is when the source cannot say."""
        ask = ["git", "ls-remote", "--symref", "--", source, "HEAD"]
        out = proc.run(ask, timeout=600)
        lines = out.stdout.splitlines() if out.returncode == 0 else []
        branch = next((ln.split()[1] for ln in lines if ln.startswith("ref: ")), None)
        heads = [ln.split()[0] for ln in lines if ln.endswith("\tHEAD") and ln[:4] != "ref:"]
        sha = heads[0] if heads else None
        if branch and branch.startswith("refs/heads/"):
            self._git("symbolic-ref", "HEAD", branch, timeout=60)
        elif sha and _is_sha(sha):
            self._git("update-ref", "--no-deref", "HEAD", sha, timeout=60)

    # -- content -------------------------------------------------------------------------

    def show(self, rev: str, path: str) -> str:
        """A file's text at `rev` (a folder is an error: `git show` would list it)."""
        return self._check("cat-file", "blob", f"{safe_rev(rev)}:{path}")

    def archive(self, commit: str, dest: Path, *paths: str) -> None:
        """Write the tree of `commit` (without submodules), or those paths of it, into `dest`."""
        with tempfile.TemporaryDirectory() as tmp:
            archive, only = Path(tmp) / "src.tar", [f":(literal){p}" for p in paths]
            self._check("archive", "--format=tar", "-o", str(archive), safe_rev(commit), *only)
            with tarfile.open(archive) as tar:
                tar.extractall(dest, filter="data")

    def submodules(self, commit: str) -> list[tuple[str, str, str]]:
        """(path, url, commit) of each submodule recorded in `commit`'s tree."""
        out = self._git("show", f"{safe_rev(commit)}:.gitmodules")
        if out.returncode != 0:
            return []
        urls: dict[str, str] = {}
        paths: dict[str, str] = {}
        for line in config_lines(out.stdout):
            key, _, value = line.partition("=")
            section, _, name = key.rpartition(".")
            if name == "path":
                paths[section] = value
            elif name == "url":
                urls[section] = value
        found = []
        for section, path in paths.items():
            entry = self._check("ls-tree", commit, "--", path).split()
            # A gitlink reads "160000 commit <sha>\t<path>"; anything else is not a submodule.
            if len(entry) >= 3 and entry[0] == "160000" and section in urls:
                found.append((path, urls[section], entry[2]))
        return found


def config_lines(text: str) -> list[str]:
    """`git config --list` of a config text (.gitmodules), without touching any repository."""
    with tempfile.NamedTemporaryFile("w", suffix=".gitmodules", delete=False) as f:
        f.write(text)
    try:
        out = proc.run(["git", "config", "--file", f.name, "--list"], timeout=60, check=True)
    finally:
        os.unlink(f.name)
    return out.stdout.splitlines()


def clone_bare(source: str, dest: Path) -> proc.Completed:
    """`git clone --bare` of `source` into `dest` (a new folder), as it ran."""
    return proc.run(["git", "clone", "--bare", "--quiet", "--", source, str(dest)], timeout=3600)


def partial_filter(source: str) -> str:
    """The filter of a partial clone (`git clone --filter=blob:none`) at a local `source`;
    "" for a full one, a URL or a bundle."""
    if not os.path.isdir(source):
        return ""
    pattern = r"^remote\..*\.(promisor|partialclonefilter)$|^extensions\.partialclone$"
    out = proc.run(["git", "-C", source, "config", "--get-regexp", pattern])
    found = dict(ln.partition(" ")[::2] for ln in out.stdout.splitlines())
    filters = [v for k, v in found.items() if k.endswith(".partialclonefilter")]
    return (filters or ["?"])[0] if out.returncode == 0 and found else ""


def origin(path: Path) -> str:
    """The source a mirror was cloned from ("" when it does not say)."""
    out = proc.run(["git", "--git-dir", str(path), "config", "--get", "remote.origin.url"])
    return out.stdout.strip() if out.returncode == 0 else ""
