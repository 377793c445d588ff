"""The report's texts name the matrix file it read (`--matrix other.yaml`), not always
matrix.yaml: what to fix is in the file the user gave."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repromatrix.cli import main
from repromatrix.model import Status
from repromatrix.records import Result

MATRIX = """\
schema: 1
images:
  a: {ref: "x/pt:24.01-py3"}
  b: {ref: "x/pt:24.03-py3"}
  custom: {ref: "me/env:cuda12"}
libraries:
  lib:
    git: https://example.invalid/lib
    import: lib
    versions: [{git: cccccccc}, {git: bbbbbbbb}, {git: aaaaaaaa}]
  torch: {pypi: torch, import: torch, versions: ["2.1"]}
repros:
  r: {script: r.py, gpus: [cpu], libraries: {lib: all}}
  img: {script: r.py, gpus: [cpu], bases: [a, b, custom], libraries: {torch: all}}
"""


def _record(repro: str, label: str, status: Status, *, day: int = 1, **kw: str) -> Result:
    lib = "torch" if repro == "img" else "lib"
    commit = label * 5 if lib == "lib" else ""
    pin = {"kind": "git", "commit": commit, "rev": label, "committed": f"2026-01-0{day}"}
    base = kw.get("base", "host")
    return Result(
        key=f"k{repro}{label}{base}",
        cell_id=f"{repro}[cpu,{base},{lib}={label}]",
        repro=repro,
        base=base,
        image=kw.get("image", ""),
        gpu="cpu",
        pins={lib: label},
        commits={lib: commit} if commit else {},
        status=status,
        reason=status.value,
        finished="2026-02-01T00:00:00+00:00",
        provenance={"harness": {"pins": {lib: pin}}} if commit else {},
    )


def test_texts_name_the_matrix_file_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --matrix other.yaml, the order notes said "matrix.yaml lists lib's commits
    newest first", an undated image "give the image `released: YYYY-MM` in matrix.yaml",
    a renamed repro's records "Not in matrix.yaml" and the header "1 more repro not in
    matrix.yaml": a file the user never gave, which may not exist."""
    (tmp_path / "r.py").write_text("")
    matrix = tmp_path / "other.yaml"
    matrix.write_text(MATRIX)
    records = [
        _record("r", "aaaaaaaa", Status.PASSED, day=1),
        _record("r", "bbbbbbbb", Status.REGRESSED, day=2),
        _record("r", "cccccccc", Status.REGRESSED, day=3),
        _record("old_name", "aaaaaaaa", Status.REGRESSED),
        *(
            _record("img", "2.1", s, base=b, image=ref)
            for b, ref, s in (
                ("a", "x/pt:24.01-py3", Status.PASSED),
                ("b", "x/pt:24.03-py3", Status.REGRESSED),
                ("custom", "me/env:cuda12", Status.PASSED),
            )
        ),
    ]
    store = tmp_path / "results"
    store.mkdir()
    (store / "x.jsonl").write_text("".join(json.dumps(r.record()) + "\n" for r in records))
    out = tmp_path / "rep"
    argv = ["--matrix", str(matrix), "report", "--results", str(store), "--out", str(out)]
    assert main([*argv, "--cache", str(tmp_path / "no-cache")]) == 0, capsys.readouterr().err
    summary = (out / "summary.md").read_text()
    html = (out / "index.html").read_text()
    for text in (summary, html):
        assert "matrix.yaml" not in text
    assert "order unknown (other.yaml lists lib's commits newest first" in summary
    assert "give the image \\`released: YYYY-MM\\` in other.yaml" in summary
    assert "1 more repro not in other.yaml (1 cell), 1 reproduced" in summary
    assert "1 more repro not in other.yaml (1 cell), 1 reproduced" in html
    assert "Not in other.yaml: 1 record(s) from 1 run(s)" in html
    assert "differ from other.yaml's now" in summary
    assert '"matrix":"other.yaml"' in html  # the details panel names it (report.js)


def test_junit_names_the_matrix_file_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A renamed repro's failure in junit.xml began "not in matrix.yaml: " with --matrix
    other.yaml, as a CI page shows it."""
    (tmp_path / "r.py").write_text("")
    matrix = tmp_path / "other.yaml"
    matrix.write_text(MATRIX)
    store = tmp_path / "results"
    store.mkdir()
    record = _record("old_name", "aaaaaaaa", Status.REGRESSED)
    (store / "x.jsonl").write_text(json.dumps(record.record()) + "\n")
    out = tmp_path / "rep"
    argv = ["--matrix", str(matrix), "report", "--results", str(store), "--out", str(out)]
    assert main([*argv, "--cache", str(tmp_path / "no-cache")]) == 0, capsys.readouterr().err
    junit = (out / "junit.xml").read_text()
    assert 'message="not in other.yaml: ' in junit
    assert "matrix.yaml" not in junit
