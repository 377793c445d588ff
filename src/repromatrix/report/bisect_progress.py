"""The lines a bisection prints as it goes: one before the first round, one per round."""

from __future__ import annotations

from collections.abc import Sequence

from repromatrix.bisect import Mode, Progress, Verdict
from repromatrix.bisect_evidence import Evaluated
from repromatrix.bisect_session import Start
from repromatrix.candidates import Candidate
from repromatrix.report.bisect import candidate_label, runs_text
from repromatrix.report.bisect_ends import ends_note
from repromatrix.report.metrics import guess_odds


def start_line(start: Start) -> str:
    """The line printed before the first round. "40 commits, 35 already evaluated" of 35
    runs of 8 commits read as 35 of the 40 commits known: the runs are named apart."""
    setup, axis = start.setup, start.axis
    if axis.commits:
        what = f"{len(axis.candidates)} commits"
        if axis.merges:
            merges = f"{axis.merges} merge{'s' if axis.merges > 1 else ''}"
            what += (
                f" ({merges} on the first-parent line: their branches are not searched)"
                if axis.first_parent
                else f" ({merges}: branches are followed, not linearised)"
            )
    else:
        what = f"{len(axis.candidates)} releases"
        # No source read: the releases are those the matrix file declares (`--matrix`'s).
        source = ", ".join(axis.listed_from) or f"{setup.matrix.path.name} only"
        # Sources that answered without the project ("index offers no release of pkg"):
        # the releases are still the declared ones, not the index's.
        none = f"no release of {setup.library.pypi}"
        if empty := [p for p in axis.problems if setup.library.pypi and p.endswith(none)]:
            source = f"{setup.matrix.path.name} only: {'; '.join(empty)}"
        what += f" (from {source})"
    ends = f"{setup.olds}..{setup.new}"
    if axis.commits and axis.candidates:
        # What the names resolved to in the mirror (`HEAD`, a branch: they move).
        ends += ends_note(setup, axis)
    return (
        f"bisect {setup.repro.name} [{setup.gpu}, {setup.base}] {setup.library.name} "
        f"{ends}: {what}, {start.stored} already evaluated"
        + (f" ({start.runs} stored runs)" if start.runs > start.stored else "")
        + ", "
        f"{start.k} point(s) per round; looking for the first {setup.new_term} one"
        + (f"; calibrated from the start: {start.because}" if start.because else "")
    )


def round_line(
    number: int,
    evaluated: Sequence[Evaluated],
    progress: Progress,
    candidates: Sequence[Candidate],
) -> str:
    """The line printed after each round."""
    notes = ", ".join(f"{candidate_label(e.candidate)} {_judged(e)}" for e in evaluated)
    if progress.mode is Mode.TRUSTING or progress.best is None:
        return f"round {number}: {notes}; {progress.left} candidate(s) left"
    # "most likely X (0.0%)" on a very flaky repro read as a contradiction: the least a
    # plausible pair of rates gives comes after how likely it is, as in the answer.
    odds = guess_odds(progress.confidence, progress.likely, 1)
    best = candidate_label(candidates[progress.best])
    if progress.size > 1 and progress.first is not None:  # the odds are the group's
        best = f"one of {progress.size}, {candidate_label(candidates[progress.first])} to {best}"
    return f"round {number}: {notes}; calibrated: most likely {best} ({odds})"


def _judged(e: Evaluated) -> str:
    """What the runs said, and how the search took a failure other than the followed one
    (a bare "regressed" read as the opposite of what the search did with it)."""
    said = runs_text(e)
    different = [r for r in e.runs if r.different]
    if not different:
        return said
    # Said of the runs that failed differently, by what the search did with each: a bad
    # commit whose one crash among its runs was skipped is not "within its limits".
    skipped = sum(1 for r in different if r.verdict is Verdict.SKIP)
    counted = len(different) - skipped
    if len(different) == len(e.runs) and not counted:
        return f"{said} (a different failure: skipped)"
    if len(different) == len(e.runs) and not skipped:
        return f"{said} (a different failure; the followed check was within its limits here)"
    parts = [f"{skipped} of them a different failure: skipped"] if skipped else []
    if counted:
        parts.append(f"{counted} of them a different failure, the followed check within limits")
    return f"{said} ({'; '.join(parts)})"
