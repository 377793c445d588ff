"""A cell's input files (`Cell.inputs`), laid in the folder its process starts in.

Each is `inputs/<sha256 of its bytes>` there, whichever way the cell runs: a process of its
own or a worker on the host (the cell's work folder), a container of its own or a worker's
(`<work folder>/out`, mounted as the container's working folder); a Ray node lays them in
its own work folder, the cell carrying them. The params name a file by its digest only."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from repromatrix.model import Cell

#: The folder, in the cell's working folder, that holds its input files.
INPUTS = "inputs"


def input_name(content: bytes) -> str:
    """The name of `content` in the inputs folder (the digest the params give)."""
    return hashlib.sha256(content).hexdigest()


def lay_inputs(cell: Cell, folder: Path) -> None:
    """Write each of the cell's input files into `folder/inputs`, before the cell starts.
    Written beside, then renamed: a cell never reads half a file."""
    if not cell.inputs:
        return
    target = folder / INPUTS
    target.mkdir(parents=True, exist_ok=True)
    for content in cell.inputs:
        path = target / input_name(content)
        part = path.with_name(f"{path.name}.{os.getpid()}.part")
        part.write_bytes(content)
        os.replace(part, path)
