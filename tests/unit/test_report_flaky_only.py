"""A series that regressed only at flaky points (records that disagree) is flaky there in
every output that carries its sentence, never "not reproduced": the regression did show up,
one run in a few."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repromatrix.cli import main
from repromatrix.model import Status
from repromatrix.records import Result
from repromatrix.report import build_report


def rec(status: Status, label: str, day: int = 1) -> Result:
    return Result(
        key=f"k{label}",
        cell_id=f"r[cpu,host,lib={label}]",
        repro="r",
        base="host",
        gpu="cpu",
        pins={"lib": label},
        status=status,
        reason=status.value,
        finished=f"2026-01-0{day}T00:00:00+00:00",
        metrics={"err": 1.0},
    )


P, R, E = Status.PASSED, Status.REGRESSED, Status.ERROR


def _report(tmp_path: Path, records: list[Result], capsys: pytest.CaptureFixture[str]) -> Path:
    """`repromatrix report --readme` over `records`; the folder holding every output."""
    (tmp_path / "r.py").write_text("")
    labels = sorted({r.pins["lib"] for r in records})
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(
        "schema: 1\n"
        "libraries:\n"
        f"  lib: {{pypi: lib-project, import: lib, versions: {json.dumps(labels)}}}\n"
        "repros:\n"
        "  r: {script: r.py, gpus: [cpu], libraries: {lib: all}}\n"
    )
    store = tmp_path / "results"
    store.mkdir()
    (store / "x.jsonl").write_text("".join(json.dumps(r.record()) + "\n" for r in records))
    readme = tmp_path / "README.md"
    readme.write_text("<!-- reproduced:begin -->\nold\n<!-- reproduced:end -->\n")
    out = tmp_path / "rep"
    argv = ["--matrix", str(matrix), "report", "--results", str(store), "--out", str(out)]
    assert main([*argv, "--readme", str(readme)]) == 0, capsys.readouterr().err
    (out / "README.md").write_text(readme.read_text())
    return out


def _outputs(out: Path) -> dict[str, str]:
    names = ("index.html", "compat.html", "summary.md", "README.md")
    return {name: (out / name).read_text() for name in names}


def test_a_series_bad_only_at_a_flaky_point_says_flaky_there_in_every_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = [
        rec(P, "1.0"),
        rec(P, "1.1", 1),
        rec(R, "1.1", 2),
        rec(P, "1.1", 3),
        rec(P, "1.2"),
    ]
    (row,) = build_report(records).summary_rows
    assert "flaky at 1.1 (2 passed, 1 regressed)" in row.sentence
    assert "not reproduced" not in row.sentence
    outputs = _outputs(_report(tmp_path, records, capsys))
    for name, text in outputs.items():
        assert "flaky at 1.1 (2 passed, 1 regressed)" in text, name
        assert "not reproduced" not in text, name
    # Shown as a regression (red), as a steady one is: its line was drawn as a pass's.
    html = outputs["index.html"]
    assert '<tr data-repro="r" data-r="r0" data-st="0:flaky 0:passed" class="repro-yes">' in html
    assert '<li data-g="0" class="bad"><b>cpu</b>: regressed only intermittently' in html


def test_flaky_points_alone_are_named_with_their_counts_however_alike_they_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two flaky points with the same counts and nothing else: "no verdict (2 cells flaky:
    1 passed, 1 regressed)" named neither."""
    records = [rec(P, "1.0", 1), rec(R, "1.0", 2), rec(P, "1.1", 1), rec(R, "1.1", 2)]
    records.append(rec(E, "1.2"))
    said = "flaky at 1.0 (1 passed, 1 regressed), 1.1 (1 passed, 1 regressed)"
    (row,) = build_report(records).summary_rows
    assert said in row.sentence
    assert "1.2 (error)" in row.sentence
    for name, text in _outputs(_report(tmp_path, records, capsys)).items():
        assert said in text, name
        assert "not reproduced" not in text, name


def test_a_flaky_point_whose_order_is_unknown_is_not_hidden_behind_the_passes() -> None:
    """Like a steady regression there: reproduced, if only one run in a few, where the order
    cannot place it; the sentence says so and the README table has its row."""
    from repromatrix.points import Point, Series
    from repromatrix.ranges import find_intervals

    odd = Point(label="aaaaaaaa", status=P, flaky=True, passed=1, regressed=1)
    f = find_intervals(
        Series(
            repro="r",
            gpu="cpu",
            axis="lib",
            base="host",
            points=(Point(label="1.0", status=P), odd, Point(label="2.0", status=P)),
            unordered=frozenset({"aaaaaaaa"}),
        )
    )
    assert f.summary.startswith("not reproduced where the order is known (2 of 2 passed)")
    assert f.summary.endswith(": aaaaaaaa (flaky: 1 passed, 1 regressed)")
    assert f.flaky_only == (odd,)
