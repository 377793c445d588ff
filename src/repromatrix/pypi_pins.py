"""The requirement pip is given for a PyPI pin: the release the pin names, exactly.

PEP 440's `==1.2` also matches every local build of 1.2 (`1.2+cu121`), and pip takes the
highest match: a folder or index offering `1.2` and `1.2+cu121` installed the CUDA 12.1
build for the pin `1.2` (torch `2.1.0` against `2.1.0+cu121`), so a matrix declaring
both tested one build twice and recorded it as two. A pin without a local label is asked
as `===1.2` (arbitrary equality: the version string, local label included, so only `1.2`
itself); one with a label (`1.2+cu121`) is that build already, and `==` asks for it.

`===` compares spellings: a pin `1.2` where the sources offer only `1.2.0` (or only local
builds, as an index of CUDA wheels does) matches nothing, so such a requirement is asked
again as `==`, which takes what pip would have taken before; what it installed is
recorded (`ResolvedPin.installed`) and the report names it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from packaging.version import InvalidVersion, Version

from repromatrix.model import Pin, SourceKind

_NOT_FOUND = re.compile(r"No matching distribution found for (\S+?)===(\S+)")


def pin_requirement(pin: Pin) -> str:
    """`name===1.2` for a release pin without a local label, else `name==REV`."""
    try:
        version = Version(pin.rev)
    except InvalidVersion:
        return f"{pin.source}=={pin.rev}"  # refused as it was (`checked_requirement`)
    return f"{pin.source}=={pin.rev}" if version.local else f"{pin.source}==={version}"


def loosened(requirements: Sequence[str], pip_output: str) -> list[str] | None:
    """`requirements` with the exact one pip found no file for asked as `==` (a `1.2.0`,
    a local build alone); None when pip's failure was not that."""
    found = _NOT_FOUND.search(pip_output)
    if found is None:
        return None
    exact = f"{found.group(1)}==={found.group(2)}"
    if exact not in requirements:
        return None
    return [r.replace("===", "==", 1) if r == exact else r for r in requirements]


def taken_as(taken: Sequence[str], exact: str | None) -> str | None:
    """`exact` (a pin's requirement) as pip finally took it: itself, or `==` once
    `loosened`."""
    if exact is None or exact in taken:
        return exact
    return exact.replace("===", "==", 1)


def took_another_build(entry: Mapping[str, Any]) -> bool:
    """An environment manifest's PyPI pin made before pins were asked exactly (no
    `requirement` recorded), whose plain release pin installed a local build: the
    environment is another build than the pin names, and is built again."""
    if entry.get("kind") != SourceKind.PYPI.value or "requirement" in entry:
        return False
    try:
        pinned, got = Version(str(entry["rev"])), Version(str(entry.get("installed")))
    except (InvalidVersion, KeyError):
        return False
    return not pinned.local and got.local is not None


__all__ = ["loosened", "pin_requirement", "taken_as", "took_another_build"]
