"""upstream_test.py: which name a --test node id needs its file to define, and which names
a file defines (None where pytest might collect names the source does not show)."""

from __future__ import annotations

import pytest

from repromatrix.upstream_test import defined_names, method_name, node_name


@pytest.mark.parametrize(
    ("node", "name"),
    [
        ("tests/t.py::test_y", "test_y"),
        ("tests/t.py::test_y[a::b c]", "test_y"),
        ("tests/t.py::test_y[1,2]", "test_y"),
        ("tests/t.py::TestX::test_y[x]", "TestX"),
        ("tests/t.py", ""),
        ("pkg/mod.py::pkg.mod.func", ""),  # a doctest
    ],
)
def test_the_name_a_node_needs(node: str, name: str) -> None:
    assert node_name(node) == name


def test_names_a_file_defines() -> None:
    src = "from x import helper as test_b\nimport os\ntest_c = helper\n\nclass TestD:\n    pass\n"
    src += "def test_a():\n    pass\n"
    assert {"test_a", "test_b", "test_c", "TestD", "os"} <= (defined_names(src, "t.py") or set())
    for unknowable in (
        "from x import *\n",
        "globals()['test_a'] = f\n",
        "vars()['t'] = f\n",
        "def (:\n",
    ):
        assert defined_names(unknowable, "t.py") is None
    assert defined_names("anything", "tests/data.yaml") is None


CLASSES = """\
import pytest
import unittest
from helpers import Mixin


class Base:
    def test_inherited(self):
        pass


@pytest.mark.skipif(False, reason="never")
class TestScale(Base):
    def test_large(self):
        pass


class TestMixed(Mixin):
    pass


class TestCase(unittest.TestCase):
    pass


class TestPatched:
    pass


TestPatched.test_added = lambda self: None
"""


@pytest.mark.parametrize(
    ("node", "method", "members"),
    [
        # A method the class and its bases in the file define, and one they do not.
        ("t.py::TestScale::test_large[1]", "test_large", {"test_large", "test_inherited"}),
        ("t.py::TestScale::test_larg", "test_larg", {"test_large", "test_inherited"}),
        # Bases from elsewhere, and a method set from outside the class: not knowable.
        ("t.py::TestMixed::test_x", "test_x", None),
        ("t.py::TestCase::test_x", "test_x", None),
        ("t.py::TestPatched::test_added", "test_added", None),
        # A function's "method", a module-level test, a file, a doctest: nothing to check.
        ("t.py::test_a::x", "x", None),
        ("t.py::test_a", "", None),
        ("t.py", "", None),
        ("t.py::pkg.mod.func", "", None),
    ],
)
def test_the_methods_a_class_node_may_name(
    node: str, method: str, members: set[str] | None
) -> None:
    """`--test t.py::TestX::test_typo` was taken (only TestX was looked for): both ends
    ran, each untestable ("found no collectors"), exit 6, where a missing test is exit 64
    before anything runs."""
    assert method_name(CLASSES, "t.py", node) == (method, members)
