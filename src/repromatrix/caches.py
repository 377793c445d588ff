"""A --cache folder checked before any work starts, the same for `run`, `bisect` and
`ray-node`: the one line and exit code that a bad one gets do not depend on which command
was given it, nor does a node find out cell by cell."""

from __future__ import annotations

import os
from pathlib import Path

from repromatrix import outputs
from repromatrix.errors import UsageError
from repromatrix.locks import cache_in_use


def check_separator(cache: Path) -> None:
    """UsageError when `cache` holds the PYTHONPATH separator."""
    if os.pathsep in str(cache):
        # Environments go on PYTHONPATH from there: the separator would split the path and
        # the pins would silently not be importable (or be shadowed).
        raise UsageError(
            f"--cache {cache}: holds '{os.pathsep}', which separates PYTHONPATH entries; "
            "pass a cache folder without it"
        )


def check_cache(cache: Path) -> None:
    """OutputError when `cache` cannot be a folder repromatrix writes (a file there, or an
    unwritable place): environments, clones and cell folders go there, and every cell would
    be an error ("harness failed") while the run still ended well. UsageError when it holds
    folders that `clean` would empty but is not a repromatrix cache."""
    outputs.check_folder(cache, "--cache")
    outputs.check_cache_is_ours(cache)


def claim(cache: Path) -> None:
    """Leave in `cache` the lock file a run leaves in its own, so that the envs/ and git/
    that a node makes there read as repromatrix's to the next `ray-node` and to `clean` (a
    node's cells run in Ray's workers, long after `ray-node` has exited)."""
    with cache_in_use(cache):
        pass
