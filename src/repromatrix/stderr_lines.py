"""Lines for the user on standard error that more than one command writes."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from repromatrix.errors import ResultsError
from repromatrix.load_problems import rest_said
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
        print(
            f"repromatrix: warning: … and {rest_said(problems[_PROBLEMS_SAID:])}; the "
            "report's index.html lists them all",
            file=sys.stderr,
        )


def left_out_error(problems: Sequence[LoadProblem], command: str) -> ResultsError | None:
    """The error (exit 3) `command` ("report", "run") ends with, its work done, when
    recorded results were left out of what it read: a CI job must not pass on a report
    short of a result. None when none was."""
    left = [p for p in problems if p.left_out]
    if not left:
        return None
    first = left[0]
    where = f"{first.file}:{first.line}" if first.line else first.file
    cost = "leaves {} out" if command == "report" else "could not reuse {}"
    if len(left) == 1:
        said = f"1 recorded result could not be read ({where}); the {command} " + cost.format("it")
        return ResultsError(f"{said}: do what the warning above says, then {command} again")
    said = f"{len(left):,} recorded results could not be read (the first: {where}); the "
    return ResultsError(
        f"{said}{command} {cost.format('them')}: do what the warnings above say, then "
        f"{command} again"
    )
