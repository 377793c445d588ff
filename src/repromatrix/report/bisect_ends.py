"""What a bisection says about ends that are not the ones given: the merge bases git bisect
tests first when the old end is on a branch the new end does not hold (and the doubt one
that could not be tested leaves), and the old end off the new end's first-parent line
under `--first-parent` (and the line's last old commit, which is none of the candidates),
the bottom of a shallow clone's history, below which the answer may lie, and a history
seen to change more than once, where the answer's parents no run saw need not be old."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from repromatrix.bisect import Consensus, Mode, Outcome, OutcomeKind, Verdict
from repromatrix.bisect_evidence import Evaluated
from repromatrix.bisect_plan import Setup
from repromatrix.candidates import Axis, Candidate
from repromatrix.revisions import SHORT
from repromatrix.winner import machine_name


def ends_note(setup: Setup, axis: Axis) -> str:
    """The start line's word on the ends ("" when they are the ones given)."""
    first, last = axis.candidates[0].rev[:SHORT], axis.candidates[-1].rev[:SHORT]
    if len(axis.olds_given) > 1:  # several old ends: each of them, not the first alone
        first = ", ".join(c.rev[:SHORT] for c in axis.candidates[: axis.old_ends])
    if axis.parted_from:
        bases = [c.rev[:SHORT] for c in axis.candidates[: axis.old_ends]]
        which = f"base {first}" if len(bases) == 1 else f"bases {', '.join(bases)}"
        return (
            f" ({first}..{last}: {setup.old} is on a branch {setup.new} does not hold; "
            f"from their merge {which}, as git bisect)"
        )
    if axis.off_line and len(axis.olds_given) > 1:
        return (
            f" ({first}..{last}: {setup.new}'s first-parent commits that none of "
            f"{setup.olds} reaches, as git bisect --first-parent; the line leaves the history "
            f"of {', '.join(axis.left)} below them, not at an end)"
        )
    if axis.off_line:
        return (
            f" ({first}..{last}: {setup.old} is off {setup.new}'s first-parent line; the "
            f"first-parent commits it does not reach, as git bisect --first-parent)"
        )
    given = ", ".join(o[:SHORT] for o in (setup.old, *setup.also_old))
    if (first, last) != (given, setup.new[:SHORT]):
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
    *,
    single: bool = True,
) -> list[str]:
    """The doubt a skipped merge base leaves on the answer (git bisect: "The merge base ...
    must be skipped. So we cannot be sure the first bad commit is between ..."): said with
    the answer, as the answer holds only if the merge base is {old_term}. `single`: the
    answer names one commit (else it is "one of" a list, which must not read as one)."""
    skipped = [
        label(axis.candidates[i])
        for i in range(axis.old_ends if axis.parted_from else 0)
        if i in evaluated and evaluated[i].tally.consensus is Consensus.SKIP
    ]
    if not skipped:
        return []
    flag = "--bad" if setup.find_fix else "--good"
    which, it = ("merge base", "it") if len(skipped) == 1 else ("merge bases", "them")
    here = (
        f"this is the {answer} above {it}"
        if single
        else f"above {it}, the {answer} is one of those"
    )
    return [
        f"  not sure: the {which} {', '.join(skipped)} of {flag} {setup.old} and {setup.new} "
        f"could not be tested (skipped; git bisect goes on the same way), so the {answer} "
        f"may lie below {it}; {here}. To be sure, make {it} testable or "
        f"pass as {flag} a commit of {setup.new}'s own history"
    ]


def of_answer(
    setup: Setup,
    axis: Axis,
    evaluated: Mapping[int, Evaluated],
    outcome: Outcome,
    label: Callable[[Candidate], str],
    answer: str,
) -> list[str]:
    """What ends other than the ones given say of the answer (its detail lines)."""
    single = outcome.kind is not OutcomeKind.AMBIGUOUS
    doubt = skipped_bases(setup, axis, evaluated, label, answer, single=single)
    changed = changed_lines(setup, axis, outcome, label, evaluated)
    return fork_point(setup, axis, outcome) + doubt + changed + machines_changed(evaluated, outcome)


def machines_changed(evaluated: Mapping[int, Evaluated], outcome: Outcome) -> list[str]:
    """Where the new commits below an old one ran on other machines than the answer: their
    runs (another machine's, stored) and the answer's may differ as machines, not commits."""
    if not outcome.changed or outcome.first_new is None:
        return []

    def machines(i: int) -> set[str]:
        e = evaluated.get(i)
        return {machine_name(r.result) for r in e.runs} if e is not None else set()

    theirs = set().union(*(machines(i) for i in outcome.changed)) - {""}
    ours = machines(outcome.first_new) - {""}
    if not theirs or not ours or theirs & ours:
        return []
    return [
        f"  those runs were made on {', '.join(sorted(theirs))}, the answer's on "
        f"{', '.join(sorted(ours))}: the machines may disagree rather than the history "
        'changing twice (the report\'s "machines disagree"); bisect there for theirs'
    ]


def changed_lines(
    setup: Setup,
    axis: Axis,
    outcome: Outcome,
    label: Callable[[Candidate], str],
    evaluated: Mapping[int, Evaluated],
) -> list[str]:
    """A trusting answer above new commits that an old one is above (`Outcome.changed`),
    each said twice: the history changed more than once, and the answer is one change."""
    below = outcome.changed
    if not below or outcome.first_new is None:
        return []
    what = "commit" if axis.commits else "release"
    shown = ", ".join(label(axis.candidates[i]) for i in below[:6])
    last = f" ({label(axis.candidates[outcome.last_old])})" if outcome.last_old else ""
    flag = "--good" if setup.find_fix else "--bad"
    twice = all((e := evaluated.get(i)) is not None and e.tally.informative > 1 for i in below)
    # Twice alike is what a deterministic repro says; a flaky one may lie twice running
    # (seen at K = 4, 25% false passes): the search trusts it, the line says it trusts.
    said = (
        "each said twice alike, taken as a deterministic repro's (--calibrate N if it may be flaky)"
        if twice
        else "said once: --max-runs allows no more"
    )
    return [
        f"  the behaviour changes more than once: {setup.new_term} at {shown}"
        f"{', …' if len(below) > 6 else ''}, older than a {setup.old_term} {what} tested "
        f"({said}); this is the first {setup.new_term} {what} "
        f"after the last {setup.old_term} one tested{last}, as git bisect names one; the "
        "earlier change: "
        f"bisect with {flag} {axis.candidates[below[0]].rev[:12]}"
    ]


def fork_point(setup: Setup, axis: Axis, outcome: Outcome) -> list[str]:
    """The last old commit of the first-parent line, when the answer is its first candidate
    and the old end is off the line (`Axis.off_line`): the answer's first parent, where the
    line leaves the old end's history. It is no candidate (the old end reaches it, so git
    bisect --first-parent takes it as old), and the node below the answer is the old end,
    which is not on the line: next to it, the answer read as if that end came just before."""
    first = outcome.first_new
    if not axis.off_line or outcome.kind is not OutcomeKind.FOUND or first != axis.old_ends:
        return []
    parent = axis.candidates[first].parents[:1]
    if not parent:
        return []
    flag = "--bad" if setup.find_fix else "--good"
    left = axis.left or (setup.old,)
    whose = " and ".join(f"{flag} {end}" for end in left)
    return [
        f"  last {setup.old_term} commit on the first-parent line: {parent[0]}, its first "
        f"parent, where the line leaves {whose}'s history ({flag} reaches it, so it counts "
        f"as {setup.old_term}, as git bisect --first-parent takes it; not run)"
    ]


def _term(setup: Setup) -> str:
    return "first fixed commit" if setup.find_fix else "first bad commit"


def cut_range(
    setup: Setup, axis: Axis, outcome: Outcome, label: Callable[[Candidate], str]
) -> str | None:
    """The answer when it is a commit a shallow clone holds without its parents (`Axis.cut`):
    git shows it as a root, so git bisect in that clone names it, but the change may have
    come in a commit below it that the clone does not hold. None for any other answer."""
    first = outcome.first_new
    if outcome.kind is not OutcomeKind.FOUND or first is None or first not in axis.cut:
        return None
    return (
        f"{_term(setup)} not known: {label(axis.candidates[first])} ({setup.new_term}) is the "
        f"{_term(setup)} in this shallow clone of {setup.library.name}, which holds none of "
        "its parents (its history is cut there): it is that commit or one below it"
    )


def cut_suspects(
    setup: Setup, axis: Axis, outcome: Outcome, label: Callable[[Candidate], str]
) -> list[str]:
    """For a "one of N" answer, the line that says a suspect's history is cut (a shallow
    clone): the answer may be a commit below it."""
    if outcome.kind is not OutcomeKind.AMBIGUOUS:
        return []
    cut = [label(axis.candidates[i]) for i in outcome.suspects if i in axis.cut]
    if not cut:
        return []
    return [
        f"  or a commit below {', '.join(cut)}: this shallow clone of {setup.library.name} "
        "holds none of its parents (its history is cut there)"
    ]


def cut_problem(setup: Setup) -> str:
    """Why an answer at a shallow clone's cut is no answer a script may act on (exit 6)."""
    name = setup.library.name
    return (
        f"no single {_term(setup)}: the history below it is not in this shallow clone of "
        f"{name}; fetch it whole (git fetch --unshallow where it comes from, or pass "
        f"--git-mirror {name}=PATH of a full clone) and run the same command again"
    )


def bad_merge_base(setup: Setup, base: str, flag: str, given: str, said: str) -> str:
    """git bisect: "The merge base X is bad. This means the bug has been fixed between X
    and [good]." (any of several merge bases)."""
    return (
        f"the merge base {base} of {flag} {given} and {setup.new} is not "
        f"{setup.old_term}: the repro says {said}; the change to {setup.old_term} came "
        f"between it and {given}, on a branch {setup.new} does not hold; pass as "
        f"{flag} a commit of {setup.new}'s own history"
    )


__all__ = [
    "bad_merge_base",
    "bases_tested",
    "cut_problem",
    "cut_range",
    "cut_suspects",
    "ends_note",
    "fork_point",
    "of_answer",
    "skipped_bases",
]


def changed_more_than_once(
    setup: Setup,
    axis: Axis,
    evaluated: Mapping[int, Evaluated],
    o: Outcome,
    label: Callable[[Candidate], str],
) -> list[str]:
    """Contradicting verdicts whose runs never disagreed anywhere: a deterministic repro
    over a history that broke, got fixed and broke again (each change a valid answer)
    reads like a flaky repro to the model, which then states rates it never saw."""
    s = setup
    if o.mode is not Mode.CALIBRATED or not o.contradicted or o.repeats < 2:
        return []
    if not o.ok and o.kind is not OutcomeKind.INCONCLUSIVE:
        # An end not what it was given as (ends swapped) says so; nothing is named here.
        return []
    said: dict[int, set[Verdict]] = {
        i: {r.verdict for r in e.runs} - {Verdict.SKIP} for i, e in evaluated.items()
    }
    if any(len(v) > 1 for v in said.values()):
        return []  # some commit's own runs disagreed: flakiness is real
    word = {Verdict.OLD: s.old_term, Verdict.NEW: s.new_term}
    seen = ", ".join(
        f"{label(axis.candidates[i])} {word[v]}"
        for i in o.contradicted[:6]
        for v in said.get(i, set())
    ) + (", …" if len(o.contradicted) > 6 else "")
    what = "commit" if axis.commits else "release"
    return [
        f"note: no {what}'s runs disagreed in {o.repeats} repeat(s), yet the verdicts flip "
        f"more than once along the {what}s ({seen}): more likely it changed more than once "
        f"(e.g. {s.new_term}, then {s.old_term}, then {s.new_term} again) than the repro is "
        f"flaky; the {what} named is one first {s.new_term} {what}, and the rates above are "
        "the model's, not disagreement seen"
    ]


def unrun_parents_lines(
    setup: Setup, axis: Axis, evaluated: Mapping[int, Evaluated], outcome: Outcome
) -> tuple[str, str] | None:
    """(the note, the exit-6 line) for an answer whose parents no run saw say the old
    behaviour (below the old end, or below an old commit: git bisect's rule takes them as
    old), in a history seen to change more than once, which need not follow that rule: a
    branch forked before the bug passes without any fix, and its first commit was named
    "first fixed commit" at 99.8% on its parent's assumed word."""
    if outcome.kind is not OutcomeKind.FOUND or outcome.first_new is None or not axis.commits:
        return None
    named = axis.candidates[outcome.first_new]
    index = {c.rev: i for i, c in enumerate(axis.candidates)}
    parents = named.parents[:1] if axis.first_parent else named.parents
    said = {p: evaluated.get(index.get(p, -1)) for p in parents}
    # A parent that ran new (c27 bad twice, below c29, with c28 between them good) is no
    # parent "no run saw", and to give it as the old end would call a regressed commit
    # good: the change it shows is older, and bisecting it means taking it as the new end.
    shown = [p for p, e in said.items() if e is not None and e.tally.new and not e.tally.old]
    if shown:
        return _parent_shows_it(setup, named.rev, shown)
    unseen = [p for p, e in said.items() if e is None or not e.tally.old]
    if not unseen:
        return None
    flag = "--bad" if setup.find_fix else "--good"
    shas = ", ".join(p[:SHORT] for p in unseen)
    note = (
        f"  its parent {shas} no run saw: git bisect takes {'it' if len(unseen) == 1 else 'them'} "
        f"as {setup.old_term} (below {flag} {setup.old} or a {setup.old_term} commit), which a "
        "history that changed more than once need not follow"
    )
    problem = (
        f"no single {_term(setup)}: {named.rev[:SHORT]} is one only if its parent {shas}, "
        f"which no run saw, is {setup.old_term}, and this history changed more than once (see "
        f"the note); bisect again with {flag} {unseen[0][:12]} to run it"
    )
    return note, problem


def _parent_shows_it(setup: Setup, named: str, shown: Sequence[str]) -> tuple[str, str]:
    """(note, exit-6 line) for an answer some of whose parents ran new themselves."""
    flag = "--good" if setup.find_fix else "--bad"
    shas = ", ".join(p[:SHORT] for p in shown)
    note = (
        f"  its parent {shas} ran {setup.new_term} too: {named[:SHORT]} is a first "
        f"{setup.new_term} commit only where a {setup.old_term} commit above that parent "
        "stands for it, as git bisect takes one, which a history that changed more than "
        "once need not follow"
    )
    problem = (
        f"no single {_term(setup)}: {named[:SHORT]}'s parent {shas} ran {setup.new_term} "
        f"too, and this history changed more than once (see the note); bisect again with "
        f"{flag} {shown[0][:12]} to find where that parent's side changed"
    )
    return note, problem


def other_way_round(
    setup: Setup,
    axis: Axis,
    evaluated: Mapping[int, Evaluated],
    end: int,
    said: Callable[[Evaluated], str],
    hint: str,
) -> str:
    """The way out (`hint`) of an end that is not what it was given as, when the ends may
    be the other way round: if the other end's runs all said the other side too, that
    they are, and the command that searches that way, instead of `hint` (a regression
    fixed between the ends, bisected without --find-fix, was told only "pick an older
    --good", which the first release has none of); if the other end's runs said neither
    (an error), `hint` and that command as the other way out. `hint` alone for ends
    other than the given ones (merge bases, an end off the first-parent line)."""
    if axis.parted_from or axis.off_line or axis.old_ends != 1 or len(axis.candidates) < 2:
        return hint
    what = "commit" if axis.commits else "release"
    if setup.find_fix:
        command = f"without --find-fix, with --good {setup.old} --bad {setup.new}"
        goal, change = f"find the {what} that broke it", "the regression came between them"
    else:
        command = f"with --find-fix --bad {setup.old} --good {setup.new}"
        goal, change = f"find the {what} that fixed it", "the regression was fixed between them"
    old = end < axis.old_ends
    other = len(axis.candidates) - 1 if old else 0
    e = evaluated.get(other)
    t = e.tally if e is not None else None
    if e is None or t is None or not t.informative:
        return f"{hint}; or, if {change}, {goal} {command}"
    if (t.new if old else t.old) or not (t.old if old else t.new):
        return hint  # the other end is what it was given as
    flag = "--good" if setup.find_fix == old else "--bad"
    given, term = (setup.new, setup.new_term) if old else (setup.old, setup.old_term)
    return (
        f"and {flag} {given} ({e.candidate.label}) is not {term} either: {said(e)}: the "
        f"ends are the other way round: to {goal}, run the same command {command}"
    )
