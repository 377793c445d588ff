"""`run`'s reuse of a release a find-links folder holds: a stored record stands for it only
while the folder holds the files it was made from (`made_from_files_now`, the check a
bisection's evidence takes too). Real files in a real folder; the executor is a fake."""

from __future__ import annotations

from pathlib import Path

import pytest

from repromatrix.config import load_matrix
from repromatrix.executors.base import RunOutcome, Slot
from repromatrix.expand import expand
from repromatrix.host import HostInfo
from repromatrix.model import Cell, Status
from repromatrix.planning import Plan, plan
from repromatrix.records import Result
from repromatrix.release_digest import ReleaseFiles, pin_digest

MATRIX = """\
schema: 1
libraries:
  fi: {pypi: fi, import: fi, versions: ["1"]}
repros:
  b: {script: r.py, gpus: [cpu], libraries: {fi: all}}
"""


class NeverRuns:
    """An executor for planning alone: what it would run is the plan's to say."""

    name = "never"

    def base_fingerprint(self, cell: Cell) -> str:
        return "fake"

    def can_run(self, cell: Cell) -> str | None:
        return None

    def run(self, cell: Cell, slot: Slot, workdir: Path) -> RunOutcome:
        raise AssertionError("planning runs nothing")

    def cancel(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def cell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cell:
    for name in ("PIP_FIND_LINKS", "PIP_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")  # no pip.conf of this machine's
    (tmp_path / "r.py").write_text("")
    (tmp_path / "m.yaml").write_text(MATRIX)
    (only,) = expand(load_matrix(tmp_path / "m.yaml"))
    return only


def _plan(cell: Cell, folder: Path, made_from: str, installed: str = "") -> Plan:
    """The plan of `cell` over `folder`, the store holding one pass made from `made_from`
    (a digest of fi's files; "" names none) that installed `installed` ("": says not)."""
    pins = {"fi": {"rev": "1"} | ({"files": made_from} if made_from else {})}
    pins["fi"] |= {"installed": installed} if installed else {}
    record = Result.for_cell(
        cell,
        status=Status.PASSED,
        reason="ok",
        base_fingerprint="fake",
        provenance={"harness": {"pins": pins}},
    )
    ex = NeverRuns()
    return plan(
        [cell],
        host=HostInfo(hostname="box", gpus=()),
        choose=lambda c: ex,
        history={cell.key: [record]},
        files=ReleaseFiles([folder], "/nonexistent/python"),
    )


def test_a_record_of_a_rebuilt_release_is_not_reused(cell: Cell, tmp_path: Path) -> None:
    """The folder's fi 1 rebuilt after the record was made: it ran again; the same file
    again (or a record from before records named files) is reused."""
    folder = tmp_path / "wheels"
    folder.mkdir()
    wheel = folder / "fi-1-py3-none-any.whl"
    wheel.write_bytes(b"the first build")
    (pin,) = cell.pins
    first = pin_digest(pin, [folder])
    assert first
    assert [c.id for c, _ in _plan(cell, folder, first).reused] == [cell.id]
    wheel.write_bytes(b"a rebuilt 1 of the same name")
    rebuilt = _plan(cell, folder, first)
    assert rebuilt.reused == ()
    assert [p.cell.id for p in rebuilt.to_run] == [cell.id]
    assert rebuilt.evidence[cell.key] == ()  # nor is it --fail-on's evidence
    assert [c.id for c, _ in _plan(cell, folder, "").reused] == [cell.id]


def test_a_record_that_installed_a_local_build_of_a_plain_pin_is_not_reused(
    cell: Cell, tmp_path: Path
) -> None:
    """The pin 1 asked as `==1` took the folder's 1+cu121 (before pins were asked as pip
    spells them): its verdict is that build's, and it runs again while the folder holds
    1 itself; where the folder offers local builds alone, the local build is what the pin
    installs, and the record stands."""
    folder = tmp_path / "wheels"
    folder.mkdir()
    (folder / "fi-1+cu121-py3-none-any.whl").write_bytes(b"the CUDA build")
    (pin,) = cell.pins
    assert [c.id for c, _ in _plan(cell, folder, "", "1+cu121").reused] == [cell.id]
    (folder / "fi-1-py3-none-any.whl").write_bytes(b"the release")
    made_from = pin_digest(pin, [folder])
    again = _plan(cell, folder, made_from, "1+cu121")
    assert (again.reused, [p.cell.id for p in again.to_run]) == ((), [cell.id])
    assert [c.id for c, _ in _plan(cell, folder, made_from, "1").reused] == [cell.id]


def test_a_record_of_a_release_no_folder_holds_now_is_reused(cell: Cell, tmp_path: Path) -> None:
    """Made from a folder's file, then no folder holds the release (stored from another
    source): the record is all there is of it here, and stands."""
    empty = tmp_path / "empty"
    empty.mkdir()
    assert [c.id for c, _ in _plan(cell, empty, "0123456789abcdef").reused] == [cell.id]


def test_each_release_s_digest_reads_the_folder_s_names_once_a_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cell's environment key asks the digest of its release, and so did every release a
    run reused: each call parsed every file name of the folders, cells × files (2,000
    cells over a 2,000-wheel folder: 4 million parses). A name is parsed once; a file
    added or rebuilt since is still seen."""
    from packaging.utils import parse_wheel_filename as real

    import repromatrix.release_digest as digest

    parsed: list[str] = []

    def counted(name: str) -> object:
        parsed.append(name)
        return real(name)

    monkeypatch.setattr(digest, "parse_wheel_filename", counted)
    folder = tmp_path / "wheels"
    folder.mkdir()
    for v in range(6):
        (folder / f"fionce-{v}-py3-none-any.whl").write_bytes(f"build {v}".encode())
    firsts = [digest.release_digest([folder], "fionce", str(v)) for v in range(6)]
    assert all(firsts)
    assert len(set(firsts)) == 6
    assert sorted(parsed) == sorted(p.name for p in folder.iterdir())
    (folder / "fionce-2-py3-none-any.whl").write_bytes(b"a rebuilt 2")
    (folder / "fionce-6-py3-none-any.whl").write_bytes(b"build 6")
    assert digest.release_digest([folder], "fionce", "2") != firsts[2]
    assert digest.release_digest([folder], "fionce", "6")
    assert digest.release_digest([folder], "fionce", "0") == firsts[0]
    assert len(parsed) == 7
