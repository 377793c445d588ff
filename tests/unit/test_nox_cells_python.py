"""The cells' interpreter a nox session picks from its posargs (noxsupport/interpreters.py).

`nox -s matrix -- --python "$GPU_PY"` with GPU_PY unset (or `--python=`) passed an empty
value, which the session took as none given: the cells ran with the interpreter that
started nox, exit 0, where `repromatrix run --python ""` refuses it (exit 64)."""

from __future__ import annotations

import importlib
import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


class _Refused(Exception):
    pass


class _Session:
    def __init__(self, posargs: list[str], invoked_from: Path) -> None:
        self.posargs = posargs
        self.invoked_from = str(invoked_from)

    def error(self, *args: Any) -> None:
        raise _Refused(*args)


def _interpreters(monkeypatch: pytest.MonkeyPatch) -> Any:
    fake = types.ModuleType("nox")
    fake.Session = object  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "nox", fake)
    monkeypatch.syspath_prepend(str(ROOT))
    for name in ("noxsupport.interpreters", "noxsupport.posargs", "noxsupport"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return importlib.import_module("noxsupport.interpreters")


@pytest.mark.parametrize("given", [["--python", ""], ["--python="], ["--python", "", "--rerun"]])
def test_an_empty_python_is_refused_not_taken_for_none(
    given: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    interpreters = _interpreters(monkeypatch)
    monkeypatch.delenv("REPROMATRIX_PYTHON", raising=False)
    with pytest.raises(_Refused, match="--python needs a value"):
        interpreters.cells_python(_Session(["--rerun", *given], tmp_path))


def test_a_python_given_is_the_one_cells_run_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    interpreters = _interpreters(monkeypatch)
    monkeypatch.delenv("REPROMATRIX_PYTHON", raising=False)
    assert interpreters.cells_python(_Session(["--python", sys.executable], tmp_path)) == (
        sys.executable
    )
    # None given: the one that started nox (here, this test's).
    assert interpreters.cells_python(_Session(["--rerun"], tmp_path)) == sys.executable


def test_a_session_without_a_venv_is_refused_before_writing_the_pth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`nox --no-venv -s matrix` wrote `_repromatrix_cells_python.pth` into the
    site-packages of the python on PATH (for good), then ended in a traceback
    ("AssertionError: the session has a virtualenv"); one line now, nothing written."""
    interpreters = _interpreters(monkeypatch)
    site = tmp_path / "site-packages"  # what `python` on PATH would say is its own
    site.mkdir()
    ran: list[tuple[str, ...]] = []

    class _NoVenv(_Session):
        name = "matrix"
        virtualenv = types.SimpleNamespace(location=None)  # nox's PassthroughEnv

        def run(self, *args: str, **kwargs: Any) -> str:
            ran.append(args)
            return json.dumps({"v": list(sys.version_info[:2]), "p": [], "own": [str(site)]})

    with pytest.raises(_Refused, match="nox -s matrix installs repromatrix into a venv"):
        interpreters.see_packages_of(_NoVenv([], tmp_path), sys.executable)
    assert ran == []
    assert list(site.iterdir()) == []


def test_a_name_not_on_path_is_said_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--python gpu-python`, a link in the caller's folder: "is not an executable file",
    of a file that was one; a name alone is looked for on PATH, as `run` looks for it."""
    interpreters = _interpreters(monkeypatch)
    (tmp_path / "gpu-python").symlink_to(sys.executable)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(_Refused) as refused:
        interpreters.cells_python(_Session(["--python", "gpu-python"], tmp_path))
    assert str(refused.value).startswith(
        "cells' interpreter gpu-python (--python) is not found on PATH (./gpu-python is the "
        "file of this folder): pass --python PATH"
    )
    assert interpreters.cells_python(_Session(["--python", "./gpu-python"], tmp_path)) == str(
        tmp_path / "gpu-python"
    )
