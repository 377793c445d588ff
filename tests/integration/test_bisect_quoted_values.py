"""`repromatrix bisect` with a repro that writes its own fingerprint quoting the value that
failed (a number that differs run to run): every such regression is the bad end's failure,
and the answer is `git bisect run`'s on the same history (real git, real repro processes)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from history_repo import bisect_cli, build_dag, git_bisect_run, write_matrix

pytestmark = pytest.mark.integration

#: c0..c15 on one line; scale() is wrong from c9 on.
LINE = [(), *((i,) for i in range(15))]
CULPRIT = 9


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


def test_a_value_quoted_at_the_end_of_a_sentence_is_the_same_failure(tmp_path: Path) -> None:
    """The number before a full stop stayed in the check ('got 0.1372.' against the bad
    end's 'got 0.0915.'), so every regression on the way was 'a different failure',
    skipped: 'first bad commit is one of 7', exit 6, where git bisect run names c9."""
    history = build_dag(tmp_path / "upstream", LINE, bad=lambda i: i >= CULPRIT)
    write_matrix(tmp_path, history)
    quoting_repro(tmp_path, "AssertionError: scale_err exceeds 1e-09: got {:.4f}.")
    git = git_bisect_run(history, tmp_path / "git", sys.executable)
    assert git.first_bad == history.sha(f"c{CULPRIT}")
    out = bisect_cli(tmp_path, "--good=good", "--bad=bad")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"first bad commit: {git.first_bad}" in out.stdout, out.stdout
    assert "a different failure" not in out.stdout, out.stdout
