"""Folders and files the commands write (the report folder, `bisect --markdown`,
`--readme`, the `--cache`): checked before any work starts; files for people replaced
whole or not at all.

A report of 100,000 records takes seconds to load and a bisection hours to run; an output
path that cannot be written must say so before that, not after (as an "internal error").
A disk that fills while the report is written must not leave a half-written index.html
in place of the last good one: each file is written under a temporary name in the same
folder and renamed over the old one only when every file is complete.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from repromatrix.errors import OutputError, UsageError
from repromatrix.locks import CACHE_LOCK, LOCK_NAME
from repromatrix.own_outputs import made_here

#: Prefix of the staging folder inside the output folder (left only by a killed process,
#: hidden and named for what it is; its writer holds a flock on it, so the next writer
#: there removes one nobody holds: `_sweep`).
STAGING_PREFIX = ".repromatrix-writing-"


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def check_folder(folder: Path, flag: str) -> None:
    """`folder` takes a new file, or (missing) could be made: its nearest existing
    ancestor is a folder that takes one. Nothing is left behind, not even the folder, so
    a command that fails later for another reason leaves no empty output. OutputError
    otherwise."""
    if folder.exists() and not folder.is_dir():
        what = "is a file" if folder.is_file() else f"{not_a_file(folder)}, not a folder"
        raise OutputError(f"{flag} {folder}: {what}; pass a folder")
    try:
        existing = folder.absolute()
        while not existing.exists():
            # A link to a folder not made yet is followed (`staged` makes its target), so
            # the target's ancestors must take it, not the link's.
            existing = _through(existing, flag, folder) if existing.is_symlink() else existing
            existing = existing.parent
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(existing))
        with tempfile.NamedTemporaryFile(dir=existing, prefix=STAGING_PREFIX):
            pass
    except OSError as exc:
        raise OutputError(
            f"{flag} {folder}: cannot write there ({_reason(exc)}); pass a writable folder"
        ) from None


def check_file(path: Path, flag: str) -> None:
    """`path` can be written: not a folder, a device or a FIFO, and its folder takes a new
    file (see `check_folder`; nothing is made or changed); OutputError otherwise."""
    if path.is_dir():
        raise OutputError(f"{flag} {path}: is a folder; pass a file path")
    if path.exists() and not path.is_file():
        # A device or FIFO would be replaced by a regular file: never ours to replace.
        raise OutputError(f"{flag} {path}: not a regular file; pass a file path")
    check_folder(path.parent, flag)
    if path.is_symlink():  # written where it points (`write_text` follows the link)
        target = _through(path, flag, path)
        try:
            check_folder(target.parent, flag)
        except OutputError:
            raise OutputError(
                f"{flag} {path}: a link to {target}, whose folder cannot take it; pass another path"
            ) from None
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"{flag} {path}: not writable; pass a writable file")


def check_not_input(
    path: Path, flag: str, *, matrix: Path, results: list[Path], scripts: Iterable[Path] = ()
) -> None:
    """UsageError when writing `path` would replace what the command reads: the matrix
    file, a repro script or the Python beside it (its helpers and imports), a file
    repromatrix keeps for itself (a lock a run holds: replaced, a second run takes the
    folder at once), or a results file (a `.jsonl` in a results folder, or one named as
    results)."""
    target = _place(path)
    if target == _place(matrix):
        raise UsageError(f"{flag} {path}: is the matrix file; pass another path")
    for script in sorted(scripts, key=lambda s: _place(s) != target):  # itself, if a script
        place = _place(script)
        if target == place or (target.parent == place.parent and target.suffix == ".py"):
            raise UsageError(
                f"{flag} {path}: is a repro script or its code ({script}); pass another path"
            )
    if target.name.startswith(".repromatrix-"):
        raise UsageError(f"{flag} {path}: is a file repromatrix keeps; pass another path")
    for source in results:
        place = _place(source)
        inside = place in target.parents and target.suffix == ".jsonl"
        if target == place and target.is_dir():
            raise UsageError(f"{flag} {path}: is the results folder {source}; pass a file path")
        if target == place or inside:
            raise UsageError(
                f"{flag} {path}: is a results file of {source}; writing it would lose records; "
                "pass another path"
            )
    # Any run's results, not only this command's: `bisect --results rb --markdown
    # res/host.jsonl` replaced another store's records with a Markdown page.
    ran = next((f for f in target.parents if (f / LOCK_NAME).exists()), None)
    if target.suffix == ".jsonl" and ran is not None:
        raise UsageError(
            f"{flag} {path}: is a results file (runs used {ran}); writing it would lose "
            "records; pass another path"
        )


def check_not_written(path: Path, flag: str, out: Path, names: Iterable[str]) -> None:
    """UsageError when `path` is one of the files `names` the report writes (or removes as
    stale) in `out`: `--readme OUT/summary.md` was replaced by the report's summary."""
    target = _place(path)
    if target.parent == _place(out) and target.name in set(names):
        raise UsageError(
            f"{flag} {path}: a file the report writes in --out {out}; pass another path"
        )


def check_out_not_results(out: Path, results: list[Path], compare: Path | None = None) -> None:
    """UsageError when the report folder is a results folder (its files would sit among
    the records, and a later `--out` elsewhere would leave them there): one of `results`,
    the folder of one that is a results file, or the older set of `--compare`."""
    named = [("results", source) for source in results]
    named += [("--compare", compare)] if compare is not None else []
    for flag, source in named:
        place = _place(source)
        folder = place.parent if place.is_file() else place
        if _place(out) == folder:
            what = f"folder of the {flag} file" if folder != place else f"{flag} folder"
            raise UsageError(f"--out {out}: is the {what} {source}; pass another folder")


def check_compare_is_results(compare: Path) -> None:
    """UsageError when `--compare`, which held no records, is a report folder (its pages,
    by their marks): `report --compare reports/old` warned "no records" and counted every
    regression as new, exit 0, where the user meant the results that report was made of."""
    with contextlib.suppress(OSError):
        pages = (
            [p.name for p in sorted(compare.iterdir())[:200] if made_here(p)]
            if compare.is_dir()
            else []
        )
        if pages:
            raise UsageError(
                f"--compare {compare}: is a report folder ({', '.join(pages[:3])}, written by "
                "repromatrix report), not results; give the results folder or .jsonl file "
                "that report was made from"
            )


#: The cache's folders that `repromatrix clean` empties (`envs` and `git` only with --envs;
#: `parsed`: see parsed_cache; `workers`: the workers' logs and program copies).
CLEANED = ("runs", "parsed", "workers", "envs", "git")
CLEANED_ALWAYS = CLEANED[:3]


def check_cache_is_ours(cache: Path) -> None:
    """UsageError when `cache`, not yet a cache (no lock file), holds a folder that
    `clean` would empty: `run --cache ~` made ~ a cache, and `clean --envs` deleted ~/git."""
    if (cache / CACHE_LOCK).exists() or _has_our_environment(cache):
        return
    # Not parsed/: `report --cache` makes it (and no lock) before any run.
    for sub in ("runs", "workers", "envs", "git"):
        try:
            found = (cache / sub).exists() and any((cache / sub).iterdir())
        except OSError:  # not a folder, or unreadable: not ours either
            found = True
        if found:
            raise UsageError(
                f"--cache {cache}: holds {sub}/, not made by repromatrix, which `repromatrix "
                "clean` would delete; pass a folder of its own"
            )


def _has_our_environment(cache: Path) -> bool:
    """Whether `cache/envs/` holds an environment repromatrix built (its manifest names
    its own folder): a Ray node's cache from before nodes left the lock file is ours."""
    try:
        for manifest in itertools.islice((cache / "envs").glob("*/env.json"), 20):
            data = json.loads(manifest.read_text(encoding="utf-8"))
            if isinstance(data, dict) and data.get("key") == manifest.parent.name:
                return "base_fingerprint" in data
    except (OSError, ValueError):
        return False
    return False


def check_results_outside_cache(results: Path, cache: Path) -> None:
    """UsageError when the results folder lies in a cache folder that `clean` empties."""
    target = _place(results)
    for sub in CLEANED:
        work = _place(cache / sub)
        if target == work or work in target.parents:
            raise UsageError(
                f"--results {results}: inside {cache / sub}, which `repromatrix clean` "
                "empties; pass a results folder outside it"
            )


def _through(link: Path, flag: str, given: Path) -> Path:
    """Where the link `link` (part of the path `given`) leads, made or not; OutputError
    for a link loop, which no write can follow."""
    try:
        return link.resolve()
    except (OSError, RuntimeError):  # RuntimeError: Python 3.11-3.12's "Symlink loop"
        raise OutputError(
            f"{flag} {given}: {link} is a link that leads nowhere (a loop); remove it or "
            "pass another path"
        ) from None


def _place(path: Path) -> Path:
    """`path` with links and `..` resolved as far as it exists."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a link loop: compare as written
        return path.absolute()


@contextlib.contextmanager
def staged(
    folder: Path, flag: str, *, stale: Iterable[str] = (), file: Path | None = None
) -> Iterator[Path]:
    """A fresh folder inside `folder` to write into; on a clean exit each file in it
    replaces its namesake in `folder`, and the `stale` names it did not write (outputs of
    an earlier command that this one would contradict) are removed if this tool made
    them. Any OSError (inside or while moving) becomes an OutputError naming the file (the
    flag's own `file`, when it names one, not its folder), and the staging folder goes in
    every case."""
    check_folder(folder, flag)
    try:
        # Through a link to a folder not made yet (`mkdir` of the link itself: "File exists").
        (_place(folder) if folder.is_symlink() else folder).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"{flag} {folder}: cannot make it ({_reason(exc)}); pass a writable folder"
        ) from None
    stage: Path | None = None
    held: int | None = None
    try:
        try:
            # In the try: the staging folder is the first thing written, and a disk that
            # filled since the check (or an ext4 one, where a folder takes a block that an
            # empty file does not) refuses it; that was an "internal error" (exit 70).
            with _folder_lock(folder, fcntl.LOCK_SH):  # no sweep between make and hold
                stage = Path(tempfile.mkdtemp(dir=folder, prefix=STAGING_PREFIX))
                held = _hold(stage)
            _sweep(folder, stage)
            yield stage
            written = {p.name for p in stage.iterdir()}
            _replace_all(stage, folder)
            for name in set(stale) - written:
                if made_here(folder / name):
                    (folder / name).unlink()
        except OSError as exc:
            # A failed write() names no file: the flag's own file, or the report's.
            named = Path(exc.filename) if exc.filename and stage is not None else file
            where = named.name if named is not None else "the report"
            other = "another folder" if file is None else "another path"
            # An error may say its own fix (a forked writer killed: no file is to blame).
            fix = getattr(exc, "fix", None) or (
                f"free some space or pass {other}"
                if exc.errno in (errno.ENOSPC, errno.EDQUOT)
                else f"make {where} a file you can replace, or pass {other}"
            )
            shown = folder if file is None else file
            raise OutputError(
                f"{flag} {shown}: writing {where} failed ({_reason(exc)}); nothing there "
                f"was replaced: {fix}"
            ) from None
    finally:
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)
        if held is not None:
            os.close(held)


def _hold(stage: Path) -> int:
    """A flock on the staging folder for as long as its writer lives (kill -9 included):
    what tells the next writer that this one is still at work."""
    fd = os.open(stage, os.O_RDONLY | os.O_DIRECTORY)
    with contextlib.suppress(OSError):  # a filesystem without flock: nothing is swept
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


@contextlib.contextmanager
def _folder_lock(folder: Path, how: int) -> Iterator[None]:
    """A flock on `folder`: shared while a writer makes and holds its staging folder, alone
    while one sweeps, which removed a folder made but not held yet under its writer (two
    reports into one --out: "writing the report failed (No such file …)"). Unlocked where
    it cannot be opened or locked (a filesystem without flock)."""
    fd = None
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(fd, how)
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)


def _sweep(folder: Path, own: Path) -> None:
    """Remove the staging folders in `folder` that no writer holds: what a writer killed
    while writing (kill -9, the OOM killer, a CI job's timeout) left there, a report's
    worth each time, for ever. One a writer holds, or is making (`_folder_lock`), stays."""
    with contextlib.suppress(OSError), _folder_lock(folder, fcntl.LOCK_EX):
        for entry in os.scandir(folder):
            if not entry.name.startswith(STAGING_PREFIX) or entry.name == own.name:
                continue
            try:
                fd = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            except OSError:  # a file (a folder check's), a link: not a staging folder
                continue
            with contextlib.suppress(OSError):  # held: its writer is at work
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                shutil.rmtree(entry.path, ignore_errors=True)
            os.close(fd)


def _replace_all(stage: Path, folder: Path) -> None:
    """Each file of `stage` replaces its namesake in `folder`, all or none: a report half
    new and half old would pass for one report. A folder in the way is found before
    anything moves; a rename that fails puts back what the earlier ones replaced (kept
    as hard links in the stage)."""
    names = sorted(p.name for p in stage.iterdir())
    for name in names:
        target = folder / name
        if target.is_dir() and not target.is_symlink():
            raise IsADirectoryError(errno.EISDIR, "a folder is in the way", str(target))
    kept = Path(tempfile.mkdtemp(dir=stage, prefix=".replaced-"))
    done: list[tuple[str, bool | None]] = []  # (name, old file kept; None: there was none)
    try:
        for name in names:
            target = folder / name
            old: bool | None = None
            if os.path.lexists(target):
                try:
                    os.link(target, kept / name, follow_symlinks=False)
                    old = True
                except OSError:  # no hard links there: that one cannot be put back
                    old = False
            os.replace(stage / name, target)
            done.append((name, old))
    except OSError:
        for name, old in reversed(done):
            with contextlib.suppress(OSError):
                if old is None:
                    os.unlink(folder / name)
                elif old:
                    os.replace(kept / name, folder / name)
        raise


def write_text(path: Path, text: str, flag: str) -> None:
    """`path` holds `text` whole, or keeps what it held (written aside, then renamed);
    its line endings are written as they are. A link is written where it points, and
    stays a link (a README linked into docs/ is that README)."""
    target = _through(path, flag, path) if path.is_symlink() else path
    with staged(target.parent, flag, file=path) as stage:
        new = stage / target.name
        new.write_text(text, encoding="utf-8", newline="")
        with contextlib.suppress(OSError):  # keep the old file's permissions
            new.chmod(stat.S_IMODE(target.stat().st_mode))


def disk_free(path: Path) -> int | None:
    """Bytes an unprivileged writer may still put on the disk holding `path` (None when
    it cannot be asked): the one measure of a full disk, for results and cells alike."""
    try:
        fs = os.statvfs(path)
    except OSError:
        return None
    return fs.f_bavail * fs.f_frsize


def inodes_free(path: Path) -> int | None:
    """Files an unprivileged writer may still make on the disk holding `path` (None when
    it cannot be asked, or the filesystem sets no limit and says 0 of 0): a tmpfs with
    `nr_inodes`, or an ext4 disk of many small files, refuses a new file with ENOSPC while
    `disk_free` still shows room."""
    try:
        fs = os.statvfs(path)
    except OSError:
        return None
    return None if fs.f_files == 0 else fs.f_favail


#: What `stat` calls an entry that is neither a file nor a folder, as a warning names it.
_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def not_a_file(path: Path) -> str:
    """What a `*.jsonl` entry that is no file is (a FIFO was called "a broken link?", and
    its user looked for a link that was not there)."""
    link = path.is_symlink()
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        if not link:
            return f"unreadable ({exc.strerror or exc})"
        loop = exc.errno == errno.ELOOP
        return f"a link that leads nowhere ({'a loop' if loop else 'its target is gone'})"
    kind = next((name for test, name in _KINDS if test(mode)), "an entry of an unknown kind")
    return f"a link to {kind}" if link else kind
