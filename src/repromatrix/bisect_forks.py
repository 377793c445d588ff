"""A --find-fix answer on a branch forked below the --bad end: its parent, run.

git bisect takes every ancestor of the old end as old (broken) without a run. But a
regression begins somewhere, and a branch forked before it passes with no fix: `git bisect
run` named s1, the first commit of a branch forked at m1 before m3 broke it, "the first
fixed commit", where m8 on the main line fixed it (and calibrated, at 99.8%). Only when an
answer lands there is its parent run (a stable repro pays nothing more elsewhere): said
broken, the answer stands on a run, not an assumption; said fixed, the branch never had
the regression, so its commits say nothing of the fix: they leave the search, which goes
on over the rest with every run kept.
"""

from __future__ import annotations

import dataclasses

from repromatrix.bisect_aliases import LazyCells
from repromatrix.bisect_evidence import Evaluated, Interrupted, Run, failure_of, rejudged, stored
from repromatrix.bisect_plan import BisectRequest, Setup, base_of
from repromatrix.bisect_terms import Outcome, OutcomeKind
from repromatrix.candidates import Axis, ForkCheck, ancestry, candidate
from repromatrix.dag import bits
from repromatrix.errors import BisectError
from repromatrix.flaky import Tally, Verdict
from repromatrix.mirrors import Mirrors
from repromatrix.session import Session


def parents_below(setup: Setup, axis: Axis, outcome: Outcome) -> list[str]:
    """A --find-fix answer's parents below the --bad end (outside the search)."""
    first = outcome.first_new
    if not setup.find_fix or axis.first_parent or not axis.commits or first is None:
        return []
    if outcome.kind is not OutcomeKind.FOUND:
        return []
    # A branch left out (its fork point ran the new term) is off the search, not below
    # the --bad end: a merge of it is no answer on an assumed word (`bisect_merge`).
    outside = {c.rev for c in axis.candidates} | {sha for f in axis.forks for sha in f.dropped}
    return [p for p in axis.candidates[first].parents if p not in outside]


def fork_below(setup: Setup, axis: Axis, outcome: Outcome) -> str | None:
    """The answer's parent below the --bad end to run, if any (none in a shallow clone's
    cut, nor after one of them said nothing: git's word stands, the note says on what)."""
    below = parents_below(setup, axis, outcome)
    if not below or outcome.first_new in axis.cut:
        return None
    if any(f.sha in below and f.word != setup.old_term for f in axis.forks):
        return None
    checked = {f.sha for f in axis.forks}
    return next((p for p in below if p not in checked), None)


def assumed(setup: Setup, axis: Axis, outcome: Outcome) -> bool:
    """Whether the answer rests on a parent below the --bad end that no run said is old."""
    said = {f.sha for f in axis.forks if f.word == setup.old_term}
    return any(p not in said for p in parents_below(setup, axis, outcome))


def word_of(setup: Setup, tally: Tally) -> str:
    """What a fork point's runs say, by their majority ("" when tied or none said)."""
    if tally.old > tally.new:
        return setup.old_term
    if tally.new > tally.old:
        return setup.new_term
    return ""


def named_of(axis: Axis, outcome: Outcome) -> str:
    """The commit an answer named ("" for none)."""
    return axis.candidates[outcome.first_new].rev if outcome.first_new is not None else ""


def checked(setup: Setup, axis: Axis, named: str, sha: str, tally: Tally, fresh: int) -> Axis:
    """The axis with `sha`'s runs noted, and, where it said the new term, without the
    branch forked there: the candidates with `sha` as a parent and their descendants that
    no old end reaches (the new end stays: it is the search's). `named`: the branch's
    commit the search named (`named_of`)."""
    word = word_of(setup, tally)
    check = ForkCheck(sha=sha, word=word, runs=tally.runs, fresh=fresh, named=named)
    if word != setup.new_term:
        return dataclasses.replace(axis, forks=(*axis.forks, check))
    dag, n = axis.dag, len(axis.candidates)
    kept = 0
    for end in range(axis.old_ends):
        kept |= dag.descendants(end)
    drop = 0
    for i, c in enumerate(axis.candidates):
        if sha in c.parents:
            drop |= dag.descendants(i)
    drop &= ~kept & ~(1 << (n - 1))
    gone = set(bits(drop))
    commits = [c for i, c in enumerate(axis.candidates) if i not in gone]
    at = {c.rev: i for i, c in enumerate(commits)}
    check = dataclasses.replace(check, dropped=tuple(axis.candidates[i].rev for i in sorted(gone)))
    return dataclasses.replace(
        axis,
        candidates=tuple(commits),
        dag=ancestry(commits, axis.old_ends, first_parent=False),
        cut=tuple(at[axis.candidates[i].rev] for i in axis.cut if i not in gone),
        forks=(*axis.forks, check),
    )


def enough(tally: Tally, *, want: int, trusting: bool) -> bool:
    """Whether a fork point's runs say what it is: `want` with a verdict (or 2 more that
    said nothing; trusting, none more, as a trusting search takes an end's one run that
    could not test: an untestable fork point ran 3 times, where README says once), and
    trusting, a second where the first said the new term."""
    contrary = trusting and tally.new > tally.old and tally.runs < 2
    tries = want if trusting else want + 2
    return (tally.informative >= want or tally.runs >= tries) and not contrary


def run_fork(
    request: BisectRequest,
    setup: Setup,
    session: Session,
    mirrors: Mirrors,
    sha: str,
    *,
    run_id: str,
    reference: str,
    want: int,
    trusting: bool,
) -> tuple[Tally, int, Evaluated]:
    """Runs of `sha`, the answer's parent below the --bad end: its stored ones, then up to
    `want` with a verdict (an end's count: one trusting, and there a second where the first
    says the new term, as for a contrary end); their tally, how many were made, the entry."""
    repo = mirrors.repo(setup.library.name, setup.library.git or "")
    fork = candidate(repo.commit(sha))
    cells = LazyCells(setup, [fork])
    machine = (session.host.machine.id, session.host.hostname)
    held = {} if request.rerun else stored(
        [fork], cells, session.history(), {}, request.retry_errors, base_of(session),
        timeout_s=session.config.timeout_s, setup=setup, machine=machine,
    )  # fmt: skip
    entry = held.get(0) or Evaluated(index=-1, candidate=fork)
    entry.runs = [rejudged(setup, r, reference) for r in entry.runs]
    fresh, most = 0, request.policy(0).max_runs
    while entry.tally.runs < most and not enough(entry.tally, want=want, trusting=trusting):
        summary = session.run_cells([cells[0]], rerun=True, run_id=run_id, repeat=1)
        if summary.interrupted:
            raise Interrupted
        if summary.lost is not None:
            raise summary.lost_error()
        got = [r for r in summary.results if r.status.is_final]
        if not got:
            raise BisectError(f"no result came back for {cells[0].id}; rerun to continue")
        run = Run(result=got[0], verdict=Verdict.SKIP, reused=False)
        entry.runs.append(rejudged(setup, run, reference))
        fresh += 1
    return entry.tally, fresh, entry


def stored_forks(
    request: BisectRequest,
    setup: Setup,
    session: Session,
    mirrors: Mirrors,
    axis: Axis,
    run_id: str,
) -> tuple[Axis, list[Evaluated]]:
    """The axis without the branches whose fork points below the --bad end the store
    already says never had the regression (their runs said the new term, as many as
    `run_fork` wants), and those fork points' entries. A second identical --find-fix
    started from every stored run, the left-out branch's among them, never looked at its
    fork point's: it read the history as changing twice, ran 4 commits again and named
    the answer with a note to bisect again, where git bisect replaying a log repeats it.
    A fork point the store says nothing decisive of is left to the search (`fork_below`)."""
    if request.rerun or not setup.find_fix or axis.first_parent or not axis.commits:
        return axis, []
    inside = {c.rev for c in axis.candidates}
    points = list(
        dict.fromkeys(
            p
            for i, c in enumerate(axis.candidates)
            if i >= axis.old_ends and i not in axis.cut
            for p in c.parents
            if p not in inside
        )
    )
    history = session.history()
    # Only those a record of this repro was made at (`may_hold`): one `git log` each,
    # and a history of many merged branches has a fork point for each.
    where, lib = (setup.repro.name, setup.gpu, setup.base), setup.library.name
    made = {
        r.commits.get(lib)
        for rs in history.values()
        for r in rs
        if (r.repro, r.gpu, r.base) == where
    }
    points = points if None in made else [p for p in points if p in made]
    if not points:
        return axis, []
    repo = mirrors.repo(setup.library.name, setup.library.git or "")
    bad = axis.candidates[0 if setup.bad_end_is_old else -1]
    looked = [bad, *(candidate(repo.commit(sha)) for sha in points)]
    held = stored(
        looked, LazyCells(setup, looked), history, {}, request.retry_errors,
        base_of(session), timeout_s=session.config.timeout_s, setup=setup,
        machine=(session.host.machine.id, session.host.hostname), this_run=(run_id, False),
    )  # fmt: skip
    reference = failure_of(held.get(0))
    trusting = not (request.calibrate or setup.repro.calibrate)
    want = 1 if trusting or 0 not in held else max(1, len(held[0].runs))
    entries: list[Evaluated] = []
    whole = axis.candidates
    for j, sha in enumerate(points, start=1):
        entry = held.get(j)
        # The branch's commits, never an old end: a --bad end forked from its fork point
        # too (the branch left its parent) was named in the note as the commit "no fix".
        children = [
            c.rev for i, c in enumerate(axis.candidates) if i >= axis.old_ends and sha in c.parents
        ]
        if entry is None or not children:  # none stored, or its branch already left out
            continue
        entry.runs = [rejudged(setup, r, reference) for r in entry.runs]
        tally = entry.tally
        if word_of(setup, tally) != setup.new_term or not enough(
            tally, want=want, trusting=trusting
        ):
            continue
        axis = checked(setup, axis, children[0], sha, tally, 0)
        entries.append(entry)
    # The left-out branches' stored runs count as they did when their fork points ran
    # (the confidence line said 9 runs, then 6 for the same command again).
    gone = {sha for f in axis.forks for sha in f.dropped}
    left = [c for c in whole if c.rev in gone]
    kept = stored(
        left, LazyCells(setup, left), history, {}, request.retry_errors,
        base_of(session), timeout_s=session.config.timeout_s, setup=setup,
        machine=(session.host.machine.id, session.host.hostname), this_run=(run_id, False),
    ) if left else {}  # fmt: skip
    for entry in kept.values():
        entry.runs = [rejudged(setup, r, reference) for r in entry.runs]
    return axis, [*entries, *kept.values()]
