"""`repromatrix bisect` on a history of hundreds of merged commits: a cell (and its key) is
built only for the candidates the search runs or the store may hold records of, never for
every candidate (counted, not timed: 30,000 of them cost 11 s before the first round)."""

from __future__ import annotations

from pathlib import Path

import pytest
from history_repo import build_dag, write_matrix

from repromatrix.bisect_plan import Setup
from repromatrix.cli import main
from repromatrix.model import Cell, Pin

pytestmark = pytest.mark.integration

#: 4 commits a step: two on a side branch off the main tip, one on main, their merge.
STEPS = 100


def test_a_bisect_builds_cells_only_for_the_commits_it_runs_or_finds_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    parents: list[tuple[int, ...]] = [()]
    for _ in range(STEPS):
        tip = len(parents) - 1
        parents += [(tip,), (tip + 1,), (tip,), (tip + 3, tip + 2)]
    culprit = len(parents) * 3 // 5
    new = [False] * len(parents)
    for i in range(culprit, len(parents)):
        new[i] = i == culprit or any(new[p] for p in parents[i])
    history = build_dag(tmp_path / "upstream", parents, bad=lambda i: new[i], importable=True)
    matrix = write_matrix(tmp_path, history)
    built: list[str] = []
    make = Setup.cell

    def counted(self: Setup, pin: Pin) -> Cell:
        built.append(pin.rev)
        return make(self, pin)

    monkeypatch.setattr(Setup, "cell", counted)
    monkeypatch.chdir(tmp_path)
    argv = [
        *("--matrix", str(matrix), "bisect", "pkg_check", "--library=bisectpkg"),
        *("--good=good", "--bad=bad", "--executor=local", "--jobs=1", "--no-progress"),
        *(f"--cache={tmp_path / 'cache'}", f"--results={tmp_path / 'results'}"),
    ]
    for fresh in (True, False):
        built.clear()
        assert main(argv) == 0
        said = capsys.readouterr()
        out = said.out + said.err
        assert f"first bad commit: {history.shas[f'c{culprit}']}" in out, out
        assert (", 0 already evaluated," in out) is fresh, out
        # The runs (fresh, or read from the store the second time) and the matrix's two
        # declared spellings (good, bad): a few dozen cells of 401 candidates.
        assert 0 < len(built) <= 30, (len(built), out)
        assert len(set(built)) == len(built), "a cell built twice"
