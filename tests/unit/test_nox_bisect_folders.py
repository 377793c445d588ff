"""`nox -f ../noxfile.py -s bisect -- ...` from another folder than the noxfile's: the results
folder `bisect` defaults to is the noxfile's (nox runs there), and its last line said
"results in results/vm.jsonl", a folder the caller's does not have. The session now names
it by its absolute path, as the matrix and report sessions name theirs."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


class _Session:
    """nox's Session as the bisect session uses it: posargs, the caller's folder, commands."""

    def __init__(self, posargs: list[str], invoked_from: Path) -> None:
        self.posargs = posargs
        self.invoked_from = str(invoked_from)
        self.ran: list[tuple[str, ...]] = []

    def run(self, *args: str, **kwargs: Any) -> None:
        self.ran.append(args)

    def error(self, *args: Any) -> None:
        raise AssertionError(f"session.error{args}")


def _noxfile(monkeypatch: pytest.MonkeyPatch) -> Any:
    fake = types.ModuleType("nox")
    fake.options = types.SimpleNamespace()  # type: ignore[attr-defined]
    fake.session = lambda f=None, **_: f if f is not None else (lambda g: g)  # type: ignore[attr-defined]
    fake.Session = object  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "nox", fake)
    monkeypatch.syspath_prepend(str(ROOT))
    spec = importlib.util.spec_from_file_location("noxfile_under_test", ROOT / "noxfile.py")
    assert spec is not None
    assert spec.loader is not None
    noxfile = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(noxfile)
    monkeypatch.setattr(noxfile, "cells_python", lambda session: "/opt/gpu/bin/python3")
    monkeypatch.setattr(noxfile, "install", lambda *args, **kwargs: None)
    return noxfile


def test_bisect_from_another_folder_names_the_noxfiles_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    noxfile = _noxfile(monkeypatch)
    proj, caller = tmp_path / "proj", tmp_path / "caller"
    proj.mkdir()
    caller.mkdir()
    monkeypatch.chdir(proj)  # nox runs in the noxfile's folder
    args = ["r", "--library", "lib", "--good", "c0", "--bad", "c9", "--matrix", "m.yaml"]
    session = _Session(args, caller)
    noxfile.bisect(session)
    (ran,) = session.ran
    assert ran[:2] == ("repromatrix", "bisect")
    assert ran[2:] == (
        "--python", "/opt/gpu/bin/python3", *args[:-1], str(caller / "m.yaml"),
        "--results", str(proj / "results"),
    )  # fmt: skip
    # A --results given is the caller's, and no second one is added (`bisect` refuses it).
    session = _Session([*args, "--results", "res"], caller)
    noxfile.bisect(session)
    (ran,) = session.ran
    assert ran.count("--results") == 1
    assert ran[-1] == str(caller / "res")
    # Started in the noxfile's folder: the arguments as given, the folder as relative.
    session = _Session(args, proj)
    noxfile.bisect(session)
    (ran,) = session.ran
    assert "--results" not in ran
