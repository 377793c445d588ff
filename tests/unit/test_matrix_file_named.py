"""Every message about the matrix names the file `--matrix` read: "fix matrix.yaml" sent
a user of `--matrix gpu-nightly.yaml` to a file that was not the one read."""

from __future__ import annotations

from pathlib import Path

import pytest

from repromatrix.cli import main

MATRIX = """\
schema: 1
libraries:
  lib: {pypi: lib, import: lib, versions: ["1.0", "2.0"]}
  src: {git: "https://example.invalid/src.git", import: src, versions: [{git: "a1"}, {git: "b2"}]}
repros:
  r: {script: r.py, gpus: [cpu], libraries: {lib: all}, calibrate: 15}
  s: {script: r.py, gpus: [cpu], libraries: {src: all}}
"""


@pytest.fixture
def other(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.py").write_text("raise SystemExit('never run')\n")
    (tmp_path / "matrix.yaml").write_text("this file is not the one read\n")
    path = tmp_path / "nightly.yaml"
    path.write_text(MATRIX)
    return path


BISECT = ["--good", "1.0", "--bad", "2.0", "--results", "res", "--cache", "c"]


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (
            ["run", "--results", "res", "--cache", "c", "--git-mirror", "zz=."],
            "--git-mirror zz: no library 'zz' in nightly.yaml",
        ),
        (
            ["bisect", "r", "--library", "lib", *BISECT, "--with", "zz=1"],
            "--with zz=1: write NAME=REV for a library in nightly.yaml",
        ),
        (
            ["bisect", "r", "--library", "lib", *BISECT, "--max-runs", "10"],
            "nightly.yaml: repro r asks for calibrate: 15, more than --max-runs 10",
        ),
        (
            ["bisect", "r", "--library", "lib", *BISECT, "--source", "git"],
            "library 'lib' has no 'git:' source in nightly.yaml; add its URL",
        ),
        (
            ["bisect", "s", "--library", "src", *BISECT, "--source", "pypi"],
            "--source pypi: library 'src' has no 'pypi:' name in nightly.yaml",
        ),
    ],
)
def test_a_message_about_the_matrix_names_the_file_read(
    other: Path, capsys: pytest.CaptureFixture[str], argv: list[str], said: str
) -> None:
    assert main(["--matrix", str(other), *argv]) != 0
    err = capsys.readouterr().err
    assert said in err, err
    assert "matrix.yaml" not in err, err


@pytest.mark.parametrize(
    "command", [["validate"], ["list"], ["run", "--results", "res", "--cache", "c"]]
)
def test_a_matrix_whose_rules_exclude_every_cell_is_named(
    other: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    # Each entry alone leaves cells, so neither is "matches every cell"; together they
    # leave none. `validate` said "ok: ... 0 cells" (exit 0) of a matrix that every `run`
    # and `list` refused (exit 64, no line of the file): an invalid matrix, exit 2, at the
    # first entry, in every command.
    other.write_text(MATRIX + "exclude:\n  - {repro: r}\n  - {repro: s}\n")
    assert main(["--matrix", str(other), *command]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith("repromatrix: error: nightly.yaml:9:5: "), line
    assert "its exclude entries remove every cell (nothing is left to run)" in line, line
    assert "matrix.yaml" not in line.replace("nightly.yaml", ""), line


def test_a_bisect_of_a_matrix_without_libraries_names_the_file(
    other: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other.write_text("schema: 1\nrepros:\n  r: {script: r.py, gpus: [cpu]}\n")
    assert main(["--matrix", str(other), "bisect", "r", "--library", "lib", *BISECT]) == 64
    err = capsys.readouterr().err
    assert "--library lib: not in nightly.yaml (known: none: nightly.yaml declares no" in err
    assert "matrix.yaml" not in err, err
