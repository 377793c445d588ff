"""Bisection output: the answer with how sure it is, the table of evaluations, Markdown."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TextIO

from repromatrix.bisect import Mode, Outcome, OutcomeKind
from repromatrix.bisect_evidence import Evaluated
from repromatrix.bisect_machines import Elsewhere
from repromatrix.bisect_plan import Setup
from repromatrix.bisect_session import BisectRun
from repromatrix.candidates import Axis, Candidate
from repromatrix.harness_pins import pin_field
from repromatrix.model import SourceKind
from repromatrix.records import Result
from repromatrix.report import bisect_releases as releases
from repromatrix.report.bisect_ends import (
    bad_merge_base,
    bases_tested,
    changed_more_than_once,
    cut_problem,
    cut_range,
    cut_suspects,
    of_answer,
    other_way_round,
    unrun_parents_lines,
)
from repromatrix.report.bisect_failures import (
    clip,
    contradicted_words,
    different_failures,
    end_flaky,
    machines_apart,
    unknown_failure,
    verdict_word,
)
from repromatrix.report.bisect_false import read_as_false
from repromatrix.report.bisect_merge import fix_below_bad_end, merge_note
from repromatrix.report.escape import md_cell
from repromatrix.report.metrics import digits_of, fmt_num, guess_odds, percent
from repromatrix.revisions import SHORT, commit_label, short_width
from repromatrix.safetext import printable
from repromatrix.splits import Split

_RETRIED = ("error", "timeout")  # what --retry-errors runs again; --rerun runs all


def candidate_label(c: Candidate, width: int = SHORT) -> str:
    """A candidate as every report shows a revision: a release by its version, a commit by
    its declared name (a tag) and short hash, or the short hash alone."""
    if c.kind is SourceKind.PYPI:
        return c.label
    return commit_label(c.rev, c.revision.label if c.revision is not None else "", width)


@dataclass(kw_only=True)
class BisectReport:
    setup: Setup
    axis: Axis
    evaluated: Mapping[int, Evaluated]
    outcome: Outcome
    reference: str = ""
    #: Why the search was calibrated from the start, when the command line did not ask.
    calibrated_because: str = ""
    #: Candidates whose stored runs disagree only between machines (`BisectRun`).
    machines_apart: Mapping[int, Split] = field(default_factory=dict)
    elsewhere: Elsewhere = field(default_factory=Elsewhere)  # `BisectRun`'s
    off_axis: Sequence[Evaluated] = ()  # `BisectRun`'s: runs counted, not shown

    @property
    def candidates(self) -> Sequence[Candidate]:
        return self.axis.candidates

    @functools.cached_property
    def _width(self) -> int:
        """The short hashes' width, read once: it weighs every candidate (100,000 on a long
        history), and every row and note of the answer labels a commit."""
        commits = [x.rev for x in self.candidates if x.kind is not SourceKind.PYPI]
        return short_width(commits) if commits else SHORT

    def label(self, c: Candidate) -> str:
        return candidate_label(c, self._width)

    def hash_label(self, c: Candidate) -> str:
        """`c` without its declared name, where the line names the end as given already
        ("--good v1.0 (1a2b3c4d)", not "(v1.0 · 1a2b3c4d)")."""
        return self.label(replace(c, revision=None) if c.kind is SourceKind.GIT else c)

    def _describe(self, c: Candidate) -> str:
        if c.kind is SourceKind.PYPI:
            return f"{self.setup.library.name} {c.label}{self._installed(c)}"
        return f"{c.rev} {c.subject!r} ({printable(c.author)}, {c.committed[:10]})"

    def _installed(self, c: Candidate) -> str:
        """What pip installed for a release, when it is another build (a release offered
        only as `1.5+cu121`, or only as `1.5.0`: `pypi_pins`)."""
        i = next((i for i, x in enumerate(self.candidates) if x is c), None)
        e = self.evaluated.get(i) if i is not None else None
        if e is None:
            return ""
        got = pin_field(e.result.provenance, self.setup.library.name, "installed")
        if not got:
            return ""
        return releases.installed_note(self.axis, c.label, got)

    def _term(self) -> tuple[str, str]:
        term = "first fixed" if self.setup.find_fix else "first bad"
        return term, "commit" if self.axis.commits else "release"

    def headline(self) -> list[str]:
        o = self.outcome
        term, what = self._term()
        if o.kind is OutcomeKind.FOUND and o.first_new is not None:
            if (within := self._range()) is not None:
                return [within]
            lines = [f"{term} {what}: {self._describe(self.candidates[o.first_new])}"]
            lines += self._unsure(f"{term} {what}") + merge_note(
                self.setup, self.axis, self.evaluated, o.first_new
            )
            return lines + self._elsewhere_note()
        if o.kind is OutcomeKind.AMBIGUOUS:
            lines = [
                f"{term} {what} is one of {len(o.suspects)} (the others could not be evaluated):"
            ]
            for i in o.suspects:
                e = self.evaluated.get(i)
                why = f" [{_said(e)}]" if e else " [not evaluated]"
                lines.append(f"  {self._describe(self.candidates[i])}{why}")
            lines += releases.unlisted_suspects(self.setup, self.axis, o)
            lines += releases.unrun_suspects(self.axis, o)
            lines += cut_suspects(self.setup, self.axis, o, self.label)
            return lines + self._unsure(f"{term} {what}")
        return [self.problem()]  # inconclusive, or an end that is not what it should be

    def _unsure(self, answer: str) -> list[str]:
        return of_answer(self.setup, self.axis, self.evaluated, self.outcome, self.label, answer)

    def _range(self) -> str | None:
        """The answer as a range: releases a list may miss, or commits a shallow clone cut."""
        s, a, o = self.setup, self.axis, self.outcome
        return (
            releases.unlisted_range(s, a, o)
            or releases.unrun_range(s, a, o)
            or cut_range(s, a, o, self.label)
        )

    @property
    def only_a_range(self) -> bool:
        """The answer is a range, not one release or commit (exit 6): releases may hide
        before it (`unlisted_range`) or were not run there (`unrun_range`), or commits below
        it a shallow clone cut (`cut_range`)."""
        return self._range() is not None

    def _range_mark(self) -> str:
        s, a, o = self.setup, self.axis, self.outcome
        return " listed" if releases.unlisted_range(s, a, o) else " run here"

    def range_problem(self) -> str:
        if self.axis.commits:
            return cut_problem(self.setup)
        return releases.range_problem(self.setup, self.axis, self.outcome)

    def _elsewhere_note(self) -> list[str]:
        found = self.outcome.elsewhere
        if not found:
            return []
        labels = ", ".join(self.label(self.candidates[i]) for i in found[:6])
        return [
            f"  also {self.setup.new_term}, not below it: {labels}"
            f"{', …' if len(found) > 6 else ''}: another change, on another branch (this "
            "search followed one, as git does); "
            f"bisect it with --{'good' if self.setup.find_fix else 'bad'} "
            f"{self.candidates[found[0]].rev[:12]}"
        ]

    def confidence(self) -> str:
        """How sure the answer is, and what it took."""
        o = self.outcome
        runs = f"{o.runs} run(s), {o.repeats} of them repeats"
        if o.mode is Mode.TRUSTING and not o.ok:  # an end failed: nothing to be sure of
            return f"confidence: none: no {self._term()[1]} is named (see above); {runs}"
        if o.mode is Mode.TRUSTING:
            # Stored repeats (`run --repeat N`) that all agreed are trusted no less.
            t = "runs that never disagreed trust" if o.repeats else "one run per candidate trusts"
            held = contradicted_words(o, self.evaluated)
            return (
                f"confidence: not measured: {runs}, {held}; {t} "
                "the repro to be deterministic (--calibrate N repeats each end N times and states "
                "a probability)"
            )
        rates = ""
        if o.false_new is not None and o.false_old is not None:
            rates = (
                f"; estimated false '{self.setup.new_term}' verdicts {o.false_new:.0%}, false "
                f"'{self.setup.old_term}' {o.false_old:.0%}"
            )
        why = f" (calibrated because {self.calibrated_because})" if self.calibrated_because else ""
        if o.contradicted:
            labels = ", ".join(self.label(self.candidates[i]) for i in o.contradicted[:6])
            why = f" (calibrated because verdicts contradicted each other at {labels})"
        sure = percent(o.confidence, digits_of(o.asked)) if o.confidence is not None else "unknown"
        if o.confidence is None and not o.ok and o.kind is not OutcomeKind.INCONCLUSIVE:
            sure = f"none: no {self._term()[1]} is named (see above)"  # an end failed
        return f"confidence: {sure}{why}; {runs}{rates}"

    def notes(self) -> list[str]:
        """Several changes suspected, other failures met on the way, machines that differ."""
        end = None if self.setup.find_fix else len(self.candidates) - 1  # the --bad end
        answer = (self.setup, self.axis, self.outcome)
        twice = self._more_than_once()  # then those verdicts are no lies: not read as false
        return (
            bases_tested(self.setup, self.axis, self.evaluated, self.label, verdict_word)
            + twice
            + ([u[0]] if (u := self.unrun_parents()) else fix_below_bad_end(*answer))
            + machines_apart(self.machines_apart, self.evaluated, self.candidates, self.label)
            + self.elsewhere.lines(self.evaluated, self.setup, self.candidates, self.label)
            + ([] if twice else read_as_false(*answer, self.evaluated, self.label))
            + different_failures(self.setup, self.evaluated, self.reference, self.label)
            + unknown_failure(self.outcome, self.evaluated, self.reference, self.label, end)
            + releases.unrun_releases(self.setup, self.axis, self.outcome, self.evaluated)
        )

    def unrun_parents(self) -> tuple[str, str] | None:
        """(note, exit-6 line) for an answer on parents no run saw (`unrun_parents_lines`)."""
        s, a, e, o = self.setup, self.axis, self.evaluated, self.outcome
        return unrun_parents_lines(s, a, e, o) if self._more_than_once() or o.changed else None

    def _more_than_once(self) -> list[str]:
        return changed_more_than_once(
            self.setup, self.axis, self.evaluated, self.outcome, self.label
        )

    def ambiguity(self) -> str:
        """Why a "one of N" answer is no answer a script may act on (exit 6)."""
        term, what = self._term()
        n = len(self.outcome.suspects)
        unlisted = "; releases between them may exist but were not listed"
        if not releases.unlisted_suspects(self.setup, self.axis, self.outcome):
            unlisted = ""
        if releases.unrun_suspects(self.axis, self.outcome):
            unlisted += "; or a release not run here (listed above)"
        if cut_suspects(self.setup, self.axis, self.outcome, self.label):
            unlisted = (
                "; or a commit below one of them that this shallow clone does not hold (git "
                "fetch --unshallow where it comes from)"
            )
        remedy = releases.way_out(self.setup, self.axis, self.evaluated, self.outcome.suspects)
        # The newest suspect is the first known new one: evaluated, as git lists it too.
        unknown = sum(
            1
            for i in self.outcome.suspects
            if (e := self.evaluated.get(i)) is None or not e.tally.informative
        )
        which = f", {unknown} of which" if unknown < n else " that"
        return (
            f"no single {term} {what}: it is one of {n} (listed above){which} could not be "
            f"evaluated{unlisted}; {remedy}"
        )

    def problem(self) -> str:
        o, s = self.outcome, self.setup
        if o.kind is OutcomeKind.INCONCLUSIVE:
            best = self._describe(self.candidates[o.suspects[-1]]) if o.suspects else "none"
            if o.suspects and o.suspects[-1] not in self.evaluated:
                best += ", which no run has seen"
            sure = guess_odds(o.confidence, o.likely)
            # "(71% after 60 runs)", but "(41% likely, at least 0% whatever the rates, after…)"
            sure += "," if "likely" in sure else ""
            flaky = any(e.tally.old and e.tally.new for e in self.evaluated.values())
            _, what = self._term()
            why = (
                "the repro is too flaky there: raise --max-runs or fix it"
                if flaky
                else f"no {what}'s runs disagreed, but the runs allowed ran out first: raise "
                "--max-runs or lower --confidence"
            )
            return (
                f"inconclusive: no answer at the asked confidence: most likely {best} "
                f"({sure} after {o.runs} runs); {why}"
            )
        end = o.end if o.end is not None else 0
        e = self.evaluated.get(end)
        c = self.candidates[end]
        old = end < self.axis.old_ends
        given = s.old_end(end) if old else s.new
        flag = (
            ("--bad" if s.find_fix else "--good") if old else ("--good" if s.find_fix else "--bad")
        )
        said = _said(e) if e else "no result"
        match o.kind:
            case OutcomeKind.OLD_END_IS_NEW if self.axis.parted_from:
                return bad_merge_base(s, self.hash_label(c), flag, given, said)
            case OutcomeKind.OLD_END_IS_NEW | OutcomeKind.NEW_END_IS_OLD:
                expected = s.old_term if old else s.new_term
                if not old:
                    hint = f"pick a newer {flag}"
                elif s.find_fix:  # the bug is not there yet at the old end
                    hint = f"pick a later {flag}, where the regression is present"
                else:
                    hint = f"pick an older {flag}, from before the regression"
                if o.mode is Mode.TRUSTING and e is not None and len(e.runs) == 1:
                    said += "; one run only, unconfirmed (--max-runs 1 allows no second)"
                hint = other_way_round(s, self.axis, self.evaluated, end, _said, hint)
                return (
                    f"{flag} {given} ({self.hash_label(c)}) is not {expected}: the repro says "
                    f"{said}; {hint}"
                )
            case OutcomeKind.END_SKIPPED:
                again = "--retry-errors runs it" if e and e.result.status.value in _RETRIED else ""
                stored = f"; it is a stored record: {again or '--rerun runs every point'} again"
                stored = stored if e is not None and e.reused else ""
                fix = releases.unoffered(s, self.axis, [end], f"pick another {flag}")
                return (
                    f"{flag} {given} ({self.hash_label(c)}) could not be evaluated ({said}); "
                    f"{fix or f'fix that or pick another {flag}{stored}'}"
                )
            case OutcomeKind.END_FLAKY:
                return end_flaky(s, e, f"{flag} {given} ({self.hash_label(c)})", said, flag)
            case _:
                return "bisection finished"

    def rows(self) -> list[tuple[str, ...]]:
        out: list[tuple[str, ...]] = []
        for i in sorted(self.evaluated):
            e = self.evaluated[i]
            c = e.candidate
            mark = ""
            if self.outcome.ok and i == self.outcome.first_new and len(self.outcome.suspects) == 1:
                mark = "◀ first fixed" if self.setup.find_fix else "◀ first bad"
                if self.only_a_range:  # releases may hide before it, or cut commits below it
                    mark += " in the clone" if self.axis.commits else self._range_mark()
            out.append(
                (
                    str(i),
                    self.label(c) + (" (merge)" if c.is_merge else "") + _note(c),
                    c.committed[:10],
                    runs_text(e),
                    verdict_word(self.setup, e),
                    _metrics(e.result),
                    ("(stored) " if e.reused else "") + clip(e.result.reason),
                    mark,
                )
            )
        return out

    def text(self, out: TextIO) -> None:
        for line in [*self.headline(), self.confidence(), *self.notes()]:
            print(line, file=out)
        header = ("#", "revision", "date", "runs", "verdict", "metrics", "reason", "")
        rows = self.rows()
        widths = [max(len(r[j]) for r in [header, *rows]) for j in range(len(header))]
        print(file=out)
        for r in [header, *rows]:
            print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip(), file=out)
        out.flush()

    def markdown(self) -> str:
        s = self.setup
        what = "commits" if self.axis.commits else "releases"
        points = [*self.evaluated.values(), *self.off_axis]
        runs = [r.reused for e in points for r in e.runs]  # as `bisect` says
        # Subjects, revisions, metrics and reasons are shown as written, never as Markdown
        # of their own (a subject "![x](https://host/t.png)" is no image here).
        lines = [
            f"# Bisect: {md_cell(s.repro.name)} on {md_cell(s.gpu)} / {md_cell(s.base)}",
            "",
            f"- library: **{md_cell(s.library.name)}**, {len(self.candidates)} {what} from "
            f"{md_cell(s.olds)} ({s.old_term}) to {md_cell(s.new)} ({s.new_term})",
            f"- evaluated: {len(points)} point(s) in {len(runs)} run(s), "
            f"{sum(runs)} of them stored run(s) reused",
            # Above the answer and its notes here, which the line points at: below them.
            f"- {md_cell(self.confidence().replace('(see above)', '(see below)'))}",
            "",
        ]
        # The answer in bold, its details (the suspects, a merge's parents) as a list of
        # their own, then the notes: each block apart, or CommonMark runs them together.
        for ln in self.headline():
            detail = ln.startswith("  ")
            lines += [f"- {md_cell(ln.strip())}"] if detail else [f"**{md_cell(ln)}**", ""]
        notes = [f"- {md_cell(ln.strip())}" for ln in self.notes()]
        lines += ["", *notes, ""] if notes else [""]
        lines += ["| # | revision | date | runs | verdict | metrics | reason |"]
        lines.append("|---|---|---|---|---|---|---|")
        for r in self.rows():
            cells = [md_cell(v) for v in r[:7]]
            if r[7] and not self.only_a_range:  # bold: the answer
                cells[1] = f"**{cells[1]}**"
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


def _note(c: Candidate) -> str:
    """A declared revision's note from matrix.yaml (releases the index offers have none)."""
    note = c.revision.note if c.revision is not None else None
    return f" [{clip(note, 40)}]" if note else ""


def runs_text(e: Evaluated) -> str:
    """'regressed', or the count of each status when there were several runs."""
    statuses = [r.result.status.value for r in e.runs]
    if len(statuses) == 1:
        return statuses[0]
    counts = {s: statuses.count(s) for s in dict.fromkeys(statuses)}
    return ", ".join(f"{n} {s}" for s, n in counts.items())


def _said(e: Evaluated | None) -> str:
    if e is None:
        return "no result"
    statuses = {r.result.status for r in e.runs}
    # A skip for "regressed" differently: else it read as the followed bug present there.
    other = "a different failure: " if e.different else ""
    if len(statuses) == 1:
        n = len(e.runs)
        runs = f" ({n} of {n} runs)" if n > 1 else ""
        return f"{other}{e.result.status.value}{runs}: {e.result.reason}"
    return f"{other}{runs_text(e)} in {len(e.runs)} runs (last: {e.result.reason})"


def _metrics(result: Result, limit: int = 3) -> str:
    """The metrics that have thresholds first (those decide the verdict), then the rest."""
    names = [n for n in result.thresholds if n in result.metrics]
    names += [n for n in result.metrics if n not in names]
    # As every output shows a number: a value kept as null (NaN or inf) is "not finite",
    # never "nan" (an overflow to inf read as NaN), with fmt_num's digits (3 were cut).
    return " ".join(f"{n}={fmt_num(result.metrics[n])}" for n in names[:limit])


def report_of(run: BisectRun) -> BisectReport:
    return BisectReport(
        setup=run.setup,
        axis=run.axis,
        evaluated=run.evaluated,
        outcome=run.outcome,
        reference=run.reference,
        calibrated_because=run.calibrated_because,
        machines_apart=run.machines_apart,
        elsewhere=run.elsewhere,
        off_axis=run.off_axis,
    )
