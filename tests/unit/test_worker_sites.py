"""On what a repro's code binds each attribute name (`worker_sites`), and whether that
reaches a given library module or class (`worker_code.Claims`): what tells a value the
repro bound on a library from one the library rebound itself."""

from __future__ import annotations

import ast
import sys
import textwrap
import types
from pathlib import Path

import pytest

from repromatrix.executors.worker_code import Claims
from repromatrix.executors.worker_sites import ANY, sites_of


def _sites(code: str) -> dict[str, set[tuple[str, ...]]]:
    return {k: set(v) for k, v in sites_of(ast.parse(textwrap.dedent(code))).items()}


@pytest.mark.parametrize(
    ("code", "receivers"),
    [
        # Objects the code made itself: never a library's module or class.
        ("def run():\n    out = types.SimpleNamespace()\n    out.data = 1", set()),
        ("def run():\n    out = torch.zeros(3)\n    out.data = x", set()),
        ("def run():\n    out = [1]\n    setattr(out, 'data', 2)", set()),
        ("class H:\n    def f(self):\n        self.data = 1", set()),
        ("args = parser.parse_args()\nargs.data = 1", set()),
        ("def run():\n    out = f()\n    out.inner.data = 1", set()),
        # What it names: looked up when asked.
        ("import lib\nlib.data = 0", {("global", "lib"), ("module", "lib")}),
        ("import a.b as L\ndef run():\n    L.data = 0", {("global", "L"), ("module", "a.b")}),
        ("from lib import C\nC.data = 1", {("global", "C"), ("module", "lib", "C")}),
        ("import lib\nsetattr(lib.C, 'data', 1)", {("global", "lib", "C"), ("module", "lib", "C")}),
        ("import lib\nmock.patch.object(lib, 'data', 1)", {("global", "lib"), ("module", "lib")}),
        ("mock.patch('lib.Config.data', 1)", {("path", "lib.Config")}),
        ("def run():\n    import a.b as c\n    c.data = 1", {("module", "a.b")}),
        ("def run():\n    from a import C\n    C.K.data = 1", {("module", "a", "C", "K")}),
        ("def run():\n    import lib\n    m = lib\n    m.data = 1", {("module", "lib")}),
        ("def run():\n    global g\n    g.data = 1", {("global", "g")}),
        # What the code cannot tell: the name alone counts.
        ("def f(module):\n    module.data = 0", {ANY}),
        ("for m in mods:\n    m.data = 0", {ANY}),
        ("def run():\n    m = sys.modules['lib']\n    m.data = 0", {ANY}),
        ("def run():\n    m = importlib.import_module('lib')\n    m.data = 0", {ANY}),
        ("def run():\n    type(x).data = 0", {ANY}),
        ("def run():\n    x.__class__.data = 0", {ANY}),
        ("def g():\n    return lib\ndef run():\n    m = g()\n    m.data = 0", {ANY}),
        ("class H:\n    def f(self):\n        self.model.data = 0", {ANY}),
        ("def run():\n    a = b\n    b = a\n    a.data = 0", {ANY}),
    ],
)
def test_each_binding_of_a_name_has_the_receivers_its_code_shows(
    code: str, receivers: set[tuple[str, ...]]
) -> None:
    assert _sites(code).get("data", set()) == receivers


LIBRARY = """\
data = None

class Config:
    data = None

class Sub(Config):
    pass
"""


@pytest.fixture
def library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """`sitelib`, a library outside the repro's folder, imported."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "sitelib.py").write_text(LIBRARY)
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    monkeypatch.delitem(sys.modules, "sitelib", raising=False)
    import sitelib  # type: ignore[import-not-found]

    return sitelib  # type: ignore[no-any-return]


def _claims(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: str) -> Claims:
    """The claims of a repro module `repro_sites` of `tmp_path/repro`, imported."""
    (tmp_path / "repro").mkdir()
    (tmp_path / "repro" / "repro_sites.py").write_text(textwrap.dedent(code))
    monkeypatch.syspath_prepend(str(tmp_path / "repro"))
    monkeypatch.delitem(sys.modules, "repro_sites", raising=False)
    __import__("repro_sites")
    return Claims(str(tmp_path / "repro"))


@pytest.mark.parametrize(
    ("code", "module", "config"),
    [
        ("import sitelib\ndef run():\n    sitelib.data = 1", True, False),
        ("import sitelib as S\ndef run():\n    S.Config.data = 1", False, True),
        ("from sitelib import Sub\ndef run():\n    Sub.data = 1", False, False),
        ("def run():\n    from sitelib import Config as C\n    C.data = 1", False, True),
        ("def run():\n    out = dict()\n    out.data = 1", False, False),
        ("def run(lib):\n    lib.data = 1", True, True),
        ("def run():\n    missing.data = 1", True, True),  # not found: counts
    ],
)
def test_a_name_bound_on_a_library_counts_only_where_it_reaches_that_owner(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    library: types.ModuleType,
    code: str,
    module: bool,
    config: bool,
) -> None:
    claims = _claims(tmp_path, monkeypatch, code)
    assert claims.binds(library, "data") is module
    assert claims.binds(library.Config, "data") is config
    assert not claims.binds(library, "other")


def test_a_name_bound_through_a_modules_property_counts_on_the_module_it_sets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`torch.backends.opt_einsum.strategy = ...`: the module in `sys.modules` is of a
    `ModuleType` subclass whose property sets a global of the module it wraps, another
    object than the one the code names. What the property runs cannot be told: counted."""
    inner = types.ModuleType("wrapped_lib")
    inner.data = None  # type: ignore[attr-defined]

    class Wrapper(types.ModuleType):
        @property
        def data(self) -> object:
            return inner.data

        @data.setter
        def data(self, value: object) -> None:
            inner.data = value  # type: ignore[attr-defined]

    monkeypatch.setitem(sys.modules, "wrapper_lib", Wrapper("wrapper_lib"))
    claims = _claims(tmp_path, monkeypatch, "import wrapper_lib\nwrapper_lib.data = 1")
    assert claims.binds(inner, "data")
    assert not claims.binds(inner, "other")
