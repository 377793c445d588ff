"""What the answer's line says of a merge commit (which of its parents showed the change),
or of a root commit (it has none).

A merge whose parents all lack the change is the answer when the combination of the
merged branches shows it. With --find-fix, a merge can also be the first fixed commit of
the --bad end's line because what it merged never had the regression (a branch whose fork
point ran fixed, left out of the search: `bisect_forks`); that parent ran fixed or was left
out on its fork point's word, never "bad, as an ancestor", which it is not; the note under
such an answer says what that parent's runs said (`fix_below_bad_end`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from repromatrix.bisect import Consensus, Outcome, OutcomeKind
from repromatrix.bisect_evidence import Evaluated
from repromatrix.bisect_plan import Setup
from repromatrix.candidates import Axis, ForkCheck
from repromatrix.report.bisect_failures import verdict_word
from repromatrix.revisions import SHORT


def merge_note(
    setup: Setup, axis: Axis, evaluated: Mapping[int, Evaluated], index: int
) -> list[str]:
    """The line under an answer that is a merge commit ([] for any other commit)."""
    c = axis.candidates[index]
    if not c.is_merge:
        return _root_note(setup, axis, index)
    if axis.first_parent:
        # Its merged branch was never a candidate: what the merge brought is the
        # change, whether it came from the branch or from combining the two.
        merged = ", ".join(sha[:10] for sha in c.parents[1:])
        return [
            f"  a merge commit on the first-parent line: the change came with what it "
            f"merged ({merged}, not searched under --first-parent); bisect without "
            "--first-parent to find the commit on that branch"
        ]
    known = {cand.rev: i for i, cand in enumerate(axis.candidates)}
    left = {sha for f in axis.forks for sha in f.dropped}
    # Parents below the --bad end that ran (`bisect_forks`): said as they ran, never "bad,
    # as an ancestor" (a criss-cross merge's parent below --bad ran good twice, and was).
    ran = {f.sha: f.word for f in axis.forks if f.word and f.sha not in known}
    parts: list[str] = []
    brought: list[str] = []
    shown: list[str] = []
    unjudged: list[str] = []
    for sha in c.parents:
        if sha in left or ran.get(sha) == setup.new_term:
            brought.append(f"{sha[:10]} ({setup.new_term})")
            continue
        e = evaluated.get(known[sha]) if sha in known else None
        said = verdict_word(setup, e) if e else ran.get(sha, f"{setup.old_term}, as an ancestor")
        parts.append(f"{sha[:10]} ({said})")
        if e is not None and e.tally.new and not e.tally.old:
            shown.append(sha[:10])
        elif (
            e is not None
            and e.tally.consensus is not Consensus.OLD
            and not _below_old(axis, evaluated, known[sha])
        ):
            unjudged.append(sha[:10])
    if brought:
        return [
            f"  a merge commit: it brought {_joined(brought)}, of a branch that never had the "
            f"regression (see the note), into {_joined(parts)}"
        ]
    if shown:
        # A history that changed more than once: a parent ran new itself (see the notes).
        return [f"  a merge commit: its parent {_joined(shown)} shows it too ({_joined(parts)})"]
    # An octopus merge (git merge a b c) has more than two parents.
    none = "neither parent" if len(parts) == 2 else f"none of its {len(parts)} parents"
    if unjudged:
        # A parent that could not be tested (a merge base git skips and goes on past) may
        # hold the change itself: the answer is git's, the combination only a guess.
        it = "it" if len(unjudged) == 1 else "them"
        return [
            f"  a merge commit: {none} was seen to show it ({_joined(parts)}), but "
            f"{_joined(unjudged)} gave no single verdict: the change may have come with {it}, "
            "not from the combination of the merged branches"
        ]
    return [
        f"  a merge commit: {none} shows it ({_joined(parts)}); the "
        "combination of the merged branches does"
    ]


def _below_old(axis: Axis, evaluated: Mapping[int, Evaluated], index: int) -> bool:
    """Whether a commit is an ancestor of one that ran old: git takes it as old (a skipped
    commit of a branch merged into a good one), whatever its own runs said."""
    return any(
        j != index and e.tally.consensus is Consensus.OLD and axis.dag.is_ancestor(index, j)
        for j, e in evaluated.items()
        if 0 <= j < len(axis.candidates)
    )


def _joined(parts: Sequence[str]) -> str:
    return ", ".join(parts)


def _root_note(setup: Setup, axis: Axis, index: int) -> list[str]:
    """A root commit named (a history merged in with --allow-unrelated-histories, the
    old end on another root's): git names it, as bad with no parent, but no change of that
    history brought the change: it showed it at its first commit. (A shallow clone's
    cut, which looks like a root, is `bisect_ends.cut_range`'s; releases have no parents.)"""
    if not axis.commits or axis.candidates[index].parents or index in axis.cut:
        return []
    flag = "--bad" if setup.find_fix else "--good"
    return [
        f"  a root commit: it has no parent, and {flag} {setup.olds} lies on another root's "
        f"history; the history it begins was {setup.new_term} at its very first commit, so no "
        "one commit of it brought the change: the two histories differ there"
    ]


def fix_below_bad_end(setup: Setup, axis: Axis, outcome: Outcome) -> list[str]:
    """A first fixed commit whose parent lies below the --bad end, outside the search: git
    bisect takes that parent as bad without a run. But a regression begins somewhere, and a
    branch forked before it passes with no fix: s1, first of a branch forked at m1 before
    m3 broke it, was named "first fixed commit" at exit 0, where m8 on the main line fixed
    it. That parent is run (`bisect_forks`): the note says what it said, a branch it left
    out, or, where it could not say, on what word the answer rests."""
    lines = [_left_out(setup, f) for f in axis.forks if f.dropped]
    first = outcome.first_new
    if not setup.find_fix or axis.first_parent or not axis.commits or first is None:
        return lines
    if outcome.kind is not OutcomeKind.FOUND:
        return lines
    named = axis.candidates[first]
    inside = {c.rev for c in axis.candidates} | {sha for f in axis.forks for sha in f.dropped}
    below = [p for p in named.parents if p not in inside]  # left out: not below --bad
    if not below:
        return lines
    shas = ", ".join(p[:SHORT] for p in below)
    ran = {f.sha: f for f in axis.forks}
    if all(p in ran and ran[p].word == setup.old_term for p in below):
        runs = sum(ran[p].runs for p in below)
        return [
            *lines,
            f"note: its parent {shas} lies below --bad {setup.old}, outside the search: it ran "
            f"{setup.old_term} ({runs} run(s)), as git bisect takes it without a run: the branch "
            f"had the regression, and {named.rev[:SHORT]} fixed it there",
        ]
    if fine := [p for p in below if p in ran and ran[p].word == setup.new_term]:
        # It ran new, yet no branch left: its children lead to the --bad end (a criss-cross
        # merge of it). It was "said neither", and the way out was to run it.
        runs = sum(ran[p].runs for p in fine)
        return [
            *lines,
            f"note: its parent {', '.join(p[:SHORT] for p in fine)} lies below --bad "
            f"{setup.old}, outside the search: it ran {setup.new_term} ({runs} run(s)), not "
            f"{setup.old_term} as git bisect takes it without a run: it never had the "
            f"regression, which began between it and --bad {setup.old}; "
            f"{named.rev[:SHORT]} merged it back into that line",
        ]
    said = [p for p in below if p in ran]
    tried = f" (run, it said neither: {', '.join(p[:SHORT] for p in said)})" if said else ""
    # One that ran and said nothing would say nothing as --bad either.
    way = f"bisect with --bad {below[0][:12]} to run it"
    if below[0] in said:
        way = f"make it testable and bisect with --bad {below[0][:12]}"
    return [
        *lines,
        f"note: its parent {shas} lies below --bad {setup.old}, outside the search{tried}: git "
        f"bisect takes {'it' if len(below) == 1 else 'them'} as {setup.old_term} without a "
        "run, and so does this answer; but a branch forked before the regression began passes "
        f"with no fix, its first commit read as the fix: {way} (if it is {setup.new_term}, "
        f"{named.rev[:SHORT]} fixed nothing, and "
        f"--first-parent finds the fix on {setup.new}'s line)",
    ]


def _left_out(setup: Setup, fork: ForkCheck) -> str:
    n = len(fork.dropped)
    return (
        f"note: {fork.named[:SHORT]} was no fix: its parent {fork.sha[:SHORT]}, below --bad "
        f"{setup.old} (git bisect takes it as {setup.old_term} without a run, and names "
        f"{fork.named[:SHORT]}), ran {setup.new_term} ({fork.runs} run(s)): the branch forked "
        f"there never had the regression, so its {n} commit(s) were left out of the search"
    )
