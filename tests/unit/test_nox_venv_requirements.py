"""noxsupport/venv_requirements.py, as nox's venv runs it: the one rule set that decides
whether a session runs pip and, afterwards, which requirement the venv still lacks. Two
scripts had asked it, one weighing versions and markers, the other names alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parents[2] / "noxsupport" / "venv_requirements.py"

METADATA = """\
Metadata-Version: 2.1
Name: repromatrix
Version: 0.1.0
Requires-Dist: packaging>=1
Requires-Dist: packaging<1
Requires-Dist: surely-no-such-distribution-xyz>=1
Requires-Dist: other-platform-only; sys_platform == "no-such-platform"
Requires-Dist: docker>=7.0; extra == "docker"
"""


def _state(
    tmp_path: Path, stamp_reads: str, *optional: str, packaging: bool = True
) -> dict[str, Any]:
    """The script's answer where repromatrix is the distribution METADATA describes,
    installed editable from tmp_path/proj, the venv's stamp reading `stamp_reads`."""
    site = tmp_path / "site"
    info = site / "repromatrix-0.1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(METADATA)
    target = tmp_path / "proj"
    url = {"url": target.as_uri(), "dir_info": {"editable": True}}
    (info / "direct_url.json").write_text(json.dumps(url))
    if not packaging:  # a venv before repromatrix's first install
        (site / "packaging").mkdir(exist_ok=True)
        (site / "packaging" / "__init__.py").write_text("raise ImportError('none here')\n")
    stamp = tmp_path / "stamp.txt"
    stamp.write_text(stamp_reads)
    env = {**os.environ, "PYTHONPATH": str(site)}  # found before any other repromatrix
    argv = [sys.executable, "-P", str(SCRIPT), str(target), str(stamp), "digest-1", *optional]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
    said: dict[str, Any] = json.loads(done.stdout)
    return said


def test_versions_and_markers_are_weighed_for_the_install_and_the_error_alike(
    tmp_path: Path,
) -> None:
    said = _state(tmp_path, "digest-1", "packaging>=1", "surely-no-such-distribution-xyz")
    assert said == {
        "installed": True,
        "as_left": True,
        "weighed": True,
        # Present in a version it excludes: named with the version found (names alone
        # passed it, and `run` then met the wrong version).
        "unmet": [
            {"need": "packaging<1", "name": "packaging", "found": metadata.version("packaging")},
            {
                "need": "surely-no-such-distribution-xyz>=1",
                "name": "surely-no-such-distribution-xyz",
                "found": None,
            },
        ],
        "optional": ["surely-no-such-distribution-xyz"],
    }
    # Installed from the folder, but not as pip left it (the stamp reads another digest).
    assert _state(tmp_path, "digest-0")["as_left"] is False


def test_without_packaging_names_alone_are_weighed_and_pip_is_due(tmp_path: Path) -> None:
    said = _state(tmp_path, "digest-1", packaging=False)
    assert said["weighed"] is False  # the session runs pip, which brings packaging
    assert [u["name"] for u in said["unmet"]] == [
        "surely-no-such-distribution-xyz",
        "other-platform-only",  # its marker not weighed: asked for all the same
    ]
