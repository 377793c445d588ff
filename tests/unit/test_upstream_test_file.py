"""A `bisect --test` file: how it reaches the cell (laid in its folder as inputs/<sha256>,
read back by the script), and which param an upstream script takes it through."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import upstream_pytest

from repromatrix.executors.cell_inputs import INPUTS, input_name, lay_inputs
from repromatrix.model import Base, BaseKind, Cell, GpuType
from repromatrix.upstream_test_file import BY_CONTENT, BY_DIGEST, file_param


def test_the_shipped_script_takes_the_file_by_its_digest(tmp_path: Path) -> None:
    assert file_param(Path(upstream_pytest.__file__)) == BY_DIGEST
    older = tmp_path / "upstream_pytest.py"
    older.write_text('DEFAULTS = {"test": "", "test_file_b64": ""}\n')
    assert file_param(older) == BY_CONTENT


def test_a_cells_inputs_are_laid_in_its_folder_and_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = b"# " + b"x" * 300_000 + b"\n"
    cell = Cell(
        repro="upstream_pytest",
        script=tmp_path / "s.py",
        base=Base(name="host", kind=BaseKind.HOST),
        gpu=GpuType(name="cpu", compute_capability="", smi_names=()),
        pins=(),
        params={BY_DIGEST: input_name(content)},
        timeout_s=1.0,
        key="k",
        inputs=(content,),
    )
    lay_inputs(cell, tmp_path)
    assert os.listdir(tmp_path / INPUTS) == [hashlib.sha256(content).hexdigest()]
    monkeypatch.chdir(tmp_path)
    assert upstream_pytest.test_file(input_name(content), "") == content
    (tmp_path / INPUTS / input_name(content)).write_bytes(b"changed")
    with pytest.raises(RuntimeError, match="is not the file its name says"):
        upstream_pytest.test_file(input_name(content), "")
    with pytest.raises(RuntimeError, match="cannot be read"):
        upstream_pytest.test_file("0" * 64, "")
    assert upstream_pytest.test_file("", "") is None
