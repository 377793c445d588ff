"""torch.compile's cache (TorchInductor's) for a cell in a container, against the real
engine: kept in the run's cache volume of the cell's environment, as Triton's is."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from clihelpers import CliRunner
from docker_fixtures import FIXTURE_REPROS
from test_docker_envs import latest

from repromatrix.model import Status

# The fixtures (docker_client, base_image, docker_matrix) come from this module.
pytest_plugins = ("docker_fixtures",)
pytestmark = [pytest.mark.integration, pytest.mark.docker]

#: Where TorchInductor keeps compiled kernels, found as torch finds it
#: (torch._inductor.runtime.cache_dir_utils.default_cache_dir), then a kernel left there.
INDUCTOR_REPRO = textwrap.dedent(
    """
    import getpass, os, sys, tempfile
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _fixture import args, finish
    out, params = args()
    folder = os.environ.get("TORCHINDUCTOR_CACHE_DIR") or os.path.join(
        tempfile.gettempdir(), "torchinductor_" + getpass.getuser()
    )
    kernel = os.path.join(folder, "kernel.py")
    found = os.path.exists(kernel)
    os.makedirs(folder, exist_ok=True)
    open(kernel, "w").close()
    finish(out, "inductor_repro", "passed", f"{folder} found={found}")
    """
)


@pytest.mark.parametrize("isolate", [False, True], ids=["worker", "isolate"])
def test_torch_compiles_cache_outlives_the_cell_and_its_container(
    tmp_path: Path, run_cli: CliRunner, docker_matrix: Callable[..., Path], isolate: bool
) -> None:
    """TORCHINDUCTOR_CACHE_DIR was not set in a container: torch.compile kept its kernels
    under the cell's temporary folder (a worker removes it after each cell; a container of
    its own is gone), so every cell of the environment compiled everything again. It is
    now the environment's folder in the run's cache volume, as TRITON_CACHE_DIR is."""
    repros = tmp_path / "repros"
    repros.mkdir()
    (repros / "_fixture.py").write_text((FIXTURE_REPROS / "_fixture.py").read_text())
    (repros / "inductor_repro.py").write_text(INDUCTOR_REPRO)
    matrix = docker_matrix(
        {"inductor": f"script: {repros}/inductor_repro.py, gpus: [cpu], bases: [testbase]"}
    )
    argv = ("--matrix", str(matrix), "run", "--executor", "docker", "--repro", "inductor",
            "--no-progress", "--results", "results", "--cache", "cache",
            *(["--isolate"] if isolate else []))  # fmt: skip
    first = run_cli(*argv)
    assert first.returncode == 0, first.stderr
    second = run_cli(*argv, "--rerun")
    assert second.returncode == 0, second.stderr
    (record,) = latest(tmp_path / "results").values()
    assert record.status is Status.PASSED, record.reason
    folder, found = (record.reason or "").split()
    assert folder.startswith("/repromatrix/cache/"), folder
    assert found == "found=True", record.reason
    kept = list((tmp_path / "cache").rglob("kernel.py"))
    assert len(kept) == 1, kept  # in the environment's folder on this host
    assert kept[0].parent.name == Path(folder).name, kept
