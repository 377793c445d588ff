"""A repro's scripts on a Ray node, which may not have this checkout: the files the
driver ships (`scripts_of`, the script and what its key covers) and their folder in the
node's cache, written once per content and worker process (`local_scripts`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from repromatrix.config.digest import imported_siblings
from repromatrix.model import Cell


def scripts_of(script: Path) -> dict[str, bytes]:
    """The script and the code beside it that its key covers (the `_*.py` helpers and the
    modules and packages of its folder it imports), by path relative to that folder:
    shipped to the node, which may not have this checkout."""
    files = {script.name: script.read_bytes()}
    for helper in sorted(script.parent.glob("_*.py")):
        files[helper.name] = helper.read_bytes()
    for path in imported_siblings(script):
        files[path.relative_to(script.parent).as_posix()] = path.read_bytes()
    return files


_written: dict[str, Path] = {}
#: id(shared) → (shared, its scripts' folder): no digest of the files for every cell.
_folders: dict[int, tuple[object, Path]] = {}


def local_scripts(
    cell: Cell, shared: object, scripts: Mapping[str, bytes], cache: Path, kept: int
) -> Cell:
    """The cell with its script written into this node's cache (same bytes, same key).

    One folder per content (a digest of the files): the cells of one script share it, and
    each is written once per worker process. `shared`: the run's object the `scripts`
    came in (`node.Shared`), whose identity saves a digest per cell; `kept`: how many
    such objects the node holds, past which the memo of them starts again.
    """
    seen = _folders.get(id(shared))
    if seen is not None and seen[0] is shared:
        folder = seen[1]
    else:
        folder = scripts_folder(scripts, cache)
        if len(_folders) > kept:
            _folders.clear()
        _folders[id(shared)] = (shared, folder)
    return dataclasses.replace(cell, script=folder / cell.script.name)


def scripts_folder(scripts: Mapping[str, bytes], cache: Path) -> Path:
    digest = hashlib.sha256()
    for name in sorted(scripts):
        digest.update(name.encode() + b"\0" + scripts[name] + b"\0")
    key = digest.hexdigest()[:20]
    folder = _written.get(key)
    if folder is None:
        folder = cache / "scripts" / key
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in scripts.items():
            path = folder / name  # a package's files by relative path: `pkg/sub.py`
            if ".." in Path(name).parts or Path(name).is_absolute():
                continue  # never outside the folder, whatever the driver sent
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.is_file() or path.read_bytes() != data:
                tmp = path.with_name(f".{path.name}.{secrets.token_hex(3)}")
                tmp.write_bytes(data)
                os.replace(tmp, path)
        _written[key] = folder
    return folder
