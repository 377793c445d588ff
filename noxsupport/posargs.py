"""The posargs of a session (`nox -s NAME -- ARGS`): their relative paths made the caller's
(nox runs in the noxfile's folder), the values of flags, and what a session passes on."""

from __future__ import annotations

import os

import nox

#: Flags whose values are paths (`--git-mirror NAME=PATH`: its PATH).
_PATH_FLAGS = (
    "--matrix", "--results", "--cache", "--out", "--readme", "--compare", "--markdown",
    "--find-links", "--git-mirror",
)  # fmt: skip


def caller_args(session: nox.Session) -> list[str]:
    """The posargs with relative paths made the caller's: nox runs in the noxfile's folder,
    so `nox -f ../noxfile.py -s report -- --results res` read ../res (`--python` is
    resolved on its own, see `cells_python`)."""
    out: list[str] = []
    flag = ""
    for arg in session.posargs:
        name, eq, value = arg.partition("=")
        if flag and not arg.startswith("-"):  # `--results --rerun`: the command says so
            out.append(_caller_path(session, flag, arg))
            flag = ""
            continue
        flag = arg if arg in _PATH_FLAGS else ""
        if eq and name in _PATH_FLAGS:
            out.append(f"{name}={_caller_path(session, name, value)}")
        else:
            out.append(arg)
    return out


def named(session: nox.Session, args: list[str], **defaults: str) -> list[str]:
    """`args` with each folder of `defaults` (`results="results"`: `--results`) that they
    do not give named by its absolute path when nox was started in another folder than
    the noxfile's: the defaults are the noxfile's folder's, and "results in results/" or
    "written to reports/index.html" named a folder the caller's does not have."""
    if os.path.realpath(session.invoked_from) == os.path.realpath(os.getcwd()):
        return args
    named = list(args)
    for name, folder in defaults.items():
        if posarg(args, f"--{name}") is None:
            named += [f"--{name}", os.path.abspath(folder)]
    return named


def _caller_path(session: nox.Session, flag: str, value: str) -> str:
    name, eq, path = value.partition("=") if flag == "--git-mirror" else ("", "", value)
    if flag == "--git-mirror" and not eq:
        return value  # not NAME=PATH: `run` says so
    if path and not os.path.isabs(path) and "://" not in path:
        path = os.path.join(session.invoked_from, path)
    return f"{name}={path}" if eq else path


def posarg(args: list[str], flag: str) -> str | None:
    """The value of `--flag V` or `--flag=V` among the posargs, if given; the last one
    when given twice (the command refuses a second one of a flag that takes one)."""
    found = posargs(args, flag)
    return found[-1] if found else None


def posargs(args: list[str], flag: str) -> list[str]:
    """Every value of `--flag V` or `--flag=V` among the posargs, in order."""
    found = []
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            found.append(args[i + 1])
        elif arg.startswith(flag + "="):
            found.append(arg.split("=", 1)[1])
    return found


def with_python(args: list[str], python: str) -> list[str]:
    """`args` with `--python` as the path checked here (absolute: a relative one was
    the caller's folder's, and the command runs in the noxfile's)."""
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--python":
            skip = True
        elif not arg.startswith("--python="):
            kept.append(arg)
    return ["--python", python, *kept]


def shared(args: list[str]) -> list[str]:
    """The posargs `report` shares with `run` (the matrix, where results and mirrors are)."""
    out: list[str] = []
    for flag in ("--matrix", "--results", "--cache"):
        value = posarg(args, flag)
        if value:
            out += [flag, value]
    return out
