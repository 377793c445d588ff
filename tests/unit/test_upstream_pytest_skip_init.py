"""repros/upstream_pytest.py: `skip_init` lets an upstream test import a package whose
__init__ cannot run here (old fla trees importing transformers models)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "repros" / "upstream_pytest.py"


@pytest.mark.parametrize(
    ("skip", "status", "code"), [("", "untestable", 125), ("pkg", "passed", 0)]
)
def test_skip_init(tmp_path: Path, skip: str, status: str, code: int) -> None:
    checkout = tmp_path / "checkout"
    (checkout / "pkg" / "sub").mkdir(parents=True)
    (checkout / "tests").mkdir()
    (checkout / "pkg" / "__init__.py").write_text(
        'raise ImportError("transformers 5 says no")\n__version__ = "1.2"\n'
    )
    (checkout / "pkg" / "sub" / "__init__.py").write_text("X = 42\n")
    (checkout / "tests" / "test_a.py").write_text(
        "import pkg\nfrom pkg.sub import X\n\ndef test_x():\n"
        "    assert X == 42\n    assert pkg.__version__ == '1.2'\n"
    )
    out = tmp_path / "r.json"
    params = {
        "test": "tests/test_a.py::test_x",
        "library": "pkg",
        "checkout": str(checkout),
        "skip_init": skip,
    }
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), "--params", json.dumps(params)],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(checkout)},
        capture_output=True,
        text=True,
        check=False,
    )
    result = json.loads(out.read_text())
    assert (done.returncode, result["status"]) == (code, status)
    if not skip:
        assert "transformers 5 says no" in done.stdout + done.stderr
