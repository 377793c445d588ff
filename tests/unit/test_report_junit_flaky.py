"""junit.xml says a flaky cell is flaky, with its counts, whichever of its records is newest."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.report import write_report


def _rec(status: Status, day: int) -> Result:
    return Result(
        key="k",
        cell_id="r[cpu,host,lib=1.0]",
        repro="r",
        base="host",
        gpu="cpu",
        pins={"lib": "1.0"},
        status=status,
        reason=f"{status.value} on day {day}",
        metrics={"err": 1.0 if status is Status.REGRESSED else 0.0},
        finished=f"2026-01-0{day}T00:00:00+00:00",
    )


@pytest.mark.parametrize("newest", [Status.PASSED, Status.REGRESSED])
def test_a_flaky_cell_fails_as_flaky_whichever_record_is_newest(
    tmp_path: Path, newest: Status
) -> None:
    """With its regression newest, a cell that also passed failed as type="regressed",
    message "regressed on day 2": a steady regression to a CI page, where every other
    output (and junit.xml, with its pass newest) says flaky, with the counts."""
    older = Status.PASSED if newest is Status.REGRESSED else Status.REGRESSED
    paths = write_report(results=[_rec(older, 1), _rec(newest, 2)], out_dir=tmp_path)
    (failure,) = ET.parse(paths["junit"]).getroot().iter("failure")
    assert failure.attrib == {"message": "flaky: 1 passed, 1 regressed", "type": "flaky"}
    assert f"{newest.value} on day 2" in (failure.text or "")  # the newest record's reason


def test_a_metric_kept_as_null_is_null_in_the_failure_as_in_the_record(tmp_path: Path) -> None:
    """A NaN output (kept as null by the judge) read "max_abs = None" in a CI page, a
    Python word where the record and results.csv say null; and bare "null" where every
    other format says "not finite"."""
    nan = _rec(Status.REGRESSED, 1).model_copy(update={"metrics": {"max_abs": None, "n": 2.0}})
    paths = write_report(results=[nan], out_dir=tmp_path)
    (failure,) = ET.parse(paths["junit"]).getroot().iter("failure")
    assert (failure.text or "").splitlines()[1:] == ["max_abs = null (not finite)", "n = 2.0"]
    assert '"max_abs":null' in paths["csv"].read_text().replace('""', '"')
