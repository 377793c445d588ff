"""Reading matrix.yaml from a path: its name as the user wrote it (relative to the
working directory when it is below it), its folder for scripts, and the last guard on
every message (one short line, no URL's password)."""

from __future__ import annotations

from pathlib import Path

from repromatrix.config.build import build_matrix
from repromatrix.config.matrix import Matrix
from repromatrix.config.yamlsrc import load_located
from repromatrix.errors import ConfigError
from repromatrix.redact import strip_url_credentials
from repromatrix.safetext import cut

#: Longest message of a ConfigError ("repromatrix: error: " makes the line under 300).
MAX_MESSAGE = 278


def load_matrix(path: Path) -> Matrix:
    try:
        located = load_located(path, display=_display(path))
        return build_matrix(located, root=_folder(path), path=path)
    except ConfigError as exc:
        # Every message quotes values through excerpts; this is the last guard that the
        # line stays one short line (and that no URL carries its password to a log).
        message = strip_url_credentials(exc.message)
        if len(message) <= MAX_MESSAGE and message == exc.message:
            raise
        raise ConfigError(cut(message, MAX_MESSAGE)) from None


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError, RuntimeError):  # elsewhere; a loop of links (3.11 raises)
        return str(path)


def _folder(path: Path) -> Path:
    try:
        return path.resolve().parent
    except (OSError, RuntimeError):
        return path.absolute().parent
