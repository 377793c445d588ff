"""A `bisect --test` file: what keeps it from a verdict at every commit (upstream_test_file.py),
and how it reaches the cell (laid in its folder as inputs/<sha256>, read back by the script)."""

from __future__ import annotations

import ast
import hashlib
import os
from pathlib import Path

import pytest
import upstream_pytest

from repromatrix.executors.cell_inputs import INPUTS, input_name, lay_inputs
from repromatrix.model import Base, BaseKind, Cell, GpuType
from repromatrix.upstream_test_file import BY_CONTENT, BY_DIGEST, file_param, free_names, problem

TEST = b"from pkg import scale\n\n\ndef test_scale():\n    assert scale(3.0) == 6.0\n"


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"# caf\xe9\n" + TEST, "is not UTF-8 (byte 0xe9 on line 1)"),
        (TEST + b"\n# caf\xe9\n", "is not UTF-8 (byte 0xe9 on line 7)"),
        (b"# coding: klingon\n" + TEST, "cannot be read as Python source (unknown encoding"),
        (TEST + b"x = 1\x00\n", "does not parse: a null byte on line 6"),
        (TEST.replace(b"from pkg import scale\n", b""), "uses scale, which it neither imports"),
    ],
)
def test_a_file_no_commit_can_run_is_named(content: bytes, says: str) -> None:
    assert says in (problem(content, "tests/t.py", "tests/t.py::test_scale") or "")


@pytest.mark.parametrize(
    "content",
    [
        TEST,
        b"# -*- coding: latin-1 -*-\n# caf\xe9\n" + TEST,  # declared: Python reads it so
        b"\xef\xbb\xbf" + TEST,  # a byte-order mark
        b"from pkg import *\n\ndef test_scale():\n    assert scale(3.0) == 6.0\n",
        b"globals()['scale'] = len\n\ndef test_scale():\n    assert scale('ab') == 2\n",
        # What this Python cannot parse a newer one may (3.12's f-strings): the ends judge.
        TEST.replace(b"():", b"(:"),
        TEST + b'\nX = f"{"nested"}"\n',
        # Another test's missing name does not stop this one.
        TEST + b"\ndef test_other():\n    assert undefined_here()\n",
        # Annotations are not run under `from __future__ import annotations`.
        b"from __future__ import annotations\n" + TEST + b"\ndef f(x: Missing) -> Gone: ...\n",
    ],
)
def test_a_file_a_commit_may_run_passes(content: bytes) -> None:
    assert problem(content, "tests/t.py", "tests/t.py::test_scale") is None


def test_files_pytest_reads_otherwise_are_not_judged() -> None:
    assert problem(b"\xff\xfe not python", "tests/data.txt", "tests/data.txt") is None


def test_the_names_a_test_needs_are_those_run_at_import_and_in_it() -> None:
    tree = ast.parse(
        "import os\n"
        "@needs_deco\n"
        "def test_a(tmp_path, flag=os.sep):\n"
        "    for i in range(3):\n"
        "        print(i, a_name, tmp_path, flag, __file__)\n"
        "    try:\n        pass\n    except ValueError as e:\n        e\n"
        "class TestK(Base):\n"
        "    attr = class_name\n"
        "    def test_m(self):\n        return m_name\n"
        "    def test_n(self):\n        return n_name\n"
    )
    assert free_names(tree, "t.py::test_a[1-2]") == {"needs_deco", "a_name", "Base", "class_name"}
    assert free_names(tree, "t.py::TestK::test_m") == {"needs_deco", "Base", "class_name", "m_name"}
    assert free_names(tree, "t.py") == {"needs_deco", "Base", "class_name"}


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
