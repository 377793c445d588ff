"""The command line's own messages, read as a user reads them: a hint only where one is
near, each line one sentence that reads cleanly, and a refusal of an empty value that says
what the flag wants."""

from __future__ import annotations

from pathlib import Path

import pytest

from repromatrix.cli import main


@pytest.fixture
def matrix(tmp_path: Path) -> Path:
    (tmp_path / "r.py").write_text("raise SystemExit('never run')\n")
    path = tmp_path / "m.yaml"
    path.write_text(
        "schema: 1\ngpus:\n"
        '  H100: {compute_capability: "9.0", smi_names: ["NVIDIA H100"]}\n'
        '  A100: {compute_capability: "8.0", smi_names: ["NVIDIA A100"]}\n'
        "repros:\n  r: {script: r.py, gpus: [H100]}\n"
    )
    return path


@pytest.mark.parametrize("word", ["--bogus", "--zzz", "--frobnicate", "--gp-u-xyz"])
def test_a_made_up_flag_gets_no_did_you_mean(
    matrix: Path, capsys: pytest.CaptureFixture[str], word: str
) -> None:
    """`run --bogus` said "did you mean --gpu?": every flag shares '--', which lifted a
    word like no flag over difflib's cutoff."""
    assert main(["--matrix", str(matrix), "run", word]) == 64
    err = capsys.readouterr().err
    assert f"unrecognized arguments: {word} (see repromatrix run --help)" in err, err
    assert "did you mean" not in err, err


@pytest.mark.parametrize("command", ["list", "validate", "clean", "run"])
def test_an_unknown_flag_of_a_command_points_to_that_commands_help(
    matrix: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """`list --format json` said "unrecognized arguments: --format json (see --help)",
    naming neither the command nor the help that lists its flags (the top one lists none)."""
    assert main(["--matrix", str(matrix), command, "--format", "json"]) == 64
    err = capsys.readouterr().err
    assert err == (
        f"repromatrix: error: {command}: unrecognized arguments: --format json "
        f"(see repromatrix {command} --help)\n"
    ), err


def test_a_misspelt_flag_still_gets_its_hint(
    matrix: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--matrix", str(matrix), "run", "--gpuu", "H100"]) == 64
    assert "did you mean --gpu?" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "ends"),
    [
        (["list", "--gpu", "H1000"], "(known: cpu, H100, A100); did you mean 'H100'?"),
        (["run", "--repro", "rr"], "(known: r); did you mean 'r'?"),
        (["list", "--gpu", "Z9"], "(known: cpu, H100, A100)"),
    ],
)
def test_an_unknown_name_reads_as_one_sentence_with_the_hint_last(
    matrix: Path, capsys: pytest.CaptureFixture[str], argv: list[str], ends: str
) -> None:
    """`list --gpu H1000` said "did you mean 'H100'?; known: ...": a question mark glued
    to a semicolon. The names known are said in brackets, the hint ends the line."""
    assert main(["--matrix", str(matrix), *argv]) == 64
    err = capsys.readouterr().err.strip()
    assert err.endswith(ends), err
    assert "?;" not in err, err


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--executor", "ray", "--ray-address", ""],
        ["run", "--ray-address", " "],
        ["bisect", "r", "--library", "l", "--good", "a", "--bad", "b", "--ray-address", ""],
        ["ray-node", "--address", ""],
    ],
)
def test_an_empty_ray_address_is_refused_not_a_cluster_of_this_machine(
    matrix: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
) -> None:
    """`run --executor ray --ray-address "$HEAD"` of an unset variable ran the matrix on
    whatever cluster ran on this machine (another user's), as with no address at all;
    without --executor ray it ran every cell here, where a given address is refused."""
    # Where the address was dropped, no cluster of this machine is joined: none answers.
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:9")
    assert main(["--matrix", str(matrix), *argv]) == 64
    err = capsys.readouterr().err
    assert "address: an empty value; give the head's HOST:PORT (e.g. 10.0.0.5:6379)" in err, err


@pytest.mark.parametrize(
    ("argv", "wants"),
    [
        (["run", "--python", ""], "--python: an empty value; give an interpreter"),
        (["ray-node", "--python", " "], "--python: an empty value; give an interpreter"),
        (["run", "--results", " "], "--results: an empty value; give a results folder"),
        (["run", "--cache", ""], "--cache: an empty value; give a cache folder"),
        (["run", "--find-links", ""], "--find-links: an empty value; give a folder of wheels"),
        (["report", "--out", ""], "--out: an empty value; give an output folder"),
        (["--matrix=", "list"], "--matrix: an empty value; give a matrix file"),
        (["clean", "--cache", ""], "--cache: an empty value; give the runs' cache folder"),
    ],
)
def test_an_empty_value_is_refused_with_what_the_flag_wants(
    matrix: Path, capsys: pytest.CaptureFixture[str], argv: list[str], wants: str
) -> None:
    """`run --python ""` said "pass a file or folder", for a flag that wants an
    interpreter (a name on PATH as well as a path)."""
    full = argv if argv[0].startswith("--matrix") else ["--matrix", str(matrix), *argv]
    assert main(full) == 64
    err = capsys.readouterr().err
    assert wants in err, err
    assert "file or folder" not in err, err


def test_validate_and_list_count_one_as_one(
    matrix: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A matrix of one repro was "ok: 1 repros, 2 GPU types, 0 images, 0 libraries, 1 cells"
    and its `list` ended "1 cells"."""
    assert main(["--matrix", str(matrix), "validate"]) == 0
    said = capsys.readouterr().out
    assert said.endswith(": ok: 1 repro, 2 GPU types, 0 images, 0 libraries, 1 cell\n"), said
    assert main(["--matrix", str(matrix), "list"]) == 0
    assert capsys.readouterr().err == "1 cell\n"


@pytest.mark.parametrize(
    ("command", "word", "hint"),
    [
        ("run", "--rep", "did you mean --repeat or --repro?"),
        ("run", "--ret", "did you mean --retry-errors?"),
        ("list", "--rep", "did you mean --repro?"),
    ],
)
def test_a_flag_begun_names_every_flag_it_begins(
    matrix: Path, capsys: pytest.CaptureFixture[str], command: str, word: str, hint: str
) -> None:
    """`run --rep 3` said "did you mean --repro?" where --repeat (which takes a number)
    begins the same: the hint named one of the two by spelling alone. It names both."""
    assert main(["--matrix", str(matrix), command, word, "3"]) == 64
    err = capsys.readouterr().err
    assert f"{hint} (see repromatrix {command} --help)" in err, err


@pytest.fixture
def with_library(tmp_path: Path) -> Path:
    (tmp_path / "r.py").write_text("raise SystemExit('never run')\n")
    path = tmp_path / "l.yaml"
    path.write_text(
        "schema: 1\nlibraries:\n  lib: {pypi: lib, import: lib, versions: ['1.0', '1.10']}\n"
        "repros:\n  r: {script: r.py, gpus: [cpu], libraries: {lib: all}}\n"
    )
    return path


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        # It said "no cell of m.yaml pins that revision; pinned: 1.0, 1.10".
        (
            ["list", "--library", "lib==1.0"],
            "--library lib==1.0: write NAME=REV with one '=' (--library lib=1.0)",
        ),
        # It said "--library lib>: not in m.yaml (known: lib); did you mean 'lib'?".
        (
            ["run", "--library", "lib>=1.0"],
            "--library lib>=1.0: a pip requirement, not a revision; select each revision "
            "with a flag of its own (--library lib=REV), as many as needed",
        ),
        (
            ["list", "--library", "lib=1.0,1.10"],
            "--library lib=1.0,1.10: one revision per flag; repeat it (--library lib=1.0 "
            "--library lib=1.10)",
        ),
        # It said "--library lib=1.0: not in m.yaml (known: lib); did you mean 'lib'?".
        (
            ["bisect", "r", "--library", "lib=1.0", "--good", "1.0", "--bad", "1.10"],
            "--library lib=1.0: bisect takes the library's name (--library lib); give the "
            "ends with --good and --bad",
        ),
    ],
)
def test_a_library_flag_in_another_form_says_which_form_it_takes(
    with_library: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    assert main(["--matrix", str(with_library), *argv]) == 64
    assert capsys.readouterr().err == f"repromatrix: error: {expected}\n"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["list", "--gpu", "\u041d100"],
            "--gpu \u041d100 (holding U+041D, which is not ASCII): not in m.yaml (known: cpu, "
            "H100, A100); did you mean 'H100'?",
        ),
        (  # an argument's byte that is no UTF-8 was "holding U+DCFF", Python's stand-in
            ["list", "--gpu", "H100\udcff"],
            "--gpu H100? (holding the byte 0xFF, which is not UTF-8): not in m.yaml (known: "
            "cpu, H100, A100); did you mean 'H100'?",
        ),
        (
            ["list", "--library", "lib=1.\u041e"],
            "--library lib=1.\u041e (holding U+041E, which is not ASCII): no cell of l.yaml "
            "pins that revision; pinned: 1.0, 1.10 (to try other releases or commits, declare "
            "them or use `repromatrix bisect`)",
        ),
    ],
)
def test_a_flag_value_that_only_looks_like_a_name_says_which_character_is_not(
    matrix: Path,
    with_library: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    expected: str,
) -> None:
    """`--gpu Н100` (a Cyrillic Н) said "not in m.yaml (known: cpu, H100, A100); did you
    mean 'H100'?": the name it was told it meant is the one it looks like it gave."""
    path = matrix if argv[1] == "--gpu" else with_library
    assert main(["--matrix", str(path), *argv]) == 64
    assert capsys.readouterr().err == f"repromatrix: error: {expected}\n"


@pytest.mark.parametrize(("made", "what"), [(False, "no such folder"), (True, "not a folder")])
def test_a_find_links_that_is_no_folder_says_what_to_pass(
    matrix: Path, capsys: pytest.CaptureFixture[str], made: bool, what: str
) -> None:
    """It said only "--find-links DIR: not a directory", with no fix (as every other line
    has), for a folder not there and for a file alike."""
    links = matrix.parent / "wheels"
    if made:
        links.write_text("not a folder\n")
    assert main(["--matrix", str(matrix), "run", "--find-links", str(links)]) == 64
    assert capsys.readouterr().err == (
        f"repromatrix: error: --find-links {links}: {what}; pass the folder of the wheels or "
        "sdists\n"
    )


@pytest.mark.parametrize(
    ("titles", "wants"),
    [
        (["   "], "--title: an empty title; give the report's title, or leave --title out"),
        (["\t\n"], "--title: an empty title; give the report's title, or leave --title out"),
        # A colour code alone (`$(tput bold)$(tput sgr0)`): an empty <h1> and `## `.
        (["\x1b[1m\x1b[0m "], "--title: an empty title; give the report's title, or leave"),
    ],
)
def test_a_blank_title_is_refused_before_any_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], titles: list[str], wants: str
) -> None:
    """`report --title "   "` (a variable of spaces) wrote index.html and summary.md under
    an empty heading, exit 0. It is refused as an empty path is (exit 64), in one line."""
    argv = ["report", "--results", str(tmp_path), "--out", str(tmp_path / "rep")]
    assert main([*argv, *(a for t in titles for a in ("--title", t))]) == 64  # before loading
    err = capsys.readouterr().err
    assert wants in err, err
    assert err.count("\n") == 1, err
    assert not (tmp_path / "rep").exists()


@pytest.mark.parametrize(
    ("flag", "wants"),
    [
        ("--gpu", "a GPU type of the repro"),
        ("--image", "a base: an image name or 'host'"),
        ("--test", "a test of the library's own suite, PATH::NODE"),
        ("--test-from", "a commit, tag, branch or release"),
    ],
)
def test_an_empty_bisect_choice_is_refused_not_its_default(
    with_library: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, wants: str
) -> None:
    """`bisect r ... --gpu "$GPU"` of an unset variable bisected on the repro's only GPU
    type, `--image ""` on its first base, and `--test ""` beside a REPRO bisected with the
    repro, as if the flag were not given, where `run --gpu ""` is refused."""
    argv = ["--matrix", str(with_library), "bisect", "r", "--library", "lib", "--good", "1.0",
            "--bad", "1.10", "--results", str(tmp_path / "res"), "--cache",
            str(tmp_path / "cache"), flag, ""]  # fmt: skip
    assert main(argv) == 64
    err = capsys.readouterr().err
    assert err == f"repromatrix: error: {flag} is empty; give {wants}, or leave {flag} out\n"
    assert not (tmp_path / "res").exists()
