"""A repro script as a persistent worker (`worker_main.py`) takes it: whether it is a repro
module with `run` (imported once, `run(params)` called per cell) or a script to run as
`python SCRIPT` would, its folder first on `sys.path` (and the modules of other repros'
folders forgotten), its module imported once, importable by name in the processes a
cell spawns, and its exit handlers run when its cell ends.

Apart from `worker_main.py` because this is what the worker knows of scripts, where that
file is its connection to the harness and a cell's run; `local.py` and `docker/isolated.py`
ask `module_only` too. Standard library only, as `worker_main.py`, which runs it from the
same folder.
"""

from __future__ import annotations

import ast
import atexit
import contextlib
import importlib.util
import os
import sys
import traceback
import zlib
from collections.abc import Callable, Iterator
from typing import Any

if __package__:  # imported as part of repromatrix (type checks)
    from repromatrix.executors.worker_code import SCRIPT, repros_file
else:  # run from worker_main.py's folder, which is on sys.path
    from worker_code import SCRIPT, repros_file  # type: ignore[import-not-found,no-redef]


def module_only(script: str) -> bool:
    """Whether the script is a repro module (see `has_run`) without an `if __name__ ==
    "__main__":` block: run as a command, it would do nothing."""
    if not has_run(script):
        return False
    with open(script, encoding="utf-8") as f:
        body = ast.parse(f.read()).body
    return not any(isinstance(node, ast.If) for node in body)


#: Scripts being imported as repro modules, once per worker.
_IMPORTING: list[str] = []


@contextlib.contextmanager
def exit_handlers(script: str) -> Iterator[None]:
    """Exit handlers of the script's own (`atexit.register` of a function of its file)
    run when its cell ends, as `python SCRIPT` runs them when it exits: a script that
    wrote its result JSON in one lost it in its worker ("exited 1 but wrote no result
    JSON"), where --isolate recorded it, and the handler ran at the worker's exit, into a
    cell folder long judged. A library's handlers (torch's, imported once) stay the
    worker's, as do those a repro module registers as it is imported (once per worker:
    run after its first cell, one that removes what the import made broke the next)."""
    path, own, active = os.path.abspath(script), [], [True]
    folder = os.path.dirname(path)
    register, unregister = atexit.register, atexit.unregister

    def kept(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[..., Any]:
        code = getattr(func, "__code__", None)
        mine = code is not None and os.path.abspath(code.co_filename) == path
        # Or registered by the repro's code, its folder's (`atexit.register(shutil.rmtree,
        # scratch)`, `print`): it ran at the worker's exit, its output in no cell's log
        # and its clean-up long after, where `python SCRIPT` runs it as it ends.
        caller = sys._getframe(1).f_code.co_filename
        mine = mine or repros_file(caller, folder)
        if active[0] and mine and not _IMPORTING:
            own.append((func, args, kwargs))
            return func
        return register(func, *args, **kwargs)

    def dropped(func: Callable[..., Any]) -> None:
        own[:] = [h for h in own if h[0] != func]
        unregister(func)

    atexit.register, atexit.unregister = kept, dropped  # type: ignore[assignment]
    try:
        yield
    finally:
        active[0] = False
        atexit.register, atexit.unregister = register, unregister
        for func, args, kwargs in reversed(own):  # last registered first, as at exit
            try:
                func(*args, **kwargs)
            except Exception:  # as the interpreter says it, and goes on
                print(f"Exception ignored in atexit callback {func!r}:", file=sys.stderr)
                traceback.print_exc()
            except SystemExit:
                pass


#: Folders of the scripts this worker has run (each on sys.path while its cells run).
_FOLDERS: list[str] = []


def enter_folder(script: str) -> str:
    """Put the script's folder first on sys.path, as `python SCRIPT` has it. When the
    previous cell's script lived in another folder, forget the modules found there
    (`import common` of two repros must give each its own `common`)."""
    SCRIPT[0] = os.path.abspath(script)  # what `worker_code.Claims` reads, run whole too
    folder = os.path.dirname(SCRIPT[0])
    if _FOLDERS and _FOLDERS[-1] != folder:
        others = [f for f in _FOLDERS if f != folder]
        for name, module in list(sys.modules.items()):
            if any(_found_in(module, name, other) for other in others):
                del sys.modules[name]
    if folder in _FOLDERS:
        _FOLDERS.remove(folder)
    _FOLDERS.append(folder)
    sys.path.insert(0, folder)
    return folder


def _found_in(module: Any, name: str, folder: str) -> bool:
    """Whether `import name` found the module in `folder` (a sys.path entry)."""
    path = getattr(module, "__file__", None)
    if not isinstance(path, str) or not path.startswith(folder + os.sep):
        return False
    where = os.path.join(folder, *name.split("."))
    return path in (where + ".py", os.path.join(where, "__init__.py"))


_SHAPES: dict[str, bool] = {}


def has_run(script: str) -> bool:
    """Whether the script is a repro module: a top-level `run` and nothing at top level
    that acts (parses arguments, computes) — only imports, definitions, assignments,
    `sys.path` edits and an `if __name__ == "__main__":` block. Anything else is run as
    `python SCRIPT` would run it (runpy), still with the imports of earlier cells."""
    if script not in _SHAPES:
        try:
            with open(script, encoding="utf-8") as f:
                tree = ast.parse(f.read())
        except (OSError, SyntaxError, ValueError):
            _SHAPES[script] = False
            return False
        _SHAPES[script] = any(
            isinstance(n, ast.FunctionDef) and n.name == "run" for n in tree.body
        ) and all(_inert(n) for n in tree.body)
    return _SHAPES[script]


_DEFAULTS: dict[str, ast.expr | None] = {}
_HANDED: dict[str, Any] = {}


def main_defaults(script: str, module: Any, helper: Any = None) -> Any:
    """The defaults the script's `if __name__ == "__main__":` block hands `_repro.main(run,
    DEFAULTS)` (its global of that name, or a literal there), None when it hands none. A
    worker never runs that block, and `main` is what refuses a param its defaults lack.
    Defaults built otherwise (`dict(mode="")`, a local of the block, a function of the
    script's own that calls `main`) are asked of `helper`, the script's `_repro`."""
    if script not in _DEFAULTS:
        _DEFAULTS[script] = None
        for call in (n for n in ast.walk(_main_block(script)) if isinstance(n, ast.Call)):
            if ast.unparse(call.func).rsplit(".", 1)[-1] != "main":
                continue
            named = {k.arg: k.value for k in call.keywords}
            _DEFAULTS[script] = call.args[1] if len(call.args) > 1 else named.get("defaults")
            break
    node = _DEFAULTS[script]
    try:
        found = (
            getattr(module, node.id, None)
            if isinstance(node, ast.Name)
            else (None if node is None else ast.literal_eval(node))
        )
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        found = None
    if not isinstance(found, dict) and helper is not None:
        if script not in _HANDED:
            _HANDED[script] = _handed(script, module, helper)
        found = _HANDED[script]
    return found if isinstance(found, dict) else None


def _main_block(script: str) -> ast.Module:
    """The script's `if __name__ == "__main__":` blocks, as one module (empty if none)."""
    try:
        with open(script, encoding="utf-8") as f:
            body = ast.parse(f.read()).body
    except (OSError, SyntaxError, ValueError):
        body = []
    blocks = [n for n in body if isinstance(n, ast.If) and _inert(n)]
    return ast.Module(body=[s for b in blocks for s in b.body], type_ignores=[])


class _Handed(BaseException):  # not an Exception: no `except Exception:` of the block's
    """Raised in place of `_repro.main`, with the defaults the script handed it."""

    def __init__(self, defaults: Any) -> None:
        super().__init__()
        self.defaults = defaults


def _handed(script: str, module: Any, helper: Any) -> Any:
    """The defaults the script's `__main__` block hands `helper.main`, found by running the
    block once with that `main` replaced by one that raises with them (so `run()` is not
    called); None when the script never calls it, or the block fails or ends before."""
    block, real = _main_block(script), getattr(helper, "main", None)
    names = {f"{k}.main" for k, v in vars(module).items() if v is helper}
    names |= {k for k, v in vars(module).items() if real is not None and v is real}
    try:
        with open(script, encoding="utf-8") as f:
            calls = [n for n in ast.walk(ast.parse(f.read())) if isinstance(n, ast.Call)]
    except (OSError, SyntaxError, ValueError):
        calls = []
    if not block.body or not any(ast.unparse(n.func) in names for n in calls):
        return None  # a block that does not call `main` (`print(run({}))`) is not run

    def handed(*args: Any, **kwargs: Any) -> Any:
        raise _Handed(args[1] if len(args) > 1 else kwargs.get("defaults"))

    spaces = (vars(module), namespace := dict(vars(module)))
    bound = [(space, k) for space in spaces for k, v in space.items() if real and v is real]
    _IMPORTING.append(script)  # exit handlers it registers are the worker's, as an import's
    try:
        helper.main = handed
        for space, key in bound:
            space[key] = handed
        exec(compile(block, script, "exec"), namespace)  # the script's own block, once
    except _Handed as got:
        return got.defaults
    except (Exception, SystemExit):
        return None
    finally:
        _IMPORTING.pop()
        helper.main = real
        for space, key in bound:
            space[key] = real
    return None


def _inert(node: ast.stmt) -> bool:
    if isinstance(
        node,
        (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
         ast.Assign, ast.AnnAssign),
    ):  # fmt: skip
        return True
    if isinstance(node, ast.Expr):
        value = node.value
        if isinstance(value, ast.Constant):  # a docstring
            return True
        func = value.func if isinstance(value, ast.Call) else None
        return isinstance(func, ast.Attribute) and ast.unparse(func) in (
            "sys.path.insert",
            "sys.path.append",
        )
    if isinstance(node, ast.If):
        return ast.unparse(node.test).replace("'", '"') == '__name__ == "__main__"'
    return False


def loaded(script: str, modules: dict[str, Any]) -> Any:
    """The script imported once per worker (its directory first on sys.path, as `python
    SCRIPT` has it, so its helpers import)."""
    if script in modules:
        return modules[script]
    # Named after the script's path too: two repros' `rep.py` are two modules.
    path = os.path.abspath(script)
    tag = format(zlib.crc32(path.encode("utf-8", "surrogateescape")), "08x")
    name = f"_repromatrix_cell_{os.path.splitext(os.path.basename(script))[0]}_{tag}"
    spec = importlib.util.spec_from_file_location(name, script)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {script}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    _importable(name, path)
    _IMPORTING.append(script)  # its exit handlers are the worker's (`exit_handlers`)
    try:
        spec.loader.exec_module(module)
    finally:
        _IMPORTING.pop()
    modules[script] = module
    return module


#: The folder of links that make repro modules importable by their names here.
MODULE_LINKS: list[str] = []


def _importable(name: str, path: str) -> None:
    """Processes a cell starts with multiprocessing's spawn method (torch's) import the
    functions they run by their module's name, here a private one: a link of that name to
    the script, in a folder at the end of sys.path (which spawned children get)."""
    folder = MODULE_LINKS[-1] if MODULE_LINKS else ""
    try:
        os.makedirs(folder, exist_ok=True)
        link = os.path.join(folder, f"{name}.py")
        if not os.path.lexists(link):
            os.symlink(path, link)
    except OSError:
        return  # not importable there: only such children fail, as they did
    if folder not in sys.path:
        sys.path.append(folder)
