"""Release bisection as a user types it (real wheels, real pip): ends that are no release,
releases matrix.yaml declares that the sources do not offer, and the pre-releases left out
between the answer's two releases."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from bisect_repo import REPRO, build_wheels

pytestmark = pytest.mark.integration


def _bisect(
    tmp_path: Path, declared: list[str], *flags: str, source: str = "pypi"
) -> subprocess.CompletedProcess[str]:
    """`repromatrix bisect scale` over tmp_path/wheels, with `declared` in matrix.yaml."""
    (tmp_path / "repros").mkdir(exist_ok=True)
    (tmp_path / "repros" / "scale.py").write_text(REPRO)
    matrix = tmp_path / "matrix.yaml"
    versions = ", ".join(f'"{v}"' for v in declared)
    matrix.write_text(
        "schema: 1\nlibraries:\n  pkg: {pypi: bisectpkg, import: bisectpkg, "
        f"versions: [{versions}]}}\n"
        "repros:\n  scale: {script: repros/scale.py, gpus: [cpu], libraries: {pkg: all}}\n"
    )
    argv = [sys.executable, "-m", "repromatrix", "--matrix", str(matrix), "bisect", "scale"]
    argv += ["--library=pkg", "--executor=local", "--no-progress", f"--source={source}"]
    argv += [f"--find-links={tmp_path / 'wheels'}", "--no-index", f"--cache={tmp_path / 'c'}"]
    return subprocess.run(
        [*argv, *flags], cwd=tmp_path, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(
    ("flags", "flag", "given"),
    [
        (["--good=latest", "--bad=1.2"], "--good", "latest"),
        (["--good=1.0", "--bad=newest"], "--bad", "newest"),
        (["--bad=stable", "--good=1.2", "--find-fix"], "--bad", "stable"),
    ],
)
def test_an_end_that_is_no_version_is_a_usage_error_naming_its_flag(
    tmp_path: Path, flags: list[str], flag: str, given: str
) -> None:
    """`--good latest` exited 6 (bisect cannot proceed, as for an inconclusive search) with
    a line that named no flag; a word that is no version is a usage error (exit 64)."""
    build_wheels(tmp_path / "wheels", ["1.0", "1.1", "1.2"], bad={"1.2"})
    out = _bisect(tmp_path, ["1.0", "1.2"], *flags)
    assert out.returncode == 64, out.stderr
    (line,) = out.stderr.splitlines()
    assert line.startswith(f"repromatrix: error: {flag} {given}: "), line
    assert "not a PEP 440 version nor a declared PyPI version of pkg (declared: 1.0, 1.2)" in line
    assert f"give a release, e.g. {flag} 1." in line, line
    assert not list(tmp_path.glob("results/*.jsonl"))  # refused before anything ran


def test_a_declared_release_the_folder_does_not_offer_says_to_add_it_or_remove_it(
    tmp_path: Path,
) -> None:
    """matrix.yaml declares 1.2, which the folder lacks: pip failed on it, the answer was
    "one of 2" (right), and the way out said 'fix what stops them and run the same command
    again with --retry-errors', which fails again the same way."""
    build_wheels(tmp_path / "wheels", ["1.0", "1.1", "1.3", "1.4"], bad={"1.3", "1.4"})
    out = _bisect(tmp_path, ["1.0", "1.2", "1.4"], "--good=1.0", "--bad=1.4")
    assert out.returncode == 6, out.stderr
    assert "first bad release is one of 2" in out.stdout, out.stdout
    (line,) = [ln for ln in out.stderr.splitlines() if "error:" in ln]
    assert "fix what stops them" not in line, line
    assert (
        f"pkg 1.2 is declared in matrix.yaml but folder {tmp_path / 'wheels'} does not offer "
        "it: add its wheel or sdist there and run the same command again with --retry-errors, "
        "or remove it from pkg's versions in matrix.yaml"
    ) in line, line
    build_wheels(tmp_path / "wheels", ["1.2"], bad={"1.2"})
    again = _bisect(tmp_path, ["1.0", "1.2", "1.4"], "--good=1.0", "--bad=1.4", "--retry-errors")
    assert again.returncode == 0, again.stderr
    assert "first bad release: pkg 1.2\n" in again.stdout


def test_a_declared_end_the_folder_does_not_offer_says_to_add_it_or_pick_another(
    tmp_path: Path,
) -> None:
    build_wheels(tmp_path / "wheels", ["1.0", "1.1"], bad={"1.1"})
    out = _bisect(tmp_path, ["1.0", "1.2"], "--good=1.0", "--bad=1.2")
    assert out.returncode == 6, out.stderr
    (line,) = [ln for ln in out.stderr.splitlines() if "error:" in ln]
    assert (
        f"pkg 1.2 is declared in matrix.yaml but folder {tmp_path / 'wheels'} does not offer "
        "it: add its wheel or sdist there and run the same command again with --retry-errors, "
        "or pick another --bad"
    ) in line, line


def test_pre_releases_left_out_between_the_answer_are_named_with_the_way_to_run_them(
    tmp_path: Path,
) -> None:
    """The note said 'pre-release(s) between them were not run (…)' under the confidence
    line, where 'them' named nothing, and 'declare them in matrix.yaml' without where; it
    names the two releases and the versions list, and doing so finds the pre-release."""
    releases = ["1.0", "1.1", "1.2rc1", "1.2rc2", "1.2", "1.3"]
    build_wheels(tmp_path / "wheels", releases, bad={"1.2rc2", "1.2", "1.3"})
    out = _bisect(tmp_path, ["1.0", "1.3"], "--good=1.0", "--bad=1.3")
    assert out.returncode == 0, out.stderr
    assert "first bad release: pkg 1.2\n" in out.stdout, out.stdout
    assert (
        "note: pre-release(s) between 1.1 (good) and 1.2 (bad) were not run (1.2rc1, 1.2rc2): "
        "pip installs none unless asked; the change may have come in one: run the same "
        "command again with --pre (or add them to pkg's versions in matrix.yaml)"
    ) in out.stdout, out.stdout
    pre = _bisect(tmp_path, ["1.0", "1.3"], "--good=1.0", "--bad=1.3", "--pre")
    assert pre.returncode == 0, pre.stderr
    assert "first bad release: pkg 1.2rc2\n" in pre.stdout, pre.stdout
    assert "pre-release(s)" not in pre.stdout
    again = _bisect(tmp_path, ["1.0", "1.2rc1", "1.2rc2", "1.3"], "--good=1.0", "--bad=1.3")
    assert again.returncode == 0, again.stderr
    assert "first bad release: pkg 1.2rc2\n" in again.stdout, again.stdout
    assert "pre-release(s)" not in again.stdout


def test_a_pre_release_answer_past_a_pre_release_left_out_is_a_range(tmp_path: Path) -> None:
    """matrix.yaml declares 2.0rc1 alone of 2.0's pre-releases: 'first bad release: pkg
    2.0rc1' (exit 0) passed over 2.0b1, left out by pip's rule, which was bad already. The
    note's reason (pip installs no pre-release unless asked) holds for a final release
    only: the answer being a pre-release, 2.0b1 is as much a release as it, so either may
    be the first bad one (exit 6), and --pre runs it."""
    releases = ["1.0", "1.1", "2.0b1", "2.0rc1", "2.0", "2.1"]
    build_wheels(tmp_path / "wheels", releases, bad={"2.0b1", "2.0rc1", "2.0", "2.1"})
    declared = ["1.0", "2.0rc1", "2.1"]
    out = _bisect(tmp_path, declared, "--good=1.0", "--bad=2.1")
    assert out.returncode == 6, out.stderr
    assert "first bad release: pkg" not in out.stdout, out.stdout
    assert (
        "first bad release not known: it is between 1.1 (good) and 2.0rc1 (bad), 2.0rc1 "
        "included; 2.0b1 between them was not run (see the note below)\n"
    ) in out.stdout, out.stdout
    assert "note: pre-release(s) between 1.1 (good) and 2.0rc1 (bad) were not run (2.0b1)" in (
        out.stdout
    )
    assert (
        "error: no single first bad release: 2.0b1 (a pre-release, left out as pip leaves it "
        "out) between 1.1 and 2.0rc1 was not run; run the same command again with --pre (or "
        "add it to pkg's versions in matrix.yaml)\n"
    ) in out.stderr, out.stderr
    pre = _bisect(tmp_path, declared, "--good=1.0", "--bad=2.1", "--pre")
    assert pre.returncode == 0, pre.stderr
    assert "first bad release: pkg 2.0b1\n" in pre.stdout, pre.stdout


def test_a_pre_release_not_installable_here_stays_a_note_as_any_pre_release(
    tmp_path: Path,
) -> None:
    """1.3rc1 offered only as a Windows wheel made the answer a range (exit 6: 'bisect it
    with an interpreter or image it installs on'), where the same 1.3rc1 installable here
    is a note under 'first bad release: pkg 1.3' (exit 0): pip installs no pre-release
    unless asked, wherever it installs, so the answer holds for what pip installs."""
    wheels = build_wheels(tmp_path / "wheels", ["1.0", "1.1", "1.2", "1.3"], bad={"1.3"})
    windows = wheels / "bisectpkg-1.3rc1-cp311-cp311-win_amd64.whl"
    windows.write_bytes((wheels / "bisectpkg-1.3-py3-none-any.whl").read_bytes())
    out = _bisect(tmp_path, ["1.0", "1.3"], "--good=1.0", "--bad=1.3")
    assert out.returncode == 0, out.stderr
    assert "first bad release: pkg 1.3\n" in out.stdout, out.stdout
    assert "note: release(s) between 1.2 (good) and 1.3 (bad) were not run (1.3rc1)" in (out.stdout)


def test_ends_stored_from_another_source_are_no_complete_list_between_them(
    tmp_path: Path,
) -> None:
    """Bisected over a folder of 1.0..1.5 (first bad: 1.3), then again over a folder that
    offers only 2.x: its list read as complete, so the stored ends 1.0 and 1.5 were two
    adjacent releases and 'first bad release: pkg 1.5' came out, exit 0, where nothing was
    known of what lies between them there."""
    build_wheels(
        tmp_path / "wheels", ["1.0", "1.1", "1.2", "1.3", "1.4", "1.5"], bad={"1.3", "1.4", "1.5"}
    )
    first = _bisect(tmp_path, ["1.0", "1.5"], "--good=1.0", "--bad=1.5")
    assert "first bad release: pkg 1.3\n" in first.stdout, first.stdout
    build_wheels(tmp_path / "newer", ["2.0", "2.1"], bad={"2.0", "2.1"})
    (tmp_path / "wheels").rename(tmp_path / "older")
    (tmp_path / "newer").rename(tmp_path / "wheels")
    out = _bisect(tmp_path, ["1.0", "1.5"], "--good=1.0", "--bad=1.5")
    assert "first bad release:" not in out.stdout, out.stdout
    assert out.returncode == 6, out.stderr
    assert (
        "first bad release not known: it is between 1.0 (good) and 1.5 (bad), 1.5 included; "
        f"releases between them may exist but were not listed (folder {tmp_path / 'wheels'} "
        "does not offer 1.0, 1.5, declared in matrix.yaml)"
    ) in out.stdout, out.stdout
    (line,) = [ln for ln in out.stderr.splitlines() if "error:" in ln]
    assert "give the --find-links folder or index that offers" in line, line


def test_an_end_the_folder_does_not_offer_names_its_flag_and_what_is_offered(
    tmp_path: Path,
) -> None:
    """'BisectPkg 2.0 is not offered by folder W; check the version or the --find-links
    folder' named neither the flag nor what the folder does offer (matrix.yaml's name, in
    another case than the files, is the same project)."""
    build_wheels(tmp_path / "wheels", ["1.0", "1.1", "1.2", "1.3"], bad={"1.3"})
    out = _bisect(tmp_path, ["1.0", "1.3"], "--good=1.0", "--bad=2.0")
    assert out.returncode == 6, out.stderr
    (line,) = [ln for ln in out.stderr.splitlines() if "error:" in ln]
    assert line.startswith(
        f"repromatrix: error: --bad 2.0: bisectpkg 2.0 is not offered by folder "
        f"{tmp_path / 'wheels'} (it offers 4 releases, 1.0 to 1.3); "
    ), line


def test_a_one_of_answer_with_a_missing_release_and_another_failure_says_both_ways_out(
    tmp_path: Path,
) -> None:
    """1.2 is declared but not in the folder, and 1.3's wheel is damaged: the way out
    named 1.2 alone, as if adding its file were all there was to do."""
    wheels = build_wheels(tmp_path / "wheels", ["1.0", "1.1", "1.3", "1.4"], bad={"1.4"})
    (wheels / "bisectpkg-1.3-py3-none-any.whl").write_bytes(b"not a zip")
    out = _bisect(tmp_path, ["1.0", "1.2", "1.4"], "--good=1.0", "--bad=1.4")
    assert out.returncode == 6, out.stderr
    assert "first bad release is one of 3" in out.stdout, out.stdout
    (line,) = [ln for ln in out.stderr.splitlines() if "error:" in ln]
    assert "pkg 1.2 is declared in matrix.yaml but folder" in line, line
    assert line.endswith(
        "or remove it from pkg's versions in matrix.yaml; for 1.3: fix what stops them and "
        "run the same command again with --retry-errors (stored errors and timeouts stand "
        "until then)"
    ), line


def test_pre_applies_to_releases_alone(tmp_path: Path) -> None:
    build_wheels(tmp_path / "wheels", ["1.0", "1.1"], bad={"1.1"})
    out = _bisect(tmp_path, ["1.0", "1.1"], "--good=1.0", "--bad=1.1", "--pre")
    assert out.returncode == 0, out.stderr
    out = _bisect(tmp_path, ["1.0", "1.1"], "--good=1.0", "--bad=1.1", "--pre", source="git")
    assert out.returncode == 64, out.stderr
    assert "--pre applies to releases, not commits" in out.stderr


def test_ends_the_other_way_round_name_the_command_that_searches_that_way(
    tmp_path: Path,
) -> None:
    """A regression fixed between the ends, bisected without --find-fix: the --good end
    regressed and the --bad end passed, twice each, and the only way out named was "pick
    an older --good, from before the regression", which 1.0, the first release, has none
    of; the line now says the ends are the other way round and gives the command."""
    build_wheels(tmp_path / "wheels", ["1.0", "1.1", "1.2", "2.0"], bad={"1.0", "1.1"})
    out = _bisect(tmp_path, ["1.0", "2.0"], "--good=1.0", "--bad=2.0", "--jobs=2")
    assert out.returncode == 6, out.stderr
    (line,) = [ln for ln in out.stderr.splitlines() if ln.startswith("repromatrix: error:")]
    assert "--good 1.0 (1.0) is not good: the repro says regressed (2 of 2 runs)" in line
    assert "pick an older --good" not in line, line
    assert line.endswith(
        "and --bad 2.0 (2.0) is not bad either: passed (2 of 2 runs): scale(3.0) exact: the "
        "ends are the other way round: to find the release that fixed it, run the same "
        "command with --find-fix --bad 1.0 --good 2.0"
    ), line
    fixed = _bisect(tmp_path, ["1.0", "2.0"], "--find-fix", "--bad=1.0", "--good=2.0")
    assert fixed.returncode == 0, fixed.stderr
    assert "first fixed release: pkg 1.2\n" in fixed.stdout, fixed.stdout
    # The other way: --find-fix over a regression that came between the ends.
    other = tmp_path / "broke"
    build_wheels(other / "wheels", ["1.0", "1.1", "2.0"], bad={"1.1", "2.0"})
    out = _bisect(other, ["1.0", "2.0"], "--find-fix", "--bad=1.0", "--good=2.0", "--jobs=2")
    assert out.returncode == 6, out.stderr
    (line,) = [ln for ln in out.stderr.splitlines() if ln.startswith("repromatrix: error:")]
    assert line.endswith(
        "and --good 2.0 (2.0) is not good either: regressed (2 of 2 runs): scale(3.0) off by "
        "0.5: the ends are the other way round: to find the release that broke it, run the "
        "same command without --find-fix, with --good 1.0 --bad 2.0"
    ), line
    # One point a round: the other end runs before the contrary one runs again (it ran
    # --good twice and offered the other way beside "pick an older --good"), so the line
    # says the ends are the other way round here too.
    alone = tmp_path / "alone"
    build_wheels(alone / "wheels", ["1.0", "1.1", "1.2", "2.0"], bad={"1.0", "1.1"})
    one = _bisect(alone, ["1.0", "2.0"], "--good=1.1", "--bad=2.0", "--jobs=1")
    assert one.returncode == 6, one.stderr
    (line,) = [ln for ln in one.stderr.splitlines() if ln.startswith("repromatrix: error:")]
    assert line.endswith(
        "and --bad 2.0 (2.0) is not bad either: passed: scale(3.0) exact: the ends are the "
        "other way round: to find the release that fixed it, run the same command with "
        "--find-fix --bad 1.1 --good 2.0"
    ), line
