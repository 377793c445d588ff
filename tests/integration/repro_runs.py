"""`repromatrix run` of repro scripts a test writes, each cell in its persistent worker or
(`isolate`) in a process of its own: the runner the tests of the repro protocol
(test_repro_protocol_modes) and of result JSONs (test_repro_result_json) share, real
processes through the CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from clihelpers import ROOT, cli_argv

from repromatrix.records import Result
from repromatrix.store import ResultStore

HELPER = ROOT / "repros" / "_repro.py"


def run_repros(
    root: Path,
    scripts: Mapping[str, str],
    repros: Sequence[str],
    *,
    isolate: bool,
    helper: bool = True,
    timeout: int | None = None,
) -> tuple[subprocess.CompletedProcess[str], dict[str, Result]]:
    """Write `scripts` (name → text) as root/repros/NAME.py (beside a copy of the repro
    helper, with `helper`), a matrix root/m.yaml of the `repros` entries (YAML lines
    `name: {script: ...}`; the cells' `timeout` if given), run it with one job into
    root/results: `run_matrix`."""
    folder = root / "repros"
    folder.mkdir(parents=True, exist_ok=True)
    if helper:
        shutil.copy(HELPER, folder / "_repro.py")
    for name, text in scripts.items():
        (folder / f"{name}.py").write_text(text)
    lines = ["schema: 1", *([f"defaults: {{timeout: {timeout}}}"] if timeout else [])]
    (root / "m.yaml").write_text("\n".join([*lines, "repros:", *(f"  {r}" for r in repros)]) + "\n")
    return run_matrix(root, isolate=isolate)


def run_matrix(
    root: Path, *, isolate: bool
) -> tuple[subprocess.CompletedProcess[str], dict[str, Result]]:
    """`repromatrix run` of root/m.yaml with one job into root/results: the run (which must
    have exited 0) and its records by repro."""
    results = root / "results"
    out = subprocess.run(
        cli_argv(
            "--matrix", str(root / "m.yaml"), "run", "--jobs", "1", "--no-progress",
            "--results", str(results), *(["--isolate"] if isolate else []),
        ),
        cwd=root,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out, {r.repro: r for r in ResultStore(results).load().results}
