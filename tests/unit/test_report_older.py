"""A cell whose records were all made before its definition changed (params edited in
matrix.yaml, the script edited) shows the newest of them until it runs again: every
output gave that verdict as the repro's as it is now, without a word."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repromatrix.cli import main
from repromatrix.config import load_matrix
from repromatrix.expand import expand
from repromatrix.model import Status
from repromatrix.records import Result

NOTE = (
    "1 of 2 cells with a record show one of another definition of the cell (the repro's "
    "script, its params or a pin's spelling differ from matrix.yaml's now, which has not "
    "run there yet): repromatrix run runs them"
)


def test_cells_shown_by_a_record_of_an_older_definition_are_counted_in_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "r.py").write_text("")
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(
        "schema: 1\n"
        "libraries:\n"
        '  lib: {pypi: lib-project, import: lib, versions: ["1.0", "1.1"]}\n'
        "repros:\n"
        "  r: {script: r.py, gpus: [cpu], params: {x: 7}, libraries: {lib: all}}\n"
    )
    keys = {c.pins[0].label: c.key for c in expand(load_matrix(matrix))}

    def rec(label: str, key: str, status: Status) -> Result:
        return Result(
            key=key,
            cell_id=f"r[cpu,host,lib={label}]",
            repro="r",
            base="host",
            gpu="cpu",
            pins={"lib": label},
            status=status,
            finished="2026-01-01T00:00:00+00:00",
        )

    # 1.0 ran as matrix.yaml defines it now; 1.1 only with the params of before (x: 5).
    records = [rec("1.0", keys["1.0"], Status.PASSED), rec("1.1", "k-x5", Status.REGRESSED)]
    store = tmp_path / "results"
    store.mkdir()
    (store / "x.jsonl").write_text("".join(json.dumps(r.record()) + "\n" for r in records))
    out = tmp_path / "rep"
    argv = ["--matrix", str(matrix), "report", "--results", str(store), "--out", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    assert NOTE in (out / "summary.md").read_text()
    assert NOTE.replace("'", "&#39;") in (out / "index.html").read_text()
    # Once every cell ran as defined now, nothing is said.
    records.append(rec("1.1", keys["1.1"], Status.REGRESSED))
    (store / "x.jsonl").write_text("".join(json.dumps(r.record()) + "\n" for r in records))
    assert main(argv) == 0, capsys.readouterr().err
    assert "another definition" not in (out / "summary.md").read_text()
