"""The pure search on histories no other test builds, against real `git bisect run` for
every culprit (as `test_bisect_merges.costs_like_git` checks): criss-cross merges, an
octopus merge, two roots (an orphan branch merged in), `bad` tagged on a merge or on an
octopus merge. The same first bad commit, in no more runs than git's plus the two ends."""

from __future__ import annotations

from pathlib import Path

import pytest
from history_repo import build_dag
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
