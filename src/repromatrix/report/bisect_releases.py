"""What a release bisection says beyond its answer (pure): a range where the list of
releases may miss some, and the releases between the answer's two that were not run.

A boundary between two adjacent listed releases is the first bad release only when every
source was read: else releases may hide between them, and the answer is a range that no
script may take for an answer (exit 6, its wording never "first bad release: "). Releases
the sources offer that were not candidates (pre-releases, files for another platform or
Python, yanked files) are named when they lie between the answer's last good and first
bad release: the change may have come in one of them. Such a release that is no
pre-release makes the answer a range too (exit 6): it is a release like the two around
it, only not one this interpreter can run, so either may be the first bad one. A
pre-release there stays a note: pip installs none unless asked, so "first bad release:
22.0" holds for what it installs (22.0rc1, bad too, said in the note); not so before an
answer that is a pre-release itself (declared): 22.0b1 left out before 22.0rc1 is a range.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from packaging.version import Version

from repromatrix.bisect import Outcome, OutcomeKind
from repromatrix.bisect_evidence import Evaluated
from repromatrix.bisect_plan import Setup
from repromatrix.candidates import Axis
from repromatrix.harness_pins import pin_field
from repromatrix.model import HOST_BASE
from repromatrix.pep440 import pep440
from repromatrix.report.bisect_failures import ambiguity_remedy


def _file(setup: Setup) -> str:
    """The matrix file's name, as `--matrix` gave it (not always matrix.yaml)."""
    return setup.matrix.path.name


def _term(setup: Setup) -> str:
    return "first fixed" if setup.find_fix else "first bad"


def unlisted_range(setup: Setup, axis: Axis, outcome: Outcome) -> str | None:
    """The answer as a range ("… not known: it is between 1.0 (good) and 2.0 (bad) …"),
    None when the answer is one release (a commit, or every source read)."""
    first_new = outcome.first_new
    if outcome.kind is not OutcomeKind.FOUND or first_new is None or first_new < 1:
        return None
    why = _unlisted_why(axis, first_new - 1, first_new, _file(setup))
    if why is None:
        return None
    old, new = axis.candidates[first_new - 1].label, axis.candidates[first_new].label
    return (
        f"{_term(setup)} release not known: it is between {old} ({setup.old_term}) and {new} "
        f"({setup.new_term}), {new} included; releases between them may exist but were not "
        f"listed ({why})"
    )


def unlisted_suspects(setup: Setup, axis: Axis, outcome: Outcome) -> list[str]:
    """For "one of N" releases (some could not be evaluated) from a list that may miss
    releases, the line that says so: the first bad one may be one nobody listed. [] for
    commits, a complete list, or another answer."""
    if outcome.kind is not OutcomeKind.AMBIGUOUS or outcome.last_old is None:
        return []
    if outcome.first_new is None:
        return []
    why = _unlisted_why(axis, outcome.last_old, outcome.first_new, _file(setup))
    if why is None:
        return []
    old, new = axis.candidates[outcome.last_old].label, axis.candidates[outcome.first_new].label
    return [
        f"  or an unlisted one: releases between {old} ({setup.old_term}) and {new} "
        f"({setup.new_term}) may exist but were not listed ({why})"
    ]


def _unlisted_why(axis: Axis, last_old: int, first_new: int, matrix_name: str) -> str | None:
    """Why releases between candidates `last_old` and `first_new` may exist unlisted, None
    when the list is whole there. A list whose every source answered is whole, except
    around a declared release those sources do not offer: its record came from another
    source (a folder of 2.x after a bisection over 1.x), which may hold releases between
    it and its neighbour; taken as adjacent, the stored 1.0 and 1.5 made 1.5 the answer."""
    if axis.commits:
        return None
    if not axis.complete:
        return "; ".join(axis.problems) or "no --find-links folder or index was read"
    unoffered = set(axis.unoffered)
    ends = [axis.candidates[i] for i in (last_old, first_new)]
    named = [c.label for c in ends if pep440(c.rev) in unoffered]
    if not named:
        return None
    return (
        f"{', '.join(axis.listed_from)} {'does' if len(axis.listed_from) == 1 else 'do'} not "
        f"offer {', '.join(named)}, declared in {matrix_name}"
    )


def unrun_range(setup: Setup, axis: Axis, outcome: Outcome) -> str | None:
    """The answer as a range when releases between its two were not run here (offered only
    for other platforms or Pythons, or yanked), None otherwise: "first bad release: 1.2"
    with 1.1 (a Windows wheel only) never run was an answer past a release that may be it."""
    first_new = outcome.first_new
    if outcome.kind is not OutcomeKind.FOUND or first_new is None or first_new < 1:
        return None
    skipped = _unrun_between(axis, first_new - 1, first_new)
    if axis.commits or not skipped:
        return None
    old, new = axis.candidates[first_new - 1].label, axis.candidates[first_new].label
    # A pre-release left out runs anywhere, with --pre: not run, not "not run here".
    verb = f"{'was' if len(skipped) == 1 else 'were'} {_not_run(axis, skipped)}"
    here = " here" if any(not Version(v).is_prerelease for v in skipped) else ""
    return (
        f"{_term(setup)} release not known: it is between {old} ({setup.old_term}) and {new} "
        f"({setup.new_term}), {new} included; {_few(skipped)} between them {verb}"
        f"{'' if verb.endswith('left out') else here} (see the note below)"
    )


def _not_run(axis: Axis, skipped: Sequence[str]) -> str:
    """'left out' of releases offered to an earlier bisection alone, which may have run
    them ('not run' was false of a deleted 22.0 whose stored run regressed)."""
    return "left out" if {str(v) for v in axis.gone} >= set(skipped) else "not run"


def _unrun_between(axis: Axis, last_old: int, first_new: int) -> list[str]:
    """Releases no pre-release between two candidates that the sources offer but that were
    no candidate: offered only as files this interpreter cannot install, or yanked."""
    lo, hi = pep440(axis.candidates[last_old].rev), pep440(axis.candidates[first_new].rev)
    if lo is None or hi is None:
        return []
    versions = {*axis.elsewhere, *axis.yanked, *axis.gone, *_pre_left_out(axis, hi)}
    return _counted(axis, sorted(versions), lo, hi)


def _pre_left_out(axis: Axis, hi: Version) -> tuple[Version, ...]:
    """The pre-releases left out (pip's rule) that may be the answer as much as `hi`, the
    first release of the new term: all of them where `hi` is itself a pre-release (one
    matrix.yaml declares), since "pip installs none unless asked" holds of it too. Before
    a final release they stay a note: the answer holds for what pip installs."""
    return axis.prereleases if hi.is_prerelease else ()


def _counted(axis: Axis, versions: Sequence[Version], lo: Version, hi: Version) -> list[str]:
    """`versions` strictly between `lo` and `hi` that could be the answer: a pre-release
    only where the candidates count them (an end is one, or --pre) or `hi` is one.
    Elsewhere pip installs none unless asked, wherever it installs: 1.3rc1 offered only
    for Windows is no more a release the answer skipped than 1.3rc1 offered here, a note
    (`unrun_releases`); the answer 1.3rc2 passed over either, the first bad one unknown."""
    pre = axis.pre or hi.is_prerelease
    return [str(v) for v in versions if lo < v < hi and (pre or not v.is_prerelease)]


def installed_note(axis: Axis, label: str, got: str) -> str:
    """ " (pip installed 1.2+cu130)" for release `label` run as another build, and the
    builds of it also offered that nobody ran ("1.2+cpu, also offered, was not run"): each
    is an install of its own, which `==1.2` never takes; "" when neither is so."""
    installed, named = pep440(got), pep440(label)
    other = installed != named if installed and named else got != label
    unrun = [
        str(b)
        for b in axis.builds
        if named is not None and Version(b.public) == named and b != installed
    ]
    said = [f"pip installed {got}"] if other else []
    if unrun:
        said.append(f"{_few(unrun)}, also offered, {'was' if len(unrun) == 1 else 'were'} not run")
    return f" ({'; '.join(said)})" if said else ""


def unrun_suspects(axis: Axis, outcome: Outcome) -> list[str]:
    """For "one of N" releases, the releases between its last good and first bad one that
    were not run here (offered only for other platforms or Pythons, or yanked): each may
    be the answer as much as the N, which it does not count. [] for commits or none."""
    if outcome.kind is not OutcomeKind.AMBIGUOUS or axis.commits:
        return []
    if outcome.last_old is None or outcome.first_new is None:
        return []
    skipped = _unrun_between(axis, outcome.last_old, outcome.first_new)
    here = " here" if any(not Version(v).is_prerelease for v in skipped) else ""
    return [f"  or {_few(skipped)}, not run{here} (see the note below)"] if skipped else []


def range_problem(setup: Setup, axis: Axis, outcome: Outcome) -> str:
    """Why a range is no answer a script may act on (exit 6), and the way out."""
    first_new = outcome.first_new or 1
    old, new = axis.candidates[first_new - 1].label, axis.candidates[first_new].label
    lo, hi = pep440(axis.candidates[first_new - 1].rev), pep440(axis.candidates[first_new].rev)
    if lo is not None and hi is not None and _unrun_between(axis, first_new - 1, first_new):
        yanked = _counted(axis, axis.yanked, lo, hi)
        elsewhere = _counted(axis, axis.elsewhere, lo, hi)
        gone = _counted(axis, axis.gone, lo, hi)
        pre = _counted(axis, _pre_left_out(axis, hi), lo, hi)
        said = [f"{_few(yanked)} (yanked)"] if yanked else []
        said += [f"{_few(elsewhere)} (not installable here)"] if elsewhere else []
        said += [f"{_few(gone)} (offered before, no longer)"] if gone else []
        one = len(pre) == 1
        said += [
            f"{_few(pre)} ({'a pre-release' if one else 'pre-releases'}, left out as pip "
            f"leaves {'it' if one else 'them'} out)"
        ] * bool(pre)
        ways = [f"declare a yanked release in {_file(setup)} (pip installs it when pinned)"]
        ways = ways if yanked else []
        ways += [_GONE_WAY] if gone else []
        if elsewhere:
            # Two or more ("20.1, 21.0 (not installable here)") are "them", each its file.
            lone = len(elsewhere) == 1
            them = "it" if lone else "them"
            if yanked:
                them = "the one not installable here" if lone else "those not installable here"
            ways.append(
                f"bisect {them} with an interpreter or image "
                f"{'it installs' if lone else 'they install'} on (--python, --image), or add "
                f"a wheel or sdist of {'it' if lone else 'each'} that installs here to a "
                "--find-links folder"
                + (f", or change pip's setting ({axis.excluded_by})" if axis.excluded_by else "")
            )
        skipped = [*yanked, *elsewhere, *gone, *pre]
        problem = (
            f"no single {_term(setup)} release: {' and '.join(said)} between {old} and {new} "
            f"{'was' if len(skipped) == 1 else 'were'} {_not_run(axis, skipped)}; "
        )
        declare = (
            f"add {'it' if one else 'them'} to {setup.library.name}'s versions in {_file(setup)}"
        )
        if pre and not ways:
            return f"{problem}run the same command again with --pre (or {declare})"
        ways += [f"give --pre (or {declare})"] if pre else []
        return f"{problem}{'; '.join(ways)}; then run the same command again"
    unlisted = _unlisted_why(axis, first_new - 1, first_new, _file(setup)) or ""
    offered_none = any(p.endswith(f"no release of {setup.library.pypi}") for p in axis.problems)
    if (axis.complete and unlisted) or offered_none:
        return (
            f"no single {_term(setup)} release: releases between {old} and {new} may exist "
            f"but were not listed ({unlisted}); give the --find-links folder "
            f"or index that offers {setup.library.pypi}'s releases, and run the same command "
            "again"
        )
    # pip before 21.2 has no `pip index`: the sources are readable, its pip is not able to.
    way = (
        "upgrade the interpreter's pip to 21.2 or later (pip install -U pip)"
        if any("is older than 21.2" in p for p in axis.problems)
        else "make the sources readable"
    )
    return (
        f"no single {_term(setup)} release: releases between {old} and {new} may exist but "
        f"were not listed; {way} (or declare the releases between them "
        f"in {_file(setup)}) and run the same command again"
    )


def unoffered(setup: Setup, axis: Axis, indices: Sequence[int], instead: str = "") -> str:
    """What to do about candidates among `indices` that matrix.yaml declares and no source
    offers: pip failed on them and will again, so "--retry-errors" alone is no way out.
    `instead` is the other way (default: remove them from matrix.yaml; for an end, pick
    another); "" when none is such."""
    missing = set(axis.unoffered)
    named = [
        axis.candidates[i].label
        for i in indices
        if 0 <= i < len(axis.candidates) and pep440(axis.candidates[i].rev) in missing
    ]
    if not named:
        return ""
    one = len(named) == 1
    instead = instead or (
        f"remove {'it' if one else 'them'} from {setup.library.name}'s versions in {_file(setup)}"
    )
    return (
        f"{setup.library.name} {_few(named)} {'is' if one else 'are'} declared in {_file(setup)} "
        f"but {', '.join(axis.listed_from)} {'does' if len(axis.listed_from) == 1 else 'do'} "
        f"not offer {'it' if one else 'them'}: add {'its' if one else 'their'} wheel or sdist "
        f"there and run the same command again with --retry-errors, or {instead}"
    )


def way_out(
    setup: Setup, axis: Axis, evaluated: Mapping[int, Evaluated], suspects: Sequence[int]
) -> str:
    """What to do about the suspects of a "one of N" answer: for declared releases the
    sources do not offer, `unoffered`; for the others that could not be evaluated, what
    `ambiguity_remedy` says of them (naming 1.2 alone hid that 1.3 failed otherwise),
    and, where some are undeclared releases and a declared one has its own `requires`,
    that those were installed without them (`undeclared_requires`)."""
    failed = [i for i in suspects if (e := evaluated.get(i)) is None or not e.tally.informative]
    if bare := undeclared_requires(setup, axis, failed, short=True):
        return f"{bare}; {_way_out(setup, axis, evaluated, suspects)}"
    return _way_out(setup, axis, evaluated, suspects)


def undeclared_requires(
    setup: Setup, axis: Axis, indices: Sequence[int], *, short: bool = False
) -> str:
    """Of the releases at `indices` that matrix.yaml does not declare, that they were
    installed without the per-version `requires` a declared release of the axis has
    (installs are --no-deps: a dependency 1.3 declares is missing for 1.2, or the base's
    own version of it is used), and the ways to give it; "" when none is such."""
    needs = [c for c in axis.candidates if c.revision is not None and c.revision.requires]
    bare = [axis.candidates[i].label for i in indices if axis.candidates[i].revision is None]
    if axis.commits or not needs or not bare:
        return ""
    lib = setup.library.name
    declares = "; ".join(
        f"{c.label}: {', '.join(c.revision.requires)}" for c in needs if c.revision
    )
    one = len(bare) == 1
    said = (
        f"{_few(bare)} {'is' if one else 'are'} not declared in {_file(setup)}, so "
        f"{'it was' if one else 'they were'} installed without the per-version requires of "
        f"declared releases ({declares}{'' if short else '; installs are --no-deps'})"
    )
    way = (
        f"put what every release needs in {lib}'s requires, or declare "
        f"{'it' if one else 'them'} in {lib}'s versions with {'its' if one else 'their'} own"
    )
    return f"{said}: {way}" if short else f"note: {said}: {way}"


def _way_out(
    setup: Setup, axis: Axis, evaluated: Mapping[int, Evaluated], suspects: Sequence[int]
) -> str:
    missing = unoffered(setup, axis, suspects)
    if not missing:
        return ambiguity_remedy(evaluated, suspects)
    gone = set(axis.unoffered)
    others = [
        i
        for i in suspects
        if pep440(axis.candidates[i].rev) not in gone
        and ((e := evaluated.get(i)) is None or not e.tally.informative)
    ]
    if not others:
        return missing
    named = _few([axis.candidates[i].label for i in others])
    return f"{missing}; for {named}: {ambiguity_remedy(evaluated, others)}"


def unrun_releases(
    setup: Setup, axis: Axis, outcome: Outcome, evaluated: Mapping[int, Evaluated]
) -> list[str]:
    """Pre-releases between the answer's last old and first new release (left out by
    pip's rule), and releases offered there only for other platforms or Pythons: the
    change may have come in one of them (never said "at" silently). Each note names the
    two releases (it stands below the answer and its confidence, where "them" named
    nothing) and, where there is one, the way to run them. First, whatever the answer,
    the undeclared releases that ran without a declared one's `requires`."""
    bare = undeclared_requires(setup, axis, sorted(evaluated))
    builds = _unrun_builds(setup, axis, outcome, evaluated)
    return [bare] * bool(bare) + _unrun_releases(setup, axis, outcome) + builds


def _unrun_builds(
    setup: Setup, axis: Axis, outcome: Outcome, evaluated: Mapping[int, Evaluated]
) -> list[str]:
    """The builds of the answer's last old release that did not run (1.0+cpu beside the
    1.0 that ran): PEP 440 puts each between that release and the answer, and each is an
    install of its own, so the change may have come in one (`installed_note` names those
    of the answer's own release); an end with the label bisects them."""
    if axis.commits or outcome.first_new is None or outcome.last_old is None:
        return []
    old, new = axis.candidates[outcome.last_old], axis.candidates[outcome.first_new]
    named = pep440(old.rev)
    e = evaluated.get(outcome.last_old)
    got = pin_field(e.result.provenance, setup.library.name, "installed") if e else ""
    unrun = [
        str(b)
        for b in axis.builds
        if named is not None and Version(b.public) == named and str(b) != (got or old.rev)
    ]
    if not unrun:
        return []
    flag = "--bad" if setup.find_fix else "--good"
    return [
        f"note: build(s) of {old.label} ({setup.old_term}) were not run ({_few(unrun)}): each "
        f"is an install of its own, which PEP 440 puts before {new.label}, and the change "
        f"may have come in one: bisect them with {flag} {unrun[0]}"
    ]


def _unrun_releases(setup: Setup, axis: Axis, outcome: Outcome) -> list[str]:
    if axis.commits or outcome.first_new is None or outcome.last_old is None:
        return []
    old, new = axis.candidates[outcome.last_old], axis.candidates[outcome.first_new]
    lo, hi = pep440(old.rev), pep440(new.rev)
    if lo is None or hi is None:
        return []
    versions = f"add them to {setup.library.name}'s versions in {_file(setup)} and run the same "
    unrun = (
        ("pre-release(s)", axis.prereleases, "pip installs none unless asked; the change "
         "may have come in one: run the same command again with --pre (or add them to "
         f"{setup.library.name}'s versions in {_file(setup)})"),
        ("release(s)", axis.elsewhere, f"{_uninstallable(setup, axis)}; the change may have "
         "come in one"),
        ("yanked release(s)", axis.yanked, "pip leaves them out (PEP 592); the change may "
         f"have come in one: {versions}command again (pip installs a yanked release when "
         "pinned)"),
        ("release(s)", axis.gone, "the sources offered them to an earlier bisection "
         "(the cache's releases/ list) and offer them no more, so its runs of them are not "
         "this one's evidence; the change may have come in "
         f"one: {_GONE_WAY}, and run the same command again{_with_pre(axis, lo, hi)}"),
    )  # fmt: skip
    between = f"between {old.label} ({setup.old_term}) and {new.label} ({setup.new_term})"
    notes = []
    for what, listed, why in unrun:
        inside = [str(v) for v in listed if lo < v < hi]
        if inside:
            verb = "were left out" if listed is axis.gone else "were not run"
            notes.append(f"note: {what} {between} {verb} ({_few(inside)}): {why}")
    return notes


def _with_pre(axis: Axis, lo: Version, hi: Version) -> str:
    """Adds " with --pre" where a gone release is a pre-release this search left out: put
    back, it is still no candidate without --pre, and "run the same command" ran none."""
    wanted = not axis.pre and any(v.is_prerelease for v in axis.gone if lo < v < hi)
    return " with --pre" if wanted else ""


#: The way to run a release the sources offered before and no longer do (`Axis.gone`).
_GONE_WAY = "put its wheel or sdist back in the --find-links folder or index"


def _uninstallable(setup: Setup, axis: Axis) -> str:
    """Why a release was no candidate where the cells install: this interpreter's files,
    or in an image (another Python) those of its python3 where it said them, else wheels
    for no Linux platform."""
    if axis.image_python:  # the image's python3 (or the Ray nodes' interpreter) said
        who = axis.installer or "the image's python3"
        return (
            f"offered only as files {who} (Python "
            f"{axis.image_python}) cannot install (wheels for another platform or Python, "
            "or a Requires-Python that excludes it)"
        )
    if setup.base != HOST_BASE:
        return (
            "offered only as wheels no Linux image of this host installs (for Windows, macOS "
            "or another machine)"
        )
    return (
        "offered only as files this interpreter cannot install (wheels for another platform "
        f"or Python, or a Requires-Python that excludes it{_setting(axis)})"
    )


def _setting(axis: Axis) -> str:
    """The pip setting that bars files of a release here, as `_unrun_releases` says it."""
    return f", or files pip's settings exclude: {axis.excluded_by}" if axis.excluded_by else ""


def _few(items: Sequence[str]) -> str:
    return ", ".join(items[:6]) + (", …" if len(items) > 6 else "")
