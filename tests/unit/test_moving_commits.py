"""Which git pins move: read through the library's mirror, or not read at all."""

from __future__ import annotations

from pathlib import Path

from repromatrix.git_pins import moving_commits
from repromatrix.mirrors import Mirrors
from repromatrix.model import InstallMode, Pin, SourceKind


def pin(rev: str, source: Path) -> Pin:
    return Pin(
        library="lib",
        kind=SourceKind.GIT,
        source=str(source),
        rev=rev,
        label=rev[:8],
        install=InstallMode.PIP,
        import_name="lib",
    )


def test_a_whole_commit_id_is_never_read_through_a_mirror(tmp_path: Path) -> None:
    """A pin of a whole commit id was resolved to learn whether it moves: on a host with
    no clone of the library (a Docker or Ray driver, whose cells build elsewhere) that
    cloned it, or tried to against an unreachable source, on every run."""
    root = tmp_path / "git"
    source = tmp_path / "no-such-source.git"
    for rev in ("a" * 40, "b" * 64):
        assert moving_commits(Mirrors(root), [pin(rev, source)]) == {}
    assert not root.exists() or not any(root.iterdir())
