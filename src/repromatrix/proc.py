"""The one door to subprocesses: resolve the executable, log the command, kill whole groups.

Every external command (git, pip, nvidia-smi, the repro interpreter) goes through here, so a
missing tool is one clear error and a timeout kills the process *and* everything it spawned.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from repromatrix.errors import MissingToolError

log = logging.getLogger("repromatrix.proc")

#: How long a process group gets between SIGTERM and SIGKILL.
KILL_GRACE_S = 5.0

_INSTALL_HINTS = {
    "git": "install git (apt-get install git)",
    "nvidia-smi": "install the NVIDIA driver utilities",
    "docker": "install the Docker client",
}


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
) -> Completed:
    """Run a short command and capture its output (for git, pip, nvidia-smi)."""
    exe = which(argv[0])
    full = (exe, *argv[1:])
    log.debug("$ %s", shlex.join(full))
    start = time.monotonic()
    try:
        proc = subprocess.run(
            full,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            input=input_text,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired as exc:
        return Completed(
            argv=full,
            returncode=-signal.SIGKILL,
            stdout=_text(exc.stdout),
            stderr=_text(exc.stderr),
            duration_s=time.monotonic() - start,
            timed_out=True,
        )
    done = Completed(
        argv=full,
        returncode=proc.returncode,
        stdout=proc.stdout,
        stderr=proc.stderr,
        duration_s=time.monotonic() - start,
    )
    if check and proc.returncode != 0:
        raise CommandFailed(done)
    return done


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else value.decode(errors="replace")


class CommandFailed(Exception):
    def __init__(self, completed: Completed) -> None:
        self.completed = completed
        tail = (completed.stderr or completed.stdout).strip().splitlines()[-1:] or [""]
        super().__init__(
            f"{shlex.join(completed.argv[:4])}{' ...' if len(completed.argv) > 4 else ''} "
            f"exited {completed.returncode}: {tail[0]}"
        )


@dataclass(frozen=True, kw_only=True)
class GroupOutcome:
    returncode: int
    timed_out: bool
    cancelled: bool
    duration_s: float


class ProcessGroup:
    """A long-running child in its own session; stdout/stderr go to files, not pipes.

    Files instead of pipes: a repro that prints megabytes can never block on a full pipe,
    and the tails survive a crash of the child. `kill()` signals the whole group, so a
    repro's own children (ninja, nvcc, a forked worker) die with it.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        stdout: Path,
        stderr: Path,
    ) -> None:
        exe = which(argv[0])
        self.argv = (exe, *argv[1:])
        log.debug("$ %s", shlex.join(self.argv))
        self._out = stdout.open("wb")
        self._err = stderr.open("wb")
        self._lock = threading.Lock()
        self._cancelled = False
        self.start = time.monotonic()
        self.proc = subprocess.Popen(
            self.argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=self._err,
            start_new_session=True,
        )

    def kill(self, *, cancelled: bool = False) -> None:
        """SIGTERM the group, then SIGKILL after a grace period if anything is left."""
        with self._lock:
            if cancelled:
                self._cancelled = True
        _kill_group(self.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + KILL_GRACE_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None and not _group_alive(self.proc.pid):
                return
            time.sleep(0.05)
        _kill_group(self.proc.pid, signal.SIGKILL)

    def wait(self, timeout: float | None) -> GroupOutcome:
        timed_out = False
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            self.kill()
            self.proc.wait()
        # The leader may exit while its children linger (a daemonized grandchild holding
        # the GPU); the cell is over, so the group goes too.
        if _group_alive(self.proc.pid):
            _kill_group(self.proc.pid, signal.SIGKILL)
        self._out.close()
        self._err.close()
        return GroupOutcome(
            returncode=self.proc.returncode,
            timed_out=timed_out,
            cancelled=self._cancelled,
            duration_s=time.monotonic() - self.start,
        )


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        log.warning("cannot signal process group %s", pgid)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def tail(path: Path, *, max_bytes: int = 8192) -> str:
    """The last `max_bytes` of a file as text, starting at a line boundary when possible."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return ""
    with path.open("rb") as f:
        if size > max_bytes:
            f.seek(size - max_bytes)
            data = f.read()
            nl = data.find(b"\n")
            if 0 <= nl < 512:
                data = data[nl + 1 :]
            return "[...]\n" + data.decode(errors="replace")
        return f.read().decode(errors="replace")
