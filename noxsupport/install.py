"""repromatrix installed (editable) into nox's venv, pip run only when something is not as
it left it, and the session failed in one line where the venv still lacks a requirement."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass

import nox

from noxsupport.interpreters import see_packages_of, venv_location, venv_python
from noxsupport.posargs import caller_args, posargs

#: What a session installs when it can, and what is lost without it. The Docker SDK too:
#: `.[docker]` failed the session on an offline host that carried no docker wheel, host
#: cells included, where the README asks for it for `--executor docker` only.
DOCKER = {"docker>=7.0": "--executor docker (and image bases under auto) is unavailable"}
PARQUET = {"pyarrow>=14": "results.parquet is not written"}

_STAMP = "import sys; open(sys.argv[1], 'w').write(sys.argv[2])"
_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "venv_requirements.py")


@dataclass(frozen=True)
class _Venv:
    """What nox's venv has of repromatrix, as venv_requirements.py says it (see there)."""

    installed: bool = False
    as_left: bool = False
    weighed: bool = False
    #: repromatrix's own requirements unmet, as the session's error names them.
    lacking: tuple[str, ...] = ()
    #: The optional requirements asked about that are unmet.
    optional: tuple[str, ...] = ()

    @property
    def pip_needed(self) -> bool:
        return not (self.as_left and self.weighed) or bool(self.lacking)


def install(
    session: nox.Session, python: str, target: str, *, optional: dict[str, str] | None = None
) -> None:
    """Install repromatrix (editable) into nox's venv, seeing `python`'s packages first."""
    # pip refused it only after pages of setuptools output; nox may run on an older Python.
    if sys.version_info < (3, 11):  # noqa: UP036
        session.error(
            f"nox runs on Python {sys.version.split()[0]}; repromatrix needs 3.11 or newer "
            "(cells need 3.10): start nox with a newer python3 and name the cells' "
            f"interpreter, e.g. REPROMATRIX_PYTHON={sys.executable} python3.11 -m nox -s matrix"
        )
    see_packages_of(session, python)
    pip_args = []
    # Every folder given, as `run` takes them for the pins (the last alone missed
    # repromatrix's own wheels carried in another).
    for links in posargs(caller_args(session), "--find-links"):
        pip_args += ["--find-links", links]
    if "--no-index" in session.posargs:
        pip_args.append("--no-index")
    # pip took 7-10 s a session to build and install the same editable repromatrix again
    # (and 2 s an extra to find it there): it runs when something is not as it left it.
    stamp = os.path.join(venv_location(session), "repromatrix-install.txt")
    folder = os.path.abspath(target)
    installed = _digest(os.path.join(folder, "pyproject.toml"), folder)
    wanted = optional or {}
    # Asked once where nothing is missing (one interpreter start), again after pip ran.
    venv = _venv(session, folder, stamp, installed, list(wanted))
    if venv.pip_needed:
        if os.path.exists(stamp):
            os.remove(stamp)
        session.install("-e", target, *pip_args)
        # Skipped by nox as the install is (-R): the stamp says what pip installed.
        session.run_install("python", "-c", _STAMP, stamp, installed, silent=True)
        venv = _venv(session, folder, stamp, installed, list(wanted))
    else:
        session.log(f"repromatrix is installed from {folder} as pip left it: not installed again")
    tried = [extra for extra in wanted if extra in venv.optional]
    for extra in tried:
        # Worth having, not worth failing a run for (offline hosts).
        session.run_install(
            "python", "-m", "pip", "install", extra, *pip_args, success_codes=[0, 1], silent=True
        )
    if tried:
        venv = _venv(session, folder, stamp, installed, tried)
        for extra in tried:
            if extra in venv.optional:
                session.warn(f"{extra} could not be installed: {wanted[extra]}")
    _check(session, venv, python)


def _digest(*parts: str) -> str:
    """What repromatrix is installed from: pyproject.toml's bytes (its requirements, entry
    points) and the folder (the editable install's), as one SHA-256."""
    h = hashlib.sha256()
    with contextlib.suppress(OSError), open(parts[0], "rb") as f:
        h.update(f.read())
    for part in parts[1:]:
        h.update(b"\0" + part.encode())
    return h.hexdigest()


def _venv(
    session: nox.Session, target: str, stamp: str, installed: str, optional: list[str]
) -> _Venv:
    """What nox's venv has of repromatrix and of `optional`; nothing when it cannot tell
    (pip runs, and a venv still unreadable afterwards has no repromatrix installed)."""
    # -P: the script's folder (this one) is not put on its sys.path.
    argv = [venv_python(session), "-P", _SCRIPT, target, stamp, installed, *optional]
    done = subprocess.run(argv, check=False, capture_output=True, text=True)
    try:
        said = json.loads(done.stdout.strip().splitlines()[-1])
        lacking = tuple(
            str(u["name"] if u["found"] is None else f"{u['need']} ({u['found']} found)")
            for u in said["unmet"]
        )
        return _Venv(
            installed=said["installed"] is True,
            as_left=said["as_left"] is True,
            weighed=said["weighed"] is True,
            lacking=lacking,
            optional=tuple(str(need) for need in said["optional"]),
        )
    except (ValueError, IndexError, KeyError, TypeError):
        return _Venv()


def _check(session: nox.Session, venv: _Venv, python: str) -> None:
    """Fail in one line when nox's venv lacks what repromatrix needs. `nox -R` (no
    install) after a change of the cells' interpreter: pip had taken pydantic, packaging...
    from the packages of the one named then, the .pth now names another's, and `run` ended
    as an internal error ("No module named 'packaging'", exit 70). Or of its packages
    (Jinja2 3.0.3 installed there since): the line had said "another interpreter's"."""
    again = f"run `nox -s {session.name}` once without -R (--no-install) to install them"
    if not venv.installed:
        session.error(f"nox's venv has no repromatrix installed; {again.replace('them', 'it')}")
    if venv.lacking:
        session.error(
            f"nox's venv lacks {', '.join(venv.lacking)}, which repromatrix needs: an earlier "
            "install took them from the cells' interpreter's packages, which changed since "
            f"or are another interpreter's now ({python}); {again}"
        )
