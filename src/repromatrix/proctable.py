"""What /proc says of processes, and the kills that go by it: groups that still have a
living member, the processes below one in the tree, and those that carry a token.
Standard library only; Linux's /proc (elsewhere: signals to the group alone)."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator, Mapping


def _processes() -> Iterator[tuple[int, str, int, int, bytes]]:
    """(pid, state, process group, parent, start time) of every process /proc shows."""
    # Closed however the caller stops (`any()` stops at the first match): an iterator left
    # to the collector warns (ResourceWarning), and the tests make warnings errors.
    with os.scandir("/proc") as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            # The command name (field 2) may hold spaces and parentheses: split after the
            # last ')'.
            fields = stat.rsplit(b")", 1)[-1].split()
            if len(fields) > 19:
                yield (
                    int(entry.name),
                    fields[0].decode(),
                    int(fields[2]),
                    int(fields[1]),
                    fields[19],
                )


def group_alive(pgid: int) -> bool:
    """Whether any member of the group is alive; zombies do not count."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        # No member at all, zombie or not: asked after every command that ends (each git
        # and pip of an evaluation), where reading all of /proc cost ~2 ms of CPU.
        return False
    except PermissionError:
        pass
    if not os.path.isdir("/proc/self"):
        return True
    return any(group == pgid and state != "Z" for _, state, group, _, _ in _processes())


def _tree() -> dict[int, list[tuple[int, bytes]]]:
    """Parent → its living children, with their start times (empty without /proc)."""
    children: dict[int, list[tuple[int, bytes]]] = {}
    if os.path.isdir("/proc/self"):
        for child, state, _, parent, started in _processes():
            if state != "Z":
                children.setdefault(parent, []).append((child, started))
    return children


def children(pid: int) -> dict[int, bytes]:
    """The living children of `pid`, with their start times."""
    return dict(_tree().get(pid, ()))


def descendants(pid: int) -> dict[int, bytes]:
    """Every living process below `pid` in the process tree (its children, theirs...), with
    its start time: found by parent links, so also those that left its group and started
    with an environment of their own. Empty where there is no /proc."""
    children = _tree()
    found: dict[int, bytes] = {}
    todo = [pid]
    while todo:
        for child, started in children.get(todo.pop(), ()):
            if child not in found:
                found[child] = started
                todo.append(child)
    return found


def kill_all(processes: Mapping[int, bytes]) -> None:
    """SIGKILL each process of `descendants` that still runs, unless its pid now names
    another process (one started since: its start time differs)."""
    for pid, started in processes.items():
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[-1].split()
            if len(fields) > 19 and fields[19] == started:
                os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            continue


def sweep(var: str, token: str) -> int:
    """SIGKILL every process of this user whose environment holds `var=token`; how many.

    The environment a process was started with is inherited by its descendants, including
    those that left the process group (setsid, double fork): this finds them all.
    """
    needle = f"{var}={token}".encode()
    me = os.getpid()
    killed = 0
    for pid, state, _, _, _ in list(_processes()):
        if pid == me or state == "Z":
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
    return killed
