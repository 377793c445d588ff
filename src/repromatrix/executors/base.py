"""What every executor does: run one cell in one slot and report a `RunOutcome`.

Turning that outcome (exit code, result JSON, output tails) into a `Result` is `judge.py`,
shared so that every executor judges a repro identically.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import threading
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from repromatrix.host import HostGpu
from repromatrix.model import Cell, canonical_json
from repromatrix.outputs import disk_free, inodes_free
from repromatrix.records import Result

#: Name of the result JSON a repro writes in its work directory.
RESULT_FILE = "result.json"


@dataclass(frozen=True, kw_only=True)
class Slot:
    """Where a cell may run: one physical GPU, or a CPU worker."""

    name: str
    gpu: HostGpu | None = None

    @property
    def cuda_visible_devices(self) -> str:
        # An empty value hides every GPU from a CPU cell, so it really runs on the CPU.
        return self.gpu.uuid if self.gpu is not None else ""


@dataclass(frozen=True, kw_only=True)
class RunOutcome:
    """What an executor observed; `judge` turns it into a Result."""

    exit_code: int | None
    timed_out: bool
    cancelled: bool
    duration_s: float
    started: datetime
    result_json: Path | None
    stdout_tail: str
    stderr_tail: str
    executor: str
    base_fingerprint: str
    #: Facts the harness knows but the repro cannot (env key, resolved commits, slot).
    harness: Mapping[str, Any] = field(default_factory=dict)
    #: Set when the harness failed before the repro ran (e.g. environment build).
    harness_error: str | None = None
    #: The record, when the cell was judged where it ran (a Ray node): stored as it is.
    judged: Result | None = None
    #: Set when the cell's slot is gone before the cell ended (its Ray node left, its
    #: actor died), in words: the cell gets no record and is handed out again, ahead of
    #: the cells no slot has taken yet, and the slot is dropped.
    moved: str | None = None


#: `RunOutcome.harness` keys of a cell that failed for a reason no later cell would escape:
#: this host cannot write what cells need (a full disk), or the container engine is gone.
#: The run stops there, and the cell gets no record (the next run does it).
HOST_STORAGE = "host_storage"
ENGINE_LOST = "engine_lost"
#: With ENGINE_LOST: when the next run can do the cell (the default: once the engine is back).
ENGINE_WHEN = "engine_when"
#: Where the disk is full, when not under this host's cache (a Ray node's).
HOST_STORAGE_AT = "host_storage_at"
#: With HOST_STORAGE: what the stopped cell's logs held, cut where the cell ran (a Ray
#: node's cache, which the driver cannot reach), in the words of `logs.cut_for_room`.
HOST_LOGS_CUT = "host_logs_cut"
#: That place when it is the container engine's own (its data root: images, containers).
ENGINE_STORAGE = "the Docker engine's storage (its Docker Root Dir, see `docker info`)"
#: The interpreter a Ray node runs cells with cannot import what a cell needs (a local
#: run refuses to start so, exit 4).
MISSING_TOOL = "missing_tool"
#: The container engine says the kernel killed the cell's container for its memory limit
#: (a crash "killed by signal 9" is then said to be that).
OOM_KILLED = "oom_killed"


#: OSError numbers that say this host cannot write what a cell needs (its folder, logs,
#: environment): no cell would fare better, so the run stops instead of recording every
#: one as an error. A cache folder this user may not write (EACCES, EPERM: `envs/` or
#: `workers/` another user's, or `chmod 000`) is one too: each cell was an `error` record
#: ("harness failed: PermissionError"), exit 0, that the next run reused once the folder
#: was fixed. So is a file where the cache has a folder (ENOTDIR: a Ray node's `--cache`
#: removed and made a file), whose cells were error records "NotADirectoryError".
HOST_FULL = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR}
)
#: Free space under which the disk of a cell's folder counts as full.
FULL_BELOW_BYTES = 1 << 20
#: Free inodes under which it does (a cell makes a few files: result, logs, a socket).
FULL_BELOW_INODES = 64


def host_full(outcome: RunOutcome) -> str | None:
    """Why the harness could not write on this host (a full disk, a read-only cache), when
    that is what ended the cell; None otherwise. A cell that wrote no usable result while
    the disk of its folder is full failed for that (its repro could not write its result
    JSON), not on its own: recording it as an error would stand for a run that never was,
    and the next run would reuse it."""
    why = outcome.harness.get(HOST_STORAGE)
    if why is not None:
        return str(why)
    made = outcome.result_json
    if made is None:
        return None
    free, files = disk_free(made.parent), inodes_free(made.parent)
    if free is not None and free < FULL_BELOW_BYTES:
        full = f"{free // 1024} KiB free"
    elif files is not None and files < FULL_BELOW_INODES:
        # Bytes to spare but no file can be made: the repro's result JSON could not be
        # either, and that cell was recorded as an error that later runs reused.
        full = f"{files} inodes free"
    else:
        return None  # room enough: judge it
    if _whole_json(made):
        return None  # the repro's result was written whole: judge it
    return f"No space left on device ({full} where the cell writes)"


#: How pip and git say that a disk is full (`[Errno 28] No space left on device`, git's
#: `fatal: write error: No space left on device`).
_FULL_WORDS = tuple(os.strerror(n) for n in (errno.ENOSPC, errno.EDQUOT))


def full_in(text: str) -> str | None:
    """Which of a full disk's words a tool's failure holds (an environment build that pip
    or git could not finish for want of room), None when none."""
    return next((words for words in _FULL_WORDS if words in text), None)


def what_frees(where: str) -> str:
    """What repromatrix can free at `where` (a cache, or the engine's storage)."""
    if where.startswith(ENGINE_STORAGE):
        return "`repromatrix clean --docker` removes its environment images"
    return "`repromatrix clean` empties its runs/"


def storage_fix(why: str, where: str) -> str:
    """What to do about `why` (from `host_full`) at `where`: room for a full disk, write
    access for a read-only or forbidden one (freeing space would not help it)."""
    if "Read-only file system" in why or "Permission denied" in why:
        return "make it writable, or name another --cache"
    if os.strerror(errno.ENOTDIR) in why:  # no room would help a file in a folder's place
        return "make the file on its path a folder again, or name another --cache"
    return f"free space there ({what_frees(where)})"


def cannot_write(exc: Exception, cache: Path) -> str | None:
    """The line for a slot stopped by the cache's disk (its runs/ full, read-only or not
    this user's): no bug to report, as an unexpected error's line says; None otherwise."""
    if not isinstance(exc, OSError) or exc.errno not in HOST_FULL:
        return None
    where = str(exc.filename or cache)
    fix = storage_fix(exc.strerror or "", where)
    return (
        f"cannot write {where} ({exc.strerror}); its cell got no record, earlier results "
        f"are kept: {fix}, then run again"
    )


def _whole_json(path: Path) -> bool:
    try:
        json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return True


def engine_lost(outcome: RunOutcome) -> str | None:
    """Why the container engine could not run the cell (it stopped answering), when that
    is what ended it; None otherwise."""
    why = outcome.harness.get(ENGINE_LOST)
    return str(why) if why is not None else None


def run_of(workdir: Path) -> str:
    """The run a cell's work directory belongs to: the scheduler gives each run its own
    directory, workroot/<run id>/<cell key>."""
    return workdir.parent.name


@dataclass(frozen=True)
class FailedBuild:
    why: str
    log: Path | None  # the first build's log, named to the later cells that skip it


class FailedBuilds:
    """Environments that failed to build in a run, by (run id, environment): a build
    that failed fails again (an sdist's compile after an hour), so the run's later cells of
    the same pins get the first build's reason instead of building it once more. The next
    run tries again, also on a Ray node whose executor outlives a run. Thread-safe."""

    def __init__(self) -> None:
        self._failed: dict[tuple[str, Hashable], FailedBuild] = {}
        self._lock = threading.Lock()

    def get(self, run_id: str, key: Hashable) -> FailedBuild | None:
        with self._lock:
            return self._failed.get((run_id, key))

    def remember(self, run_id: str, key: Hashable, why: str, log: Path | None = None) -> None:
        with self._lock:
            self._failed.setdefault((run_id, key), FailedBuild(why, log))


def run_identity(
    base: str,
    *,
    cell_env: Mapping[str, str],
    pythonpath: str | None = None,
    moved: Mapping[str, str] | None = None,
) -> str:
    """A cell's base fingerprint: `base` (the interpreter's or image's identity) and what
    else its result depends on that its key does not name: the `--cell-env` variables,
    the PYTHONPATH the cells inherit (code there is imported, with no metadata to see), and
    the commits git names stand for now (`git_pins.moving_commits`). A record made with other
    ones is not reused. Nothing extra: `base` itself, as records before this had it."""
    extra: dict[str, Any] = {}
    if cell_env:
        extra["cell_env"] = dict(sorted(cell_env.items()))
    if pythonpath:
        extra["pythonpath"] = pythonpath
    if moved:
        extra["moved"] = dict(sorted(moved.items()))
    if not extra:
        return base
    return f"{base}+{hashlib.sha256(canonical_json(extra).encode()).hexdigest()[:12]}"


def harness_failure(
    *,
    executor: str,
    base_fingerprint: str,
    started: datetime,
    why: str,
    harness: Mapping[str, Any],
    cancelled: bool = False,
) -> RunOutcome:
    """The outcome of a cell the harness could not start (environment, image, engine)."""
    return RunOutcome(
        exit_code=None,
        timed_out=False,
        cancelled=cancelled,
        duration_s=(datetime.now(UTC) - started).total_seconds(),
        started=started,
        result_json=None,
        stdout_tail="",
        stderr_tail="",
        executor=executor,
        base_fingerprint=base_fingerprint,
        harness=harness,
        harness_error=why,
    )


class Executor(Protocol):
    name: str

    def base_fingerprint(self, cell: Cell) -> str:
        """Identity of the base the cell would run on here (interpreter or image content)."""
        ...

    def can_run(self, cell: Cell) -> str | None:
        """None when this executor can run the cell here, else why not (one line)."""
        ...

    def run(self, cell: Cell, slot: Slot, workdir: Path) -> RunOutcome: ...

    def cancel(self) -> None:
        """Stop every running cell now (Ctrl-C); their outcomes say `cancelled`."""
        ...

    def close(self) -> None:
        """Release what the executor keeps between cells (workers): end of a session."""
        ...


class Submitted(Protocol):
    """A cell handed to a queueing executor: `outcome` waits for it to end."""

    def outcome(self) -> RunOutcome: ...


class QueueingExecutor(Executor, Protocol):
    """An executor whose backend keeps its own queue per slot (Ray): a slot may hand it
    the next cell while the current one runs, and the backend starts that cell the moment
    the slot's resources free up, without a round trip through the driver between them."""

    def queues(self, cell: Cell) -> bool:
        """Whether the backend itself holds a cell of this kind back until a slot is free
        (so that a second one submitted early waits instead of running alongside)."""
        ...

    def submit(self, cell: Cell, slot: Slot, workdir: Path) -> Submitted: ...


def lost_line(lost: list[tuple[str, str]]) -> str | None:
    """The run's closing line for cells (id, how) lost with their Ray nodes, noted "not run
    here" (the run must not end with exit 0); None for none."""
    if not lost:
        return None
    ids = ", ".join(cell for cell, _ in lost[:3]) + (", ..." if len(lost) > 3 else "")
    hows = " or ".join(dict.fromkeys(how for _, how in lost))
    return (
        f"{len(lost)} cell(s) lost with their Ray nodes {hows} ({ids}); they are noted "
        "'not run here', earlier results are kept, and the next run does them"
    )
