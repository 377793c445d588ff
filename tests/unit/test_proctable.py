"""What /proc says of process groups (`proctable`), with real processes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from repromatrix import proctable


def test_a_group_with_no_member_left_is_gone_without_reading_proc(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Asked after every command that ends (each git and pip of a bisection's evaluation):
    a group the kernel knows no member of is gone, said without reading every process of
    the machine in /proc (~2 ms of CPU each time)."""
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    ended = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    ended.wait()
    reads: list[int] = []
    real = proctable._processes

    def counted() -> Iterator[tuple[int, str, int, int, bytes]]:
        reads.append(1)
        return real()

    monkeypatch.setattr(proctable, "_processes", counted)
    try:
        assert not proctable.group_alive(ended.pid)
        assert reads == []
        assert proctable.group_alive(sleeper.pid)  # a live one is still read from /proc
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not proctable.group_alive(sleeper.pid)
