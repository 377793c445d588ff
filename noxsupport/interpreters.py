"""The interpreters a session deals with: the cells' (the one with the GPU stack), nox's venv,
and the packages of the first the second sees."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import nox

from noxsupport.posargs import posarg, posargs


def cells_python(session: nox.Session) -> str:
    """The interpreter cells run with: --python, else REPROMATRIX_PYTHON, else the one
    running nox (the noxfile runs in it) — as given, never resolved through symlinks, which
    would leave a venv for its base interpreter and lose the venv's torch."""
    if len(posargs(session.posargs, "--python")) > 1:
        # `run` refuses a second one; this session passes it one, and dropped the other.
        session.error("--python given twice; the command takes one, keep it")
    if (session.posargs and session.posargs[-1] == "--python") or "" in posargs(
        session.posargs, "--python"
    ):
        # `--python $PY` (or `"$PY"`, `--python=`) of an unset variable: `run` refuses it,
        # but this session dropped it, and the cells ran with the interpreter of nox.
        session.error("--python needs a value: the interpreter cells run with (a path)")
    given = posarg(session.posargs, "--python")
    where = "--python" if given else "REPROMATRIX_PYTHON"
    python = given or os.environ.get("REPROMATRIX_PYTHON") or sys.executable
    found = shutil.which(python) if os.sep not in python else python
    if found is not None and not os.path.isabs(found):
        # nox runs in the noxfile's folder: a relative path is the caller's.
        found = os.path.join(session.invoked_from, found)
    if found is None or not os.path.isfile(found) or not os.access(found, os.X_OK):
        # A name alone is looked for on PATH, as a shell does: "not an executable file"
        # said of `--python gpu-python` where ./gpu-python was one.
        what = "not found on PATH" if found is None else "not an executable file"
        if found is None and os.path.isfile(os.path.join(session.invoked_from, python)):
            what += f" (./{python} is the file of this folder)"
        session.error(
            f"cells' interpreter {python} ({where}) is {what}: pass "
            "--python PATH or REPROMATRIX_PYTHON=PATH of the Python with the GPU stack"
        )
    return os.path.abspath(found)


def venv_location(session: nox.Session) -> str:
    location = getattr(session.virtualenv, "location", None)
    if not isinstance(location, str):
        # `nox --no-venv` (or `--force-venv-backend none`): the .pth file that lends nox's
        # venv the cells' interpreter's packages went into the site-packages of the python
        # on PATH, for good, and the session then ended in a traceback.
        session.error(
            f"nox -s {session.name} installs repromatrix into a venv of its own: run it "
            "without --no-venv (or --force-venv-backend none)"
        )
    return location


def venv_python(session: nox.Session) -> str:
    return os.path.join(venv_location(session), "bin", "python")


def see_packages_of(session: nox.Session, python: str) -> None:
    """Let nox's venv import what the cells' interpreter has (pandas, pydantic, ...), so a
    GPU host installs only what it lacks. A `.pth` file, not --system-site-packages: for
    an interpreter that is itself a venv, "system" means its *base* interpreter, whose
    site-packages lack the venv's packages. Skipped across Python versions (compiled
    packages of another version would not load)."""
    venv_location(session)  # before the .pth file is written into what `python` is
    probe = (
        "import json, sys, sysconfig; print(json.dumps({'v': list(sys.version_info[:2]), "
        "'p': [p for p in sys.path if p.endswith(('site-packages', 'dist-packages'))], "
        "'own': [sysconfig.get_path('purelib'), sysconfig.get_path('platlib')]}))"
    )
    try:
        out = subprocess.run(
            [python, "-c", probe], check=True, capture_output=True, text=True, timeout=120
        )
        theirs = json.loads(out.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        session.error(
            f"{python} is not a Python that runs (asked for its packages): pass "
            "--python PATH or REPROMATRIX_PYTHON=PATH of the Python with the GPU stack"
        )
    # The venv's own site directories, not its sys.path: that holds what the .pth of an
    # earlier run of this session added.
    ours = session.run("python", "-c", probe, silent=True)
    assert isinstance(ours, str)
    mine = json.loads(ours.strip().splitlines()[-1])
    pth = os.path.join(mine["own"][0], "_repromatrix_cells_python.pth")
    try:
        if theirs["v"] != mine["v"]:
            version = ".".join(map(str, theirs["v"]))
            session.log(f"{python} is Python {version}; nox's venv installs its own packages")
            if os.path.exists(pth):
                os.remove(pth)  # an earlier run's, of another interpreter
            return
        with open(pth, "w") as f:
            f.write("".join(f"{p}\n" for p in theirs["p"] if p not in mine["own"]))
    except OSError as exc:
        session.error(f"cannot write {pth} ({exc.strerror}): nox's venv must be writable")
