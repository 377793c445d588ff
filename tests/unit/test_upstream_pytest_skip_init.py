"""repros/upstream_pytest.py: `skip_init` lets an upstream test import a package whose
__init__ cannot run here (old fla trees importing transformers models)."""

from __future__ import annotations

from pathlib import Path

import pytest
from clihelpers import run_upstream_pytest


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
    params = {"test": "tests/test_a.py::test_x", "library": "pkg", "skip_init": skip}
    done, result = run_upstream_pytest(tmp_path, checkout, params)
    assert (done.returncode, result["status"]) == (code, status)
    if not skip:
        assert "transformers 5 says no" in done.stdout + done.stderr
