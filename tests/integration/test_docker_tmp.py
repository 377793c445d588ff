"""What one cell leaves in its temporary folder, seen by the next cell of a Docker worker.

A container per cell (`--isolate`) starts each cell with the image's own /tmp; the
persistent worker container ran cell after cell in one, so a file a cell left in
`tempfile.gettempdir()` (or under $TMPDIR) was there for the next cell of the image.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from clihelpers import CliRunner
from docker_fixtures import write_docker_matrix

from repromatrix.model import Status
from repromatrix.store import ResultStore

pytest_plugins = ("docker_fixtures",)
pytestmark = [pytest.mark.integration, pytest.mark.docker]

#: Regressed when a file of an earlier cell is in its temporary folder; leaves one there.
LEAVES_A_FILE = """\
import os, tempfile

def run(params):
    folder = tempfile.gettempdir()
    seen = sorted(n for n in os.listdir(folder) if n.startswith("left-by-"))
    with open(os.path.join(folder, "left-by-" + params["tag"]), "w") as f:
        f.write("x")
    if seen or os.environ.get("TMPDIR", folder) != folder:
        return {"schema": 1, "status": "regressed", "reason": f"{folder}: {seen}"}
    return {"schema": 1, "status": "passed", "reason": folder}
"""


@pytest.mark.parametrize("isolate", [False, True])
def test_each_cell_of_a_docker_worker_has_a_temporary_folder_of_its_own(
    tmp_path: Path, run_cli: CliRunner, base_image: str, isolate: bool
) -> None:
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "leaves.py").write_text(LEAVES_A_FILE)
    body = "script: leaves.py, gpus: [cpu], bases: [testbase]"
    body += ", isolate: true" if isolate else ""
    matrix = write_docker_matrix(
        folder / "m.yaml",
        base_image,
        {f"t{n}": body + f", params: {{tag: '{n}'}}" for n in range(3)},
    )
    out = run_cli(
        "--matrix", str(matrix), "run", "--executor", "docker", "--jobs", "1",
        "--no-progress", "--results", "results",
        *(a for n in range(3) for a in ("--repro", f"t{n}")),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    got = {r.repro: r for r in ResultStore(tmp_path / "results").latest_by_key().values()}
    assert len(got) == 3
    assert {name: r.status for name, r in got.items()} == dict.fromkeys(got, Status.PASSED), {
        name: r.reason for name, r in got.items()
    }
    if not isolate:  # the cells shared one worker container
        containers = {r.provenance["harness"]["worker"]["container"] for r in got.values()}
        assert len(containers) == 1
