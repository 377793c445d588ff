"""What of pip's own settings on this host an environment image's build gets: a local
run's pip reads its variables from the environment it inherits, and its configuration
files (pip.conf) from this host; a build has none of them.
"""

from __future__ import annotations

import dataclasses
import logging
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from repromatrix.options import Sources
from repromatrix.pip_settings import pip_path, with_pip_environment

log = logging.getLogger("repromatrix.docker")

_SECRET = (
    "a URL with credentials is not passed to image builds (build arguments stay in the "
    "image's history); give the build a --find-links folder of the wheels instead"
)


#: pip's variables an environment image's build is given, and the options of pip's
#: configuration files that stand for them.
_SETTINGS = {
    "PIP_FIND_LINKS": "find-links",
    "PIP_NO_INDEX": "no-index",
    "PIP_INDEX_URL": "index-url",
    "PIP_EXTRA_INDEX_URL": "extra-index-url",
    "PIP_TRUSTED_HOST": "trusted-host",
    "PIP_CERT": "cert",
}


def pip_settings(env: Mapping[str, str], config: Mapping[str, str]) -> dict[str, str]:
    """pip's settings of `_SETTINGS` as this host's pip takes them: a variable set (and not
    empty: pip skips an empty one), else its configuration files' option (`config`, as
    `pip_settings.pip_config` reads them: PIP_CONFIG_FILE, the user's and the global
    pip.conf). A site's index named only in a pip.conf reached a local run's pip and
    never an image's build: every pinned cell in Docker "No matching distribution
    found", or the public index's release of the name in place of the site's."""
    out = {}
    for variable, option in _SETTINGS.items():
        if env.get(variable):
            out[variable] = env[variable]
        elif config.get(option):
            out[variable] = config[option]
    return out


def _named(variable: str, env: Mapping[str, str]) -> str:
    """How a warning names where a setting came from: its variable, or pip.conf's option."""
    return variable if env.get(variable) else f"{_SETTINGS[variable]} of pip's configuration"


def build_sources(
    sources: Sources,
    env: Mapping[str, str],
    config: Mapping[str, str] | None = None,
    notes: list[str] | None = None,
) -> Sources:
    """`sources` plus the find-links, no-index, indexes and trusted hosts of pip's variables
    (PIP_FIND_LINKS, PIP_NO_INDEX, PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_TRUSTED_HOST):
    a local run's pip reads them from the environment it inherits, while an environment
    image's pip, in a build that has none of the host's variables, never saw them (every
    pinned cell "No matching distribution found"). Their folders are copied into the
    build's context as --find-links folders are; a `file://` URL of one too, which in the
    build would name a path that is not there. A page's or an index's URL is passed to pip
    as it is (a `file://` index is not: its folder is not there), unless it holds
    credentials (`https://user:token@host/`): build arguments stay in the image's history
    for anyone who can read the image. A folder that is not there (a share not mounted)
    is passed as it is, which the build's pip says of as a local pip does ("Location
    '...' is ignored: it is either a non-existing path"): were it left out, a build that
    then found no release was its cells' error record, never built again. `config`:
    the options of pip's configuration files, for variables not set (`pip_settings`).
    `notes`: where what is not passed is said (a warning now, without it)."""
    given, env = env, pip_settings(env, config or {})
    said: list[str] = [] if notes is None else notes
    links, missing = [], []
    for entry in env.get("PIP_FIND_LINKS", "").split():
        if _credentials(entry):
            said.append(f"{_named('PIP_FIND_LINKS', given)}: {_SECRET}")
            continue
        links.append(_as_path(entry))
        if ":" not in links[-1].partition("/")[0] and not pip_path(links[-1], given).exists():
            missing += ["--find-links", links[-1]]
    home = {"HOME": given["HOME"]} if "HOME" in given else {}  # where pip's `~` is
    found = with_pip_environment(sources, {**env, **home, "PIP_FIND_LINKS": " ".join(links)})
    # The indexes too (PIP_INDEX_URL, PIP_EXTRA_INDEX_URL), before the run's own pip
    # arguments, whose --index-url then wins as on pip's command line.
    indexes: list[str] = []
    for variable, flag in (
        ("PIP_INDEX_URL", "--index-url"),
        ("PIP_EXTRA_INDEX_URL", "--extra-index-url"),
    ):
        for url in env.get(variable, "").split():
            if _credentials(url):
                said.append(f"{_named(variable, given)}: {_SECRET}")
            elif urllib.parse.urlsplit(url).scheme.lower() == "file":
                # A folder of this host, which the build has not: pip would find nothing.
                where = _named(variable, given)
                said.append(f"{where}: a file:// index is not passed to image builds: {url}")
            else:
                indexes += [flag, url]
    # And the hosts pip is told to trust: an index over plain http on another machine is
    # otherwise ignored ("not a trusted or secure host"), every pin not found.
    for host in env.get("PIP_TRUSTED_HOST", "").split():
        indexes += ["--trusted-host", host]
    if build_cert(env) is not None:  # the CA pip trusts, copied into the build's context
        indexes += ["--cert", CERT_IN_BUILD]
    for note in said if notes is None else ():
        log.warning("%s", note)
    return dataclasses.replace(found, pip_args=(*indexes, *found.pip_args, *missing))


#: Where the build finds the CA file of PIP_CERT (`pins/cert.pem` of its context).
CERT_IN_BUILD = "/opt/repromatrix/pins/cert.pem"


def build_cert(env: Mapping[str, str]) -> Path | None:
    """The CA bundle pip trusts here (PIP_CERT: a site's own CA, an intercepting proxy's),
    which a build's pip has to be given: it failed every site index or proxy with
    CERTIFICATE_VERIFY_FAILED. A CA is no secret; None when PIP_CERT names no file."""
    cert = env.get("PIP_CERT", "").strip()
    return Path(cert) if cert and Path(cert).is_file() else None


def _credentials(url: str) -> bool:
    """Whether `url` holds a user or password (`https://user:token@host/`, a token as
    the user): build arguments stay in the image's history for anyone who reads it."""
    parts = urllib.parse.urlsplit(url)
    return parts.username is not None or parts.password is not None


def on_loopback(pip_args: str) -> bool:
    """Whether pip's arguments name an index or page on this host's loopback (a devpi
    at 127.0.0.1): a build's container has a loopback of its own, unless it uses the
    host's network."""
    for word in pip_args.split():
        host = (urllib.parse.urlsplit(word).hostname or "").lower()
        if host == "localhost" or host.startswith("127.") or host == "::1":
            return True
    return False


def _as_path(entry: str) -> str:
    """A find-links entry, a `file://` URL as its path (other URLs as they are)."""
    parts = urllib.parse.urlsplit(entry)
    if parts.scheme.lower() == "file" and parts.netloc in ("", "localhost"):
        return urllib.request.url2pathname(parts.path)
    return entry
