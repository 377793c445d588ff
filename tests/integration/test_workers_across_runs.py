"""A session's workers from one `run_cells` to the next, as a bisection's rounds use them:
real git commits (put on PYTHONPATH), real worker processes, the records' worker pids."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from history_repo import build, write_matrix

from repromatrix.config import load_matrix
from repromatrix.expand import expand
from repromatrix.model import Status
from repromatrix.options import ExecutorKind, SessionConfig
from repromatrix.records import Result
from repromatrix.session import Session

pytestmark = pytest.mark.integration


def _pid(result: Result) -> int:
    assert result.status is Status.PASSED, (result.reason, result.stderr_tail)
    return int(result.provenance["harness"]["worker"]["pid"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_next_run_starts_with_the_environment_its_slot_s_worker_serves(
    tmp_path: Path,
) -> None:
    """A bisection's round ran its cells in plan order, a commit never run (its expected
    time the timeout) before the repeat of the one just run: on one slot that stopped
    the repeated commit's worker for the new commit's, then started it again. The next
    run starts with the cell of the worker its slot kept (the same process), and every
    worker ends with the session."""
    history = build(tmp_path / "upstream", main=2, main_flags=lambda i: {}, importable=True)
    matrix = write_matrix(tmp_path, history)
    by_rev = {c.pins[0].rev: c for c in expand(load_matrix(matrix))}
    kept, new = by_rev["good"], by_rev["bad"]
    config = SessionConfig(
        results=tmp_path / "results",
        cache=tmp_path / "cache",
        executor=ExecutorKind.LOCAL,
        jobs=1,
    )
    session = Session(config, env=dict(os.environ))
    pids: list[int] = []
    try:
        (first,) = session.run_cells([kept], rerun=True, run_id="round-1").results
        pids.append(_pid(first))
        second = session.run_cells([new, kept], rerun=True, run_id="round-2").results
        assert [r.key for r in second] == [kept.key, new.key]  # its slot's worker's first
        pids += [_pid(r) for r in second]
        assert pids[1] == pids[0], "the kept environment's worker was started again"
        assert pids[2] != pids[0]
        assert not _alive(pids[0]), "a slot holds one worker: the new commit's replaced it"
    finally:
        session.close()
    assert not any(_alive(pid) for pid in pids)
