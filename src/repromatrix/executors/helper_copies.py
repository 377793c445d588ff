"""Copies of `repros/_repro.py` beside a run's repros that are older than the harness's.

Fixes of the repro protocol live in that helper as well as in the worker: a script run as
a command (`--isolate`, `isolate: true`) with a copy made before them kept the old
behaviour (a closed stderr read as "regressed", a 5,000-digit metric lost the verdict),
where its worker recorded the new one, and nothing said why the two differed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

#: `_repro.HELPER_VERSION` of the copy this repromatrix comes with (a test holds the two
#: equal). A copy without one predates the constant: version 1.
HELPER_VERSION = 3

HELPER = "_repro.py"


def copy_version(path: Path) -> int | None:
    """The `HELPER_VERSION = N` of a helper copy (1 when it has none), None if unreadable."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
        return None
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and [ast.unparse(t) for t in node.targets] == ["HELPER_VERSION"]
            and isinstance(node.value, ast.Constant)
            and type(node.value.value) is int
        ):
            return node.value.value
    return 1


def outdated_copies(scripts: Iterable[Path]) -> list[str]:
    """One warning per older `_repro.py` beside a script that imports it."""
    said: dict[Path, str] = {}
    for script in scripts:
        copy = script.parent / HELPER
        if copy in said or copy == script or not copy.is_file():
            continue
        try:
            uses = "_repro" in script.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        version = copy_version(copy) if uses else None
        if version is not None and version < HELPER_VERSION:
            said[copy] = (
                f"{copy} is an older copy of the repro helper (version {version}, this "
                f"repromatrix's is {HELPER_VERSION}): cells run as commands (--isolate, "
                "isolate: true) miss the fixes made in it since, and may be recorded unlike "
                "in a worker; copy it again from repromatrix's repros/_repro.py"
            )
    return list(said.values())
