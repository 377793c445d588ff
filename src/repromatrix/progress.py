"""Progress for `repromatrix run`: a rich bar with ETA on a terminal, plain lines elsewhere;
the `Reporter` protocol the scheduler reports to, and a silent one (tests, library use).

Reasons and ids carry text a repro wrote: it goes through `safetext.one_line`, so no escape
sequence (colours, OSC 8 links, OSC 52 clipboard writes, title changes) reaches the
terminal, and no newline breaks the one-line-per-cell output.
"""

from __future__ import annotations

import sys
import threading
from typing import Protocol

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from repromatrix.executors.base import Slot
from repromatrix.model import Cell, Status
from repromatrix.records import Result
from repromatrix.safetext import one_line


class Reporter(Protocol):
    """Progress sink (rich in the CLI, a list in tests)."""

    def start(self, total: int, cells: int = 0) -> None: ...
    def started(self, cell: Cell, slot: Slot) -> None: ...
    def finished(self, result: Result) -> None: ...
    def note(self, text: str) -> None: ...
    def stop(self) -> None: ...


class SilentReporter:
    def start(self, total: int, cells: int = 0) -> None:
        pass

    def started(self, cell: Cell, slot: Slot) -> None:
        pass

    def finished(self, result: Result) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def stop(self) -> None:
        pass


_STYLE = {
    Status.PASSED: "green",
    Status.REGRESSED: "bold red",
    Status.UNTESTABLE: "yellow",
    Status.ERROR: "bold magenta",
    Status.TIMEOUT: "magenta",
    Status.NOT_RUN: "dim",
}


def result_line(result: Result) -> Text:
    line = Text()
    line.append(f"{result.status.symbol} {result.status.value:<10}", style=_STYLE[result.status])
    line.append(f" {one_line(result.cell_id, 200)}  ")
    line.append(f"{result.duration_s:6.1f}s  ", style="dim")
    line.append(one_line(result.reason, 160))
    return line


class RichReporter:
    """Bar with ETA; one line per finished cell printed above it."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self.task = self.progress.add_task("cells", total=0)
        self.lock = threading.Lock()
        self.running: dict[str, str] = {}

    def start(self, total: int, cells: int = 0) -> None:
        # One count per run_cells call: a bisection calls it once a round, and carrying
        # the last round's count over showed "5/4".
        self.progress.reset(self.task, total=total)
        self.progress.start()

    def started(self, cell: Cell, slot: Slot) -> None:
        with self.lock:
            self.running[slot.name] = cell.id
            # The bar's description is rich markup: an id holding "[/]" must stay text.
            described = escape(f"{slot.name}: {one_line(cell.id, 80)}")
            self.progress.update(self.task, description=described)

    def finished(self, result: Result) -> None:
        with self.lock:
            self.progress.console.print(result_line(result))
            self.progress.advance(self.task)

    def note(self, text: str) -> None:
        with self.lock:
            self.progress.console.print(Text(f"… {one_line(text, 400)}", style="dim"))

    def stop(self) -> None:
        self.progress.stop()


class PlainReporter:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.total = 0
        self.done = 0
        self.lock = threading.Lock()

    def start(self, total: int, cells: int = 0) -> None:
        with self.lock:  # one count per run_cells call (a bisection makes one a round)
            self.total = total
            self.done = 0
        # Under --repeat the count is of runs: "running 8 cell(s)" of a matrix of 2 cells.
        of = f"{cells} cell" if cells == 1 else f"{cells} cells"  # "3 runs of 1 cells" was said
        runs = f"{total} runs of {of}" if cells not in (0, total) else f"{total} cell(s)"
        self.console.print(f"running {runs}")

    def started(self, cell: Cell, slot: Slot) -> None:
        pass

    def finished(self, result: Result) -> None:
        with self.lock:
            self.done += 1
            line = Text(f"[{self.done}/{self.total}] ")
            line.append_text(result_line(result))
            self.console.print(line)

    def note(self, text: str) -> None:
        with self.lock:
            self.console.print(Text(f"… {one_line(text, 400)}"))

    def stop(self) -> None:
        pass


def make_reporter(*, plain: bool) -> RichReporter | PlainReporter:
    console = Console(file=sys.stderr, highlight=False, soft_wrap=True)
    if console.width < 1:  # COLUMNS=0 (no size said): rich drew every line into nothing
        console = Console(file=sys.stderr, highlight=False, soft_wrap=True, width=80)
    if plain or not console.is_terminal:
        return PlainReporter(console)
    return RichReporter(console)
