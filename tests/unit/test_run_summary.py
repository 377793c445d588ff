"""The line `run` ends with: what it ran, reused and could not run here."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from repromatrix.commands import _print_summary
from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.scheduler import RunSummary


def _record(key: str, status: Status) -> Result:
    return Result(
        key=key,
        cell_id=f"r[cpu,host,k={key}]",
        repro="r",
        base="host",
        gpu="cpu",
        status=status,
        reason="its node was lost, and no other node of its type is left"
        if status is Status.NOT_RUN
        else status.value,
        finished="2026-01-01T00:00:00+00:00",
    )


def test_a_cell_noted_not_run_during_the_run_counts_as_not_run_here(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A Ray cell whose node was lost with none of its type left is noted "not run here"
    by the run itself; the summary read "1 passed, 1 not_run, 0 reused, 0 not run here"."""
    summary = RunSummary(
        run_id="r1",
        results=[_record("a", Status.PASSED), _record("b", Status.NOT_RUN)],
        not_run=2,
    )
    session = SimpleNamespace(store=SimpleNamespace(path=Path("results")))
    _print_summary(summary, session)  # type: ignore[arg-type]
    line = capsys.readouterr().err.splitlines()[0]
    assert line == "repromatrix: run r1: 1 passed, 0 reused, 3 not run here; results in results"
