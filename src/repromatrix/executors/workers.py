"""Persistent workers, harness side: one per (environment, slot), replaced when it fails.

A worker (`worker_main.py`, started by an executor inside the cell's environment) imports
torch, initialises CUDA and imports the library once, then runs cell after cell. Each cell
still gets its own result JSON, stdout/stderr files, timeout and record. The worker is
killed and the next cell gets a fresh one when a cell crashes it, times out, leaves CUDA
in an error state, or leaves it holding more memory than the limit.

The harness listens on a Unix socket in a short private directory (socket paths are
limited to ~100 bytes); the worker connects to it. The same socket works across a bind
mount, which is how a worker inside a container talks to the harness.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from repromatrix import watchdog

#: The worker program, run by path inside the cell's environment.
WORKER_MAIN = Path(__file__).with_name("worker_main.py")
#: `worker_main.EXIT_LOST`: the worker could not send the cell's end to the harness.
EXIT_LOST = 120
LOST = (
    "the worker lost its connection to repromatrix at the end of the cell, so its verdict "
    "could not be sent: the cell closed or replaced a file descriptor it inherited "
    "(os.closerange?); run such a repro alone with --isolate"
)
#: What `worker_main.py` imports from its own folder (Docker mounts them beside it).
_BESIDE = (
    "worker_state", "worker_leftovers", "worker_result", "worker_settings", "worker_torch",
    "worker_modes", "worker_bindings", "worker_logging", "worker_scripts", "worker_code",
    "worker_faults", "worker_sites", "worker_scopes", "worker_process", "worker_bytecode",
)  # fmt: skip
#: The worker program and every file it imports, copied or mounted beside each other.
WORKER_FILES = (WORKER_MAIN, *(WORKER_MAIN.with_name(f"{name}.py") for name in _BESIDE))
#: Longer than any reply a worker sends: more without a newline is no reply of its.
MAX_REPLY_BYTES = 1 << 20
#: How long a new worker may take to connect (interpreter start; torch comes with a cell).
CONNECT_TIMEOUT_S = 120.0


class WorkerProcess(Protocol):
    """What runs the worker: a local process group or a container."""

    def alive(self) -> bool: ...
    def exit_code(self, wait_s: float) -> int | None: ...
    def kill(self) -> None: ...
    def describe(self) -> dict[str, object]:
        """What to record of it in a cell's provenance (pid or container name)."""
        ...


@dataclass(frozen=True, kw_only=True)
class CellRequest:
    """One cell for a worker; paths as the worker sees them (inside a container: mounts)."""

    script: str
    params: Mapping[str, Any]
    out: str
    stdout: str
    stderr: str
    #: The cell's working directory (its own folder, as with a process per cell).
    cwd: str
    env: Mapping[str, str]
    #: A temporary folder of the cell's own (`worker_settings.fresh_tmp`): a container's
    #: /tmp is the worker's alone, the host's is everyone's (and not the cell's in a
    #: process of its own either).
    fresh_tmp: bool = False

    def message(self) -> dict[str, Any]:
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return {"cell": {**fields, "params": dict(self.params), "env": dict(self.env)}}


@dataclass(frozen=True, kw_only=True)
class CellDone:
    """What a worker said about one cell, or what the harness saw when it did not."""

    exit_code: int | None
    timed_out: bool = False
    #: The worker must not serve another cell (crash, timeout, sticky CUDA error, memory).
    retire: bool = False
    #: Why it is retired, for the record's provenance.
    why: str = ""
    duration_s: float = 0.0
    #: Whether the worker took the cell (False: it was gone before; the cell never ran).
    started: bool = True
    #: The worker asks for a fresh one to run the cell again (`worker_main.AGAIN`): `rerun`.
    again: bool = False
    rerun: str = ""  # why this run, in a fresh worker, is the cell's second ("": its first)


class WorkerFailed(Exception):
    """The worker could not be started or did not connect (`timed_out`: not within the
    time its cell had: the cell's timeout)."""

    def __init__(self, why: str, *, timed_out: bool = False) -> None:
        super().__init__(why)
        self.timed_out = timed_out


@dataclass(kw_only=True)
class Worker:
    """A running worker and its connection."""

    process: WorkerProcess
    conn: socket.socket
    writer: Any
    folder: Path
    cells: int = 0
    #: Memory (MiB) above which the worker is replaced after a cell (None: no limit).
    max_rss_mb: float | None = None
    #: Bytes read from the connection past the last line.
    _pending: bytes = b""

    def run(self, request: CellRequest, timeout_s: float) -> CellDone:
        start = time.monotonic()
        deadline = start + timeout_s
        self.cells += 1
        # The reply must name this cell's nonce: a line the cell itself wrote into the
        # connection, however well formed, cannot (it would blame the next cell).
        nonce = secrets.token_hex(8)
        taken = False
        try:
            self.conn.settimeout(max(0.001, timeout_s))
            self.writer.write(json.dumps({**request.message(), "nonce": nonce}) + "\n")
            self.writer.flush()
            ack = self._reply(deadline)
            taken = _field(ack, "took") == nonce
            if not taken:
                return self._not_taken(ack, start)
            line = self._reply(deadline)
        except (OSError, ValueError) as exc:
            if not taken:  # gone, or frozen (`docker pause`, SIGSTOP), before it took it
                return self._not_taken(b"", start)
            if isinstance(exc, TimeoutError):
                return self._timed_out(start)
            line = b""
        duration = time.monotonic() - start
        if not line:  # the worker died with the cell: its exit status is the cell's
            return self._died(duration)
        try:
            done = _field(line, "done")
            if done["nonce"] != nonce:
                raise ValueError("not this cell's reply")
            code = int(done["exit_code"])
            why = "" if done.get("healthy", True) else str(done.get("why") or "unhealthy")
            rss = float(done.get("rss_mb") or 0.0)
            again = done.get("again") is True
        except (ValueError, TypeError, KeyError, AttributeError):
            # Not the worker's own reply (a cell wrote into the connection): nothing it
            # says later can be trusted to belong to the right cell.
            self.kill()
            return _garbled(duration)
        if not why and self.max_rss_mb is not None and rss > self.max_rss_mb:
            why = f"holds {rss:.0f} MiB after the cell (limit {self.max_rss_mb:.0f} MiB)"
        return CellDone(exit_code=code, retire=bool(why), why=why, duration_s=duration, again=again)

    def _not_taken(self, ack: bytes, start: float) -> CellDone:
        """The worker did not take the cell: gone or frozen before it could (killed or
        paused while idle), so the cell never ran and neither crashed nor timed out; or
        garbled (`ack`: nothing but the worker writes before a cell runs)."""
        self.kill()
        if ack:
            return _garbled(time.monotonic() - start)
        return CellDone(
            exit_code=None,
            retire=True,
            started=False,
            why="the worker was gone (or frozen) before the cell started",
            duration_s=time.monotonic() - start,
        )

    def _died(self, duration: float) -> CellDone:
        """The connection ended during the cell: the worker's exit status is the cell's."""
        code = self.process.exit_code(10.0)
        self.kill()
        if code == EXIT_LOST:  # ...unless it is the worker's own: no verdict came back
            return CellDone(exit_code=None, retire=True, why=LOST, duration_s=duration)
        return CellDone(exit_code=code, retire=True, why="crashed", duration_s=duration)

    def _timed_out(self, start: float) -> CellDone:
        self.kill()
        return CellDone(
            exit_code=self.process.exit_code(5.0),
            timed_out=True,
            retire=True,
            why="timed out",
            duration_s=time.monotonic() - start,
        )

    def _reply(self, deadline: float) -> bytes:
        """The worker's next line, by `deadline` (TimeoutError past it); b"" when the
        connection ended first. The deadline is the cell's, however the bytes come: a
        socket timeout alone restarts with each recv, and a cell that wrote a byte into
        the connection now and then ran past its limit for as long as it liked."""
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.conn.settimeout(left)
            chunk = self.conn.recv(65536)
            if not chunk:
                return b""
            self._pending += chunk
            if len(self._pending) > MAX_REPLY_BYTES:  # no reply of ours is that long
                return self._pending
        line, _, self._pending = self._pending.partition(b"\n")
        return line + b"\n"

    def stop(self) -> None:
        """Ask the worker to exit, then make sure it did (and its container is removed)."""
        with contextlib.suppress(OSError, ValueError):
            self.writer.write('{"stop": true}\n')
            self.writer.flush()
        self.process.exit_code(2.0)
        self.process.kill()
        self._close()

    def kill(self) -> None:
        self.process.kill()
        self._close()

    def _close(self) -> None:
        # shutdown first: close() alone does not wake a thread blocked in recv on it.
        with contextlib.suppress(OSError):
            self.conn.shutdown(socket.SHUT_RDWR)
        for closable in (self.writer, self.conn):
            with contextlib.suppress(OSError):
                closable.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def _field(line: bytes, name: str) -> Any:
    """`name` of a worker's JSON line (None when the line is not a JSON object)."""
    try:
        message = json.loads(line)
    except ValueError:
        return None
    return message.get(name) if isinstance(message, dict) else None


def _garbled(duration_s: float) -> CellDone:
    return CellDone(
        exit_code=None,
        retire=True,
        why="the worker's reply was garbled (did the cell write to its connection?)",
        duration_s=duration_s,
    )


#: Starts the worker program given the socket path it must connect to.
Starter = Callable[[Path], WorkerProcess]


def start_worker(
    start: Starter,
    *,
    max_rss_mb: float | None,
    cancelled: threading.Event | None = None,
    connect_s: float = CONNECT_TIMEOUT_S,
) -> Worker:
    """Listen on a fresh socket, start the worker, wait for it to connect and say hello.

    Every wait is in short steps that look at `cancelled`: Ctrl-C while a worker starts
    (a container pulling its image, a slow interpreter) must not wait for it."""
    cancelled = cancelled or threading.Event()
    folder = watchdog.worker_folder()
    path = folder / "w.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(path))
        path.chmod(0o777)  # a container may run as another uid than ours
        folder.chmod(0o755)
        listener.listen(1)
        process = start(folder)
        conn = _accept(listener, process, cancelled, connect_s)
    except BaseException:
        listener.close()
        shutil.rmtree(folder, ignore_errors=True)
        raise
    listener.close()
    if not _hello(conn, cancelled):
        conn.close()
        process.kill()
        shutil.rmtree(folder, ignore_errors=True)
        raise WorkerFailed("cancelled" if cancelled.is_set() else "the worker said nothing")
    conn.settimeout(None)
    writer = conn.makefile("w", encoding="utf-8")
    return Worker(
        process=process,
        conn=conn,
        writer=writer,
        folder=folder,
        max_rss_mb=max_rss_mb,
    )


def _hello(conn: socket.socket, cancelled: threading.Event) -> bool:
    """Read the worker's hello line (raw recv: a timed-out file object is unusable)."""
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    conn.settimeout(0.2)
    data = b""
    while b"\n" not in data and time.monotonic() < deadline and not cancelled.is_set():
        try:
            chunk = conn.recv(4096)
        except TimeoutError:
            continue
        except OSError:
            return False
        if not chunk:
            return False
        data += chunk
    # The hello is all a worker sends before its first cell: nothing else is buffered.
    return data.endswith(b"\n")


def _accept(
    listener: socket.socket, process: WorkerProcess, cancelled: threading.Event, connect_s: float
) -> socket.socket:
    deadline = time.monotonic() + connect_s
    listener.settimeout(0.2)
    while time.monotonic() < deadline:
        if cancelled.is_set():
            process.kill()
            raise WorkerFailed("cancelled")
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            if not process.alive():
                code = process.exit_code(1.0)
                # What it said last (a container's: `exec python3 failed`, an image's own
                # ENTRYPOINT), when the process can tell.
                said = getattr(process, "last_words", lambda: "")()
                raise WorkerFailed(
                    f"the worker exited ({code}) before connecting" + (f": {said}" if said else "")
                ) from None
            continue
        conn.settimeout(None)
        return conn
    process.kill()
    short = connect_s < CONNECT_TIMEOUT_S  # the cell's own limit
    raise WorkerFailed(f"the worker did not connect within {connect_s:g} s", timed_out=short)
