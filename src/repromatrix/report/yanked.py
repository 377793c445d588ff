"""Releases a listing saw only as yanked files (PEP 592), where a series passes them by
(pure).

pip leaves a yanked release out unless it is pinned exactly, and so does a bisection's
search (`candidate_releases`). Between two tested releases such a release is a point of
the axis nothing ran: the report said "no verdict at 1.2 (not run in this series)", as
if it were any release the search had not reached. It says "yanked", and where a
bisection's ends lay around it, that the bisection skipped it.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import yaml

from repromatrix.model import Status
from repromatrix.pep440 import pep440
from repromatrix.points import PointVerdict as Verdict
from repromatrix.points import Series
from repromatrix.ranges import Finding
from repromatrix.report.untested import Fill

if TYPE_CHECKING:
    from packaging.version import Version

    from repromatrix.config import Matrix
    from repromatrix.records import Result

#: What a series says of a yanked release nothing ran (`Point.note`).
YANKED = "yanked"
SKIPPED = "yanked: the bisection skipped it"
#: ... of a release a listing kept before yanked ones were said lists: not "not run in
#: this series" alone, which reads as a release the search had not reached.
UNKNOWN = "not run in this series; whether yanked unknown"
NOTES = {True: SKIPPED, False: YANKED, None: UNKNOWN}
#: The repro of `bisect --test` (`bisect_plan.UPSTREAM_REPRO`; the report does not import
#: the bisection's modules), which matrix.yaml does not list.
UPSTREAM = "upstream_pytest"
#: A point of these ran no cell (NOT_RUN: a record of a cell this host could not run).
NOT_RAN = (None, Status.NOT_RUN)


def yanked_filler(fill: Fill, yanked: Mapping[str, Mapping[str, bool | None]]) -> Fill:
    """`fill`, then each point of a series along a library of `yanked` (library →
    release → whether a bisection skipped it, None where unknown whether it is yanked,
    `kept_releases.KeptListing.yanked_or_unknown`) that nothing ran there, said to be yanked."""
    if not any(yanked.values()):
        return fill

    def filled(series: Series) -> Series:
        s = fill(series)
        here = yanked.get(s.axis)
        if not here or not any(p.label in here for p in s.points):
            return s
        points = tuple(
            replace(p, note=NOTES[here[p.label]])
            if p.label in here and p.absent and p.status is None and not p.untested
            else p
            for p in s.points
        )
        return replace(s, points=points)

    return filled


class _Repro(Protocol):
    """A repro's report (`build.ReproReport`, which imports this module)."""

    @property
    def findings(self) -> Sequence[Finding]: ...


def old_listing_notes(
    repros: Iterable[_Repro],
    yanked: Mapping[str, Mapping[str, bool | None]],
    *,
    cache: str | None = None,
    matrix: Matrix | None = None,
    results: Iterable[Result] = (),
) -> tuple[str, ...]:
    """What to run where a listing too old to say which releases are yanked (None in
    `yanked`, as `yanked_filler` takes it) left releases nothing ran "whether yanked
    unknown" (`UNKNOWN`): the bisection of each repro along the library run again, which
    lists its releases anew (`bisect_axis` saves each listing; the stored runs are taken
    again, none run twice). One note, or none; the page, summary.md and `repromatrix
    report`'s standard error say this one. `cache`: the --cache the listings were read
    from, as the command was given it; `matrix`: the matrix the report read (its path,
    as given, named unless it is matrix.yaml); `results`: the records, which say which
    labels ran as a git commit (`_commit_of`). Without an old listing no point is read."""
    old = {lib for lib, known in yanked.items() if None in known.values()}
    if not old:
        return ()
    unknown: dict[str, dict[str, None]] = {}  # library → its releases said so, in order
    # library → repro along it → (its ends, where: --gpu, --image, --with), those of its
    # first series with a good and a bad end (one run on another GPU may have none)
    ends: dict[str, dict[str, tuple[str | None, str]]] = {}
    # `bisect` takes only a repro the matrix lists: `bisect --test`'s upstream_pytest (which
    # bisects commits, never releases) and a renamed repro's old name are none. Their
    # commands name REPRO, for the user to give, as GOOD, BAD and CACHE are.
    stray: dict[str, None] = {}
    # Revisions `--with` would name that the matrix does not declare (`bisect` refuses them).
    undeclared: dict[tuple[str, str], None] = {}
    # (library, release) a cell ran: another series' point "not run in this series" alone.
    ran: set[tuple[str, str]] = set()
    listed: dict[str, set[Version]] = {}  # library → the versions of its listing
    for rr in repros:
        for f in rr.findings:
            s = f.series
            if s.axis not in old:
                continue
            ran.update((s.axis, p.label) for p in s.points if p.status not in NOT_RAN)
            said = [p.label for p in s.points if p.note == UNKNOWN]
            if not said:
                continue
            unknown.setdefault(s.axis, {}).update(dict.fromkeys(said))
            if s.axis not in listed:  # any spelling pip takes: a declared 1.2 is 1.2.0
                listed[s.axis] = {v for x in yanked[s.axis] if (v := pep440(x)) is not None}
            _take(s, ends.setdefault(s.axis, {}), listed[s.axis], matrix, stray, undeclared)
    unknown = {
        lib: kept
        for lib, seen in unknown.items()
        if (kept := {label: None for label in seen if (lib, label) not in ran})
    }
    ends = {lib: each for lib, each in ends.items() if lib in unknown}
    if not unknown:
        return ()
    for each in ends.values():
        if not each:  # no series along it ran: any repro's bisection lists its releases
            each["REPRO"] = (None, "")
    many = len(unknown) > 1
    libs = _and([lib + "'s" for lib in unknown])
    labels = [f"{lib + ' ' if many else ''}{_and(list(seen))}" for lib, seen in unknown.items()]
    one = not many and len(next(iter(unknown.values()))) == 1
    where = ""
    if matrix is not None and matrix.path != Path("matrix.yaml"):
        where = f" --matrix {shlex.quote(str(matrix.path))}"
    at = shlex.quote(cache) if cache is not None else "CACHE"
    runs = [
        f"repromatrix{where} bisect {repro if repro == 'REPRO' else shlex.quote(repro)} "
        f"--library {shlex.quote(lib)} {between or '--good GOOD --bad BAD'}{on} --cache {at}"
        for lib, each in ends.items()
        for repro, (between, on) in each.items()
    ]
    listing, were = ("listings", "were") if many else ("listing", "was")
    its = "each" if len(runs) > 1 else "its"
    # Where the store does not say what goes in the command, it says what to give.
    blanks = ["the ends it ran with for GOOD and BAD"] if None in _values(ends) else []
    file = matrix.path.name if matrix is not None else "matrix.yaml"
    spans = [lib for lib, each in ends.items() if "REPRO" in each]
    if spans:
        none = f"{_and(list(stray))} {'is' if len(stray) == 1 else 'are'} none" if stray else ""
        none += ": `bisect --test` runs commits, not releases" if UPSTREAM in stray else ""
        blanks.append(
            f"for REPRO a repro of {file} that spans {_and(spans)}{f' ({none})' if none else ''}"
        )
    blanks += ["the --cache it ran with for CACHE"] if cache is None else []
    commit = _commit_of(results) if undeclared else lambda lib, label: False
    adds = [
        f"{_spelled(label, commit(lib, label))} to libraries.{lib}.versions"
        for lib, label in undeclared
    ]
    return (
        f"the cache's {listing} of {libs} releases {were} kept before yanked releases were: "
        f'{", ".join(labels)}, which no cell ran, {"reads" if one else "read"} "whether '
        f'yanked unknown"; run {its} bisection again from the oldest to the newest release it '
        f"tested, with --cache ({'; '.join(runs)}): it lists the releases anew, its "
        f"stored runs reused{'; give ' + _and(blanks) if blanks else ''}"
        f"{'; first add ' + _and(adds) + ' in ' + file if adds else ''}",
    )


def _take(
    s: Series,
    each: dict[str, tuple[str | None, str]],
    listed: Container[Version],
    matrix: Matrix | None,
    stray: dict[str, None],
    undeclared: dict[tuple[str, str], None],
) -> None:
    """Into `each` (repro → its command's ends and options), the bisection along `s`
    where none of its repro's series has said both ends yet; `stray`, `undeclared`: what
    the note asks for (`old_listing_notes`)."""
    # A series of matrix cells with no result yet is no bisection to run again.
    if not any(p.status is not None and not p.absent for p in s.points):
        return
    repro = s.repro
    if matrix is not None and repro not in matrix.repros:
        stray[repro] = None
        repro = "REPRO"
    if each.get(repro, (None, ""))[0] is not None:
        return
    each[repro] = (_ends(s, listed), _where(s, matrix) if repro != "REPRO" else "")
    if repro != "REPRO" and matrix is not None:
        undeclared.update(dict.fromkeys(_undeclared(s, matrix)))


def _ends(series: Series, listed: Container[Version]) -> str | None:
    """The ends a bisection along `series` runs again with: the oldest and newest release
    it tested with a verdict (a bisection ran its own ends), good then bad (`--find-fix`
    where the newer is the good one); None where those are not one good and one bad (the
    records keep no bisection's ends, so the note asks for them). `listed`: the releases
    of the listing; a commit it ran is no end (a bisection of commits lists no releases)."""
    ran = [
        p
        for p in series.points
        if not p.absent
        and p.label not in series.unordered
        and p.verdict is not Verdict.UNKNOWN
        and pep440(p.label) in listed
    ]
    if not ran or {ran[0].verdict, ran[-1].verdict} != {Verdict.GOOD, Verdict.BAD}:
        return None
    old, new = ran[0], ran[-1]
    good, bad = (old, new) if old.verdict is Verdict.GOOD else (new, old)
    fix = " --find-fix" if bad is old else ""
    return f"--good {shlex.quote(good.label)} --bad {shlex.quote(bad.label)}{fix}"


def _where(series: Series, matrix: Matrix | None) -> str:
    """The options a bisection along `series` needs to run its cells: `--gpu` where its
    repro runs on several, `--image` where its base is not the repro's first (`bisect`'s
    defaults), `--with` for each other library it fixes (`bisect` takes none by default)."""
    spec = matrix.repros.get(series.repro) if matrix is not None else None
    out = [f" --with {shlex.quote(f'{lib}={label}')}" for lib, label in series.fixed]
    if spec is not None and series.base is not None and spec.bases[:1] != (series.base,):
        out.insert(0, f" --image {shlex.quote(series.base)}")
    if spec is not None and len(spec.gpus) > 1:
        out.insert(0, f" --gpu {shlex.quote(series.gpu)}")
    return "".join(out)


def _undeclared(series: Series, matrix: Matrix) -> list[tuple[str, str]]:
    """The (library, label) pairs `series` fixes that `matrix` does not declare: `--with`
    takes only a declared revision (a commit a bisection ran, a version since dropped)."""
    from repromatrix.expand import same_revision  # the report imports it only here

    out = []
    for lib, label in series.fixed:
        known = matrix.libraries.get(lib)
        pins = [known.pin(rv) for rv in known.revisions] if known is not None else []
        if not any(same_revision(pin, label) for pin in pins):
            out.append((lib, label))
    return out


def _commit_of(results: Iterable[Result]) -> Callable[[str, str], bool]:
    """Whether a library's label ran as a git commit: a record's pin of that label names
    its commit (a PyPI pin has none), or the label begins a commit a record names (a
    series may show a commit by another spelling than one record's)."""
    labels: set[tuple[str, str]] = set()
    full: dict[str, set[str]] = {}
    for r in results:
        for lib, sha in r.commits.items():
            labels.add((lib, r.pins.get(lib, "")))
            full.setdefault(lib, set()).add(sha)

    def commit(lib: str, label: str) -> bool:
        if (lib, label) in labels:
            return True
        return len(label) >= 7 and any(sha.startswith(label) for sha in full.get(lib, ()))

    return commit


def _spelled(label: str, commit: bool) -> str:
    """`label` as matrix.yaml's versions list takes it: a release, or {git: SHA} for a
    commit (`commit`; else where it is no version); quoted where YAML would read it as
    no string (a short id of digits alone, 69567171, is a number: matrix.yaml refuses it)."""
    text = _scalar(label)
    return f"{{git: {text}}}" if commit or pep440(label) is None else text


def _scalar(text: str) -> str:
    """`text` as a YAML scalar that reads back as that string, in a flow collection too
    ({git: ...}): single-quoted where plain it would not (a number, a date, `true`,
    `null`, a comma, or no scalar at all)."""
    try:
        plain = yaml.safe_load(f"[{text}]") == [text] and "\n" not in text
    except yaml.YAMLError:
        plain = False
    return text if plain else "'" + text.replace("'", "''") + "'"


def _values(ends: Mapping[str, Mapping[str, tuple[str | None, str]]]) -> list[str | None]:
    return [between for each in ends.values() for between, _ in each.values()]


def _and(items: list[str]) -> str:
    """a; a and b; a, b and c; the first three of more, and how many more."""
    if len(items) > 3:
        items = [*items[:3], f"{len(items) - 3} more"]
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
