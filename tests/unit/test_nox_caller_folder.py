"""The sessions started from another folder than the noxfile's (`nox -f ../noxfile.py -s
NAME -- ARGS`), where nox runs in the noxfile's folder: what the caller named is the
caller's, and a folder the caller did not name is said by its absolute path.

- bisect: the results folder it defaults to is the noxfile's, and its last line said
  "results in results/vm.jsonl", a folder the caller's does not have; it is now named by
  its absolute path, as the matrix and report sessions name theirs.
- tests: `nox -f ../noxfile.py -s tests -- unit/test_store.py` from tests/ said "file or
  directory not found"; pytest now runs in the caller's folder of the checkout, as started
  there itself (from outside the checkout, in its root: the caller's folder is not one of
  tests).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


class _Session:
    """nox's Session as the sessions use it: posargs, the caller's folder, commands."""

    def __init__(self, posargs: list[str], invoked_from: Path) -> None:
        self.posargs = posargs
        self.invoked_from = str(invoked_from)
        self.name = "tests"
        self.virtualenv = types.SimpleNamespace(location=str(invoked_from / ".nox" / "x"))
        self.ran: list[tuple[str, ...]] = []
        #: The folder each command ran in.
        self.cwd: list[str] = []

    def run(self, *args: str, **kwargs: Any) -> str:
        self.ran.append(args)
        self.cwd.append(os.getcwd())
        return ""  # not None: nox returns None under --install-only alone

    def install(self, *args: str, **kwargs: Any) -> None:
        pass

    @contextlib.contextmanager
    def chdir(self, folder: str) -> Iterator[None]:
        before = os.getcwd()
        os.chdir(folder)
        try:
            yield
        finally:
            os.chdir(before)

    def error(self, *args: Any) -> None:
        raise AssertionError(f"session.error{args}")


class _Failed(Exception):
    """nox.command.CommandFailed: the exit status of a command that failed."""

    def __init__(self, return_code: int) -> None:
        super().__init__(f"exit {return_code}")
        self.return_code = return_code


def _noxfile(monkeypatch: pytest.MonkeyPatch) -> Any:
    fake = types.ModuleType("nox")
    fake.options = types.SimpleNamespace()  # type: ignore[attr-defined]
    fake.session = lambda f=None, **_: f if f is not None else (lambda g: g)  # type: ignore[attr-defined]
    fake.Session = object  # type: ignore[attr-defined]
    fake.command = types.SimpleNamespace(CommandFailed=_Failed)  # type: ignore[attr-defined]
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


def test_tests_from_a_folder_of_the_checkout_run_pytest_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    noxfile = _noxfile(monkeypatch)
    proj, outside = tmp_path / "proj", tmp_path / "outside"
    caller = proj / "tests"
    caller.mkdir(parents=True)
    outside.mkdir()
    monkeypatch.chdir(proj)
    session = _Session(["unit/test_store.py", "-q"], caller)
    noxfile.tests(session)
    compiled, pytest_run = session.ran
    assert compiled[:3] == ("python", "-m", "compileall")
    assert pytest_run[-2:] == ("unit/test_store.py", "-q")
    # compileall's `src` is the noxfile's; pytest's arguments are the caller's.
    assert session.cwd == [str(proj), str(caller)]
    assert os.getcwd() == str(proj)  # and the session's folder is the noxfile's again
    # Started in the noxfile's folder: pytest runs there, as before.
    session = _Session(["tests/unit/test_store.py"], proj)
    noxfile.tests(session)
    assert session.cwd == [str(proj), str(proj)]
    # From outside the checkout (`-- -k store`): its root, not the caller's folder, whose
    # own test files pytest collected there.
    session = _Session(["-k", "store"], outside)
    noxfile.tests(session)
    assert session.cwd == [str(proj), str(proj)]


@pytest.mark.parametrize("name", ["tests", "lint", "bench"])
def test_a_session_without_a_venv_is_one_line(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`nox --no-venv -s tests` ended in nox's traceback ("ValueError: Session tests does
    not have a virtual environment, so use of session.install() is no longer allowed")."""
    noxfile = _noxfile(monkeypatch)
    session = _Session([], tmp_path)
    session.name = name
    session.virtualenv = types.SimpleNamespace(location=None)  # nox's PassthroughEnv
    # The whole suite's second pytest, which `tests` without posargs starts itself.
    monkeypatch.setattr(noxfile.subprocess, "Popen", lambda *a, **k: pytest.fail(f"{a}"))
    with pytest.raises(AssertionError, match="installs repromatrix into a venv of its own"):
        getattr(noxfile, name)(session)
    assert session.ran == []


def test_matrix_from_another_folder_names_the_reports_it_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A --fail-on that matched ended "reports/ is written", from a folder without one: the
    report went to the noxfile's reports/ (named so on the report's own line above)."""
    noxfile = _noxfile(monkeypatch)
    proj, caller = tmp_path / "proj", tmp_path / "caller"
    proj.mkdir()
    caller.mkdir()
    monkeypatch.chdir(proj)

    class _Regressed(_Session):
        def run(self, *args: str, **kwargs: Any) -> str:
            super().run(*args, **kwargs)
            if args[:2] == ("repromatrix", "run"):
                raise _Failed(1)
            return ""

    for invoked_from, said in ((caller, f"{proj}/reports/"), (proj, "reports/")):
        session = _Regressed(["--fail-on", "regressed"], invoked_from)
        with pytest.raises(AssertionError) as failed:
            noxfile.matrix(session)
        assert f"cells ended as --fail-on names them (above); {said} is written" in str(
            failed.value
        )
        assert [ran[1] for ran in session.ran] == ["run", "report"]
