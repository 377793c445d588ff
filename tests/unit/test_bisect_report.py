"""What the bisect output says about how sure it is, and about runs that disagree."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Sequence
from pathlib import Path

import pytest

from repromatrix.bisect import Mode, Outcome, OutcomeKind, Verdict
from repromatrix.bisect_evidence import Evaluated, Run
from repromatrix.bisect_plan import BisectRequest, Setup, make_setup
from repromatrix.bisect_session import Start
from repromatrix.candidates import Axis, Candidate
from repromatrix.config import load_matrix
from repromatrix.dag import Dag
from repromatrix.model import SourceKind, Status
from repromatrix.records import Machine, Result
from repromatrix.report.bisect import BisectReport
from repromatrix.report.bisect_ends import skipped_bases
from repromatrix.report.bisect_progress import start_line

MATRIX = """\
schema: 1
libraries:
  lib:
    git: https://example.invalid/lib.git
    import: lib
    versions: [{git: aaaaaaa}]
repros:
  r:
    script: repros/r.py
    gpus: [cpu]
    libraries: {lib: all}
"""


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    (tmp_path / "repros").mkdir()
    (tmp_path / "repros" / "r.py").write_text("")
    (tmp_path / "matrix.yaml").write_text(MATRIX)
    matrix = load_matrix(tmp_path / "matrix.yaml")
    return make_setup(BisectRequest(repro="r", library="lib", good="g", bad="b"), matrix)


def axis(n: int) -> Axis:
    shas = [f"{i:040x}" for i in range(n)]
    candidates = tuple(
        Candidate(rev=s, label=s[-10:], kind=SourceKind.GIT, parents=(shas[i - 1],) if i else ())
        for i, s in enumerate(shas)
    )
    return Axis(candidates=candidates, dag=Dag.chain(n), commits=True)


def entry(ax: Axis, index: int, statuses: list[Status], setup: Setup) -> Evaluated:
    runs = []
    for status in statuses:
        result = Result(
            key="k", cell_id="c", repro="r", base="host", gpu="cpu", status=status, reason="why"
        )
        verdict, different = setup.judge(result, "")
        runs.append(Run(result=result, verdict=verdict, reused=False, different=different))
    return Evaluated(index=index, candidate=ax.candidates[index], runs=runs)


def calibrated_at_4(
    *, confidence: float, runs: int, repeats: int, contradicted: tuple[int, ...]
) -> Outcome:
    """A calibrated answer naming candidate 4 (last old: 3), false rates 20% and 1%."""
    return Outcome(
        kind=OutcomeKind.FOUND,
        first_new=4,
        last_old=3,
        suspects=(4,),
        mode=Mode.CALIBRATED,
        confidence=confidence,
        runs=runs,
        repeats=repeats,
        false_new=0.2,
        false_old=0.01,
        contradicted=contradicted,
    )


def test_a_calibrated_answer_states_its_probability_and_flaky_commits(setup: Setup) -> None:
    ax = axis(6)
    ok, bad = Status.PASSED, Status.REGRESSED
    evaluated = {
        0: entry(ax, 0, [ok, ok, bad, ok, ok], setup),
        3: entry(ax, 3, [ok, ok, ok], setup),
        4: entry(ax, 4, [bad, bad, bad], setup),
        5: entry(ax, 5, [bad] * 5, setup),
    }
    outcome = calibrated_at_4(confidence=0.9934, runs=16, repeats=12, contradicted=(0,))
    report = BisectReport(setup=setup, axis=ax, evaluated=evaluated, outcome=outcome)
    out = io.StringIO()
    report.text(out)
    text = out.getvalue()
    assert f"first bad commit: {ax.candidates[4].rev}" in text
    assert "confidence: 99.3% (calibrated because verdicts contradicted each other at" in text
    assert "16 run(s), 12 of them repeats" in text
    assert "estimated false 'bad' verdicts 20%, false 'good' 1%" in text
    assert "4 passed, 1 regressed  flaky (1 bad, 4 good)" in text
    assert "3 regressed" in text
    assert "confidence: 99.3%" in report.markdown()
    assert "changed more than once" not in text  # commit 0's runs disagreed: real flakiness


def test_an_inconclusive_search_and_a_flaky_end_say_why(setup: Setup) -> None:
    ax = axis(6)
    evaluated = {0: entry(ax, 0, [Status.PASSED, Status.REGRESSED] * 3, setup)}
    inconclusive = Outcome(
        kind=OutcomeKind.INCONCLUSIVE,
        suspects=(2,),
        mode=Mode.CALIBRATED,
        confidence=0.71,
        runs=60,
    )
    report = BisectReport(setup=setup, axis=ax, evaluated=evaluated, outcome=inconclusive)
    line = report.problem()
    assert line.startswith("inconclusive: no answer at the asked confidence: most likely")
    assert "(71% after 60 runs)" in line
    assert "too flaky there" in line  # commit 0's runs disagree
    steady = BisectReport(
        setup=setup,
        axis=ax,
        evaluated={0: entry(ax, 0, [Status.PASSED], setup)},
        outcome=inconclusive,
    )
    assert "no commit's runs disagreed, but the runs allowed ran out first" in steady.problem()
    flaky_end = Outcome(kind=OutcomeKind.END_FLAKY, end=0, mode=Mode.CALIBRATED)
    report = BisectReport(setup=setup, axis=ax, evaluated=evaluated, outcome=flaky_end)
    assert report.problem().startswith("--good g (")
    assert "is flaky: the repro says 3 passed, 3 regressed in 6 runs" in report.problem()
    assert not flaky_end.ok
    assert entry(ax, 1, [Status.ERROR], setup).runs[0].verdict is Verdict.SKIP


def test_an_inconclusive_best_guess_says_how_likely_it_is_not_only_its_floor(
    setup: Setup,
) -> None:
    """A very flaky repro's best guess can be sure at ~0% under its least favourable
    plausible rates: "most likely m23 (0% after 80 runs)" read as a contradiction."""
    ax = axis(6)
    evaluated = {0: entry(ax, 0, [Status.PASSED, Status.REGRESSED] * 3, setup)}
    outcome = Outcome(
        kind=OutcomeKind.INCONCLUSIVE,
        suspects=(2,),
        mode=Mode.CALIBRATED,
        confidence=0.0004,
        likely=0.41,
        runs=80,
    )
    line = BisectReport(setup=setup, axis=ax, evaluated=evaluated, outcome=outcome).problem()
    assert "(41% likely, at least 0% whatever the rates, after 80 runs)" in line


def test_a_trusting_answer_says_its_confidence_was_not_measured(setup: Setup) -> None:
    ax = axis(3)
    outcome = Outcome(kind=OutcomeKind.FOUND, first_new=1, suspects=(1,), runs=3)
    report = BisectReport(setup=setup, axis=ax, evaluated={}, outcome=outcome)
    assert report.confidence().startswith("confidence: not measured: 3 run(s), 0 of them")
    assert "--calibrate N" in report.confidence()
    assert "one run per candidate trusts" in report.confidence()


def test_a_trusting_answer_from_stored_repeats_that_agree_says_so(setup: Setup) -> None:
    """`run --repeat 3` stored three runs that agreed at each declared commit; a trusting
    bisection then said "21 run(s), 14 of them repeats, no verdicts contradicted; one run
    per candidate trusts the repro", a line at odds with itself."""
    ax = axis(3)
    outcome = Outcome(kind=OutcomeKind.FOUND, first_new=1, suspects=(1,), runs=9, repeats=6)
    line = BisectReport(setup=setup, axis=ax, evaluated={}, outcome=outcome).confidence()
    assert line.startswith("confidence: not measured: 9 run(s), 6 of them repeats")
    assert "one run per candidate" not in line
    assert "runs that never disagreed trust the repro to be deterministic" in line


@pytest.mark.parametrize("said", [2, 1])
def test_a_trusting_answer_over_a_history_that_changed_twice_does_not_deny_it(
    setup: Setup, said: int
) -> None:
    """Bad at 1, good at 3 above it (`Outcome.changed`): the answer's note said the
    behaviour changes more than once, bad older than a good commit tested, and the line
    under it "no verdicts contradicted", a line at odds with the one above. Said once each
    (--max-runs 1), they may be a lie as well as a history that changed twice."""
    ax = axis(6)
    ok, bad = Status.PASSED, Status.REGRESSED
    evaluated = {
        0: entry(ax, 0, [ok], setup),
        1: entry(ax, 1, [bad] * said, setup),
        3: entry(ax, 3, [ok] * said, setup),
        4: entry(ax, 4, [ok], setup),
        5: entry(ax, 5, [bad], setup),
    }
    outcome = Outcome(
        kind=OutcomeKind.FOUND, first_new=5, last_old=4, suspects=(5,), runs=3 + 2 * said,
        repeats=2 * said - 2, changed=(1,),
    )  # fmt: skip
    line = BisectReport(setup=setup, axis=ax, evaluated=evaluated, outcome=outcome).confidence()
    assert "no verdicts contradicted" not in line, line
    if said == 2:
        assert "verdicts contradicted only as a history that changes twice makes them" in line
        assert "runs that never disagreed trust the repro to be deterministic" in line, line
    else:
        assert "verdicts contradicted, each said once: --max-runs allows no more" in line
        assert "a history that changes twice" not in line, line
    assert line.startswith(f"confidence: not measured: {3 + 2 * said} run(s)"), line
    # Twice alike is no proof: a flaky repro may lie twice running (its 25% false passes
    # did at K = 4); the note said "each said twice: no flaky repro" as a fact.
    note = "\n".join(
        BisectReport(setup=setup, axis=ax, evaluated=evaluated, outcome=outcome).headline()
    )
    twice = "each said twice alike, taken as a deterministic repro's (--calibrate N if it may"
    assert (twice in note) == (said == 2), note
    assert "no flaky repro" not in note, note


@pytest.mark.parametrize("first_parent", [False, True])
def test_a_merge_named_under_first_parent_is_not_said_to_have_good_parents(
    setup: Setup, first_parent: bool
) -> None:
    """Under --first-parent the merged branch was never searched: its tip is not 'good, as
    an ancestor' (it is where the change came from, as often as not)."""
    main = axis(4)
    tip = "f" * 40
    merge = Candidate(
        rev="e" * 40, label="e" * 10, kind=SourceKind.GIT, parents=(main.candidates[-1].rev, tip)
    )
    candidates = (*main.candidates, merge)
    ax = Axis(
        candidates=candidates,
        dag=Dag.chain(len(candidates)),
        commits=True,
        first_parent=first_parent,
    )
    outcome = Outcome(kind=OutcomeKind.FOUND, first_new=4, last_old=3, suspects=(4,), runs=4)
    text = "\n".join(BisectReport(setup=setup, axis=ax, evaluated={}, outcome=outcome).headline())
    start = start_line(Start(setup=setup, axis=ax, k=1))
    assert f"lib g..b ({'0' * 8}..{'e' * 8}): 5 commits" in start  # what the names resolved to
    # 7 runs of 2 commits are not 7 of the 5 commits evaluated
    assert ", 2 already evaluated (7 stored runs), " in start_line(
        Start(setup=setup, axis=ax, k=1, stored=2, runs=7)
    )
    assert ", 2 already evaluated, " in start_line(
        Start(setup=setup, axis=ax, k=1, stored=2, runs=2)
    )
    if first_parent:
        assert "good, as an ancestor" not in text
        assert f"merged ({tip[:10]}, not searched under --first-parent)" in text
        assert "(1 merge on the first-parent line: their branches are not searched)" in start
    else:
        assert f"{tip[:10]} (good, as an ancestor)" in text
        assert "(1 merge: branches are followed, not linearised)" in start


def test_an_octopus_merge_named_says_none_of_its_parents_shows_it(setup: Setup) -> None:
    """A merge of three branches (git merge a b c) whose parents are all good: it was
    'neither parent shows it' with three parents listed."""
    main = axis(4)
    tips = ("d" * 40, "f" * 40)
    merge = Candidate(
        rev="e" * 40, label="e" * 10, kind=SourceKind.GIT, parents=(main.candidates[-1].rev, *tips)
    )
    candidates = (*main.candidates, merge)
    ax = Axis(candidates=candidates, dag=Dag.chain(len(candidates)), commits=True)
    outcome = Outcome(kind=OutcomeKind.FOUND, first_new=4, last_old=3, suspects=(4,), runs=4)
    text = "\n".join(BisectReport(setup=setup, axis=ax, evaluated={}, outcome=outcome).headline())
    assert "neither" not in text
    assert f"none of its 3 parents shows it ({main.candidates[-1].rev[:10]} " in text
    assert "the combination of the merged branches does" in text


@pytest.mark.parametrize("parent", [Status.UNTESTABLE, Status.ERROR])
@pytest.mark.parametrize("below_good", [False, True])
def test_a_merge_whose_parent_gave_no_verdict_is_not_said_to_combine_good_branches(
    setup: Setup, parent: Status, below_good: bool
) -> None:
    """A merge named beside a parent that could not be tested (a skipped merge base of a
    --good off the new end's history, which git skips and goes on past): the line said
    "neither parent shows it (…(good), …(skip)); the combination of the merged branches
    does", exit 0, when the change may have come with the parent no run judged. A skipped
    parent that a good commit has as an ancestor (merged into it) is good as git takes it:
    the line says so as before."""
    shas = [f"{i:040x}" for i in range(5)]
    # 1 and 2 fork from 0; 3 follows 2 (and with below_good merges 1 too); 4 merges 3 and 1.
    parents = [(), (0,), (0,), (2, 1) if below_good else (2,), (3, 1)]
    candidates = tuple(
        Candidate(rev=sha, label=sha[-10:], kind=SourceKind.GIT, parents=tuple(shas[p] for p in ps))
        for sha, ps in zip(shas, parents, strict=True)
    )
    ax = Axis(candidates=candidates, dag=Dag(tuple(parents)), commits=True)
    ok = Status.PASSED
    evaluated = {1: entry(ax, 1, [parent], setup), 3: entry(ax, 3, [ok], setup)}
    outcome = Outcome(kind=OutcomeKind.FOUND, first_new=4, last_old=3, suspects=(4,), runs=4)
    report = BisectReport(setup=setup, axis=ax, evaluated=evaluated, outcome=outcome)
    text = "\n".join(report.headline())
    skipped = shas[1][:10]
    assert f"{skipped} (skip)" in text or f"{skipped} (different failure)" in text, text
    if below_good:
        assert "neither parent shows it" in text, text
        assert "the combination of the merged branches does" in text, text
        assert "no single verdict" not in text, text
        return
    assert "combination of the merged branches does" not in text, text
    assert "neither parent shows it" not in text, text
    assert f"but {skipped} gave no single verdict: the change may have come with it" in text


def test_two_skipped_merge_bases_are_spoken_of_as_two(setup: Setup) -> None:
    """After criss-cross merges both merge bases of an off-history --good could not be
    tested: the doubt said "the merge bases X, Y … may lie below it; … make it testable"."""
    base = axis(5)
    ax = dataclasses.replace(base, parted_from="g", old_ends=2)
    evaluated = {i: entry(ax, i, [Status.UNTESTABLE], setup) for i in (0, 1)}
    (line,) = skipped_bases(setup, ax, evaluated, lambda c: c.label, "first bad commit")
    assert "may lie below them; this is the first bad commit above them." in line, line
    assert "make them testable" in line, line
    (one,) = skipped_bases(setup, ax, {0: evaluated[0]}, lambda c: c.label, "first bad commit")
    assert "may lie below it; this is the first bad commit above it. To be sure, make it " in one


@pytest.mark.parametrize("find_fix", [False, True])
def test_a_root_commit_named_says_no_commit_of_its_history_brought_the_change(
    setup: Setup, find_fix: bool
) -> None:
    """A history merged in with --allow-unrelated-histories, the old end on the other
    root's: its root commit, bad, is git's first bad commit, and was named with exit 0 and
    nothing more, as if that commit had brought the change."""
    setup = dataclasses.replace(setup, find_fix=find_fix)
    main = axis(4)
    root = Candidate(rev="d" * 40, label="d" * 10, kind=SourceKind.GIT, parents=())
    merge = Candidate(
        rev="e" * 40,
        label="e" * 10,
        kind=SourceKind.GIT,
        parents=(main.candidates[3].rev, root.rev),
    )
    candidates = (*main.candidates, root, merge)
    ax = Axis(candidates=candidates, dag=Dag.chain(len(candidates)), commits=True)
    outcome = Outcome(kind=OutcomeKind.FOUND, first_new=4, last_old=3, suspects=(4,), runs=4)
    text = "\n".join(BisectReport(setup=setup, axis=ax, evaluated={}, outcome=outcome).headline())
    flag, term = ("--bad", "good") if find_fix else ("--good", "bad")
    assert (
        f"  a root commit: it has no parent, and {flag} g lies on another root's history; " in text
    )
    assert f"was {term} at its very first commit, so no one commit of it brought the change" in text
    cut = dataclasses.replace(ax, cut=(4,))  # a shallow clone's cut is no root: said otherwise
    assert "a root commit" not in "\n".join(
        BisectReport(setup=setup, axis=cut, evaluated={}, outcome=outcome).headline()
    )
    releases = dataclasses.replace(ax, commits=False)  # releases have no parents at all
    assert "a root commit" not in "\n".join(
        BisectReport(setup=setup, axis=releases, evaluated={}, outcome=outcome).headline()
    )


def test_contradictions_that_repeats_never_shake_suggest_a_second_change(setup: Setup) -> None:
    """Broken at 1, fixed at 2, broken again at 4, with a repro that never wavers: the
    calibrated search names one valid culprit, and the note says what the runs show."""
    ax = axis(6)
    ok, bad = Status.PASSED, Status.REGRESSED
    evaluated = {
        0: entry(ax, 0, [ok] * 3, setup),
        1: entry(ax, 1, [bad, bad], setup),
        2: entry(ax, 2, [ok, ok], setup),
        3: entry(ax, 3, [ok], setup),
        4: entry(ax, 4, [bad, bad], setup),
        5: entry(ax, 5, [bad] * 3, setup),
    }
    outcome = calibrated_at_4(confidence=0.995, runs=13, repeats=7, contradicted=(1, 2))
    report = BisectReport(setup=setup, axis=ax, evaluated=evaluated, outcome=outcome)
    (note,) = report.notes()
    label = report.label
    assert f"({label(ax.candidates[1])} bad, {label(ax.candidates[2])} good)" in note
    assert "no commit's runs disagreed in 7 repeat(s)" in note
    assert "more likely it changed more than once" in note
    assert note in report.markdown()


def test_a_confidence_is_never_rounded_to_certainty() -> None:
    from repromatrix.report.metrics import percent

    assert percent(0.99996) == "99.9%"
    assert percent(0.996, 0) == "99%"
    assert percent(0.9949) == "99.4%"
    assert percent(0.993) == "99.3%"
    assert percent(0.5) == "50.0%"
    assert percent(1.0) == "100.0%"


def test_an_answer_of_several_commits_is_a_list_in_markdown(setup: Setup) -> None:
    """The suspects were indented lines under the bold answer: CommonMark ran them into
    one paragraph."""
    ax = axis(6)
    outcome = Outcome(
        kind=OutcomeKind.AMBIGUOUS, last_old=1, first_new=4, suspects=(2, 3, 4), runs=4
    )
    report = BisectReport(setup=setup, axis=ax, evaluated={}, outcome=outcome)
    lines = report.markdown().splitlines()
    start = lines.index("**first bad commit is one of 3 (the others could not be evaluated):**")
    assert lines[start + 1] == ""
    assert [ln[:2] for ln in lines[start + 2 : start + 5]] == ["- ", "- ", "- "]
    assert lines[start + 5] == ""
    assert "one of 3" in report.ambiguity()


def _failed(ax: Axis, index: int, setup: Setup, failure: str) -> Evaluated:
    """One regressed run that failed `failure` (measuring nothing else), judged against
    the bad end's `a_err`."""
    result = Result(
        key="k", cell_id="c", repro="r", base="host", gpu="cpu", status=Status.REGRESSED,
        reason=f"{failure} off", metrics={failure: 0.5}, thresholds={failure: 1e-9},
    )  # fmt: skip
    verdict, different = setup.judge(result, "a_err")
    run = Run(result=result, verdict=verdict, reused=False, different=different)
    return Evaluated(index=index, candidate=ax.candidates[index], runs=[run])


def test_a_suspect_or_end_that_failed_differently_says_so_where_it_is_named(
    setup: Setup,
) -> None:
    """ "one of 2: 1.1 [regressed: b off], 1.2 [regressed: a off]" and "--good … could not
    be evaluated (regressed: b off)" read as the followed bug present there: the skip was
    a different failure, said only in a note below, or nowhere."""
    ax = axis(4)
    evaluated = {
        0: entry(ax, 0, [Status.PASSED], setup),
        1: _failed(ax, 1, setup, "b_err"),
        2: _failed(ax, 2, setup, "a_err"),
        3: _failed(ax, 3, setup, "a_err"),
    }
    outcome = Outcome(kind=OutcomeKind.AMBIGUOUS, last_old=0, first_new=2, suspects=(1, 2), runs=4)
    report = BisectReport(setup=setup, axis=ax, evaluated=evaluated, outcome=outcome)
    lines = report.headline()
    assert lines[1].endswith("[a different failure: regressed: b_err off]")
    assert lines[2].endswith("[regressed: a_err off]")
    ends = {0: _failed(ax, 0, setup, "b_err"), 3: evaluated[3]}
    skipped = Outcome(kind=OutcomeKind.END_SKIPPED, end=0, runs=2)
    report = BisectReport(setup=setup, axis=ax, evaluated=ends, outcome=skipped)
    assert "could not be evaluated (a different failure: regressed: b_err off)" in (
        report.problem()
    )


def test_one_of_n_left_by_different_failures_is_not_sent_to_retry_errors(
    setup: Setup,
) -> None:
    """Suspects skipped because they failed differently were told "make them testable (or
    --retry-errors)": a retry runs them into the same other failure."""
    ax = axis(5)
    evaluated = {
        0: entry(ax, 0, [Status.PASSED], setup),
        1: _failed(ax, 1, setup, "b_err"),
        2: _failed(ax, 2, setup, "b_err"),
        3: entry(ax, 3, [Status.ERROR], setup),
        4: _failed(ax, 4, setup, "a_err"),
    }
    both = Outcome(kind=OutcomeKind.AMBIGUOUS, last_old=0, first_new=4, suspects=(1, 2), runs=5)
    said = BisectReport(setup=setup, axis=ax, evaluated=evaluated, outcome=both).ambiguity()
    assert "--retry-errors" not in said
    assert "failed differently from the --bad end" in said
    assert "bisect it with its own --bad" in said
    mixed = Outcome(kind=OutcomeKind.AMBIGUOUS, last_old=0, first_new=4, suspects=(2, 3), runs=5)
    said = BisectReport(setup=setup, axis=ax, evaluated=evaluated, outcome=mixed).ambiguity()
    assert "run the same command again with --retry-errors" in said
    assert "1 of them failed differently from the --bad end" in said


def test_one_of_n_left_by_timeouts_is_sent_to_a_longer_timeout(setup: Setup) -> None:
    """`bisect … --timeout 2` whose m20 timed out said "fix what stops them and run the same
    command again with --retry-errors (stored errors and timeouts stand until then)": that
    command timed out at m20 again (exit 6, the same line), while a longer --timeout runs
    a shorter stored timeout again by itself."""
    ax = axis(6)
    evaluated = {
        0: entry(ax, 0, [Status.PASSED], setup),
        1: entry(ax, 1, [Status.TIMEOUT], setup),
        2: entry(ax, 2, [Status.ERROR], setup),
        3: entry(ax, 3, [Status.UNTESTABLE], setup),
        4: entry(ax, 4, [Status.REGRESSED], setup),
        5: entry(ax, 5, [Status.REGRESSED], setup),
    }

    def said(*suspects: int) -> str:
        one_of = Outcome(
            kind=OutcomeKind.AMBIGUOUS, last_old=0, first_new=4, suspects=suspects, runs=6
        )
        return BisectReport(setup=setup, axis=ax, evaluated=evaluated, outcome=one_of).ambiguity()

    slow = said(1, 4)
    assert "with a longer --timeout than the limit that stopped them" in slow, slow
    assert "timeouts stand" not in slow
    both = said(1, 2, 4)
    assert "--retry-errors, and a longer --timeout for the 1 that timed out" in both, both
    assert "(stored errors stand until then)" in both
    assert "--timeout" not in said(2, 4)
    assert "a longer --timeout for the 1 that timed out)" in said(1, 3, 4)


def test_a_round_line_of_a_very_flaky_repro_says_how_likely_its_guess_is(
    setup: Setup,
) -> None:
    """The round line printed the least any plausible pair of rates gives the best guess:
    "calibrated: most likely m23 (0.0%)" read as a contradiction (the answer's text had
    been mended, the round lines not)."""
    from repromatrix.bisect_terms import Progress
    from repromatrix.report.bisect_progress import round_line

    ax = axis(5)
    done = [entry(ax, 2, [Status.PASSED, Status.REGRESSED], setup)]
    unsure = Progress(mode=Mode.CALIBRATED, left=2, best=3, confidence=0.0004, likely=0.26)
    line = round_line(4, done, unsure, ax.candidates)
    assert line.endswith("most likely 00000000 (26.0% likely, at least 0.0% whatever the rates)")
    sure = Progress(mode=Mode.CALIBRATED, left=0, best=3, confidence=0.995, likely=0.998)
    assert round_line(5, done, sure, ax.candidates).endswith(
        "most likely 00000000 (99.8% likely, at least 99.5% whatever the rates)"
    )


def test_a_calibrated_end_problem_says_no_answer_is_named_not_unknown(setup: Setup) -> None:
    """A flaky --good end under calibration said "confidence: unknown; 20 run(s)", as if an
    answer had been given whose odds were not known."""
    ax = axis(5)
    evaluated = {0: entry(ax, 0, [Status.PASSED, Status.REGRESSED] * 5, setup)}
    flaky_end = Outcome(kind=OutcomeKind.END_FLAKY, end=0, mode=Mode.CALIBRATED, runs=10, repeats=9)
    said = BisectReport(setup=setup, axis=ax, evaluated=evaluated, outcome=flaky_end).confidence()
    assert said.startswith("confidence: none: no commit is named (see above); 10 run(s)")
    # --markdown puts the confidence line above the answer: "see above" pointed at nothing.
    markdown = BisectReport(setup=setup, axis=ax, evaluated=evaluated, outcome=flaky_end)
    lines = markdown.markdown().splitlines()
    said_at = next(i for i, ln in enumerate(lines) if ln.startswith("- confidence: none"))
    assert lines[said_at].startswith("- confidence: none: no commit is named (see below); ")
    assert any(ln.startswith("**--good") for ln in lines[said_at:]), lines


def test_a_calibrated_end_that_ran_once_is_unconfirmed_not_flaky(setup: Setup) -> None:
    """A repro the store had seen lie, under --max-runs 1: the --good end ran once and
    regressed, and the answer said "--good ... is flaky: the repro says regressed", of
    one run that disagreed with nothing (exit 6 either way)."""
    ax = axis(5)
    once = {0: entry(ax, 0, [Status.REGRESSED], setup)}
    outcome = Outcome(kind=OutcomeKind.END_FLAKY, end=0, mode=Mode.CALIBRATED, runs=1, repeats=0)
    text = "\n".join(BisectReport(setup=setup, axis=ax, evaluated=once, outcome=outcome).headline())
    assert " is flaky" not in text, text
    assert " is unconfirmed: the repro says regressed" in text, text
    assert "raise --max-runs or pick another --good" in text, text
    split = {0: entry(ax, 0, [Status.REGRESSED, Status.PASSED], setup)}
    text = "\n".join(
        BisectReport(setup=setup, axis=ax, evaluated=split, outcome=outcome).headline()
    )
    assert " is flaky: the repro says " in text, text


def test_revision_names_in_the_markdown_confidence_line_are_text(setup: Setup) -> None:
    """The confidence line names the commits whose verdicts contradicted each other by
    their declared names, which reached --markdown as Markdown of their own (`*rc*` in
    italics, `@team` a ping) while every other line showed them as written."""
    from dataclasses import replace

    from repromatrix.model import Revision

    ax = axis(6)
    named = Revision(rev=ax.candidates[1].rev, kind=SourceKind.GIT, label="@team *rc*")
    candidates = list(ax.candidates)
    candidates[1] = replace(candidates[1], revision=named)
    ax = replace(ax, candidates=tuple(candidates))
    ok, bad = Status.PASSED, Status.REGRESSED
    evaluated = {i: entry(ax, i, [ok, bad] if i == 1 else [ok], setup) for i in range(4)}
    evaluated[4] = entry(ax, 4, [bad], setup)
    outcome = calibrated_at_4(confidence=0.99, runs=9, repeats=3, contradicted=(1,))
    markdown = BisectReport(setup=setup, axis=ax, evaluated=evaluated, outcome=outcome).markdown()
    (line,) = [ln for ln in markdown.splitlines() if ln.startswith("- confidence:")]
    assert "at @&#8203;team \\*rc\\* · " in line


def test_the_markdown_counts_runs_reused_as_the_terminal_does(setup: Setup) -> None:
    """The terminal said '3 stored run(s) reused' where --markdown said 'evaluated: 2 (1
    reused from the store)': points against runs. Both now count the runs."""
    import dataclasses

    ax = axis(6)
    fresh = entry(ax, 0, [Status.PASSED], setup)
    mixed = entry(ax, 5, [Status.REGRESSED] * 3, setup)
    mixed.runs[:2] = [dataclasses.replace(r, reused=True) for r in mixed.runs[:2]]
    stored = entry(ax, 3, [Status.PASSED], setup)
    stored.runs[:] = [dataclasses.replace(stored.runs[0], reused=True)]
    outcome = Outcome(kind=OutcomeKind.FOUND, last_old=3, first_new=5, suspects=(5,), runs=5)
    report = BisectReport(
        setup=setup, axis=ax, evaluated={0: fresh, 3: stored, 5: mixed}, outcome=outcome
    )
    assert "- evaluated: 3 point(s) in 5 run(s), 3 of them stored run(s) reused" in (
        report.markdown().splitlines()
    )


@pytest.mark.parametrize(("asked", "shown"), [(0.9999, "99.99"), (0.99, "99."), (0.995, "99.")])
def test_a_confidence_asked_beyond_one_decimal_is_shown_as_reached(
    setup: Setup, asked: float, shown: str
) -> None:
    """`--confidence 0.9999`: the search ran until the answer was 99.99% sure, and said
    "confidence: 99.9%", less than asked, at exit 0."""
    from repromatrix.bisect import Bisector, Policy, run

    def stable(points: Sequence[int]) -> list[Verdict]:
        return [Verdict.NEW if p >= 5 else Verdict.OLD for p in points]

    outcome, _ = run(Bisector(10, policy=Policy(calibrate=3, confidence=asked)), stable, k=2)
    assert outcome.kind is OutcomeKind.FOUND
    assert outcome.confidence is not None
    assert outcome.confidence >= asked
    line = BisectReport(setup=setup, axis=axis(10), evaluated={}, outcome=outcome).confidence()
    number = line.removeprefix("confidence: ").partition("%")[0]
    assert number.startswith(shown), line
    assert float(number) >= asked * 100 - 1e-9, line


def test_an_end_wrong_in_its_one_run_under_max_runs_1_is_said_unconfirmed(setup: Setup) -> None:
    """`--max-runs 1`: one false alarm at the good end said "--good g is not good: the repro
    says regressed; pick an older --good", as sure as two runs say it (README: two)."""
    from repromatrix.bisect import Bisector, Policy

    b = Bisector(6, policy=Policy(max_runs=1))
    b.record(0, Verdict.NEW)
    b.record(5, Verdict.NEW)
    assert b.done
    outcome = b.result()
    assert outcome.kind is OutcomeKind.OLD_END_IS_NEW
    ax = axis(6)
    evaluated = {0: entry(ax, 0, [Status.REGRESSED], setup)}
    line = BisectReport(setup=setup, axis=ax, evaluated=evaluated, outcome=outcome).problem()
    assert line.startswith("--good g (")
    assert "; one run only, unconfirmed (--max-runs 1 allows no second); pick" in line, line
    twice = {0: entry(ax, 0, [Status.REGRESSED] * 2, setup)}
    line = BisectReport(setup=setup, axis=ax, evaluated=twice, outcome=outcome).problem()
    assert "unconfirmed" not in line


def test_a_history_said_to_change_twice_on_another_machines_runs_says_so(setup: Setup) -> None:
    """Stored runs of machine m-b said c1 bad twice, this machine (m-a) said c2 good twice
    and bisected above it: the answer said 'the behaviour changes more than once ... no
    flaky repro', where the machines may be what differs; it now says whose runs those are."""
    ax = axis(6)
    ok, bad = Status.PASSED, Status.REGRESSED

    def on(index: int, statuses: list[Status], machine: str) -> Evaluated:
        e = entry(ax, index, statuses, setup)
        where = {"machine": Machine(id=machine)}
        e.runs = [dataclasses.replace(r, result=r.result.model_copy(update=where)) for r in e.runs]
        return e

    outcome = Outcome(kind=OutcomeKind.FOUND, first_new=4, last_old=3, suspects=(4,), changed=(1,))
    evaluated = {
        0: on(0, [ok], "m-a"),
        1: on(1, [bad, bad], "m-b"),
        2: on(2, [ok, ok], "m-a"),
        3: on(3, [ok], "m-a"),
        4: on(4, [bad], "m-a"),
        5: on(5, [bad], "m-a"),
    }
    report = BisectReport(setup=setup, axis=ax, evaluated=evaluated, outcome=outcome)
    text = "\n".join(report.headline())
    assert "the behaviour changes more than once: bad at" in text
    assert "made on m-b, the answer's on m-a: the machines may disagree" in text
    evaluated[1] = on(1, [bad, bad], "m-a")
    report = BisectReport(setup=setup, axis=ax, evaluated=evaluated, outcome=outcome)
    assert "machines may disagree" not in "\n".join(report.headline())


def test_a_history_said_to_change_twice_on_one_run_each_does_not_claim_two(setup: Setup) -> None:
    """--max-runs 1 allows no second run of c1 (bad below c2 good): the answer said 'each
    said twice: no flaky repro' of commits that ran once."""
    ax = axis(6)
    ok, bad = Status.PASSED, Status.REGRESSED
    outcome = Outcome(kind=OutcomeKind.FOUND, first_new=4, last_old=3, suspects=(4,), changed=(1,))
    statuses = [[ok], [bad], [ok], [ok], [bad], [bad]]
    evaluated = {i: entry(ax, i, s, setup) for i, s in enumerate(statuses)}
    text = "\n".join(
        BisectReport(setup=setup, axis=ax, evaluated=evaluated, outcome=outcome).headline()
    )
    assert "(said once: --max-runs allows no more)" in text
    assert "each said twice" not in text


def test_the_start_line_names_the_matrix_file_given_when_no_source_listed_releases(
    tmp_path: Path,
) -> None:
    """`repromatrix --matrix other.yaml bisect ... --no-index` said its releases came "from
    matrix.yaml only", a file it never read."""
    (tmp_path / "repros").mkdir()
    (tmp_path / "repros" / "r.py").write_text("")
    (tmp_path / "other.yaml").write_text(MATRIX)
    matrix = load_matrix(tmp_path / "other.yaml")
    setup = make_setup(BisectRequest(repro="r", library="lib", good="1.0", bad="2.0"), matrix)
    releases = tuple(Candidate(rev=v, label=v, kind=SourceKind.PYPI) for v in ("1.0", "1.5", "2.0"))
    ax = Axis(candidates=releases, dag=Dag.chain(3), commits=False, complete=False)
    start = start_line(Start(setup=setup, axis=ax, k=1))
    assert "lib 1.0..2.0: 3 releases (from other.yaml only)," in start


def test_the_markdown_names_every_good_end_given(tmp_path: Path) -> None:
    """`--good A --good B` wrote "from A (good) to …" in the Markdown: B was left out."""
    (tmp_path / "repros").mkdir()
    (tmp_path / "repros" / "r.py").write_text("")
    (tmp_path / "matrix.yaml").write_text(MATRIX)
    matrix = load_matrix(tmp_path / "matrix.yaml")
    request = BisectRequest(repro="r", library="lib", good="g1", bad="b", also_old=("g2",))
    setup = make_setup(request, matrix)
    outcome = Outcome(kind=OutcomeKind.FOUND, first_new=4, last_old=3, suspects=(4,), runs=4)
    text = BisectReport(setup=setup, axis=axis(6), evaluated={}, outcome=outcome).markdown()
    assert "6 commits from g1, g2 (good) to b (bad)" in text


def test_a_metric_kept_as_null_is_not_finite_in_the_table_not_nan(setup: Setup) -> None:
    """A repro whose error overflowed (inf, kept as null as NaN is) read "max_err=nan" in
    the bisect table (text and --markdown), where every other output says "not finite";
    its numbers were cut to 3 digits where every other output shows 4."""
    ax = axis(2)
    result = Result(
        key="k", cell_id="c", repro="r", base="host", gpu="cpu", status=Status.REGRESSED,
        reason="why", metrics={"mean_err": 0.0123456, "max_err": None},
        thresholds={"max_err": 0.01},
    )  # fmt: skip
    verdict, different = setup.judge(result, "")
    run = Run(result=result, verdict=verdict, reused=False, different=different)
    evaluated = {1: Evaluated(index=1, candidate=ax.candidates[1], runs=[run])}
    outcome = Outcome(kind=OutcomeKind.FOUND, first_new=1, last_old=0, suspects=(1,))
    report = BisectReport(setup=setup, axis=ax, evaluated=evaluated, outcome=outcome)
    (row,) = report.rows()
    assert row[5] == "max_err=not finite mean_err=0.01235"
    assert "max_err=not finite mean_err=0.01235" in report.markdown()


def test_a_calibrated_answer_names_the_verdicts_it_read_as_the_repro_s_lies(
    setup: Setup,
) -> None:
    """A calibrated bisect of a repro wrong 20% of the time named c25 at 99.8%, its table
    showing c18 "regressed … bad" below it (one false alarm) with nothing saying why: a
    verdict on the other side of the answer is named as read as false, as the report's
    sentence names it; flaky commits (their runs disagree, shown so) and steady ones on
    their side are not."""
    ax = axis(8)
    ok, bad = Status.PASSED, Status.REGRESSED
    evaluated = {
        0: entry(ax, 0, [ok] * 5, setup),
        1: entry(ax, 1, [bad], setup),  # a false alarm below the answer
        2: entry(ax, 2, [ok, bad, ok], setup),  # flaky: the table says so already
        3: entry(ax, 3, [ok, ok, ok], setup),
        4: entry(ax, 4, [bad, bad, bad], setup),
        6: entry(ax, 6, [ok], setup),  # a false pass above it
        7: entry(ax, 7, [bad] * 5, setup),
    }
    outcome = calibrated_at_4(confidence=0.995, runs=19, repeats=12, contradicted=(1,))
    report = BisectReport(setup=setup, axis=ax, evaluated=evaluated, outcome=outcome)
    out = io.StringIO()
    report.text(out)
    notes = [ln for ln in out.getvalue().splitlines() if "read as" in ln]
    label = report.label
    assert notes == [
        f"note: 2 verdict(s) read as the repro's false ones (the answer's side of them says "
        f"otherwise; the rates above allow them): {label(ax.candidates[1])} (bad), "
        f"{label(ax.candidates[6])} (good)"
    ]
    assert notes[0].removeprefix("note: ") in report.markdown()
    trusting = dataclasses.replace(outcome, mode=Mode.TRUSTING, confidence=None)
    again = BisectReport(setup=setup, axis=ax, evaluated=evaluated, outcome=trusting)
    assert not [ln for ln in again.notes() if "read as" in ln]


def test_the_answer_weighs_the_history_for_its_short_hashes_once_not_per_row(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The width of the short hashes reads every candidate (50,000 on a long history); read
    # per row and per note, the answer's table took 16 s of a 100,001-commit resume.
    import repromatrix.report.bisect as view

    seen: list[int] = []

    def counted(hashes: Sequence[str]) -> int:
        seen.append(len(hashes))
        return 7

    monkeypatch.setattr(view, "short_width", counted)
    ax = axis(40)
    ok, bad = Status.PASSED, Status.REGRESSED
    evaluated = {i: entry(ax, i, [bad if i >= 20 else ok], setup) for i in range(0, 40, 3)}
    outcome = Outcome(kind=OutcomeKind.FOUND, first_new=21, last_old=18, suspects=(19, 20, 21))
    report = BisectReport(setup=setup, axis=ax, evaluated=evaluated, outcome=outcome)
    out = io.StringIO()
    report.text(out)
    report.markdown()
    assert len(evaluated) > 10
    assert seen == [40]
