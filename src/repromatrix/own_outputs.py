"""Which files in an output folder this tool wrote (the report's pages, Markdown and
Parquet table, by their marks), so that `outputs.staged` removes only its own stale
outputs, never a user's file of the same name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

#: What every page and Markdown file the report writes holds in its first lines (the
#: pages' generator meta, the Markdown's heading): a file without it is someone else's.
MADE_HERE = (b'<meta name="generator" content="repromatrix">', b": what changed since ")


#: The columns only the report's table has (`report.table`), named in a Parquet file's
#: footer (its schema, uncompressed): the file is ours, written by this tool or an older one.
TABLE_COLUMNS = (b"cell_id", b"machines_disagree", b"passed_records", b"older_records")


def made_here(path: Path) -> bool:
    """Whether `path` is a report file this tool wrote (a stale output it may remove): a
    user's own `changes.md` in the --out folder is never deleted."""
    try:
        with path.open("rb") as f:
            head = f.read(4096)
            if head.startswith(b"PAR1"):
                return _our_table(f)
    except OSError:  # gone, a folder, unreadable: not removed
        return False
    return any(mark in head for mark in MADE_HERE)


def _our_table(f: BinaryIO) -> bool:
    """Whether the Parquet file open as `f` holds the report's table: its footer (whose
    length the 4 bytes before the closing `PAR1` give) begins with the schema, which names
    every column."""
    size = f.seek(0, os.SEEK_END)
    if size < 12:
        return False
    f.seek(size - 8)
    tail = f.read(8)
    footer = int.from_bytes(tail[:4], "little")
    if tail[4:] != b"PAR1" or not 0 < footer <= size - 12:
        return False
    f.seek(size - 8 - footer)
    schema = f.read(min(footer, 1 << 20))
    return all(column in schema for column in TABLE_COLUMNS)
