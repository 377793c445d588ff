"""`nox -s tests --install-only`: the set-up of a checkout (DESIGN's helpers run it before
anything else) installs the session's venv and runs nothing. nox skips each `session.run`
then (it returns None), but not a process the session starts itself."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


class _InstallOnly:
    """nox's Session under --install-only: it installs, and skips every command it runs."""

    def __init__(self, venv: Path) -> None:
        self.posargs: list[str] = []
        self.bin = str(venv / "bin")
        self.virtualenv = types.SimpleNamespace(location=str(venv))

    def install(self, *args: str, **kwargs: Any) -> None:
        pass

    def run(self, *args: str, **kwargs: Any) -> None:
        return None  # "Skipping python run, as --install-only is set."

    def error(self, *args: Any) -> None:
        raise AssertionError(f"session.error{args}")


def test_install_only_starts_no_tests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """It started the Docker and Ray tests in a process of its own, which ran for 12 minutes
    against the engine and ended the set-up 'Session tests aborted: the Docker and Ray
    tests failed'."""
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
    started: list[Any] = []

    def popen(*args: Any, **kwargs: Any) -> None:
        started.append(args)
        raise AssertionError(f"started {args}")

    monkeypatch.setattr(subprocess, "Popen", popen)
    noxfile.tests(_InstallOnly(tmp_path))
    assert not started
