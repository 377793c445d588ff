"""What the answer's line says of a merge commit (which of its parents showed the change),
or of a root commit (it has none).

A merge whose parents all lack the change is the answer when the combination of the
merged branches shows it. With --find-fix, a merge can also be the first fixed commit of
the --bad end's line because what it merged never had the regression (a branch whose fork
point ran fixed, left out of the search: `bisect_forks`); that parent ran fixed or was left
out on its fork point's word, never "bad, as an ancestor", which it is not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from repromatrix.bisect import Consensus
from repromatrix.bisect_evidence import Evaluated
from repromatrix.bisect_plan import Setup
from repromatrix.candidates import Axis
from repromatrix.report.bisect_failures import verdict_word


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
    parts: list[str] = []
    brought: list[str] = []
    shown: list[str] = []
    unjudged: list[str] = []
    for sha in c.parents:
        if sha in left:
            brought.append(f"{sha[:10]} ({setup.new_term})")
            continue
        e = evaluated.get(known[sha]) if sha in known else None
        said = verdict_word(setup, e) if e else f"{setup.old_term}, as an ancestor"
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
