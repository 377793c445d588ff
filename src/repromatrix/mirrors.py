"""The bare mirrors of libraries' repositories under one root, `<cache>/git/<library>.git`
(see `SessionConfig.git_root`), cloned once from the library's `git:` URL or its
`--git-mirror` (a local clone or bundle: offline hosts stay offline), fetched once a
process where a name must be read as the source has it now, and exported with their
submodules. The git commands themselves are `gitrepo.py`'s.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from repromatrix.errors import CacheFullError, EnvironmentBuildError, UsageError
from repromatrix.gitpaths import ambiguity, join_url, same_place, shadowed
from repromatrix.gitrepo import GitError, GitRepo, clone_bare, is_commit_id, origin, partial_filter
from repromatrix.locks import file_lock

log = logging.getLogger("repromatrix.git")

#: How git says the disk it writes is full (`fatal: unable to write loose object file: No
#: space left on device`, then `fatal: unpack-objects failed`).
_FULL_WORDS = tuple(os.strerror(n) for n in (errno.ENOSPC, errno.EDQUOT))

#: (mirror, rev) said ambiguous: once a process, as bisect and run resolve through several.
_SAID: set[tuple[str, str]] = set()


class Mirrors:
    """The bare clones of libraries' repositories under `root`, made once and reused."""

    def __init__(self, root: Path, git_mirrors: Mapping[str, str] | None = None) -> None:
        self.root = root
        self.git_mirrors = dict(git_mirrors or {})
        #: Libraries whose branches and tags were fetched by this process.
        self._fresh: set[str] = set()
        #: Libraries whose mirror this process found cloned from their source.
        self._checked: set[str] = set()
        #: Library → its mirror, where it is not the one named after the library alone.
        self._paths: dict[str, Path] = {}
        #: (library, url, rev) → its commit, read since the library's last fetch: every
        #: cell's base and environment ask for their pins' commits, a git process each.
        self._read: dict[tuple[str, str, str], str | None] = {}

    def _path(self, library: str) -> Path:
        return self._paths.get(library) or self.root / f"{library.replace('/', '__')}.git"

    def _all(self, library: str) -> list[Path]:
        """Every mirror of `library`: the one named after it, and those of other sources."""
        name = library.replace("/", "__")
        return [self.root / f"{name}.git", *sorted(self.root.glob(f"{glob.escape(name)}@*.git"))]

    def source(self, library: str, url: str) -> str:
        return self.git_mirrors.get(library, url)

    def existing(self, library: str) -> GitRepo | None:
        """The mirror of `library` if one was cloned already (reports never clone). The
        name may come from any record: one no file can have (too long, a NUL) has none."""
        path = self._path(library)
        try:
            return GitRepo(path) if (path / "HEAD").exists() else None
        except (OSError, ValueError):
            return None

    def repo(self, library: str, url: str) -> GitRepo:
        """The mirror of `library`, cloned first when missing (offline if the source is local)."""
        source = self.source(library, url)
        path = self._path(library)
        self.root.mkdir(parents=True, exist_ok=True)
        if library not in self._checked and (kept := partial_filter(source)):
            # A copy of a partial clone has its commits and not their files, and cannot
            # fetch them: every cell would fail ("cannot read <blob>") as if each commit did.
            where = f"--git-mirror {library}={source}" if library in self.git_mirrors else source
            raise EnvironmentBuildError(
                f"{where} is a partial clone (--filter={kept}): it lacks the files of most "
                "commits, and repromatrix cannot fetch them through it; clone it again "
                "without --filter (or pass the full repository)"
            )
        with file_lock(self.root / f"{path.stem}.lock"):
            if (
                library not in self._checked
                and (path / "HEAD").exists()
                and not same_place(origin(path), source)
            ):
                # Cloned from another repository (a fork of the same name in another
                # matrix sharing this cache, a changed `git:` or --git-mirror): its commits
                # and names are not this one's, and a run may be using it. This source
                # gets a mirror of its own.
                digest = hashlib.sha256(source.encode("utf-8", "surrogateescape")).hexdigest()
                path = self._paths[library] = path.with_name(f"{path.stem}@{digest[:12]}.git")
            if not (path / "HEAD").exists():
                tmp = path.with_name(f"{path.stem}.git.partial")
                if tmp.exists():
                    shutil.rmtree(tmp)
                out = clone_bare(source, tmp)
                if out.returncode != 0:
                    shutil.rmtree(tmp, ignore_errors=True)
                    lines = out.stderr.strip().splitlines() or ["no output"]
                    why = next((ln for ln in lines if ln.startswith("fatal:")), lines[-1])
                    fix = (
                        f"check --git-mirror {library}=PATH (a clone or a git bundle)"
                        if library in self.git_mirrors
                        else f"pass --git-mirror {library}=PATH to use a local clone"
                    )
                    raise EnvironmentBuildError(
                        f"cannot clone {library} from {source}: {why}; {fix}"
                    )
                os.replace(tmp, path)
            self._checked.add(library)
        return GitRepo(path)

    def update(self, library: str, url: str) -> bool:
        """Make the mirror's branches and tags the source's (new ones added, moved ones
        moved, deleted ones gone); False when the source cannot be reached (offline: the
        mirror stays as it was)."""
        repo = self.repo(library, url)
        with file_lock(self.root / f"{repo.path.stem}.lock"):
            # Every fetch of ours holds this lock: a ref's lock file found now is a killed
            # run's (SIGKILL mid-fetch), which failed every later fetch, taken for the
            # source out of reach, and bisected the ends as the mirror last had them.
            for stale in repo.drop_stale_locks():
                log.warning("removed %s, left by a git that was killed while updating it", stale)
            failed = repo.fetch_from(self.source(library, url))
            full = next((w for w in _FULL_WORDS if failed and w in failed), None)
            if full is not None:
                # Not the source out of reach: taken so, the ends were bisected as the
                # mirror last had them, a history the source may no longer hold (exit 0).
                raise CacheFullError(
                    f"cannot fetch {library} into {repo.path} ({full}); free space there "
                    "(`repromatrix clean` empties its runs/), then run again"
                )
            fetched = failed is None
            if fetched:
                repo.follow_head(self.source(library, url))
        self._fresh.add(library)
        # Names read before this fetch may stand for other commits now.
        self._read = {k: v for k, v in self._read.items() if k[0] != library}
        return fetched

    def resolve(self, library: str, url: str, rev: str) -> str | None:
        """Full sha of `rev`; None if unknown. A name (`main`, `v1`, `main~3`) or a short id
        is read after one fetch per process, as the source has it now (a stale `main` would
        install an old commit; a tag named like the id, which git reads first, a new one): a
        short id a ref shadows is refused (UsageError). A whole id is fetched only if lacking."""
        if (library, url, rev) in self._read:
            return self._read[(library, url, rev)]
        sha = self._resolve(library, url, rev)
        if library in self._fresh:
            self._read[(library, url, rev)] = sha
        return sha

    def _resolve(self, library: str, url: str, rev: str) -> str | None:
        repo = self.repo(library, url)
        if library not in self._fresh:
            sha = repo.resolve(rev)
            # Hex digits alone make no id: a nightly date tag `20240101` moves.
            own = sha is not None and is_commit_id(rev) and sha.startswith(rev)
            if own and len(rev) in (40, 64):
                return sha
            if not self.update(library, url) and sha is not None and not own:
                where = self.source(library, url)
                log.warning("cannot reach %s to refresh '%s'; using the cached clone's", where, rev)
        sha = repo.resolve(rev)
        if (
            sha
            and is_commit_id(rev)
            and not sha.startswith(rev)
            and (ids := repo.commits_named(rev))
        ):
            raise UsageError(shadowed(rev, library, repo.refs_named(rev), sha, ids))
        if (name := repo.ambiguous.get(rev)) and (str(repo.path), rev) not in _SAID:
            _SAID.add((str(repo.path), rev))
            log.warning(ambiguity(rev, library, repo.refs_named(name)))
        return sha

    def export(self, library: str, url: str, commit: str, dest: Path) -> None:
        """Write the tree of `commit` into `dest`, submodules included (recursively): `git
        archive` leaves them out (flashinfer's 3rdparty/cutlass); each is taken at the commit
        the parent records, from `--git-mirror LIB/PATH=...` or .gitmodules' URL, cached."""
        repo = self.repo(library, url)
        if library not in self._fresh and repo.resolve(commit) is None:
            # A submodule bumped since its mirror was cloned: fetch, as `git submodule update`.
            self.update(library, url)
        repo.archive(commit, dest)
        for path, declared, sub_commit in repo.submodules(commit):
            name = f"{library}/{path}"
            sub_url = declared
            if name not in self.git_mirrors and declared.startswith(("./", "../")):
                sub_url = join_url(self.source(library, url), declared)
            target = dest / path
            target.mkdir(parents=True, exist_ok=True)
            try:
                self.export(name, sub_url, sub_commit, target)
            except (EnvironmentBuildError, GitError) as exc:
                raise EnvironmentBuildError(
                    f"submodule {path} of {library} at {sub_commit[:10]}: {exc}; pass "
                    f"--git-mirror {name}=PATH for an offline copy"
                ) from None

    def every(self, library: str) -> list[tuple[GitRepo, str]]:
        """Each mirror of `library` cloned already (the one named after it first, then those
        of other sources, `<library>@<hash>.git`), with the source it was cloned from."""
        found = []
        try:
            for path in self._all(library):
                if (path / "HEAD").exists():
                    found.append((GitRepo(path), origin(path)))
        except (OSError, ValueError):  # a name no file can have (a NUL, too long)
            pass
        return found
