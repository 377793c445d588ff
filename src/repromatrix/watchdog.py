"""Nothing outlives its run: a watchdog that ends what a killed runner leaves behind.

`kill -9` (or the OOM killer) gives the runner no chance to clean up: its repros, their
children, the workers and the containers would run on, their results thrown away. So a run
starts a small watchdog process first, in its own session (a kill of the runner's process
group leaves it alone), holding the read end of a pipe whose write end only the runner has.
When the runner dies, for any reason, the kernel closes the pipe; the watchdog wakes and

- SIGKILLs every process whose environment carries the run's token
  (`REPROMATRIX_RUN_TOKEN`, set in the runner and inherited by all it starts, daemons
  included), and
- removes the containers labelled with that token (through the engine's Unix socket),
  and the socket folders of the run's persistent workers (`worker_folder`): a Ray
  slot's actor ended by Ctrl-C, or a runner killed, left one per worker in /tmp.

Standard library only, and cheap: one sleeping process per run.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import shutil
import socket
import sys
import tempfile
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path

from repromatrix import proc, proctable


@contextlib.contextmanager
def guard(env: Mapping[str, str] | None = None, *, orphan: bool = False) -> Iterator[str]:
    """Mark this process's future children with a run token and start the watchdog.

    Yields the token. On a normal exit the pipe closes too, and the watchdog sweeps
    whatever is left (nothing, usually) before it exits. `orphan`: the watchdog is no
    child of this process (see `proc.spawn_detached`).
    """
    environ = os.environ if env is None else env
    token = secrets.token_hex(12)
    read_end, write_end = os.pipe()  # not inheritable (PEP 446): children never hold it
    docker = _docker_socket(environ)
    child_env = {k: v for k, v in environ.items() if k != proc.RUN_TOKEN}
    proc.spawn_detached(
        [sys.executable, "-m", "repromatrix.watchdog", token, docker or ""],
        stdin=read_end,
        env=child_env,
        orphan=orphan,
    )
    os.close(read_end)
    previous = os.environ.get(proc.RUN_TOKEN)
    os.environ[proc.RUN_TOKEN] = token
    try:
        yield token
    finally:
        if previous is None:
            os.environ.pop(proc.RUN_TOKEN, None)
        else:
            os.environ[proc.RUN_TOKEN] = previous
        # Not waited for: it sweeps on its own and must not hold the command up.
        os.close(write_end)


#: A worker's socket folder, and the file in it naming the run that owns it.
_FOLDER_PREFIX, _OWNER = "rmw-", "run-token"
#: The longest Unix socket path (sun_path: 108 bytes with its NUL), less
#: /rmw-XXXXXXXX/w.sock below the temporary folder.
_MAX_SOCKET_ROOT = 107 - len("/rmw-12345678/w.sock")


def worker_folder() -> Path:
    """A new folder for a persistent worker's socket, marked with this process's run token
    (if any) so that the run's watchdog removes it if the run cannot."""
    folder = Path(tempfile.mkdtemp(prefix=_FOLDER_PREFIX, dir=_socket_root()))
    token = os.environ.get(proc.RUN_TOKEN)
    if token:
        fd = os.open(folder / _OWNER, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:  # the token: for our eyes only
            f.write(token)
    return folder


def _socket_root() -> str | None:
    """Where the socket's folder goes: TMPDIR's (None), or /tmp where a socket path there
    is too long (a deep TMPDIR: every worker failed to start, "AF_UNIX path too long")."""
    return None if len(os.fsencode(tempfile.gettempdir())) <= _MAX_SOCKET_ROOT else "/tmp"


def _remove_worker_folders(token: str) -> None:
    """The socket folders this run's workers left (this user's, marked with `token`)."""
    for root in {tempfile.gettempdir(), "/tmp"}:
        for folder in Path(root).glob(f"{_FOLDER_PREFIX}*"):
            with contextlib.suppress(OSError, UnicodeDecodeError):
                owner = folder / _OWNER
                if folder.lstat().st_uid == os.getuid() and owner.read_text("ascii") == token:
                    shutil.rmtree(folder, ignore_errors=True)


def _docker_socket(env: Mapping[str, str]) -> str | None:
    host = env.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        return None  # a remote engine: the next run's janitor removes what is left
    path = host.removeprefix("unix://")
    return path if os.path.exists(path) else None


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=10)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self.socket_path)


def _remove_containers(path: str, token: str) -> None:
    filters = urllib.parse.quote(json.dumps({"label": [f"{proc.RUN_TOKEN_LABEL}={token}"]}))
    conn = _UnixHTTP(path)
    try:
        conn.request("GET", f"/containers/json?all=1&filters={filters}")
        listed = json.loads(conn.getresponse().read() or b"[]")
        for container in listed if isinstance(listed, list) else []:
            conn.request("DELETE", f"/containers/{container['Id']}?force=1")
            conn.getresponse().read()
    finally:
        conn.close()


def main(argv: list[str]) -> int:
    token, docker = argv[1], argv[2] if len(argv) > 2 else ""
    with contextlib.suppress(OSError):
        while sys.stdin.buffer.read(65536):  # only EOF matters: the runner is gone
            pass
    proctable.sweep(proc.RUN_TOKEN, token)
    _remove_worker_folders(token)
    if docker:
        with contextlib.suppress(OSError, ValueError, http.client.HTTPException):
            _remove_containers(docker, token)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
