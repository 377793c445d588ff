"""`repromatrix bisect` with several points a round over a history that changed more than
once, with a deterministic repro (real git, real pip installs, the CLI as a subprocess)."""

from __future__ import annotations

from pathlib import Path

import pytest
from history_repo import bisect_cli, build_dag, write_matrix

pytestmark = pytest.mark.integration

#: c0..c29 on one line; scale() is wrong at c8..c13, right again at c14..c21, wrong from c22.
LINE = [(), *((i,) for i in range(29))]


def _bad(i: int) -> bool:
    return 8 <= i <= 13 or i >= 22


def test_points_of_one_round_that_contradict_are_run_again_not_read_as_a_flaky_repro(
    tmp_path: Path,
) -> None:
    """--jobs 4 tested c10 bad and c19 good in one round: the search calibrated 'because
    verdicts contradicted each other at c10, c19', ran the two ends and c7, c8, c21, c22
    over and over, and ended 'inconclusive' (exit 6) after 72 runs, where git bisect run
    names c22 after 5. c10 and c19 now run once more, say the same, and the search goes on
    above the last good commit tested, as git bisect would."""
    history = build_dag(tmp_path / "upstream", LINE, bad=_bad)
    write_matrix(tmp_path, history)
    out = bisect_cli(tmp_path, "--good=good", "--bad=bad", jobs=4)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"first bad commit: {history.sha('c22')}" in out.stdout, out.stdout
    assert "calibrated" not in out.stdout, out.stdout
    assert "10 run(s), 2 of them repeats" in out.stdout, out.stdout
    # The note says verdicts contradicted (bad c10 below good c19); the confidence line
    # said "no verdicts contradicted" right under it.
    sure = next(ln for ln in out.stdout.splitlines() if ln.startswith("confidence:"))
    assert "no verdicts contradicted" not in sure, sure
    assert "as a history that changes twice makes them" in sure, sure
    line = next(ln for ln in out.stdout.splitlines() if "changes more than once" in ln)
    assert f"bad at {history.sha('c10')[:8]}" in line, line
    assert f"bisect with --bad {history.sha('c10')[:12]}" in line, line
