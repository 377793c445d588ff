"""A cell's result as a persistent worker (`worker_main.py`) writes it, the way
`python SCRIPT --out OUT` (`repros/_repro.main`) would: the JSON file, and the exit code
of the repro protocol that goes with it.

Standard library only, as `worker_main.py`, which runs it from the same folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import traceback
import types
from collections.abc import Iterator
from typing import Any

EXIT_ERROR = 2  # exit codes of the repro protocol
_EXIT = {"passed": 0, "regressed": 1, "untestable": 125}


def write_json(path: str, obj: Any) -> None:
    """As a script's `json.dump` writes it (NaN as a token, which the judge makes null),
    numpy and torch scalars (`np.float32`, 0-d tensors) as the numbers they hold. Its
    folder made again when the cell removed it, as `_repro.write_json_atomic` does: the
    worker lost such a result ("exited 2 without a result") that --isolate recorded."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f, _any_int_length():
            json.dump(obj, f, default=_scalar)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)  # half a result, never read: not left in the cell's folder
        raise


@contextlib.contextmanager
def _any_int_length() -> Iterator[None]:
    """Integers of any length written whole while inside, as `_repro.any_int_length`:
    CPython 3.11+ refuses to write one past 4,300 digits (a metric of 10**5000 lost the
    whole result), where the harness keeps such a metric as null and names it."""
    setter = getattr(sys, "set_int_max_str_digits", None)
    if setter is None:  # an interpreter without the limit
        yield
        return
    before = sys.get_int_max_str_digits()
    setter(0)
    try:
        yield
    finally:
        setter(before)


#: What `write_json` raises for an object json cannot write (a set, a cycle, nesting past
#: the recursion limit), or a file it cannot write, as `_repro.main` catches them.
UNWRITABLE = (OSError, ValueError, TypeError, RecursionError)


def cannot_write(exc: BaseException) -> str:
    """The line `_repro.main` prints when it cannot write the result JSON."""
    line = " ".join(f"{type(exc).__name__}: {exc}".split())
    line = line if len(line) <= 500 else line[:497] + "..."  # as `_repro.one_line` cuts it
    return f"error: cannot write the result JSON: {line}"


def _scalar(value: Any) -> Any:
    """A numpy or torch scalar (`np.float32`, a 0-d tensor) as the number it holds; an
    array or tensor of up to 10,000 values as their list (the harness leaves such a metric
    out, naming it, where the whole result was lost to "can only convert an array of size
    1 to a Python scalar")."""
    numel = getattr(value, "numel", None)
    size = numel() if callable(numel) else getattr(value, "size", None)
    if not isinstance(size, int):
        size = 1
    plain = value.item() if size == 1 and callable(getattr(value, "item", None)) else None
    if isinstance(plain, int | float | bool | str):
        return plain
    listed = value.tolist() if size <= 10_000 and callable(getattr(value, "tolist", None)) else None
    if isinstance(listed, list):
        return listed
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def exit_of(result: Any) -> int:
    """The exit code `_repro.main` gives `result`, said on stderr as it says it."""
    if isinstance(result, dict):
        status = result.get("status")
        # The line `_repro.main` prints, reason included: a cell's "last output" reads the
        # same in its worker and under --isolate ("m: fail" here was "m: fail: checked").
        # A cell that closed its stderr loses the line, never its verdict (`_repro.main`).
        with contextlib.suppress(OSError, ValueError):
            print(f"{result.get('repro')}: {status}: {result.get('reason')}", file=sys.stderr)
        return _EXIT.get(str(status), EXIT_ERROR)
    # As `_repro.main` says it: a `run()` that forgot its `return`.
    print(f"error: run() returned {type(result).__name__}, not a result dict", file=sys.stderr)
    return EXIT_ERROR


def caught(exc: BaseException, module: Any, params: Any) -> dict[str, Any] | None:
    """The result `_repro.main` writes when `run()` raises `exc` (made by the repro's own
    `_repro`), or None when it writes none (a repro without the helper, an exception
    that is no `Exception`). `raise _repro.Untestable("no GPU")` straight from `run()`,
    outside `_repro.execute`: untestable, with its message (recorded as an error before, a
    CPU host showed such cells red, where "cannot be tested here" was meant). Any other
    exception: an error whose reason is `Type: message` with its traceback, as under
    `--isolate` (the worker said "exited 2 without a result ...; last output: ...")."""
    if module is None or not isinstance(exc, Exception):
        return None
    helper: Any = sys.modules.get(type(exc).__module__)
    untestable = type(exc).__name__ == "Untestable" and helper is not None
    if not untestable:
        helper = helper_of(module)
    if untestable:
        return _recorded(helper, module, params, "untestable", str(exc) or "untestable here")
    try:
        why = helper.exc_reason(exc)
    except Exception:  # not the _repro this worker knows: an error, as any exception
        return None
    return _recorded(helper, module, params, "error", why, traceback.format_exc())


def refused_params(module: Any, params: Any, defaults: Any) -> tuple[dict[str, Any], str] | None:
    """The error result `_repro.main(run, defaults)` writes, and the line it prints, for
    params its defaults refuse (an unknown key, a wrong type), before it calls `run()`;
    None when they pass or the module has no such helper. A typo in matrix.yaml's params
    ran the default case in a worker, where --isolate refused it."""
    helper = helper_of(module)
    refusal = getattr(helper, "ParamsError", None)
    if defaults is None or not (isinstance(refusal, type) and issubclass(refusal, Exception)):
        return None
    try:
        helper.merge_params(defaults, params)
    except refusal as exc:
        made = _recorded(helper, module, {}, "error", helper.exc_reason(exc))
        return None if made is None else (made, f"error: {exc}")
    except Exception:  # not the _repro this worker knows: as if it had no defaults
        return None
    return None


def returned(result: Any, module: Any, params: Any) -> Any:
    """What `_repro.main` writes for what `run()` returned: a dict as it is, anything else
    (a forgotten `return`: None) the error "run() returned NoneType, not a result dict"
    made by the repro's own helper. The worker wrote the object itself before: "exited 2
    without a result (wrote result JSON that is not an object) ...", where --isolate
    said "exited 2: run() returned NoneType, ...". Without the helper: as it is."""
    if isinstance(result, dict):
        return result
    why = f"run() returned {type(result).__name__}, not a result dict"
    made = _recorded(helper_of(module), module, params, "error", why)
    return result if made is None else made


def _recorded(
    helper: Any, module: Any, params: Any, status: str, reason: str, tb: str | None = None
) -> dict[str, Any] | None:
    """`helper.Recorder(NAME, params).result(status, reason, tb)` as `_repro.main` makes
    it, None when `helper` is no `_repro` this worker knows."""
    try:
        name_of = getattr(helper, "_repro_name", None)
        name = name_of(module.run) if callable(name_of) else None
        cell = helper.Recorder(str(name or getattr(module, "NAME", None) or module.__name__),
                               dict(params or {}))  # fmt: skip
        result: dict[str, Any] = cell.result(status, reason, tb)
    except Exception:
        return None
    return result


def helper_of(module: Any) -> Any:
    """The `_repro` helper the repro module imported (a module of its globals with the
    helper's `main`, `Recorder` and `exc_reason`), None when it has none."""
    for value in list(vars(module).values()):
        if isinstance(value, types.ModuleType) and _is_helper(value):
            return value
    for value in list(vars(module).values()):  # `from _repro import main`: main's module
        name = getattr(value, "__module__", None)
        home = sys.modules.get(name) if isinstance(name, str) else None
        if callable(value) and home is not None and home is not module and _is_helper(home):
            return home
    return None


def _is_helper(value: Any) -> bool:
    return all(callable(getattr(value, n, None)) for n in ("main", "Recorder", "exc_reason"))
