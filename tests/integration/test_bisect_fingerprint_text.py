"""`repromatrix bisect` with a repro whose fingerprint is a message (a traceback's line,
commas and all), not a list of checks: a crash elsewhere is another failure, never the
followed one (real git, real repro processes)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from history_repo import CULPRIT, Line, bisect_cli, line_of_commits, write_matrix

pytestmark = pytest.mark.integration


def messaging_repro(root: Path, scale: str, other: str) -> None:
    """The history's repro, its scale regressions' fingerprint the message `scale`, and a
    crash of its own (`other`, no metrics) at the commits its params' `other_at` names."""
    script = root / "repros" / "pkg_check.py"
    anchor = '    with open(a.out + ".tmp", "w") as f:\n'
    cell = 'cell = os.environ.get("REPROMATRIX_CELL", "")\n'
    text = script.read_text()
    assert anchor in text
    assert cell in text
    text = text.replace(
        anchor, '    if status == "regressed":\n        result["fingerprint"] = FP\n' + anchor, 1
    )
    crash = (
        f"FP = {scale!r}\n"
        'if any(f"={rev}" in cell for rev in params.get("other_at", [])):\n'
        f"    FP = {other!r}\n"
        '    finish("regressed", "load failed", {})\n'
    )
    script.write_text(text.replace(cell, cell + crash, 1))


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Line:
    return line_of_commits(tmp_path_factory.mktemp("fingerprint"))


def crashing_elsewhere(
    tmp_path: Path, line: Line, scale: str, other: str
) -> subprocess.CompletedProcess[str]:
    """bisect of the history whose c4-c8 fail as `other` (no metrics), c9 on as `scale`."""
    other_at = [line.history.sha(f"c{i}")[:10] for i in range(4, CULPRIT)]
    write_matrix(tmp_path, line.history, params=json.dumps({"other_at": other_at}))
    messaging_repro(tmp_path, scale, other)
    return bisect_cli(tmp_path, "--good=good", "--bad=bad", cache=line.cache)


def fingerprinted(tmp_path: Path, line: Line, fp: str) -> subprocess.CompletedProcess[str]:
    """bisect of the history whose regressions, c9 on, have the fingerprint the Python
    lines `fp` set FP to (its own text in each run)."""
    write_matrix(tmp_path, line.history)
    script = tmp_path / "repros" / "pkg_check.py"
    messaging_repro(tmp_path, "", "")
    text = script.read_text()
    assert "FP = ''\n" in text
    script.write_text(text.replace("FP = ''\n", fp, 1))
    return bisect_cli(tmp_path, "--good=good", "--bad=bad", cache=line.cache)


def test_a_crash_in_another_file_is_not_the_followed_failure(tmp_path: Path, line: Line) -> None:
    """c4-c8 crash in io.py (scale is right there), c9 on scale is wrong. Split at their
    commas, the two tracebacks' lines shared 'line #': the search took c4-c8's crash for
    the bad end's failure and said 'first bad commit: c4', exit 0, for a bug of c9's
    (git bisect run of a check of scale names c9)."""
    history = line.history
    out = crashing_elsewhere(
        tmp_path,
        line,
        'AssertionError: File "bisectpkg/core.py", line 12, in scale',
        'OSError: File "bisectpkg/io.py", line 40, in load',
    )
    assert f"first bad commit: {history.sha('c4')}" not in out.stdout, out.stdout
    assert "failed differently from the --bad end" in out.stdout, out.stdout
    assert history.sha(f"c{CULPRIT}") in out.stdout, out.stdout


def test_a_message_quoting_its_line_and_value_is_followed_as_one_failure(
    tmp_path: Path, line: Line
) -> None:
    """The same message with the run's own value in it stays one failure: the answer is
    git bisect run's, c9, with nothing 'a different failure'."""
    out = fingerprinted(
        tmp_path,
        line,
        "FP = 'File \"core.py\", line 12, in scale: got {:.4f}, want 0'"
        ".format(os.getpid() / 1e5)\n",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"first bad commit: {line.first_bad}" in out.stdout, out.stdout
    assert "a different failure" not in out.stdout, out.stdout


def test_a_crash_of_another_signal_is_not_the_followed_failure(tmp_path: Path, line: Line) -> None:
    """c4-c8 are killed by signal 9 (out of memory), c9 on die of signal 11 (the scale
    bug). Their numbers taken for quoted values, the two were one failure: the search said
    'first bad commit: c4', exit 0, for the segfault that c9 brought."""
    history = line.history
    out = crashing_elsewhere(tmp_path, line, "worker died: signal 11", "worker died: signal 9")
    assert f"first bad commit: {history.sha('c4')}" not in out.stdout, out.stdout
    assert "failed differently from the --bad end (worker died: signal 11)" in out.stdout, (
        out.stdout
    )
    assert history.sha(f"c{CULPRIT}") in out.stdout, out.stdout


def test_a_traceback_through_a_temporary_folder_is_one_failure(tmp_path: Path, line: Line) -> None:
    """The scale bug's traceback runs through a kernel the repro writes to a temporary
    folder ('/tmp/tmp10mu4wry/kernel.py'), another name in every run: each regression
    was 'a different failure' of the bad end's, skipped, and bisect said 'first bad
    commit is one of 7', exit 6, where git bisect run names c9."""
    out = fingerprinted(
        tmp_path,
        line,
        "import tempfile\n"
        "FP = 'File \"{}/kernel.py\", line 3, in scale'.format(tempfile.mkdtemp())\n",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"first bad commit: {line.first_bad}" in out.stdout, out.stdout
    assert "a different failure" not in out.stdout, out.stdout


def test_a_child_killed_otherwise_is_not_the_followed_failure(tmp_path: Path, line: Line) -> None:
    """torchrun's ChildFailedError words a child's death 'exitcode  : -11' (the scale bug's
    segfault, c9 on) or 'exitcode  : -9' (c4-c8, killed: out of memory). 'exitcode' not
    read as a code's word, the two were one failure: bisect said 'first bad commit: c4',
    exit 0, for c9's bug."""
    history = line.history
    out = crashing_elsewhere(
        tmp_path,
        line,
        "Root Cause (first observed failure): exitcode  : -11 (pid: 4242)",
        "Root Cause (first observed failure): exitcode  : -9 (pid: 4242)",
    )
    assert f"first bad commit: {history.sha('c4')}" not in out.stdout, out.stdout
    assert "failed differently from the --bad end (Root Cause" in out.stdout, out.stdout
    assert history.sha(f"c{CULPRIT}") in out.stdout, out.stdout


def test_an_out_of_memory_error_quoting_other_units_is_one_failure(
    tmp_path: Path, line: Line
) -> None:
    """torch's 'CUDA out of memory. Tried to allocate 20.00 MiB' asks each commit for its
    own amount ('1.50 GiB', '512.00 KiB'): the unit after its blank read as a word, each
    regression was 'a different failure' of the bad end's, and bisect gave no single
    answer where git bisect run names c9."""
    out = fingerprinted(
        tmp_path,
        line,
        "FP = 'torch.OutOfMemoryError: CUDA out of memory. Tried to allocate {}.'.format("
        "['20.00 MiB', '1.50 GiB', '512.00 KiB'][sum(map(ord, cell)) % 3])\n",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"first bad commit: {line.first_bad}" in out.stdout, out.stdout
    assert "a different failure" not in out.stdout, out.stdout


def test_a_traceback_for_a_fingerprint_is_named_on_one_line(tmp_path: Path, line: Line) -> None:
    """c4-c8 crash with a traceback of their own (coloured, as a terminal showed it), c9
    on with the scale bug's. The note printed each traceback as it was: its lines broke
    'a different failure (...)' into lines of their own, and its colour escapes reached
    the terminal."""
    out = crashing_elsewhere(
        tmp_path,
        line,
        'Traceback (most recent call last):\n  File "core.py", line 12, in scale\n'
        "AssertionError: 0.53\n",
        'Traceback (most recent call last):\n  File "io.py", line 40, in load\n'
        "    raise OSError(5)\n\x1b[31mOSError: 5\x1b[0m\n",
    )
    assert "\x1b" not in out.stdout, out.stdout
    notes = [ln for ln in out.stdout.splitlines() if "a different failure (" in ln]
    assert len(notes) == 5, out.stdout
    assert all(ln.endswith("in load | raise OSError(5) | OSError: 5)") for ln in notes), notes
    assert "--bad end (Traceback (most rece" in out.stdout, out.stdout
    assert "in scale | AssertionError: 0.53); the bisection" in out.stdout, out.stdout
