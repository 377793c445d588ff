"""The one door to subprocesses: resolve the executable, log the command, own what it starts.

Every external command (git, pip, nvidia-smi, the repro interpreter, its workers) goes
through here, so a missing tool is one clear error and nothing a run starts outlives it:

- each child starts its own session (process group), and a kill takes the whole group;
- each child carries a token in its environment (`REPROMATRIX_GROUP_TOKEN`), inherited by
  everything it starts, so processes that left the group (setsid, double-forked daemons)
  are found by a sweep of /proc and ended with it — unprivileged, no cgroup needed;
- a kill also ends every process below the child in the process tree, found by parent
  links: one started with an environment of its own (`env=`) carries no token;
- every live child is registered, so Ctrl-C (`terminate_all`) ends environment builds
  (pip, git) as well as cells;
- waits block on a pidfd (no polling sleeps); a group is alive while any member that is
  not a zombie is, so an unreaped zombie never holds a timeout up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import select
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from repromatrix.errors import MissingToolError
from repromatrix.proctable import descendants, group_alive, kill_all, sweep

log = logging.getLogger("repromatrix.proc")

#: How long a process group gets between SIGTERM and SIGKILL.
KILL_GRACE_S = 5.0
#: The variable that marks every process of one group, descendants included.
GROUP_TOKEN = "REPROMATRIX_GROUP_TOKEN"
#: The variable that marks every process of one run (see `watchdog.py`).
RUN_TOKEN = "REPROMATRIX_RUN_TOKEN"
#: The container label that marks every container of one run.
RUN_TOKEN_LABEL = "org.repromatrix.run-token"

_INSTALL_HINTS = {
    "git": "install git (apt-get install git)",
    "nvidia-smi": "install the NVIDIA driver utilities",
    "docker": "install the Docker client",
}

_live_lock = threading.Lock()
_live: set[ProcessGroup] = set()
#: Held while a child is started and registered, and while orphans are looked for: a child
#: started a moment ago and not registered yet is no orphan (`end_orphans`).
_spawn_lock = threading.Lock()
#: Children started to outlive us (the watchdog): never orphans.
_detached: set[int] = set()


def which(executable: str) -> str:
    """Absolute path of `executable`, or a MissingToolError saying what to install."""
    if os.sep in executable:
        if os.access(executable, os.X_OK):
            return executable
        raise MissingToolError(f"{executable}: not found or not executable")
    found = shutil.which(executable)
    if found is None:
        hint = _INSTALL_HINTS.get(executable, f"install {executable} or put it on PATH")
        raise MissingToolError(f"'{executable}' is not on PATH; {hint}")
    return found


@dataclass(frozen=True, kw_only=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool = False


def run(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    check: bool = False,
    input_text: str | None = None,
    daemons: bool = False,
) -> Completed:
    """Run a short command and capture its output (for git, pip, nvidia-smi).

    A timeout or `terminate_all` kills the whole group (pip's build backends, git's helpers).
    `daemons=True` is for a command whose job is to start daemons that outlive it (`ray
    start`): what it leaves running once it exits is not swept.
    """
    group = ProcessGroup(
        argv, cwd=cwd, env=env, capture=True, stdin_text=input_text, daemons=daemons
    )
    out, err, timed_out = group.communicate(timeout)
    done = Completed(
        argv=group.argv,
        returncode=group.proc.returncode,
        stdout=out,
        stderr=err,
        duration_s=time.monotonic() - group.start,
        timed_out=timed_out,
    )
    if check and done.returncode != 0:
        raise CommandFailed(done)
    return done


class CommandFailed(Exception):
    def __init__(self, completed: Completed) -> None:
        self.completed = completed
        tail_line = (completed.stderr or completed.stdout).strip().splitlines()[-1:] or [""]
        super().__init__(
            f"{shlex.join(completed.argv[:4])}{' ...' if len(completed.argv) > 4 else ''} "
            f"exited {completed.returncode}: {tail_line[0]}"
        )


@dataclass(frozen=True, kw_only=True)
class GroupOutcome:
    returncode: int
    timed_out: bool
    cancelled: bool
    duration_s: float


class ProcessGroup:
    """A child in its own session, marked with a token; stdout/stderr to files or captured.

    Files rather than pipes for long runs: a repro that prints megabytes can never block on
    a full pipe, and the tails survive a crash of the child. `kill()` signals the whole
    group and sweeps the token, so a repro's own children (ninja, nvcc, a forked worker, a
    daemon that called setsid) die with it.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path | None,
        env: Mapping[str, str] | None,
        stdout: Path | None = None,
        stderr: Path | None = None,
        capture: bool = False,
        stdin_text: str | None = None,
        daemons: bool = False,
        append: bool = False,
    ) -> None:
        exe = which(argv[0])
        self.daemons = daemons
        self.argv = (exe, *argv[1:])
        log.debug("$ %s", shlex.join(self.argv))
        self.token = secrets.token_hex(8)
        variables = dict(os.environ if env is None else env)
        if not daemons:
            variables[GROUP_TOKEN] = self.token
        # `append`: a log that outlives the process (a worker's: the next one must not
        # wipe what the last one said before it died).
        mode = "ab" if append else "wb"
        self._files = [p.open(mode) for p in (stdout, stderr) if p is not None]
        self._lock = threading.Lock()
        self._cancelled = False
        self.start = time.monotonic()
        stdin = subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL
        self.proc: subprocess.Popen[Any]
        with _spawn_lock:
            self._spawn(variables, cwd, stdin, capture=capture)
        self._stdin_text = stdin_text

    def _spawn(
        self, variables: Mapping[str, str], cwd: Path | None, stdin: int, *, capture: bool
    ) -> None:
        if capture:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=cwd,
                env=variables,
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                text=True,
                errors="replace",
            )
        else:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=cwd,
                env=variables,
                stdin=stdin,
                stdout=self._files[0] if self._files else None,  # None: ours
                stderr=self._files[-1] if self._files else None,
                start_new_session=True,
            )
        with _live_lock:
            _live.add(self)

    @property
    def cancelled(self) -> bool:
        with self._lock:
            return self._cancelled

    def communicate(self, timeout: float | None) -> tuple[str, str, bool]:
        """(stdout, stderr, timed out) of a captured child; the group is gone afterwards."""
        try:
            out, err = self.proc.communicate(self._stdin_text, timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            self.kill()
            out, err = self.proc.communicate()
            timed_out = True
        self._finish()
        return out or "", err or "", timed_out

    def kill(self, *, cancelled: bool = False) -> None:
        """SIGTERM the group, SIGKILL what is left after a grace period, sweep the token."""
        with self._lock:
            if cancelled:
                self._cancelled = True
        below = descendants(self.proc.pid)  # before the leader dies and they are orphaned
        _signal_group(self.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + KILL_GRACE_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None and not group_alive(self.proc.pid):
                break
            time.sleep(0.02)
        else:
            _signal_group(self.proc.pid, signal.SIGKILL)
        kill_all(below)
        sweep(GROUP_TOKEN, self.token)

    def wait(self, timeout: float | None) -> GroupOutcome:
        timed_out = not wait_pid(self.proc, timeout)
        if timed_out:
            self.kill()
            self.proc.wait()
        self._finish()
        return GroupOutcome(
            returncode=self.proc.returncode,
            timed_out=timed_out,
            cancelled=self.cancelled,
            duration_s=time.monotonic() - self.start,
        )

    def end(self) -> None:
        """Kill the group now and release it (a worker that is no longer wanted)."""
        self.kill()
        self.proc.wait()
        self._finish()

    def _finish(self) -> None:
        # The leader may exit while its children linger (a daemonized grandchild holding
        # the GPU); the group is over, so they go too.
        if not self.daemons:
            if group_alive(self.proc.pid):
                _signal_group(self.proc.pid, signal.SIGKILL)
            sweep(GROUP_TOKEN, self.token)
        for f in self._files:
            f.close()
        with _live_lock:
            _live.discard(self)


def terminate_all() -> None:
    """End every live group this process started (Ctrl-C, SIGTERM): SIGTERM all at once,
    one grace period, then SIGKILL and sweeps. Safe to call again."""
    with _live_lock:
        groups = list(_live)
    below: dict[int, bytes] = {}
    for g in groups:
        below.update(descendants(g.proc.pid))
    for g in groups:
        with g._lock:
            g._cancelled = True
        _signal_group(g.proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + KILL_GRACE_S
    while time.monotonic() < deadline and any(group_alive(g.proc.pid) for g in groups):
        time.sleep(0.05)
    for g in groups:
        _signal_group(g.proc.pid, signal.SIGKILL)
    kill_all(below)
    for g in groups:
        sweep(GROUP_TOKEN, g.token)


@dataclass(frozen=True)
class Owned:
    """The children this process owns: live groups' leaders and detached children (`pids`),
    and the tokens the live groups' members carry (`tokens`)."""

    pids: frozenset[int]
    tokens: frozenset[str]


@contextlib.contextmanager
def spawns_held() -> Iterator[Owned]:
    """Start no child while the caller looks for what is not ours (`orphans.end_orphans`):
    a child started a moment ago and not registered yet is no orphan. Yields what this
    process owns as the hold begins."""
    with _spawn_lock:
        with _live_lock:
            owned = Owned(
                pids=frozenset({g.proc.pid for g in _live} | _detached),
                tokens=frozenset(g.token for g in _live),
            )
        yield owned


def spawn_detached(
    argv: Sequence[str], *, stdin: int, env: Mapping[str, str], orphan: bool = False
) -> None:
    """Start a process in its own session that outlives us (the watchdog). Never waited
    for: it ends on its own (its Popen is told so, lest its destructor warn). `orphan`:
    through a starter that ends at once, so it is no child of ours (Ray kills a worker
    process's children when the worker ends: `kill_child_processes_on_worker_exit`)."""
    starter = [sys.executable, "-c", _ORPHAN] if orphan else []
    with _spawn_lock:
        child = subprocess.Popen(
            [*starter, *argv],
            stdin=stdin,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=dict(env),
            start_new_session=True,
        )
        _detached.add(child.pid)
    if not orphan or not wait_pid(child, 60):
        child.returncode = 0


_ORPHAN = "import subprocess, sys; subprocess.Popen(sys.argv[1:], start_new_session=True)"


def wait_pid(proc: subprocess.Popen[Any], timeout: float | None) -> bool:
    """Wait for `proc` to exit within `timeout`; True if it did (it is then reaped).

    Blocks on a pidfd instead of Popen.wait(timeout), which on Python 3.11 sleeps in steps
    growing to 50 ms: that was ~30 ms of harness time per cell.
    """
    if timeout is None:
        proc.wait()
        return True
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # reaped already, or no pidfd (old kernel, gVisor)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    try:
        ready, _, _ = select.select([fd], [], [], max(0.0, timeout))
    finally:
        os.close(fd)
    if not ready:
        return False
    proc.wait()
    return True


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        log.warning("cannot signal process group %s", pgid)


def tail(path: Path, *, max_bytes: int = 8192) -> str:
    """The last `max_bytes` of a file as text, starting at a line boundary when possible.
    Only a regular file is read, never through a link and never waiting: a repro may
    leave a FIFO, a link to /dev/zero or to a host file where its log was ("" then)."""
    try:
        found = regular_tail(path, max_bytes)
    except OSError:
        return ""
    if found is None:
        return ""
    data, size = found
    text = data.decode(errors="replace")
    return "[...]\n" + text if len(data) < size else text


#: How a file in a cell's folder is opened to be read. O_NOFOLLOW: a repro may have
#: replaced its log or result by a link to a file that is not ours. O_NONBLOCK: or by a
#: FIFO, whose open would wait for a writer forever (and hold up the whole run); on a
#: regular file it changes nothing, and anything that is not one is refused after fstat.
READ_OWN = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@contextlib.contextmanager
def open_regular(path: Path) -> Iterator[BinaryIO | None]:
    """`path` opened for reading if it is a regular file, else None; OSError (ELOOP for a
    link) when it cannot be opened so."""
    fd = os.open(path, READ_OWN)
    with os.fdopen(fd, "rb") as f:
        yield f if stat.S_ISREG(os.fstat(fd).st_mode) else None


def regular_tail(path: Path, max_bytes: int | None) -> tuple[bytes, int] | None:
    """(the last `max_bytes` of `path`, from a line start when one is near; its whole
    size), or None when `path` is not a regular file (a link, a FIFO, a device)."""
    with open_regular(path) as f:
        if f is None:
            return None
        size = os.fstat(f.fileno()).st_size
        start = 0 if max_bytes is None else max(0, size - max_bytes)
        data = os.pread(f.fileno(), size - start, start)
    if start > 0:
        newline = data.find(b"\n")
        if 0 <= newline < 512:
            data = data[newline + 1 :]
    return data, size
