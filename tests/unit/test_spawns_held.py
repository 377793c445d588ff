"""What `proc.spawns_held` says this process owns (what `orphans.end_orphans` spares):
real children, a live group and a detached one."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from repromatrix import proc


def test_a_live_group_and_a_detached_child_are_owned_and_a_finished_group_is_not() -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    group = proc.ProcessGroup(sleeper, cwd=None, env=None)
    done = proc.ProcessGroup([sys.executable, "-c", "pass"], cwd=None, env=None)
    done.wait(30)
    read, write = os.pipe()
    try:
        with proc.spawns_held() as before:
            assert group.proc.pid in before.pids
            assert group.token in before.tokens
            assert done.proc.pid not in before.pids
            assert done.token not in before.tokens
        # The detached child reads our pipe to its end: it ends once we close it.
        marker = "import sys; sys.stdin.read()  # detached"
        proc.spawn_detached([sys.executable, "-c", marker], stdin=read, env=os.environ)
        with proc.spawns_held() as after:
            (detached,) = after.pids - before.pids
        # Just spawned, the child may not have exec'd yet (its cmdline reads b"" or
        # ours): what it runs is asked until it shows, or the wait ends.
        cmdline = Path(f"/proc/{detached}/cmdline")
        deadline = time.monotonic() + 30
        while marker.encode() not in cmdline.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert marker.encode() in cmdline.read_bytes()
    finally:
        os.close(read)
        os.close(write)
        group.end()
    with proc.spawns_held() as owned:
        assert group.proc.pid not in owned.pids
        assert group.token not in owned.tokens
