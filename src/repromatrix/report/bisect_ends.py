"""What a bisection says about ends that are not the ones given: the merge bases git bisect
tests first when the old end is on a branch the new end does not hold (and the doubt one
that could not be tested leaves), and the old end off the new end's first-parent line
under `--first-parent`."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from repromatrix.bisect import Consensus
from repromatrix.bisect_plan import Setup
from repromatrix.bisect_session import Evaluated
from repromatrix.candidates import Axis, Candidate
from repromatrix.revisions import SHORT


def ends_note(setup: Setup, axis: Axis) -> str:
    """The start line's word on the ends ("" when they are the ones given)."""
    first, last = axis.candidates[0].rev[:SHORT], axis.candidates[-1].rev[:SHORT]
    if axis.parted_from:
        bases = [c.rev[:SHORT] for c in axis.candidates[: axis.old_ends]]
        which = f"base {first}" if len(bases) == 1 else f"bases {', '.join(bases)}"
        return (
            f" ({first}..{last}: {setup.old} is on a branch {setup.new} does not hold; "
            f"from their merge {which}, as git bisect)"
        )
    if axis.off_line:
        return (
            f" ({first}..{last}: {setup.old} is off {setup.new}'s first-parent line; the "
            f"first-parent commits it does not reach, as git bisect --first-parent)"
        )
    if (first, last) != (setup.old[:SHORT], setup.new[:SHORT]):
        return f" ({first}..{last})"
    return ""


def bases_tested(
    setup: Setup,
    axis: Axis,
    evaluated: Mapping[int, Evaluated],
    label: Callable[[Candidate], str],
    word: Callable[[Setup, Evaluated], str],
) -> list[str]:
    """Which merge bases ran, and what they said (git bisect tests each one first)."""
    if not axis.parted_from:
        return []
    said = [
        f"{label(axis.candidates[i])} ({word(setup, evaluated[i]) if i in evaluated else 'no run'})"
        for i in range(axis.old_ends)
    ]
    flag = "--bad" if setup.find_fix else "--good"
    bases = "merge base" if len(said) == 1 else f"{len(said)} merge bases"
    return [
        f"note: {flag} {setup.old} is on a branch {setup.new} does not hold: their {bases}, "
        f"tested first as git bisect does: {', '.join(said)}"
    ]


def skipped_bases(
    setup: Setup,
    axis: Axis,
    evaluated: Mapping[int, Evaluated],
    label: Callable[[Candidate], str],
    answer: str,
) -> list[str]:
    """The doubt a skipped merge base leaves on the answer (git bisect: "The merge base ...
    must be skipped. So we cannot be sure the first bad commit is between ..."): said with
    the answer, as the answer holds only if the merge base is {old_term}."""
    skipped = [
        label(axis.candidates[i])
        for i in range(axis.old_ends if axis.parted_from else 0)
        if i in evaluated and evaluated[i].tally.consensus is Consensus.SKIP
    ]
    if not skipped:
        return []
    flag = "--bad" if setup.find_fix else "--good"
    which = "merge base" if len(skipped) == 1 else "merge bases"
    return [
        f"  not sure: the {which} {', '.join(skipped)} of {flag} {setup.old} and {setup.new} "
        f"could not be tested (skipped; git bisect goes on the same way), so the {answer} "
        f"may lie below it; this is the {answer} above it. To be sure, make it testable or "
        f"pass as {flag} a commit of {setup.new}'s own history"
    ]


def bad_merge_base(setup: Setup, base: str, flag: str, given: str, said: str) -> str:
    """git bisect: "The merge base X is bad. This means the bug has been fixed between X
    and [good]." (any of several merge bases)."""
    return (
        f"the merge base {base} of {flag} {given} and {setup.new} is not "
        f"{setup.old_term}: the repro says {said}; the change to {setup.old_term} came "
        f"between it and {given}, on a branch {setup.new} does not hold; pass as "
        f"{flag} a commit of {setup.new}'s own history"
    )


__all__ = ["bad_merge_base", "bases_tested", "ends_note", "skipped_bases"]
