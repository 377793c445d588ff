"""Real wheels of `tinylib`, a package whose `tinylib.VALUE` says which build ran, made with
the real pip (the test base images install them from a find-links folder)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def build_tinylib(house: Path, version: str, value: str) -> None:
    """A wheel of tinylib `version` (`1.0+cu121`: a local build) with `VALUE = value`, in
    the folder `house`."""
    src = house.parent / "tinylib-src" / version
    (src / "tinylib").mkdir(parents=True)
    (src / "tinylib" / "__init__.py").write_text(f"VALUE = {value}\n")
    (src / "pyproject.toml").write_text(
        "[build-system]\nrequires = ['setuptools']\nbuild-backend = 'setuptools.build_meta'\n"
        f"[project]\nname = 'tinylib'\nversion = '{version}'\n"
        "[tool.setuptools]\npackages = ['tinylib']\n"
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(house), str(src)],
        check=True,
        capture_output=True,
    )  # fmt: skip
