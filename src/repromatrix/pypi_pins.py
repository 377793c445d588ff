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
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from repromatrix.model import Pin, SourceKind

_NOT_FOUND = re.compile(r"No matching distribution found for (\S+?)===(\S+)")
#: pip's last words when no file suits a requirement (exact or not).
_NONE_SUITS = re.compile(r"No matching distribution found for ([A-Za-z0-9._-]+)===?([^\s;]+)")


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


def wheels_for_others(why: str, find_links: Iterable[Path]) -> str:
    """What to add to pip's "No matching distribution found for NAME==REV" when the
    --find-links folders hold wheels of NAME REV that pip passed over: built for another
    Python or platform (`cp312` in an image of 3.11). pip says why only with -v, so the
    reason read as if the file were missing while it lay in the folder. "" otherwise."""
    found = _NONE_SUITS.search(why)
    if found is None:
        return ""
    name = canonicalize_name(found.group(1))
    try:
        version = Version(found.group(2))
    except InvalidVersion:
        return ""
    passed_over: list[str] = []
    for folder in find_links:
        try:
            files = sorted(p.name for p in Path(folder).iterdir() if p.name.endswith(".whl"))
        except OSError:
            continue
        for file in files:
            try:
                wheel_name, wheel_version, _, _ = parse_wheel_filename(file)
            except (InvalidWheelFilename, InvalidVersion):
                continue
            if wheel_name == name and wheel_version.public == version.public:
                passed_over.append(file)
    if not passed_over:
        return ""
    shown = ", ".join(passed_over[:3]) + (" …" if len(passed_over) > 3 else "")
    return (
        f" (--find-links holds {shown}: not for this environment's Python or platform; "
        "add a wheel for it, or the sdist)"
    )


__all__ = ["loosened", "pin_requirement", "taken_as", "took_another_build", "wheels_for_others"]
