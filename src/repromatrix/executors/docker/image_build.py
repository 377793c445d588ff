"""An environment image's build, the parts that need no engine: its context (each pin's
source as exported from its mirror, the find-links folders, hard links where the disk
allows, pip's certificate, the requirements files images/env.Dockerfile installs), and
the words that say why a failed build failed."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from repromatrix.mirrors import Mirrors
from repromatrix.model import InstallMode, Pin, SourceKind
from repromatrix.pypi_pins import pin_requirement, wheels_for_others
from repromatrix.safetext import pip_failure

#: Where the pins' sources and wheels are copied inside an environment image.
PINS_DIR = "/opt/repromatrix/pins"
#: The legacy builder colours a step's stderr with terminal escapes.
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: The builder's own lines around a step's output ("Step 3/5 : RUN ...", " ---> 1f2e",
#: "Removing intermediate container ..."): never the reason a build failed.
_BUILDER = re.compile(
    r"^(?:Step \d+/\d+ : | ---> |Removing intermediate container |Successfully (?:built|tagged) "
    r"|Sending build context )"
)


def fill_context(
    pins_dir: Path,
    resolved: list[tuple[Pin, str | None, str | None]],
    *,
    mirrors: Mirrors,
    find_links: Sequence[Path],
    cert: Path | None,
) -> list[str]:
    """Fill the build context: git archives, find-links folders, requirements.txt (see
    `write_requirements`); the requirements pip gets."""
    (pins_dir / "src").mkdir(parents=True)
    (pins_dir / "links").mkdir()
    requirements: list[str] = []
    for pin, commit, _ in resolved:
        if pin.kind is SourceKind.PYPI:
            # The release itself (`===1.2`), never a local build `==1.2` also matches.
            requirements.append(pin_requirement(pin))
        else:
            assert commit is not None
            dest = pins_dir / "src" / pin.library
            dest.mkdir()
            mirrors.export(pin.library, pin.source, commit, dest)
            if pin.install is InstallMode.PIP:
                requirements.append(f"{PINS_DIR}/src/{pin.library}")
        requirements.extend(pin.requires)
    if any(p.kind is SourceKind.PYPI or p.requires for p, _, _ in resolved):
        for i, folder in enumerate(find_links):
            if folder.is_dir():
                shutil.copytree(folder, pins_dir / "links" / str(i), copy_function=_link_or_copy)
            else:  # one archive, as pip also takes (PIP_FIND_LINKS=/w/x-1.0.whl)
                (pins_dir / "links" / str(i)).mkdir()
                _link_or_copy(str(folder), str(pins_dir / "links" / str(i) / folder.name))
    if cert is not None:  # `build_sources` passed --cert for it
        shutil.copyfile(cert, pins_dir / "cert.pem")
    write_requirements(pins_dir, requirements)
    return requirements


def write_requirements(pins_dir: Path, requirements: Sequence[str]) -> None:
    """requirements.txt, one a line, as images/env.Dockerfile installs them. A release pin
    pip found no file for is asked again by building again (`pypi_pins.loosened`, as a
    local environment does): the image's pip lists the spellings its sources offer, which
    a fixed fallback of `==` could not know (`==1.0.0` took `1.0+cu121` where `1.0` is
    offered too)."""
    (pins_dir / "requirements.txt").write_text("".join(f"{r}\n" for r in requirements))


def _link_or_copy(src: str, dst: str) -> object:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst


def build_output(lines: Sequence[str]) -> str:
    """What a build's steps printed, without the legacy builder's colours."""
    return _ANSI.sub("", "".join(lines))


def failure_words(lines: Sequence[str], error: str, find_links: Sequence[Path]) -> str:
    """Why a build failed, from what its steps printed (`lines`) and the engine's `error`.
    pip's own words ("No matching distribution found for ...", a build's exception, "No
    module named pip") say more than the builder's "returned a non-zero code", which is
    the fallback."""
    said = build_output(lines).splitlines()
    text = "\n".join(ln for ln in said if not _BUILDER.match(ln))
    last = pip_failure(text, code=1) if text.strip() else error
    return last[:300] + wheels_for_others(last, find_links)
