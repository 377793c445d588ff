"""Which plain values bound on a library's module or class retire a persistent worker:
those the repro's code bound there (`lib.LIMIT = 0`, through an alias, an imported class,
`setattr`, a mock's patch), never those the library rebinds itself as it goes (lazy
set-up, a cache) under a name the repro's code happens to assign on something else (a
local object's `out.data = ...`, an argparse namespace's `args.device = ...`). Real
workers; each case once failed."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from clihelpers import CliRunner
from worker_cells import mode_cells, passed_in_one_worker, retired, run_cells, worker

from repromatrix.model import Status
from repromatrix.records import Result

pytestmark = pytest.mark.integration

#: A library outside the repro's folder that sets itself up at its second call: a device
#: picked and data cached in its module globals, a class attribute of the same names.
LIBRARY = textwrap.dedent("""\
    device = None
    data = None
    LIMIT = 5
    _calls = []

    class Config:
        tol = 1e-6
        device = None

    def settings():  # a library's accessor, handing back its own class
        return Config

    class Options:
        def __init__(self):
            self.tol = 1e-6

    options = Options()  # a library's objects: changed in place, not rebound
    REGISTRY = {"base": 1}
    HOOKS = []

    def scale(x, factor=2):
        return x * factor

    def pristine():
        return options.tol == 1e-6 and REGISTRY == {"base": 1} and not HOOKS and scale(1) == 2

    def work():
        global device, data
        _calls.append(1)
        if len(_calls) == 2:  # lazy set-up, as torch's, triton's, flashinfer's
            device = "cpu"
            data = {"cached": True}
            Config.device = "cpu"
        return LIMIT, Config.tol
    """)
#: A repro that assigns the names the library rebinds, on objects of its own only.
CLEAN = textwrap.dedent("""\
    import argparse, os, sys, types
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "lib"))
    import statelib

    class Holder:
        def __init__(self):
            self.data = None

    def run(params):
        got = statelib.work()
        out = types.SimpleNamespace()  # a local object, as a tensor or a result is
        out.data = [1, 2]
        out.device = "cpu"
        args = argparse.Namespace()
        args.device = "cpu"
        holder = Holder()
        setattr(holder, "data", out.data)
        ok = got == (5, 1e-6)
        return {"schema": 1, "status": "passed" if ok else "regressed", "reason": f"got {got}"}
    """)
#: A repro that binds values on the library, each mode its own way.
PATCHING = textwrap.dedent("""\
    import os, sys
    from unittest import mock
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "lib"))
    import statelib
    import statelib as L
    from statelib import Config

    def _set_limit(module):  # a parameter: what it is cannot be told from the code
        module.LIMIT = 0

    def run(params):
        mode = params["mode"]
        got = statelib.work()
        if mode == "set_module_value":
            statelib.LIMIT = 0
        elif mode == "set_through_alias":
            L.LIMIT = 0
        elif mode == "set_imported_class":
            Config.tol = 1
        elif mode == "setattr_on_class":
            setattr(statelib.Config, "tol", 2)
        elif mode == "patch_object":
            mock.patch.object(L, "LIMIT", 0).start()
        elif mode == "patch_by_name":
            mock.patch("statelib.Config.tol", 3).start()
        elif mode == "set_through_local_import":  # a name the library rebinds too
            from statelib import Config as C
            C.device = "meta"
        elif mode == "set_through_local_alias":
            m = statelib
            m.data = []
        elif mode == "set_through_parameter":
            _set_limit(statelib)
        ok = got == (5, 1e-6)
        return {"schema": 1, "status": "passed" if ok else "regressed", "reason": f"got {got}"}
    """)


#: Repros whose code hides where it binds, one a file (what one file's code binds is read
#: for all its cells): a name held in a variable, the library's dict, what a library's
#: function handed back, a loop's variable, an attribute of its own object.
HIDING = {
    "setattr_of_a_name_in_a_variable": "for name in ('LIMIT',):\n    setattr(statelib, name, 0)",
    "store_in_its_dict": "vars(statelib)['LIMIT'] = 0",
    "set_on_what_a_call_handed_back": "kind = statelib.settings()\nkind.tol = 1",
    "set_through_a_loop": "for module in (statelib,):\n    module.LIMIT = 0",
    "set_on_a_librarys_object": "statelib.options.tol = 3",
    "store_in_a_librarys_dict": "statelib.REGISTRY['mine'] = 1",
    "append_to_a_librarys_list": "statelib.HOOKS.append(print)",
    "replace_a_functions_defaults": "statelib.scale.__defaults__ = (3,)",
    "set_through_its_own_attribute": (
        "class Patcher:\n    def __init__(self):\n        self.lib = statelib\n\n"
        "    def patch(self):\n        self.lib.LIMIT = 0\n\nPatcher().patch()"
    ),
}
HIDING_REPRO = textwrap.dedent("""\
    import os, sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "lib"))
    import statelib

    def run(params):
        got = statelib.work(), statelib.pristine()
        if params["mode"] != "ok":
    {}
        ok = got == ((5, 1e-6), True)
        return {{"schema": 1, "status": "passed" if ok else "regressed", "reason": f"got {{got}}"}}
    """)
#: A repro binding the names the library rebinds (`data`, `device`) on objects it made,
#: as a model's training step does: its parameters, a loop's layers, its own attributes.
OWN_OBJECTS = textwrap.dedent("""\
    import os, sys, types
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "lib"))
    import statelib

    SEEN = []  # its own module's state: its own

    class Net:
        def __init__(self):
            self.out = types.SimpleNamespace(data=None)
            self.layers = [types.SimpleNamespace(data=None) for _ in range(2)]

        def parameters(self):
            return list(self.layers)

        def forward(self):
            self.out.data = [1, 2]
            self.out.device = "cpu"

    def run(params):
        got = statelib.work()
        net = Net()
        for p in net.parameters():
            p.data = None
            p.device = "cpu"
        for i, layer in enumerate(net.layers):
            layer.data = [i]
        net.forward()
        SEEN.append(got)
        os.environ["NET_MODE"] = "train"  # put back by the worker
        sys.path.insert(0, os.path.dirname(__file__))
        ok = got == (5, 1e-6)
        return {"schema": 1, "status": "passed" if ok else "regressed", "reason": f"got {got}"}
    """)


def _run(tmp_path: Path, run_cli: CliRunner, script: str, *modes: str) -> list[Result]:
    (tmp_path / "lib").mkdir(exist_ok=True)
    (tmp_path / "lib" / "statelib.py").write_text(LIBRARY)
    scripts = {"clean.py": CLEAN, "patching.py": PATCHING, "own_objects.py": OWN_OBJECTS}
    for way, code in HIDING.items():
        scripts[f"{way}.py"] = HIDING_REPRO.format(textwrap.indent(code, " " * 8))
    return run_cells(tmp_path, run_cli, scripts, mode_cells(script, *modes))


def test_values_a_library_rebinds_itself_retire_no_worker_for_names_set_on_local_objects(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """The library rebinds its globals `device` and `data` and `Config.device` at its
    second call; the repro's `run()` assigns `out.data`, `out.device`, `args.device` and
    `setattr(holder, "data", ...)` on objects of its own. Told by name alone, the
    library's set-up was the repro's: the worker retired after the second cell, and the
    third paid for a fresh one (import torch and CUDA's set-up on a GPU host)."""
    records = _run(tmp_path, run_cli, "clean.py", "ok", "ok", "ok")
    assert [retired(r) for r in records] == ["", "", ""]
    passed_in_one_worker(*records)


@pytest.mark.parametrize(
    ("mode", "named"),
    [
        ("set_module_value", "statelib.LIMIT"),
        ("set_through_alias", "statelib.LIMIT"),
        ("set_imported_class", "statelib.Config.tol"),
        ("setattr_on_class", "statelib.Config.tol"),
        ("patch_object", "statelib.LIMIT"),
        ("patch_by_name", "statelib.Config.tol"),
        ("set_through_local_import", "statelib.Config.device"),
        ("set_through_local_alias", "statelib.data"),
        ("set_through_parameter", "statelib.LIMIT"),
    ],
)
def test_a_value_the_repros_code_binds_on_a_library_retires_its_worker(
    tmp_path: Path, run_cli: CliRunner, mode: str, named: str
) -> None:
    """`statelib.LIMIT = 0`, through `import statelib as L`, `from statelib import
    Config`, `setattr`, `mock.patch.object` never stopped, a class imported in `run()`,
    a local alias, a function's parameter: the repro's own value, which a process of its
    own would not carry to the next cell. The worker retires after it, naming it."""
    first, left, checked = _run(tmp_path, run_cli, "patching.py", "ok", mode, "ok")
    for record in (first, left, checked):
        assert record.status is Status.PASSED, (record.repro, record.reason, record.stderr_tail)
    assert worker(first) == worker(left)
    assert worker(checked) != worker(left)
    assert named in retired(left)


@pytest.mark.parametrize(
    ("mode", "named"),
    [
        ("setattr_of_a_name_in_a_variable", "statelib.LIMIT"),
        ("store_in_its_dict", "statelib.LIMIT"),
        ("set_on_what_a_call_handed_back", "statelib.Config.tol"),
        ("set_through_a_loop", "statelib.LIMIT"),
        ("set_through_its_own_attribute", "statelib.LIMIT"),
        ("set_on_a_librarys_object", "statelib.options.tol"),
        ("store_in_a_librarys_dict", "statelib.REGISTRY"),
        ("append_to_a_librarys_list", "statelib.HOOKS"),
        ("replace_a_functions_defaults", "statelib.scale.__defaults__"),
    ],
)
def test_a_value_bound_where_the_code_hides_its_receiver_retires_its_worker(
    tmp_path: Path, run_cli: CliRunner, mode: str, named: str
) -> None:
    """`setattr(statelib, name, 0)` with the name in a variable, `vars(statelib)["LIMIT"]
    = 0`, `statelib.settings().tol = 1` through a local: no receiver was recorded for the
    first two, and what a library's call handed back was taken for an object the repro
    made, so the value stayed for the next cell (regressed where `--isolate` passes, the
    run exit 0); so did an attribute of a library's object (`statelib.options.tol = 3`),
    its dict or list changed in place, a function's `__defaults__`, where the module's and
    classes' dicts are unchanged. The worker now retires after it, naming it; a loop over
    the library's modules and an attribute of the repro's own object holding one still do."""
    first, left, checked = _run(tmp_path, run_cli, f"{mode}.py", "ok", mode, "ok")
    for record in (first, left, checked):
        assert record.status is Status.PASSED, (record.repro, record.reason, record.stderr_tail)
    assert worker(first) == worker(left)
    assert worker(checked) != worker(left)
    assert named in retired(left)


def test_names_a_library_rebinds_set_on_a_models_own_objects_retire_no_worker(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """`for p in net.parameters(): p.data = None`, `for i, layer in enumerate(net.layers)`,
    `self.out.data = ...`: a loop's variable and an attribute of the repro's own object
    were receivers it could not tell, so their names alone counted, and the worker retired
    whenever the library rebound its own `data` or `device` (here at its second call; a
    fresh worker, torch's import and CUDA's set-up, for nothing)."""
    records = _run(tmp_path, run_cli, "own_objects.py", "ok", "ok", "ok")
    assert [retired(r) for r in records] == ["", "", ""]
    passed_in_one_worker(*records)


#: A script run whole in each cell (no `run()`), whose main block sets a library's value.
WHOLE = textwrap.dedent("""\
    import json, os, sys
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(os.path.dirname(here), "lib"))
    import statelib

    if __name__ == "__main__":
        statelib.LIMIT = 0  # for this case only, as its process would have it
        out = sys.argv[sys.argv.index("--out") + 1]
        with open(out, "w") as f:
            json.dump({"schema": 1, "status": "passed", "reason": "set LIMIT"}, f)
    """)


def test_a_value_a_script_run_whole_binds_on_a_library_never_reaches_another_repros_cell(
    tmp_path: Path, run_cli: CliRunner
) -> None:
    """A script without `run()` runs whole (runpy) in each cell, its module in no entry of
    `sys.modules` after: what its code binds was never read, so its `statelib.LIMIT = 0`
    stayed for the next repro's cell in the worker (regressed where a process of its own
    passes, the run exit 0). The worker now retires after it, naming it."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "statelib.py").write_text(LIBRARY)
    scripts = {"whole.py": WHOLE, "clean.py": CLEAN}
    cells = [
        (n, f"script: repros/{s}.py") for n, s in (("a", "clean"), ("b", "whole"), ("c", "clean"))
    ]
    first, whole, checked = run_cells(tmp_path, run_cli, scripts, cells)
    for record in (first, whole, checked):
        assert record.status is Status.PASSED, (record.repro, record.reason, record.stderr_tail)
    assert worker(first) == worker(whole)
    assert "statelib.LIMIT" in retired(whole)
    assert worker(checked) != worker(whole)
