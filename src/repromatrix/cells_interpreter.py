"""Whether the interpreter local cells run with can run them at all, asked before any
cell: new enough for the worker and `repros/_repro.py`, importing what the cells need
(torch for a GPU cell, a repro's `needs:`), and holding the pip that installs their pins.
A wrong interpreter made every cell an 'untestable' or 'error' record, the run exit 0."""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence

from repromatrix.envs import installs_with_pip
from repromatrix.errors import MissingToolError
from repromatrix.host import CELL_PYTHON_TEXT, Interpreter, missing_modules
from repromatrix.model import Cell


def check_cells_interpreter(interpreter: Interpreter, local: Sequence[Cell]) -> None:
    """MissingToolError, in one line naming the interpreter and the way out, where it
    cannot run the `local` cells."""
    python = interpreter.executable
    if local and interpreter.too_old_for_cells:
        raise MissingToolError(
            f"{python} is Python {interpreter.version}; cells need Python "
            f"{CELL_PYTHON_TEXT} or newer (the worker and repros/_repro.py): "
            "pass --python PATH of a newer one (nox: REPROMATRIX_PYTHON)"
        )
    needs = {m for cell in local for m in cell.needs}
    # pip, asked with the rest (one interpreter start): a uv environment has none unless
    # asked for one, and every cell with a pin to install was an error record ("No module
    # named pip") that later runs reused, the run exit 0.
    built = [c for c in local if installs_with_pip(c.pins)]
    missing = missing_modules(python, needs | ({"pip"} if built else set()))
    if "pip" in missing and "pip" not in needs:
        missing.remove("pip")
        if not missing:  # else the modules' line: the GPU stack's interpreter may have pip
            raise MissingToolError(_no_pip(python, built))
    if not missing:
        return
    cells = list(dict.fromkeys(c.id for c in local if set(c.needs) & set(missing)))
    raise MissingToolError(
        f"{python} cannot import {', '.join(missing)}, which {len(cells)} cell(s) need "
        f"(e.g. {cells[0]}){_venv_behind_link(python)}; run them with the interpreter that "
        "holds the GPU stack: --python PATH (nox: start it with that interpreter, or set "
        "REPROMATRIX_PYTHON=PATH)"
    )


def _no_pip(python: str, built: Sequence[Cell]) -> str:
    said = shlex.quote(python)  # commands to paste: a path with spaces quoted
    return (
        f"{python} has no pip, which installs the pins of {len(built)} cell(s) "
        f"(e.g. {built[0].id}): add it to that environment ({said} -m ensurepip, "
        f"or uv pip install --python {said} pip) or pass --python PATH of one "
        "that has it (nox: REPROMATRIX_PYTHON=PATH)"
    )


def _venv_behind_link(python: str) -> str:
    """Where `python` is a link, made outside a venv, to that venv's interpreter: Python
    finds its venv by the path it was started by, so the link runs the venv's base
    interpreter, without the venv's packages (torch), which the link's target has. The
    links are followed one at a time: a venv's own python is a link to its base's."""

    def venv_of(path: str) -> str | None:
        home = os.path.dirname(os.path.dirname(path))
        return home if os.path.isfile(os.path.join(home, "pyvenv.cfg")) else None

    if venv_of(python) is not None:
        return ""
    step, seen = python, set[str]()
    while os.path.islink(step) and step not in seen and len(seen) < 40:
        seen.add(step)
        step = os.path.join(os.path.dirname(step), os.readlink(step))
        home = venv_of(step)
        if home is not None:
            hop = os.path.normpath(step)
            return f" (a link to {hop}, whose venv {home} is seen only when started by that path)"
    return ""
