"""What pip's own settings say of where a project's files come from and which of them it
takes: find-links and no-index (PIP_FIND_LINKS, PIP_NO_INDEX, pip.conf as `pip config list`
shows it), and the setting that bars a kind of file (only-binary, no-binary). The release
listing (`pypi_index`), the pins (`pypi_pins`) and an image's build (`build_sources`) see
the same settings the installs do.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from repromatrix import proc
from repromatrix.errors import MissingToolError
from repromatrix.options import Sources


def with_pip_environment(
    sources: Sources, env: Mapping[str, str], config: Mapping[str, str] | None = None
) -> Sources:
    """`sources` plus what pip's own settings add (README: they apply to library pins
    alike): find-links locations and no-index from its variables (PIP_FIND_LINKS,
    PIP_NO_INDEX) and from its configuration files (`config`: `pip_config`). The installs
    see them anyway; the list of releases must see the same. As pip takes them, a
    variable replaces its configuration files' value (PIP_FIND_LINKS the find-links of
    pip.conf, not beside them), an empty one is none, and --no-index wins over both."""
    config = config or {}
    found = (env.get("PIP_FIND_LINKS") or config.get("find-links", "")).split()
    # A URL or page stays text for pip (Path() would eat a slash of `https://`); a path
    # that does not exist is ignored, as pip ignores it.
    urls = [p for p in dict.fromkeys(found) if ":" in p.partition("/")[0]]
    # Absolute, as --find-links folders are: `wheels` beside `--find-links wheels` is one.
    extra = [q.absolute() for p in found if p not in urls and (q := pip_path(p, env)).exists()]
    links = (*sources.find_links, *dict.fromkeys(p for p in extra if p not in sources.find_links))
    setting = env.get("PIP_NO_INDEX") or config.get("no-index", "")
    no_index = sources.no_index or setting.strip().lower() in _TRUE
    pip_args = (*sources.pip_args, *(a for url in urls for a in ("--find-links", url)))
    return replace(sources, find_links=links, no_index=no_index, pip_args=pip_args)


def pip_path(text: str, env: Mapping[str, str]) -> Path:
    """A find-links entry of pip's settings as pip takes it: a leading `~` is the home
    folder (pip's SearchScope expands it, with the HOME pip runs with: `env`'s), so
    `find-links = ~/wheels` in pip.conf is a folder pip installs from; taken as text, the
    listing ignored it and no release between the ends was a candidate."""
    if text == "~" or text.startswith("~/"):
        home = env.get("HOME")
        return Path(home + text[1:]) if home else Path(os.path.expanduser(text))
    return Path(os.path.expanduser(text)) if text.startswith("~") else Path(text)


#: `pip config list` lines of the options that decide where releases come from.
_CONFIG_LINE = re.compile(
    r"^(?:global|install)\.(find-links|no-index|index-url|extra-index-url|trusted-host|cert"
    r"|only-binary|no-binary)"
    r"=(.*)$"
)


def pip_config(python: str, env: Mapping[str, str]) -> dict[str, str]:
    """find-links and no-index (and the indexes, trusted hosts and CA file an image's
    build is given: `docker/build_sources.py`) as pip's configuration files set them for
    `python`'s pip (`pip config list`: global, user and site files, PIP_CONFIG_FILE), the
    `install` section's value winning; {} when pip cannot say."""
    try:
        out = proc.run([python, "-m", "pip", "config", "list"], env=env, timeout=60)
    except (OSError, MissingToolError):
        return {}
    found: dict[str, str] = {}
    for line in out.stdout.splitlines() if out.returncode == 0 else ():
        match = _CONFIG_LINE.match(line.strip())
        if match is None:
            continue
        try:
            value = ast.literal_eval(match.group(2))  # pip prints repr(): '\n/a\n/b'
        except (ValueError, SyntaxError):
            continue
        if isinstance(value, str) and (match.group(1) not in found or line.startswith("install")):
            found[match.group(1)] = value
    return found


#: The options of pip's configuration that say which indexes it reads, and the variable
#: that sets each for every pip command.
_INDEX_VARIABLES = {
    "index-url": "PIP_INDEX_URL",
    "extra-index-url": "PIP_EXTRA_INDEX_URL",
    "trusted-host": "PIP_TRUSTED_HOST",
    "cert": "PIP_CERT",
}


def install_indexes(env: Mapping[str, str], config: Mapping[str, str]) -> dict[str, str]:
    """`env` for `pip index versions` to read the indexes `pip install` reads. A pip.conf
    `[install]` section applies to installs alone (`pip index` reads `[global]` and
    `[index]`), so the releases of an index or extra index named there were never listed,
    while pip installed them: two ends alone made a "first bad release" of the new end.
    Each of `config`'s values (`pip_config`: `[install]` winning, as for the installs)
    goes in the variable, which pip takes over every section; one `env` sets stays, as
    it does for the installs."""
    out = dict(env)
    for key, variable in _INDEX_VARIABLES.items():
        if variable not in env and config.get(key):
            out[variable] = config[key]
    return out


#: What pip's strtobool reads as true.
_TRUE = ("1", "true", "yes", "on", "y", "t")


def excluded_by(formats: frozenset[str], env: Mapping[str, str], config: Mapping[str, str]) -> str:
    """Which of pip's settings bars a kind of file ("PIP_ONLY_BINARY=:all: excludes its
    sdists"), for the way out of a release it left uninstallable here."""
    key, kind = ("only-binary", "sdists") if "source" not in formats else ("no-binary", "wheels")
    variable = "PIP_" + key.upper().replace("-", "_")
    if env.get(variable):
        return f"{variable}={env[variable]} excludes its {kind}"
    if config.get(key):
        return f"{key} = {config[key].strip()} in pip's configuration excludes its {kind}"
    return f"pip's {key} setting excludes its {kind}"


__all__ = ["excluded_by", "install_indexes", "pip_config", "pip_path", "with_pip_environment"]
