"""Lines for the user on standard error that more than one command writes."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from repromatrix.safetext import printable
from repromatrix.store import LoadProblem


def say(line: str) -> None:
    """One line to standard error. Paths in it are the user's text: a newline or an escape
    sequence in one (`--results $'x\\e[31m…'`) stays off the terminal."""
    print(printable(line), file=sys.stderr)


_PROBLEMS_SAID = 20


def warn_load_problems(problems: Sequence[LoadProblem]) -> None:
    """A warning per unreadable record, the first few only: a damaged file of 100,000
    lines must not bury the run's own lines (the report lists them all)."""
    for problem in problems[:_PROBLEMS_SAID]:
        print(f"repromatrix: warning: {problem}", file=sys.stderr)
    if len(problems) > _PROBLEMS_SAID:
        files = len({p.file for p in problems[_PROBLEMS_SAID:]})
        print(
            f"repromatrix: warning: … and {len(problems) - _PROBLEMS_SAID:,} more unreadable "
            f"record(s) in {files} file(s); the report's index.html lists them all",
            file=sys.stderr,
        )
