"""Run by nox's venv's own python (`python -P THIS TARGET STAMP INSTALLED [NEED...]`), with
the stdlib and, where the venv has it, `packaging`: what the venv has of repromatrix and its
requirements, as one JSON line. The one rule set of the front door, read once a session
where nothing is missing: whether pip must run, and afterwards which requirement is still
unmet (install.py reads it). Two scripts had asked it, one of names alone, and could
disagree."""

from __future__ import annotations

import json
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

try:
    from packaging.requirements import Requirement
except ImportError:  # before repromatrix's first install: names alone are weighed
    Requirement = None  # type: ignore[assignment,misc]


def state(target: str, stamp: str, installed: str, optional: list[str]) -> dict[str, Any]:
    """`installed`: a repromatrix distribution is there; `as_left`: installed editable from
    TARGET, STAMP reading INSTALLED (pip's install of this folder as it is); `weighed`:
    versions and markers were weighed; `unmet`: repromatrix's own requirements (extras left
    out) the venv does not meet; `optional`: those of `optional` it does not meet."""
    try:
        needs = metadata.requires("repromatrix") or []
        present = True
    except metadata.PackageNotFoundError:
        needs, present = [], False
    return {
        "installed": present,
        "as_left": present and _as_left(target, stamp, installed),
        "weighed": Requirement is not None,
        "unmet": [u for u in map(_unmet, needs) if u is not None],
        "optional": [need for need in optional if _unmet(need) is not None],
    }


def _as_left(target: str, stamp: str, installed: str) -> bool:
    try:
        url = json.loads(metadata.distribution("repromatrix").read_text("direct_url.json") or "{}")
        with open(stamp) as f:
            same = f.read() == installed
    except (metadata.PackageNotFoundError, OSError, ValueError):
        return False
    editable = url.get("dir_info", {}).get("editable")
    return same and bool(editable) and url.get("url") == Path(target).as_uri()


def _unmet(need: str) -> dict[str, str | None] | None:
    """`need` as the venv fails it (its name and the version found, if any), or None where
    it is met or does not apply (an extra's; a marker of another platform)."""
    if Requirement is None:
        if "extra ==" in need:
            return None
        match = re.match(r"[A-Za-z0-9._-]+", need)
        name = match.group() if match else need
        return None if _version(name) is not None else {"need": need, "name": name, "found": None}
    req = Requirement(need)
    if req.marker and not req.marker.evaluate({"extra": ""}):
        return None
    found = _version(req.name)
    if found is not None and req.specifier.contains(found, prereleases=True):
        return None
    return {"need": need, "name": req.name, "found": found}


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    target, stamp, installed, *optional = sys.argv[1:]
    print(json.dumps(state(target, stamp, installed, optional)))
