"""Whose runs a bisection's answer rests on: stored runs that only other machines made
(a store merged from another host) are evidence until this machine's own runs say
otherwise, and never what the answer's boundary rests on alone.

A run of m-b said c5 good, this machine's own run c4 bad: read as one history, c4 is bad
below a good commit (a history that changed twice, or a flaky repro), and the search named
a commit after c5, which this machine never saw good. The machines may differ where the
commits do not, so such runs are set aside and the commit runs here, and the answer says
where the machines differed."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from repromatrix.bisect import Bisector
from repromatrix.bisect_plan import Setup
from repromatrix.bisect_terms import Evaluator, Outcome, RoundHook, Trace, run
from repromatrix.candidates import Candidate
from repromatrix.dag import Dag
from repromatrix.flaky import Consensus, Tally
from repromatrix.records import Result
from repromatrix.winner import machine_name


def made_elsewhere(records: Sequence[Result], machine: str, hostname: str) -> str:
    """The machines that made `records`, when none of them is this one ("" otherwise, and
    when no machine is this search's: a cluster's slots, `machine` "")."""
    here = {name for name in (machine, hostname and f"host {hostname}") if name}
    names = {machine_name(r) for r in records}
    if not machine or not records or names & here or "" in names:
        return ""
    return ", ".join(sorted(names))


@dataclass(kw_only=True)
class Elsewhere:
    """Candidates whose evidence is only other machines' stored runs, and what became of
    them: set aside where this machine's runs contradict them or the answer would rest on
    them, each then with a line saying what the machines said."""

    #: candidate → the machines whose stored runs alone it has.
    only: dict[int, str] = field(default_factory=dict)
    #: candidate → (those machines, what their runs said, the commit of ours whose runs
    #: contradict them or None: the search ran it, or the answer would rest on it).
    set_aside: dict[int, tuple[str, str, int | None]] = field(default_factory=dict)
    #: Those set aside because an answer rested on them (`boundary`).
    rested: set[int] = field(default_factory=set)

    def contradicted(self, dag: Dag, tallies: Mapping[int, Tally]) -> dict[int, int]:
        """Candidates of `only` whose runs this machine's own runs of other commits
        contradict: another machine's old commit above one of ours that is new, or its new
        commit below one of ours that is old (→ the nearest such commit of ours)."""
        own = {i: t.consensus for i, t in tallies.items() if i not in self.only}
        found: dict[int, int] = {}
        for i in self.only:
            said = tallies[i].consensus if i in tallies else Consensus.SKIP
            below = [o for o, v in own.items() if v is Consensus.NEW and dag.is_ancestor(o, i)]
            above = [o for o, v in own.items() if v is Consensus.OLD and dag.is_ancestor(i, o)]
            if said is Consensus.OLD and below:
                found[i] = max(below)
            if said is Consensus.NEW and above:
                found[i] = min(above)
        return found

    def boundary(self, dag: Dag, outcome: Outcome) -> list[int]:
        """Candidates of `only` the answer's boundary rests on: the first new commit and
        its parents."""
        if outcome.first_new is None:
            return []
        near = {outcome.first_new, *dag.parents[outcome.first_new]}
        if outcome.last_old is not None:
            near.add(outcome.last_old)
        found = sorted(i for i in near if i in self.only)
        self.rested.update(found)
        return found

    def set_apart(self, i: int, said: str, because: int | None = None) -> None:
        """Take `i`'s stored runs (which said `said`) as no evidence here any more."""
        self.set_aside[i] = (self.only.pop(i), said, because)

    def lines(
        self,
        evaluated: Mapping[int, Tallied],
        setup: Setup,
        candidates: Sequence[Candidate],
        label: Callable[[Candidate], str],
    ) -> list[str]:
        """One note per candidate set aside: what the other machines' runs said, and what
        this machine's say."""
        out = []
        for i, (machines, theirs, because) in sorted(self.set_aside.items()):
            e, name = evaluated.get(i), label(candidates[i])
            ours = said(e.tally, setup.old_term, setup.new_term) if e is not None else ""
            why = "the answer would have rested on it" if i in self.rested else "the search ran it"
            if because is not None and (mine := evaluated.get(because)) is not None:
                side = "older" if because < i else "newer"
                ours_there = said(mine.tally, setup.old_term, setup.new_term)
                why = f"{label(candidates[because])}, {side}, {ours_there} here"
                why += "" if ours else f"; {name} did not run here"
            here = f"; here it {ours}" if ours else ""
            differ = ": the machines differ" if ours and ours != theirs else ""
            out.append(
                f"note: {name} {theirs} in stored runs of {machines} alone, taken as no "
                f"evidence here ({why}){here}{differ}; the answer rests on this machine's runs"
            )
        return out


class Tallied(Protocol):
    @property
    def tally(self) -> Tally: ...


def search(
    bisector: Bisector,
    evaluate: Evaluator,
    set_aside: Callable[[int], None],
    elsewhere: Elsewhere,
    *,
    k: int | Callable[[], int] = 1,
    on_round: RoundHook | None = None,
) -> tuple[Outcome, Trace]:
    """`bisect_terms.run`, until the answer's boundary rests on none of `elsewhere.only`:
    those it would rest on are set aside (`set_aside`) and the search goes on, so they run
    here (rounds numbered on)."""
    trace = Trace()

    def numbered(number: int, points: Sequence[int]) -> None:
        if on_round is not None:
            on_round(len(trace.rounds) + number, points)

    while True:
        outcome, more = run(bisector, evaluate, k=k, on_round=numbered)
        trace.rounds += more.rounds
        near = elsewhere.boundary(bisector.dag, outcome)
        if not near:
            return outcome, trace
        for i in near:
            set_aside(i)


def said(tally: Tally, old_term: str, new_term: str) -> str:
    """A tally as a word for a note: "was good", "was bad", "was flaky", "could not test"."""
    match tally.consensus:
        case Consensus.OLD:
            return f"was {old_term}"
        case Consensus.NEW:
            return f"was {new_term}"
        case Consensus.FLAKY:
            return "was flaky"
        case _:
            return "could not be tested"


__all__ = ["Elsewhere", "made_elsewhere", "said", "search"]
