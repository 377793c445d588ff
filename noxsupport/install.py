"""repromatrix installed (editable) into nox's venv, pip run only when something is not as
it left it, and the session failed in one line where the venv still lacks a requirement."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys

import nox

from noxsupport.interpreters import see_packages_of, venv_location, venv_python
from noxsupport.posargs import caller_args, posargs

#: What a session installs when it can, and what is lost without it. The Docker SDK too:
#: `.[docker]` failed the session on an offline host that carried no docker wheel, host
#: cells included, where the README asks for it for `--executor docker` only.
DOCKER = {"docker>=7.0": "--executor docker (and image bases under auto) is unavailable"}
PARQUET = {"pyarrow>=14": "results.parquet is not written"}


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
    if _unmet(session, [], target=folder, stamp=stamp, installed=installed):
        if os.path.exists(stamp):
            os.remove(stamp)
        session.install("-e", target, *pip_args)
        # Skipped by nox as the install is (-R): the stamp says what pip installed.
        session.run_install("python", "-c", _STAMP, stamp, installed, silent=True)
    else:
        session.log(f"repromatrix is installed from {folder} as pip left it: not installed again")
    wanted = optional or {}
    unmet = _unmet(session, list(wanted)) if wanted else []
    for extra, lost in wanted.items():
        if extra not in unmet:
            continue
        # Worth having, not worth failing a run for (offline hosts).
        session.run_install(
            "python", "-m", "pip", "install", extra, *pip_args, success_codes=[0, 1], silent=True
        )
        module = extra.split(">")[0].split("=")[0]
        probe = [venv_python(session), "-c", f"import {module}"]
        if subprocess.run(probe, check=False, capture_output=True).returncode != 0:
            session.warn(f"{extra} could not be installed: {lost}")
    _check_requirements(session, python)


def _digest(*parts: str) -> str:
    """What repromatrix is installed from: pyproject.toml's bytes (its requirements, entry
    points) and the folder (the editable install's), as one SHA-256."""
    h = hashlib.sha256()
    with contextlib.suppress(OSError), open(parts[0], "rb") as f:
        h.update(f.read())
    for part in parts[1:]:
        h.update(b"\0" + part.encode())
    return h.hexdigest()


_STAMP = "import sys; open(sys.argv[1], 'w').write(sys.argv[2])"


#: The requirements among argv that nox's venv does not meet (version and markers
#: weighed), as a JSON list. With no requirement given: repromatrix's own, and
#: "repromatrix" when it is not installed editable from TARGET with STAMP reading INSTALLED.
_UNMET = """\
import importlib.metadata as m, json, os, sys
from pathlib import Path
def unmet(needs):
    try:
        from packaging.requirements import Requirement
    except ImportError:
        return needs or ["repromatrix"]
    if not needs:
        names = ("TARGET", "STAMP", "INSTALLED")
        target, stamp, installed = (os.environ["REPROMATRIX_" + k] for k in names)
        try:
            url = json.loads(m.distribution("repromatrix").read_text("direct_url.json") or "{}")
            with open(stamp) as f:
                same = f.read() == installed
        except (m.PackageNotFoundError, OSError, ValueError):
            return ["repromatrix"]
        editable = url.get("dir_info", {}).get("editable")
        if not same or not editable or url.get("url") != Path(target).as_uri():
            return ["repromatrix"]
        needs = m.requires("repromatrix") or []
    left = []
    for need in needs:
        req = Requirement(need)
        if req.marker and not req.marker.evaluate({"extra": ""}):
            continue
        try:
            have = m.version(req.name)
        except m.PackageNotFoundError:
            have = None
        if have is None or not req.specifier.contains(have, prereleases=True):
            left.append(need)
    return left
print(json.dumps(unmet(sys.argv[1:])))
"""


def _unmet(
    session: nox.Session, needs: list[str], target: str = "", stamp: str = "", installed: str = ""
) -> list[str]:
    """Which of `needs` (none: repromatrix as `install` leaves it) nox's venv does not
    meet; all of them when it cannot tell."""
    env = {**os.environ, "REPROMATRIX_TARGET": target, "REPROMATRIX_STAMP": stamp}
    env["REPROMATRIX_INSTALLED"] = installed
    done = subprocess.run(
        [venv_python(session), "-c", _UNMET, *needs],
        check=False,
        capture_output=True,
        text=True,
        env=env,
    )
    try:
        unmet = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        unmet = ["?"]
    return [str(need) for need in unmet] or ([] if done.returncode == 0 else ["?"])


#: The distributions repromatrix's metadata requires (extras left out) that nox's venv
#: cannot find, as a JSON list (["repromatrix"] when it is not installed at all).
_MISSING = """\
import importlib.metadata as m, json, re
try:
    needs = [r for r in m.requires("repromatrix") or [] if "extra ==" not in r]
except m.PackageNotFoundError:
    needs = ["repromatrix"]
missing = []
for need in needs:
    name = re.match(r"[A-Za-z0-9._-]+", need).group()
    try:
        m.distribution(name)
    except m.PackageNotFoundError:
        missing.append(name)
print(json.dumps(missing))
"""


def _check_requirements(session: nox.Session, python: str) -> None:
    """Fail in one line when nox's venv lacks what repromatrix needs. `nox -R` (no
    install) after a change of the cells' interpreter: pip had taken pydantic, packaging...
    from the packages of the one named then, the .pth now names another's, and `run` ended
    as an internal error ("No module named 'packaging'", exit 70)."""
    done = subprocess.run(
        [venv_python(session), "-c", _MISSING], check=False, capture_output=True, text=True
    )
    try:
        missing = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        missing = ["repromatrix"]
    again = f"run `nox -s {session.name}` once without -R (--no-install) to install them"
    if missing == ["repromatrix"]:
        session.error(f"nox's venv has no repromatrix installed; {again.replace('them', 'it')}")
    if missing:
        session.error(
            f"nox's venv lacks {', '.join(missing)}, which repromatrix needs: an earlier "
            f"install took them from another interpreter's packages, and {python} (the "
            f"cells' interpreter now) lacks them; {again}"
        )
