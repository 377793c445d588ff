"""`repromatrix bisect` with a repro that writes its own fingerprint quoting the value that
failed (a number that differs run to run): every such regression is the bad end's failure,
and the answer is `git bisect run`'s on the same history (real git, real repro processes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from history_repo import CULPRIT, Line, bisect_cli, line_of_commits, write_matrix

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Line:
    return line_of_commits(tmp_path_factory.mktemp("quoted"))


def quoting_repro(root: Path, template: str) -> None:
    """The history's repro, its regressions' fingerprint `template` formatted with a value
    of the run's own (its process id: another in every run, as a measured error is)."""
    script = root / "repros" / "pkg_check.py"
    anchor = '    with open(a.out + ".tmp", "w") as f:\n'
    quote = (
        '    if status == "regressed":\n'
        f"        result['fingerprint'] = {template!r}.format(os.getpid() % 9973 / 1e4)\n"
    )
    text = script.read_text()
    assert anchor in text
    script.write_text(text.replace(anchor, quote + anchor, 1))


def test_a_value_quoted_at_the_end_of_a_sentence_is_the_same_failure(
    tmp_path: Path, line: Line
) -> None:
    """The number before a full stop stayed in the check ('got 0.1372.' against the bad
    end's 'got 0.0915.'), so every regression on the way was 'a different failure',
    skipped: 'first bad commit is one of 7', exit 6, where git bisect run names c9."""
    history = line.history
    write_matrix(tmp_path, history)
    quoting_repro(tmp_path, "AssertionError: scale_err exceeds 1e-09: got {:.4f}.")
    assert line.first_bad == history.sha(f"c{CULPRIT}")
    out = bisect_cli(tmp_path, "--good=good", "--bad=bad", cache=line.cache)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"first bad commit: {line.first_bad}" in out.stdout, out.stdout
    assert "a different failure" not in out.stdout, out.stdout


def test_the_failure_most_runs_of_the_bad_end_show_is_followed_whatever_they_quote(
    tmp_path: Path, line: Line, monkeypatch: pytest.MonkeyPatch
) -> None:
    """c13-c15 also crash now and then (every third run: one message, no metrics) besides
    the scale failure from c9, whose runs each quote their own value. Counted by text, the
    bad end's 5 crashes outnumbered each of its 9 quoted values: the search followed the
    crash, skipped c9-c14 as 'a different failure' and said 'one of 7', exit 6, where git
    bisect run (any failure is exit 1) and the scale failure's first bad commit are c9."""
    history = line.history
    crashing = [history.sha(f"c{i}")[:10] for i in (13, 14, 15)]
    write_matrix(tmp_path, history, params=json.dumps({"crash_at": crashing}))
    script = tmp_path / "repros" / "pkg_check.py"
    anchor = '    with open(a.out + ".tmp", "w") as f:\n'
    quote = (
        '    if status == "regressed":\n'
        '        if any(f"={rev}" in cell for rev in params["crash_at"]) and RUN % 3 == 1:\n'
        '            result["metrics"] = {}\n'
        '            result["fingerprint"] = "RuntimeError: CUDA error: illegal memory access"\n'
        "        else:\n"
        '            result["fingerprint"] = "scale_err is {:.3f}".format(0.5 + RUN / 1e3)\n'
    )
    numbered = "seed = f\"{os.environ.get('FLAKY_SEED', '0')}:{cell}:{run_number()}\"\n"
    text = script.read_text()
    assert anchor in text
    assert numbered in text
    text = text.replace(anchor, quote + anchor, 1)
    script.write_text(text.replace(numbered, "RUN = run_number()\n" + numbered, 1))
    assert line.first_bad == history.sha(f"c{CULPRIT}")
    state = tmp_path / "state"  # the repro's run counter per cell
    state.mkdir()
    monkeypatch.setenv("FLAKY_STATE", str(state))
    out = bisect_cli(tmp_path, "--good=good", "--bad=bad", "--calibrate=5", cache=line.cache)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"first bad commit: {line.first_bad}" in out.stdout, out.stdout
    assert "failed differently from the --bad end (scale_err is " in out.stdout, out.stdout
    # The bad end's crashes were skipped; its round lines said "(a different failure; the
    # followed check was within its limits here)" of a commit whose crash had no numbers.
    c15 = history.sha("c15")[:8]
    ends = [ln for ln in out.stdout.splitlines() if ln.startswith("round ") and c15 in ln]
    assert any("(1 of them a different failure: skipped)" in ln for ln in ends), out.stdout
    assert not any("within its limits" in ln for ln in ends), out.stdout


def test_a_time_quoted_with_its_unit_is_the_same_failure(tmp_path: Path, line: Line) -> None:
    """Each run of a timing regression quoted its own time ('step took 0.4137ms'): with
    its unit the value was a name, every regression on the way was 'a different failure'
    of the bad end's, skipped, and bisect said 'first bad commit is one of 7', exit 6."""
    history = line.history
    write_matrix(tmp_path, history)
    quoting_repro(tmp_path, "TimeoutError: step took {:.4f}ms, budget 0.0001ms")
    out = bisect_cli(tmp_path, "--good=good", "--bad=bad", cache=line.cache)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"first bad commit: {line.first_bad}" in out.stdout, out.stdout
    assert "a different failure" not in out.stdout, out.stdout


def test_an_address_or_a_hashed_cache_path_each_run_names_is_the_same_failure(
    tmp_path: Path, line: Line
) -> None:
    """Each run's crash named its own address without `0x` ('segfault at 7f3a…') and its
    own Triton cache folder: every regression on the way was 'a different failure' of the
    bad end's, skipped, and bisect said 'first bad commit is one of 7', exit 6."""
    history = line.history
    write_matrix(tmp_path, history)
    quoting_repro(
        tmp_path,
        "segfault at 7f{0:010x} ip 00007f3a{0:08x} in /root/.triton/cache/{0:032x}{0:032x}/k.so",
    )
    script = tmp_path / "repros" / "pkg_check.py"
    script.write_text(
        script.read_text().replace("os.getpid() % 9973 / 1e4", "os.getpid() * 2654435761 % 2**32")
    )
    out = bisect_cli(tmp_path, "--good=good", "--bad=bad", cache=line.cache)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"first bad commit: {line.first_bad}" in out.stdout, out.stdout
    assert "a different failure" not in out.stdout, out.stdout
