"""Records of one cell that disagree between machines (or between GPUs of one type), each
steady on its own, are no flaky repro: the machines differ, and every output says so and
names them, where a reader was told to rerun a flaky test."""

from __future__ import annotations

from pathlib import Path

import pytest
from recordfactory import MACHINES_SPLIT, on_machine, report_of

from repromatrix.model import Status
from repromatrix.report import build_report
from repromatrix.report.compat import build_compat


def test_machines_that_each_give_one_verdict_are_said_to_disagree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """summary.md said "regressed only intermittently: flaky at 2.0 (2 passed, 2
    regressed)", junit.xml 'type="flaky"', the README "flaky at 2.0": m-b regressed
    every time, m-a never."""
    out = report_of(tmp_path, MACHINES_SPLIT, capsys)
    readme = tmp_path / "README.md"
    said = "machines disagree at 2.0 (m-a passed 2, m-b regressed 2)"
    summary = (out / "summary.md").read_text()
    assert f"regressed only on some machines: {said}" in summary, summary
    assert "flaky" not in summary.split("### Machines")[0].replace("says `flaky`", "")
    (row,) = [ln for ln in readme.read_text().splitlines() if ln.startswith("| r |")]
    assert f"| {said} |" in row, row
    junit = (out / "junit.xml").read_text()
    assert 'message="machines disagree: m-a passed 2, m-b regressed 2"' in junit
    assert 'type="machines-disagree"' in junit
    rows = build_compat(build_report(MACHINES_SPLIT), None).rows
    (line,) = [ln for row in rows for c in row.cells for ln in c]
    assert line.text.startswith(said), line.text


def test_gpus_of_one_machine_that_disagree_are_named_and_a_machine_at_odds_is_flaky() -> None:
    two = [on_machine("2.0", Status.PASSED, "m-a", day, gpu="GPU-0000aaaa") for day in (1, 4)]
    two += [on_machine("2.0", Status.REGRESSED, "m-a", day, gpu="GPU-1111bbbb") for day in (2, 3)]
    (entry,) = build_report(two).entries
    assert entry.flaky_text == (
        "GPUs disagree: GPU-0000aaaa of m-a passed 2, GPU-1111bbbb of m-a regressed 2"
    )
    # One run on each tells a flaky repro from machines that differ no better.
    (entry,) = build_report(MACHINES_SPLIT[2:4]).entries
    assert entry.flaky_text == "flaky: 1 passed, 1 regressed"
    # One machine that disagrees with itself is flaky, whatever the others do.
    odd = [*MACHINES_SPLIT[2:], on_machine("2.0", Status.PASSED, "m-b", 5)]
    (entry,) = build_report(odd).entries
    assert entry.flaky_text == "flaky: 3 passed, 2 regressed"


def test_report_compare_says_machines_now_disagree_not_flaky() -> None:
    """changes.md said "became flaky" of a cell where m-b regresses every time."""
    from repromatrix.report.compare import compare

    old = [on_machine("2.0", Status.PASSED, "m-a"), on_machine("2.0", Status.PASSED, "m-b", 2)]
    (change,) = compare(old, MACHINES_SPLIT[2:]).changes
    assert change.kind == "machines disagree now", change.kind
    assert change.after == "machines disagree: m-a passed 2, m-b regressed 2"
    (change,) = compare(MACHINES_SPLIT[2:3], MACHINES_SPLIT[2:]).changes
    assert change.kind == "machines disagree now"
    (change,) = compare([], MACHINES_SPLIT[2:]).changes
    assert change.kind == "machines disagree (not tested before)", change.kind


def test_a_boundary_between_machines_that_disagree_is_said_to_be_theirs_maybe() -> None:
    """m-b regresses wherever m-a passes (both ran 1.0); 2.0 ran on m-b alone, 3.0 on m-a
    alone: "ends at 3.0 (last bad 2.0)" read as a fix in 3.0, when the machines changed."""
    records = [
        on_machine("1.0", Status.PASSED, "m-a"),
        on_machine("1.0", Status.PASSED, "m-a", 2),
        on_machine("1.0", Status.REGRESSED, "m-b", 3),
        on_machine("1.0", Status.REGRESSED, "m-b", 4),
        on_machine("2.0", Status.REGRESSED, "m-b"),
        on_machine("3.0", Status.PASSED, "m-a"),
    ]
    (finding,) = build_report(records).repros[0].findings
    assert finding.summary.endswith(
        "; 2.0 ran on m-b alone and 3.0 on m-a alone, machines that disagree at 1.0: "
        "the change may be theirs"
    ), finding.summary
    # Where both sides ran on one machine, or no machines disagree, nothing is added.
    same = [on_machine("2.0", Status.REGRESSED, "m-b"), on_machine("3.0", Status.PASSED, "m-b", 2)]
    (finding,) = build_report(same + records[:4]).repros[0].findings
    assert "the change may be theirs" not in finding.summary, finding.summary
    (finding,) = build_report(records[:2] + records[4:]).repros[0].findings
    assert finding.summary == "begins at 2.0 (last good 1.0); ends at 3.0 (last bad 2.0)"


def test_report_compare_names_the_machines_of_a_flip_that_moved_machines() -> None:
    """Old results from m-b (regressed twice at 2.0), new ones from m-a (passed twice):
    changes.md said "1 fixed" of the same release, where only the machine changed, a
    change every other output names ("machines disagree" once the two are read together)."""
    from repromatrix.report.compare import compare

    old, new = MACHINES_SPLIT[3::2], MACHINES_SPLIT[2::2]
    comparison = compare(old, new)
    (change,) = comparison.changes
    assert change.kind == "fixed (on other machines: m-b before, m-a now: the change may be theirs)"
    assert comparison.headline.startswith(
        "1 verdict(s) flipped (0 fixed, 0 newly regressed, 0 flaky changes, 1 on other "
        "machines than before: the machines changed, perhaps not the library)"
    ), comparison.headline
    (change,) = compare(new, old).changes
    assert change.kind.startswith("regressed (was passing) (on other machines: m-a before,")
    # One machine on both sides, or a new set that holds the old one's records: a flip.
    again = [on_machine("2.0", Status.PASSED, "m-b", day) for day in (5, 6, 7)]
    (change,) = compare(old, [*old, *again]).changes
    assert change.kind == "became flaky", change.kind
    moved = [on_machine("2.0", Status.PASSED, "m-b", 5)]
    assert compare(old, moved).changes[0].kind == "fixed"
