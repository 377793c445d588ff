"""The python3 of each base image, asked once per image before any of its cells runs.

Cells need Python 3.10 or newer (the worker and repros/_repro.py). The local executor
refuses an older interpreter before any cell (exit 4); in an image, the worker found out
per cell ("exited (1) before connecting"), and every cell of the image was recorded as an
error that later runs reused. A short container per image, started as a worker is (the
image's ENTRYPOINT, the host user, no GPU), says which python3 the cells would get.

A bisection of releases in an image asks it too, before the releases are listed
(`ImagePythons.target`): its python3's version and its pip's wheel tags decide which
release installs there (a wheel for `>=3.12` or `cp312` alone does not in a 3.11 image),
as this interpreter's decide for the host; kept in memory and in the cache by image id.

Asked only for an image some of whose cells are about to run (a fully reused run starts
no container), and a good answer is kept in the cache folder under the engine's image id:
the same image is not asked again by later runs; a rebuilt or retagged one, whose id
differs, is. A refusal is not kept: the image's cells are noted and retried each run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import docker.errors
import requests.exceptions
from packaging.version import InvalidVersion, Version

from repromatrix.executors.docker.janitor import KIND_PROBE, L_BASE_REF, L_KIND, owner_labels
from repromatrix.host import CELL_PYTHON
from repromatrix.release_files import Target
from repromatrix.safetext import excerpt

#: Runs on any Python, 2.7 included, and says its version on a line of its own (an
#: image's ENTRYPOINT may print a banner first).
_ASK = (
    "import sys; sys.stdout.write('repromatrix-python %d.%d.%d\\n' % tuple(sys.version_info[:3]))"
)
_ANSWER = re.compile(r"^repromatrix-python (\d+)\.(\d+)\.(\d+)\s*$", re.MULTILINE)
#: Also the wheel tags the image's pip installs, best first (pip's own list, as
#: `release_files.interpreter_target` asks this host's), one a line; none without pip.
_ASK_TAGS = (
    _ASK
    + "\ntry:\n    from pip._vendor.packaging import tags\nexcept Exception:\n    tags = None"
    + "\nif tags is not None:\n    for t in tags.sys_tags():\n"
    + "        sys.stdout.write('repromatrix-tag %s\\n' % t)"
)
_TAG = re.compile(r"^repromatrix-tag (\S+)\s*$", re.MULTILINE)
_TINI = re.compile(r"\[FATAL tini \(\d+\)\] ")
#: Long enough for an NGC image's entrypoint scripts on a busy host.
_ASK_TIMEOUT_S = 120
_ENGINE_ERRORS = (requests.exceptions.RequestException, docker.errors.DockerException)


class ImagePythons:
    """Why cells cannot run in each image (None: its python3 can, or the engine did not
    say), asked once per image id for the executor's lifetime; the good answers are kept
    in `known_good` (a folder: one file per image id, holding its python3's version)."""

    def __init__(self, api: Any, known_good: Path) -> None:
        self.api = api
        self.known_good = known_good
        self._lock = threading.Lock()
        self._known: dict[str, str | None] = {}
        self._asking: dict[str, threading.Lock] = {}
        self._targets: dict[str, Target | None] = {}

    def target(self, image_id: str, ref: str) -> Target | None:
        """The version and wheel tags of the image's python3, as its pip installs pins
        (None: it did not say, as one without pip or a python3 that does not run)."""
        with self._lock:
            asking = self._asking.setdefault(image_id, threading.Lock())
        with asking:
            with self._lock:
                if image_id in self._targets:
                    return self._targets[image_id]
            kept = self._kept(image_id).with_suffix(".target.json")
            found = _kept_target(kept)
            if found is None:
                found = _ask_target(self.api, image_id, ref)
                if found is not None:
                    text = json.dumps({"python": str(found.python), "tags": found.order})
                    self._write(kept, text)
            with self._lock:
                self._targets[image_id] = found
            return found

    def unusable(self, image_id: str, ref: str) -> str | None:
        with self._lock:
            asking = self._asking.setdefault(image_id, threading.Lock())
        with asking:  # one container per image, however many cells ask at once
            with self._lock:
                if image_id in self._known:
                    return self._known[image_id]
            kept = self._kept(image_id)
            if _kept_good(kept):
                why = None
            else:
                why, version = _ask(self.api, image_id, ref)
                if version is not None:
                    self._keep(kept, version)
            with self._lock:
                self._known[image_id] = why
            return why

    def _kept(self, image_id: str) -> Path:
        # "sha256:<hex>": the hex alone names the file (no ':' on any filesystem's list).
        return self.known_good / image_id.rpartition(":")[2]

    def _keep(self, kept: Path, version: str) -> None:
        """Remember a good answer; a cache that cannot be written only costs the next run
        the same short container (written whole, so a reader never sees half of it)."""
        self._write(kept, f"{version}\n")

    def _write(self, kept: Path, text: str) -> None:
        with contextlib.suppress(OSError):
            kept.parent.mkdir(parents=True, exist_ok=True)
            part = kept.with_name(f"{kept.name}.{os.getpid()}.{threading.get_ident()}.part")
            part.write_text(text, encoding="utf-8")
            part.replace(kept)


def _kept_good(kept: Path) -> bool:
    """Whether `kept` holds a good answer: a version cells can run with. An empty or
    damaged file (a full disk, a hand edit) is no answer, so the image is asked again."""
    try:
        text = kept.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    found = re.fullmatch(r"(\d+)\.(\d+)(?:\.\d+)?\n?", text)
    return found is not None and (int(found[1]), int(found[2])) >= CELL_PYTHON


def _kept_target(kept: Path) -> Target | None:
    """The target `kept` holds (`ImagePythons.target`); None for none or a damaged one."""
    try:
        data = json.loads(kept.read_text(encoding="utf-8"))
        tags = tuple(str(t) for t in data["tags"])
        return Target(tags=frozenset(tags), python=Version(str(data["python"])), order=tags)
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, InvalidVersion):
        return None


def _ask_target(api: Any, image_id: str, ref: str) -> Target | None:
    """The image python3's version and its pip's wheel tags; None when it says no tags
    (no pip) or does not answer (the engine's trouble, a python3 that does not run)."""
    try:
        code, text, _ = _run(api, image_id, ref, ["python3", "-c", _ASK_TAGS])
    except _ENGINE_ERRORS:
        return None
    found, tags = _ANSWER.findall(text), tuple(_TAG.findall(text))
    if code != 0 or not found or not tags:
        return None
    return Target(tags=frozenset(tags), python=Version(".".join(found[-1])), order=tags)


def _ask(api: Any, image_id: str, ref: str) -> tuple[str | None, str | None]:
    """Why cells cannot run in the image (None: they can, or the engine did not say),
    and its python3's version when it answered one cells can use."""
    try:
        answer = _run(api, image_id, ref, ["python3", "-c", _ASK])
    except _ENGINE_ERRORS:
        # The engine's trouble (or no answer in time), not the image's: the cells' own
        # runs find it out and say it (an engine gone stops the run, exit 5).
        return None, None
    code, text, entrypoint = answer
    found = _ANSWER.findall(text)
    need = ".".join(map(str, CELL_PYTHON))
    fix = f"cells need Python {need} or newer as python3 on the image's PATH (the worker and "
    fix += "repros/_repro.py): use an image that has one, or drop the image from the matrix"
    if found and code == 0:
        version = tuple(int(x) for x in found[-1])
        if version[:2] >= CELL_PYTHON:
            return None, ".".join(found[-1])
        return f"image {ref}: its python3 is Python {'.'.join(found[-1])}; {fix}", None
    # Without docker-init's pid ("[FATAL tini (7)] exec python3 failed: ..."): the same
    # image must give the same reason, or every run notes its cells again.
    text = _TINI.sub("", text)
    words = excerpt(" / ".join(ln.strip() for ln in text.splitlines() if ln.strip()), 300)
    said = words or "no output"
    if entrypoint:  # the worker's command is only its arguments: one it does not exec
        said += f"; the image's ENTRYPOINT {excerpt(json.dumps(entrypoint), 200)} ran it"
    return f"image {ref}: python3 does not run in it (exit {code}: {said}); {fix}", None


def _run(api: Any, image_id: str, ref: str, command: Sequence[str]) -> tuple[int, str, Any]:
    """Exit code, output and the image's ENTRYPOINT of `command` run in the image as a
    CPU cell's worker would be (a wait past the limit raises, as the engine's errors do)."""
    host_config = api.create_host_config(init=True, auto_remove=False)
    created = api.create_container(
        image_id,
        command=list(command),
        labels={L_KIND: KIND_PROBE, L_BASE_REF: ref, **owner_labels()},
        # A CPU cell's: no GPU (NGC images set NVIDIA_VISIBLE_DEVICES=all).
        environment={"NVIDIA_VISIBLE_DEVICES": "void", "CUDA_VISIBLE_DEVICES": ""},
        user=f"{os.getuid()}:{os.getgid()}",
        host_config=host_config,
    )
    cid = str(created["Id"])
    try:
        api.start(cid)
        code = int(api.wait(cid, timeout=_ASK_TIMEOUT_S).get("StatusCode", -1))
        text = api.logs(cid, stdout=True, stderr=True).decode("utf-8", errors="replace")
        entrypoint = api.inspect_container(cid)["Config"].get("Entrypoint")
        return code, text, entrypoint
    finally:
        with contextlib.suppress(*_ENGINE_ERRORS):
            api.remove_container(cid, force=True, v=True)
