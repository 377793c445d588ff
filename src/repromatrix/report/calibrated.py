"""A boundary the runs of a flaky repro place, weighed as a calibrated bisect weighs them.

`bisect --calibrate 3` named m23 the first bad commit at 99%, from runs whose lies left
commits below it "flaky" and a few single false alarms "regressed"; the report read each
point alone and said "begins between m21 and m28 … then begins between …", a range its
own runs had narrowed. A series with a flaky point whose ends say opposite things (one
change, as a bisection looks for) is weighed as the bisection's posterior does (`flaky.py`,
over the points that ran, each with its runs): where one boundary is as sure as bisect's
default --confidence, the sentence is that boundary's, and says how sure it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from repromatrix.dag import Dag
from repromatrix.flaky import Tally, posterior
from repromatrix.points import Point, PointVerdict
from repromatrix.ranges import Finding, Interval, find_intervals
from repromatrix.report.metrics import percent

#: How sure the runs must make one boundary (`bisect`'s default `--confidence`).
CONFIDENCE = 0.99


def calibrated(findings: Iterable[Finding]) -> list[Finding]:
    return [with_calibrated_bounds(f) for f in findings]


def with_calibrated_bounds(f: Finding) -> Finding:
    """`f`, its intervals replaced by the one boundary its runs place at CONFIDENCE (and a
    caveat saying how sure), where its points are those of a flaky repro across one change."""
    pts = [p for p in f.series.points if p.label not in f.series.unordered]
    ran = [i for i, p in enumerate(pts) if p.passed + p.regressed and not p.absent]
    if len(ran) < 3 or any(p.split for p in pts) or not any(pts[i].flaky for i in ran):
        return f
    first, last = pts[ran[0]], pts[ran[-1]]
    if first.passed > first.regressed and last.passed > last.regressed:
        return _window(f, pts, ran)
    fixed = first.regressed > first.passed and last.passed > last.regressed
    if not fixed and not (first.passed > first.regressed and last.regressed > last.passed):
        return f
    # One node per commit, as the bisection had them: a row of n untested commits is n
    # (their prior weighs as theirs did); node 0 is before the first point, the old side.
    node_of: dict[int, int] = {}
    for i in range(ran[0], ran[-1] + 1):
        node_of[i] = len(node_of) + sum(max(q.untested, 1) - 1 for q in pts[ran[0] : i]) + 1
    dag = Dag.chain(node_of[ran[-1]] + 1)
    tallies = {
        node_of[i]: Tally(old=pts[i].regressed, new=pts[i].passed)
        if fixed
        else Tally(old=pts[i].passed, new=pts[i].regressed)
        for i in ran
    }
    group, sure = posterior(dag, tallies).group(dag.everything)
    at = next((i for i in ran if node_of[i] == group[-1]), None)
    if len(group) != 1 or at is None or at == ran[0] or sure < CONFIDENCE:
        return f
    before = max(i for i in ran if i < at)
    runs = sum(p.passed + p.regressed for p in pts)
    bad_side = {i for i in ran if (i < at) is fixed}
    wrong = [
        i
        for i in ran
        if not pts[i].flaky
        and pts[i].verdict is not (PointVerdict.BAD if i in bad_side else PointVerdict.GOOD)
    ]
    if any(pts[i].passed + pts[i].regressed > 1 for i in wrong):
        return f  # a side said twice and never otherwise: it changed more than once
    lies = [f"{pts[i].label} ({pts[i].verdict.value})" for i in wrong]
    caveat = (
        f"{'fixed' if fixed else 'begins'} after {pts[before].label} by {pts[at].label}: "
        f"{percent(sure)} sure, as a calibrated bisect weighs these {runs} runs of a flaky repro"
        + (f" (read as its false verdicts: {', '.join(lies[:6])})" if lies else "")
    )
    if fixed:
        iv = _interval(pts, ran[0], before, None, at, lead=pts[: ran[0]], tail=pts[before + 1 : at])
    else:
        iv = _interval(
            pts, at, ran[-1], before, None, lead=pts[before + 1 : at], tail=pts[ran[-1] + 1 :]
        )
    return replace(f, intervals=(iv,), caveats=(*f.caveats, caveat))


def _window(f: Finding, pts: list[Point], ran: list[int]) -> Finding:
    """`f`, where its runs place a regression that began and was fixed (good at both ends,
    bad between): each side of its most often bad point weighed as one change. Runs of 8
    that said good, good, 7 of 8 bad, 7 of 8 bad, good, good read "regressed only
    intermittently: flaky at 1.2, 1.3", the begin and the fix the runs place unsaid."""
    bad = [i for i in ran if pts[i].regressed > pts[i].passed]
    if not bad:
        return f
    at = max(bad, key=lambda i: pts[i].regressed - pts[i].passed)
    plain = [find_intervals(replace(f.series, points=tuple(h))) for h in (pts[: at + 1], pts[at:])]
    halves = [with_calibrated_bounds(h) for h in plain]
    if not all(len(h.intervals) == 1 for h in halves):
        return f
    (begin,), (end,) = (h.intervals for h in halves)
    said = [c for h, was in zip(halves, plain, strict=True) for c in h.caveats[len(was.caveats) :]]
    if begin.first_good is not None or end.last_good is not None or not said:
        return f  # a side that changed more than once, or no boundary the runs place
    iv = Interval(
        first_bad=begin.first_bad,
        last_bad=end.last_bad,
        last_good=begin.last_good,
        first_good=end.first_good,
        uncertain_before=begin.uncertain_before,
        uncertain_after=end.uncertain_after,
        gaps_inside=(*begin.gaps_inside, *(p for p in end.gaps_inside if p is not pts[at])),
    )
    return replace(f, intervals=(iv,), caveats=(*f.caveats, *said))


def _interval(
    pts: list[Point],
    first: int,
    last: int,
    good_before: int | None,
    good_after: int | None,
    *,
    lead: list[Point],
    tail: list[Point],
) -> Interval:
    inside = pts[first : last + 1]
    return Interval(
        first_bad=pts[first].label,
        last_bad=pts[last].label,
        last_good=pts[good_before].label if good_before is not None else None,
        first_good=pts[good_after].label if good_after is not None else None,
        uncertain_before=tuple(lead),
        uncertain_after=tuple(tail),
        gaps_inside=tuple(p for p in inside if p.verdict is PointVerdict.UNKNOWN),
    )
