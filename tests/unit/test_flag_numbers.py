"""Counts and numbers on the command line are ASCII digits: int() and float() also take a
full-width '５', '1_000' and ' 3 ', which `--jobs ５` and `--repeat 1_0` ran as 5 and 10."""

from __future__ import annotations

from pathlib import Path

import pytest
from clihelpers import never_run_matrix

from repromatrix.cli import main


@pytest.fixture
def matrix(tmp_path: Path) -> Path:
    return never_run_matrix(tmp_path)


RUN_FLAGS = ["--jobs", "--per-gpu", "--repeat", "--timeout", "--worker-memory", "--ray-retries"]
BISECT_FLAGS = ["--calibrate", "--max-runs", "--confidence", "--jobs", "--per-gpu", "--timeout"]


def command(matrix: Path, name: str, flag: str, value: str) -> list[str]:
    where = ["--results", str(matrix.parent / "res"), "--cache", str(matrix.parent / "cache")]
    match name:
        case "run":
            return ["--matrix", str(matrix), "run", "--no-progress", *where, flag, value]
        case "bisect":
            ends = ["--library", "lib", "--good", "a", "--bad", "b"]
            return ["--matrix", str(matrix), "bisect", "r", *ends, *where, flag, value]
        case "report":
            out = str(matrix.parent / "o")
            return ["report", "--results", str(matrix.parent), "--out", out, flag, value]
        case _:  # beside --address, never --head: the old code started a head on port 5
            return ["ray-node", "--address", "127.0.0.1:1", flag, value]


@pytest.mark.parametrize(
    ("name", "flag"),
    [
        *(("run", f) for f in RUN_FLAGS),
        *(("bisect", f) for f in BISECT_FLAGS),
        ("report", "--jobs"),
        ("ray-node", "--port"),
    ],
)
@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("５", "('５' U+FF15 is not a digit)"),  # a full-width 5
        ("1_0", "('_' is not a digit)"),
        (" 2", "(a space is not a digit)"),
        ("٣", "('٣' U+0663 is not a digit)"),  # an Arabic-Indic 3
    ],
)
def test_a_number_not_in_ascii_digits_is_refused_naming_the_character(
    matrix: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    flag: str,
    value: str,
    said: str,
) -> None:
    assert main(command(matrix, name, flag, value)) == 64
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"argument {flag}: '{value}' is not a " in err
    assert said in err
    assert "write it in the digits 0-9" in err
    assert not (matrix.parent / "res").exists()


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--jobs", "2.5", "'2.5' is not a whole number; write it in the digits 0-9, e.g. 4"),
        ("--timeout", "1e3x", "'1e3x' is not a number; write it in the digits 0-9"),
        ("--timeout", "0", "--timeout 0.0: give seconds above 0"),  # range checks still say
        ("--jobs", "-1", "--jobs -1: give a number from 1 to 4,096"),
    ],
)
def test_numbers_people_type_reach_the_range_checks(
    matrix: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str, message: str
) -> None:
    assert main(command(matrix, "run", flag, value)) == 64
    assert message in capsys.readouterr().err


def test_ascii_numbers_in_every_spelling_python_and_people_share_are_taken() -> None:
    from repromatrix.flag_types import count_arg, number_arg

    assert count_arg("007") == 7
    assert [number_arg(t) for t in ("30", "0.5", ".5", "5.", "1e3", "+2", "1E-2")] == [
        30.0, 0.5, 0.5, 5.0, 1000.0, 2.0, 0.01,
    ]  # fmt: skip
