"""Bisection output: the answer, the table of evaluations, and the Markdown summary."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

from repromatrix.bisect import Outcome, OutcomeKind, Verdict
from repromatrix.bisect_plan import Setup
from repromatrix.bisect_session import BisectRun, Evaluated
from repromatrix.candidates import Candidate
from repromatrix.model import SourceKind
from repromatrix.records import Result
from repromatrix.revisions import SHORT, commit_label, short_width


def candidate_label(c: Candidate, width: int = SHORT) -> str:
    """A candidate as every report shows a revision: a release by its version, a commit by
    its declared name (a tag) and short hash, or the short hash alone."""
    if c.kind is SourceKind.PYPI:
        return c.label
    return commit_label(c.rev, c.revision.label if c.revision is not None else "", width)


@dataclass(kw_only=True)
class BisectReport:
    setup: Setup
    candidates: Sequence[Candidate]
    evaluated: Mapping[int, Evaluated]
    outcome: Outcome

    def label(self, c: Candidate) -> str:
        commits = [x.rev for x in self.candidates if x.kind is not SourceKind.PYPI]
        return candidate_label(c, short_width(commits) if commits else SHORT)

    def _describe(self, c: Candidate) -> str:
        if c.kind is SourceKind.PYPI:
            return f"{self.setup.library.name} {c.label}"
        return f"{c.rev} {c.subject!r} ({c.author}, {c.committed[:10]})"

    def headline(self) -> list[str]:
        o, s = self.outcome, self.setup
        term = "first fixed" if s.find_fix else "first bad"
        what = "release" if self.candidates[0].kind is SourceKind.PYPI else "commit"
        if o.kind is OutcomeKind.FOUND:
            assert o.first_new is not None
            return [f"{term} {what}: {self._describe(self.candidates[o.first_new])}"]
        if o.kind is OutcomeKind.AMBIGUOUS:
            lines = [
                f"{term} {what} is one of {len(o.suspects)} (the others could not be evaluated):"
            ]
            for i in o.suspects:
                e = self.evaluated.get(i)
                why = f" [{e.result.status.value}: {e.result.reason}]" if e else ""
                lines.append(f"  {self._describe(self.candidates[i])}{why}")
            return lines
        return [self.problem()]

    def problem(self) -> str:
        o, s = self.outcome, self.setup
        end = o.end if o.end is not None else 0
        e = self.evaluated.get(end)
        c = self.candidates[end]
        given = s.old if end == 0 else s.new
        flag = (
            ("--bad" if s.find_fix else "--good")
            if end == 0
            else ("--good" if s.find_fix else "--bad")
        )
        said = f"{e.result.status.value}: {e.result.reason}" if e else "no result"
        match o.kind:
            case OutcomeKind.OLD_END_IS_NEW | OutcomeKind.NEW_END_IS_OLD:
                expected = s.old_term if end == 0 else s.new_term
                if end != 0:
                    hint = f"pick a newer {flag}"
                elif s.find_fix:  # the bug is not there yet at the old end
                    hint = f"pick a later {flag}, where the regression is present"
                else:
                    hint = f"pick an older {flag}, from before the regression"
                return (
                    f"{flag} {given} ({self.label(c)}) is not {expected}: the repro says {said}; "
                    f"{hint}"
                )
            case OutcomeKind.END_SKIPPED:
                return (
                    f"{flag} {given} ({self.label(c)}) could not be evaluated ({said}); fix "
                    f"that or pick another {flag}"
                )
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
            out.append(
                (
                    str(i),
                    self.label(c),
                    c.committed[:10],
                    e.result.status.value,
                    (self.setup.new_term if e.verdict is Verdict.NEW else self.setup.old_term)
                    if e.verdict is not Verdict.SKIP
                    else "skip",
                    _metrics(e.result),
                    ("(stored) " if e.reused else "") + _clip(e.result.reason),
                    mark,
                )
            )
        return out

    def text(self, out: TextIO) -> None:
        for line in self.headline():
            print(line, file=out)
        header = ("#", "revision", "date", "status", "verdict", "metrics", "reason", "")
        rows = self.rows()
        widths = [max(len(r[j]) for r in [header, *rows]) for j in range(len(header))]
        print(file=out)
        for r in [header, *rows]:
            print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip(), file=out)
        out.flush()

    def markdown(self) -> str:
        s = self.setup
        lines = [
            f"# Bisect: {s.repro.name} on {s.gpu} / {s.base}",
            "",
            f"- library: **{s.library.name}**, {len(self.candidates)} candidates from "
            f"`{s.old}` ({s.old_term}) to `{s.new}` ({s.new_term})",
            f"- evaluated: {len(self.evaluated)} "
            f"({sum(1 for e in self.evaluated.values() if e.reused)} reused from the store)",
            "",
        ]
        lines += [ln if ln.startswith("  ") else f"**{ln}**" for ln in self.headline()]
        lines += ["", "| # | revision | date | status | verdict | metrics | reason |"]
        lines.append("|---|---|---|---|---|---|---|")
        for r in self.rows():
            cells = [v.replace("|", "\\|") for v in r[:7]]
            if r[7]:
                cells[1] = f"**{cells[1]}**"
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


def _clip(text: str, width: int = 90) -> str:
    """Keep both ends of a long reason: pip and pytest put the cause last."""
    if len(text) <= width:
        return text
    return f"{text[: width // 3]}…{text[-(width - width // 3 - 1) :]}"


def _metrics(result: Result, limit: int = 3) -> str:
    """The metrics that have thresholds first (those decide the verdict), then the rest."""
    names = [n for n in result.thresholds if n in result.metrics]
    names += [n for n in result.metrics if n not in names]
    parts = []
    for name in names[:limit]:
        value = result.metrics[name]
        parts.append(f"{name}={'nan' if value is None else f'{value:.3g}'}")
    return " ".join(parts)


def report_of(run: BisectRun) -> BisectReport:
    return BisectReport(
        setup=run.setup, candidates=run.candidates, evaluated=run.evaluated, outcome=run.outcome
    )


def start_line(
    setup: Setup, candidates: Sequence[Candidate], reused: int, k: int, commits: bool
) -> str:
    """The line printed before the first round."""
    what = "commits" if commits else "releases"
    return (
        f"bisect {setup.repro.name} [{setup.gpu}, {setup.base}] {setup.library.name} "
        f"{setup.old}..{setup.new}: {len(candidates)} {what}, {reused} already evaluated, "
        f"{k} point(s) per round; looking for the first {setup.new_term} one"
    )


def round_line(number: int, evaluated: Sequence[Evaluated], bounds: tuple[int, int]) -> str:
    """The line printed after each round."""
    lo, hi = bounds
    notes = ", ".join(f"{candidate_label(e.candidate)} {e.result.status.value}" for e in evaluated)
    return f"round {number}: {notes}; {max(hi - lo - 1, 0)} candidate(s) left"
