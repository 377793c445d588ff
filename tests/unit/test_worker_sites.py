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
        ("def run():\n    out = [1]\n    setattr(out, 'data', 2)", set()),
        ("class H:\n    def f(self):\n        self.data = 1", set()),
        ("args = [1]\nargs.data = 1", set()),
        # What a call handed back: what its callee is, asked when a value changed.
        (
            "def run():\n    out = types.SimpleNamespace()\n    out.data = 1",
            {("call", repr(("global", "types", "SimpleNamespace")))},
        ),
        (
            "def run():\n    out = f()\n    out.inner.data = 1",
            {("call", repr(("global", "f")), "inner")},
        ),
        (
            "import argparse\nparser = argparse.ArgumentParser()\n"
            "args = parser.parse_args()\nargs.data = 1",
            {
                ("call", repr(("call", repr((kind, "argparse", "ArgumentParser")), "parse_args")))
                for kind in ("module", "global")
            },
        ),
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
        ("import lib\nfor m in lib.MODULES:\n    m.data = 0", {ANY}),
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
import sys

data = None

class Config:
    data = None

class Sub(Config):
    pass

class Model:
    def parameters(self):
        return [Config()]

def backend():
    return sys.modules[__name__]

def config_class():
    return Config

options = Config()
REGISTRY = {}
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


@pytest.mark.parametrize(
    ("code", "module", "config"),
    [
        # A name it cannot read from the code: any name of the receiver counts.
        ("import sitelib\nfor n in ('data',):\n    setattr(sitelib, n, 1)", True, False),
        ("import sitelib\nvars(sitelib)['data'] = 1", True, False),
        ("import sitelib\nsitelib.__dict__['data'] = 1", True, False),
        ("import sitelib\nsitelib.__dict__.update(data=1)", True, False),
        ("import sitelib\ndel vars(sitelib)['data']", True, False),
        # What a library's function handed back: what it is cannot be told.
        ("import sitelib\ndef run():\n    m = sitelib.backend()\n    m.data = 1", True, True),
        ("import sitelib\ndef run():\n    c = sitelib.config_class()\n    c.data = 1", True, True),
        ("import sitelib\ndef run():\n    sitelib.config_class().data = 1", True, True),
        # A loop's variable: what the loop goes over.
        ("import sitelib\nfor m in (sitelib,):\n    m.data = 1", True, False),
        ("import sitelib\nmods = [sitelib.Config]\nfor k in mods:\n    k.data = 1", False, True),
        (
            "import sys\ndef f():\n    for m in list(sys.modules.values()):\n        m.data = 1",
            True,
            True,
        ),
        ("import sitelib\nfor i, m in enumerate([sitelib]):\n    m.data = 1", True, False),
        (
            "import sitelib\ndef f():\n    for m in [k for k in (sitelib,)]:\n        m.data = 1",
            True,
            False,
        ),
        ("import sitelib\nfor m in {sitelib: 1}:\n    m.data = 1", True, False),
        ("import sitelib\nfor m in [] + [sitelib]:\n    m.data = 1", True, False),
        ("import sitelib\nfor m in {**{}}:\n    m.data = 1", True, True),
        (
            "import sitelib, types\nnet = types.SimpleNamespace()\nnet.lib = sitelib\n"
            "net.lib.data = 1",
            True,
            False,
        ),
        # An attribute of its own objects: what its code binds there.
        (
            "import sitelib\nclass R:\n    def __init__(self):\n        self.lib = sitelib\n"
            "    def go(self):\n        self.lib.data = 1",
            True,
            False,
        ),
    ],
)
def test_a_name_bound_where_the_code_hides_its_receiver_counts_where_it_may_reach(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    library: types.ModuleType,
    code: str,
    module: bool,
    config: bool,
) -> None:
    """`setattr(lib, name, v)` with a name in a variable, `vars(lib)[k] = v`, a module or
    class a library's function handed back, a loop over modules, an attribute of the
    repro's object holding a module: each left the library's value for every later cell
    of the worker (no receiver was recorded, or the call's result was taken for an object
    the code made), where a process of its own has the library's."""
    claims = _claims(tmp_path, monkeypatch, code)
    assert claims.binds(library, "data") is module
    assert claims.binds(library.Config, "data") is config


@pytest.mark.parametrize(
    "code",
    [
        "import types\nfor p in [types.SimpleNamespace()]:\n    p.data = 1",
        "import sitelib\nmodel = sitelib.Model()\nfor p in model.parameters():\n    p.data = 1",
        (
            "import sitelib\ndef run():\n    model = sitelib.Model()\n"
            "    for i, p in enumerate(list(model.parameters())):\n        p.data = None"
        ),
        "import sitelib\ndef run():\n    for p in sitelib.Model().parameters():\n"
        "        p.data = 1",
        (
            "import types\nclass R:\n    def __init__(self):\n"
            "        self.out = types.SimpleNamespace()\n"
            "    def go(self):\n        self.out.data = 1"
        ),
        "def run():\n    out = dict()\n    out.data = 1",
        "import sitelib\ndef run():\n    out = sitelib.Config()\n    out.data = 1",
        "import math\ndef run():\n    out = math.floor(2.5)\n    out.data = 1",
        "def run():\n    for i in range(3):\n        i.data = 1",
    ],
)
def test_a_name_bound_on_objects_the_code_made_counts_on_no_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, library: types.ModuleType, code: str
) -> None:
    """`for p in model.parameters(): p.data = None`, `self.out.data = ...` of an object
    its class made: told by the name alone, the worker retired whenever a library rebound
    a global or class attribute of that name as it went (a fresh worker, torch's import
    and CUDA's set-up again, for nothing)."""
    claims = _claims(tmp_path, monkeypatch, code)
    assert not claims.binds(library, "data")
    assert not claims.binds(library.Config, "data")


def test_the_library_objects_its_code_changes_are_told_and_no_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, library: types.ModuleType
) -> None:
    """A library's object the repro's code binds an attribute of or changes in place is
    one to watch across its cell (neither its module's nor its class's dict changes); its
    own globals, the standard library's objects (put back by the worker's own rules), a
    class (the class rule's) and a module are not."""
    code = (
        "import os, sys, sitelib\nSEEN = []\ndef run():\n    sitelib.options.data = 1\n"
        "    sitelib.REGISTRY['k'] = 1\n    sitelib.Config.data = 2\n    sitelib.data = 3\n"
        "    SEEN.append(1)\n    os.environ['A'] = '1'\n    sys.path.insert(0, 'x')"
    )
    claims = _claims(tmp_path, monkeypatch, code)
    found = {label: (obj, names) for label, obj, names in claims.objects()}
    assert found == {
        "sitelib.options": (library.options, frozenset({"data"})),
        "sitelib.REGISTRY": (library.REGISTRY, frozenset({"[]"})),
    }
