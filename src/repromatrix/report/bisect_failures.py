"""What a bisection says of failures other than the one it follows: candidates that failed
differently from the --bad end (syzkaller's bisections drift onto another crash; this one
follows the original and says where it met another), an answer that regressed without
saying which check failed, and what to do when such commits leave the answer "one of N"."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from repromatrix.bisect import Consensus, Outcome, OutcomeKind
from repromatrix.bisect_evidence import Evaluated
from repromatrix.bisect_plan import Setup
from repromatrix.candidates import Candidate
from repromatrix.model import Status
from repromatrix.safetext import printable
from repromatrix.splits import Split, SplitUnit

#: pip's words for an install that the interpreter's version excludes (Requires-Python).
_OTHER_PYTHON = "requires a different Python"

#: How the report names a candidate (its tag or short hash, or its release).
Label = Callable[[Candidate], str]


def different_failures(
    setup: Setup, evaluated: Mapping[int, Evaluated], reference: str, label: Label
) -> list[str]:
    """Each candidate that failed otherwise than the --bad end, and what it counted as."""
    different = [e for e in evaluated.values() if any(r.different for r in e.runs)]
    if not different:
        return []
    lines = [
        f"note: {len(different)} candidate(s) failed differently from the --bad end "
        f"({clip(reference, 60)}); the bisection follows the original failure "
        "(where its check was measured within limits, that counts; else untestable):"
    ]
    for e in sorted(different, key=lambda e: e.index):
        other = next(r.result.failure for r in e.runs if r.different)
        said = (
            ""
            if e.tally.consensus is Consensus.SKIP
            else f", {verdict_word(setup, e)} for the original"
        )
        lines.append(f"  {label(e.candidate)}: a different failure ({clip(other, 80)}){said}")
    return lines


def unknown_failure(
    o: Outcome,
    evaluated: Mapping[int, Evaluated],
    reference: str,
    label: Label,
    bad_end: int | None = None,
) -> list[str]:
    """The answer regressed without saying which check failed, where the --bad end
    did: it counts as the same failure (an unknown one proves nothing either way), but
    if it is another, the one followed begins later; never said, it read as sure. And the
    other way round: the --bad end (`bad_end`) said no check, the answer did: every
    regression counted as the --bad end's, and one named otherwise went unremarked."""
    e = evaluated.get(o.first_new) if o.first_new is not None else None
    if o.kind is not OutcomeKind.FOUND or e is None:
        return []
    bad = [r.result for r in e.runs if r.result.status is Status.REGRESSED]
    if not reference:
        end = evaluated.get(bad_end) if bad_end is not None and bad_end != o.first_new else None
        ends = [r.result for r in end.runs if r.result.status is Status.REGRESSED] if end else []
        named = [r.failure for r in bad if r.failure]
        if not ends or any(r.failure for r in ends) or not named:
            return []
        return [
            f"note: the --bad end regressed without saying which check failed (no "
            f"fingerprint, no metric over its threshold: {clip(ends[-1].reason, 60)}), so "
            f"every regression counted as its failure; {label(e.candidate)} failed "
            f"{clip(named[-1], 60)}: if that is another failure, the --bad end's begins "
            "later: make the repro write its metrics or a fingerprint, and bisect again"
        ]
    if not bad or any(r.failure for r in bad):
        return []
    return [
        f"note: {label(e.candidate)} regressed without saying which check failed (no "
        f"fingerprint, no metric over its threshold: {clip(bad[-1].reason, 60)}), while "
        f"the --bad end failed {clip(reference, 60)}; if that is another failure, "
        "the one followed begins later: make the repro write its metrics or a "
        "fingerprint, and bisect again"
    ]


def contradicted_words(o: Outcome, evaluated: Mapping[int, Evaluated]) -> str:
    """What a trusting answer's confidence says of contradicting verdicts: none; or, in a
    history seen to change more than once (`Outcome.changed`, said above it), that they did,
    only as such a history makes them where each was said twice (no flaky repro). It said
    "no verdicts contradicted" under the line saying they had."""
    said = [e.tally.informative for i in o.changed if (e := evaluated.get(i))]
    if not said:
        return "no verdicts contradicted"
    if min(said) > 1:
        return "verdicts contradicted only as a history that changes twice makes them"
    return "verdicts contradicted, each said once: --max-runs allows no more (see above)"


def end_flaky(setup: Setup, e: Evaluated | None, end: str, said: str, flag: str) -> str:
    """Why a calibrated end stopped the search (`OutcomeKind.END_FLAKY`): its runs split
    about evenly (flaky there), or, all alike, were too few for a repro known to lie to
    say the end is wrong (one run under --max-runs 1), which "is flaky" said of one run."""
    if e is not None and e.tally.old and e.tally.new:
        return (
            f"{end} is flaky: the repro says {said}, so it cannot tell {setup.old_term} from "
            f"{setup.new_term} there; fix the repro or pick another {flag}"
        )
    return (
        f"{end} is unconfirmed: the repro says {said}, too few runs to tell a wrong {flag} "
        "from a flaky repro's false verdicts (--max-runs allows no more); raise --max-runs or "
        f"pick another {flag}"
    )


def ambiguity_remedy(evaluated: Mapping[int, Evaluated], suspects: Sequence[int]) -> str:
    """What to do about the suspects of a "one of N" answer. One that failed differently
    is no error to retry: that other failure hides the one followed there, and
    --retry-errors would only run it into it again. Nor is one that said it cannot be
    tested (exit 125): --retry-errors reruns errors and timeouts alone."""
    found = [e for i in suspects if (e := evaluated.get(i)) is not None]
    different = sum(1 for e in found if any(r.different for r in e.runs))
    failed = [
        e.result.status
        for e in found
        if not e.tally.informative and not any(r.different for r in e.runs)
    ]
    erred = sum(1 for s in failed if s in (Status.ERROR, Status.TIMEOUT))
    # A timeout runs again once the limit is longer than the run it stopped (`planning`):
    # --retry-errors under the same --timeout only times out again.
    slow = failed.count(Status.TIMEOUT)
    skipped = sum(1 for e in found if not e.tally.informative) - different - erred
    # pip refused the install for the interpreter (a Requires-Python that an index page
    # did not state, so the release was listed): --retry-errors fails the same way.
    other = ""
    python = [
        e.candidate.label
        for e in found
        if not e.tally.informative
        and e.result.status is Status.ERROR
        and _OTHER_PYTHON in e.result.reason
    ]
    if python:
        one = len(python) == 1
        other = (
            f"pip found that {', '.join(python)} require{'s' if one else ''} a different "
            f"Python than this one: run {'it' if one else 'them'} with an interpreter or "
            f"image {'it installs' if one else 'they install'} on (--python, --image)"
        )
        if len(python) == erred and not skipped and not different:
            return other
    if different == len(suspects):
        return (
            "they failed differently from the --bad end (noted above), which hides the "
            "failure followed there: fix that one, or bisect it with its own --bad"
        )
    longer = f", and a longer --timeout for the {slow} that timed out" if slow else ""
    if erred and slow == erred and not skipped:
        remedy = (
            "run the same command again with a longer --timeout than the limit that stopped "
            "them, which runs them again (--retry-errors at the same limit stops them again)"
        )
    elif erred and not skipped:
        remedy = "fix what stops them and run the same command again with --retry-errors"
        stand = "errors" if slow else "errors and timeouts"
        remedy += f"{longer} (stored {stand} stand until then)"
    elif erred:
        remedy = (
            "make them testable and run the same command again (with --retry-errors for "
            f"the {erred} that erred or timed out{longer})"
        )
    else:
        remedy = "make them testable and run the same command again"
    if different:
        remedy += f" ({different} of them failed differently from the --bad end: noted above)"
    return f"{remedy}; {other}" if other else remedy


def verdict_word(setup: Setup, e: Evaluated) -> str:
    match e.tally.consensus:
        case Consensus.NEW:
            return setup.new_term
        case Consensus.OLD:
            return setup.old_term
        case Consensus.FLAKY:
            t = e.tally
            return f"flaky ({t.new} {setup.new_term}, {t.old} {setup.old_term})"
        case Consensus.SKIP:
            return "different failure" if e.different else "skip"


def clip(text: str, width: int = 90) -> str:
    """Keep both ends of a long reason: pip and pytest put the cause last. One printable
    line: a fingerprint may be a traceback, its lines (and its colours' escapes) were
    printed as they were, and broke each note into lines the reader could not tell apart;
    they are joined by " | "."""
    if len(text) > 4 * width:  # cut first: the rest is linear in what is left
        text = text[: 2 * width] + "\n" + text[-2 * width :]
    lines = (" ".join(line.split()) for line in printable(text, newlines=True).splitlines())
    text = " | ".join(line for line in lines if line)
    if len(text) <= width:
        return text
    return f"{text[: width // 3]}…{text[-(width - width // 3 - 1) :]}"


def machines_apart(
    apart: Mapping[int, Split],
    evaluated: Mapping[int, Evaluated],
    candidates: Sequence[Candidate],
    label: Label,
) -> list[str]:
    """Each candidate whose stored runs disagree only between machines, and what was taken."""
    lines = []
    for i, split in sorted(apart.items()):
        e = evaluated.get(i)
        mine = sum(r.reused for r in e.runs) if e is not None else 0
        gpus = split.unit is SplitUnit.GPUS
        took = f"this machine's {mine} stored run(s) alone" if mine else "none (none ran here)"
        took = "none (a run takes any GPU of the type)" if gpus else took
        lines.append(
            f"note: stored runs of {label(candidates[i])} disagree only between "
            f"{'GPUs' if gpus else 'machines'} "
            f"({split}), each steady: no flaky repro; the bisection took {took}"
        )
    return lines
