"""repros/upstream_pytest.py: which pytest outcomes are a verdict on the library (the test
ran and passed or failed) and which say nothing of it (untestable)."""

from __future__ import annotations

from pathlib import Path

import pytest
from clihelpers import run_upstream_pytest

TESTS = """\
import pytest
import pkg

@pytest.fixture
def broken_teardown():
    yield 1
    raise RuntimeError("teardown broke")

def test_needs_a_later_fixture(big):
    assert pkg.X == 1

def test_teardown(broken_teardown):
    assert pkg.X == 1

@pytest.mark.xfail(strict=True, reason="bug 12")
def test_strict_xfail_passes():
    assert pkg.X == 1

def test_fails():
    assert pkg.X == 2

def test_cannot_run_here():
    pytest.exit("needs libfoo here", returncode=125)
"""


def run_test(tmp_path: Path, node: str) -> dict[str, object]:
    checkout = tmp_path / "checkout"
    (checkout / "pkg").mkdir(parents=True)
    (checkout / "tests").mkdir()
    (checkout / "pkg" / "__init__.py").write_text("X = 1\n")
    (checkout / "tests" / "test_a.py").write_text(TESTS)
    (checkout / "tests" / "test_helper.py").write_text(
        "from helpers import REF\n\ndef test_ref():\n    assert REF == 1\n"
    )
    test = node if "/" in node else f"tests/test_a.py::{node}"
    return run_upstream_pytest(tmp_path, checkout, {"test": test, "library": "pkg"})[1]


@pytest.mark.parametrize(
    ("node", "status", "says"),
    [
        # The fixture comes with a later conftest.py: the test never ran (it was counted
        # bad, so a find-fix bisect named the commit that added the fixture).
        ("test_needs_a_later_fixture", "untestable", "fixture 'big' not found"),
        ("test_teardown", "untestable", "RuntimeError: teardown broke"),
        # Marked xfail(strict=True) and passing: pytest says FAILED, the body passed.
        ("test_strict_xfail_passes", "untestable", "xfail(strict=True)"),
        ("test_fails", "regressed", "assert 1 == 2"),
        # Exit 125, `git bisect run`'s "cannot be tested here" (a conftest's or a test's
        # `pytest.exit(..., returncode=125)`): a skip there, an error here.
        ("test_cannot_run_here", "untestable", "exited 125 (cannot be tested here): needs libfoo"),
        # A parameter the test does not have: pytest's path was the cell's throwaway copy.
        ("test_fails[nope]", "untestable", "ERROR: not found: tests/test_a.py::test_fails"),
        # A helper module this commit does not have: the reason was "ERROR tests/t.py".
        (
            "tests/test_helper.py::test_ref",
            "untestable",
            "collection error: ModuleNotFoundError: No module named 'helpers'",
        ),
    ],
)
def test_errors_outside_the_test_are_no_verdict(
    tmp_path: Path, node: str, status: str, says: str
) -> None:
    result = run_test(tmp_path, node)
    assert result["status"] == status
    assert says in str(result["reason"])
    assert "upstream-" not in str(result["reason"])
