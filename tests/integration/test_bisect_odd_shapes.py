"""The pure search on histories no other test builds, against real `git bisect run` for
every culprit (as `test_bisect_merges.costs_like_git` checks): criss-cross merges, an
octopus merge, two roots (an orphan branch merged in), `bad` tagged on a merge or on an
octopus merge. The same first bad commit, in no more runs than git's plus the two ends."""

from __future__ import annotations

from pathlib import Path

import pytest
from history_repo import bisect_cli, build_dag, write_matrix
from test_bisect_merges import costs_like_git

pytestmark = pytest.mark.integration

#: Each commit's parents, by index (first parent first); good = c0, bad = the last.
SHAPES = {
    "criss_cross": [(), (0,), (0,), (1, 2), (2, 1), (3,), (4,), (5, 6), (7,)],
    "criss_cross_bad_on_its_merge": [(), (0,), (0,), (1, 2), (2, 1), (3,), (4,), (5, 6)],
    "octopus": [(), (0,), (0,), (0,), (1,), (2,), (4, 5, 3), (6,)],
    "bad_on_an_octopus": [(), (0,), (0,), (0,), (1,), (2, 3, 4)],
    "two_roots": [(), (0,), (1,), (), (3,), (4,), (2, 5), (6,), (7,)],
    "two_roots_bad_on_their_merge": [(), (0,), (1,), (), (3,), (2, 4)],
    "bad_on_a_merge": [(), (0,), (0,), (1,), (2,), (3, 4)],
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_culprit_is_git_bisects_answer(tmp_path: Path, shape: str) -> None:
    costs_like_git(tmp_path, build_dag(tmp_path / "upstream", SHAPES[shape]))


def test_an_authors_name_reaches_the_terminal_without_its_escape_sequences(
    tmp_path: Path,
) -> None:
    """The answer line quoted the subject (repr) but printed the author's name as git
    holds it: a commit by "Mallory ESC]0;owned BEL ESC[2J" set the terminal's title and
    cleared the screen of whoever bisected to it (an upstream's commits are anyone's text),
    on standard output and in --markdown's file. The name is shown printable."""
    history = build_dag(
        tmp_path / "upstream",
        [(), *((i,) for i in range(5))],
        bad=lambda i: i >= 3,
        importable=True,
        authors={3: "Mallory \x1b]0;owned\x07\x1b[2J\u202eevil"},
    )
    write_matrix(tmp_path, history)
    md = tmp_path / "bisect.md"
    out = bisect_cli(tmp_path, "--good=good", "--bad=bad", f"--markdown={md}")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"first bad commit: {history.sha('c3')} 'c3' (Mallory ?evil, " in out.stdout, out.stdout
    for said in (out.stdout, out.stderr, md.read_text()):
        assert not {"\x1b", "\x07", "\u202e"} & set(said), said
