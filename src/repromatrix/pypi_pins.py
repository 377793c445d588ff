"""The requirement pip is given for a PyPI pin: the release the pin names, exactly.

PEP 440's `==1.2` also matches every local build of 1.2 (`1.2+cu121`), and pip takes the
highest match: a folder or index offering `1.2` and `1.2+cu121` installed the CUDA 12.1
build for the pin `1.2` (torch `2.1.0` against `2.1.0+cu121`), so a matrix declaring
both tested one build twice and recorded it as two. A pin without a local label is asked
as `===1.2` (arbitrary equality: the version string, local label included, so only `1.2`
itself); one with a label (`1.2+cu121`) is that build already, and `==` asks for it.

`===` compares spellings: a pin `1.0.0` where the sources offer `1.0` matches nothing, so
it is asked again as `===1.0`, the spelling pip's "from versions" list has of the same
release; `==1.0.0` would take `1.0+cu121` where that build is offered too (a cell `1.0.0`
ran the CUDA build, and read bad where `1.0` is good). Where no plain spelling of it is
offered (only local builds, as an index of CUDA wheels has), the requirement is asked
again as `==`, which takes what pip would have taken before; what it installed is
recorded (`ResolvedPin.installed`) and the report names it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from repromatrix.model import Pin, SourceKind
from repromatrix.options import Sources
from repromatrix.pypi_index import index_versions

_NOT_FOUND = re.compile(r"No matching distribution found for (\S+?)===(\S+)")
#: pip's list of the versions it saw, after a requirement no file suits.
_FROM_VERSIONS = re.compile(r"requirement (\S+) \(from versions: ([^)]*)\)")
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
    """`requirements` with the exact one pip found no file for asked again: as the
    spelling pip offers of that release (`===1.0` for `===1.0.0`), else as `==` (a local
    build alone); None when pip's failure was not that."""
    found = _NOT_FOUND.search(pip_output)
    if found is None:
        return None
    name, rev = found.group(1), found.group(2)
    exact = f"{name}==={rev}"
    if exact not in requirements:
        return None
    # The spelling pip offers is taken once: where it failed too, `==` is the last try.
    spelled = _offered_spelling(name, rev, pip_output)
    again = f"{name}==={spelled}" if spelled not in (None, rev) else f"{name}=={rev}"
    return [again if r == exact else r for r in requirements]


def _offered_spelling(name: str, rev: str, pip_output: str) -> str | None:
    """The first spelling in pip's "(from versions: ...)" list for `name===rev` of the
    same release without a local label (`1.0` for `1.0.0`, never `1.0+cu121`); None when
    it lists none."""
    try:
        wanted = Version(rev)
    except InvalidVersion:
        return None
    for listed in _FROM_VERSIONS.finditer(pip_output):
        if listed.group(1) != f"{name}==={rev}":
            continue
        for text in listed.group(2).split(","):
            try:
                offered = Version(text.strip())
            except InvalidVersion:
                continue
            if offered == wanted and offered.local is None:
                return text.strip()
    return None


def taken_as(taken: Sequence[str], exact: str | None) -> str | None:
    """`exact` (a pin's requirement) as pip finally took it: itself, or as `loosened`
    asked it again (`===1.0`, or `==`)."""
    if exact is None or exact in taken:
        return exact
    name = exact.partition("===")[0]
    again = [r for r in taken if r.startswith(f"{name}===") or r.startswith(f"{name}==")]
    return again[0] if len(again) == 1 else exact.replace("===", "==", 1)


#: The key an environment manifest's PyPI pin carries since `loosened` asks pip's own
#: spelling of a release before `==`: a `==` without it may have passed over that spelling.
SPELLING_FIRST = "asked_offered_spelling_first"


def took_another_build(entry: Mapping[str, Any]) -> bool:
    """An environment manifest's PyPI pin whose plain release pin installed a local build,
    made before pins were asked exactly (no `requirement` recorded) or before an exact
    pin pip found no file for was asked again as the spelling pip offers (`==1.0.0`, with
    1.0 offered, took 1.0+cu121; no `SPELLING_FIRST`): the environment is another build
    than the pin names, and is built again. One asked as `==` since, where the sources
    offer local builds alone, is that pin's."""
    if entry.get("kind") != SourceKind.PYPI.value or entry.get(SPELLING_FIRST):
        return False
    try:
        pinned, got = Version(str(entry["rev"])), Version(str(entry.get("installed")))
    except (InvalidVersion, KeyError):
        return False
    return not pinned.local and got.local is not None


def pip_env() -> dict[str, str]:
    """The environment pip runs with to build an environment."""
    env = dict(os.environ)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    # An index that accepts connections and never answers would hold a cell for pip's
    # 15 s x 5 retries per request, over and over; a user's own setting wins.
    env.setdefault("PIP_TIMEOUT", "30")
    env.setdefault("PIP_RETRIES", "2")
    return env


def unread_pages(why: str, sources: Sources, *, python: str) -> str:
    """What to add to pip's "No matching distribution found for NAME==REV" when a page
    of its sources could not be read (an index out of reach): pip's output said so only
    when it retried (PIP_RETRIES=0 said nothing), and the reason read as if the index had
    answered that it lacks the release, a verdict later runs reused. "" otherwise."""
    found = _NONE_SUITS.search(why)
    if found is None:
        return ""
    links = [arg for link in sources.find_links for arg in ("--find-links", str(link))]
    args = [*links, *(["--no-index"] if sources.no_index else []), *sources.pip_args]
    from repromatrix import pip_settings  # only once pip failed: `pip config list` runs

    # The indexes the install read: `pip index` reads no `[install]` section of pip.conf.
    env = pip_env()
    env = pip_settings.install_indexes(env, pip_settings.pip_config(python, env))
    problems = index_versions(python, found.group(1), args, env=env).problems
    if not problems:
        return ""
    more = f"; and {len(problems) - 1} more" if len(problems) > 1 else ""
    return f" ({problems[0][:300]}{more})"


def wheels_for_others(
    why: str,
    find_links: Iterable[Path],
    *,
    python: str = "",
    env: Mapping[str, str] | None = None,
) -> str:
    """What to add to pip's "No matching distribution found for NAME==REV" when the
    find-links folders hold wheels of NAME REV that pip passed over: built for another
    Python or platform (`cp312` in an image of 3.11). pip says why only with -v, so the
    reason read as if the file were missing while it lay in the folder. "" otherwise.
    Besides --find-links (`find_links`), the folders pip's own settings add (`env`'s
    PIP_FIND_LINKS, `python`'s pip configuration): pip looked there too."""
    found = _NONE_SUITS.search(why)
    if found is None:
        return ""
    name = canonicalize_name(found.group(1))
    try:
        version = Version(found.group(2))
    except InvalidVersion:
        return ""
    for where, folder in _folders(find_links, python, env):
        passed_over: list[str] = []
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
        if passed_over:
            shown = ", ".join(passed_over[:3]) + (" …" if len(passed_over) > 3 else "")
            return (
                f" ({where} holds {shown}: not for this environment's Python or platform; "
                "add a wheel for it, or the sdist)"
            )
    return ""


def _folders(
    find_links: Iterable[Path], python: str, env: Mapping[str, str] | None
) -> list[tuple[str, Path]]:
    """(how to name it, folder) of each find-links folder pip read: --find-links, then
    PIP_FIND_LINKS, then pip's configuration files."""
    given = list(find_links)
    out = [("--find-links", p) for p in given]
    if env is None:
        return out
    from repromatrix import pip_settings  # only once pip failed: `pip config list` runs

    variable = [
        str(pip_settings.pip_path(v, env).absolute()) for v in env.get("PIP_FIND_LINKS", "").split()
    ]
    config = pip_settings.pip_config(python, env) if python else {}
    more = pip_settings.with_pip_environment(Sources(), env, config).find_links
    for folder in more:
        if folder not in given:
            where = "PIP_FIND_LINKS" if str(folder) in variable else "pip's configured find-links"
            out.append((f"{where} folder {folder}", folder))
    return out


__all__ = [
    "SPELLING_FIRST",
    "loosened",
    "pin_requirement",
    "pip_env",
    "taken_as",
    "took_another_build",
    "wheels_for_others",
]


def installed_versions(site: Path) -> dict[str, str]:
    """Project (canonical name) → version, from the `.dist-info` folders pip left in
    `site` (`name-version.dist-info`, as wheels name them)."""
    found: dict[str, str] = {}
    for info in site.glob("*.dist-info") if site.is_dir() else ():
        name, sep, version = info.name.removesuffix(".dist-info").rpartition("-")
        if sep and name and version:
            found[canonicalize_name(name)] = version
    return found
