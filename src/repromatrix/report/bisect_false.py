"""The verdicts a calibrated answer took for the repro's lies.

A calibrated bisect of a repro wrong 20% of the time named c25 at 99.8%, and its table
showed c18 "regressed … bad" below it (one false alarm) with nothing saying why: a table
that contradicts its own answer reads as a wrong answer (issue 10's complaint of the
trusting search). The answer weighs every run at the estimated rates; a commit whose runs
all said the other side's word was read as false, and the note names each, as the
report's sentence of the same runs does ("read as its false verdicts: …")."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from repromatrix.bisect import Consensus, Mode, Outcome, OutcomeKind
from repromatrix.bisect_evidence import Evaluated
from repromatrix.bisect_plan import Setup
from repromatrix.candidates import Axis, Candidate

#: How many commits the note names before it counts the rest.
SHOWN = 6


def read_as_false(
    setup: Setup,
    axis: Axis,
    outcome: Outcome,
    evaluated: Mapping[int, Evaluated],
    label: Callable[[Candidate], str],
) -> list[str]:
    """One note naming the candidates whose runs agree with each other and not with the
    side of the calibrated answer they lie on (new: the answer or below it in the DAG)."""
    o = outcome
    if o.mode is not Mode.CALIBRATED or o.kind is not OutcomeKind.FOUND or o.first_new is None:
        return []
    said = []
    for i, e in sorted(evaluated.items()):
        consensus = e.tally.consensus
        if i in o.elsewhere or consensus not in (Consensus.NEW, Consensus.OLD):
            continue  # another branch's change (noted apart), flaky (shown so) or a skip
        new = consensus is Consensus.NEW
        if new == axis.dag.is_ancestor(o.first_new, i):
            continue
        runs = e.tally.new if new else e.tally.old
        word = setup.new_term if new else setup.old_term
        said.append(f"{label(e.candidate)} ({f'{runs} ' if runs > 1 else ''}{word})")
    if not said:
        return []
    more = f", and {len(said) - SHOWN} more" if len(said) > SHOWN else ""
    return [
        f"note: {len(said)} verdict(s) read as the repro's false ones (the answer's side of "
        f"them says otherwise; the rates above allow them): {', '.join(said[:SHOWN])}{more}"
    ]
