"""upstream_test.py: which name a --test node id needs its file to define, and which names
a file defines (None where pytest might collect names the source does not show)."""

from __future__ import annotations

import pytest

from repromatrix.upstream_test import defined_names, node_name


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
