"""Materialize a cell's environment once: base interpreter + library pins, cached by hash.

An environment is a directory under the cache:

    envs/<hash>/site/      pip install --target (the pins; first on PYTHONPATH)
    envs/<hash>/src/<lib>/ git checkouts installed by putting them on PYTHONPATH
    envs/<hash>/home/      HOME: flashinfer 0.2.x keeps its JIT cache in ~/.cache/flashinfer
    envs/<hash>/cache/     XDG cache, Triton, torch extensions, CUDA's PTX cache
    envs/<hash>/env.json   manifest; written last, so its presence means "ready"

Compile caches live inside the environment: reused by every cell of these pins (a warm
flashinfer MLA run takes ~5 s instead of ~29 s on an H200) and never shared between library
versions, where a stale kernel would silently produce wrong ranges.

Installs use `--target` + PYTHONPATH rather than a virtualenv: a venv made from an
interpreter that itself lives in a venv would not see that venv's torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from repromatrix import proc, pypi_pins
from repromatrix.errors import EnvironmentBuildError
from repromatrix.git_pins import moving_commits, resolve_pin
from repromatrix.host import Interpreter
from repromatrix.locks import file_lock
from repromatrix.mirrors import Mirrors
from repromatrix.model import InstallMode, Pin, SourceKind, canonical_json
from repromatrix.options import Sources, git_root
from repromatrix.pypi_pins import (
    SPELLING_FIRST,
    installed_versions,
    loosened,
    pin_requirement,
    pip_env,
    taken_as,
    took_another_build,
)
from repromatrix.release_digest import pin_digest
from repromatrix.safetext import excerpt, pip_failure

_log = logging.getLogger("repromatrix.envs")

#: Most seconds one environment's pip install may take.
PIP_TIMEOUT_S = 3600

#: Bump when the layout or install procedure changes: old environments are then rebuilt.
ENV_LAYOUT = 1


@dataclass(frozen=True, kw_only=True)
class ResolvedPin:
    pin: Pin
    #: Full commit for git pins.
    commit: str | None = None
    #: Commit date (ISO 8601) for git pins, shown with the commit (it orders nothing).
    committed: str | None = None
    #: The version pip installed for a PyPI pin, as its metadata says: the pin's release
    #: exactly, unless the sources offer it only under another spelling or as local
    #: builds (`1.5+cu121`), which `==1.5` then takes (see `pypi_pins`).
    installed: str | None = None
    #: What pip was asked for a PyPI pin (`name===1.5`, or `name==1.5`).
    requirement: str | None = None
    #: A PyPI pin's files in the --find-links folders (`release_digest`; "": none).
    files: str = ""

    def describe(self) -> dict[str, Any]:
        return {
            "rev": self.pin.rev,
            "label": self.pin.label,
            "kind": self.pin.kind.value,
            "source": self.pin.source,
            "commit": self.commit,
            "committed": self.committed,
            "install": self.pin.install.value,
            "installed": self.installed,
            "requirement": self.requirement,
            **({"files": self.files} if self.files else {}),
        }


@dataclass(frozen=True, kw_only=True)
class Environment:
    root: Path
    key: str
    pins: tuple[ResolvedPin, ...]
    python: str

    @property
    def site(self) -> Path:
        return self.root / "site"

    def pythonpath(self) -> list[str]:
        paths = [str(self.site)]
        for rp in self.pins:
            if rp.pin.install is InstallMode.PYTHONPATH:
                paths.append(str(self.root / "src" / rp.pin.library))
        return paths

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def libraries(self) -> dict[str, dict[str, Any]]:
        """What was installed, per library (rev, commit, source...), for provenance."""
        return {rp.pin.library: rp.describe() for rp in self.pins}


def env_key(
    interpreter: Interpreter,
    pins: Sequence[Pin],
    sources: Sources,
    moved: Mapping[str, str] | None = None,
) -> str:
    """The environment's folder name. `moved`: the commit each git pin given by a name
    (a branch, a tag) stands for now (see `moving_commits`), which the key takes for the
    name: when `main` moves, its environment is another one, and a tag and the full id of
    one commit share one (a bisection's ends, named in matrix.yaml and run by `run`, were
    built and compiled for again under their ids)."""
    material: dict[str, Any] = {
        "layout": ENV_LAYOUT,
        "python": interpreter.executable,
        "base": interpreter.fingerprint,
        "pins": sorted(
            (_as_committed(p.key_material(), moved or {}) for p in pins),
            key=lambda m: str(m["library"]),
        ),
    }
    # Where a pin came from changes nothing, unless a folder holds it (a rebuilt `1.1`).
    folders, python = sources.find_links, interpreter.executable  # pip.conf's too
    if files := {p.library: d for p in pins if (d := pin_digest(p, folders, python))}:
        material["files"] = dict(sorted(files.items()))
    return hashlib.sha256(canonical_json(material).encode()).hexdigest()[:16]


def _as_committed(material: dict[str, Any], moved: Mapping[str, str]) -> dict[str, Any]:
    """A git pin's key material with the commit its name stands for as its rev: what is
    installed is that commit's tree, whatever the pin called it."""
    commit = moved.get(str(material["library"]))
    if commit is None or material["kind"] != SourceKind.GIT.value:
        return material
    return {**material, "rev": commit}


def _as_asked(env: Environment, pins: Sequence[Pin]) -> Environment:
    """`env` with the pins the cell asked for (`v1.0`), not those of the cell that built it
    (its id): the same commit by the key, so a record names its own spelling."""
    asked = {p.library: p for p in pins}
    return replace(
        env, pins=tuple(replace(rp, pin=asked.get(rp.pin.library, rp.pin)) for rp in env.pins)
    )


class EnvCache:
    def __init__(self, root: Path, interpreter: Interpreter, sources: Sources) -> None:
        # Absolute: cells run with their work directory as cwd and read these paths there.
        self.root = root.resolve()
        self.interpreter = interpreter
        self.sources = sources
        self.mirrors = Mirrors(git_root(self.root), sources.git_mirrors)

    def ensure(self, pins: Sequence[Pin], *, log: Path | None = None) -> Environment:
        """Return the ready environment for `pins`, building it first if needed.

        Safe to call from several threads and processes: a file lock serializes builders of
        one environment, and the manifest is written last (atomically) when it is complete.
        """
        key = env_key(self.interpreter, pins, self.sources, moving_commits(self.mirrors, pins))
        root = self.root / "envs" / key
        root.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(root.parent / f"{key}.lock"):
            manifest = root / "env.json"
            if manifest.is_file():
                found = self._from_manifest(root, key, manifest)
                if found is not None:
                    return _as_asked(found, pins)
                _log.warning(
                    "environment %s is damaged (its manifest or installed files are missing "
                    "or unreadable) or holds a local build for a plain release pin; building "
                    "it again", root,
                )  # fmt: skip
            if root.exists():
                shutil.rmtree(root)  # a half-built environment from a killed run
            build = root.with_name(f"{key}.partial")
            if build.exists():
                shutil.rmtree(build)
            build.mkdir()
            try:
                resolved = self._build(build, pins, log)
            except BaseException:
                shutil.rmtree(build, ignore_errors=True)
                raise
            env = Environment(root=root, key=key, pins=resolved, python=self.interpreter.executable)
            data = {
                "layout": ENV_LAYOUT,
                "key": key,
                "python": self.interpreter.executable,
                "base_fingerprint": self.interpreter.fingerprint,
                "pins": [
                    rp.describe() | {"library": rp.pin.library, SPELLING_FIRST: True}
                    for rp in resolved
                ],
            }
            (build / "env.json.tmp").write_text(json.dumps(data, indent=2))
            os.replace(build / "env.json.tmp", build / "env.json")
            os.replace(build, root)
            return env

    def _from_manifest(self, root: Path, key: str, manifest: Path) -> Environment | None:
        """The environment its manifest describes; None when it is damaged (a manifest
        that does not parse, installed files gone): reused as it was, its cells imported
        whatever else PYTHONPATH offered and recorded the pinned version."""
        try:
            data = json.loads(manifest.read_text())
            by_lib = {p["library"]: p for p in data["pins"]}
            if not _intact(root, by_lib.values()):
                return None
            if any(took_another_build(p) for p in by_lib.values()):
                return None
            pins = [_pin_from(p) for p in by_lib.values()]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        return Environment(
            root=root,
            key=key,
            python=str(data["python"]),
            pins=tuple(
                ResolvedPin(
                    pin=pin,
                    commit=p.get("commit"),
                    committed=p.get("committed"),
                    installed=p.get("installed"),
                    requirement=p.get("requirement"),
                    files=str(p.get("files") or ""),
                )
                for pin, p in zip(pins, by_lib.values(), strict=True)
            ),
        )

    # -- building -----------------------------------------------------------------------

    def _build(self, root: Path, pins: Sequence[Pin], log: Path | None) -> tuple[ResolvedPin, ...]:
        for sub in ("site", "src", "home", "cache"):
            (root / sub).mkdir()
        resolved: list[ResolvedPin] = []
        requirements: list[str] = []
        for pin in pins:
            if pin.kind is SourceKind.PYPI:
                asked = pin_requirement(pin)
                requirements.append(asked)
                requirements.extend(pin.requires)
                files = pin_digest(pin, self.sources.find_links, self.interpreter.executable)
                resolved.append(ResolvedPin(pin=pin, requirement=asked, files=files))
                continue
            commit, committed = self._checkout(pin, root / "src" / pin.library)
            resolved.append(ResolvedPin(pin=pin, commit=commit, committed=committed))
            if pin.install is InstallMode.PIP:
                requirements.append(str(root / "src" / pin.library))
            requirements.extend(pin.requires)
        taken = self._pip_install(root / "site", requirements, log) if requirements else []
        self._bytecode([root / "site", *(root / "src" / p.library for p in pins
                                         if p.kind is not SourceKind.PYPI
                                         and p.install is InstallMode.PYTHONPATH)])  # fmt: skip
        found = installed_versions(root / "site")
        return tuple(
            replace(
                rp,
                installed=found.get(canonicalize_name(rp.pin.source)),
                requirement=taken_as(taken, rp.requirement),
            )
            if rp.pin.kind is SourceKind.PYPI
            else rp
            for rp in resolved
        )

    def _pip_install(self, target: Path, requirements: list[str], log: Path | None) -> list[str]:
        """Install `requirements`; return them as pip took them (an exact release pip
        found no file for asked again as `==`: `pypi_pins.loosened`)."""
        mode = "w"
        while True:
            out, argv = self._pip_run(target, requirements)
            if log is not None:
                log.parent.mkdir(parents=True, exist_ok=True)
                with log.open(mode) as f:
                    f.write(f"$ {' '.join(argv)}\n{out.stdout}\n{out.stderr}\n")
            mode = "a"  # each attempt's output after the one before
            failed = out.returncode != 0 and not out.timed_out
            again = loosened(requirements, out.stderr) if failed else None
            if again is None:
                break
            requirements = again
        if out.timed_out:
            raise EnvironmentBuildError(
                f"pip did not finish installing {' '.join(requirements)} within "
                f"{PIP_TIMEOUT_S // 60} minutes (its output is in env-build.log)"
            )
        if out.returncode != 0:
            why = pip_failure(out.stderr + "\n" + out.stdout, code=out.returncode)
            why += pypi_pins.unread_pages(why, self.sources, python=self.interpreter.executable)
            why += pypi_pins.wheels_for_others(
                why, self.sources.find_links, python=self.interpreter.executable, env=pip_env()
            )
            raise EnvironmentBuildError(f"pip could not install {' '.join(requirements)}: {why}")
        return requirements

    def _bytecode(self, trees: list[Path]) -> None:
        """The libraries' bytecode, written whole now by the cells' interpreter: pip's
        `--no-compile` left it to a cell's first import, whose write CPython takes as whole
        when short (a full cache disk), and the cut `.pyc` failed every later cell of the
        environment ('EOFError: marshal data too short'), in every later run."""
        argv = [self.interpreter.executable, "-I", str(BYTECODE_PROGRAM), *map(str, trees)]
        out = proc.run(argv, timeout=PIP_TIMEOUT_S, env=pip_env())
        if out.returncode != 0 and not out.timed_out:  # the disk took no more
            raise EnvironmentBuildError(f"writing its bytecode: {excerpt(out.stderr.strip(), 300)}")

    def _pip_run(self, target: Path, requirements: list[str]) -> tuple[proc.Completed, list[str]]:
        # --no-deps: the base interpreter provides torch & co.; pip --target would otherwise
        # reinstall them (it ignores what is installed) and, offline, fail to find them.
        # --no-build-isolation: sdists such as flashinfer 0.2.x build against the base torch.
        argv = [
            self.interpreter.executable,
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--no-deps",
            "--no-build-isolation",
            "--no-compile",
            "--target",
            str(target),
        ]
        for fl in self.sources.find_links:
            argv += ["--find-links", str(fl)]
        if self.sources.no_index:
            argv.append("--no-index")
        argv += list(self.sources.pip_args)
        # `--`: whatever a requirement says, pip reads it as a requirement, never an option
        # (`--index-url=...` as a version would otherwise send the install elsewhere).
        argv += ["--", *(checked_requirement(r) for r in requirements)]
        # Outside every cell's timeout: the environment is built once for all the cells of
        # its pins (an sdist with CUDA kernels takes minutes), with a limit of its own.
        return proc.run(argv, timeout=PIP_TIMEOUT_S, env=pip_env()), argv

    def _checkout(self, pin: Pin, dest: Path) -> tuple[str, str]:
        commit, committed = resolve_pin(self.mirrors, pin)
        dest.mkdir(parents=True, exist_ok=True)
        self.mirrors.export(pin.library, pin.source, commit, dest)
        return commit, committed


def installs_with_pip(pins: Iterable[Pin]) -> bool:
    """Whether building the environment of `pins` runs the cells' interpreter's pip (as
    `_build` does): a release, a checkout installed by pip, or a pin's `requires`. A uv
    environment has no pip unless asked for one: `run` refuses it for such cells first."""
    return any(
        p.kind is SourceKind.PYPI or p.install is InstallMode.PIP or p.requires for p in pins
    )


#: Run by the cells' interpreter as a program (standard library only; the worker's file).
BYTECODE_PROGRAM = Path(__file__).with_name("executors") / "worker_bytecode.py"


def checked_requirement(text: str) -> str:
    """`text` if pip may take it as a requirement: a PEP 508 requirement or an absolute
    path (a git checkout to install); EnvironmentBuildError otherwise. matrix.yaml is
    checked at load already; bisect's revisions and future callers come through here too."""
    if Path(text).is_absolute() and text.isprintable():
        return text
    try:
        Requirement(text)
    except InvalidRequirement:
        pass
    else:
        if text == text.strip() and text.isascii() and text.isprintable():
            return text
    raise EnvironmentBuildError(
        f"refusing to pass {excerpt(text, 80)!r} to pip: not a PEP 508 requirement; "
        "fix the version or requirement in matrix.yaml"
    )


def _intact(root: Path, pins: Iterable[Mapping[str, Any]]) -> bool:
    """Whether what the manifest lists is still there: the install folder, each PyPI
    pin's metadata in it, each checkout put on PYTHONPATH."""
    site = root / "site"
    if not site.is_dir():
        return False
    installed = {
        canonicalize_name(name.partition("-")[0])
        for name in os.listdir(site)
        if name.endswith(".dist-info")
    }
    for p in pins:
        if p["install"] == InstallMode.PYTHONPATH.value:
            if not (root / "src" / str(p["library"])).is_dir():
                return False
        elif (
            p["kind"] == SourceKind.PYPI.value
            and canonicalize_name(str(p["source"])) not in installed
        ):
            return False
    return True


def _pin_from(p: Mapping[str, Any]) -> Pin:
    return Pin(
        library=str(p["library"]),
        kind=SourceKind(p["kind"]),
        source=str(p["source"]),
        rev=str(p["rev"]),
        label=str(p["label"]),
        install=InstallMode(p["install"]),
        import_name="",
    )
