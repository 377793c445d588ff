"""`repromatrix bisect` after `repromatrix run`: the commits the matrix names (`good`,
`bad`) are the bisection's ends, run under their full ids; real git, real `pip install
--target`, the CLI as a subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from history_repo import bisect_cli, build, matrix_cli, write_matrix

from repromatrix.store import ResultStore

pytestmark = pytest.mark.integration


def test_the_ends_run_in_the_environments_the_matrix_run_built(tmp_path: Path) -> None:
    """An environment was keyed by how its pin spelled the commit: the bisection's ends,
    installed by `run` as `good` and `bad`, were installed by pip again (and their compile
    caches made again) under their ids. One commit is one environment, and each record
    still names the pin as its cell asked for it."""
    history = build(tmp_path / "upstream", main=2, main_flags=lambda i: {"SCALE_BUG_MAIN": i >= 1})
    write_matrix(tmp_path, history)
    run = matrix_cli(tmp_path, "run", "--jobs=1")
    assert run.returncode == 0, run.stderr
    envs = sorted(p.parent.name for p in (tmp_path / "cache" / "envs").glob("*/env.json"))
    assert len(envs) == 2
    # Calibrated: the ends run again (repeats), under their ids, beside the stored runs.
    out = bisect_cli(tmp_path, "--good=good", "--bad=bad", "--calibrate=2")
    assert out.returncode == 0, out.stderr
    assert f"first bad commit: {history.sha('m1')}" in out.stdout, out.stdout
    assert sorted(p.parent.name for p in (tmp_path / "cache" / "envs").glob("*/env.json")) == envs
    # pip wrote no build log for the bisection's cells: it never ran for them.
    assert not list((tmp_path / "cache" / "runs").glob("bisect-*/*/env-build.log"))
    records = ResultStore(tmp_path / "results").load().results
    made = {r.run_id.startswith("bisect-") for r in records}
    assert made == {False, True}
    for r in records:
        pin = r.provenance["harness"]["pins"]["bisectpkg"]
        assert pin["rev"] == (
            r.commits["bisectpkg"] if r.run_id.startswith("bisect-") else r.pins["bisectpkg"]
        )
        assert pin["commit"] == r.commits["bisectpkg"]
    by_env = {r.provenance["harness"]["env"] for r in records}
    assert len(by_env) == 2, json.dumps([r.provenance["harness"] for r in records])[:2000]
