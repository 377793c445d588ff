"""Commits a mirror's history has between two points of a series that no cell ran.

They are points of the axis too: a regression seen at c10 and not at c5, with c6..c9
never run, began somewhere in c6..c10, so a boundary across them is a range ("begins
between c5 and c10 (...; no verdict at c6–c9 (4 commits untested))"), never "at c10".
A merge among them brings in its branch's commits, which the line skips: "(2 commits
untested, one a merge (its branch's commits lie here too))". Pure: the first-parent line
comes from `gitrepo.GitRepo.history`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import replace

from repromatrix.gitlog import Line
from repromatrix.grid import Grid
from repromatrix.points import Point, PointVerdict, Series
from repromatrix.ranges import Finding
from repromatrix.revision_order import RevInfo

#: What makes a series' untested commits points of it (`untested_filler`).
Fill = Callable[[Series], Series]


def untested_filler(lines: Mapping[str, Line], infos: Mapping[str, Sequence[RevInfo]]) -> Fill:
    """`with_untested` for each series of an axis with a line in `lines` (library → its
    first-parent line); a series of another axis as it is."""
    at = {
        lib: {sha: i for i, sha in enumerate(ln.commits)} for lib, ln in lines.items() if ln.commits
    }
    commits = {
        lib: {i.label: _full(i.commit, at.get(lib, {})) for i in revs if i.commit}
        for lib, revs in infos.items()
    }

    def fill(series: Series) -> Series:
        if series.axis not in at:
            return series
        line = lines[series.axis]
        return with_untested(
            series,
            line.commits,
            at[series.axis],
            commits[series.axis],
            line.merges,
            line.branches,
            line.tips,
            line.parents,
        )

    return fill


def _full(commit: str, at: Mapping[str, int]) -> str:
    """`commit` as the line spells it: a record's short hash (`70b24f3`) is the one commit
    of the line it abbreviates, or no place on the line ended the count around it."""
    if commit in at or len(commit) >= 40:
        return commit
    found = [sha for sha in at if sha.startswith(commit)]
    return found[0] if len(found) == 1 else commit


def with_untested(
    series: Series,
    line: Sequence[str],
    at: Mapping[str, int],
    commits: Mapping[str, str],
    merges: AbstractSet[str] = frozenset(),
    branches: Mapping[str, Sequence[str]] | None = None,
    tips: Mapping[str, Sequence[str]] | None = None,
    graph: Mapping[str, Sequence[str]] | None = None,
) -> Series:
    """`series` with a point before each of its ordered points standing for the commits of
    `line` (`at`: each one's index) between it and the point before, when there are any;
    `commits`: each label's full commit; `merges`: the line's merge commits. A point off the
    line ends the count: what lies between it and its neighbours is not known. A point that
    is a merge (`branches`: the commits each merge brings in) has another before it, for the
    commits of its branch that the series never ran: m11 good and the merge m12 bad said
    "begins at m12", where the change may be any commit of the branch m12 merges. Where
    each parent it merges (`tips`) ran as the point before it did, the merge is where the
    change is, as git bisect would name it: no commit of its branch is a candidate. Nor,
    where the verdict changes there, is one of its commits after one that ran as the merge
    did (`graph`: each one's parents), or before one that ran as the point before did: s2 bad on
    the branch, s3 after it is not where the change is. Where the branch ran as the merge
    did, the change is on the branch (git bisect's answer), never the merge: those runs
    leave the points said apart for the line, before the merge (s1 good, s2 bad: "begins
    at s2 (last good s1)")."""
    points: list[Point] = []
    last: int | None = None
    ran = {commits.get(p.label, ""): p.verdict for p in series.points if not p.absent}
    before = PointVerdict.UNKNOWN  # the verdict of the ordered point before
    apart = {
        commits.get(p.label, ""): p
        for p in series.points
        if p.label in series.unordered and not p.absent
    }
    moved: set[str] = set()  # labels said apart that a merge's turn places
    for p in series.points:
        if p.label in series.unordered:  # said apart, never in a begin/end sentence
            points.append(p)
            continue
        i = at.get(commits.get(p.label, ""))
        if i is not None and last is not None and i - last > 1:
            first, newest = line[last + 1][:8], line[i - 1][:8]
            label = first if i - last == 2 else f"{first}–{newest}"
            n, merged = i - last - 1, sum(1 for sha in line[last + 1 : i] if sha in merges)
            note = _merged(n, merged)
            points.append(Point(label=label, status=None, absent=True, untested=n, merged=note))
        parents = (tips or {}).get(line[i], ()) if i is not None else ()
        settled = before is not PointVerdict.UNKNOWN and all(ran.get(t) is before for t in parents)
        if i is not None and last is not None and not (parents and settled):
            branch = [sha for sha in (branches or {}).get(line[i], ()) if sha not in ran]
            ahead: list[str] = []  # the branch's runs where it turns, oldest first
            if PointVerdict.UNKNOWN not in (before, p.verdict) and before is not p.verdict:
                brought = (branches or {}).get(line[i], ())
                branch = _could_hold(brought, graph or {}, ran, before, p.verdict)
                turn = _turn_on_branch(brought, graph or {}, ran, before, p.verdict, branch)
                if all(sha in apart for sha in turn[0]):
                    ahead, branch = turn
            if len(ahead) > 1:
                points.append(replace(apart[ahead[0]]))  # a copy: the original leaves
            if branch:
                label = _span(branch[0], branch[-1])
                note = f", the branch merged at {p.label}"
                points.append(
                    Point(label=label, status=None, absent=True, untested=len(branch), merged=note)
                )
            if ahead:
                points.append(replace(apart[ahead[-1]]))
                moved |= {apart[sha].label for sha in ahead}
        last, before = i, p.verdict
        points.append(p)
    said = {id(p) for p in apart.values() if p.label in moved}
    kept = tuple(p for p in points if id(p) not in said)  # each once, where it now stands
    return replace(series, points=kept, unordered=series.unordered - moved)


def _turn_on_branch(
    brought: Sequence[str],
    parents: Mapping[str, Sequence[str]],
    ran: Mapping[str, PointVerdict],
    old: PointVerdict,
    new: PointVerdict,
    could_hold: Sequence[str],
) -> tuple[list[str], list[str]]:
    """Where a merge's branch (`brought`, oldest first) ran `new` itself, git bisect's
    answer is on the branch, never the merge: its oldest commit that ran `new` (every
    tested commit below it ran `old`), after the newest below it that ran `old` if one
    did. Those runs (oldest first: the one that ran `old`, if any, then the one that ran
    `new`) and the commits of `could_hold` below the `new` one; none and `could_hold`
    where no commit of the branch ran `new`. A branch that turned twice (b1 bad, b2 good,
    b3 bad) brings the merge its newest turn: b1's was undone at b2, and naming b1 said
    the regression the merge brought began where it had been fixed since; a `new` run
    below one that ran `old` is no turn the merge has."""
    undone: set[str] = set()  # ancestors, on the branch, of its commits that ran `old`
    stack = [p for sha in brought if ran.get(sha) is old for p in parents.get(sha, ())]
    while stack:
        if (sha := stack.pop()) not in undone and sha in parents:
            undone.add(sha)
            stack.extend(parents[sha])
    first = next((sha for sha in brought if ran.get(sha) is new and sha not in undone), None)
    if first is None or first not in parents:  # where it lies on the branch is not known
        return [], list(could_hold)
    below: set[str] = set()  # first's ancestors on the branch
    stack = list(parents.get(first, ()))
    while stack:
        if (sha := stack.pop()) not in below and sha in parents:
            below.add(sha)
            stack.extend(parents[sha])
    good = [sha for sha in brought if sha in below and ran.get(sha) is old][-1:]
    return [*good, first], [sha for sha in could_hold if sha in below]


def _could_hold(
    branch: Sequence[str],
    parents: Mapping[str, Sequence[str]],
    ran: Mapping[str, PointVerdict],
    old: PointVerdict,
    new: PointVerdict,
) -> list[str]:
    """The commits of `branch` (oldest first) that no point ran and where the verdict may
    turn from `old` to `new`: none after a commit that ran `new` (it had turned already)
    but for those after a later one that ran `old`, none before one that ran `old` (it had
    not turned yet)."""
    after: set[str] = set()  # commits after one that ran `new`, up to one that ran `old`
    for sha in branch:
        if ran.get(sha) is old:  # turned back (b1 bad, b2 good): b3 may turn it again
            continue
        if any(ran.get(p) is new or p in after for p in parents.get(sha, ())):
            after.add(sha)
    before: set[str] = set()  # commits before one that ran `old`
    stack = [p for sha, v in ran.items() if v is old for p in parents.get(sha, ())]
    while stack:
        if (sha := stack.pop()) not in before and sha in parents:
            before.add(sha)
            stack.extend(parents[sha])
    cannot = after | before  # once: a union per commit made 5,000 of them quadratic
    return [sha for sha in branch if sha not in ran and sha not in cannot]


def _span(first: str, newest: str) -> str:
    return first[:8] if first == newest else f"{first[:8]}–{newest[:8]}"


def _merged(untested: int, merges: int) -> str:
    """What a run of `untested` commits of the line with `merges` merges among them says
    of the commits those merges bring in, which the line skips."""
    if not merges:
        return ""
    if merges > 1:
        return f", {merges:,} merges (their branches' commits lie here too)"
    return f", {'a' if untested == 1 else 'one a'} merge (its branch's commits lie here too)"


def with_untested_rows(grid: Grid, findings: Sequence[Finding]) -> Grid:
    """`grid` with a row (of no cells) for each run of untested commits its findings hold,
    before the row it precedes: c5 ✓ over c10 ✗, next to each other, read as "began at
    c10" on the page whatever its sentence said. A branch's runs a merge's turn placed
    (`with_untested`) move there too, no longer "order unknown" (`findings[i]` is of
    `grid.series[i]`)."""
    before: dict[str, list[str]] = {}
    placed: set[str] = set()
    series = list(grid.series)
    for i, f in enumerate(findings):
        moved = series[i].unordered - f.series.unordered if i < len(series) else frozenset()
        if moved:
            series[i] = replace(series[i], unordered=series[i].unordered - moved)
            placed |= moved
        for p, after in zip(f.series.points, f.series.points[1:], strict=False):
            if (p.untested or p.label in moved) and p.label not in before.get(after.label, ()):
                before.setdefault(after.label, []).append(p.label)
    if not before:
        return grid
    seen: set[str] = set()

    def row(label: str) -> list[str]:
        if label in seen:  # each once, where it first stands
            return []
        seen.add(label)
        return [x for b in before.get(label, ()) for x in row(b)] + [label]

    rows = [x for label in grid.rows if label not in placed for x in row(label)]
    rows += [label for label in grid.rows if label not in seen]  # placed by no finding
    return replace(grid, rows=tuple(rows), series=tuple(series))
