"""Base images per the pull policy, and environment images (base + pins) built once.

A cell runs in its *environment image*: the base image of the cell (an NGC image in
production) plus the cell's library pins, built once from `images/env.Dockerfile`, tagged
`repromatrix-env:<hash of its inputs>` and reused by every repro and run with those pins.
A cell without pins runs in the base image itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
import sys
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions

from repromatrix.errors import EnvironmentBuildError
from repromatrix.executors.base import FailedBuilds
from repromatrix.executors.docker.build_sources import (
    build_cert,
    build_sources,
    on_loopback,
    pip_settings,
)
from repromatrix.executors.docker.engine import one_line
from repromatrix.executors.docker.image_build import (
    PINS_DIR,
    build_output,
    failure_words,
    fill_context,
    write_requirements,
)
from repromatrix.executors.docker.janitor import (
    ENV_REPOSITORY,
    KIND_ENV,
    L_BASE_ID,
    L_BASE_REF,
    L_BUILD,
    L_CELL,
    L_ENV_KEY,
    L_KIND,
    L_PINS,
    L_RUN,
    owner_labels,
)
from repromatrix.git_pins import resolve_pin
from repromatrix.locks import file_lock
from repromatrix.mirrors import Mirrors
from repromatrix.model import Cell, InstallMode, Pin, SourceKind, canonical_json
from repromatrix.options import PullPolicy, SessionConfig
from repromatrix.pip_settings import pip_config
from repromatrix.pypi_pins import loosened
from repromatrix.release_digest import pin_digest

log = logging.getLogger("repromatrix.docker")

#: Bump when the env image recipe or the context layout changes: images are then rebuilt.
ENV_IMAGE_LAYOUT = 1
#: Build of an environment image (pip may compile an sdist silently for a long time).
_BUILD_TIMEOUT_S = 4 * 3600


@dataclass(frozen=True, kw_only=True)
class ImageInfo:
    ref: str
    id: str
    #: Registry digest (repo@sha256:...) when the image came from a registry.
    digest: str | None
    #: PYTHONPATH the image sets (kept when pins are added in front of it).
    pythonpath: str


@dataclass(frozen=True, kw_only=True)
class EnvImage:
    tag: str
    id: str
    key: str
    base: ImageInfo
    #: Resolved pins, as envs.ResolvedPin.describe() writes them.
    pins: Mapping[str, Mapping[str, Any]]
    #: Paths (inside the image) to put first on PYTHONPATH (install: pythonpath pins).
    pythonpath: tuple[str, ...]
    #: True when this call built the image (False: it was there already).
    built: bool


class Images:
    """The base and environment images of one run (memoized; builds locked per key)."""

    def __init__(self, client: docker.DockerClient, *, config: SessionConfig) -> None:
        self.client = client
        self.config = config
        self.images_dir = Path(config.images_dir).resolve()
        self.cache_root = config.cache.resolve() / "docker"
        self.mirrors = Mirrors(config.git_root, config.sources.git_mirrors)
        # pip's configuration files as the cells' interpreter's pip reads them (a venv's
        # own pip.conf too), else repromatrix's (the cells' may have no pip).
        pip_conf = pip_config(config.python, os.environ)
        if not pip_conf and config.python != sys.executable:
            pip_conf = pip_config(sys.executable, os.environ)
        #: What of pip's settings builds are not given, said at the first build (a host's
        #: pip.conf naming a file:// index is no news to a run that builds nothing).
        self._source_notes: list[str] = []
        self.sources = build_sources(config.sources, os.environ, pip_conf, self._source_notes)
        self.cert = build_cert(pip_settings(os.environ, pip_conf))
        self._lock = threading.Lock()
        self._bases: dict[str, ImageInfo | str] = {}
        self._env_locks: dict[str, threading.Lock] = {}
        self.failed_builds = FailedBuilds()  # a Ray node's executor shares its cluster's
        #: Labels the containers of this object's builds' steps (images/env.Dockerfile).
        self.build_token = secrets.token_hex(8)
        self._cancelled = threading.Event()

    def known(self, ref: str) -> ImageInfo | str | None:
        """What `base_image` found for `ref` so far (None: not asked yet)."""
        with self._lock:
            return self._bases.get(ref)

    def base_image(self, ref: str) -> ImageInfo | str:
        """The base image per the pull policy (memoized), or why it is not available here."""
        with self._lock:
            known = self._bases.get(ref)
        if known is not None:
            return known
        policy = self.config.pull
        found = self._inspect(ref)
        if isinstance(found, ImageInfo) and policy is not PullPolicy.ALWAYS:
            result: ImageInfo | str = found
        elif found is not None and not isinstance(found, ImageInfo):
            result = found
        elif policy is PullPolicy.NEVER:
            result = (
                f"image {ref} is not on this host and --pull never forbids pulling it; "
                "load it (docker load -i ...) or use --pull missing"
            )
        else:
            result = self._pull(ref)
        with self._lock:
            self._bases[ref] = result
        return result

    def _inspect(self, ref: str) -> ImageInfo | str | None:
        try:
            attrs: dict[str, Any] = self.client.api.inspect_image(ref)  # type: ignore[no-untyped-call]
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.DockerException as exc:
            return f"cannot inspect image {ref}: {one_line(exc)}"
        digests = [str(d) for d in attrs.get("RepoDigests") or []]
        env_list = (attrs.get("Config") or {}).get("Env") or []
        pythonpath = next(
            (e.split("=", 1)[1] for e in env_list if str(e).startswith("PYTHONPATH=")), ""
        )
        return ImageInfo(
            ref=ref,
            id=str(attrs["Id"]),
            digest=digests[0] if digests else None,
            pythonpath=pythonpath,
        )

    def _pull(self, ref: str) -> ImageInfo | str:
        log.info("pulling %s", ref)
        try:
            self.client.images.pull(ref)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            return (
                f"cannot pull image {ref} ({one_line(exc)}); preload it (docker load) "
                "and run with --pull never, or check the registry login"
            )
        found = self._inspect(ref)
        return found if found is not None else f"image {ref} was pulled but is not found"

    def ensure_env_image(
        self, cell: Cell, base: ImageInfo, *, log_path: Path, run_id: str = ""
    ) -> EnvImage:
        """The environment image of (base, pins): reused when present, else built once."""
        if not cell.pins:
            return EnvImage(
                tag=base.ref,
                id=base.id,
                key=f"base-{base.id.removeprefix('sha256:')[:16]}",
                base=base,
                pins={},
                pythonpath=(),
                built=False,
            )
        resolved = [self._resolve(pin) for pin in cell.pins]
        recipe = self.recipe_path().read_text()
        # A folder's file of a release may differ from another's (`release_digest`).
        files = {p.library: d for p in cell.pins if (d := pin_digest(p, self.sources.find_links))}
        material = {
            "layout": ENV_IMAGE_LAYOUT,
            "recipe": recipe,
            "base": {"ref": base.ref, "id": base.id},
            "pins": sorted(
                ({**p.key_material(), "commit": commit} for p, commit, _ in resolved),
                key=lambda m: str(m["library"]),
            ),
            "pip": {
                "no_index": self.sources.no_index,
                "args": list(self.sources.pip_args),
            },
        } | ({"files": dict(sorted(files.items()))} if files else {})
        key = hashlib.sha256(canonical_json(material).encode()).hexdigest()[:16]
        tag = f"{ENV_REPOSITORY}:{key}"
        pins = {
            p.library: {
                "rev": p.rev,
                "label": p.label,
                "kind": p.kind.value,
                "source": p.source,
                "commit": commit,
                "committed": committed,
                "install": p.install.value,
            }
            | ({"files": files[p.library]} if p.library in files else {})
            for p, commit, committed in resolved
        }
        pythonpath = tuple(
            f"{PINS_DIR}/src/{p.library}"
            for p, _, _ in resolved
            if p.kind is SourceKind.GIT and p.install is InstallMode.PYTHONPATH
        )
        with self._lock:
            lock = self._env_locks.setdefault(key, threading.Lock())
        # Threads of this run wait on the lock; other runs on this host on the file lock.
        with lock, file_lock(self.cache_root / "locks" / f"env-{key}.lock"):
            if self._cancelled.is_set():
                raise EnvironmentBuildError("cancelled (Ctrl-C) before it was built")
            if failed := self.failed_builds.get(run_id, key):
                raise EnvironmentBuildError(failed.why)
            found = self._inspect(tag)
            if isinstance(found, ImageInfo):
                return EnvImage(
                    tag=tag,
                    id=found.id,
                    key=key,
                    base=base,
                    pins=pins,
                    pythonpath=pythonpath,
                    built=False,
                )
            try:
                image_id = self._build(tag, key, base, resolved, pins, log_path, run_id, cell)
            except EnvironmentBuildError as exc:
                self.failed_builds.remember(run_id, key, str(exc), log_path)
                raise
        return EnvImage(
            tag=tag, id=image_id, key=key, base=base, pins=pins, pythonpath=pythonpath, built=True
        )

    def cancel(self) -> None:
        """Ctrl-C: end this object's builds now. The engine goes on building while we
        wait for its answer (a pip compile for an hour, Ctrl-C ignored all that time):
        removing the step's container makes the build fail at once."""
        self._cancelled.set()
        self._remove_build_containers()

    def _remove_build_containers(self) -> None:
        errors = (docker.errors.DockerException, requests.exceptions.RequestException)
        try:
            found = self.client.api.containers(
                all=True,
                quiet=True,
                # A build's step (kind env): never a cell or worker container, whose image
                # a build of this run made.
                filters={"label": [f"{L_BUILD}={self.build_token}", f"{L_KIND}={KIND_ENV}"]},
            )
        except requests.exceptions.ConnectionError:
            # The engine stopped answering (the run's own line says so): its builds went
            # with it, and a warning of a raw socket error above that line says nothing.
            return
        except errors as exc:
            log.warning("cannot end an environment build: %s", one_line(exc))
            return
        for c in found:
            try:
                self.client.api.remove_container(c["Id"], force=True)
            except docker.errors.NotFound:
                pass  # its step ended first
            except errors as exc:
                if "already in progress" not in str(exc):  # else: our other call removes it
                    log.warning("cannot end an environment build: %s", one_line(exc))

    def recipe_path(self) -> Path:
        path = self.images_dir / "env.Dockerfile"
        if not path.is_file():
            path = _packaged_recipe()
        return path

    def _resolve(self, pin: Pin) -> tuple[Pin, str | None, str | None]:
        if pin.kind is SourceKind.PYPI:
            return pin, None, None
        commit, committed = resolve_pin(self.mirrors, pin)
        return pin, commit, committed

    def _build(
        self,
        tag: str,
        key: str,
        base: ImageInfo,
        resolved: list[tuple[Pin, str | None, str | None]],
        pins: Mapping[str, Mapping[str, Any]],
        log_path: Path,
        run_id: str,
        cell: Cell,
    ) -> str:
        with tempfile.TemporaryDirectory(prefix="repromatrix-env-") as tmp:
            ctx = Path(tmp)
            shutil.copyfile(self.recipe_path(), ctx / "env.Dockerfile")
            requirements = fill_context(
                ctx / "pins",
                resolved,
                mirrors=self.mirrors,
                find_links=self.sources.find_links,
                cert=self.cert,
            )
            buildargs = {
                # The image the run resolved (its id is in the key and the cells'
                # fingerprint), not the tag, which someone may rebuild during the run.
                "BASE": base.id,
                "REPROMATRIX_BUILD": self.build_token,
                "PIP_ARGS": " ".join(
                    [
                        *(["--no-index"] if self.sources.no_index else []),
                        *self.sources.pip_args,
                    ]
                ),
            }
            labels = {
                L_KIND: KIND_ENV,
                L_ENV_KEY: key,
                L_BASE_REF: base.ref,
                L_BASE_ID: base.id,
                L_PINS: json.dumps(dict(pins), sort_keys=True),
                L_RUN: run_id,
                L_CELL: cell.id,
                **owner_labels(),
            }
            with self._lock:
                notes, self._source_notes[:] = list(self._source_notes), []
            for note in notes:
                log.warning("%s", note)
            log.info("building %s from %s (%d requirement(s))", tag, base.ref, len(requirements))
            log_path.parent.mkdir(parents=True, exist_ok=True)
            head = f"# docker build -t {tag} --build-arg BASE={base.id} (images/env.Dockerfile; "
            log_path.write_text(f"{head}{base.ref})\n")
            while True:
                lines, error = self._build_once(ctx, tag, buildargs, labels)
                with log_path.open("a") as f:  # each try's output after the one before
                    f.write("".join(lines) + (f"\n# build failed: {error}\n" if error else ""))
                # A release pip found no file for, asked again as pip spells it (a local
                # environment's `_pip_install` does the same): the image's pip lists
                # what its sources offer, the host's may not see the same.
                again = loosened(requirements, build_output(lines)) if error else None
                if again is None:
                    break
                requirements = again
                write_requirements(ctx / "pins", requirements)
                log.info("building %s again asking %s", tag, " ".join(requirements))
            if error is not None:
                last = failure_words(lines, error, self.sources.find_links)
                raise EnvironmentBuildError(
                    f"building {tag} from {base.ref} failed: {last} (log: {log_path})"
                )
        found = self._inspect(tag)
        if not isinstance(found, ImageInfo):
            raise EnvironmentBuildError(f"built {tag} but the engine does not show it")
        return found.id

    def _build_once(
        self, ctx: Path, tag: str, buildargs: dict[str, str], labels: dict[str, str]
    ) -> tuple[list[str], str | None]:
        """One build of the context: what its steps printed, and the engine's error (None:
        built)."""
        lines: list[str] = []
        try:
            stream = self.client.api.build(
                path=str(ctx),
                dockerfile="env.Dockerfile",
                tag=tag,
                buildargs=buildargs,
                labels=labels,
                rm=True,
                forcerm=True,  # no intermediate containers left when a step fails
                pull=False,  # the base is resolved per the pull policy already
                network_mode="host" if on_loopback(buildargs["PIP_ARGS"]) else None,
                decode=True,
                timeout=_BUILD_TIMEOUT_S,
            )
            error = None
            for chunk in stream:
                if self._cancelled.is_set():  # a step that started after cancel()
                    self._remove_build_containers()
                if "stream" in chunk:
                    lines.append(str(chunk["stream"]))
                if "error" in chunk:
                    error = str(chunk["error"]).strip()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            error = one_line(exc)
        return lines, error


def _packaged_recipe() -> Path:
    """images/env.Dockerfile of the source tree this package was installed from."""
    return Path(__file__).resolve().parents[4] / "images" / "env.Dockerfile"
