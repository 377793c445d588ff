"""scripts/run-offline.sh as the README tells a user of an offline host to call it: the
flags it adds for `run` and `bisect` (the carried sources, the local executor) must neither
clash with the user's own nor be lost when the user's options come before the command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from bisect_repo import build_wheels

from repromatrix.model import Status
from repromatrix.store import ResultStore

pytestmark = pytest.mark.integration

#: Passes when the carried bisectpkg pin was installed (from CARRY/dist: nowhere else has it).
REPRO = textwrap.dedent("""\
    import argparse, json
    p = argparse.ArgumentParser()
    p.add_argument("--out")
    p.add_argument("--params")
    a = p.parse_args()
    import bisectpkg
    with open(a.out, "w") as f:
        json.dump({"schema": 1, "status": "passed", "reason": "the pin was installed"}, f)
    """)


@pytest.fixture
def offline(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A carried folder (wheels/ for repromatrix, dist/ with the pin), a matrix pinning
    bisectpkg 1.0 in `tmp_path`, and the environment the script runs in."""
    carry = tmp_path / "carry"
    build_wheels(carry / "wheels", ["0.1"], bad=set())  # stands in for repromatrix's wheels
    build_wheels(carry / "dist", ["1.0"], bad=set())
    (tmp_path / "probe.py").write_text(REPRO)
    (tmp_path / "m.yaml").write_text(
        textwrap.dedent("""\
            schema: 1
            libraries:
              pkg: {pypi: bisectpkg, import: bisectpkg, versions: ["1.0"]}
            repros:
              probe: {script: probe.py, gpus: [cpu], libraries: {pkg: all}}
            """)
    )
    python = tmp_path / "bin" / "python3"  # the tool's own interpreter stands in for the host's
    python.parent.mkdir()
    python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    env = {**os.environ, "PATH": f"{python.parent}:{os.environ['PATH']}"}
    env["REPROMATRIX_SITE"] = str(tmp_path / "site")
    for name in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
        env.pop(name, None)  # the carried folder is the only source
    env["PIP_CONFIG_FILE"] = os.devnull
    return carry, env


def _script(repo_root: Path, carry: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        ["bash", str(repo_root / "scripts" / "run-offline.sh"), str(carry), *args],
        cwd=carry.parent, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, (args, done.stderr)
    return done.stderr


def _statuses(results: Path) -> list[Status]:
    return [r.status for r in ResultStore(results).load().results]


def test_an_executor_given_to_run_offline_is_used_not_refused(
    offline: tuple[Path, dict[str, str]], repo_root: Path
) -> None:
    """`run-offline.sh CARRY run --executor local` stopped with "argument --executor: given
    twice", a flag the user gave once (the script adds its own)."""
    carry, env = offline
    _script(repo_root, carry, env, "run", "--matrix", "m.yaml", "--results", "res",
            "--executor", "local")  # fmt: skip
    assert _statuses(carry.parent / "res") == [Status.PASSED]


def test_options_before_the_command_keep_the_carried_sources(
    offline: tuple[Path, dict[str, str]], repo_root: Path
) -> None:
    """`run-offline.sh CARRY --matrix m.yaml run` (as `repromatrix --matrix m.yaml run` is
    written) ran without the carried dist/ and git/: its pins were looked for online and
    every cell was an error on an offline host."""
    carry, env = offline
    _script(repo_root, carry, env, "--matrix", "m.yaml", "-v", "run", "--results", "res")
    assert _statuses(carry.parent / "res") == [Status.PASSED]


def test_a_carried_folder_without_dist_runs_cells_that_pin_nothing(
    offline: tuple[Path, dict[str, str]], repo_root: Path
) -> None:
    """A carried folder with no dist/ (no PyPI pins to carry) stopped `run` with
    "--find-links CARRY/dist: not a directory", a flag the user never gave."""
    carry, env = offline
    shutil.rmtree(carry / "dist")
    (carry.parent / "plain.py").write_text(REPRO.replace("import bisectpkg\n", ""))
    (carry.parent / "plain.yaml").write_text(
        "schema: 1\nrepros:\n  plain: {script: plain.py, gpus: [cpu]}\n"
    )
    _script(repo_root, carry, env, "run", "--matrix", "plain.yaml", "--results", "res")
    assert _statuses(carry.parent / "res") == [Status.PASSED]


@pytest.mark.skipif(os.geteuid() != 0, reason="pip warns only a root user")
def test_the_first_run_as_root_says_nothing_of_pip_but_its_errors(
    offline: tuple[Path, dict[str, str]], repo_root: Path, tmp_path: Path
) -> None:
    """The first run (the carried wheels installed) printed pip's "WARNING: Running pip as
    the 'root' user ..." on a host where root is the user; a wheel pip cannot install is
    still said, and stops the script."""
    import site

    carry, env = offline
    # The host's own interpreter, not a virtual environment (pip warns root only outside
    # one); this one's packages stand in for the carried wheels of repromatrix's needs.
    python = tmp_path / "bin" / "python3"
    host = Path(sys.base_prefix, "bin", f"python{sys.version_info[0]}.{sys.version_info[1]}")
    python.write_text(f'#!/bin/sh\nexec {host} "$@"\n')
    env["PYTHONPATH"] = os.pathsep.join(site.getsitepackages())
    env.pop("PIP_ROOT_USER_ACTION", None)
    warning = "Running pip as the 'root' user"
    err = _script(repo_root, carry, env, "validate", "--matrix", "m.yaml")
    assert warning not in err, err
    (carry / "wheels" / "broken-1.0-py3-none-any.whl").write_text("not a zip")
    env["REPROMATRIX_SITE"] += "-2"
    done = subprocess.run(
        ["bash", str(repo_root / "scripts" / "run-offline.sh"), str(carry), "validate"],
        cwd=carry.parent, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "broken-1.0-py3-none-any.whl is invalid" in done.stderr, done.stderr
    assert warning not in done.stderr, done.stderr
