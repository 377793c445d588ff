"""The plain progress reporter: one count per run_cells call."""

from __future__ import annotations

from rich.console import Console

from repromatrix.model import Status
from repromatrix.progress import PlainReporter
from repromatrix.records import Result


def result(status: Status) -> Result:
    return Result(key="k", cell_id="c", repro="r", base="host", gpu="cpu", status=status)


def test_the_plain_progress_counts_each_round_from_one() -> None:
    console = Console(record=True, width=200)
    reporter = PlainReporter(console)
    for total in (4, 2):  # two bisection rounds, two run_cells calls
        reporter.start(total)
        for _ in range(total):
            reporter.finished(result(Status.PASSED))
    text = console.export_text()
    assert "[4/4]" in text
    assert "[2/2]" in text
    assert "[5/" not in text
    assert "[6/" not in text


def test_the_start_line_under_repeat_says_one_cell_in_the_singular() -> None:
    """`run --repeat 3` of one cell said "running 3 runs of 1 cells"."""
    console = Console(record=True, width=200)
    reporter = PlainReporter(console)
    reporter.start(3, cells=1)
    reporter.start(8, cells=2)
    text = console.export_text()
    assert "running 3 runs of 1 cell\n" in text
    assert "running 8 runs of 2 cells\n" in text
